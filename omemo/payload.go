package omemo

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
)

// Payload encryption of XEP-0384 §4.4 (Message Encryption) and §4.5
// (Message Decryption), as python-twomemo's encrypt_plaintext and
// decrypt_plaintext:
//
//	key  = 32 random bytes
//	HKDF-SHA-256(IKM key, salt 32 zero bytes, info "OMEMO Payload", 80)
//	     = enc key 32 ‖ auth key 32 ‖ IV 16
//	ct   = AES-256-CBC(enc key, IV, PKCS#7(envelope))
//	tag  = HMAC-SHA-256(auth key, ct)[:16]
//
// key ‖ tag (48 bytes) is what goes through every Double Ratchet session.
// An empty OMEMO message (§5.5.3) sends 32 zero bytes instead.
const (
	payloadKeySize   = 32
	payloadTagSize   = 16
	keyMaterialSize  = payloadKeySize + payloadTagSize
	emptyMaterialLen = 32
	payloadInfo      = "OMEMO Payload"
)

var zeroSalt [sha256.Size]byte

// emptyMaterial is what an empty OMEMO message encrypts.
var emptyMaterial [emptyMaterialLen]byte

// errPayload is never shown to callers (they get ErrDecryption).
var errPayload = errors.New("omemo: payload authentication failed")

func payloadKeys(key []byte) (enc, auth, iv []byte, err error) {
	okm, err := hkdf.Key(sha256.New, key, zeroSalt[:], payloadInfo, 80)
	if err != nil {
		return nil, nil, nil, err
	}
	return okm[:32], okm[32:64], okm[64:80], nil
}

// sealPayload encrypts plaintext under a fresh payload key and returns the
// ciphertext and the 48-byte key material key ‖ tag (secret).
func sealPayload(plaintext []byte) (ct, material []byte, err error) {
	key := make([]byte, payloadKeySize, keyMaterialSize)
	if _, err := rand.Read(key); err != nil {
		return nil, nil, err
	}
	enc, auth, iv, err := payloadKeys(key)
	if err != nil {
		return nil, nil, err
	}
	block, err := aes.NewCipher(enc)
	if err != nil {
		return nil, nil, err
	}
	pad := aes.BlockSize - len(plaintext)%aes.BlockSize
	ct = make([]byte, len(plaintext)+pad)
	copy(ct, plaintext)
	for i := len(plaintext); i < len(ct); i++ {
		ct[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, ct)
	m := hmac.New(sha256.New, auth)
	m.Write(ct)
	material = m.Sum(key)[:keyMaterialSize]
	return ct, material, nil
}

// openPayload checks the tag over ct and decrypts it with the 48-byte key
// material. Every failure is errPayload.
func openPayload(ct, material []byte) ([]byte, error) {
	if len(material) != keyMaterialSize || len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, errPayload
	}
	enc, auth, iv, err := payloadKeys(material[:payloadKeySize])
	if err != nil {
		return nil, errPayload
	}
	m := hmac.New(sha256.New, auth)
	m.Write(ct)
	if !hmac.Equal(m.Sum(nil)[:payloadTagSize], material[payloadKeySize:]) {
		return nil, errPayload
	}
	block, err := aes.NewCipher(enc)
	if err != nil {
		return nil, errPayload
	}
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(pt, ct)
	n, ok := unpad(pt)
	if !ok {
		return nil, errPayload
	}
	return pt[:n], nil
}

// unpad checks PKCS#7 padding in constant time over the last block and
// returns the unpadded length.
func unpad(b []byte) (int, bool) {
	pad := int(b[len(b)-1])
	good := subtle.ConstantTimeLessOrEq(1, pad) & subtle.ConstantTimeLessOrEq(pad, aes.BlockSize)
	for i := 1; i <= aes.BlockSize; i++ {
		inPad := subtle.ConstantTimeLessOrEq(i, pad)
		eq := subtle.ConstantTimeByteEq(b[len(b)-i], byte(pad))
		good &= eq | (inPad ^ 1)
	}
	return len(b) - pad, good == 1
}
