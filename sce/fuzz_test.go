package sce

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

var allKinds = []Kind{KindSCE, KindSigncrypt, KindSign, KindCrypt}

// envelopeSeeds returns every envelope the tests use.
func envelopeSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, tc := range envelopeEncodingCases {
		seeds = append(seeds, []byte(tc.XML))
	}
	for _, tc := range parseErrorCases {
		seeds = append(seeds, []byte(tc.in))
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.xml"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

func stanzaSeeds() [][]byte {
	seeds := [][]byte{[]byte(fullMessage), []byte(chat), []byte(groupchat)}
	for _, tc := range stanzaEncodingCases {
		seeds = append(seeds, []byte(tc.XML))
	}
	return seeds
}

// FuzzParse checks that whatever ParseKind accepts, Marshal writes and
// ParseKind reads back unchanged, and that a second Marshal gives the same
// bytes.
func FuzzParse(f *testing.F) {
	for _, s := range envelopeSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ox, oxErr := ParseOX(data)
		for _, k := range allKinds {
			env, err := ParseKind(data, k)
			if k.ox() && (err == nil) != (oxErr == nil && ox.Kind == k) {
				t.Fatalf("ParseKind(%v): %v; ParseOX: %v", k, err, oxErr)
			}
			if err != nil {
				continue
			}
			if k.ox() && !reflect.DeepEqual(ox, env) {
				t.Fatalf("ParseOX and ParseKind(%v) differ:\n%#v\n%#v", k, ox, env)
			}
			// ParseKind resolves namespaces itself; encoding/xml's Token,
			// under UnmarshalXML, must read what it accepts the same way.
			var dec Envelope
			if err := xml.Unmarshal(data, &dec); err != nil || !reflect.DeepEqual(&dec, env) {
				t.Fatalf("xml.Unmarshal of accepted input: %v\n%#v\n%#v", err, &dec, env)
			}
			b, err := env.Marshal()
			if err != nil {
				t.Fatalf("Marshal of a parsed %v: %v", k, err)
			}
			again, err := ParseKind(b, k)
			if err != nil {
				t.Fatalf("reparse of %q: %v", b, err)
			}
			if !reflect.DeepEqual(again, env) {
				t.Fatalf("round trip changed the envelope:\n%#v\n%#v", env, again)
			}
			b2, err := again.Marshal()
			if err != nil || !bytes.Equal(b, b2) {
				t.Fatalf("second Marshal: %q, %v; want %q", b2, err, b)
			}
			var un Envelope
			if err := xml.Unmarshal(b, &un); err != nil || !reflect.DeepEqual(&un, env) {
				t.Fatalf("xml.Unmarshal: %v", err)
			}
		}
	})
}

// FuzzParseStanza checks the stanza round trip, and that Seal of any parsed
// stanza gives an envelope that survives serialization.
func FuzzParseStanza(f *testing.F) {
	for _, s := range stanzaSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseStanza(data)
		if err != nil {
			return
		}
		b, err := st.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed stanza: %v", err)
		}
		again, err := ParseStanza(b)
		if err != nil {
			t.Fatalf("reparse of %q: %v", b, err)
		}
		if !reflect.DeepEqual(again, st) {
			t.Fatalf("round trip changed the stanza:\n%#v\n%#v", st, again)
		}
		if r, err := ReadStanza(st.TokenReader()); err != nil || !reflect.DeepEqual(r, st) {
			t.Fatalf("ReadStanza(TokenReader()): %v", err)
		}
		// ParseStanza resolves namespaces itself; read through encoding/xml's
		// Token, the accepted input must give the same stanza.
		if r, err := ReadStanza(xml.NewDecoder(bytes.NewReader(data))); err != nil || !reflect.DeepEqual(r, st) {
			t.Fatalf("ReadStanza(xml.Decoder) of accepted input: %v\n%#v\n%#v", err, r, st)
		}
		for _, p := range []Profile{OMEMO2(), OX(KindSigncrypt)} {
			outer, env, pt, err := SealBytes(st, SealOptions{Profile: p})
			if err != nil {
				continue
			}
			if _, err := outer.Marshal(); err != nil {
				t.Fatalf("outer Marshal: %v", err)
			}
			eb, err := env.Marshal()
			if err != nil {
				t.Fatalf("envelope Marshal: %v", err)
			}
			if !bytes.Equal(pt, eb) {
				t.Fatalf("SealBytes gave %q, Marshal %q", pt, eb)
			}
			parsed, err := ParseKind(eb, p.Kind)
			if err != nil || !reflect.DeepEqual(parsed, env) {
				t.Fatalf("sealed envelope does not round trip: %v", err)
			}
		}
	})
}

// FuzzOpenVerify checks that Verify, Open and Forwarded never panic and that
// whatever Open returns can be serialized.
func FuzzOpenVerify(f *testing.F) {
	envs := envelopeSeeds(f)
	for i, s := range stanzaSeeds() {
		f.Add(s, envs[i%len(envs)])
	}
	f.Fuzz(func(t *testing.T, stanza, envelope []byte) {
		st, err := ParseStanza(stanza)
		if err != nil {
			return
		}
		stanzas := []*Stanza{st}
		if in, _, err := Forwarded(st); err == nil {
			stanzas = append(stanzas, in)
		}
		for _, k := range allKinds {
			env, err := ParseKind(envelope, k)
			if err != nil {
				continue
			}
			for _, s := range stanzas {
				for _, p := range []Profile{OMEMO2(), OX(k)} {
					_ = Verify(env, s, p, VerifyOptions{Now: fixed(now0)})
					_ = Verify(env, s, p, VerifyOptions{GroupChat: true})
				}
				for _, name := range []xml.Name{encName, {Space: nsOX, Local: "openpgp"}} {
					opened, err := Open(s, env, name)
					if err != nil {
						continue
					}
					if _, err := opened.Marshal(); err != nil {
						t.Fatalf("Marshal of an opened stanza: %v", err)
					}
				}
			}
		}
	})
}

// FuzzDateTime checks that every accepted stamp formats and parses back to
// the same instant.
func FuzzDateTime(f *testing.F) {
	for _, s := range []string{"2004-01-25T06:05:00+01:00", "1969-07-21T02:56:15Z", "2024-02-29T23:59:59.123456789-12:30", "0001-01-01T00:00:01Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := ParseDateTime(s)
		if err != nil {
			return
		}
		again, err := ParseDateTime(FormatDateTime(tm))
		if err != nil || !again.Equal(tm) {
			t.Fatalf("%q → %q → %v, %v", s, FormatDateTime(tm), again, err)
		}
	})
}
