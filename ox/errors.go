package ox

import (
	"errors"
	"fmt"
)

// Errors returned by this package. Callers branch on them with errors.Is.
// Receive-side failures (Open, DecryptContent) also match ErrRejected, so a
// client can treat them alike and answer a sender, if at all, the same way
// whichever check failed. Errors from the package sce (affix checks, invalid
// XML) come wrapped and stay visible to errors.Is.
var (
	// ErrRejected matches every error of Open and DecryptContent: the stanza
	// or OpenPGP message was not accepted, and nothing was changed.
	ErrRejected = errors.New("ox: message rejected")

	// ErrMalformed reports an <openpgp/> element that is not Base64 of a
	// well-formed OpenPGP message (truncated or garbage packets, an unexpected
	// packet sequence), or decrypted data that is not one content element.
	ErrMalformed = errors.New("ox: malformed openpgp message")

	// ErrNotForUs reports a message encrypted to none of the keys given for
	// decryption.
	ErrNotForUs = errors.New("ox: message not encrypted to any of our keys")

	// ErrDecrypt reports a message whose session key or encrypted data does
	// not decrypt and authenticate (wrong key material, modified ciphertext,
	// failed integrity check). go-crypto collapses everything that goes wrong
	// after decryption into this one error, so it is no oracle.
	ErrDecrypt = errors.New("ox: decryption failed")

	// ErrBadSignature reports a missing, invalid or unverifiable signature, a
	// signature by a key that is not among the sender's keys, or one by an
	// expired or revoked key or subkey (XEP-0373 §3.2).
	ErrBadSignature = errors.New("ox: bad signature")

	// ErrSignerMismatch reports a signing key without a valid User ID
	// "xmpp:<bare JID>" naming the stanza's sender (XEP-0373 §3.2, §8.5).
	ErrSignerMismatch = errors.New("ox: signer is not the sender")

	// ErrWrongProtection reports a content element that is not protected as
	// XEP-0373 §3.1 requires: a <signcrypt/> that is not both signed and
	// encrypted, a <sign/> that is encrypted or unsigned, a <crypt/> that is
	// signed or not encrypted.
	ErrWrongProtection = errors.New("ox: content element not protected as its kind requires")

	// ErrWrongKind reports a content element other than the one expected
	// (XEP-0374 §4.1: instant messages use <signcrypt/> only).
	ErrWrongKind = errors.New("ox: unexpected content element")

	// ErrUnsupported reports OpenPGP data this package does not accept: keys
	// and signatures of versions other than 4 (XEP-0373 §7.1 forbids lower
	// versions; the v4 fingerprint names the PEP nodes), weak hash algorithms
	// in signatures, RSA keys shorter than MinRSABits.
	ErrUnsupported = errors.New("ox: unsupported openpgp data")

	// ErrTooLarge reports input beyond one of the package's limits
	// (MaxMessageSize, MaxKeyDataSize, MaxKeys, MaxRecipientKeys).
	ErrTooLarge = errors.New("ox: input too large")

	// ErrInvalidKey reports key data that is not one or more OpenPGP
	// transferable keys, or a key without a valid self-signed User ID.
	ErrInvalidKey = errors.New("ox: invalid key")

	// ErrKeyExpired reports a key or subkey past its expiration time.
	ErrKeyExpired = errors.New("ox: key expired")

	// ErrKeyRevoked reports a revoked key, subkey or User ID.
	ErrKeyRevoked = errors.New("ox: key revoked")

	// ErrNoEncryptionKey reports a key without a valid encryption-capable
	// (sub)key.
	ErrNoEncryptionKey = errors.New("ox: key has no usable encryption key")

	// ErrNoSigningKey reports a key without a valid signing-capable (sub)key.
	ErrNoSigningKey = errors.New("ox: key has no usable signing key")

	// ErrNotSecret reports a public key where a secret key is needed.
	ErrNotSecret = errors.New("ox: not a secret key")

	// ErrKeyLocked reports a secret key still protected by a passphrase: call
	// Key.Unlock first.
	ErrKeyLocked = errors.New("ox: secret key is passphrase-protected")

	// ErrWrongPassphrase reports a passphrase that does not unlock a key.
	ErrWrongPassphrase = errors.New("ox: wrong passphrase")

	// ErrNoRecipients reports a <signcrypt/> or <crypt/> with no usable
	// recipient key: OX never falls back to sending in the clear.
	ErrNoRecipients = errors.New("ox: no usable recipient key")

	// ErrInvalidElement reports an XML element that is not the expected OX
	// element or breaks its rules (missing or duplicate children, bad Base64,
	// bad fingerprints or dates, a fingerprint listed twice).
	ErrInvalidElement = errors.New("ox: invalid element")

	// ErrMalformedCode reports a backup code that is not 24 characters of
	// BackupAlphabet in six dash-separated groups of four (XEP-0373 §5.4).
	ErrMalformedCode = errors.New("ox: malformed backup code")

	// ErrWrongCode reports a backup that the backup code does not open: the
	// code is wrong or the backup was modified. Nothing is restored.
	ErrWrongCode = errors.New("ox: wrong backup code or damaged backup")
)

// KeyError reports a problem with one key: Err is one of ErrKeyExpired,
// ErrKeyRevoked, ErrNoEncryptionKey, ErrNoSigningKey, ErrNotSecret,
// ErrKeyLocked, ErrUnsupported or ErrSignerMismatch, and errors.Is sees
// through to it.
type KeyError struct {
	Fingerprint Fingerprint
	Err         error
}

// Error implements error.
func (e *KeyError) Error() string {
	return fmt.Sprintf("%v (key %s)", e.Err, e.Fingerprint)
}

// Unwrap returns the sentinel.
func (e *KeyError) Unwrap() error { return e.Err }

// rejectError wraps a receive-side failure so that it matches both
// ErrRejected and its cause.
type rejectError struct{ err error }

func (e *rejectError) Error() string { return "ox: message rejected: " + trimPrefix(e.err.Error()) }

func (e *rejectError) Unwrap() []error { return []error{ErrRejected, e.err} }

func reject(err error) error {
	if err == nil {
		return nil
	}
	var r *rejectError
	if errors.As(err, &r) {
		return err
	}
	return &rejectError{err}
}

// trimPrefix drops a leading "ox: " so that rejections read as one sentence.
func trimPrefix(s string) string {
	if len(s) > 4 && s[:4] == "ox: " {
		return s[4:]
	}
	return s
}

// causeError is an error with two causes, both visible to errors.Is: a
// package sentinel and what lies behind it.
type causeError struct{ outer, inner error }

func (e *causeError) Error() string {
	return e.outer.Error() + ": " + trimPrefix(e.inner.Error())
}

func (e *causeError) Unwrap() []error { return []error{e.outer, e.inner} }

func because(outer, inner error) error { return &causeError{outer, inner} }
