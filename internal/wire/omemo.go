package wire

// Field numbers of the OMEMO 2 messages, from twomemo.proto (python-twomemo)
// and XEP-0384 §Protobuf Schemas.
const (
	omemoMessageN          = 1 // required uint32
	omemoMessagePN         = 2 // required uint32
	omemoMessageDHPub      = 3 // required bytes
	omemoMessageCiphertext = 4 // optional bytes

	authMessageMAC     = 1 // required bytes
	authMessageMessage = 2 // required bytes

	keyExchangePKID    = 1 // required uint32
	keyExchangeSPKID   = 2 // required uint32
	keyExchangeIK      = 3 // required bytes
	keyExchangeEK      = 4 // required bytes
	keyExchangeMessage = 5 // required OMEMOAuthenticatedMessage
)

// OMEMOMessage is the Double Ratchet header and ciphertext of one OMEMO 2
// message (XEP-0384 §Protobuf Schemas, message OMEMOMessage).
type OMEMOMessage struct {
	// N is the message number in the sending chain, starting at 0.
	N uint32
	// PN is the length of the sender's previous sending chain.
	PN uint32
	// DHPub is the sender's ratchet public key, a raw 32-byte X25519 key.
	DHPub []byte
	// Ciphertext is optional: nil means absent (the form used inside the
	// associated data), a non-nil empty slice is present and empty.
	Ciphertext []byte
}

// Size returns the length of m's encoding.
func (m *OMEMOMessage) Size() int {
	n := sizeUint32(omemoMessageN, m.N) + sizeUint32(omemoMessagePN, m.PN) +
		sizeBytes(omemoMessageDHPub, len(m.DHPub))
	if m.Ciphertext != nil {
		n += sizeBytes(omemoMessageCiphertext, len(m.Ciphertext))
	}
	return n
}

// Append appends m's encoding to b. It does not validate m: a DHPub of the
// wrong length is encoded as is and rejected by Unmarshal.
func (m *OMEMOMessage) Append(b []byte) []byte {
	b = appendUint32(b, omemoMessageN, m.N)
	b = appendUint32(b, omemoMessagePN, m.PN)
	b = appendBytes(b, omemoMessageDHPub, m.DHPub)
	if m.Ciphertext != nil {
		b = appendBytes(b, omemoMessageCiphertext, m.Ciphertext)
	}
	return b
}

// Marshal returns m's encoding, byte for byte what python's protobuf
// SerializeToString gives for the same values.
func (m *OMEMOMessage) Marshal() []byte {
	return m.Append(make([]byte, 0, m.Size()))
}

// Unmarshal decodes b into m, strictly (see the package doc). On error m is
// left zeroed. m never aliases b.
func (m *OMEMOMessage) Unmarshal(b []byte) error {
	*m = OMEMOMessage{}
	r, err := newReader("OMEMOMessage", b, true)
	if err != nil {
		return err
	}
	var v OMEMOMessage
	for !r.done() {
		num, typ, err := r.tag(bit(omemoMessageN, omemoMessagePN, omemoMessageDHPub, omemoMessageCiphertext))
		if err != nil {
			return err
		}
		switch num {
		case omemoMessageN:
			v.N, err = r.uint32(num, typ)
		case omemoMessagePN:
			v.PN, err = r.uint32(num, typ)
		case omemoMessageDHPub:
			v.DHPub, err = r.key(num, typ, KeySize)
		case omemoMessageCiphertext:
			v.Ciphertext, err = r.bytes(num, typ)
		}
		if err != nil {
			return err
		}
	}
	if err := r.require(bit(omemoMessageN, omemoMessagePN, omemoMessageDHPub)); err != nil {
		return err
	}
	*m = v
	return nil
}

// OMEMOAuthenticatedMessage is an OMEMOMessage with its truncated
// authentication tag (XEP-0384 §Protobuf Schemas, message
// OMEMOAuthenticatedMessage). The tag covers the exact bytes of Message, so
// Message is kept serialized: never re-encode it.
type OMEMOAuthenticatedMessage struct {
	// MAC is the HMAC-SHA-256 tag truncated to MACSize bytes.
	MAC []byte
	// Message is a serialized OMEMOMessage. Unmarshal does not decode it.
	Message []byte
}

// Size returns the length of m's encoding.
func (m *OMEMOAuthenticatedMessage) Size() int {
	return sizeBytes(authMessageMAC, len(m.MAC)) + sizeBytes(authMessageMessage, len(m.Message))
}

// Append appends m's encoding to b. It does not validate m.
func (m *OMEMOAuthenticatedMessage) Append(b []byte) []byte {
	b = appendBytes(b, authMessageMAC, m.MAC)
	return appendBytes(b, authMessageMessage, m.Message)
}

// Marshal returns m's encoding.
func (m *OMEMOAuthenticatedMessage) Marshal() []byte {
	return m.Append(make([]byte, 0, m.Size()))
}

// Unmarshal decodes b into m, strictly; MAC must be MACSize bytes. On error m
// is left zeroed. m never aliases b.
func (m *OMEMOAuthenticatedMessage) Unmarshal(b []byte) error {
	*m = OMEMOAuthenticatedMessage{}
	r, err := newReader("OMEMOAuthenticatedMessage", b, true)
	if err != nil {
		return err
	}
	var v OMEMOAuthenticatedMessage
	for !r.done() {
		num, typ, err := r.tag(bit(authMessageMAC, authMessageMessage))
		if err != nil {
			return err
		}
		switch num {
		case authMessageMAC:
			v.MAC, err = r.key(num, typ, MACSize)
		case authMessageMessage:
			v.Message, err = r.bytes(num, typ)
		}
		if err != nil {
			return err
		}
	}
	if err := r.require(bit(authMessageMAC, authMessageMessage)); err != nil {
		return err
	}
	*m = v
	return nil
}

// OMEMOKeyExchange is the X3DH header sent with an OMEMOAuthenticatedMessage
// until the recipient answers (XEP-0384 §Double Ratchet, §Protobuf Schemas,
// message OMEMOKeyExchange).
type OMEMOKeyExchange struct {
	// PKID is the id of the recipient's one-time PreKey that was used.
	PKID uint32
	// SPKID is the id of the recipient's signed PreKey that was used.
	SPKID uint32
	// IK is the sender's identity key in Ed25519 form (32 bytes).
	IK []byte
	// EK is the sender's X3DH ephemeral key, a raw 32-byte X25519 key.
	EK []byte
	// Message is the embedded Double Ratchet message.
	Message OMEMOAuthenticatedMessage
}

// Size returns the length of m's encoding.
func (m *OMEMOKeyExchange) Size() int {
	return sizeUint32(keyExchangePKID, m.PKID) + sizeUint32(keyExchangeSPKID, m.SPKID) +
		sizeBytes(keyExchangeIK, len(m.IK)) + sizeBytes(keyExchangeEK, len(m.EK)) +
		sizeBytes(keyExchangeMessage, m.Message.Size())
}

// Append appends m's encoding to b. It does not validate m.
func (m *OMEMOKeyExchange) Append(b []byte) []byte {
	b = appendUint32(b, keyExchangePKID, m.PKID)
	b = appendUint32(b, keyExchangeSPKID, m.SPKID)
	b = appendBytes(b, keyExchangeIK, m.IK)
	b = appendBytes(b, keyExchangeEK, m.EK)
	b = appendTagLen(b, keyExchangeMessage, m.Message.Size())
	return m.Message.Append(b)
}

// Marshal returns m's encoding.
func (m *OMEMOKeyExchange) Marshal() []byte {
	return m.Append(make([]byte, 0, m.Size()))
}

// Unmarshal decodes b into m, strictly, including the embedded
// OMEMOAuthenticatedMessage. On error m is left zeroed. m never aliases b.
func (m *OMEMOKeyExchange) Unmarshal(b []byte) error {
	*m = OMEMOKeyExchange{}
	r, err := newReader("OMEMOKeyExchange", b, true)
	if err != nil {
		return err
	}
	var v OMEMOKeyExchange
	for !r.done() {
		num, typ, err := r.tag(bit(keyExchangePKID, keyExchangeSPKID, keyExchangeIK, keyExchangeEK, keyExchangeMessage))
		if err != nil {
			return err
		}
		switch num {
		case keyExchangePKID:
			v.PKID, err = r.uint32(num, typ)
		case keyExchangeSPKID:
			v.SPKID, err = r.uint32(num, typ)
		case keyExchangeIK:
			v.IK, err = r.key(num, typ, KeySize)
		case keyExchangeEK:
			v.EK, err = r.key(num, typ, KeySize)
		case keyExchangeMessage:
			var inner []byte
			if inner, err = r.raw(num, typ); err == nil {
				err = v.Message.Unmarshal(inner)
			}
		}
		if err != nil {
			return err
		}
	}
	if err := r.require(bit(keyExchangePKID, keyExchangeSPKID, keyExchangeIK, keyExchangeEK, keyExchangeMessage)); err != nil {
		return err
	}
	*m = v
	return nil
}
