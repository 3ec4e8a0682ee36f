#!/usr/bin/python3
"""Independent implementation of the hush SAS derivation (urn:hush:sas:0),
used to produce sas_vectors.json. Run: /usr/bin/python3 gen_sas.py > sas_vectors.json"""
import hashlib, hmac, json, struct

NS = b"urn:hush:sas:0"
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

def lp(b):
    return struct.pack(">I", len(b)) + b

def keys(ks):
    return struct.pack(">I", len(ks)) + b"".join(lp(k) for k in sorted(ks))

def commit(sid, a, b, keys_a, nonce_a):
    t = lp(NS + b" commit") + lp(sid) + lp(a.encode()) + lp(b.encode()) + keys(keys_a) + lp(nonce_a)
    return hashlib.sha256(t).digest()

def hkdf(secret, salt, info, n):  # RFC 5869
    prk = hmac.new(salt, secret, hashlib.sha256).digest()
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:n]

def sas(sid, a, b, keys_a, keys_b, c, nonce_a, nonce_b):
    info = lp(NS + b" sas") + lp(a.encode()) + keys(keys_a) + lp(b.encode()) + keys(keys_b) + lp(c)
    x = int.from_bytes(hkdf(nonce_a + nonce_b, sid, info, 4), "big") >> 2
    return "".join(ALPHABET[(x >> (5 * (5 - i))) & 31] for i in range(6))

def h(label, n):
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(label.encode() + bytes([i])).digest()
        i += 1
    return out[:n]

vectors = []
cases = [
    ("alice@example.org", "bob@example.com", 1, 1),
    ("alice@example.org", "bob@example.com", 3, 2),
    ("juliet@capulet.lit", "juliet@capulet.lit", 2, 1),
    ("romeo@montague.lit", "nurse@capulet.lit", 1, 5),
]
for n, (a, b, na, nb) in enumerate(cases):
    sid = h("sid%d" % n, 16)
    keys_a = [h("ka%d-%d" % (n, i), 32) for i in range(na)]
    keys_b = [h("kb%d-%d" % (n, i), 32) for i in range(nb)]
    nonce_a, nonce_b = h("na%d" % n, 32), h("nb%d" % n, 32)
    c = commit(sid, a, b, keys_a, nonce_a)
    vectors.append({
        "jid_a": a, "jid_b": b, "sid": sid.hex(),
        "keys_a": [k.hex() for k in keys_a], "keys_b": [k.hex() for k in keys_b],
        "nonce_a": nonce_a.hex(), "nonce_b": nonce_b.hex(),
        "commitment": c.hex(), "sas": sas(sid, a, b, keys_a, keys_b, c, nonce_a, nonce_b),
    })
print(json.dumps(vectors, indent=1))
