// Package wire holds hand-written, strict protobuf codecs for the messages
// carried inside OMEMO <key> elements.
//
// OMEMO 2 (XEP-0384 0.9, namespace urn:xmpp:omemo:2, §Protobuf Schemas):
// [OMEMOMessage], [OMEMOAuthenticatedMessage] and [OMEMOKeyExchange], proto2,
// with field numbers and required fields exactly as python-twomemo's
// twomemo.proto.
//
// Legacy OMEMO (XEP-0384 0.3, namespace eu.siacs.conversations.axolotl), which
// carries libsignal v3 messages: [SignalMessage] and [PreKeySignalMessage], with
// field numbers and required fields as python-oldmemo's oldmemo.proto
// (libsignal's WhisperTextProtocol.proto), plus the libsignal framing around
// them: a version byte ([LegacyVersion]) before the protobuf and, for a
// SignalMessage, an 8-byte truncated MAC ([LegacyMACSize]) after it. The
// framing lives here, the MAC computation in internal/ratchet: this package
// never calls crypto.
//
// Decoding is strict, in the spirit of crypto/tls's handshake messages: unknown
// fields, repeated fields, fields out of canonical (ascending) order, trailing
// or truncated bytes, non-minimal varints, wrong wire types, varints that do not
// fit in uint32, missing required fields and keys of the wrong length are all
// errors, and every one of them satisfies errors.Is(err, ErrMalformed). So
// every accepted input re-encodes to the very same bytes, which matters
// because MACs cover serialized messages. The single relaxation is the order
// of fields in a [PreKeySignalMessage] (see its doc).
//
// Encoding emits fields in ascending field-number order, as python's and
// Java's protobuf runtimes do, and emits every present field even when it
// holds a zero value (proto2 explicit presence).
//
// Most callers want internal/ratchet, which builds and parses these messages;
// the OMEMO engine uses [OMEMOKeyExchange] and [PreKeySignalMessage] directly.
package wire
