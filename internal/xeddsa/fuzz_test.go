package xeddsa

import (
	"bytes"
	"testing"
)

// FuzzConversions checks that the birational maps never panic and that
// whatever one accepts the other maps back exactly.
func FuzzConversions(f *testing.F) {
	v := loadVectors(f)
	for _, e := range v.EdToCurve {
		f.Add(unhex(f, e.Ed), byte(0))
	}
	for _, c := range v.CurveToEd {
		f.Add(unhex(f, c.Curve), c.Sign)
	}
	f.Fuzz(func(t *testing.T, b []byte, sign byte) {
		if u, err := Ed25519PublicToCurve25519(b); err == nil {
			if len(u) != PublicKeySize {
				t.Fatalf("Ed25519PublicToCurve25519 returned %d bytes", len(u))
			}
			back, err := Curve25519PublicToEd25519(u, b[31]>>7)
			if err != nil || !bytes.Equal(back, b) {
				t.Fatalf("Ed %x -> Curve %x -> Ed %x, %v", b, u, back, err)
			}
		}
		if ed, err := Curve25519PublicToEd25519(b, sign); err == nil {
			if sign > 1 || ed[31]>>7 != sign {
				t.Fatalf("Curve25519PublicToEd25519(%x, %d) = %x", b, sign, ed)
			}
			back, err := Ed25519PublicToCurve25519(ed)
			if err != nil || !bytes.Equal(back, b) {
				t.Fatalf("Curve %x -> Ed %x -> Curve %x, %v", b, ed, back, err)
			}
		}
	})
}

// FuzzVerify checks that the verifiers never panic or modify their inputs on
// arbitrary keys, messages and signatures, and that nothing but the genuine
// signature of a fixed key verifies.
func FuzzVerify(f *testing.F) {
	v := loadVectors(f)
	for _, c := range v.Verify {
		f.Add(unhex(f, c.Pub), unhex(f, c.Msg), unhex(f, c.Sig))
	}
	k := keyWithSignBit(f, 1)
	var z [nonceSize]byte
	f.Fuzz(func(t *testing.T, pub, msg, sig []byte) {
		in := bytes.Clone(sig)
		_ = Verify(pub, msg, sig)
		_ = VerifyLegacy(pub, msg, sig)
		_ = VerifyEd25519(pub, msg, sig)
		if !bytes.Equal(in, sig) {
			t.Fatal("a verifier modified the signature")
		}
		good := k.signLegacyWithNonce(msg, &z)
		if !VerifyLegacy(k.Curve25519Public(), msg, good) {
			t.Fatalf("legacy signature of %x does not verify", msg)
		}
		if !bytes.Equal(sig, good) && VerifyLegacy(k.Curve25519Public(), msg, sig) {
			t.Fatalf("forged legacy signature %x of %x verifies", sig, msg)
		}
	})
}
