package legacy

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// Payload encryption of XEP-0384 0.3 §Sending a message, as python-oldmemo
// (encrypt_plaintext, decrypt_plaintext) and Conversations
// (XmppAxolotlMessage) do it:
//
//	key        = 16 random bytes, IV = 12 random bytes
//	ciphertext ‖ tag = AES-128-GCM(key, IV, body), 16-byte tag, no AAD
//	<payload>  = ciphertext (without the tag), <iv> = IV
//	key material = key ‖ tag (32 bytes), encrypted per device by its session
//
// A KeyTransportElement (python-oldmemo: an empty OMEMO message) has no
// payload; its key material is a fresh 16-byte key alone and its <iv> a
// fresh 12-byte IV.
const (
	// PayloadKeySize is the AES-128 key size.
	PayloadKeySize = 16
	// TagSize is the GCM tag size: "The tag SHOULD have at least 128 bit"
	// (XEP-0384 0.3 §Sending a message); python-oldmemo and Conversations
	// use 16 bytes and nothing else.
	TagSize = 16
	// KeyMaterialSize is the size of the key material of a message with a
	// payload: key ‖ tag.
	KeyMaterialSize = PayloadKeySize + TagSize
	// IVSize is the IV size hush and every current client write.
	IVSize = 12
	// LegacyIVSize is the IV size older clients wrote (DIGEST §5.3), still
	// accepted when decrypting; GCM hashes such an IV into its initial
	// counter block.
	LegacyIVSize = 16
)

// checkIV accepts the two IV sizes in use.
func checkIV(iv []byte) error {
	if len(iv) != IVSize && len(iv) != LegacyIVSize {
		return malformed("iv is %d bytes, want %d or %d", len(iv), IVSize, LegacyIVSize)
	}
	return nil
}

func newGCM(key, iv []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	if len(iv) == IVSize {
		return cipher.NewGCM(block)
	}
	// NIST SP 800-38D §7.1: a non-96-bit IV is hashed with GHASH into the
	// initial counter block, as Java's and python's GCM do.
	return cipher.NewGCMWithNonceSize(block, len(iv))
}

// ErrEmptyBody is returned by EncryptPayload for an empty body: its
// <payload/> would be empty, which python-oldmemo cannot read (and treats
// as no payload). Send a KeyTransportElement instead.
var ErrEmptyBody = errors.New("legacy: empty body")

// EncryptPayload encrypts a message body (XEP-0384 0.3 §Sending a message:
// the UTF-8 text of <body>, not empty) under a fresh key and IV. It returns
// the <payload> content (the ciphertext without the GCM tag), the <iv>
// content and the KeyMaterialSize-byte key material key ‖ tag to encrypt
// with every recipient device's session. The key material must be kept
// secret.
func EncryptPayload(body []byte) (payload, iv, keyMaterial []byte, err error) {
	if len(body) == 0 {
		return nil, nil, nil, ErrEmptyBody
	}
	key := make([]byte, PayloadKeySize, KeyMaterialSize)
	iv = make([]byte, IVSize)
	if _, err := rand.Read(key); err != nil {
		return nil, nil, nil, fmt.Errorf("legacy: generating a payload key: %w", err)
	}
	if _, err := rand.Read(iv); err != nil {
		return nil, nil, nil, fmt.Errorf("legacy: generating an IV: %w", err)
	}
	payload, keyMaterial, err = sealPayload(key, iv, body)
	if err != nil {
		return nil, nil, nil, err
	}
	return payload, iv, keyMaterial, nil
}

// sealPayload is EncryptPayload with the key (PayloadKeySize bytes, with
// capacity for the tag) and IV given.
func sealPayload(key, iv, body []byte) (payload, keyMaterial []byte, err error) {
	aead, err := newGCM(key, iv)
	if err != nil {
		return nil, nil, fmt.Errorf("legacy: payload cipher: %w", err)
	}
	sealed := aead.Seal(nil, iv, body, nil)
	n := len(sealed) - TagSize
	return sealed[:n:n], append(key[:PayloadKeySize:PayloadKeySize], sealed[n:]...), nil
}

// DecryptPayload decrypts a <payload> with the <iv> of its element and the
// key material a session decrypted (XEP-0384 0.3 §Receiving a message):
// key material key ‖ tag, the tag appended to the ciphertext, AES-128-GCM.
// The IV must be IVSize or LegacyIVSize bytes (ErrMalformed otherwise).
// Key material that is not KeyMaterialSize bytes — such as the 16-byte key
// of a KeyTransportElement — and a tag that does not verify both give
// ErrDecryption.
func DecryptPayload(payload, iv, keyMaterial []byte) ([]byte, error) {
	if err := checkIV(iv); err != nil {
		return nil, err
	}
	if len(keyMaterial) != KeyMaterialSize {
		return nil, ErrDecryption
	}
	aead, err := newGCM(keyMaterial[:PayloadKeySize], iv)
	if err != nil {
		return nil, ErrDecryption
	}
	sealed := make([]byte, 0, len(payload)+TagSize)
	sealed = append(append(sealed, payload...), keyMaterial[PayloadKeySize:]...)
	body, err := aead.Open(sealed[:0], iv, sealed, nil)
	if err != nil {
		return nil, ErrDecryption
	}
	return body, nil
}

// KeyTransport returns the IV and the key material of a KeyTransportElement
// (XEP-0384 0.3 §Sending a key), which hush sends as python-oldmemo sends an
// empty OMEMO message (its ContentImpl.make_empty and
// PlainKeyMaterialImpl.make_empty): a fresh PayloadKeySize-byte key as the
// key material and a fresh IVSize-byte IV, no payload. Such a message
// answers a key exchange, carries a heartbeat or builds a new session. The
// key material must be kept secret.
func KeyTransport() (iv, keyMaterial []byte, err error) {
	iv = make([]byte, IVSize)
	keyMaterial = make([]byte, PayloadKeySize)
	if _, err := rand.Read(iv); err != nil {
		return nil, nil, fmt.Errorf("legacy: generating an IV: %w", err)
	}
	if _, err := rand.Read(keyMaterial); err != nil {
		return nil, nil, fmt.Errorf("legacy: generating a key: %w", err)
	}
	return iv, keyMaterial, nil
}

// TransportedKey returns the key carried by a received KeyTransportElement:
// the first PayloadKeySize bytes of its key material, which is
// PayloadKeySize bytes (python-oldmemo, Conversations) or KeyMaterialSize
// bytes (senders that append a tag). Any other size is ErrDecryption.
// python-oldmemo does not look at this key; hush uses it for nothing but
// this check.
func TransportedKey(keyMaterial []byte) ([]byte, error) {
	if len(keyMaterial) != PayloadKeySize && len(keyMaterial) != KeyMaterialSize {
		return nil, ErrDecryption
	}
	return append([]byte(nil), keyMaterial[:PayloadKeySize]...), nil
}
