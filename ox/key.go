package ox

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"mellium.im/xmpp/jid"
)

// Limits on key data.
const (
	// MaxKeyDataSize is the largest key input, in bytes, ParseKeys accepts.
	// XEP-0373 §8.2 puts OpenPGP keys "in the range of tens of kilobytes"; 1
	// MiB leaves room for keys with many certifications and several keys per
	// input.
	MaxKeyDataSize = 1 << 20

	// MaxKeys is the most keys ParseKeys accepts in one input. XEP-0373 §9.1
	// asks implementations to expect several keys per JID; 64 is far above
	// any real account.
	MaxKeys = 64

	// MinRSABits is the shortest RSA, DSA or ElGamal key accepted for any use
	// (NIST SP 800-57 Part 1 Rev. 5 §5.6.1: 2048 bits for 112-bit security).
	MinRSABits = 2048
)

// UserIDPrefix starts the OpenPGP User ID that binds a key to a JID:
// "xmpp:juliet@example.org" (XEP-0373 §8.5, the XEP-0147 URI form).
const UserIDPrefix = "xmpp:"

// FingerprintSize is the size of an OpenPGP v4 fingerprint (RFC 4880 §12.2).
const FingerprintSize = 20

// Fingerprint is the OpenPGP v4 fingerprint of a primary key, which names a
// key's PEP data node (XEP-0373 §4.1).
type Fingerprint [FingerprintSize]byte

// String returns the fingerprint as XEP-0373 §4.1 writes it: 40 upper-case
// hexadecimal digits without spaces.
func (f Fingerprint) String() string {
	return strings.ToUpper(hex.EncodeToString(f[:]))
}

// ParseFingerprint parses 40 upper-case hexadecimal digits (XEP-0373 §4.1).
// Lower case, spaces and other lengths are rejected: they would not name the
// same PEP node.
func ParseFingerprint(s string) (Fingerprint, error) {
	var f Fingerprint
	if len(s) != 2*FingerprintSize {
		return f, fmt.Errorf("%w: fingerprint is not 40 hex digits", ErrInvalidElement)
	}
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return f, fmt.Errorf("%w: fingerprint is not upper-case hex", ErrInvalidElement)
		}
	}
	hex.Decode(f[:], []byte(s))
	return f, nil
}

// Algorithm selects the kind of key GenerateKey makes.
type Algorithm uint8

const (
	// Curve25519 is an Ed25519 signing primary key with a Curve25519 ECDH
	// encryption subkey, in the RFC 4880bis encoding (EdDSA and ECDH with the
	// legacy curve OIDs) that GnuPG 2.2 reads. It is the default.
	Curve25519 Algorithm = iota
	// RSA3072 is an RSA-3072 signing primary key with an RSA-3072 encryption
	// subkey.
	RSA3072
)

// String returns the algorithm's name.
func (a Algorithm) String() string {
	switch a {
	case Curve25519:
		return "curve25519"
	case RSA3072:
		return "rsa3072"
	}
	return fmt.Sprintf("Algorithm(%d)", uint8(a))
}

// Key is one OpenPGP v4 transferable key: a public key, or a secret key with
// its public part. Secret key material stays inside; it leaves only through
// MarshalSecret, ArmorSecret and Backup.
type Key struct {
	e   *openpgp.Entity
	fpr Fingerprint
	// uids maps the names of e's "xmpp:" User IDs to their bare JIDs,
	// parsed once: RFC 7622 normalization is not cheap.
	uids map[string]jid.JID
}

func newKey(e *openpgp.Entity) (*Key, error) {
	if e.PrimaryKey.Version != 4 {
		return nil, fmt.Errorf("%w: version %d key", ErrUnsupported, e.PrimaryKey.Version)
	}
	k := &Key{e: e, uids: make(map[string]jid.JID)}
	copy(k.fpr[:], e.PrimaryKey.Fingerprint)
	for name := range e.Identities {
		if j, ok := userIDJID(name); ok {
			k.uids[name] = j
		}
	}
	if err := checkAlgo(e.PrimaryKey); err != nil {
		return nil, &KeyError{Fingerprint: k.fpr, Err: err}
	}
	for _, sk := range e.Subkeys {
		if sk.PublicKey.Version != 4 {
			return nil, &KeyError{Fingerprint: k.fpr, Err: fmt.Errorf("%w: version %d subkey", ErrUnsupported, sk.PublicKey.Version)}
		}
	}
	if sig, _ := e.PrimarySelfSignature(); sig == nil {
		return nil, &KeyError{Fingerprint: k.fpr, Err: fmt.Errorf("%w: no self-signed user id", ErrInvalidKey)}
	}
	return k, nil
}

// checkAlgo rejects finite-field keys shorter than MinRSABits.
func checkAlgo(pk *packet.PublicKey) error {
	switch pk.PubKeyAlgo {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSAEncryptOnly, packet.PubKeyAlgoRSASignOnly,
		packet.PubKeyAlgoDSA, packet.PubKeyAlgoElGamal:
		bits, err := pk.BitLength()
		if err != nil || bits < MinRSABits {
			return fmt.Errorf("%w: %d-bit key, want at least %d", ErrUnsupported, bits, MinRSABits)
		}
	}
	return nil
}

// keyConfig returns the go-crypto configuration hush writes with: v4 keys,
// SHA-256, AES-256, no compression, no AEAD (GnuPG 2.2 reads neither v6 keys
// nor SEIPDv2), S2K iterated and salted (RFC 4880 §3.7.1.3).
func keyConfig(now func() time.Time) *packet.Config {
	return &packet.Config{
		DefaultHash:            crypto.SHA256,
		DefaultCipher:          packet.CipherAES256,
		DefaultCompressionAlgo: packet.CompressionNone,
		Time:                   now,
		MinRSABits:             MinRSABits,
		MaxDecompressedMessageSize: func() *int64 {
			n := int64(maxLiteralSize)
			return &n
		}(),
	}
}

// GenerateKey returns a new secret key for addr with the single User ID
// "xmpp:<bare JID>" (XEP-0373 §8.5), without expiry. The randomness comes
// from crypto/rand.
func GenerateKey(addr jid.JID, alg Algorithm) (*Key, error) {
	bare := addr.Bare()
	if bare.Equal(jid.JID{}) || bare.Domainpart() == "" {
		return nil, fmt.Errorf("ox: generate key: empty JID")
	}
	cfg := keyConfig(nil)
	switch alg {
	case Curve25519:
		cfg.Algorithm = packet.PubKeyAlgoEdDSA
		cfg.Curve = packet.Curve25519
	case RSA3072:
		cfg.Algorithm = packet.PubKeyAlgoRSA
		cfg.RSABits = 3072
	default:
		return nil, fmt.Errorf("ox: generate key: unknown algorithm %v", alg)
	}
	e, err := openpgp.NewEntity(UserIDPrefix+bare.String(), "", "", cfg)
	if err != nil {
		return nil, fmt.Errorf("ox: generate key: %w", err)
	}
	return newKey(e)
}

// armorPrefix starts every OpenPGP ASCII armor block (RFC 4880 §6.2).
const armorPrefix = "-----BEGIN PGP "

// ParseKeys parses one or more transferable public or secret keys (RFC 4880
// §11.1, §11.2), binary or ASCII-armored, as exported by GnuPG (gpg --export,
// gpg --export-secret-keys) or by this package. Only User IDs with a valid
// self-signature are kept. Every key must be a v4 key with a self-signed
// User ID; a key that is not is an error, not skipped. Passphrase-protected
// secret keys are returned locked (see Key.Unlock).
func ParseKeys(b []byte) ([]*Key, error) {
	if len(b) > MaxKeyDataSize {
		return nil, fmt.Errorf("%w: key data over %d bytes", ErrTooLarge, MaxKeyDataSize)
	}
	var r io.Reader = bytes.NewReader(b)
	if trimmed := bytes.TrimLeft(b, " \t\r\n"); bytes.HasPrefix(trimmed, []byte(armorPrefix)) {
		block, err := armor.Decode(bytes.NewReader(trimmed))
		if err != nil {
			return nil, fmt.Errorf("%w: bad armor", ErrInvalidKey)
		}
		if block.Type != openpgp.PublicKeyType && block.Type != openpgp.PrivateKeyType {
			return nil, fmt.Errorf("%w: armor block is %q, not a key", ErrInvalidKey, block.Type)
		}
		body, err := io.ReadAll(io.LimitReader(block.Body, MaxKeyDataSize+1))
		if err != nil {
			return nil, fmt.Errorf("%w: bad armor", ErrInvalidKey)
		}
		r = bytes.NewReader(body)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%w: bad armor", ErrInvalidKey)
	}
	if err := scanKeyPackets(data); err != nil {
		return nil, err
	}
	packets := packet.NewReader(bytes.NewReader(data))
	var keys []*Key
	for {
		e, err := openpgp.ReadEntity(packets)
		if err == io.EOF && len(keys) > 0 {
			break
		}
		if err != nil {
			return nil, keyParseError(err)
		}
		k, err := newKey(e)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(keys, func(o *Key) bool { return o.fpr == k.fpr }) {
			return nil, &KeyError{Fingerprint: k.fpr, Err: fmt.Errorf("%w: key given twice", ErrInvalidKey)}
		}
		if len(keys) == MaxKeys {
			return nil, fmt.Errorf("%w: more than %d keys", ErrTooLarge, MaxKeys)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// scanKeyPackets rejects key data with packets go-crypto would skip
// silently: version 3 keys and signatures (XEP-0373 §7.1), unsupported
// algorithms, unknown critical subpackets.
func scanKeyPackets(data []byte) error {
	r := packet.NewReader(bytes.NewReader(data))
	for {
		p, err := r.NextWithUnsupported()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return keyParseError(err)
		}
		if u, ok := p.(*packet.UnsupportedPacket); ok {
			return fmt.Errorf("%w: %s", ErrUnsupported, trimPGP(u.Error.Error()))
		}
	}
}

func keyParseError(err error) error {
	var unsupported pgperrors.UnsupportedError
	switch {
	case err == io.EOF, errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: truncated or empty", ErrInvalidKey)
	case errors.As(err, &unsupported):
		return fmt.Errorf("%w: %s", ErrUnsupported, strings.TrimPrefix(err.Error(), "openpgp: unsupported feature: "))
	}
	return fmt.Errorf("%w: %s", ErrInvalidKey, strings.TrimPrefix(err.Error(), "openpgp: "))
}

// Fingerprint returns the v4 fingerprint of the primary key.
func (k *Key) Fingerprint() Fingerprint { return k.fpr }

// Created returns the creation time of the primary key.
func (k *Key) Created() time.Time { return k.e.PrimaryKey.CreationTime }

// IsSecret reports whether k holds secret key material.
func (k *Key) IsSecret() bool { return k.e.PrivateKey != nil }

// Locked reports whether some of k's secret key material is still protected
// by a passphrase.
func (k *Key) Locked() bool {
	if p := k.e.PrivateKey; p != nil && p.Encrypted {
		return true
	}
	for _, sk := range k.e.Subkeys {
		if sk.PrivateKey != nil && sk.PrivateKey.Encrypted {
			return true
		}
	}
	return false
}

// Unlock decrypts k's passphrase-protected secret key material in place.
// A wrong passphrase is ErrWrongPassphrase and leaves k locked.
func (k *Key) Unlock(passphrase []byte) error {
	if !k.IsSecret() {
		return &KeyError{Fingerprint: k.fpr, Err: ErrNotSecret}
	}
	if err := k.e.DecryptPrivateKeys(passphrase); err != nil {
		return &KeyError{Fingerprint: k.fpr, Err: ErrWrongPassphrase}
	}
	return nil
}

// Public returns k without its secret key material.
func (k *Key) Public() *Key {
	e := *k.e
	e.PrivateKey = nil
	e.Subkeys = slices.Clone(e.Subkeys)
	for i := range e.Subkeys {
		e.Subkeys[i].PrivateKey = nil
	}
	return &Key{e: &e, fpr: k.fpr, uids: k.uids}
}

// UserIDs returns k's User IDs that carry a valid self-signature, sorted.
func (k *Key) UserIDs() []string {
	ids := make([]string, 0, len(k.e.Identities))
	for name := range k.e.Identities {
		ids = append(ids, name)
	}
	slices.Sort(ids)
	return ids
}

// JIDs returns the bare JIDs of k's valid, unrevoked "xmpp:" User IDs
// (XEP-0373 §8.5), sorted.
func (k *Key) JIDs() []jid.JID { return k.jidsAt(time.Now()) }

func (k *Key) jidsAt(now time.Time) []jid.JID {
	var out []jid.JID
	for _, name := range k.UserIDs() {
		id := k.e.Identities[name]
		if id.SelfSignature == nil || id.Revoked(now) || id.SelfSignature.SigExpired(now) {
			continue
		}
		if j, ok := k.uids[name]; ok {
			out = append(out, j)
		}
	}
	return out
}

// HasJID reports whether k has a valid, unrevoked User ID "xmpp:<bare JID of
// j>" (XEP-0373 §3.2). JIDs are compared in their RFC 7622 normalized form.
func (k *Key) HasJID(j jid.JID) bool { return k.hasJIDAt(j, time.Now()) }

func (k *Key) hasJIDAt(j jid.JID, now time.Time) bool {
	want := j.Bare()
	if want.Domainpart() == "" {
		return false
	}
	for _, have := range k.jidsAt(now) {
		if have.Equal(want) {
			return true
		}
	}
	return false
}

// userIDJID extracts the bare JID of an "xmpp:" User ID, either the whole
// User ID ("xmpp:juliet@example.org", XEP-0373 §8.5) or the address part of
// the RFC 4880 §5.11 name-addr form ("Juliet <xmpp:juliet@example.org>").
// URIs with a resource, query, fragment or percent-encoding are not
// accepted: they do not name a bare JID unambiguously.
func userIDJID(uid string) (jid.JID, bool) {
	s := uid
	if i := strings.LastIndexByte(s, '<'); i >= 0 && strings.HasSuffix(s, ">") {
		s = s[i+1 : len(s)-1]
	}
	if len(s) <= len(UserIDPrefix) || !strings.EqualFold(s[:len(UserIDPrefix)], UserIDPrefix) {
		return jid.JID{}, false
	}
	s = s[len(UserIDPrefix):]
	if strings.ContainsAny(s, "/?#% <>") {
		return jid.JID{}, false
	}
	j, err := jid.Parse(s)
	if err != nil || j.Resourcepart() != "" {
		return jid.JID{}, false
	}
	return j, true
}

// Check reports whether k can be used at the current time: its primary key
// is neither expired nor revoked, and it has a usable signing and encryption
// (sub)key. The error is a *KeyError.
func (k *Key) Check() error {
	now := time.Now()
	if err := k.primaryStatus(now); err != nil {
		return err
	}
	if _, err := k.signingKey(now); err != nil {
		return err
	}
	_, err := k.encryptionKey(now)
	return err
}

// primaryStatus checks the primary key's expiry and revocation at now.
func (k *Key) primaryStatus(now time.Time) error {
	sig, id := k.e.PrimarySelfSignature()
	switch {
	case sig == nil:
		return &KeyError{Fingerprint: k.fpr, Err: ErrInvalidKey}
	case k.e.Revoked(now), id != nil && id.Revoked(now):
		return &KeyError{Fingerprint: k.fpr, Err: ErrKeyRevoked}
	case k.e.PrimaryKey.KeyExpired(sig, now), sig.SigExpired(now):
		return &KeyError{Fingerprint: k.fpr, Err: ErrKeyExpired}
	}
	return nil
}

// encryptionKey returns the (sub)key go-crypto encrypts to at now.
func (k *Key) encryptionKey(now time.Time) (openpgp.Key, error) {
	if err := k.primaryStatus(now); err != nil {
		return openpgp.Key{}, err
	}
	key, ok := k.e.EncryptionKey(now)
	if !ok {
		return openpgp.Key{}, &KeyError{Fingerprint: k.fpr, Err: ErrNoEncryptionKey}
	}
	if err := checkAlgo(key.PublicKey); err != nil {
		return openpgp.Key{}, &KeyError{Fingerprint: k.fpr, Err: err}
	}
	return key, nil
}

// signingKey returns the (sub)key go-crypto signs with at now.
func (k *Key) signingKey(now time.Time) (openpgp.Key, error) {
	if err := k.primaryStatus(now); err != nil {
		return openpgp.Key{}, err
	}
	key, ok := k.e.SigningKey(now)
	if !ok {
		return openpgp.Key{}, &KeyError{Fingerprint: k.fpr, Err: ErrNoSigningKey}
	}
	if err := checkAlgo(key.PublicKey); err != nil {
		return openpgp.Key{}, &KeyError{Fingerprint: k.fpr, Err: err}
	}
	return key, nil
}

// readySecret checks that k is an unlocked secret key.
func (k *Key) readySecret() error {
	switch {
	case !k.IsSecret():
		return &KeyError{Fingerprint: k.fpr, Err: ErrNotSecret}
	case k.Locked():
		return &KeyError{Fingerprint: k.fpr, Err: ErrKeyLocked}
	}
	return nil
}

// MarshalPublic returns k's public key in binary, the form PEP data nodes
// carry (XEP-0373 §4.1). It is minimal as XEP-0373 §8.2 advises (like
// GnuPG's export-minimal): the primary key, its revocations, every valid
// User ID with its latest self-signature and revocations, every subkey with
// its latest binding signature and revocations; certifications by other keys
// are left out.
func (k *Key) MarshalPublic() ([]byte, error) {
	var buf bytes.Buffer
	if err := k.serialize(&buf, false); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ArmorPublic returns MarshalPublic in ASCII armor (RFC 4880 §6.2), as
// gpg --import reads it.
func (k *Key) ArmorPublic() ([]byte, error) {
	return k.armored(openpgp.PublicKeyType, false)
}

// MarshalSecret returns k's secret key in binary, with its secret key
// material unprotected (S2K usage 0, RFC 4880 §5.5.3), as XEP-0373 §5.4
// backups require. The result must be kept secret. k must be unlocked.
func (k *Key) MarshalSecret() ([]byte, error) {
	if err := k.readySecret(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := k.serialize(&buf, true); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ArmorSecret returns MarshalSecret in ASCII armor. The result must be kept
// secret.
func (k *Key) ArmorSecret() ([]byte, error) {
	if err := k.readySecret(); err != nil {
		return nil, err
	}
	return k.armored(openpgp.PrivateKeyType, true)
}

func (k *Key) armored(blockType string, secret bool) ([]byte, error) {
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, blockType, nil)
	if err != nil {
		return nil, err
	}
	if err := k.serialize(w, secret); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// serialize writes the minimal transferable key, deterministically (User IDs
// sorted).
func (k *Key) serialize(w io.Writer, secret bool) error {
	e := k.e
	var err error
	if secret {
		err = e.PrivateKey.Serialize(w)
	} else {
		err = e.PrimaryKey.Serialize(w)
	}
	if err != nil {
		return err
	}
	for _, sig := range e.Revocations {
		if err := sig.Serialize(w); err != nil {
			return err
		}
	}
	for _, name := range k.UserIDs() {
		id := e.Identities[name]
		if err := id.UserId.Serialize(w); err != nil {
			return err
		}
		for _, sig := range id.Revocations {
			if err := sig.Serialize(w); err != nil {
				return err
			}
		}
		if id.SelfSignature != nil {
			if err := id.SelfSignature.Serialize(w); err != nil {
				return err
			}
		}
	}
	for _, sk := range e.Subkeys {
		if secret && sk.PrivateKey != nil {
			err = sk.PrivateKey.Serialize(w)
		} else {
			err = sk.PublicKey.Serialize(w)
		}
		if err != nil {
			return err
		}
		for _, sig := range sk.Revocations {
			if err := sig.Serialize(w); err != nil {
				return err
			}
		}
		if err := sk.Sig.Serialize(w); err != nil {
			return err
		}
	}
	return nil
}

// entities returns the go-crypto entities of keys.
func entities(keys []*Key) openpgp.EntityList {
	el := make(openpgp.EntityList, 0, len(keys))
	for _, k := range keys {
		el = append(el, k.e)
	}
	return el
}
