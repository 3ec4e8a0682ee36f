package legacy

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/xml"
	"testing"
)

// benchBody is a typical chat message body.
var benchBody = []byte("Wherefore art thou Romeo? Deny thy father and refuse thy name; or, if thou wilt not, be but sworn my love.")

// BenchmarkEncrypt measures sending one message to one legacy device on a
// confirmed session: one-device is the payload (AES-128-GCM under a fresh
// key and IV) and the key material through the session (one chain step,
// HKDF, AES-256-CBC, truncated HMAC, SignalMessage framing), to compare
// with BenchmarkFloor/one-device; one-device-element adds the serialized
// <encrypted/> element; session is the session step alone.
func BenchmarkEncrypt(b *testing.B) {
	_, _, _, s := conversationPair(b) // s is the responder: it sends SignalMessages
	b.Run("one-device", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _, material, err := EncryptPayload(benchBody)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := s.Encrypt(material); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("one-device-element", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			payload, iv, material, err := EncryptPayload(benchBody)
			if err != nil {
				b.Fatal(err)
			}
			data, pre, err := s.Encrypt(material)
			if err != nil {
				b.Fatal(err)
			}
			e := Encrypted{SID: 1, Keys: []Key{{RID: 2, PreKey: pre, Data: data}}, IV: iv, Payload: payload}
			if _, err := xml.Marshal(e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("session", func(b *testing.B) {
		material := rep(1, KeyMaterialSize)
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := s.Encrypt(material); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDecrypt measures receiving one message on a confirmed session:
// the SignalMessage and the payload, without XML.
func BenchmarkDecrypt(b *testing.B) {
	_, _, a, s := conversationPair(b)
	const n = 1000 // fewer than ratchet.MaxJump, decrypted in order
	type msg struct{ data, payload, iv []byte }
	msgs := make([]msg, n)
	for i := range msgs {
		payload, iv, material, err := EncryptPayload(benchBody)
		if err != nil {
			b.Fatal(err)
		}
		data, _, err := s.Encrypt(material)
		if err != nil {
			b.Fatal(err)
		}
		msgs[i] = msg{data, payload, iv}
	}
	start, err := a.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == n {
			b.StopTimer()
			if err := a.UnmarshalBinary(start); err != nil {
				b.Fatal(err)
			}
			i = 0
			b.StartTimer()
		}
		material, err := a.Decrypt(msgs[i].data)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := DecryptPayload(msgs[i].payload, msgs[i].iv, material); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkFloor runs the bare primitives that BenchmarkEncrypt/one-device
// cannot avoid, so that results read as ratios: 28 random bytes, one
// AES-128-GCM seal of the body, the chain step (two HMAC-SHA-256), the
// message key expansion (HKDF-SHA-256, 80 bytes), AES-256-CBC over the 32
// bytes of key material plus padding, and the HMAC-SHA-256 over both
// identity keys and the ~80-byte SignalMessage.
func BenchmarkFloor(b *testing.B) {
	ck := rep(1, 32)
	ad := rep(2, 66)
	header := rep(3, 80)
	var zero [32]byte
	b.Run("one-device", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var kiv [PayloadKeySize + IVSize]byte
			if _, err := rand.Read(kiv[:]); err != nil {
				b.Fatal(err)
			}
			block, _ := aes.NewCipher(kiv[:PayloadKeySize])
			gcm, _ := cipher.NewGCM(block)
			sealed := gcm.Seal(nil, kiv[PayloadKeySize:], benchBody, nil)

			m := hmac.New(sha256.New, ck)
			m.Write([]byte{1})
			mk := m.Sum(nil)
			m.Reset()
			m.Write([]byte{2})
			copy(ck, m.Sum(nil))

			keys, _ := hkdf.Key(sha256.New, mk, zero[:], "WhisperMessageKeys", 80)
			cb, _ := aes.NewCipher(keys[:32])
			pt := make([]byte, 48)
			copy(pt, kiv[:PayloadKeySize])
			copy(pt[PayloadKeySize:], sealed[len(sealed)-TagSize:])
			cipher.NewCBCEncrypter(cb, keys[64:80]).CryptBlocks(pt, pt)

			mac := hmac.New(sha256.New, keys[32:64])
			mac.Write(ad)
			mac.Write(header)
			mac.Write(pt)
			_ = mac.Sum(nil)
		}
	})
}
