package x3dh

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"

	"hush.im/internal/xeddsa"
)

// party is one device: identity, signed prekey and one-time prekey.
type party struct {
	ik       *xeddsa.PrivateKey
	spk, opk *ecdh.PrivateKey
}

func newParty(t testing.TB, signBit byte) *party {
	t.Helper()
	var ik *xeddsa.PrivateKey
	for {
		var err error
		if signBit == 0 {
			ik, err = xeddsa.GenerateKey()
		} else {
			scalar := make([]byte, 32)
			rand.Read(scalar)
			ik, err = xeddsa.NewPrivateKey(scalar)
		}
		if err != nil {
			t.Fatal(err)
		}
		if ik.Ed25519Public()[31]>>7 == signBit {
			break
		}
	}
	spk, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	opk, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &party{ik, spk, opk}
}

func (b *party) bundle(t testing.TB, p *Profile) *Bundle {
	t.Helper()
	sig, err := p.SignPreKey(b.ik, b.spk.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	return &Bundle{
		IdentityKey:           p.EncodeIdentityKey(b.ik),
		SignedPreKey:          p.EncodePublicKey(b.spk.PublicKey()),
		SignedPreKeySignature: sig,
		SignedPreKeyID:        1,
		PreKey:                p.EncodePublicKey(b.opk.PublicKey()),
		PreKeyID:              2,
	}
}

func mustGenerate() (*ecdh.PrivateKey, error) { return ecdh.X25519().GenerateKey(rand.Reader) }

// lowOrder lists the canonical low-order X25519 u-coordinates (RFC 7748 §7
// and the Curve25519 "points of small order" list).
var lowOrder = []string{
	"0000000000000000000000000000000000000000000000000000000000000000",
	"0100000000000000000000000000000000000000000000000000000000000000",
	"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
	"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
}

func TestRoundTrip(t *testing.T) {
	for name, p := range profiles {
		for _, bits := range [][2]byte{{0, 0}, {0, 1}, {1, 0}, {1, 1}} {
			alice, bob := newParty(t, bits[0]), newParty(t, bits[1])
			for _, withOPK := range []bool{true, false} {
				b := bob.bundle(t, p)
				opk := bob.opk
				if !withOPK {
					b.PreKey, opk = nil, nil
				}
				got, err := p.Initiate(alice.ik, b)
				if !withOPK && p.RequiresPreKey() {
					if !errors.Is(err, ErrMissingPreKey) {
						t.Errorf("%s %v: Initiate without prekey = %v, want ErrMissingPreKey", name, bits, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s %v prekey %v: Initiate: %v", name, bits, withOPK, err)
				}
				sk, ad, err := p.Respond(bob.ik, bob.spk, opk, p.EncodeIdentityKey(alice.ik), got.Ephemeral)
				if err != nil {
					t.Fatalf("%s %v prekey %v: Respond: %v", name, bits, withOPK, err)
				}
				if !bytes.Equal(sk, got.SharedSecret) || !bytes.Equal(ad, got.AssociatedData) {
					t.Errorf("%s %v prekey %v: the two sides disagree", name, bits, withOPK)
				}
				if len(sk) != SharedSecretSize || got.HasPreKey != withOPK {
					t.Errorf("%s %v prekey %v: len(SK) = %d, HasPreKey = %v", name, bits, withOPK, len(sk), got.HasPreKey)
				}
				wantAD := append(p.EncodeIdentityKey(alice.ik), p.EncodeIdentityKey(bob.ik)...)
				if !bytes.Equal(ad, wantAD) {
					t.Errorf("%s: AD = %x, want IK_A ‖ IK_B = %x", name, ad, wantAD)
				}
				again, err := p.Initiate(alice.ik, b)
				if err != nil || bytes.Equal(again.SharedSecret, got.SharedSecret) || bytes.Equal(again.Ephemeral, got.Ephemeral) {
					t.Errorf("%s: a second Initiate reused the ephemeral key (%v)", name, err)
				}
			}
		}
	}
}

func TestProfileParameters(t *testing.T) {
	alice, bob := newParty(t, 0), newParty(t, 0)
	b2 := bob.bundle(t, &OMEMO2)
	bl := bob.bundle(t, &Legacy)
	tests := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"OMEMO2 identity is Ed25519 form", b2.IdentityKey, bob.ik.Ed25519Public()},
		{"OMEMO2 prekey is raw", b2.SignedPreKey, bob.spk.PublicKey().Bytes()},
		{"Legacy identity is 0x05 ‖ u", bl.IdentityKey, append([]byte{5}, bob.ik.Curve25519Public()...)},
		{"Legacy prekey is 0x05 ‖ u", bl.SignedPreKey, append([]byte{5}, bob.spk.PublicKey().Bytes()...)},
	}
	for _, tt := range tests {
		if !bytes.Equal(tt.got, tt.want) {
			t.Errorf("%s: %x, want %x", tt.name, tt.got, tt.want)
		}
	}
	// OMEMO 2 signs the raw 32-byte prekey, legacy the 33-byte encoding.
	if !xeddsa.VerifyEd25519(bob.ik.Ed25519Public(), bob.spk.PublicKey().Bytes(), b2.SignedPreKeySignature) {
		t.Error("OMEMO2 signature is not an Ed25519 signature over the raw prekey")
	}
	if !xeddsa.VerifyLegacy(bob.ik.Curve25519Public(), bl.SignedPreKey, bl.SignedPreKeySignature) {
		t.Error("Legacy signature is not a libsignal signature over 0x05 ‖ prekey")
	}
	if !OMEMO2.RequiresPreKey() || Legacy.RequiresPreKey() {
		t.Error("RequiresPreKey: OMEMO2 must, Legacy must not")
	}
	i2, err := OMEMO2.Initiate(alice.ik, b2)
	if err != nil {
		t.Fatal(err)
	}
	il, err := Legacy.Initiate(alice.ik, bl)
	if err != nil {
		t.Fatal(err)
	}
	if len(i2.AssociatedData) != 64 || len(il.AssociatedData) != 66 || len(i2.Ephemeral) != 32 || len(il.Ephemeral) != 33 {
		t.Errorf("sizes: AD %d/%d, EK %d/%d", len(i2.AssociatedData), len(il.AssociatedData), len(i2.Ephemeral), len(il.Ephemeral))
	}
}

// TestBadSignatureComputesNothing checks that a bad signed prekey signature
// stops Initiate before any ephemeral key or Diffie-Hellman exists.
func TestBadSignatureComputesNothing(t *testing.T) {
	for name, p := range profiles {
		alice, bob, mallory := newParty(t, 0), newParty(t, 1), newParty(t, 0)
		lowSPK, err := ecdh.X25519().NewPublicKey(make([]byte, 32))
		if err != nil {
			t.Fatal(err)
		}
		mutate := map[string]func(b *Bundle){
			"flipped bit in R":    func(b *Bundle) { b.SignedPreKeySignature[3] ^= 1 },
			"flipped bit in s":    func(b *Bundle) { b.SignedPreKeySignature[40] ^= 1 },
			"flipped sign bit":    func(b *Bundle) { b.SignedPreKeySignature[63] ^= 0x80 },
			"zero signature":      func(b *Bundle) { b.SignedPreKeySignature = make([]byte, 64) },
			"short signature":     func(b *Bundle) { b.SignedPreKeySignature = b.SignedPreKeySignature[:63] },
			"nil signature":       func(b *Bundle) { b.SignedPreKeySignature = nil },
			"other signed prekey": func(b *Bundle) { b.SignedPreKey = p.EncodePublicKey(mallory.spk.PublicKey()) },
			"other identity key":  func(b *Bundle) { b.IdentityKey = p.EncodeIdentityKey(mallory.ik) },
			"low-order prekey":    func(b *Bundle) { b.SignedPreKey = p.EncodePublicKey(lowSPK) },
			"signed by mallory": func(b *Bundle) {
				sig, err := p.SignPreKey(mallory.ik, bob.spk.PublicKey())
				if err != nil {
					t.Fatal(err)
				}
				b.SignedPreKeySignature = sig
			},
		}
		for what, m := range mutate {
			b := bob.bundle(t, p)
			m(b)
			calls := 0
			got, err := p.initiate(alice.ik, b, func() (*ecdh.PrivateKey, error) { calls++; return mustGenerate() })
			if !errors.Is(err, ErrBadSignature) || got != nil {
				t.Errorf("%s %s: initiate = %v, %v; want ErrBadSignature", name, what, got, err)
			}
			if calls != 0 {
				t.Errorf("%s %s: an ephemeral key was generated before the signature check", name, what)
			}
			if err := p.VerifyPreKey(b.IdentityKey, b.SignedPreKey, b.SignedPreKeySignature); !errors.Is(err, ErrBadSignature) {
				t.Errorf("%s %s: VerifyPreKey = %v, want ErrBadSignature", name, what, err)
			}
		}
	}
}

func TestLowOrder(t *testing.T) {
	for name, p := range profiles {
		alice, bob := newParty(t, 0), newParty(t, 0)
		for _, h := range lowOrder {
			low, err := ecdh.X25519().NewPublicKey(mustHex(t, h))
			if err != nil {
				t.Fatal(err)
			}
			enc := p.EncodePublicKey(low)

			// A low-order signed prekey, validly signed: DH1 is all zeros.
			b := bob.bundle(t, p)
			b.SignedPreKey = enc
			if b.SignedPreKeySignature, err = p.SignPreKey(bob.ik, low); err != nil {
				t.Fatal(err)
			}
			if _, err := p.Initiate(alice.ik, b); !errors.Is(err, ErrLowOrder) {
				t.Errorf("%s: low-order signed prekey %s: %v, want ErrLowOrder", name, h, err)
			}

			// A low-order one-time prekey: DH4 is all zeros.
			b = bob.bundle(t, p)
			b.PreKey = enc
			if _, err := p.Initiate(alice.ik, b); !errors.Is(err, ErrLowOrder) {
				t.Errorf("%s: low-order one-time prekey %s: %v, want ErrLowOrder", name, h, err)
			}

			// A low-order ephemeral key on the responder side.
			if _, _, err := p.Respond(bob.ik, bob.spk, bob.opk, p.EncodeIdentityKey(alice.ik), enc); !errors.Is(err, ErrLowOrder) {
				t.Errorf("%s: low-order ephemeral key %s: %v, want ErrLowOrder", name, h, err)
			}

			// A low-order initiator identity key.
			var ik []byte
			if p == &OMEMO2 {
				continue // Ed25519 form: see the loop over smallOrderEd below
			}
			ik = enc
			if _, _, err := p.Respond(bob.ik, bob.spk, bob.opk, ik, mustEncode(t, p, alice)); !errors.Is(err, ErrLowOrder) {
				t.Errorf("%s: low-order identity %s: %v, want ErrLowOrder", name, h, err)
			}
		}
	}
	// OMEMO 2 identity keys arrive in Ed25519 form; small-order ones never get
	// past the conversion to X25519.
	alice, bob := newParty(t, 0), newParty(t, 0)
	for _, h := range smallOrderEd {
		for _, sign := range []byte{0, 0x80} {
			ed := mustHex(t, h)
			ed[31] |= sign
			_, _, err := OMEMO2.Respond(bob.ik, bob.spk, bob.opk, ed, mustEncode(t, &OMEMO2, alice))
			if !errors.Is(err, ErrInvalidKey) || !errors.Is(err, xeddsa.ErrInvalidPublicKey) {
				t.Errorf("OMEMO2: small-order identity %x: %v, want ErrInvalidKey", ed, err)
			}
			b := bob.bundle(t, &OMEMO2)
			b.IdentityKey = ed
			if _, err := OMEMO2.Initiate(alice.ik, b); !errors.Is(err, ErrBadSignature) {
				t.Errorf("OMEMO2: bundle with small-order identity %x: %v, want ErrBadSignature", ed, err)
			}
		}
	}
}

// smallOrderEd lists canonical RFC 8032 encodings of small-order Edwards
// points (libsodium's blacklist), each also with the sign bit set.
var smallOrderEd = []string{
	"0100000000000000000000000000000000000000000000000000000000000000", // identity
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // order 2
	"0000000000000000000000000000000000000000000000000000000000000000", // order 4
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", // order 8
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
}

func mustEncode(t testing.TB, p *Profile, x *party) []byte {
	t.Helper()
	return p.EncodePublicKey(x.opk.PublicKey())
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMalformedKeys(t *testing.T) {
	nonCanonical := bytes.Repeat([]byte{0xff}, 32)
	nonCanonical[31] = 0x7f // 2^255 - 1 ≥ p
	bit255 := make([]byte, 32)
	bit255[0], bit255[31] = 9, 0x80
	for name, p := range profiles {
		alice, bob := newParty(t, 0), newParty(t, 0)
		prefix := p.prefix
		cases := map[string]func(b *Bundle){
			"empty identity":        func(b *Bundle) { b.IdentityKey = nil },
			"short identity":        func(b *Bundle) { b.IdentityKey = b.IdentityKey[:len(b.IdentityKey)-1] },
			"long identity":         func(b *Bundle) { b.IdentityKey = append(b.IdentityKey, 0) },
			"short signed prekey":   func(b *Bundle) { b.SignedPreKey = b.SignedPreKey[1:] },
			"long signed prekey":    func(b *Bundle) { b.SignedPreKey = append([]byte{5}, b.SignedPreKey...) },
			"short one-time prekey": func(b *Bundle) { b.PreKey = b.PreKey[:10] },
			"long one-time prekey":  func(b *Bundle) { b.PreKey = append(b.PreKey, 1, 2) },
			"non-canonical prekey":  func(b *Bundle) { b.PreKey = append(bytes.Clone(prefix), nonCanonical...) },
			"bit 255 set prekey":    func(b *Bundle) { b.PreKey = append(bytes.Clone(prefix), bit255...) },
		}
		if len(prefix) > 0 {
			cases["identity type 0x06"] = func(b *Bundle) { b.IdentityKey[0] = 6 }
			cases["signed prekey type 0x00"] = func(b *Bundle) { b.SignedPreKey[0] = 0 }
			cases["one-time prekey type 0x08"] = func(b *Bundle) { b.PreKey[0] = 8 }
		}
		for what, m := range cases {
			b := bob.bundle(t, p)
			m(b)
			calls := 0
			got, err := p.initiate(alice.ik, b, func() (*ecdh.PrivateKey, error) { calls++; return mustGenerate() })
			var ke *KeyError
			if !errors.Is(err, ErrInvalidKey) || !errors.As(err, &ke) || got != nil || calls != 0 {
				t.Errorf("%s %s: initiate = %v, %v (ephemeral calls %d); want a KeyError before any work", name, what, got, err, calls)
			}
		}
		// Respond side.
		ik, ek := p.EncodeIdentityKey(alice.ik), p.EncodePublicKey(alice.opk.PublicKey())
		respond := map[string][2][]byte{
			"short identity":          {ik[:len(ik)-1], ek},
			"long ephemeral":          {ik, append(bytes.Clone(ek), 0)},
			"nil ephemeral":           {ik, nil},
			"non-canonical ephemeral": {ik, append(bytes.Clone(prefix), nonCanonical...)},
		}
		for what, in := range respond {
			if _, _, err := p.Respond(bob.ik, bob.spk, bob.opk, in[0], in[1]); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("%s Respond %s: %v, want ErrInvalidKey", name, what, err)
			}
		}
		if _, err := p.DecodePublicKey(append(bytes.Clone(prefix), nonCanonical...)); !errors.Is(err, xeddsa.ErrNonCanonical) {
			t.Errorf("%s DecodePublicKey(non-canonical) = %v", name, err)
		}
	}
}

func TestMissingPreKey(t *testing.T) {
	alice, bob := newParty(t, 0), newParty(t, 0)
	b := bob.bundle(t, &OMEMO2)
	b.PreKey = nil
	calls := 0
	if _, err := OMEMO2.initiate(alice.ik, b, func() (*ecdh.PrivateKey, error) { calls++; return mustGenerate() }); !errors.Is(err, ErrMissingPreKey) || calls != 0 {
		t.Errorf("OMEMO2 Initiate without prekey = %v (ephemeral calls %d), want ErrMissingPreKey", err, calls)
	}
	b.PreKey = []byte{}
	if _, err := OMEMO2.Initiate(alice.ik, b); !errors.Is(err, ErrMissingPreKey) {
		t.Errorf("OMEMO2 Initiate with empty prekey = %v, want ErrMissingPreKey", err)
	}
	ek := OMEMO2.EncodePublicKey(alice.opk.PublicKey())
	if _, _, err := OMEMO2.Respond(bob.ik, bob.spk, nil, OMEMO2.EncodeIdentityKey(alice.ik), ek); !errors.Is(err, ErrMissingPreKey) {
		t.Errorf("OMEMO2 Respond without prekey = %v, want ErrMissingPreKey", err)
	}
	bl := bob.bundle(t, &Legacy)
	bl.PreKey = nil
	got, err := Legacy.Initiate(alice.ik, bl)
	if err != nil || got.HasPreKey {
		t.Errorf("Legacy Initiate without prekey = %v, %v", got, err)
	}
}

func TestMisuse(t *testing.T) {
	alice, bob := newParty(t, 0), newParty(t, 0)
	b := bob.bundle(t, &OMEMO2)
	var zero Profile
	var nilProfile *Profile
	for pname, p := range map[string]*Profile{"zero": &zero, "nil": nilProfile} {
		if _, err := p.Initiate(alice.ik, b); err == nil {
			t.Errorf("%s profile: Initiate succeeded", pname)
		}
		if _, _, err := p.Respond(bob.ik, bob.spk, bob.opk, b.IdentityKey, b.PreKey); err == nil {
			t.Errorf("%s profile: Respond succeeded", pname)
		}
		if _, err := p.SignPreKey(bob.ik, bob.spk.PublicKey()); err == nil {
			t.Errorf("%s profile: SignPreKey succeeded", pname)
		}
		if p.EncodeIdentityKey(bob.ik) != nil || p.EncodePublicKey(bob.spk.PublicKey()) != nil || p.RequiresPreKey() {
			t.Errorf("%s profile: encoders answered", pname)
		}
		if _, err := p.DecodePublicKey(b.PreKey); err == nil {
			t.Errorf("%s profile: DecodePublicKey succeeded", pname)
		}
		if err := p.VerifyPreKey(b.IdentityKey, b.SignedPreKey, b.SignedPreKeySignature); err == nil {
			t.Errorf("%s profile: VerifyPreKey succeeded", pname)
		}
		_ = p.String()
	}
	if _, err := OMEMO2.Initiate(nil, b); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Initiate(nil identity) = %v", err)
	}
	if _, err := OMEMO2.Initiate(alice.ik, nil); err == nil {
		t.Error("Initiate(nil bundle) succeeded")
	}
	p256, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ik, ek := OMEMO2.EncodeIdentityKey(alice.ik), OMEMO2.EncodePublicKey(alice.opk.PublicKey())
	for what, args := range map[string][3]any{
		"nil identity": {(*xeddsa.PrivateKey)(nil), bob.spk, bob.opk},
		"nil spk":      {bob.ik, (*ecdh.PrivateKey)(nil), bob.opk},
		"P-256 spk":    {bob.ik, p256, bob.opk},
		"P-256 prekey": {bob.ik, bob.spk, p256},
	} {
		_, _, err := OMEMO2.Respond(args[0].(*xeddsa.PrivateKey), args[1].(*ecdh.PrivateKey), args[2].(*ecdh.PrivateKey), ik, ek)
		if !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Respond(%s) = %v, want ErrInvalidKey", what, err)
		}
	}
	if OMEMO2.EncodePublicKey(p256.PublicKey()) != nil || OMEMO2.EncodePublicKey(nil) != nil || OMEMO2.EncodeIdentityKey(nil) != nil {
		t.Error("encoders accepted a nil or P-256 key")
	}
	if _, err := OMEMO2.SignPreKey(bob.ik, nil); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("SignPreKey(nil) = %v", err)
	}
	if _, err := OMEMO2.SignPreKey(nil, bob.spk.PublicKey()); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("SignPreKey(nil identity) = %v", err)
	}
	if OMEMO2.String() == Legacy.String() {
		t.Error("profiles share a name")
	}
}

func TestDecodeIdentityKey(t *testing.T) {
	bob := newParty(t, 1)
	for name, p := range profiles {
		pub, err := p.DecodeIdentityKey(p.EncodeIdentityKey(bob.ik))
		if err != nil || !bytes.Equal(pub.Bytes(), bob.ik.Curve25519Public()) {
			t.Errorf("%s: DecodeIdentityKey = %v, %v", name, pub, err)
		}
		if _, err := p.DecodeIdentityKey(bob.ik.Bytes()[:31]); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("%s: DecodeIdentityKey(short) = %v", name, err)
		}
	}
}
