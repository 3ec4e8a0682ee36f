package legacy

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// TestPayloadVectors decrypts python-oldmemo's (cryptography's) GCM
// payloads, 12- and 16-byte IVs, and re-encrypts them byte for byte.
func TestPayloadVectors(t *testing.T) {
	for i, v := range loadVectors(t).GCM {
		t.Run(fmt.Sprintf("%d/iv%d", i, len(v.IV)), func(t *testing.T) {
			material := append(append([]byte{}, v.Key...), v.Tag...)
			body, err := DecryptPayload(v.Payload, v.IV, material)
			if err != nil {
				t.Fatalf("DecryptPayload: %v", err)
			}
			if !bytes.Equal(body, v.Body) {
				t.Fatalf("body %q, want %q", body, v.Body)
			}
			key := make([]byte, PayloadKeySize, KeyMaterialSize)
			copy(key, v.Key)
			payload, m, err := sealPayload(key, v.IV, v.Body)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(payload, v.Payload) || !bytes.Equal(m, material) {
				t.Fatalf("sealPayload: payload %x material %x, want %x %x", payload, m, v.Payload, material)
			}
		})
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	if _, _, _, err := EncryptPayload(nil); err != ErrEmptyBody {
		t.Fatalf("EncryptPayload(empty): %v, want ErrEmptyBody", err)
	}
	for _, body := range [][]byte{[]byte("a"), bytes.Repeat([]byte("hush "), 1000)} {
		payload, iv, material, err := EncryptPayload(body)
		if err != nil {
			t.Fatal(err)
		}
		if len(iv) != IVSize || len(material) != KeyMaterialSize || len(payload) != len(body) {
			t.Fatalf("sizes: iv %d material %d payload %d for body %d", len(iv), len(material), len(payload), len(body))
		}
		got, err := DecryptPayload(payload, iv, material)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("round trip: %q %v", got, err)
		}
	}
	// Fresh key and IV every time.
	_, iv1, m1, _ := EncryptPayload([]byte("x"))
	_, iv2, m2, _ := EncryptPayload([]byte("x"))
	if bytes.Equal(iv1, iv2) || bytes.Equal(m1, m2) {
		t.Fatal("key or IV repeated")
	}
}

// TestBadPayload: every failure is a typed error, ErrDecryption exactly
// (no oracle) for anything that depends on the key material, ErrMalformed
// for an IV of the wrong size.
func TestBadPayload(t *testing.T) {
	body := []byte("Hello, Juliet!")
	payload, iv, material, err := EncryptPayload(body)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 1
		return c
	}
	for _, tc := range []struct {
		name                  string
		payload, iv, material []byte
		want                  error
	}{
		{"tag does not verify", payload, iv, flip(material, KeyMaterialSize-1), ErrDecryption},
		{"wrong key", payload, iv, flip(material, 0), ErrDecryption},
		{"ciphertext changed", flip(payload, 3), iv, material, ErrDecryption},
		{"ciphertext truncated", payload[:len(payload)-1], iv, material, ErrDecryption},
		{"iv changed", payload, flip(iv, 0), material, ErrDecryption},
		{"12-byte iv padded to 16", payload, append(bytes.Clone(iv), 0, 0, 0, 0), material, ErrDecryption},
		{"key transport material (16 bytes)", payload, iv, material[:PayloadKeySize], ErrDecryption},
		{"33-byte material", payload, iv, append(bytes.Clone(material), 0), ErrDecryption},
		{"empty material", payload, iv, nil, ErrDecryption},
		{"8-byte iv", payload, iv[:8], material, ErrMalformed},
		{"13-byte iv", payload, append(bytes.Clone(iv), 0), material, ErrMalformed},
		{"no iv", payload, nil, material, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecryptPayload(tc.payload, tc.iv, tc.material)
			if !errors.Is(err, tc.want) || got != nil {
				t.Fatalf("got %q, %v; want %v", got, err, tc.want)
			}
			if tc.want == ErrDecryption && err != ErrDecryption {
				t.Fatalf("error %q says more than ErrDecryption", err)
			}
		})
	}
}

func TestKeyTransport(t *testing.T) {
	iv, material, err := KeyTransport()
	if err != nil {
		t.Fatal(err)
	}
	if len(iv) != IVSize || len(material) != PayloadKeySize {
		t.Fatalf("iv %d bytes, material %d bytes", len(iv), len(material))
	}
	key, err := TransportedKey(material)
	if err != nil || !bytes.Equal(key, material) {
		t.Fatalf("TransportedKey: %x %v", key, err)
	}
	long := append(bytes.Clone(material), bytes.Repeat([]byte{9}, TagSize)...)
	if key, err := TransportedKey(long); err != nil || !bytes.Equal(key, material) {
		t.Fatalf("TransportedKey of key ‖ tag: %x %v", key, err)
	}
	for _, n := range []int{0, 15, 17, 31, 33, 48} {
		if _, err := TransportedKey(make([]byte, n)); err != ErrDecryption {
			t.Errorf("TransportedKey(%d bytes): %v, want ErrDecryption", n, err)
		}
	}
}
