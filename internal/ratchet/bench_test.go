package ratchet

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"testing"
)

// payload is what OMEMO 2 puts through the ratchet: a 32-byte payload key and
// its 16-byte tag (XEP-0384 §Message Encryption).
var payload = make([]byte, 48)

// BenchmarkEncrypt encrypts a 48-byte plaintext in an established session.
// Compare with BenchmarkEncryptFloor.
func BenchmarkEncrypt(b *testing.B) {
	for _, p := range allProfiles {
		b.Run(p.String(), func(b *testing.B) {
			pr := newPair(b, p)
			pr.deliver(pr.alice, pr.send(pr.bob, "established"))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := pr.alice.Encrypt(payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncryptFloor is the bare cryptography one Encrypt is made of, with
// the standard library used the plain way: one KDF_CK step (two
// HMAC-SHA-256), the HKDF-SHA-256 expansion of the message key to 80 bytes,
// AES-256-CBC of 48 bytes (64 with padding) and the HMAC-SHA-256 over the
// associated data and a serialized OMEMOMessage (64 + 104 bytes).
func BenchmarkEncryptFloor(b *testing.B) {
	var ck, mk [32]byte
	ad, msg := make([]byte, 64), make([]byte, 104)
	salt := make([]byte, 32)
	b.ReportAllocs()
	for b.Loop() {
		m := hmac.New(sha256.New, ck[:])
		m.Write([]byte{1})
		m.Sum(mk[:0])
		m.Reset()
		m.Write([]byte{2})
		m.Sum(ck[:0])

		keys, err := hkdf.Key(sha256.New, mk[:], salt, "OMEMO Message Key Material", 80)
		if err != nil {
			b.Fatal(err)
		}
		block, err := aes.NewCipher(keys[:32])
		if err != nil {
			b.Fatal(err)
		}
		ct := make([]byte, 64)
		copy(ct, payload)
		for i := len(payload); i < len(ct); i++ {
			ct[i] = 16
		}
		cipher.NewCBCEncrypter(block, keys[64:]).CryptBlocks(ct, ct)

		t := hmac.New(sha256.New, keys[32:64])
		t.Write(ad)
		t.Write(msg)
		t.Sum(nil)
	}
}

// BenchmarkDecrypt decrypts in-order messages of an established session
// (the messages are made before the timer starts).
func BenchmarkDecrypt(b *testing.B) {
	for _, p := range allProfiles {
		b.Run(p.String(), func(b *testing.B) {
			pr := newPair(b, p)
			pr.deliver(pr.alice, pr.send(pr.bob, "established"))
			msgs := make([][]byte, b.N)
			for i := range msgs {
				msgs[i] = pr.send(pr.alice, string(payload))
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := pr.bob.Decrypt(msgs[i]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkClone copies an established session, as a store does to roll
// back a failed transaction.
func BenchmarkClone(b *testing.B) {
	pr := newPair(b, OMEMO2)
	pr.deliver(pr.alice, pr.send(pr.bob, "established"))
	b.ReportAllocs()
	for b.Loop() {
		cloneSink = pr.alice.Clone()
	}
}

var cloneSink *Session

// BenchmarkUnmarshalBinary loads an established session, as a store that
// keeps serialized records does for every device of a fan-out; "v1" is the
// previous state version, which derives the ratchet public key on load.
func BenchmarkUnmarshalBinary(b *testing.B) {
	pr := newPair(b, OMEMO2)
	pr.deliver(pr.alice, pr.send(pr.bob, "established"))
	v2 := mustMarshal(b, pr.alice)
	for _, c := range []struct {
		name  string
		state []byte
	}{{"v2", v2}, {"v1", toV1(b, v2)}} {
		b.Run(c.name, func(b *testing.B) {
			var s Session
			b.ReportAllocs()
			for b.Loop() {
				if err := s.UnmarshalBinary(c.state); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncryptStored is one device of a fan-out from a store of
// serialized sessions: load, Encrypt the 48-byte key material, save.
// Compare with BenchmarkEncryptFloor.
func BenchmarkEncryptStored(b *testing.B) {
	pr := newPair(b, OMEMO2)
	pr.deliver(pr.alice, pr.send(pr.bob, "established"))
	state := mustMarshal(b, pr.alice)
	b.ReportAllocs()
	for b.Loop() {
		var s Session
		if err := s.UnmarshalBinary(state); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Encrypt(payload); err != nil {
			b.Fatal(err)
		}
		var err error
		if state, err = s.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
}
