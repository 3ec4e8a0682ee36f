package omemo

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"hush.im/internal/x3dh"
	"hush.im/internal/xeddsa"
	"hush.im/omemo/legacy"
)

// Prekey hygiene defaults (XEP-0384 §4.2 Key Exchange parameters).
const (
	// DefaultPreKeys is the number of one-time prekeys kept in the bundle:
	// "The bundle SHOULD always contain around 100 PreKeys".
	DefaultPreKeys = 100
	// MinPreKeys is the XEP's floor: "The bundle MUST always contain at
	// least 25 PreKeys". Options.PreKeys and PreKeyRefillThreshold may not
	// go below it.
	MinPreKeys = 25
	// DefaultSignedPreKeyRotation is how often the signed prekey is
	// replaced: "SHOULD be rotated periodically once a week to once a
	// month".
	DefaultSignedPreKeyRotation = 7 * 24 * time.Hour
	// maxPreKeyID is the largest prekey id handed out; ids are never
	// reused, so a device runs out after 2^31−1 of them.
	maxPreKeyID = 1<<31 - 1
	// maxDeviceIDAttempts bounds the search for a device id not already
	// on the own device list.
	maxDeviceIDAttempts = 64
)

var errExhausted = errors.New("omemo: prekey ids exhausted")

// randomDeviceID returns a uniformly random id in 1 … 2^31−1 (XEP-0384
// §5.1).
func randomDeviceID() (uint32, error) {
	var b [4]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, err
		}
		id := binary.BigEndian.Uint32(b[:]) & MaxDeviceID
		if id != 0 {
			return id, nil
		}
	}
}

// newIdentity creates the identity record of a fresh device: a new
// identity key whose Ed25519 form has sign bit 0 (DESIGN: Converse.js
// trap) and a random device id not in taken.
func newIdentity(taken *DeviceList) (*IdentityRecord, error) {
	k, err := xeddsa.GenerateKey()
	if err != nil {
		return nil, err
	}
	r := &IdentityRecord{key: k, nextPreKey: 1, nextSPK: 1}
	for i := 0; ; i++ {
		if i == maxDeviceIDAttempts {
			return nil, errors.New("omemo: no free device id")
		}
		if r.deviceID, err = randomDeviceID(); err != nil {
			return nil, err
		}
		if taken == nil || !taken.Contains(r.deviceID) {
			return r, nil
		}
	}
}

// newPreKeys generates n one-time prekeys with fresh ids (never 0, never
// reused: XEP-0384 §5.3.2 and the Converse.js trap).
func newPreKeys(tx Tx, id *IdentityRecord, n int) error {
	for range n {
		if id.nextPreKey == 0 || id.nextPreKey > maxPreKeyID {
			return errExhausted
		}
		priv, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		if err := tx.PutPreKey(&PreKeyRecord{id: id.nextPreKey, priv: priv.Bytes(), pub: priv.PublicKey().Bytes()}); err != nil {
			return err
		}
		id.nextPreKey++
	}
	return nil
}

// newSignedPreKey generates a signed prekey with a fresh id, signed with
// the identity key twice: over its raw 32 bytes for OMEMO 2 (XEP-0384
// §5.3.2, python-x3dh) and over 0x05 ‖ key for legacy OMEMO (libsignal,
// legacy.SignSignedPreKey).
func newSignedPreKey(id *IdentityRecord, now time.Time) (*SignedPreKeyRecord, error) {
	if id.nextSPK == 0 || id.nextSPK > maxPreKeyID {
		return nil, errExhausted
	}
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	sig, err := x3dh.OMEMO2.SignPreKey(id.key, priv.PublicKey())
	if err != nil {
		return nil, err
	}
	r := &SignedPreKeyRecord{id: id.nextSPK, priv: priv.Bytes(), pub: priv.PublicKey().Bytes(), sig: sig, created: now.UTC().Truncate(time.Second)}
	if r.legacySig, err = legacy.SignSignedPreKey(id.key, r.pub); err != nil {
		return nil, err
	}
	id.nextSPK++
	return r, nil
}

// upgradeSignedPreKeys adds the legacy signature to signed prekeys stored
// before this package spoke legacy OMEMO (record version 1).
func upgradeSignedPreKeys(tx Tx, id *IdentityRecord) error {
	spks, err := tx.SignedPreKeys()
	if err != nil {
		return err
	}
	for _, s := range spks {
		if s.legacySig != nil {
			continue
		}
		if s.legacySig, err = legacy.SignSignedPreKey(id.key, s.pub); err != nil {
			return err
		}
		if err := tx.PutSignedPreKey(s); err != nil {
			return err
		}
	}
	return nil
}

// ErrBadSignature is returned by VerifyBundle when the signed prekey
// signature of a bundle does not verify under its identity key.
var ErrBadSignature = errors.New("omemo: invalid signed prekey signature")

// VerifyBundle checks the signed prekey signature of a bundle: the Ed25519
// signature by its identity key over the raw 32-byte signed prekey
// (XEP-0384 §5.3.2). Encrypt checks it anyway before building a session;
// this is for callers that want to refuse a bad bundle early.
func VerifyBundle(b *Bundle) error {
	if b == nil || len(b.IdentityKey) != PublicKeySize || len(b.SignedPreKey) != PublicKeySize || len(b.SignedPreKeySignature) != SignatureSize {
		return fmt.Errorf("omemo: %w: bundle keys of the wrong size", ErrMalformed)
	}
	err := x3dh.OMEMO2.VerifyPreKey(b.IdentityKey, b.SignedPreKey, b.SignedPreKeySignature)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, x3dh.ErrBadSignature):
		return ErrBadSignature
	}
	return fmt.Errorf("omemo: %w: bundle: %v", ErrMalformed, err)
}

// SignLabel returns labelsig for a device label: the identity key's
// Ed25519 signature over the UTF-8 label (XEP-0384 §5.3.1, Sig(PK, M) of
// §4.2).
func signLabel(k *xeddsa.PrivateKey, label string) ([]byte, error) {
	return k.SignEd25519([]byte(label))
}

// VerifyLabel reports whether d carries a label whose labelsig verifies
// under identityKey (Ed25519 form, from the device's bundle or session).
// XEP-0384 §5.3.1: a label without a valid labelsig MUST be ignored.
func VerifyLabel(identityKey []byte, d Device) bool {
	if d.Label == "" || len(d.LabelSig) != SignatureSize || len(identityKey) != PublicKeySize {
		return false
	}
	return xeddsa.VerifyEd25519(identityKey, []byte(d.Label), d.LabelSig)
}

func checkOwnLabel(label string) error {
	if !utf8.ValidString(label) || utf8.RuneCountInString(label) > MaxOwnLabelRunes {
		return fmt.Errorf("omemo: label must be valid UTF-8 of at most %d code points", MaxOwnLabelRunes)
	}
	return nil
}

// Fingerprint formats an identity key (Ed25519 form) the way XEP-0384 §8
// recommends: the Curve25519 form in lowercase hex, eight groups of eight
// characters separated by spaces.
func Fingerprint(identityKey []byte) (string, error) {
	u, err := xeddsa.Ed25519PublicToCurve25519(identityKey)
	if err != nil {
		return "", fmt.Errorf("omemo: %w: invalid identity key", ErrMalformed)
	}
	h := hex.EncodeToString(u)
	groups := make([]string, 0, 8)
	for i := 0; i < len(h); i += 8 {
		groups = append(groups, h[i:i+8])
	}
	return strings.Join(groups, " "), nil
}
