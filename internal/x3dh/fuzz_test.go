package x3dh

import (
	"bytes"
	"crypto/ecdh"
	"testing"

	"hush.im/internal/xeddsa"
)

// fuzzKeys are fixed keys for the fuzz targets (no randomness per input).
func fuzzKeys(t testing.TB) (*xeddsa.PrivateKey, *ecdh.PrivateKey, *ecdh.PrivateKey, *ecdh.PrivateKey) {
	t.Helper()
	ik, err := xeddsa.NewPrivateKey(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	spk, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{2}, 32))
	if err != nil {
		t.Fatal(err)
	}
	opk, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{4}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return ik, spk, opk, ek
}

// FuzzInitiate feeds arbitrary bundles to both profiles: no panics, and the
// key decoders accept only what they re-encode identically.
func FuzzInitiate(f *testing.F) {
	for _, v := range loadTranscripts(f) {
		b := v.bundle(f)
		f.Add(b.IdentityKey, b.SignedPreKey, b.SignedPreKeySignature, b.PreKey)
	}
	own, _, _, ek := fuzzKeys(f)
	f.Fuzz(func(t *testing.T, ik, spk, sig, pk []byte) {
		for _, p := range []*Profile{&OMEMO2, &Legacy} {
			for _, k := range [][]byte{ik, spk, pk} {
				if pub, err := p.DecodePublicKey(k); err == nil && !bytes.Equal(p.EncodePublicKey(pub), k) {
					t.Fatalf("%v: DecodePublicKey(%x) re-encodes as %x", p, k, p.EncodePublicKey(pub))
				}
				_, _ = p.DecodeIdentityKey(k)
			}
			_ = p.VerifyPreKey(ik, spk, sig)
			b := &Bundle{IdentityKey: ik, SignedPreKey: spk, SignedPreKeySignature: sig, PreKey: pk}
			got, err := p.initiate(own, b, func() (*ecdh.PrivateKey, error) { return ek, nil })
			if err == nil && (len(got.SharedSecret) != SharedSecretSize || !bytes.HasSuffix(got.AssociatedData, ik)) {
				t.Fatalf("%v: bad result %+v", p, got)
			}
		}
	})
}

// FuzzRespond feeds arbitrary key exchange headers to both profiles.
func FuzzRespond(f *testing.F) {
	for _, v := range loadTranscripts(f) {
		f.Add(unhex(f, v.AliceIK), unhex(f, v.EK))
	}
	own, spk, opk, _ := fuzzKeys(f)
	f.Fuzz(func(t *testing.T, ik, ek []byte) {
		for _, p := range []*Profile{&OMEMO2, &Legacy} {
			sk, ad, err := p.Respond(own, spk, opk, ik, ek)
			if err == nil && (len(sk) != SharedSecretSize || !bytes.HasPrefix(ad, ik)) {
				t.Fatalf("%v: bad result %x %x", p, sk, ad)
			}
		}
	})
}
