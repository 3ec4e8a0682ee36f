package sce

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
)

func benchStanza(b *testing.B) *Stanza {
	return mustStanza(b, `<message xmlns='jabber:client' to='juliet@capulet.lit/balcony' from='romeo@montague.lit/orchard' type='chat' id='m1'>`+
		`<body>`+strings.Repeat("a", 1024)+`</body><active xmlns='http://jabber.org/protocol/chatstates'/>`+
		`<origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message>`)
}

// BenchmarkSealOpen1KiB is the whole SCE path of one message with a 1 KiB
// body: Seal, Marshal, Parse, Verify, Open (no encryption).
func BenchmarkSealOpen1KiB(b *testing.B) {
	st := benchStanza(b)
	now := time.Now
	b.ReportAllocs()
	for b.Loop() {
		outer, env, err := Seal(st, SealOptions{Profile: OMEMO2(), Add: AffixTime | AffixTo, Now: now})
		if err != nil {
			b.Fatal(err)
		}
		pt, err := env.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		outer.Children = append(outer.Children, TextElement(encName, ""))
		got, err := Parse(pt)
		if err != nil {
			b.Fatal(err)
		}
		if err := Verify(got, outer, OMEMO2(), VerifyOptions{Now: now}); err != nil {
			b.Fatal(err)
		}
		if _, err := Open(outer, got, encName); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFloorXMLRoundTrip1KiB is the floor for BenchmarkSealOpen1KiB:
// encoding/xml decoding the same serialized envelope token by token and
// encoding the tokens again, the XML work SealOpen cannot avoid (it does
// this once plus a second, measuring, encode).
func BenchmarkFloorXMLRoundTrip1KiB(b *testing.B) {
	_, env, err := Seal(benchStanza(b), SealOptions{Profile: OMEMO2(), Add: AffixTime | AffixTo})
	if err != nil {
		b.Fatal(err)
	}
	pt, err := env.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	var out bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		out.Reset()
		d := xml.NewDecoder(bytes.NewReader(pt))
		e := xml.NewEncoder(&out)
		for {
			tok, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if err := e.EncodeToken(tok); err != nil {
				b.Fatal(err)
			}
		}
		if err := e.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse1KiB(b *testing.B) {
	_, env, err := Seal(benchStanza(b), SealOptions{Profile: OMEMO2(), Add: AffixTime | AffixTo})
	if err != nil {
		b.Fatal(err)
	}
	pt, _ := env.Marshal()
	b.ReportAllocs()
	b.SetBytes(int64(len(pt)))
	for b.Loop() {
		if _, err := Parse(pt); err != nil {
			b.Fatal(err)
		}
	}
}
