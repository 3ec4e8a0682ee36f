package xeddsa

import (
	"crypto/ed25519"
	"testing"
)

// The Floor benchmarks measure the bare crypto/ed25519 primitives in the same
// run, so the XEdDSA results read as ratios.

var benchMsg = make([]byte, 33) // a 0x05-prefixed signed prekey

func BenchmarkFloorEd25519Sign(b *testing.B) {
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	for b.Loop() {
		ed25519.Sign(priv, benchMsg)
	}
}

func BenchmarkFloorEd25519Verify(b *testing.B) {
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	pub := priv.Public().(ed25519.PublicKey)
	sig := ed25519.Sign(priv, benchMsg)
	for b.Loop() {
		if !ed25519.Verify(pub, benchMsg, sig) {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkSign(b *testing.B) {
	k := keyWithSignBit(b, 1)
	for b.Loop() {
		if _, err := k.Sign(benchMsg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignLegacy(b *testing.B) {
	k := keyWithSignBit(b, 1)
	for b.Loop() {
		if _, err := k.SignLegacy(benchMsg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	k := keyWithSignBit(b, 1)
	sig, _ := k.Sign(benchMsg)
	pub := k.Curve25519Public()
	for b.Loop() {
		if !Verify(pub, benchMsg, sig) {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkVerifyLegacy(b *testing.B) {
	k := keyWithSignBit(b, 1)
	sig, _ := k.SignLegacy(benchMsg)
	pub := k.Curve25519Public()
	for b.Loop() {
		if !VerifyLegacy(pub, benchMsg, sig) {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkVerifyEd25519(b *testing.B) {
	k := keyWithSignBit(b, 1)
	sig, _ := k.SignEd25519(benchMsg)
	pub := k.Ed25519Public()
	for b.Loop() {
		if !VerifyEd25519(pub, benchMsg, sig) {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkEd25519PublicToCurve25519(b *testing.B) {
	k := keyWithSignBit(b, 0)
	pub := k.Ed25519Public()
	for b.Loop() {
		if _, err := Ed25519PublicToCurve25519(pub); err != nil {
			b.Fatal(err)
		}
	}
}
