package wire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// fuzzCanonical checks the property every strict codec here has: decoding
// never panics, a failure is ErrMalformed, and an accepted input re-encodes to
// exactly the same bytes.
func fuzzCanonical(t *testing.T, m message, in []byte) {
	if err := m.Unmarshal(in); err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v is not ErrMalformed", err)
		}
		return
	}
	if out := m.Marshal(); !bytes.Equal(out, in) {
		t.Fatalf("accepted %x but re-encodes to %x", in, out)
	}
	if m.Size() != len(in) {
		t.Fatalf("Size = %d for %d bytes", m.Size(), len(in))
	}
}

func addSeeds(f *testing.F, name string, valid ...[]byte) {
	for _, b := range valid {
		f.Add(b)
	}
	for _, c := range malformedCases {
		if len(c.name) > len(name) && c.name[:len(name)] == name && len(c.in) < 4096 {
			f.Add(c.in)
		}
	}
}

func FuzzOMEMOMessage(f *testing.F) {
	v := loadVectors(f)
	for _, c := range v.OMEMOMessage {
		f.Add([]byte(c.Encoded))
	}
	addSeeds(f, "omemo/", validOMEMOMessage)
	f.Fuzz(func(t *testing.T, in []byte) { fuzzCanonical(t, &OMEMOMessage{}, in) })
}

func FuzzOMEMOAuthenticatedMessage(f *testing.F) {
	v := loadVectors(f)
	for _, c := range v.OMEMOAuthenticatedMessage {
		f.Add([]byte(c.Encoded))
	}
	addSeeds(f, "auth/", validAuth)
	f.Fuzz(func(t *testing.T, in []byte) { fuzzCanonical(t, &OMEMOAuthenticatedMessage{}, in) })
}

func FuzzOMEMOKeyExchange(f *testing.F) {
	v := loadVectors(f)
	for _, c := range v.OMEMOKeyExchange {
		f.Add([]byte(c.Encoded))
	}
	addSeeds(f, "kex/", validKEX)
	f.Fuzz(func(t *testing.T, in []byte) { fuzzCanonical(t, &OMEMOKeyExchange{}, in) })
}

// FuzzSignalMessage feeds framed SignalMessages (version ‖ protobuf ‖ MAC).
func FuzzSignalMessage(f *testing.F) {
	v := loadVectors(f)
	for _, c := range v.SignalMessage {
		f.Add([]byte(c.Framed))
	}
	f.Add(validFramed)
	for _, c := range malformedCases {
		if c.name[:7] == "signal/" {
			f.Add(append(append([]byte{LegacyVersion}, c.in...), key(8)...))
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, signed, mac, err := ParseFramedSignalMessage(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if out := append(m.AppendFramed(nil), mac...); !bytes.Equal(out, in) {
			t.Fatalf("accepted %x but re-encodes to %x", in, out)
		}
		if !bytes.Equal(append(append([]byte{}, signed...), mac...), in) {
			t.Fatal("signed ‖ mac is not the input")
		}
		fuzzCanonical(t, &SignalMessage{}, signed[1:])
	})
}

// FuzzPreKeySignalMessage feeds framed PreKeySignalMessages. Field order is
// free here, so the property is: the canonical re-encoding decodes to the
// same value and is itself stable.
func FuzzPreKeySignalMessage(f *testing.F) {
	v := loadVectors(f)
	for _, c := range v.PreKeySignalMessage {
		f.Add([]byte(c.Framed))
	}
	f.Add(append([]byte{LegacyVersion}, validPreKey...))
	addSeeds(f, "prekey/")
	f.Fuzz(func(t *testing.T, in []byte) {
		var m PreKeySignalMessage
		if err := m.UnmarshalFramed(in); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		out := m.MarshalFramed()
		if len(out) != len(in) {
			t.Fatalf("accepted %d bytes but re-encodes to %d", len(in), len(out))
		}
		var again PreKeySignalMessage
		if err := again.UnmarshalFramed(out); err != nil {
			t.Fatalf("re-encoding %x rejected: %v", out, err)
		}
		if !reflect.DeepEqual(m, again) {
			t.Fatalf("re-encoding decodes to %+v, want %+v", again, m)
		}
		if out2 := again.MarshalFramed(); !bytes.Equal(out, out2) {
			t.Fatal("canonical encoding is not stable")
		}
	})
}
