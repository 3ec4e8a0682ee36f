package legacy

import (
	"bytes"
	"encoding/xml"
	"errors"
	"reflect"
	"testing"
)

// fuzzXML checks, for one payload type, that parsing never panics, that
// every failure wraps ErrMalformed, and that whatever parses re-encodes to
// XML that parses to the same value and re-encodes to the same bytes.
func fuzzXML[T any](t *testing.T, data []byte) {
	var v T
	err := xml.Unmarshal(data, &v)
	if err != nil {
		return // xml syntax errors come from encoding/xml before UnmarshalXML runs
	}
	out, err := xml.Marshal(v)
	if err != nil {
		t.Fatalf("marshal of a parsed value: %v", err)
	}
	var w T
	if err := xml.Unmarshal(out, &w); err != nil {
		t.Fatalf("re-parse of %s: %v", out, err)
	}
	if !reflect.DeepEqual(v, w) {
		t.Fatalf("re-parse differs:\n%#v\n%#v", v, w)
	}
	out2, _ := xml.Marshal(w)
	if !bytes.Equal(out, out2) {
		t.Fatalf("re-encoding differs:\n%s\n%s", out, out2)
	}
}

func FuzzDeviceList(f *testing.F) {
	v := loadVectors(f)
	f.Add([]byte(v.DeviceList.XML))
	f.Add([]byte(`<list ` + nsAttr + `><device id=" +012 "/><device id="12"/></list>`))
	f.Add([]byte(`<list ` + nsAttr + `></list>`))
	stored, _ := (&DeviceList{Devices: []uint32{1, 300, MaxDeviceID}}).MarshalBinary()
	f.Add(stored)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzXML[DeviceList](t, data)
		var l DeviceList
		err := l.UnmarshalBinary(data)
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("UnmarshalBinary error %v does not wrap ErrMalformed", err)
		}
		if err == nil && len(data) > 0 && data[0] != '<' {
			// The binary form is canonical.
			if out, err := l.MarshalBinary(); err != nil || !bytes.Equal(out, data) {
				t.Fatalf("re-encoding %x gives %x, %v", data, out, err)
			}
		}
	})
}

func FuzzBundle(f *testing.F) {
	v := loadVectors(f)
	f.Add([]byte(v.Bob.BundleXML))
	b, _ := xml.Marshal(Bundle{SignedPreKeyID: 1, SignedPreKey: testSPK, SignedPreKeySignature: testSig, IdentityKey: testIK,
		PreKeys: []PreKey{{ID: 0, Key: rep(10, 32)}}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzXML[Bundle](t, data)
		var b Bundle
		if err := b.UnmarshalBinary(data); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("UnmarshalBinary error %v does not wrap ErrMalformed", err)
		}
	})
}

func FuzzEncrypted(f *testing.F) {
	for _, m := range loadVectors(f).Messages {
		f.Add([]byte(m.XML))
	}
	b, _ := xml.Marshal(Encrypted{SID: 1, Keys: []Key{{RID: 5, Data: []byte{1}}, {RID: 5, PreKey: true, Data: []byte{2}}}, IV: rep(8, LegacyIVSize), Payload: []byte{}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzXML[Encrypted](t, data)
	})
}

// fuzzSessions is one confirmed conversation shared by the session fuzz
// targets (building it per input would dominate their time).
var fuzzSessions struct {
	alice, bob *device
	a, b       *Session
	msg, kex   []byte
}

func setupFuzzSessions(f *testing.F) {
	if fuzzSessions.a != nil {
		return
	}
	alice, bob, a, b := conversationPair(f)
	msg, _, err := b.Encrypt(rep(2, KeyMaterialSize))
	if err != nil {
		f.Fatal(err)
	}
	kex, _, err := a.Clone().Encrypt(rep(3, KeyMaterialSize))
	if err != nil {
		f.Fatal(err)
	}
	fuzzSessions.alice, fuzzSessions.bob, fuzzSessions.a, fuzzSessions.b = alice, bob, a, b
	fuzzSessions.msg, fuzzSessions.kex = msg, kex
}

// FuzzSessionDecrypt feeds arbitrary <key> contents to a session and to
// the responder path: no panic, a failure is ErrDecryption (or ErrMalformed
// from parsing a key exchange) and changes nothing.
func FuzzSessionDecrypt(f *testing.F) {
	setupFuzzSessions(f)
	fs := &fuzzSessions
	f.Add(fs.msg, false)
	f.Add(fs.kex, true)
	f.Add([]byte{0x33}, false)
	f.Fuzz(func(t *testing.T, data []byte, preKey bool) {
		if !preKey {
			s := fs.a.Clone()
			before, _ := s.MarshalBinary()
			if _, err := s.Decrypt(data); err != nil {
				if !errors.Is(err, ErrDecryption) {
					t.Fatalf("Decrypt: %v", err)
				}
				after, _ := s.MarshalBinary()
				if !bytes.Equal(before, after) {
					t.Fatal("failed Decrypt changed the session")
				}
			}
			return
		}
		kex, err := ParseKeyExchange(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseKeyExchange: %v", err)
			}
			return
		}
		if len(kex.IdentityKey) != PublicKeySize || len(kex.BaseKey) != PublicKeySize {
			t.Fatal("parsed key exchange with wrong key sizes")
		}
		if fs.b.Matches(kex) {
			if _, err := fs.b.Clone().DecryptKeyExchange(kex); err != nil && !errors.Is(err, ErrDecryption) {
				t.Fatalf("DecryptKeyExchange: %v", err)
			}
			return
		}
		pk := fs.bob.pks[kex.PreKeyID]
		if pk == nil {
			pk = fs.bob.pks[1]
		}
		if _, _, err := Respond(fs.bob.ik, kex, fs.bob.spk, pk); err != nil && err != ErrDecryption {
			t.Fatalf("Respond: %v", err)
		}
	})
}

// FuzzSessionUnmarshal: arbitrary stored sessions never panic, and what
// loads re-encodes to the same bytes.
func FuzzSessionUnmarshal(f *testing.F) {
	setupFuzzSessions(f)
	a, _ := fuzzSessions.a.MarshalBinary()
	b, _ := fuzzSessions.b.MarshalBinary()
	f.Add(a)
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var s Session
		if err := s.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, ErrInvalidSession) {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			return
		}
		out, err := s.MarshalBinary()
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("re-encoding differs (%v)", err)
		}
		_, _, _ = s.Encrypt([]byte{1})
	})
}

// FuzzDecryptPayload: arbitrary payloads, IVs and key material never
// panic and fail only with ErrDecryption or ErrMalformed.
func FuzzDecryptPayload(f *testing.F) {
	for _, v := range loadVectors(f).GCM {
		f.Add([]byte(v.Payload), []byte(v.IV), append(append([]byte{}, v.Key...), v.Tag...))
	}
	f.Fuzz(func(t *testing.T, payload, iv, material []byte) {
		if _, err := DecryptPayload(payload, iv, material); err != nil && err != ErrDecryption && !errors.Is(err, ErrMalformed) {
			t.Fatalf("DecryptPayload: %v", err)
		}
	})
}
