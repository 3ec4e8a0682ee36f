package ratchet

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"testing"
)

// ownPubOffset is where a serialized session of profile p (version 2)
// holds the own ratchet public key: after version, profile, flags, the
// associated data, the root key and the own private key.
func ownPubOffset(p *Profile) int { return 3 + p.adSize + 2*KeySize }

// toV1 rewrites a version 2 state as version 1 (without the own public
// key), as the previous release wrote it.
func toV1(t testing.TB, v2 []byte) []byte {
	t.Helper()
	if len(v2) < 3 || v2[0] != stateVersion {
		t.Fatalf("not a version %d state: %x", stateVersion, v2)
	}
	p := profileByID(t, v2[1])
	at := ownPubOffset(p)
	v1 := append(bytes.Clone(v2[:at]), v2[at+KeySize:]...)
	v1[0] = stateVersionV1
	return v1
}

func profileByString(t testing.TB, name string) *Profile {
	t.Helper()
	for _, p := range profiles {
		if p.String() == name {
			return p
		}
	}
	t.Fatalf("unknown profile %q", name)
	return nil
}

func profileByID(t testing.TB, id byte) *Profile {
	t.Helper()
	for _, p := range profiles {
		if p.id == id {
			return p
		}
	}
	t.Fatalf("unknown profile id %d", id)
	return nil
}

// stateV1 mirrors testdata/state_v1.json: sessions serialized by the
// release that wrote state version 1, and what the live sessions did next.
type stateV1 struct {
	Source string
	States []struct {
		Name, Profile, State string
		Ops                  []struct{ Op, Plaintext, Message string }
	}
}

// TestStateVersion1 loads sessions serialized as state version 1 by the
// previous release and carries on with them exactly as the live sessions
// did: the first Encrypt (whose header holds the public key derived on
// load) gives the same bytes, and Decrypt works across skipped keys and DH
// ratchet steps (which use the private key). The loaded session serializes
// as version 2, which reads back the same and, stripped of the public key,
// is the version 1 input.
func TestStateVersion1(t *testing.T) {
	data, err := os.ReadFile("testdata/state_v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var v stateV1
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.States) != 6 {
		t.Fatalf("%d states in testdata/state_v1.json, want 6", len(v.States))
	}
	for _, c := range v.States {
		t.Run(c.Profile+"/"+c.Name, func(t *testing.T) {
			p := profileByString(t, c.Profile)
			in := mustHex(t, c.State)
			if in[0] != stateVersionV1 {
				t.Fatalf("state version %d, want 1", in[0])
			}
			var s Session
			if err := s.UnmarshalBinary(in); err != nil {
				t.Fatalf("UnmarshalBinary(v1): %v", err)
			}
			if s.Profile() != p {
				t.Fatalf("profile %v, want %v", s.Profile(), p)
			}
			v2 := mustMarshal(t, &s)
			if v2[0] != stateVersion || len(v2) != len(in)+KeySize {
				t.Fatalf("re-serialized as version %d, %d bytes; want version %d, %d bytes", v2[0], len(v2), stateVersion, len(in)+KeySize)
			}
			if !bytes.Equal(toV1(t, v2), in) {
				t.Fatal("version 2 state without its public key differs from the version 1 input")
			}
			var again Session
			if err := again.UnmarshalBinary(v2); err != nil {
				t.Fatalf("UnmarshalBinary(v2): %v", err)
			}
			if !bytes.Equal(mustMarshal(t, &again), v2) {
				t.Fatal("version 2 state does not round-trip")
			}
			for i, op := range c.Ops {
				pt, msg := mustHex(t, op.Plaintext), mustHex(t, op.Message)
				for _, s := range []*Session{&s, &again} {
					switch op.Op {
					case "encrypt":
						got, err := s.Encrypt(pt)
						if err != nil {
							t.Fatalf("op %d: Encrypt: %v", i, err)
						}
						if !bytes.Equal(got, msg) {
							t.Fatalf("op %d: Encrypt gives\n%x\nthe live session gave\n%x", i, got, msg)
						}
					case "decrypt":
						got, err := s.Decrypt(msg)
						if err != nil {
							t.Fatalf("op %d: Decrypt: %v", i, err)
						}
						if !bytes.Equal(got, pt) {
							t.Fatalf("op %d: Decrypt = %q, want %q", i, got, pt)
						}
					default:
						t.Fatalf("op %d: unknown op %q", i, op.Op)
					}
				}
			}
		})
	}
}

// TestStoredPublicKeyChecked: a version 2 state whose public key is not
// that of its private key loads (loading does no scalar multiplication),
// but the first DH ratchet step refuses it with ErrInvalidState and
// changes nothing.
func TestStoredPublicKeyChecked(t *testing.T) {
	forProfiles(t, func(t *testing.T, p *Profile) {
		pr := newPair(t, p)
		good := mustMarshal(t, pr.alice)
		bad := bytes.Clone(good)
		bad[ownPubOffset(p)] ^= 0x40
		var s Session
		if err := s.UnmarshalBinary(bad); err != nil {
			t.Fatalf("UnmarshalBinary: %v", err)
		}
		msg := pr.send(pr.bob, "a new ratchet key for alice") // bob answers: a DH step for alice
		_, err := s.Decrypt(msg)
		if !errors.Is(err, ErrInvalidState) {
			t.Fatalf("Decrypt = %v, want ErrInvalidState", err)
		}
		if !bytes.Equal(mustMarshal(t, &s), bad) {
			t.Fatal("failed Decrypt changed the session")
		}
		// The intact state decrypts the same message.
		if err := s.UnmarshalBinary(good); err != nil {
			t.Fatal(err)
		}
		if pr.deliver(&s, msg) != "a new ratchet key for alice" {
			t.Fatal("wrong plaintext")
		}
	})
}

// TestKDFMatchesStandardLibrary compares the HMAC and HKDF of kdf.go with
// crypto/hmac and crypto/hkdf on random inputs of every size they are used
// with (and some they are not).
func TestKDFMatchesStandardLibrary(t *testing.T) {
	w := getWork()
	for _, keyLen := range []int{0, 1, 31, 32, 33, 63, 64, 65, 100} {
		for _, msgLen := range []int{0, 1, 55, 56, 63, 64, 65, 119, 120, 200, 1000} {
			key, msg := randBytes(t, keyLen), randBytes(t, msgLen)
			m := hmac.New(sha256.New, key)
			m.Write(msg)
			want := m.Sum(nil)
			w.prepare(&w.key, key)
			half := msgLen / 3
			if got := w.mac(&w.key, msg[:half], nil, msg[half:]); !bytes.Equal(got[:], want) {
				t.Fatalf("HMAC key %d bytes, message %d bytes: %x, want %x", keyLen, msgLen, got, want)
			}
		}
	}
	for _, info := range []string{"", "OMEMO Root Chain", "OMEMO Message Key Material", "WhisperRatchet", "WhisperMessageKeys", string(make([]byte, 100))} {
		for _, n := range []int{1, 32, 33, 64, 80, 200} {
			var ikm [KeySize]byte
			copy(ikm[:], randBytes(t, KeySize))
			salt := randBytes(t, 32)
			for _, zero := range []bool{false, true} {
				if zero {
					salt = make([]byte, 32)
				}
				want, err := hkdf.Key(sha256.New, ikm[:], salt, info, n)
				if err != nil {
					t.Fatal(err)
				}
				out := make([]byte, n)
				k := zeroSaltKey
				if !zero {
					var sk hmacKey
					w.prepare(&sk, salt)
					k = &sk
				}
				w.hkdf(out, k, &ikm, []byte(info))
				if !bytes.Equal(out, want) {
					t.Fatalf("HKDF info %q, %d bytes, zero salt %v: %x, want %x", info, n, zero, out, want)
				}
			}
		}
	}
	// A work goes back to the pool wiped.
	w.prepare(&w.key, randBytes(t, 32))
	w.mac(&w.key, randBytes(t, 10))
	w.mk = [KeySize]byte{1}
	w.wipe()
	if *w != (work{d: w.d}) {
		t.Fatal("work not wiped")
	}
	w.done()
}
