package x3dh

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
)

// BenchmarkFloorInitiate measures the bare primitives of one X3DH initiation
// in the same run: one X25519 key generation, four X25519 operations and one
// crypto/ed25519 signature verification. BenchmarkInitiate / this is the
// overhead ratio of the whole construction (target < 1.5).
func BenchmarkFloorInitiate(b *testing.B) {
	keys := make([]*ecdh.PrivateKey, 5)
	for i := range keys {
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		keys[i] = k
	}
	edPriv := ed25519.NewKeyFromSeed(make([]byte, 32))
	edPub := edPriv.Public().(ed25519.PublicKey)
	msg := keys[1].PublicKey().Bytes()
	sig := ed25519.Sign(edPriv, msg)
	for b.Loop() {
		if !ed25519.Verify(edPub, msg, sig) {
			b.Fatal("invalid")
		}
		ek, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		for _, dh := range [][2]*ecdh.PrivateKey{{keys[0], keys[1]}, {ek, keys[2]}, {ek, keys[1]}, {ek, keys[3]}} {
			if _, err := dh[0].ECDH(dh[1].PublicKey()); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func benchmarkInitiate(b *testing.B, p *Profile) {
	alice, bob := newParty(b, 0), newParty(b, 0)
	bundle := bob.bundle(b, p)
	for b.Loop() {
		if _, err := p.Initiate(alice.ik, bundle); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInitiate(b *testing.B)       { benchmarkInitiate(b, &OMEMO2) }
func BenchmarkInitiateLegacy(b *testing.B) { benchmarkInitiate(b, &Legacy) }

func BenchmarkRespond(b *testing.B) {
	alice, bob := newParty(b, 0), newParty(b, 0)
	got, err := OMEMO2.Initiate(alice.ik, bob.bundle(b, &OMEMO2))
	if err != nil {
		b.Fatal(err)
	}
	ik := OMEMO2.EncodeIdentityKey(alice.ik)
	for b.Loop() {
		if _, _, err := OMEMO2.Respond(bob.ik, bob.spk, bob.opk, ik, got.Ephemeral); err != nil {
			b.Fatal(err)
		}
	}
}
