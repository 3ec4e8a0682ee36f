// Package x3dh implements the X3DH key agreement (Signal, "The X3DH Key
// Agreement Protocol", revision 1, 2016-11-04) in the two profiles hush
// speaks, one code path parameterised by a [Profile]:
//
//   - [OMEMO2]: OMEMO 2, XEP-0384 0.9 §Key Exchange, namespace
//     urn:xmpp:omemo:2, exactly as python-x3dh with python-twomemo's StateImpl
//     does it (DIGEST §4.3);
//   - [Legacy]: legacy OMEMO, XEP-0384 0.3, namespace
//     eu.siacs.conversations.axolotl, i.e. libsignal-protocol v3, as
//     python-oldmemo's StateImpl does it (DIGEST §5.1, §5.5, §5.6).
//
// The initiator ("Alice") calls [Profile.Initiate] with a peer's bundle; the
// responder ("Bob") calls [Profile.Respond] with the key exchange header it
// received. Both get the same shared secret SK and associated data AD, which
// seed the Double Ratchet (internal/ratchet).
//
// This is a low-level package; most callers want the omemo package.
package x3dh

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"hush.im/internal/xeddsa"
)

const (
	// SharedSecretSize is the size of SK: python-x3dh always derives 32 bytes
	// (DIGEST §4.3). For the legacy profile these are libsignal's root key,
	// the first half of its 64-byte "WhisperText" output (DIGEST §5.5): HKDF
	// output is prefix-stable, and the second half (Bob's initial sending
	// chain key) is never used in OMEMO, because Bob replaces that chain with
	// a DH ratchet step before he first sends.
	SharedSecretSize = 32
	// SignatureSize is the size of a signed prekey signature.
	SignatureSize = xeddsa.SignatureSize
	// keySize is the size of a raw X25519 or Ed25519 public key.
	keySize = xeddsa.PublicKeySize
	// djbType is libsignal's key type byte for Curve25519 public keys
	// (libsignal-protocol-java Curve.DJB_TYPE), DIGEST §5.1.
	djbType = 0x05
)

// ffPrefix is the 32 bytes of 0xFF that X3DH §2.2 (curve X25519) prepends to
// the DH outputs in the KDF input.
var ffPrefix = [32]byte{
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
}

// hkdfSalt is the HKDF salt of X3DH §2.2: zero bytes of the hash length
// (SHA-256 for both profiles).
var hkdfSalt [sha256.Size]byte

var (
	// ErrBadSignature is returned when the signed prekey signature does not
	// verify under the bundle's identity key (X3DH §3.3). Nothing else is
	// computed in that case.
	ErrBadSignature = errors.New("x3dh: invalid signed prekey signature")
	// ErrMissingPreKey is returned when a profile that requires a one-time
	// prekey gets none (XEP-0384 0.9 §Key Exchange: "All key exchanges MUST
	// use a PreKey").
	ErrMissingPreKey = errors.New("x3dh: key exchange without a one-time prekey")
	// ErrLowOrder is returned when a Diffie-Hellman output is all zeros,
	// which happens exactly when the peer's public key is of low order
	// (RFC 7748 §6.1; crypto/ecdh refuses it).
	ErrLowOrder = errors.New("x3dh: low-order public key (all-zero Diffie-Hellman output)")
	// ErrInvalidKey is matched (with errors.Is) by every [KeyError].
	ErrInvalidKey = errors.New("x3dh: invalid key")
	// errZeroProfile is returned by methods of a Profile that is not one of
	// the package's profiles.
	errZeroProfile = errors.New("x3dh: uninitialised Profile (use x3dh.OMEMO2 or x3dh.Legacy)")
)

// KeyError reports a malformed or unacceptable public key, naming which one.
// It matches [ErrInvalidKey] and the underlying cause (for example
// xeddsa.ErrSmallOrder) with errors.Is.
type KeyError struct {
	// Key names the key: "identity key", "signed prekey", "one-time prekey",
	// "ephemeral key", or a private key argument.
	Key string
	// Err is the cause.
	Err error
}

// Error implements error; it names the key but never includes key material.
func (e *KeyError) Error() string { return "x3dh: invalid " + e.Key + ": " + e.Err.Error() }

// Unwrap returns ErrInvalidKey and the cause.
func (e *KeyError) Unwrap() []error { return []error{ErrInvalidKey, e.Err} }

// Profile holds the parameters that distinguish one X3DH deployment from
// another: the info string, how public keys and identity keys are encoded,
// how the signed prekey is signed, and whether a one-time prekey is
// mandatory. Use [OMEMO2] or [Legacy]; the zero Profile is unusable.
type Profile struct {
	name string
	// info is the HKDF info string (X3DH §2.1 "info").
	info string
	// prefix is prepended to every Curve25519 public key encoding: nil for
	// OMEMO 2 (raw u), {0x05} for libsignal.
	prefix []byte
	// ed25519Identity is true when identity keys travel in their Ed25519 form
	// (OMEMO 2) rather than their Curve25519 form (libsignal).
	ed25519Identity bool
	// requirePreKey rejects key exchanges without a one-time prekey.
	requirePreKey bool
	// sign signs the encoded signed prekey with the identity key.
	sign func(k *xeddsa.PrivateKey, msg []byte) ([]byte, error)
	// verify checks a signed prekey signature; pub is the identity key's
	// encoding without prefix (Ed25519 or Curve25519 form, per
	// ed25519Identity).
	verify func(pub, msg, sig []byte) bool
}

// OMEMO2 is the X3DH profile of OMEMO 2 (XEP-0384 0.9 §Key Exchange,
// python-twomemo StateImpl): HKDF-SHA-256 with info "OMEMO X3DH", salt of 32
// zero bytes and IKM = 0xFF×32 ‖ DH1 ‖ DH2 ‖ DH3 ‖ DH4; public keys are raw
// 32-byte X25519 keys; identity keys are in Ed25519 form (RFC 8032); the
// signed prekey signature is an Ed25519 signature by the identity key over
// the raw 32-byte signed prekey; AD = IK_A ‖ IK_B (64 bytes, Ed25519 forms);
// a one-time prekey is mandatory.
var OMEMO2 = Profile{
	name:            "OMEMO 2",
	info:            "OMEMO X3DH",
	ed25519Identity: true,
	requirePreKey:   true,
	sign:            (*xeddsa.PrivateKey).SignEd25519,
	verify:          xeddsa.VerifyEd25519,
}

// Legacy is the X3DH profile of legacy OMEMO / libsignal v3 (XEP-0384 0.3,
// python-oldmemo StateImpl, libsignal-protocol-java RatchetingSession): HKDF
// info "WhisperText"; every public key, identity keys included, is 33 bytes,
// 0x05 ‖ X25519 u; the signed prekey signature is libsignal's
// curve25519 signature (sign bit in bit 7 of byte 63, DIGEST §5.6) over the
// 33-byte signed prekey; AD = 0x05 ‖ IK_A ‖ 0x05 ‖ IK_B (66 bytes, Curve25519
// forms); the one-time prekey is optional, as in libsignal.
var Legacy = Profile{
	name:          "legacy OMEMO (libsignal v3)",
	info:          "WhisperText",
	prefix:        []byte{djbType},
	requirePreKey: false,
	sign:          (*xeddsa.PrivateKey).SignLegacy,
	verify:        xeddsa.VerifyLegacy,
}

// Bundle is the public part of a peer device's prekey bundle that X3DH needs
// (XEP-0384 0.9 §Bundles; 0.3 §Bundles), with every key in the profile's
// encoding, exactly as it travels.
type Bundle struct {
	// IdentityKey is IK_B: Ed25519 form (32 bytes) for OMEMO2, 0x05 ‖ u
	// (33 bytes) for Legacy.
	IdentityKey []byte
	// SignedPreKey is SPK_B: u (32 bytes) for OMEMO2, 0x05 ‖ u for Legacy.
	SignedPreKey []byte
	// SignedPreKeySignature is Sig(IK_B, Encode(SPK_B)), 64 bytes.
	SignedPreKeySignature []byte
	// SignedPreKeyID identifies SPK_B; it is copied to Initiated.
	SignedPreKeyID uint32
	// PreKey is the chosen one-time prekey OPK_B, encoded like SignedPreKey,
	// or nil for none (allowed by Legacy only). Choosing it (at random, never
	// id 0) is the caller's job.
	PreKey []byte
	// PreKeyID identifies PreKey; it is copied to Initiated.
	PreKeyID uint32
}

// Initiated is the result of [Profile.Initiate]: what the initiator keeps and
// what its key exchange message must carry.
type Initiated struct {
	// SharedSecret is SK, SharedSecretSize bytes. It must be kept secret.
	SharedSecret []byte
	// AssociatedData is AD = Encode(IK_A) ‖ Encode(IK_B), initiator first
	// (XEP-0384 0.9 §Key Exchange).
	AssociatedData []byte
	// Ephemeral is the public ephemeral key EK_A in the profile's encoding
	// (OMEMOKeyExchange.ek, PreKeySignalMessage.baseKey). Its private half
	// has been discarded.
	Ephemeral []byte
	// SignedPreKeyID is the bundle's SignedPreKeyID.
	SignedPreKeyID uint32
	// PreKeyID is the bundle's PreKeyID; meaningful only if HasPreKey.
	PreKeyID uint32
	// HasPreKey reports whether a one-time prekey was used (always true for
	// OMEMO2).
	HasPreKey bool
}

// String returns the profile's name.
func (p *Profile) String() string {
	if p == nil || p.sign == nil {
		return "x3dh: uninitialised Profile"
	}
	return "x3dh: " + p.name
}

// RequiresPreKey reports whether the profile rejects key exchanges without a
// one-time prekey.
func (p *Profile) RequiresPreKey() bool { return p != nil && p.requirePreKey }

func (p *Profile) valid() error {
	if p == nil || p.sign == nil || p.verify == nil {
		return errZeroProfile
	}
	return nil
}

// EncodeIdentityKey returns the profile's encoding of k's public identity
// key: Ed25519 form for OMEMO2 (XEP-0384 0.9 Encode(PK)), 0x05 ‖ u for
// Legacy. It returns nil for an uninitialised profile or a nil key.
func (p *Profile) EncodeIdentityKey(k *xeddsa.PrivateKey) []byte {
	if p.valid() != nil || k == nil {
		return nil
	}
	if p.ed25519Identity {
		return append(append([]byte(nil), p.prefix...), k.Ed25519Public()...)
	}
	return append(append([]byte(nil), p.prefix...), k.Curve25519Public()...)
}

// EncodePublicKey returns the profile's encoding of an X25519 public key
// (signed prekey, one-time prekey, ephemeral key): u for OMEMO2, 0x05 ‖ u
// for Legacy. It returns nil for an uninitialised profile, a nil key or a
// key on another curve.
func (p *Profile) EncodePublicKey(pub *ecdh.PublicKey) []byte {
	if p.valid() != nil || pub == nil || pub.Curve() != ecdh.X25519() {
		return nil
	}
	return append(append([]byte(nil), p.prefix...), pub.Bytes()...)
}

// DecodePublicKey parses an X25519 public key in the profile's encoding. It
// rejects a wrong length or type byte and a non-canonical u (≥ 2^255 - 19,
// which no X25519 implementation produces). Low-order keys parse; using them
// in Initiate or Respond fails with ErrLowOrder.
func (p *Profile) DecodePublicKey(b []byte) (*ecdh.PublicKey, error) {
	if err := p.valid(); err != nil {
		return nil, err
	}
	return p.decodePublic("public key", b)
}

func (p *Profile) decodePublic(name string, b []byte) (*ecdh.PublicKey, error) {
	u, err := p.stripPrefix(name, b)
	if err != nil {
		return nil, err
	}
	if !canonicalU(u) {
		return nil, &KeyError{name, xeddsa.ErrNonCanonical}
	}
	pub, err := ecdh.X25519().NewPublicKey(u)
	if err != nil {
		return nil, &KeyError{name, err}
	}
	return pub, nil
}

// stripPrefix checks the length and type byte of an encoded key and returns
// the 32-byte key without prefix.
func (p *Profile) stripPrefix(name string, b []byte) ([]byte, error) {
	if want := len(p.prefix) + keySize; len(b) != want {
		return nil, &KeyError{name, fmt.Errorf("%d bytes, want %d", len(b), want)}
	}
	for i, c := range p.prefix {
		if b[i] != c {
			return nil, &KeyError{name, fmt.Errorf("key type byte 0x%02x, want 0x%02x", b[i], c)}
		}
	}
	return b[len(p.prefix):], nil
}

// DecodeIdentityKey parses an identity key in the profile's encoding and
// returns its X25519 form, converting from Ed25519 for OMEMO2 with the
// RFC 7748 birational map (strict: see xeddsa.Ed25519PublicToCurve25519).
func (p *Profile) DecodeIdentityKey(b []byte) (*ecdh.PublicKey, error) {
	if err := p.valid(); err != nil {
		return nil, err
	}
	raw, err := p.stripPrefix("identity key", b)
	if err != nil {
		return nil, err
	}
	return p.identityToECDH(raw)
}

// identityToECDH converts a prefix-less identity key to X25519.
func (p *Profile) identityToECDH(raw []byte) (*ecdh.PublicKey, error) {
	u := raw
	if p.ed25519Identity {
		var err error
		if u, err = xeddsa.Ed25519PublicToCurve25519(raw); err != nil {
			return nil, &KeyError{"identity key", err}
		}
	} else if !canonicalU(u) {
		return nil, &KeyError{"identity key", xeddsa.ErrNonCanonical}
	}
	pub, err := ecdh.X25519().NewPublicKey(u)
	if err != nil {
		return nil, &KeyError{"identity key", err}
	}
	return pub, nil
}

// SignPreKey returns the signed prekey signature Sig(IK, Encode(SPK)) for a
// bundle: over the raw 32-byte key with an Ed25519-compatible signature for
// OMEMO2 (python-x3dh signs _encode_public_key(CURVE_25519, spk), which
// python-twomemo leaves raw), over 0x05 ‖ u with libsignal's signature for
// Legacy (DIGEST §5.1).
func (p *Profile) SignPreKey(identity *xeddsa.PrivateKey, spk *ecdh.PublicKey) ([]byte, error) {
	if err := p.valid(); err != nil {
		return nil, err
	}
	if identity == nil {
		return nil, &KeyError{"identity private key", errors.New("nil")}
	}
	msg := p.EncodePublicKey(spk)
	if msg == nil {
		return nil, &KeyError{"signed prekey", errors.New("nil or not X25519")}
	}
	return p.sign(identity, msg)
}

// VerifyPreKey checks a signed prekey signature as Initiate does, with
// identityKey and signedPreKey in the profile's encoding. It returns nil,
// ErrBadSignature, or a *KeyError for malformed keys.
func (p *Profile) VerifyPreKey(identityKey, signedPreKey, sig []byte) error {
	if err := p.valid(); err != nil {
		return err
	}
	raw, err := p.stripPrefix("identity key", identityKey)
	if err != nil {
		return err
	}
	if _, err := p.decodePublic("signed prekey", signedPreKey); err != nil {
		return err
	}
	if len(sig) != SignatureSize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrBadSignature, len(sig), SignatureSize)
	}
	if !p.verify(raw, signedPreKey, sig) {
		return ErrBadSignature
	}
	return nil
}

// Initiate performs the initiator's side of X3DH (X3DH §3.3) with the
// identity key own against bundle b, using a fresh ephemeral key from
// crypto/rand. It first checks every key's encoding, then verifies the signed
// prekey signature — before any Diffie-Hellman is computed — and then
// computes
//
//	DH1 = DH(IK_A, SPK_B), DH2 = DH(EK_A, IK_B), DH3 = DH(EK_A, SPK_B), DH4 = DH(EK_A, OPK_B)
//	SK  = HKDF-SHA-256(salt = 0×32, IKM = 0xFF×32 ‖ DH1 ‖ DH2 ‖ DH3 [‖ DH4], info, 32)
//	AD  = Encode(IK_A) ‖ Encode(IK_B)
//
// Errors: ErrMissingPreKey, ErrBadSignature, ErrLowOrder, or a *KeyError.
func (p *Profile) Initiate(own *xeddsa.PrivateKey, b *Bundle) (*Initiated, error) {
	return p.initiate(own, b, func() (*ecdh.PrivateKey, error) {
		return ecdh.X25519().GenerateKey(rand.Reader)
	})
}

// initiate is Initiate with the ephemeral key source injected, for
// known-answer tests.
func (p *Profile) initiate(own *xeddsa.PrivateKey, b *Bundle, newEphemeral func() (*ecdh.PrivateKey, error)) (*Initiated, error) {
	if err := p.valid(); err != nil {
		return nil, err
	}
	if own == nil {
		return nil, &KeyError{"identity private key", errors.New("nil")}
	}
	if b == nil {
		return nil, errors.New("x3dh: nil bundle")
	}

	// Parse everything first; no cryptography yet.
	ikRaw, err := p.stripPrefix("identity key", b.IdentityKey)
	if err != nil {
		return nil, err
	}
	spk, err := p.decodePublic("signed prekey", b.SignedPreKey)
	if err != nil {
		return nil, err
	}
	var opk *ecdh.PublicKey
	if len(b.PreKey) > 0 {
		if opk, err = p.decodePublic("one-time prekey", b.PreKey); err != nil {
			return nil, err
		}
	} else if p.requirePreKey {
		return nil, ErrMissingPreKey
	}
	if len(b.SignedPreKeySignature) != SignatureSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrBadSignature, len(b.SignedPreKeySignature), SignatureSize)
	}

	// X3DH §3.3: verify the signed prekey before anything else.
	if !p.verify(ikRaw, b.SignedPreKey, b.SignedPreKeySignature) {
		return nil, ErrBadSignature
	}

	ik, err := p.identityToECDH(ikRaw)
	if err != nil {
		return nil, err
	}
	ek, err := newEphemeral()
	if err != nil {
		return nil, fmt.Errorf("x3dh: generating ephemeral key: %w", err)
	}
	sk, err := p.deriveSecret(
		dh{own.ECDH(), spk},
		dh{ek, ik},
		dh{ek, spk},
		dh{ek, opk},
	)
	if err != nil {
		return nil, err
	}
	ownIK := p.EncodeIdentityKey(own)
	ad := make([]byte, 0, len(ownIK)+len(b.IdentityKey))
	ad = append(append(ad, ownIK...), b.IdentityKey...)
	return &Initiated{
		SharedSecret:   sk,
		AssociatedData: ad,
		Ephemeral:      p.EncodePublicKey(ek.PublicKey()),
		SignedPreKeyID: b.SignedPreKeyID,
		PreKeyID:       b.PreKeyID,
		HasPreKey:      opk != nil,
	}, nil
}

// Respond performs the responder's side of X3DH (X3DH §3.4) with the identity
// key own, the signed prekey spk and the one-time prekey opk (nil for none,
// Legacy only) named by the key exchange, and the initiator's identity key
// and ephemeral key in the profile's encoding. Looking spk and opk up by id,
// and deleting opk afterwards, is the caller's job. It returns SK and
// AD = Encode(IK_A) ‖ Encode(IK_B) as Initiate does on the other side.
// Errors: ErrMissingPreKey, ErrLowOrder, or a *KeyError.
func (p *Profile) Respond(own *xeddsa.PrivateKey, spk, opk *ecdh.PrivateKey, initiatorIdentity, ephemeralPub []byte) (sharedSecret, ad []byte, err error) {
	if err := p.valid(); err != nil {
		return nil, nil, err
	}
	if own == nil {
		return nil, nil, &KeyError{"identity private key", errors.New("nil")}
	}
	if spk == nil || spk.Curve() != ecdh.X25519() {
		return nil, nil, &KeyError{"signed prekey private key", errors.New("nil or not X25519")}
	}
	if opk == nil && p.requirePreKey {
		return nil, nil, ErrMissingPreKey
	}
	if opk != nil && opk.Curve() != ecdh.X25519() {
		return nil, nil, &KeyError{"one-time prekey private key", errors.New("not X25519")}
	}
	ikRaw, err := p.stripPrefix("identity key", initiatorIdentity)
	if err != nil {
		return nil, nil, err
	}
	ik, err := p.identityToECDH(ikRaw)
	if err != nil {
		return nil, nil, err
	}
	ek, err := p.decodePublic("ephemeral key", ephemeralPub)
	if err != nil {
		return nil, nil, err
	}
	var dh4 dh
	if opk != nil {
		dh4 = dh{opk, ek}
	}
	sk, err := p.deriveSecret(
		dh{spk, ik},
		dh{own.ECDH(), ek},
		dh{spk, ek},
		dh4,
	)
	if err != nil {
		return nil, nil, err
	}
	ownIK := p.EncodeIdentityKey(own)
	ad = make([]byte, 0, len(initiatorIdentity)+len(ownIK))
	ad = append(append(ad, initiatorIdentity...), ownIK...)
	return sk, ad, nil
}

// dh is one X25519 operation; a zero dh (nil keys) is skipped.
type dh struct {
	priv *ecdh.PrivateKey
	pub  *ecdh.PublicKey
}

// deriveSecret computes the DH outputs and the X3DH KDF (X3DH §2.2):
// HKDF-SHA-256(salt = 0×32, IKM = 0xFF×32 ‖ DH1 ‖ … , info, 32).
func (p *Profile) deriveSecret(dhs ...dh) ([]byte, error) {
	ikm := make([]byte, 0, len(ffPrefix)+len(dhs)*keySize)
	ikm = append(ikm, ffPrefix[:]...)
	defer clear(ikm)
	for i, d := range dhs {
		if d.priv == nil || d.pub == nil {
			continue
		}
		out, err := d.priv.ECDH(d.pub)
		if err != nil {
			// crypto/ecdh fails only on an all-zero result.
			return nil, fmt.Errorf("%w (DH%d)", ErrLowOrder, i+1)
		}
		ikm = append(ikm, out...)
		clear(out)
	}
	sk, err := hkdf.Key(sha256.New, ikm, hkdfSalt[:], p.info, SharedSecretSize)
	if err != nil {
		return nil, fmt.Errorf("x3dh: hkdf: %w", err)
	}
	return sk, nil
}

// canonicalU reports whether b is the canonical encoding of a field element:
// bit 255 clear and less than p = 2^255 - 19 (RFC 7748 §5).
func canonicalU(b []byte) bool {
	if len(b) != keySize || b[31]&0x80 != 0 {
		return false
	}
	if b[31] != 0x7f {
		return true
	}
	for i := 30; i > 0; i-- {
		if b[i] != 0xff {
			return true
		}
	}
	return b[0] < 0xed
}
