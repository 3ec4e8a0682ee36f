#!/usr/bin/python3
"""Live python-xeddsa peer for interop_test.go (build tag interop).

Reads a JSON request on stdin: {"n": N, "go": [...]}, where every "go" entry
holds a key and signatures made by hush; answers on stdout with python-xeddsa's
verdicts on them and N fresh python keys with python signatures for Go to check.
"""

import json
import secrets
import sys

import xeddsa


def verify_ed(pub, msg, sig):
    return xeddsa.ed25519_verify(sig, pub, msg)


def verify_xeddsa(u, msg, sig):
    return verify_ed(xeddsa.curve25519_pub_to_ed25519_pub(u, False), msg, sig)


def verify_legacy(u, msg, sig):
    # python-oldmemo etree.parse_bundle
    bit = bool((sig[63] >> 7) & 1)
    cleared = bytearray(sig)
    cleared[63] &= 0x7F
    return verify_ed(xeddsa.curve25519_pub_to_ed25519_pub(u, bit), msg, bytes(cleared))


def main():
    req = json.load(sys.stdin)
    verdicts = []
    for e in req["go"]:
        scalar, ed, u, msg = (bytes.fromhex(e[k]) for k in ("scalar", "ed", "curve", "msg"))
        sb = ed[31] >> 7
        verdicts.append({
            "ed_pub": xeddsa.priv_to_ed25519_pub(scalar) == ed,
            "curve_pub": xeddsa.priv_to_curve25519_pub(scalar) == u,
            "ed_to_curve": xeddsa.ed25519_pub_to_curve25519_pub(ed) == u,
            "curve_to_ed": xeddsa.curve25519_pub_to_ed25519_pub(u, bool(sb)) == ed,
            "xeddsa": verify_xeddsa(u, msg, bytes.fromhex(e["xeddsa"])),
            "ed25519": verify_ed(ed, msg, bytes.fromhex(e["ed25519"])),
            "legacy": verify_legacy(u, msg, bytes.fromhex(e["legacy"])),
        })
    keys = []
    for _ in range(req["n"]):
        seed = secrets.token_bytes(32)
        priv = xeddsa.seed_to_priv(seed)
        ed = xeddsa.priv_to_ed25519_pub(priv)
        u = xeddsa.priv_to_curve25519_pub(priv)
        msg = secrets.token_bytes(secrets.randbelow(100))
        esig = xeddsa.ed25519_priv_sign(priv, msg)
        lsig = bytearray(esig)
        lsig[63] |= ed[31] & 0x80  # python-oldmemo etree.serialize_bundle
        keys.append({
            "seed": seed.hex(),
            "scalar": priv.hex(),
            "ed": ed.hex(),
            "curve": u.hex(),
            "ed_to_curve": xeddsa.ed25519_pub_to_curve25519_pub(ed).hex(),
            "curve_to_ed0": xeddsa.curve25519_pub_to_ed25519_pub(u, False).hex(),
            "curve_to_ed1": xeddsa.curve25519_pub_to_ed25519_pub(u, True).hex(),
            "msg": msg.hex(),
            "xeddsa": xeddsa.ed25519_priv_sign(xeddsa.priv_force_sign(priv, False), msg).hex(),
            "ed25519": esig.hex(),
            "legacy": bytes(lsig).hex(),
            "seed_sig": xeddsa.ed25519_seed_sign(seed, msg).hex(),
        })
    json.dump({"verdicts": verdicts, "keys": keys}, sys.stdout)


if __name__ == "__main__":
    main()
