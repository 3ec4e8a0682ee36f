#!/usr/bin/python3
"""Generate the Double Ratchet conversation vectors of hush.im/internal/ratchet.

It drives the reference implementations named by XEP-0384 through one scripted
conversation per profile:

  omemo2.json  python-doubleratchet with python-twomemo's DoubleRatchetImpl,
               RootChainKDFImpl, MessageChainKDFImpl and AEADImpl (OMEMO 2);
  legacy.json  the same core with python-oldmemo's classes (libsignal v3 /
               legacy OMEMO), including oldmemo's sender-first associated data.

The conversation has ratchet turns, out-of-order and late delivery across
chains, a replay and a tampered message (both must fail), and a long one-way
run past the heartbeat threshold. Randomness is removed by subclassing the
Curve25519 Diffie-Hellman ratchet with deterministic key generation; every
generated private key is recorded in order, so that Go can replay the same
conversation with the same keys, compare every wire message byte for byte and
check every decryption.

Run with Debian's python (it has the modules), from internal/ratchet:
    /usr/bin/python3 testdata/gen_vectors.py
"""

import asyncio
import hashlib
import json
import os

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from doubleratchet.recommended import diffie_hellman_ratchet_curve25519
import oldmemo.oldmemo as oldmemo
import twomemo.twomemo as twomemo

MAX_SKIP = 1000  # python-twomemo/oldmemo default: per-session and per-message bound


def det(label: str, n: int = 32) -> bytes:
    out, i = b"", 0
    while len(out) < n:
        out += hashlib.sha256(f"hush ratchet vector {label} {i}".encode()).digest()
        i += 1
    return out[:n]


def pub(priv: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(priv).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def deterministic_dh(label: str, log: list):
    """A DiffieHellmanRatchet whose key generation is a recorded sequence."""
    counter = [0]

    class DH(diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet):
        @staticmethod
        def _generate_priv() -> bytes:
            key = det(f"{label} ratchet key {counter[0]}")
            counter[0] += 1
            log.append(key.hex())
            return key

    return DH


class Profile:
    def __init__(self, name, module, ad, sender_first):
        self.name = name
        self.m = module
        self.ad = ad
        self.sender_first = sender_first

    def ad_for(self, sender: str) -> bytes:
        # python-oldmemo rebuilds the AD as sender ‖ receiver (encrypt_key_material,
        # decrypt_key_material); python-twomemo always uses initiator ‖ responder.
        if self.sender_first and sender == "bob":
            half = len(self.ad) // 2
            return self.ad[half:] + self.ad[:half]
        return self.ad

    def parse(self, message: bytes):
        return self.m.EncryptedKeyMaterialImpl.parse(message, "peer@example.org", 1).encrypted_message


async def conversation(profile: Profile) -> dict:
    m = profile.m
    shared_secret = det(f"{profile.name} shared secret")
    spk_priv = det(f"{profile.name} bob signed prekey")
    alice_keys, bob_keys = [], []
    alice_dh = deterministic_dh(f"{profile.name} alice", alice_keys)
    bob_dh = deterministic_dh(f"{profile.name} bob", bob_keys)
    common = (m.RootChainKDFImpl, m.MessageChainKDFImpl, m.DoubleRatchetImpl.MESSAGE_CHAIN_CONSTANT,
              MAX_SKIP, MAX_SKIP, m.AEADImpl)

    sessions = {"alice": None, "bob": None}
    messages = {}
    events = []

    def lengths(party):
        s = sessions[party]
        return {"sending_chain_length": s.sending_chain_length,
                "receiving_chain_length": s.receiving_chain_length or 0}

    async def enc(party: str, mid: str, plaintext: bytes):
        if sessions[party] is None:
            assert party == "alice"
            sessions[party], em = await m.DoubleRatchetImpl.encrypt_initial_message(
                alice_dh, *common, shared_secret, pub(spk_priv), plaintext, profile.ad_for("alice"))
        else:
            em = await sessions[party].encrypt_message(plaintext, profile.ad_for(party))
        messages[mid] = em.ciphertext
        events.append({"op": "encrypt", "party": party, "id": mid, "plaintext": plaintext.hex(),
                       "message": em.ciphertext.hex(), **lengths(party)})

    async def dec(party: str, mid: str, ok: bool = True):
        sender = "bob" if party == "alice" else "alice"
        em = profile.parse(messages[mid])
        plaintext = None
        try:
            if sessions[party] is None:
                assert party == "bob"
                sessions[party], plaintext = await m.DoubleRatchetImpl.decrypt_initial_message(
                    bob_dh, *common, shared_secret, spk_priv, em, profile.ad_for(sender))
            else:
                plaintext = await sessions[party].decrypt_message(em, profile.ad_for(sender))
        except Exception as e:  # noqa: BLE001 - any failure is what the vector records
            if ok:
                raise
            events.append({"op": "decrypt", "party": party, "id": mid, "plaintext": None,
                           "error": type(e).__name__, **lengths(party)})
            return
        assert ok, f"{mid} decrypted but should have failed"
        events.append({"op": "decrypt", "party": party, "id": mid, "plaintext": plaintext.hex(),
                       "error": None, **lengths(party)})

    def tamper(mid: str, new_mid: str, index: int):
        b = bytearray(messages[mid])
        b[index] ^= 0x01
        messages[new_mid] = bytes(b)
        events.append({"op": "tamper", "id": new_mid, "from": mid, "message": bytes(b).hex()})

    key_material = det(f"{profile.name} payload key", 48)  # OMEMO: 32-byte key ‖ 16-byte HMAC

    await enc("alice", "a1", key_material)
    await enc("alice", "a2", b"")
    await enc("alice", "a3", b"\x01")
    await dec("bob", "a2")            # first message received is the second sent: a1 skipped
    await dec("bob", "a1")            # from the skipped keys
    await dec("bob", "a1", ok=False)  # replay
    await enc("bob", "b1", det("b1", 15))
    await enc("bob", "b2", det("b2", 16))
    await enc("bob", "b3", det("b3", 48))
    await dec("alice", "b3")          # ratchet step, b1 and b2 skipped
    await enc("alice", "a4", det("a4", 100))
    await enc("alice", "a5", key_material)
    await dec("bob", "a5")            # ratchet step: a3 skipped on the old chain, a4 on the new
    await dec("alice", "b1")
    await dec("bob", "a3")
    await dec("bob", "a4")
    await dec("alice", "b2")
    await dec("alice", "b2", ok=False)  # replay of a skipped-key message
    await enc("bob", "b4", det("b4", 33))
    await enc("bob", "b5", det("b5", 47))
    await dec("alice", "b5")
    await dec("alice", "b4")
    await enc("alice", "a6", key_material)
    tamper("a6", "a6-mac", -1)        # last byte: inside the MAC
    tamper("a6", "a6-ct", -20)        # inside the ciphertext
    await dec("bob", "a6-mac", ok=False)
    await dec("bob", "a6-ct", ok=False)
    await dec("bob", "a6")
    for i in range(7, 63):            # 56 messages one way: past the heartbeat threshold
        await enc("alice", f"a{i}", det(f"a{i}", 48))
        await dec("bob", f"a{i}")
    await enc("bob", "b6", b"\x00" * 32)  # the heartbeat: an empty OMEMO message
    await dec("alice", "b6")

    return {
        "comment": f"generated by testdata/gen_vectors.py with python-doubleratchet and python-{profile.m.__name__.split('.')[0]}; do not edit",
        "profile": profile.name,
        "shared_secret": shared_secret.hex(),
        "associated_data": profile.ad.hex(),
        "bob_signed_prekey": spk_priv.hex(),
        "alice_ratchet_keys": alice_keys,
        "bob_ratchet_keys": bob_keys,
        "events": events,
    }


async def main():
    here = os.path.dirname(os.path.abspath(__file__))
    profiles = [
        Profile("OMEMO2", twomemo, det("OMEMO2 ik alice") + det("OMEMO2 ik bob"), False),
        Profile("Legacy", oldmemo,
                b"\x05" + det("Legacy ik alice") + b"\x05" + det("Legacy ik bob"), True),
    ]
    for profile, name in zip(profiles, ["omemo2.json", "legacy.json"]):
        data = await conversation(profile)
        with open(os.path.join(here, name), "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")


asyncio.run(main())
