// Package ratchet implements the Double Ratchet (Signal's Double Ratchet
// specification, revision 1, 2016-11-20) for OMEMO: one core, parameterised
// by a [Profile].
//
//   - [OMEMO2] is the profile of XEP-0384 0.9 (namespace urn:xmpp:omemo:2,
//     §Double Ratchet), reproducing python-doubleratchet 1.0 with
//     python-twomemo's parameters byte for byte.
//   - [Legacy] is the profile of legacy OMEMO (XEP-0384 0.3, namespace
//     eu.siacs.conversations.axolotl), that is the libsignal v3 wire format
//     and key schedule, reproducing python-oldmemo byte for byte and readable
//     by libsignal.
//
// A [Session] is created from the X3DH output (internal/x3dh) with
// [NewInitiator] by the party that fetched the bundle, or with [NewResponder]
// by the party whose signed PreKey was used; the responder's first call must
// be Decrypt. Encrypt returns the complete wire message (a serialized
// OMEMOAuthenticatedMessage, or a framed libsignal SignalMessage); Decrypt
// takes one. Decrypt changes the session only when the message
// authenticates, like crypto/hpke's Open, and every failure of a message is
// [ErrAuthentication]. Sessions persist with MarshalBinary/UnmarshalBinary
// (state version 2, which stores the ratchet public key so that loading is
// only copying; version 1 is still read), and Clone is one allocation: a
// store may copy or load a session per device of a fan-out.
//
// The key exchange wrappers (OMEMOKeyExchange, PreKeySignalMessage), the X3DH
// header and the "ek" kept beside a session are the OMEMO engine's business,
// not this package's.
package ratchet
