package ratchet

import (
	"bytes"
	"crypto/ecdh"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
)

// detKeys is a deterministic ratchet key source for fuzzing and tests.
func detKeys(label string) func() (*ecdh.PrivateKey, error) {
	i := 0
	return func() (*ecdh.PrivateKey, error) {
		i++
		k := sha256.Sum256([]byte(fmt.Sprintf("hush ratchet test %s %d", label, i)))
		return ecdh.X25519().NewPrivateKey(k[:])
	}
}

// detPair is newPair without randomness: the same sessions every run.
func detPair(t testing.TB, p *Profile) (*pair, [][]byte) {
	t.Helper()
	seed := sha256.Sum256([]byte("hush ratchet fuzz " + p.name))
	ad := bytes.Repeat(seed[:], 3)[:p.adSize]
	spk, err := detKeys(p.name + " spk")()
	if err != nil {
		t.Fatal(err)
	}
	alice, err := newInitiator(p, seed[:], ad, spk.PublicKey().Bytes(), detKeys(p.name+" alice"))
	if err != nil {
		t.Fatal(err)
	}
	bob, err := NewResponder(p, seed[:], ad, spk)
	if err != nil {
		t.Fatal(err)
	}
	bob.newKey = detKeys(p.name + " bob")
	pr := &pair{t, alice, bob}
	var seeds [][]byte
	m := pr.send(alice, "first")
	pr.deliver(bob, m)
	seeds = append(seeds, m)
	pr.deliver(alice, pr.send(bob, "turn"))
	for i := 0; i < 3; i++ {
		seeds = append(seeds, pr.send(alice, string(make([]byte, 16*i+5))))
	}
	return pr, seeds
}

// FuzzDecrypt feeds arbitrary messages to established sessions of both
// profiles: Decrypt never panics, and a failure changes nothing.
func FuzzDecrypt(f *testing.F) {
	var bobs []*Session
	for _, p := range allProfiles {
		pr, seeds := detPair(f, p)
		bobs = append(bobs, pr.bob)
		for _, s := range seeds {
			f.Add(s)
			bad := bytes.Clone(s)
			bad[len(bad)/2] ^= 0x40
			f.Add(bad)
		}
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		for _, b := range bobs {
			bob := b.Clone()
			bob.newKey = detKeys("fuzz")
			before := mustMarshal(t, bob)
			if _, err := bob.Decrypt(msg); err != nil {
				if !errors.Is(err, ErrAuthentication) {
					t.Fatalf("error %v is not ErrAuthentication", err)
				}
				if !bytes.Equal(before, mustMarshal(t, bob)) {
					t.Fatal("failed Decrypt changed the session")
				}
			}
		}
	})
}

// FuzzUnmarshalBinary: restoring never panics, an accepted state serializes
// back to the same bytes (a version 1 state to the same bytes plus the
// public key, as version 2), and the restored session can be used.
func FuzzUnmarshalBinary(f *testing.F) {
	for _, p := range allProfiles {
		pr, seeds := detPair(f, p)
		f.Add(mustMarshal(f, pr.alice))
		f.Add(mustMarshal(f, pr.bob))
		pr.deliver(pr.bob, seeds[2]) // leaves a skipped key
		f.Add(mustMarshal(f, pr.bob))
		f.Add(toV1(f, mustMarshal(f, pr.bob)))
		fresh, err := NewResponder(p, make([]byte, 32), make([]byte, p.adSize), pr.bob.own)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(mustMarshal(f, fresh))
		f.Add(toV1(f, mustMarshal(f, fresh)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s Session
		if err := s.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, ErrInvalidState) {
				t.Fatalf("error %v is not ErrInvalidState", err)
			}
			return
		}
		out := mustMarshal(t, &s)
		if data[0] == stateVersionV1 {
			if !bytes.Equal(toV1(t, out), data) {
				t.Fatalf("accepted version 1 state %x but re-serializes to %x", data, out)
			}
		} else if !bytes.Equal(out, data) {
			t.Fatalf("accepted %x but re-serializes to %x", data, out)
		}
		s.newKey = detKeys("fuzz")
		s.Decrypt(data)
		s.Encrypt(data)
	})
}
