# Regenerates the python-twomemo XML vectors in this directory:
#   /usr/bin/python3 gen_python_xml.py
# It serializes fixed values with python-twomemo's own etree helpers, so the
# files show exactly what the reference implementation writes.
import base64
import xml.etree.ElementTree as ET

import doubleratchet
import x3dh
from omemo.message import Message
from twomemo import etree
from twomemo.twomemo import (BundleImpl, ContentImpl, EncryptedKeyMaterialImpl,
                             KeyExchangeImpl, NAMESPACE)


def key(i):
    return bytes([i]) * 32


def write(name, elt):
    with open(name, "wb") as f:
        f.write(ET.tostring(elt))
        f.write(b"\n")


write("python-devices.xml", etree.serialize_device_list({1: None, 2147483647: "Gajim on Debian", 42: None}))

bundle = BundleImpl(
    "juliet@capulet.lit", 31415,
    x3dh.Bundle(key(1), key(2), bytes([3]) * 64, frozenset([key(10), key(11), key(12)])),
    7, {key(10): 1, key(11): 2, key(12): 100},
)
write("python-bundle.xml", etree.serialize_bundle(bundle))

# A key element carries an OMEMOAuthenticatedMessage; the bytes here are an
# arbitrary (but well-formed) protobuf, the XML layer does not look inside.
auth = bytes.fromhex("0a10") + bytes(16) + bytes.fromhex("1226080010001a20") + key(5)
kex = KeyExchangeImpl(x3dh.Header(key(6), key(7), b"", b""), 3, 9)
emk = EncryptedKeyMaterialImpl(
    "juliet@capulet.lit", 31415,
    doubleratchet.EncryptedMessage(doubleratchet.Header(key(5), 0, 0), auth),
)
emk2 = EncryptedKeyMaterialImpl(
    "romeo@montague.lit", 1337,
    doubleratchet.EncryptedMessage(doubleratchet.Header(key(5), 0, 0), auth),
)
msg = Message(NAMESPACE, "romeo@montague.lit", 27183, ContentImpl(bytes(range(32))),
              frozenset([(emk, None), (emk2, kex)]))
write("python-encrypted.xml", etree.serialize_message(msg))
empty = Message(NAMESPACE, "romeo@montague.lit", 27183, ContentImpl.make_empty(), frozenset([(emk, None)]))
write("python-encrypted-empty.xml", etree.serialize_message(empty))
