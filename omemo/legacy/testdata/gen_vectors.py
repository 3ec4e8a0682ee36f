#!/usr/bin/python3
"""Generate the python-oldmemo vectors of hush.im/omemo/legacy.

vectors.json holds, all produced by the reference implementation
(python-oldmemo 1.0 on python-x3dh, python-doubleratchet, python-xeddsa and
cryptography):

  gcm           AES-128-GCM payloads as python-oldmemo's encrypt_plaintext
                builds them (12-byte IV) and as older clients did (16-byte
                IV): key, IV, body, <payload> ciphertext and tag.
  device_list   oldmemo.etree.serialize_device_list output.
  bob           a device's private keys (identity scalar whose Ed25519 form
                has sign bit 1, as half of python's keys do; signed prekey;
                prekeys) and oldmemo.etree.serialize_bundle of its bundle.
  messages      <encrypted/> elements from a python-oldmemo device "alice"
                to bob, as SessionManager would send them before bob
                answers: every key is a PreKeySignalMessage. They carry
                bodies, one key transport (empty) message, and one payload
                with a 16-byte IV.

Randomness (ephemeral and ratchet keys, payload keys) is python's own; the
Go test only decrypts. Run from omemo/legacy with Debian's python:
    /usr/bin/python3 testdata/gen_vectors.py
"""

import asyncio
import base64
import hashlib
import json
import os
import xml.etree.ElementTree as ET

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from doubleratchet.recommended import diffie_hellman_ratchet_curve25519
import omemo.message
import oldmemo.etree
import oldmemo.oldmemo as om
import x3dh
from x3dh.identity_key_pair import IdentityKeyPairPriv, IdentityKeyPairSeed
import xeddsa

MAX_SKIP = 1000


def det(label, n=32):
    out, i = b"", 0
    while len(out) < n:
        out += hashlib.sha256(f"hush legacy vector {label} {i}".encode()).digest()
        i += 1
    return out[:n]


def clamp(k):
    b = bytearray(k)
    b[0] &= 248
    b[31] &= 127
    b[31] |= 64
    return bytes(b)


def b64(b):
    return base64.b64encode(b).decode()


def gcm(key, iv, body):
    enc = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
    ct = enc.update(body) + enc.finalize()
    return ct, enc.tag


def xml(element):
    return ET.tostring(element, encoding="unicode")


async def main():
    out = {}

    # Payload cipher.
    out["gcm"] = []
    for i, (iv_len, body) in enumerate([(12, b"Hello, Juliet!"), (16, "Wherefore art thou? \u2764".encode()),
                                         (12, b""), (16, b"x" * 100)]):
        key, iv = det(f"gcm key {i}", 16), det(f"gcm iv {i}", iv_len)
        ct, tag = gcm(key, iv, body)
        out["gcm"].append({"key": key.hex(), "iv": iv.hex(), "body": body.hex(), "payload": ct.hex(), "tag": tag.hex()})
    # python-oldmemo's own encrypt_plaintext, decrypted back by it.
    content, material = await om.Oldmemo.encrypt_plaintext(None, b"python-oldmemo payload")
    assert await om.Oldmemo.decrypt_plaintext(None, content, material) == b"python-oldmemo payload"
    out["gcm"].append({"key": material.key.hex(), "iv": content.initialization_vector.hex(),
                       "body": b"python-oldmemo payload".hex(), "payload": content.ciphertext.hex(),
                       "tag": material.auth_tag.hex()})

    out["device_list"] = {"ids": [31415, 1, 2147483647],
                          "xml": xml(oldmemo.etree.serialize_device_list({31415: None, 1: None, 2147483647: None}))}

    # Bob: an identity whose Ed25519 form has the sign bit set.
    i = 0
    while True:
        bob_priv = clamp(det(f"bob identity {i}"))
        if xeddsa.priv_to_ed25519_pub(bob_priv)[31] & 0x80:
            break
        i += 1
    bob_ed = xeddsa.priv_to_ed25519_pub(bob_priv)
    spk_priv = det("bob signed prekey")
    spk_pub = xeddsa.priv_to_curve25519_pub(spk_priv)
    spk_sig = xeddsa.ed25519_priv_sign(bob_priv, b"\x05" + spk_pub, det("bob spk nonce", 64))
    pk_privs = {7: det("bob prekey 7"), 8: det("bob prekey 8")}
    pk_pubs = {k: xeddsa.priv_to_curve25519_pub(v) for k, v in pk_privs.items()}
    bundle = om.BundleImpl("bob@example.org", 1234, x3dh.Bundle(bob_ed, spk_pub, spk_sig, frozenset(pk_pubs.values())),
                           3, {v: k for k, v in pk_pubs.items()})
    out["bob"] = {
        "identity": bob_priv.hex(), "identity_ed25519": bob_ed.hex(),
        "signed_prekey_id": 3, "signed_prekey": spk_priv.hex(),
        "prekeys": {str(k): v.hex() for k, v in pk_privs.items()},
        "device_id": 1234,
        "bundle_xml": xml(oldmemo.etree.serialize_bundle(bundle)),
    }
    # Only prekey 7 is offered to alice, so the vector knows which was used.
    bundle7 = x3dh.Bundle(bob_ed, spk_pub, spk_sig, frozenset([pk_pubs[7]]))

    # Alice: a python-oldmemo device, identity from a seed.
    alice_seed = det("alice seed")
    state = om.StateImpl.create(x3dh.IdentityKeyFormat.ED_25519, x3dh.HashFunction.SHA_256, om.StateImpl.INFO,
                                IdentityKeyPairSeed(alice_seed))
    shared_secret, ad, header = await state.get_shared_secret_active(bundle7)
    kex = om.KeyExchangeImpl(header, 3, 7)
    common = (diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet, om.RootChainKDFImpl, om.MessageChainKDFImpl,
              om.DoubleRatchetImpl.MESSAGE_CHAIN_CONSTANT, MAX_SKIP, MAX_SKIP, om.AEADImpl)
    dr = None
    out["alice"] = {"identity_curve25519": xeddsa.ed25519_pub_to_curve25519_pub(state.bundle.identity_key).hex(),
                    "device_id": 5678}
    out["messages"] = []

    async def send(content, material, body, kind):
        nonlocal dr
        pt = material.key + material.auth_tag
        if dr is None:
            dr, em = await om.DoubleRatchetImpl.encrypt_initial_message(*common, shared_secret, spk_pub, pt, ad)
        else:
            em = await dr.encrypt_message(pt, ad)
        ekm = om.EncryptedKeyMaterialImpl("bob@example.org", 1234, em)
        msg = omemo.message.Message(om.NAMESPACE, "alice@example.org", 5678, content, frozenset([(ekm, kex)]))
        out["messages"].append({"kind": kind, "body": None if body is None else body.hex(),
                                "material": pt.hex(), "xml": xml(oldmemo.etree.serialize_message(msg))})

    for body in [b"Hello Bob", "\u00bfQu\u00e9 tal? \U0001F600".encode()]:
        content, material = await om.Oldmemo.encrypt_plaintext(None, body)
        await send(content, material, body, "body")
    content, material = await om.Oldmemo.encrypt_empty(None)
    await send(content, material, None, "empty")
    # An older client's 16-byte IV.
    key, iv, body = det("old client key", 16), det("old client iv", 16), b"sent with a 16-byte IV"
    ct, tag = gcm(key, iv, body)
    await send(om.ContentImpl(ct, iv), om.PlainKeyMaterialImpl(key, tag), body, "body")

    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "vectors.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")


asyncio.run(main())
