package trust_test

import (
	"errors"
	"os"
	"reflect"
	"testing"

	"hush.im/trust"
)

// FuzzParseMessage: the SAS parser never panics, fails only with
// ErrMalformed (or an XML syntax error before the first element), and
// what it accepts re-encodes to a form that parses to the same value.
func FuzzParseMessage(f *testing.F) {
	for _, tc := range sasTable {
		f.Add(tc.xml)
	}
	f.Add(`<reveal xmlns="urn:hush:sas:0" sid="` + sidB + `"><nonce>AAAA</nonce></reveal>`)
	f.Fuzz(func(t *testing.T, s string) {
		d, start, err := firstStart(s)
		if err != nil {
			return
		}
		m, err := trust.ParseMessage(d, start)
		if err != nil {
			if !errors.Is(err, trust.ErrMalformed) {
				t.Fatalf("error not wrapping ErrMalformed: %v", err)
			}
			return
		}
		out := marshal(t, m)
		m2, err := parseMessage(out)
		if err != nil {
			t.Fatalf("re-parsing %s: %v", out, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed %#v into %#v", m, m2)
		}
		if out2 := marshal(t, m2); out2 != out {
			t.Fatalf("encoding not stable:\n%s\n%s", out, out2)
		}
	})
}

// FuzzTrustMessage: the same for trust messages.
func FuzzTrustMessage(f *testing.F) {
	for _, tc := range tmTable {
		f.Add(tc.xml)
	}
	if raw, err := os.ReadFile("testdata/xep-0434-example.xml"); err == nil {
		f.Add(string(raw))
	} else {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, start, err := firstStart(s)
		if err != nil {
			return
		}
		var tm trust.TrustMessage
		if err := tm.UnmarshalXML(d, start); err != nil {
			if !errors.Is(err, trust.ErrMalformed) {
				t.Fatalf("error not wrapping ErrMalformed: %v", err)
			}
			return
		}
		out := marshal(t, &tm)
		tm2, err := parseTM(out)
		if err != nil {
			t.Fatalf("re-parsing %s: %v", out, err)
		}
		if !reflect.DeepEqual(&tm, tm2) {
			t.Fatalf("round trip changed %#v into %#v", tm, tm2)
		}
	})
}
