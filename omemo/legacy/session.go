package legacy

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"

	"hush.im/internal/ratchet"
	"hush.im/internal/wire"
	"hush.im/internal/x3dh"
	"hush.im/internal/xeddsa"
)

// serialize returns KeyType ‖ key, libsignal's encoding of a public key.
func serialize(key []byte) []byte {
	return append([]byte{KeyType}, key...)
}

// SignSignedPreKey returns the signedPreKeySignature for a bundle: the
// identity key's libsignal signature over the 33-byte serialized signed
// prekey KeyType ‖ signedPreKey, with the sign bit of the identity key's
// Ed25519 form in bit 7 of byte 63 (DIGEST §5.1, §5.6). hush identity keys
// have sign bit 0, so this is also a valid XEdDSA signature. signedPreKey is
// the raw 32-byte X25519 public key. The signature differs from the OMEMO 2
// one (XEP-0384 0.9 signs the raw 32 bytes), so a device keeps both.
func SignSignedPreKey(identity *xeddsa.PrivateKey, signedPreKey []byte) ([]byte, error) {
	pub, err := ecdh.X25519().NewPublicKey(signedPreKey)
	if err != nil {
		return nil, fmt.Errorf("legacy: signed prekey: %w", err)
	}
	return x3dh.Legacy.SignPreKey(identity, pub)
}

// VerifyBundle checks a bundle's keys and its signedPreKeySignature as
// Initiate does (X3DH §3.3), without building anything: nil, ErrBadSignature,
// or an error wrapping ErrInvalidBundle.
func VerifyBundle(b *Bundle) error {
	if b == nil {
		return fmt.Errorf("%w: nil bundle", ErrInvalidBundle)
	}
	err := x3dh.Legacy.VerifyPreKey(serialize(b.IdentityKey), serialize(b.SignedPreKey), b.SignedPreKeySignature)
	return bundleError(err)
}

func bundleError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, x3dh.ErrBadSignature):
		return ErrBadSignature
	default:
		return fmt.Errorf("%w: %w", ErrInvalidBundle, err)
	}
}

// Ed25519IdentityKey converts a legacy identity key (raw Curve25519) to the
// Ed25519 form that OMEMO 2 and python-omemo's trust records use, given the
// sign bit that legacy OMEMO does not transmit with the key itself: for a
// bundle, Bundle.SignBit (python-oldmemo parse_bundle); for a key exchange,
// the sign bit of the sender's bundle or of its OMEMO 2 identity key
// (python-oldmemo parse_message). Invalid keys give ErrMalformed.
func Ed25519IdentityKey(identityKey []byte, signBit byte) ([]byte, error) {
	ed, err := xeddsa.Curve25519PublicToEd25519(identityKey, signBit&1)
	if err != nil {
		return nil, malformed("identity key: %v", err)
	}
	return ed, nil
}

// ChoosePreKey returns the id of a prekey of b chosen uniformly at random
// (XEP-0384 0.3 §Building a session: "A random preKeyPublic entry is
// selected"), never id 0 (DESIGN: Converse.js publishes and mishandles it).
// It returns ErrNoPreKey when there is no other.
func ChoosePreKey(b *Bundle) (uint32, error) {
	var ids []uint32
	for _, pk := range b.PreKeys {
		if pk.ID != 0 {
			ids = append(ids, pk.ID)
		}
	}
	if len(ids) == 0 {
		return 0, ErrNoPreKey
	}
	i, err := rand.Int(rand.Reader, big.NewInt(int64(len(ids))))
	if err != nil {
		return 0, fmt.Errorf("legacy: choosing a prekey: %w", err)
	}
	return ids[i.Int64()], nil
}

// Session is the libsignal session with one remote device (XEP-0384 0.3
// §Building a session): the Double Ratchet state (internal/ratchet.Legacy),
// both identity keys and the X3DH header of the key exchange that built it.
//
// The initiator — the device that fetched the peer's bundle — wraps every
// message in a PreKeySignalMessage until it has decrypted one from the peer
// (libsignal's "unacknowledged prekey message", python-oldmemo's
// unconfirmed session). The responder is created by Respond from that key
// exchange.
//
// Methods are not safe for concurrent use. Encrypt and Decrypt change the
// session only when they succeed. A session persists with MarshalBinary;
// the serialized form holds the ratchet secrets and must be stored as
// secretly as the identity key.
type Session struct {
	r         *ratchet.Session
	initiator bool
	confirmed bool

	ownIK  [PublicKeySize]byte // own identity key, Curve25519
	peerIK [PublicKeySize]byte // peer's identity key, Curve25519
	// The X3DH header: the initiator's ephemeral ("base") key and the ids
	// of the responder's signed prekey and one-time prekey that were used.
	baseKey        [PublicKeySize]byte
	preKeyID       uint32
	signedPreKeyID uint32
}

// Initiate builds a session with a remote device from its bundle, as the
// initiator, with the bundle's prekey preKeyID (see ChoosePreKey): it checks
// the keys, verifies the signed prekey signature with the bundle's identity
// key before any other computation (X3DH §3.3, libsignal's curve25519
// signature over the 33-byte signed prekey), runs X3DH with libsignal's
// parameters (internal/x3dh.Legacy) and starts the Double Ratchet
// (internal/ratchet.Legacy) on the signed prekey. own is this device's
// identity key.
//
// Errors: ErrBadSignature, ErrNoPreKey (preKeyID 0), or another error
// wrapping ErrInvalidBundle (no such prekey, malformed or low-order keys).
// Removing the used prekey from the cached bundle is the caller's job.
func Initiate(own *xeddsa.PrivateKey, b *Bundle, preKeyID uint32) (*Session, error) {
	if own == nil {
		return nil, errors.New("legacy: nil identity key")
	}
	if b == nil {
		return nil, fmt.Errorf("%w: nil bundle", ErrInvalidBundle)
	}
	if preKeyID == 0 {
		return nil, ErrNoPreKey
	}
	pk := b.PreKey(preKeyID)
	if pk == nil {
		return nil, fmt.Errorf("%w: no prekey %d", ErrInvalidBundle, preKeyID)
	}
	in, err := x3dh.Legacy.Initiate(own, &x3dh.Bundle{
		IdentityKey:           serialize(b.IdentityKey),
		SignedPreKey:          serialize(b.SignedPreKey),
		SignedPreKeySignature: b.SignedPreKeySignature,
		SignedPreKeyID:        b.SignedPreKeyID,
		PreKey:                serialize(pk),
		PreKeyID:              preKeyID,
	})
	if err != nil {
		return nil, bundleError(err)
	}
	defer clear(in.SharedSecret)
	r, err := ratchet.NewInitiator(ratchet.Legacy, in.SharedSecret, in.AssociatedData, b.SignedPreKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidBundle, err)
	}
	s := &Session{
		r:              r,
		initiator:      true,
		preKeyID:       preKeyID,
		signedPreKeyID: b.SignedPreKeyID,
	}
	copy(s.ownIK[:], own.Curve25519Public())
	copy(s.peerIK[:], b.IdentityKey)
	copy(s.baseKey[:], in.Ephemeral[1:]) // Ephemeral is KeyType ‖ key
	return s, nil
}

// KeyExchange is the header of a received PreKeySignalMessage (libsignal
// WhisperTextProtocol.proto; the content of a <key prekey='true'>): which
// of this device's prekeys the sender used, and the sender's identity and
// base keys. It is not authenticated until Respond or
// Session.DecryptKeyExchange succeeds.
type KeyExchange struct {
	// PreKeyID and SignedPreKeyID name this device's one-time prekey and
	// signed prekey that were used.
	PreKeyID       uint32
	SignedPreKeyID uint32
	// IdentityKey is the sender's identity key and BaseKey its X3DH
	// ephemeral key, raw 32-byte Curve25519.
	IdentityKey []byte
	BaseKey     []byte
	// RegistrationID is libsignal's registration id, present when
	// HasRegistrationID (Conversations sends its device id,
	// python-oldmemo and hush send nothing). It is informational.
	RegistrationID    uint32
	HasRegistrationID bool

	message []byte // framed SignalMessage
}

// SignalMessage returns a copy of the framed SignalMessage the key exchange
// carries (what Session.DecryptKeyExchange decrypts), for a replay record
// that does not depend on how the header was encoded.
func (k *KeyExchange) SignalMessage() []byte { return bytes.Clone(k.message) }

// ParseKeyExchange parses the content of a <key prekey='true'>: the
// version byte 0x33 and a PreKeySignalMessage (DIGEST §5.4). It is strict
// (internal/wire): a wrong version byte, keys that are not 33 bytes
// starting with KeyType, a missing prekey id or any other required field
// are errors wrapping ErrMalformed. The embedded SignalMessage is checked
// when it is decrypted.
func ParseKeyExchange(data []byte) (*KeyExchange, error) {
	var m wire.PreKeySignalMessage
	if err := m.UnmarshalFramed(data); err != nil {
		return nil, fmt.Errorf("%w: key exchange: %w", ErrMalformed, err)
	}
	return &KeyExchange{
		PreKeyID:          m.PreKeyID,
		SignedPreKeyID:    m.SignedPreKeyID,
		IdentityKey:       m.IdentityKey,
		BaseKey:           m.BaseKey,
		RegistrationID:    m.RegistrationID,
		HasRegistrationID: m.HasRegistrationID,
		message:           m.Message,
	}, nil
}

// Respond builds a session from a received key exchange, as the responder
// (XEP-0384 0.3 §Receiving a message; X3DH §3.4), and decrypts the message
// it carries. own is this device's identity key; signedPreKey and preKey
// are the private keys of this device's signed prekey kex.SignedPreKeyID
// and one-time prekey kex.PreKeyID, which the caller looks up (a missing
// one is a failure to decrypt: python-oldmemo refuses key exchanges
// without a prekey). It returns the session and the decrypted key material.
//
// Every failure caused by the message is ErrDecryption. Nothing is
// consumed: deleting the used prekey, replacing an older session with the
// same device and checking the sender's identity key against what is known
// about the device are the caller's job, once the payload has been
// authenticated too.
func Respond(own *xeddsa.PrivateKey, kex *KeyExchange, signedPreKey, preKey *ecdh.PrivateKey) (*Session, []byte, error) {
	if own == nil || kex == nil || signedPreKey == nil || preKey == nil {
		return nil, nil, errors.New("legacy: Respond needs the identity key, a key exchange, a signed prekey and a prekey")
	}
	if len(kex.IdentityKey) != PublicKeySize || len(kex.BaseKey) != PublicKeySize {
		return nil, nil, ErrDecryption
	}
	ss, ad, err := x3dh.Legacy.Respond(own, signedPreKey, preKey, serialize(kex.IdentityKey), serialize(kex.BaseKey))
	if err != nil {
		return nil, nil, ErrDecryption
	}
	defer clear(ss)
	r, err := ratchet.NewResponder(ratchet.Legacy, ss, ad, signedPreKey)
	if err != nil {
		return nil, nil, ErrDecryption
	}
	material, err := r.Decrypt(kex.message)
	if err != nil {
		return nil, nil, decryptError(err)
	}
	s := &Session{
		r:              r,
		preKeyID:       kex.PreKeyID,
		signedPreKeyID: kex.SignedPreKeyID,
	}
	copy(s.ownIK[:], own.Curve25519Public())
	copy(s.peerIK[:], kex.IdentityKey)
	copy(s.baseKey[:], kex.BaseKey)
	return s, material, nil
}

// decryptError maps a ratchet failure to this package's errors.
func decryptError(err error) error {
	switch {
	case errors.Is(err, ratchet.ErrDuplicate):
		return ErrDuplicate
	case errors.Is(err, ratchet.ErrAuthentication):
		return ErrDecryption
	default:
		// Not caused by the message (randomness failure).
		return fmt.Errorf("legacy: %w", err)
	}
}

// Encrypt encrypts key material for the peer (KeyMaterialSize bytes for a
// message, PayloadKeySize for a KeyTransportElement) and returns the
// content of its <key> element and whether that is a PreKeySignalMessage,
// to be marked prekey='true' (XEP-0384 0.3 §Sending a message). It is a
// PreKeySignalMessage — without registrationId, as python-oldmemo writes
// it — while the session is an initiator that has not heard from the peer
// yet. Encrypt advances the sending chain.
func (s *Session) Encrypt(keyMaterial []byte) (data []byte, preKey bool, err error) {
	if s == nil || s.r == nil {
		return nil, false, errors.New("legacy: uninitialized session")
	}
	msg, err := s.r.Encrypt(keyMaterial)
	if err != nil {
		return nil, false, fmt.Errorf("legacy: %w", err)
	}
	if !s.initiator || s.confirmed {
		return msg, false, nil
	}
	m := wire.PreKeySignalMessage{
		PreKeyID:       s.preKeyID,
		SignedPreKeyID: s.signedPreKeyID,
		BaseKey:        s.baseKey[:],
		IdentityKey:    s.ownIK[:],
		Message:        msg,
	}
	return m.MarshalFramed(), true, nil
}

// Decrypt decrypts the content of a <key> element without prekey='true'
// (a SignalMessage) and returns the key material. A success confirms an
// initiator's session: later messages are plain SignalMessages. Every
// failure is ErrDecryption (ErrDuplicate for a message key already used),
// and leaves the session unchanged.
func (s *Session) Decrypt(data []byte) ([]byte, error) {
	if s == nil || s.r == nil {
		return nil, ErrDecryption
	}
	material, err := s.r.Decrypt(data)
	if err != nil {
		return nil, decryptError(err)
	}
	s.confirmed = true
	return material, nil
}

// Matches reports whether kex is the key exchange that built this session
// as responder — the initiator repeats it until it hears back — so that it
// is decrypted with DecryptKeyExchange instead of building a new session
// from a prekey that is gone (python-oldmemo builds_same_session: same
// identity key, base key, signed prekey id and prekey id). It is false for
// an initiator's session: a key exchange from the peer then replaces it.
func (s *Session) Matches(kex *KeyExchange) bool {
	return s != nil && s.r != nil && kex != nil && !s.initiator &&
		kex.PreKeyID == s.preKeyID && kex.SignedPreKeyID == s.signedPreKeyID &&
		bytes.Equal(kex.IdentityKey, s.peerIK[:]) && bytes.Equal(kex.BaseKey, s.baseKey[:])
}

// DecryptKeyExchange decrypts the message of a repeated key exchange that
// Matches this session. A key exchange that does not match is
// ErrDecryption; otherwise as Decrypt.
func (s *Session) DecryptKeyExchange(kex *KeyExchange) ([]byte, error) {
	if !s.Matches(kex) {
		return nil, ErrDecryption
	}
	return s.Decrypt(kex.message)
}

// Initiator reports whether this device built the session from the peer's
// bundle.
func (s *Session) Initiator() bool { return s.initiator }

// Confirmed reports whether the session sends plain SignalMessages: always
// for a responder, for an initiator once it decrypted a message from the
// peer.
func (s *Session) Confirmed() bool { return !s.initiator || s.confirmed }

// PeerIdentityKey returns the peer's identity key, raw 32-byte Curve25519
// (see Ed25519IdentityKey for the form trust records use).
func (s *Session) PeerIdentityKey() []byte { return bytes.Clone(s.peerIK[:]) }

// PreKeyID returns the id of the one-time prekey the key exchange used:
// the peer's for an initiator, this device's for a responder.
func (s *Session) PreKeyID() uint32 { return s.preKeyID }

// SignedPreKeyID returns the id of the signed prekey the key exchange used.
func (s *Session) SignedPreKeyID() uint32 { return s.signedPreKeyID }

// ReceivedSinceLastSend returns the number of messages decrypted since the
// session last encrypted one.
func (s *Session) ReceivedSinceLastSend() int {
	if s.r == nil {
		return 0
	}
	return s.r.ReceivedSinceLastSend()
}

// SendingChainLength returns the number of messages encrypted on the
// current sending chain.
func (s *Session) SendingChainLength() int {
	if s.r == nil {
		return 0
	}
	return s.r.SendingChainLength()
}

// ReceivingChainLength returns the length of the current receiving chain.
// python-omemo sends a heartbeat (an empty message) to a legacy device too
// once it exceeds ratchet.HeartbeatThreshold, once per peer ratchet key
// (see PeerRatchetKey).
func (s *Session) ReceivingChainLength() int {
	if s.r == nil {
		return 0
	}
	return s.r.ReceivingChainLength()
}

// PeerRatchetKey returns the peer's current ratchet public key (raw 32
// bytes), or nil before the first message from the peer.
func (s *Session) PeerRatchetKey() []byte {
	if s.r != nil && (!s.initiator || s.confirmed) {
		return s.r.PeerRatchetKey()
	}
	return nil // the initiator's only peer key so far is the signed prekey
}

// Clone returns an independent copy of s, for computing a candidate state
// that is committed only when a whole message has been authenticated.
func (s *Session) Clone() *Session {
	c := *s
	if s.r != nil {
		c.r = s.r.Clone()
	}
	return &c
}

// Serialized session format, version 1:
//
//	version 1 | flags 1 (bit 0 initiator, bit 1 confirmed) |
//	own identity key 32 | peer identity key 32 | base key 32 |
//	prekey id 4 | signed prekey id 4 (big-endian) |
//	ratchet state (internal/ratchet, profile Legacy) to the end
const (
	sessionVersion    = 1
	flagInitiator     = 1 << 0
	flagConfirmed     = 1 << 1
	sessionHeaderSize = 2 + 3*PublicKeySize + 4 + 4
)

// ErrInvalidSession is returned by UnmarshalBinary for data that is not a
// session written by MarshalBinary. It wraps ErrMalformed.
var ErrInvalidSession = fmt.Errorf("%w: invalid serialized session", ErrMalformed)

// MarshalBinary encodes the session in an explicit, versioned format,
// ratchet secrets included.
func (s *Session) MarshalBinary() ([]byte, error) {
	if s == nil || s.r == nil {
		return nil, errors.New("legacy: marshaling an uninitialized session")
	}
	st, err := s.r.MarshalBinary()
	if err != nil {
		return nil, err
	}
	var flags byte
	if s.initiator {
		flags |= flagInitiator
		if s.confirmed {
			flags |= flagConfirmed
		}
	}
	b := make([]byte, 0, sessionHeaderSize+len(st))
	b = append(b, sessionVersion, flags)
	b = append(b, s.ownIK[:]...)
	b = append(b, s.peerIK[:]...)
	b = append(b, s.baseKey[:]...)
	b = binary.BigEndian.AppendUint32(b, s.preKeyID)
	b = binary.BigEndian.AppendUint32(b, s.signedPreKeyID)
	return append(b, st...), nil
}

// UnmarshalBinary decodes a session written by MarshalBinary. It rejects
// unknown versions and flags, a confirmed flag on a responder, truncated
// data, and ratchet state that is invalid, of another profile or of the
// other role (ErrInvalidSession). On error s is unchanged.
func (s *Session) UnmarshalBinary(data []byte) error {
	if len(data) < sessionHeaderSize {
		return fmt.Errorf("%w: %d bytes", ErrInvalidSession, len(data))
	}
	if data[0] != sessionVersion {
		return fmt.Errorf("%w: unknown version %d", ErrInvalidSession, data[0])
	}
	flags := data[1]
	if flags&^(flagInitiator|flagConfirmed) != 0 || flags == flagConfirmed {
		return fmt.Errorf("%w: bad flags %#02x", ErrInvalidSession, flags)
	}
	v := Session{initiator: flags&flagInitiator != 0, confirmed: flags&flagConfirmed != 0}
	p := data[2:]
	copy(v.ownIK[:], p)
	copy(v.peerIK[:], p[PublicKeySize:])
	copy(v.baseKey[:], p[2*PublicKeySize:])
	p = p[3*PublicKeySize:]
	v.preKeyID = binary.BigEndian.Uint32(p)
	v.signedPreKeyID = binary.BigEndian.Uint32(p[4:])
	v.r = new(ratchet.Session)
	if err := v.r.UnmarshalBinary(data[sessionHeaderSize:]); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSession, err)
	}
	if v.r.Profile() != ratchet.Legacy || v.r.Initiator() != v.initiator {
		return fmt.Errorf("%w: ratchet state of another profile or role", ErrInvalidSession)
	}
	*s = v
	return nil
}
