package wire

import "google.golang.org/protobuf/encoding/protowire"

// LegacyVersion is the version byte in front of every libsignal v3 message:
// (3 << 4) | 3, message version 3 and current version 3 (libsignal
// CiphertextMessage.CURRENT_VERSION; python-oldmemo checks for exactly 0x33).
const LegacyVersion = 0x33

// LegacyMACSize is the size of the truncated HMAC-SHA256 tag that ends a
// framed SignalMessage (libsignal SignalMessage.MAC_LENGTH).
const LegacyMACSize = 8

// LegacyKeyType is the type byte libsignal puts in front of every serialized
// Curve25519 public key (libsignal Curve.DJB_TYPE).
const LegacyKeyType = 0x05

// legacyKeySize is the size of a serialized libsignal public key:
// LegacyKeyType ‖ 32-byte Curve25519 key.
const legacyKeySize = 1 + KeySize

// Field numbers of the legacy messages, from oldmemo.proto (python-oldmemo),
// which follows libsignal's WhisperTextProtocol.proto. Required-ness is
// python-oldmemo's.
const (
	signalMessageRatchetKey      = 1 // required bytes (33, 0x05-prefixed)
	signalMessageCounter         = 2 // required uint32
	signalMessagePreviousCounter = 3 // required uint32
	signalMessageCiphertext      = 4 // optional bytes

	preKeyMessagePreKeyID       = 1 // required uint32
	preKeyMessageBaseKey        = 2 // required bytes (33, 0x05-prefixed)
	preKeyMessageIdentityKey    = 3 // required bytes (33, 0x05-prefixed)
	preKeyMessageMessage        = 4 // required bytes (framed SignalMessage)
	preKeyMessageRegistrationID = 5 // optional uint32
	preKeyMessageSignedPreKeyID = 6 // required uint32
)

// legacyKey reads a 0x05-prefixed libsignal public key and returns the raw
// 32-byte key.
func (r *reader) legacyKey(num protowire.Number, typ protowire.Type) ([]byte, error) {
	v, err := r.raw(num, typ)
	if err != nil {
		return nil, err
	}
	if len(v) != legacyKeySize || v[0] != LegacyKeyType {
		return nil, malformed(r.msg, "field %d: not a %d-byte 0x05-prefixed key", num, legacyKeySize)
	}
	return append([]byte{}, v[1:]...), nil
}

func appendLegacyKey(b []byte, num protowire.Number, key []byte) []byte {
	b = appendTagLen(b, num, 1+len(key))
	b = append(b, LegacyKeyType)
	return append(b, key...)
}

// SignalMessage is the Double Ratchet header and ciphertext of a legacy OMEMO
// message (libsignal WhisperTextProtocol.proto, message SignalMessage, formerly
// WhisperMessage; XEP-0384 0.3 §Encrypting/§Decrypting). On the wire it is
// framed: see AppendFramed and ParseFramedSignalMessage.
type SignalMessage struct {
	// RatchetKey is the sender's raw 32-byte Curve25519 ratchet key; the wire
	// form is LegacyKeyType ‖ RatchetKey.
	RatchetKey []byte
	// Counter is the message number in the sending chain, starting at 0.
	Counter uint32
	// PreviousCounter is about the sender's previous sending chain: its length
	// for python-oldmemo, the index of its last message for libsignal.
	PreviousCounter uint32
	// Ciphertext is optional: nil means absent.
	Ciphertext []byte
}

// Size returns the length of m's protobuf encoding (without framing).
func (m *SignalMessage) Size() int {
	n := sizeBytes(signalMessageRatchetKey, 1+len(m.RatchetKey)) +
		sizeUint32(signalMessageCounter, m.Counter) +
		sizeUint32(signalMessagePreviousCounter, m.PreviousCounter)
	if m.Ciphertext != nil {
		n += sizeBytes(signalMessageCiphertext, len(m.Ciphertext))
	}
	return n
}

// Append appends m's protobuf encoding (without framing) to b. It does not
// validate m.
func (m *SignalMessage) Append(b []byte) []byte {
	b = appendLegacyKey(b, signalMessageRatchetKey, m.RatchetKey)
	b = appendUint32(b, signalMessageCounter, m.Counter)
	b = appendUint32(b, signalMessagePreviousCounter, m.PreviousCounter)
	if m.Ciphertext != nil {
		b = appendBytes(b, signalMessageCiphertext, m.Ciphertext)
	}
	return b
}

// Marshal returns m's protobuf encoding, without framing.
func (m *SignalMessage) Marshal() []byte {
	return m.Append(make([]byte, 0, m.Size()))
}

// AppendFramed appends LegacyVersion ‖ protobuf(m) to b: the bytes the
// libsignal MAC covers after the two identity keys. The caller appends the
// LegacyMACSize-byte MAC to complete the wire message.
func (m *SignalMessage) AppendFramed(b []byte) []byte {
	return m.Append(append(b, LegacyVersion))
}

// Unmarshal decodes the protobuf encoding b (without framing) into m,
// strictly. On error m is left zeroed. m never aliases b.
func (m *SignalMessage) Unmarshal(b []byte) error {
	*m = SignalMessage{}
	r, err := newReader("SignalMessage", b, true)
	if err != nil {
		return err
	}
	var v SignalMessage
	for !r.done() {
		num, typ, err := r.tag(bit(signalMessageRatchetKey, signalMessageCounter, signalMessagePreviousCounter, signalMessageCiphertext))
		if err != nil {
			return err
		}
		switch num {
		case signalMessageRatchetKey:
			v.RatchetKey, err = r.legacyKey(num, typ)
		case signalMessageCounter:
			v.Counter, err = r.uint32(num, typ)
		case signalMessagePreviousCounter:
			v.PreviousCounter, err = r.uint32(num, typ)
		case signalMessageCiphertext:
			v.Ciphertext, err = r.bytes(num, typ)
		}
		if err != nil {
			return err
		}
	}
	if err := r.require(bit(signalMessageRatchetKey, signalMessageCounter, signalMessagePreviousCounter)); err != nil {
		return err
	}
	*m = v
	return nil
}

// ParseFramedSignalMessage splits a framed SignalMessage, LegacyVersion ‖
// protobuf ‖ MAC, as found in a legacy <key> element or in the Message field
// of a PreKeySignalMessage. It returns the decoded message, the bytes the MAC
// covers (version byte and protobuf) and the LegacyMACSize-byte MAC; signed
// and mac alias b.
func ParseFramedSignalMessage(b []byte) (m SignalMessage, signed, mac []byte, err error) {
	if len(b) < 1+LegacyMACSize {
		return SignalMessage{}, nil, nil, malformed("SignalMessage", "%d bytes, too short for version and MAC", len(b))
	}
	if b[0] != LegacyVersion {
		return SignalMessage{}, nil, nil, malformed("SignalMessage", "version byte %#02x, want %#02x", b[0], LegacyVersion)
	}
	signed, mac = b[:len(b)-LegacyMACSize], b[len(b)-LegacyMACSize:]
	if err := m.Unmarshal(signed[1:]); err != nil {
		return SignalMessage{}, nil, nil, err
	}
	return m, signed, mac, nil
}

// PreKeySignalMessage is a legacy key exchange: the X3DH header sent with a
// framed SignalMessage until the recipient answers (libsignal
// WhisperTextProtocol.proto, message PreKeySignalMessage, formerly
// PreKeyWhisperMessage). On the wire it is LegacyVersion ‖ protobuf, without a
// MAC: see MarshalFramed and UnmarshalFramed.
//
// Unlike every other message here, its fields are accepted in any order
// (still without repeats): libsignal-protocol-javascript's ProtoBuf.js emits
// them in declaration order (5, 1, 6, 2, 3, 4). Nothing authenticates these
// bytes as a whole, so the relaxation is harmless; Marshal always emits
// ascending order.
type PreKeySignalMessage struct {
	// RegistrationID is optional; HasRegistrationID says whether it is
	// present. libsignal sets it (Conversations: the sender's device id);
	// python-oldmemo leaves it out.
	RegistrationID    uint32
	HasRegistrationID bool
	// PreKeyID is the id of the recipient's one-time PreKey that was used.
	// libsignal makes it optional; python-oldmemo (and OMEMO, which always
	// uses a PreKey) requires it.
	PreKeyID uint32
	// SignedPreKeyID is the id of the recipient's signed PreKey that was used.
	SignedPreKeyID uint32
	// BaseKey is the sender's X3DH ephemeral key, raw 32-byte Curve25519; the
	// wire form is 0x05-prefixed.
	BaseKey []byte
	// IdentityKey is the sender's identity key, raw 32-byte Curve25519; the
	// wire form is 0x05-prefixed.
	IdentityKey []byte
	// Message is a framed SignalMessage (see ParseFramedSignalMessage).
	// Unmarshal does not decode it.
	Message []byte
}

// Size returns the length of m's protobuf encoding (without the version byte).
func (m *PreKeySignalMessage) Size() int {
	n := sizeUint32(preKeyMessagePreKeyID, m.PreKeyID) +
		sizeBytes(preKeyMessageBaseKey, 1+len(m.BaseKey)) +
		sizeBytes(preKeyMessageIdentityKey, 1+len(m.IdentityKey)) +
		sizeBytes(preKeyMessageMessage, len(m.Message)) +
		sizeUint32(preKeyMessageSignedPreKeyID, m.SignedPreKeyID)
	if m.HasRegistrationID {
		n += sizeUint32(preKeyMessageRegistrationID, m.RegistrationID)
	}
	return n
}

// Append appends m's protobuf encoding (without the version byte) to b, in
// ascending field order. It does not validate m.
func (m *PreKeySignalMessage) Append(b []byte) []byte {
	b = appendUint32(b, preKeyMessagePreKeyID, m.PreKeyID)
	b = appendLegacyKey(b, preKeyMessageBaseKey, m.BaseKey)
	b = appendLegacyKey(b, preKeyMessageIdentityKey, m.IdentityKey)
	b = appendBytes(b, preKeyMessageMessage, m.Message)
	if m.HasRegistrationID {
		b = appendUint32(b, preKeyMessageRegistrationID, m.RegistrationID)
	}
	return appendUint32(b, preKeyMessageSignedPreKeyID, m.SignedPreKeyID)
}

// Marshal returns m's protobuf encoding, without the version byte.
func (m *PreKeySignalMessage) Marshal() []byte {
	return m.Append(make([]byte, 0, m.Size()))
}

// MarshalFramed returns LegacyVersion ‖ protobuf(m), the content of a legacy
// <key prekey="true"> element.
func (m *PreKeySignalMessage) MarshalFramed() []byte {
	return m.Append(append(make([]byte, 0, 1+m.Size()), LegacyVersion))
}

// Unmarshal decodes the protobuf encoding b (without the version byte) into
// m. It is strict except for field order (see the type's doc). On error m is
// left zeroed. m never aliases b.
func (m *PreKeySignalMessage) Unmarshal(b []byte) error {
	*m = PreKeySignalMessage{}
	r, err := newReader("PreKeySignalMessage", b, false)
	if err != nil {
		return err
	}
	var v PreKeySignalMessage
	for !r.done() {
		num, typ, err := r.tag(bit(preKeyMessagePreKeyID, preKeyMessageBaseKey, preKeyMessageIdentityKey,
			preKeyMessageMessage, preKeyMessageRegistrationID, preKeyMessageSignedPreKeyID))
		if err != nil {
			return err
		}
		switch num {
		case preKeyMessagePreKeyID:
			v.PreKeyID, err = r.uint32(num, typ)
		case preKeyMessageBaseKey:
			v.BaseKey, err = r.legacyKey(num, typ)
		case preKeyMessageIdentityKey:
			v.IdentityKey, err = r.legacyKey(num, typ)
		case preKeyMessageMessage:
			v.Message, err = r.bytes(num, typ)
		case preKeyMessageRegistrationID:
			v.RegistrationID, err = r.uint32(num, typ)
			v.HasRegistrationID = true
		case preKeyMessageSignedPreKeyID:
			v.SignedPreKeyID, err = r.uint32(num, typ)
		}
		if err != nil {
			return err
		}
	}
	if err := r.require(bit(preKeyMessagePreKeyID, preKeyMessageBaseKey, preKeyMessageIdentityKey,
		preKeyMessageMessage, preKeyMessageSignedPreKeyID)); err != nil {
		return err
	}
	*m = v
	return nil
}

// UnmarshalFramed decodes LegacyVersion ‖ protobuf, the content of a legacy
// <key prekey="true"> element, into m.
func (m *PreKeySignalMessage) UnmarshalFramed(b []byte) error {
	*m = PreKeySignalMessage{}
	if len(b) < 1 || b[0] != LegacyVersion {
		return malformed("PreKeySignalMessage", "missing version byte %#02x", LegacyVersion)
	}
	return m.Unmarshal(b[1:])
}
