package sce

import (
	"bytes"
	"encoding/xml"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func benchStanza(b *testing.B) *Stanza {
	return mustStanza(b, `<message xmlns='jabber:client' to='juliet@capulet.lit/balcony' from='romeo@montague.lit/orchard' type='chat' id='m1'>`+
		`<body>`+strings.Repeat("a", 1024)+`</body><active xmlns='http://jabber.org/protocol/chatstates'/>`+
		`<origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message>`)
}

// sealOpen is the whole SCE path of one message: SealBytes, Parse, Verify,
// Open (no encryption).
func sealOpen(b *testing.B, st *Stanza, now func() time.Time) {
	outer, _, pt, err := SealBytes(st, SealOptions{Profile: OMEMO2(), Add: AffixTime | AffixTo, Now: now})
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

// BenchmarkSealOpen1KiB is sealOpen of a message with a 1 KiB body.
func BenchmarkSealOpen1KiB(b *testing.B) {
	st := benchStanza(b)
	now := time.Now
	b.ReportAllocs()
	for b.Loop() {
		sealOpen(b, st, now)
	}
}

// floorPlaintext is the serialized envelope of the benchmarks' message.
func floorPlaintext(b *testing.B) []byte {
	_, _, pt, err := SealBytes(benchStanza(b), SealOptions{Profile: OMEMO2(), Add: AffixTime | AffixTo})
	if err != nil {
		b.Fatal(err)
	}
	return pt
}

// floorRoundTrip is encoding/xml decoding the serialized envelope token by
// token and encoding the tokens again: the XML work sealOpen cannot avoid
// (it encodes once and decodes once).
func floorRoundTrip(b *testing.B, pt []byte, out *bytes.Buffer) {
	out.Reset()
	d := xml.NewDecoder(bytes.NewReader(pt))
	e := xml.NewEncoder(out)
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

// BenchmarkFloorXMLRoundTrip1KiB is the floor for BenchmarkSealOpen1KiB.
func BenchmarkFloorXMLRoundTrip1KiB(b *testing.B) {
	pt := floorPlaintext(b)
	var out bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		floorRoundTrip(b, pt, &out)
	}
}

// BenchmarkSealOpenRatio times sealOpen and its floor in alternating
// iterations, so that load from other processes hits both alike, and
// reports the ratio of the total times as "x-floor" and of the median
// iteration times, less sensitive to preemption, as "x-floor-median".
func BenchmarkSealOpenRatio(b *testing.B) {
	st := benchStanza(b)
	now := time.Now
	pt := floorPlaintext(b)
	var out bytes.Buffer
	var hush, floor []time.Duration
	for b.Loop() {
		t0 := time.Now()
		sealOpen(b, st, now)
		t1 := time.Now()
		floorRoundTrip(b, pt, &out)
		hush, floor = append(hush, t1.Sub(t0)), append(floor, time.Since(t1))
	}
	var h, f time.Duration
	for i := range hush {
		h, f = h+hush[i], f+floor[i]
	}
	b.ReportMetric(float64(h)/float64(f), "x-floor")
	b.ReportMetric(float64(median(hush))/float64(median(floor)), "x-floor-median")
}

func median(d []time.Duration) time.Duration {
	d = slices.Clone(d)
	slices.Sort(d)
	return d[len(d)/2]
}

// BenchmarkParse1KiB is Parse of the serialized envelope of a message
// with a 1 KiB body; BenchmarkFloorDecode1KiB is its floor.
func BenchmarkParse1KiB(b *testing.B) {
	pt := floorPlaintext(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(pt)))
	for b.Loop() {
		if _, err := Parse(pt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFloorDecode1KiB is encoding/xml's decoder reading the envelope
// of BenchmarkParse1KiB token by token, the floor of Parse.
func BenchmarkFloorDecode1KiB(b *testing.B) {
	pt := floorPlaintext(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(pt)))
	for b.Loop() {
		d := xml.NewDecoder(bytes.NewReader(pt))
		for {
			_, err := d.RawToken()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}
