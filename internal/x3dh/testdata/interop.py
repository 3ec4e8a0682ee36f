#!/usr/bin/python3
"""Live python-x3dh peer for interop_test.go (build tag interop).

Reads one JSON request on stdin and answers on stdout. Keys travel hex-encoded
in the wire form of their profile ("omemo2": python-twomemo, "legacy":
python-oldmemo). Modes:

  bundles  {"profile", "n"} -> n fresh responder states: wire bundle with one
           chosen prekey, and the serialized state for "passive"
  passive  {"profile", "rounds": [{state, alice_ik_ed, ek, spk, pk}]} ->
           python-x3dh's passive shared secret and AD per round
  active   {"profile", "bundles": [{ik, spk, spks, pk}]} -> a fresh initiator
           per bundle: header (wire), shared secret, AD
"""

import asyncio
import json
import sys

import oldmemo.oldmemo
import twomemo.twomemo
import x3dh
import xeddsa

IMPL = {"omemo2": twomemo.twomemo.StateImpl, "legacy": oldmemo.oldmemo.StateImpl}
FMT = (x3dh.IdentityKeyFormat.ED_25519, x3dh.HashFunction.SHA_256)


def to_wire(profile, pub):
    return pub if profile == "omemo2" else b"\x05" + pub


def from_wire(profile, b):
    if profile == "omemo2":
        assert len(b) == 32
        return b
    assert len(b) == 33 and b[0] == 5
    return b[1:]


def identity_to_wire(profile, ed):
    return ed if profile == "omemo2" else b"\x05" + xeddsa.ed25519_pub_to_curve25519_pub(ed)


def bundles(req):
    impl = IMPL[req["profile"]]
    out = []
    for _ in range(req["n"]):
        state = impl.create(*FMT, impl.INFO)
        state.generate_pre_keys(5)
        b = state.bundle
        sig = bytearray(b.signed_pre_key_sig)
        if req["profile"] == "legacy":
            sig[63] |= b.identity_key[31] & 0x80  # oldmemo etree.serialize_bundle
        pk = sorted(b.pre_keys)[0]
        out.append({
            "state": state.json,
            "ik": identity_to_wire(req["profile"], b.identity_key).hex(),
            "spk": to_wire(req["profile"], b.signed_pre_key).hex(),
            "spks": bytes(sig).hex(),
            "pk": to_wire(req["profile"], pk).hex(),
        })
    return out


async def passive(req):
    profile = req["profile"]
    impl = IMPL[profile]
    out = []
    for r in req["rounds"]:
        state, _ = impl.from_json(r["state"], *FMT, impl.INFO)
        header = x3dh.Header(
            identity_key=bytes.fromhex(r["alice_ik_ed"]),
            ephemeral_key=from_wire(profile, bytes.fromhex(r["ek"])),
            signed_pre_key=from_wire(profile, bytes.fromhex(r["spk"])),
            pre_key=from_wire(profile, bytes.fromhex(r["pk"])),
        )
        sk, ad, _ = await state.get_shared_secret_passive(header)
        out.append({"shared_secret": sk.hex(), "ad": ad.hex()})
    return out


async def active(req):
    profile = req["profile"]
    impl = IMPL[profile]
    out = []
    for wb in req["bundles"]:
        sig = bytes.fromhex(wb["spks"])
        ik = from_wire(profile, bytes.fromhex(wb["ik"]))
        if profile == "legacy":
            # oldmemo etree.parse_bundle: sign bit from the signature, then cleared
            ik = xeddsa.curve25519_pub_to_ed25519_pub(ik, bool(sig[63] >> 7))
            mut = bytearray(sig)
            mut[63] &= 0x7F
            sig = bytes(mut)
        bundle = x3dh.Bundle(
            identity_key=ik,
            signed_pre_key=from_wire(profile, bytes.fromhex(wb["spk"])),
            signed_pre_key_sig=sig,
            pre_keys=frozenset([from_wire(profile, bytes.fromhex(wb["pk"]))]),
        )
        alice = impl.create(*FMT, impl.INFO)
        sk, ad, header = await alice.get_shared_secret_active(bundle)
        out.append({
            "alice_ik": identity_to_wire(profile, header.identity_key).hex(),
            "ek": to_wire(profile, header.ephemeral_key).hex(),
            "pk": to_wire(profile, header.pre_key).hex(),
            "shared_secret": sk.hex(),
            "ad": ad.hex(),
        })
    return out


def main():
    req = json.load(sys.stdin)
    mode = req["mode"]
    if mode == "bundles":
        out = bundles(req)
    elif mode == "passive":
        out = asyncio.run(passive(req))
    elif mode == "active":
        out = asyncio.run(active(req))
    else:
        raise ValueError(mode)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
