package xeddsa

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"testing"

	"filippo.io/edwards25519"
)

// keyWithSignBit returns a deterministic key whose Ed25519 form has the given
// sign bit.
func keyWithSignBit(t testing.TB, bit byte) *PrivateKey {
	t.Helper()
	for i := byte(0); i < 64; i++ {
		seed := sha256.Sum256([]byte{'k', bit, i})
		k, err := NewPrivateKey(seed[:])
		if err != nil {
			t.Fatal(err)
		}
		if k.Ed25519Public()[31]>>7 == bit {
			return k
		}
	}
	t.Fatalf("no key with sign bit %d", bit)
	return nil
}

func TestGenerateKeySignBitZero(t *testing.T) {
	seen := map[string]bool{}
	for range 64 {
		k, err := GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		if k.Ed25519Public()[31]&0x80 != 0 {
			t.Fatalf("GenerateKey: Ed25519 public %x has sign bit 1", k.Ed25519Public())
		}
		b := k.Bytes()
		if b[0]&7 != 0 || b[31]&0x80 != 0 || b[31]&0x40 == 0 {
			t.Fatalf("GenerateKey: scalar %x is not clamped", b)
		}
		if seen[string(b)] {
			t.Fatal("GenerateKey repeated a key")
		}
		seen[string(b)] = true
	}
}

func TestNewPrivateKeyErrors(t *testing.T) {
	for _, n := range []int{0, 31, 33, 64} {
		if _, err := NewPrivateKey(make([]byte, n)); !errors.Is(err, ErrInvalidPrivateKey) {
			t.Errorf("NewPrivateKey(%d bytes) = %v, want ErrInvalidPrivateKey", n, err)
		}
		if _, err := PrivateKeyFromEd25519Seed(make([]byte, n)); !errors.Is(err, ErrInvalidPrivateKey) {
			t.Errorf("PrivateKeyFromEd25519Seed(%d bytes) = %v, want ErrInvalidPrivateKey", n, err)
		}
	}
}

func TestNewPrivateKeyClampsAndCopies(t *testing.T) {
	in := bytes.Repeat([]byte{0xff}, 32)
	k, err := NewPrivateKey(in)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte{0xff}, 32)
	want[0], want[31] = 0xf8, 0x7f
	if !bytes.Equal(k.Bytes(), want) {
		t.Errorf("Bytes = %x, want %x", k.Bytes(), want)
	}
	in[5] = 0
	k.Bytes()[6] = 0
	k.Ed25519Public()[0] ^= 1
	if !bytes.Equal(k.Bytes(), want) {
		t.Error("key shares memory with its input or its outputs")
	}
	ed, err := Curve25519PublicToEd25519(k.Curve25519Public(), k.Ed25519Public()[31]>>7)
	if err != nil || !bytes.Equal(ed, k.Ed25519Public()) {
		t.Errorf("Ed25519Public changed after mutating a returned slice: %x, %v", ed, err)
	}
}

func TestSeedMatchesCryptoEd25519(t *testing.T) {
	for i := range 16 {
		seed := sha256.Sum256([]byte{'s', byte(i)})
		k, err := PrivateKeyFromEd25519Seed(seed[:])
		if err != nil {
			t.Fatal(err)
		}
		std := ed25519.NewKeyFromSeed(seed[:])
		pub := std.Public().(ed25519.PublicKey)
		if !bytes.Equal(k.Ed25519Public(), pub) {
			t.Errorf("seed %d: Ed25519Public = %x, crypto/ed25519 = %x", i, k.Ed25519Public(), pub)
		}
		msg := []byte("standard signature")
		sig := ed25519.Sign(std, msg)
		if !VerifyEd25519(pub, msg, sig) {
			t.Errorf("seed %d: VerifyEd25519 rejects a crypto/ed25519 signature", i)
		}
		// libsignal's view of the same signature: the sign bit goes into sig[63].
		leg := bytes.Clone(sig)
		leg[63] |= pub[31] & 0x80
		if !VerifyLegacy(k.Curve25519Public(), msg, leg) {
			t.Errorf("seed %d: VerifyLegacy rejects a crypto/ed25519 signature with the sign bit", i)
		}
		if got := Verify(k.Curve25519Public(), msg, sig); got != (pub[31]&0x80 == 0) {
			t.Errorf("seed %d: Verify = %v with sign bit %d", i, got, pub[31]>>7)
		}
		// Our Ed25519-compatible signatures verify under crypto/ed25519 too.
		mine, err := k.SignEd25519(msg)
		if err != nil || !ed25519.Verify(pub, msg, mine) {
			t.Errorf("seed %d: crypto/ed25519 rejects SignEd25519: %v", i, err)
		}
	}
}

func TestSignVerify(t *testing.T) {
	msg := []byte("hush: XEdDSA round trip")
	for _, bit := range []byte{0, 1} {
		k := keyWithSignBit(t, bit)
		curve, ed := k.Curve25519Public(), k.Ed25519Public()
		ed0, err := Curve25519PublicToEd25519(curve, 0)
		if err != nil {
			t.Fatal(err)
		}
		x, err := k.Sign(msg)
		if err != nil {
			t.Fatal(err)
		}
		e, err := k.SignEd25519(msg)
		if err != nil {
			t.Fatal(err)
		}
		l, err := k.SignLegacy(msg)
		if err != nil {
			t.Fatal(err)
		}
		x2, _ := k.Sign(msg)
		if bytes.Equal(x, x2) {
			t.Errorf("sign bit %d: two signatures are equal: nonce not random", bit)
		}
		tests := []struct {
			name string
			got  bool
			want bool
		}{
			{"Verify(Sign)", Verify(curve, msg, x), true},
			{"VerifyEd25519(ed0, Sign)", VerifyEd25519(ed0, msg, x), true},
			{"VerifyLegacy(Sign)", VerifyLegacy(curve, msg, x), true},
			{"VerifyEd25519(ed, SignEd25519)", VerifyEd25519(ed, msg, e), true},
			{"VerifyLegacy(SignLegacy)", VerifyLegacy(curve, msg, l), true},
			{"Verify(SignEd25519)", Verify(curve, msg, e), bit == 0},
			{"VerifyEd25519(ed, Sign)", VerifyEd25519(ed, msg, x), bit == 0},
			{"Verify(SignLegacy)", Verify(curve, msg, l), bit == 0},
			{"legacy bit set", l[63]&0x80 != 0, bit == 1},
			{"Verify wrong message", Verify(curve, append(msg, 0), x), false},
			{"VerifyLegacy wrong message", VerifyLegacy(curve, msg[1:], l), false},
			{"VerifyEd25519 wrong message", VerifyEd25519(ed, nil, e), false},
		}
		for _, tt := range tests {
			if tt.got != tt.want {
				t.Errorf("sign bit %d: %s = %v, want %v", bit, tt.name, tt.got, tt.want)
			}
		}
	}
}

func TestSameSignaturesForSignBitZero(t *testing.T) {
	k := keyWithSignBit(t, 0)
	var z [nonceSize]byte
	z[3] = 7
	msg := []byte("one key, three names")
	x := k.signWithNonce(msg, &z)
	if !bytes.Equal(x, k.signEd25519WithNonce(msg, &z)) || !bytes.Equal(x, k.signLegacyWithNonce(msg, &z)) {
		t.Error("Sign, SignEd25519 and SignLegacy differ for a key with sign bit 0")
	}
}

func TestECDH(t *testing.T) {
	a, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b := keyWithSignBit(t, 1)
	ab, err := a.ECDH().ECDH(b.ECDH().PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	ba, err := b.ECDH().ECDH(a.ECDH().PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ab, ba) {
		t.Error("X25519 shared secrets differ")
	}
	if !bytes.Equal(a.ECDH().PublicKey().Bytes(), a.Curve25519Public()) {
		t.Error("ECDH public key differs from Curve25519Public")
	}
}

func TestConversionRoundTrip(t *testing.T) {
	for range 32 {
		k, err := GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		u, err := Ed25519PublicToCurve25519(k.Ed25519Public())
		if err != nil || !bytes.Equal(u, k.Curve25519Public()) {
			t.Fatalf("Ed25519PublicToCurve25519 = %x, %v; want %x", u, err, k.Curve25519Public())
		}
		ed, err := Curve25519PublicToEd25519(u, 0)
		if err != nil || !bytes.Equal(ed, k.Ed25519Public()) {
			t.Fatalf("Curve25519PublicToEd25519 = %x, %v; want %x", ed, err, k.Ed25519Public())
		}
		ed1, err := Curve25519PublicToEd25519(u, 1)
		if err != nil || !bytes.Equal(ed1[:31], ed[:31]) || ed1[31] != ed[31]|0x80 {
			t.Fatalf("Curve25519PublicToEd25519 sign 1 = %x, %v", ed1, err)
		}
	}
}

func TestVerifyMalformed(t *testing.T) {
	k := keyWithSignBit(t, 0)
	msg := []byte("m")
	sig, err := k.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	curve, ed := k.Curve25519Public(), k.Ed25519Public()
	tests := []struct {
		name     string
		pub, sig []byte
	}{
		{"nil key", nil, sig},
		{"short key", curve[:31], sig},
		{"long key", append(bytes.Clone(curve), 0), sig},
		{"nil signature", curve, nil},
		{"short signature", curve, sig[:63]},
		{"long signature", curve, append(bytes.Clone(sig), 0)},
	}
	for _, tt := range tests {
		edPub := ed
		if len(tt.pub) != len(curve) {
			edPub = tt.pub
		}
		if Verify(tt.pub, msg, tt.sig) || VerifyLegacy(tt.pub, msg, tt.sig) || VerifyEd25519(edPub, msg, tt.sig) {
			t.Errorf("%s: accepted", tt.name)
		}
	}
	if _, err := Ed25519PublicToCurve25519(nil); !errors.Is(err, ErrInvalidPublicKey) {
		t.Errorf("Ed25519PublicToCurve25519(nil) = %v", err)
	}
	if _, err := Curve25519PublicToEd25519(curve[:5], 0); !errors.Is(err, ErrInvalidPublicKey) {
		t.Errorf("Curve25519PublicToEd25519(short) = %v", err)
	}
}

func TestErrorsWrap(t *testing.T) {
	for _, err := range []error{ErrNonCanonical, ErrNotOnCurve, ErrSmallOrder, ErrNotInSubgroup} {
		if !errors.Is(err, ErrInvalidPublicKey) {
			t.Errorf("%v does not match ErrInvalidPublicKey", err)
		}
		if errors.Is(ErrInvalidPublicKey, err) {
			t.Errorf("ErrInvalidPublicKey matches %v", err)
		}
	}
}

// TestSmallOrderList checks that smallOrderR is exactly the canonical
// encodings of the eight small-order points.
func TestSmallOrderList(t *testing.T) {
	listed := map[[32]byte]bool{}
	for _, b := range smallOrderR {
		p, err := new(edwards25519.Point).SetBytes(b[:])
		if err != nil || !bytes.Equal(p.Bytes(), b[:]) || !isSmallOrder(p) {
			t.Errorf("%x: not a canonical small-order point (%v)", b, err)
		}
		listed[b] = true
	}
	gen, err := new(edwards25519.Point).SetBytes(smallOrderR[4][:])
	if err != nil {
		t.Fatal(err)
	}
	acc := edwards25519.NewIdentityPoint()
	for i := range 8 {
		var b [32]byte
		copy(b[:], acc.Bytes())
		if !listed[b] {
			t.Errorf("[%d]T8 = %x is missing", i, b)
		}
		delete(listed, b)
		acc.Add(acc, gen)
	}
	if len(listed) != 0 {
		t.Errorf("%d extra entries", len(listed))
	}
}
