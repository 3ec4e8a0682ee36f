// Package legacy implements legacy OMEMO, XEP-0384 version 0.3.0
// (2018-07-31), namespace eu.siacs.conversations.axolotl: the protocol that
// Conversations, Dino, Gajim, Monal, Profanity and Converse.js speak today.
// The XEP specifies only the XML; the cryptography is libsignal-protocol v3
// and this package reproduces python-oldmemo 1.0 byte for byte where the
// XEP is vague.
//
// The package is one of the two backends of the omemo package (OMEMO 2 is
// the other) and shares its identity key and device id: the identity key
// travels in its Curve25519 form here (0x05-prefixed, as libsignal
// serializes keys), its Ed25519 form in OMEMO 2.
//
// What it holds:
//
//   - the PEP payloads ([DeviceList], [Bundle]) and the message element
//     ([Encrypted]) as strict XML types in the style of mellium.im/xmpp,
//     which never call crypto;
//   - the payload encryption: AES-128-GCM over the message body, whose
//     16-byte key and 16-byte tag travel through each device's session
//     ([EncryptPayload], [DecryptPayload], [KeyTransport]);
//   - the per-device session ([Session]): X3DH with libsignal's parameters
//     and the Double Ratchet with libsignal's key schedule and wire format
//     (internal/x3dh.Legacy, internal/ratchet.Legacy), wrapped in a
//     PreKeySignalMessage until the peer answers ([Initiate], [Respond],
//     [Session.Encrypt], [Session.Decrypt]).
//
// Most callers want the omemo package's Manager, which stores sessions and
// keys, chooses the protocol per device and builds the stanzas; this
// package is its low-level engine for legacy devices. Only the body of a
// message is protected by legacy OMEMO: everything else in the stanza is
// sent in the clear.
package legacy
