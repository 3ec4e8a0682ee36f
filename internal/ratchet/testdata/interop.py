#!/usr/bin/python3
"""One side of a live Double Ratchet session, for interop_test.go.

It runs python-doubleratchet with python-twomemo's (OMEMO2) or python-oldmemo's
(Legacy) parameters, with real randomness, and speaks JSON lines on
stdin/stdout. Requests and answers:

  {"op": "init", "profile": "OMEMO2"|"Legacy", "role": "initiator"|"responder",
   "shared_secret": hex, "ad": hex, "spk": hex, "plaintext": hex}
      initiator: spk is the peer's signed PreKey public key; answers {"message": hex}
      responder: spk is the own signed PreKey private key; answers {}
  {"op": "encrypt", "plaintext": hex}       -> {"message": hex}
  {"op": "decrypt", "message": hex}         -> {"plaintext": hex} or {"error": name}

Run with Debian's python (it has the modules).
"""

import asyncio
import json
import sys

import oldmemo.oldmemo as oldmemo
import twomemo.twomemo as twomemo
from doubleratchet.recommended import diffie_hellman_ratchet_curve25519

MAX_SKIP = 1000


class Side:
    def __init__(self, req):
        self.m = {"OMEMO2": twomemo, "Legacy": oldmemo}[req["profile"]]
        self.legacy = req["profile"] == "Legacy"
        self.initiator = req["role"] == "initiator"
        self.ss = bytes.fromhex(req["shared_secret"])
        self.ad = bytes.fromhex(req["ad"])
        self.spk = bytes.fromhex(req["spk"])
        self.dr = None
        m = self.m
        self.common = (diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet, m.RootChainKDFImpl,
                       m.MessageChainKDFImpl, m.DoubleRatchetImpl.MESSAGE_CHAIN_CONSTANT,
                       MAX_SKIP, MAX_SKIP, m.AEADImpl)

    def ad_for(self, sender_is_initiator: bool) -> bytes:
        # python-oldmemo: sender's identity first; python-twomemo: initiator first.
        if self.legacy and not sender_is_initiator:
            half = len(self.ad) // 2
            return self.ad[half:] + self.ad[:half]
        return self.ad

    async def start(self, plaintext: bytes):
        if not self.initiator:
            return {}
        self.dr, em = await self.m.DoubleRatchetImpl.encrypt_initial_message(
            *self.common, self.ss, self.spk, plaintext, self.ad_for(True))
        return {"message": em.ciphertext.hex()}

    async def encrypt(self, plaintext: bytes):
        em = await self.dr.encrypt_message(plaintext, self.ad_for(self.initiator))
        return {"message": em.ciphertext.hex()}

    async def decrypt(self, message: bytes):
        try:
            em = self.m.EncryptedKeyMaterialImpl.parse(message, "peer@example.org", 1).encrypted_message
            if self.dr is None:
                self.dr, pt = await self.m.DoubleRatchetImpl.decrypt_initial_message(
                    *self.common, self.ss, self.spk, em, self.ad_for(True))
            else:
                pt = await self.dr.decrypt_message(em, self.ad_for(not self.initiator))
        except Exception as e:  # noqa: BLE001 - reported to the Go side
            return {"error": type(e).__name__}
        return {"plaintext": pt.hex()}


async def main():
    side = None
    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        if op == "init":
            side = Side(req)
            resp = await side.start(bytes.fromhex(req.get("plaintext", "")))
        elif op == "encrypt":
            resp = await side.encrypt(bytes.fromhex(req["plaintext"]))
        elif op == "decrypt":
            resp = await side.decrypt(bytes.fromhex(req["message"]))
        else:
            resp = {"error": f"unknown op {op}"}
        sys.stdout.write(json.dumps(resp) + "\n")
        sys.stdout.flush()


asyncio.run(main())
