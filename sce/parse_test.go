package sce

import (
	"encoding/xml"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	envOpen  = `<envelope xmlns='urn:xmpp:sce:1'>`
	envClose = `</envelope>`
	content  = `<content><body xmlns='jabber:client'>hi</body></content>`
)

func sce(inner string) string { return envOpen + inner + envClose }

// parseErrorCases are envelopes Parse must reject. affix is the affix an
// AffixError must name, or 0.
var parseErrorCases = []struct {
	name  string
	in    string
	want  error
	affix Affix
}{
	{"empty input", ``, ErrInvalidXML, 0},
	{"not xml", `hello`, ErrInvalidXML, 0},
	{"old namespace", `<envelope xmlns='urn:xmpp:sce:0'>` + content + envClose, ErrNotEnvelope, 0},
	{"sce 0.3 shape", `<content xmlns='urn:xmpp:sce:0'><payload><body xmlns='jabber:client'>hi</body></payload></content>`, ErrNotEnvelope, 0},
	{"no namespace", `<envelope>` + content + envClose, ErrNotEnvelope, 0},
	{"other root", `<content xmlns='urn:xmpp:sce:1'/>`, ErrNotEnvelope, 0},
	{"missing content", sce(`<rpad>x</rpad>`), ErrMissingContent, 0},
	{"second content", sce(content + `<content/>`), ErrDuplicate, 0},
	{"content in other namespace", sce(`<content xmlns='urn:other'/>`), ErrMissingContent, 0},
	{"duplicate rpad", sce(content + `<rpad>a</rpad><rpad>b</rpad>`), ErrDuplicate, AffixRpad},
	{"duplicate time", sce(content + `<time stamp='2004-01-25T06:05:00+01:00'/><time stamp='2004-01-25T06:05:00+01:00'/>`), ErrDuplicate, AffixTime},
	{"duplicate to", sce(content + `<to jid='a@b.c'/><to jid='a@b.c'/>`), ErrDuplicate, AffixTo},
	{"duplicate from", sce(`<from jid='a@b.c'/>` + content + `<from jid='d@e.f'/>`), ErrDuplicate, AffixFrom},
	{"time without stamp", sce(content + `<time/>`), ErrMalformedAffix, AffixTime},
	{"stamp in other namespace", sce(content + `<time xmlns:x='urn:x' x:stamp='2004-01-25T06:05:00Z'/>`), ErrMalformedAffix, AffixTime},
	{"stamp without zone", sce(content + `<time stamp='2004-01-25T06:05:00'/>`), ErrMalformedAffix, AffixTime},
	{"stamp with space", sce(content + `<time stamp='2004-01-25 06:05:00Z'/>`), ErrMalformedAffix, AffixTime},
	{"stamp date only", sce(content + `<time stamp='2004-01-25'/>`), ErrMalformedAffix, AffixTime},
	{"stamp hour 24", sce(content + `<time stamp='2004-01-25T24:00:00Z'/>`), ErrMalformedAffix, AffixTime},
	{"stamp leap second", sce(content + `<time stamp='2016-12-31T23:59:60Z'/>`), ErrMalformedAffix, AffixTime},
	{"stamp 30 February", sce(content + `<time stamp='2004-02-30T06:05:00Z'/>`), ErrMalformedAffix, AffixTime},
	{"stamp month 13", sce(content + `<time stamp='2004-13-01T06:05:00Z'/>`), ErrMalformedAffix, AffixTime},
	{"stamp empty fraction", sce(content + `<time stamp='2004-01-25T06:05:00.Z'/>`), ErrMalformedAffix, AffixTime},
	{"stamp bad offset", sce(content + `<time stamp='2004-01-25T06:05:00+0100'/>`), ErrMalformedAffix, AffixTime},
	{"stamp offset 24h", sce(content + `<time stamp='2004-01-25T06:05:00+24:00'/>`), ErrMalformedAffix, AffixTime},
	{"stamp trailing", sce(content + `<time stamp='2004-01-25T06:05:00Zjunk'/>`), ErrMalformedAffix, AffixTime},
	{"stamp lowercase", sce(content + `<time stamp='2004-01-25t06:05:00z'/>`), ErrMalformedAffix, AffixTime},
	{"stamp year 0", sce(content + `<time stamp='0000-01-25T06:05:00Z'/>`), ErrMalformedAffix, AffixTime},
	{"stamp zero time", sce(content + `<time stamp='0001-01-01T00:00:00Z'/>`), ErrMalformedAffix, AffixTime},
	{"stamp past 9999", sce(content + `<time stamp='9999-12-31T23:59:59-01:00'/>`), ErrMalformedAffix, AffixTime},
	{"time with child", sce(content + `<time stamp='2004-01-25T06:05:00Z'><x xmlns='urn:x'/></time>`), ErrMalformedAffix, AffixTime},
	{"to without jid", sce(content + `<to/>`), ErrMalformedAffix, AffixTo},
	{"to empty jid", sce(content + `<to jid=''/>`), ErrMalformedAffix, AffixTo},
	{"to invalid jid", sce(content + `<to jid='@example.org'/>`), ErrMalformedAffix, AffixTo},
	{"to empty resource", sce(content + `<to jid='a@example.org/'/>`), ErrMalformedAffix, AffixTo},
	{"to with text", sce(content + `<to jid='a@b.c'>x</to>`), ErrMalformedAffix, AffixTo},
	{"from forbidden localpart", sce(content + `<from jid='a&lt;b@c.d'/>`), ErrMalformedAffix, AffixFrom},
	{"rpad with child", sce(content + `<rpad><b xmlns='urn:x'/></rpad>`), ErrMalformedAffix, AffixRpad},
	{"body without namespace", sce(`<content><body>hi</body></content>`), ErrInvalidContent, 0},
	{"body in sce namespace", sce(`<content><body xmlns='urn:xmpp:sce:1'>hi</body></content>`), ErrInvalidContent, 0},
	{"explicitly empty namespace", sce(`<content><body xmlns=''>hi</body></content>`), ErrInvalidContent, 0},
	{"nested envelope", sce(`<content>` + sce(content) + `</content>`), ErrInvalidContent, 0},
	{"text in content", sce(`<content>hi</content>`), ErrInvalidXML, 0},
	{"text in envelope", sce(content + `hi`), ErrInvalidXML, 0},
	{"comment", sce(content + `<!-- x -->`), ErrInvalidXML, 0},
	{"comment in body", sce(`<content><body xmlns='jabber:client'>a<!-- x -->b</body></content>`), ErrInvalidXML, 0},
	{"processing instruction", sce(`<?php x ?>` + content), ErrInvalidXML, 0},
	{"doctype", `<!DOCTYPE envelope [<!ENTITY x "y">]>` + sce(content), ErrInvalidXML, 0},
	{"undefined entity", sce(`<content><body xmlns='jabber:client'>&x;</body></content>`), ErrInvalidXML, 0},
	{"invalid char reference", sce(`<content><body xmlns='jabber:client'>&#0;</body></content>`), ErrInvalidXML, 0},
	{"invalid utf-8", sce(`<content><body xmlns='jabber:client'>` + "\xff\xfe" + `</body></content>`), ErrInvalidXML, 0},
	{"invalid utf-8 in attribute", sce(content + "<to jid='a\xc3@b.c'/>"), ErrInvalidXML, 0},
	{"control character", sce(`<content><body xmlns='jabber:client'>` + "\x01" + `</body></content>`), ErrInvalidXML, 0},
	{"overlong utf-8", sce(`<content><body xmlns='jabber:client'>` + "\xc0\xaf" + `</body></content>`), ErrInvalidXML, 0},
	{"surrogate utf-8", sce(`<content><body xmlns='jabber:client'>` + "\xed\xa0\x80" + `</body></content>`), ErrInvalidXML, 0},
	{"unclosed", envOpen + content, ErrInvalidXML, 0},
	{"mismatched end", envOpen + content + `</content>`, ErrInvalidXML, 0},
	{"trailing garbage", sce(content) + `x`, ErrInvalidXML, 0},
	{"second root", sce(content) + sce(content), ErrInvalidXML, 0},
	{"unbound prefix", sce(`<content><p:body xmlns='jabber:client'/></content>`), ErrInvalidXML, 0},
	{"unbound attribute prefix", sce(`<content><body xmlns='jabber:client' p:x='1'/></content>`), ErrInvalidXML, 0},
	{"duplicate attribute", sce(content + `<to jid='a@b.c' jid='d@e.f'/>`), ErrInvalidXML, 0},
	{"duplicate attribute after resolution", sce(`<content><b xmlns='urn:b' xmlns:p='urn:x' xmlns:q='urn:x' p:a='1' q:a='2'/></content>`), ErrInvalidXML, 0},
	{"namespace with white space", sce(`<content><body xmlns='jabber client'>hi</body></content>`), ErrInvalidXML, 0},
	{"prefix bound to another element", sce(`<content><a xmlns='urn:a' xmlns:p='urn:p'/><p:b xmlns='urn:b'/></content>`), ErrInvalidXML, 0},
	{"declaration not first", ` <?xml version='1.0'?>` + sce(content), ErrInvalidXML, 0},
	{"invalid utf-8 in declaration", "<?xml version='1.0' \xff?>" + sce(content), ErrInvalidXML, 0},
	{"control character in declaration", "<?xml version='1.0'\x01?>" + sce(content), ErrInvalidXML, 0},
	{"invalid utf-8 in element name", sce(`<content><body` + "\xff" + ` xmlns='jabber:client'/></content>`), ErrInvalidXML, 0},
	{"invalid utf-8 in prefix", sce(`<content><p` + "\xc3" + `:body xmlns:p` + "\xc3" + `='jabber:client'/></content>`), ErrInvalidXML, 0},
	{"invalid utf-8 in attribute name", sce(content + "<to jid='a@b.c' n\xff='1'/>"), ErrInvalidXML, 0},
	{"invalid utf-8 in CDATA", sce(`<content><body xmlns='jabber:client'><![CDATA[` + "\xff" + `]]></body></content>`), ErrInvalidXML, 0},
	{"invalid utf-8 in comment", sce(content + "<!-- \xff -->"), ErrInvalidXML, 0},
	{"invalid utf-8 after the root", sce(content) + "\xff", ErrInvalidXML, 0},
	{"control character reference in attribute", sce(content + `<to jid='a@b.c&#1;'/>`), ErrInvalidXML, 0},
	{"prefix named like a declared namespace", sce(`<content xmlns:p='urn'><urn:a/></content>`), ErrInvalidXML, 0},
	{"attribute prefix named like a declared namespace", sce(`<content xmlns:p='urn'><a xmlns='urn:a' urn:x='1'/></content>`), ErrInvalidXML, 0},
	{"empty prefix declaration", sce(`<content><p:a xmlns:p=''/></content>`), ErrInvalidXML, 0},
	{"xmlns prefix declared", sce(`<content xmlns:xmlns='urn:x'><a xmlns='urn:a'/></content>`), ErrInvalidXML, 0},
	{"xml prefix rebound", sce(`<content xmlns:xml='urn:x'><a xmlns='urn:a'/></content>`), ErrInvalidXML, 0},
	{"xml namespace bound to another prefix", sce(`<content xmlns:x='http://www.w3.org/XML/1998/namespace'><a xmlns='urn:a'/></content>`), ErrInvalidXML, 0},
	{"xml namespace as default", sce(`<content><a xmlns='http://www.w3.org/XML/1998/namespace'/></content>`), ErrInvalidXML, 0},
	{"xmlns namespace bound", sce(`<content xmlns:x='http://www.w3.org/2000/xmlns/'><a xmlns='urn:a'/></content>`), ErrInvalidXML, 0},
	{"xmlns prefix on element", sce(`<content><xmlns:a xmlns='urn:a'/></content>`), ErrInvalidXML, 0},
	{"prefix declared twice", sce(`<content><p:a xmlns:p='urn:a' xmlns:p='urn:b'/></content>`), ErrInvalidXML, 0},
	{"default namespace declared twice", sce(`<content><a xmlns='urn:a' xmlns='urn:b'/></content>`), ErrInvalidXML, 0},
	{"end tag with another prefix for the same namespace", sce(`<content xmlns:p='urn:a' xmlns:q='urn:a'><p:a></q:a></content>`), ErrInvalidXML, 0},
	{"end tag without the prefix", sce(`<content xmlns:p='urn:a'><p:a></a></content>`), ErrInvalidXML, 0},
	{"prefix out of scope", sce(`<content><a xmlns='urn:a' xmlns:p='urn:p'><p:b/></a><p:c/></content>`), ErrInvalidXML, 0},
	{"declaration latin-1", `<?xml version='1.0' encoding='ISO-8859-1'?>` + sce(content), ErrInvalidXML, 0},
	{"unquoted attribute", sce(content + `<to jid=a@b.c/>`), ErrInvalidXML, 0},
}

func TestParseErrors(t *testing.T) {
	for _, tc := range parseErrorCases {
		t.Run(tc.name, func(t *testing.T) {
			env, err := Parse([]byte(tc.in))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Parse: %v (%#v), want %v", err, env, tc.want)
			}
			var ae *AffixError
			if tc.affix != 0 && (!errors.As(err, &ae) || ae.Affix != tc.affix) {
				t.Fatalf("Parse: %v, want an AffixError for %v", err, tc.affix)
			}
			if strings.Contains(err.Error(), "hi") {
				t.Fatalf("error %q quotes content", err)
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
	}{
		{"declaration", `<?xml version='1.0' encoding='UTF-8'?>` + "\n" + sce(content) + "\n"},
		{"affixes before content", sce(`<rpad/><from jid='a@b.c'/>` + content)},
		{"prefixed root", `<s:envelope xmlns:s='urn:xmpp:sce:1'><s:content><body xmlns='jabber:client'/></s:content></s:envelope>`},
		{"full JIDs (XEP-0420 §6.2)", sce(content + `<to jid='doctor@shakespeare.lit/pda'/>`)},
		{"stamp with offset and long fraction", sce(content + `<time stamp='2004-01-25T06:05:00.1234567891234-05:30'/>`)},
		{"unknown affix attribute", sce(content + `<to jid='a@b.c' note='x'/>`)},
		{"CDATA", sce(`<content><body xmlns='jabber:client'><![CDATA[<b>]]></body></content>`)},
		{"rpad with markup characters", sce(content + `<rpad>&lt;&amp;&gt;'"</rpad>`)},
		{"empty content", sce(`<content/>`)},
		{"namespace without scheme", sce(`<content><encrypted xmlns='eu.siacs.conversations.axolotl'/></content>`)},
		{"prefixed content", sce(`<content xmlns:o='urn:xmpp:omemo:2'><o:opt-out><o:reason>x</o:reason></o:opt-out></content>`)},
		{"prefix redeclared inside", sce(`<content xmlns:p='urn:a'><p:a><p:b xmlns:p='urn:b'/></p:a></content>`)},
		{"default namespace undeclared", sce(`<content><a xmlns='urn:a'><b xmlns=''/></a></content>`)},
		{"xml prefix declared as itself", sce(`<content xmlns:xml='http://www.w3.org/XML/1998/namespace'><body xmlns='jabber:client' xml:lang='en'>x</body></content>`)},
		{"prefixed attribute", sce(`<content><a xmlns='urn:a' xmlns:p='urn:p' p:x='1' x='2'/></content>`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse([]byte(tc.in)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestDateTime(t *testing.T) {
	for in, want := range map[string]time.Time{
		"1969-07-21T02:56:15Z":              time.Date(1969, 7, 21, 2, 56, 15, 0, time.UTC),
		"1969-07-20T21:56:15-05:00":         time.Date(1969, 7, 21, 2, 56, 15, 0, time.UTC),
		"2004-01-25T06:05:00+01:00":         time.Date(2004, 1, 25, 5, 5, 0, 0, time.UTC),
		"2004-01-25T06:05:00.5Z":            time.Date(2004, 1, 25, 6, 5, 0, 5e8, time.UTC),
		"2004-01-25T06:05:00.123456789987Z": time.Date(2004, 1, 25, 6, 5, 0, 123456789, time.UTC),
		"2000-02-29T00:00:00Z":              time.Date(2000, 2, 29, 0, 0, 0, 0, time.UTC),
	} {
		got, err := ParseDateTime(in)
		if err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("ParseDateTime(%q) = %v, %v; want %v", in, got, err, want)
		}
		if again, err := ParseDateTime(FormatDateTime(got)); err != nil || !again.Equal(got) {
			t.Errorf("format/parse of %q: %v, %v", in, again, err)
		}
	}
	for _, in := range []string{"1900-02-29T00:00:00Z", "2004-01-25T06:05:00+01:60", "2004-01-25T06:05:00-", "+2004-01-25T06:05:00Z", "2004-1-25T06:05:00Z",
		"2004-01-25t06:05:00Z", "2004-01-25T06:05:00z", "2004-01-25 06:05:00Z", "2004-01-25T06:05:00", "2004-01-25T06:05:00.Z",
		"0001-01-01T00:00:00Z", "0000-12-31T23:00:00Z", "2004-01-25T24:00:00Z", ""} {
		if _, err := ParseDateTime(in); !errors.Is(err, ErrDateTime) {
			t.Errorf("ParseDateTime(%q) = %v, want ErrDateTime", in, err)
		}
	}
	for _, tc := range []struct {
		in   time.Time
		want string
	}{
		{time.Date(2004, 1, 25, 6, 5, 0, 0, time.UTC), "2004-01-25T06:05:00Z"},
		{time.Date(2004, 1, 25, 6, 5, 0, 5e8, time.FixedZone("x", 3600)), "2004-01-25T05:05:00.5Z"},
		{time.Date(2004, 1, 25, 6, 5, 0, 1, time.UTC), "2004-01-25T06:05:00.000000001Z"},
	} {
		if got := FormatDateTime(tc.in); got != tc.want {
			t.Errorf("FormatDateTime(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestLimits(t *testing.T) {
	t.Run("megabyte of padding", func(t *testing.T) {
		pad := strings.Repeat("A", 1<<20)
		env, err := Parse([]byte(sce(content + `<rpad>` + pad + `</rpad>`)))
		if err != nil {
			t.Fatal(err)
		}
		if len(env.Rpad) != len(pad) {
			t.Fatalf("rpad of %d bytes, want %d", len(env.Rpad), len(pad))
		}
	})
	t.Run("padding past MaxEnvelopeSize", func(t *testing.T) {
		in := sce(content + `<rpad>` + strings.Repeat("A", MaxEnvelopeSize) + `</rpad>`)
		_, err := Parse([]byte(in))
		var le *LimitError
		if !errors.As(err, &le) || le.Limit != "size" || le.Max != MaxEnvelopeSize || !errors.Is(err, ErrLimit) {
			t.Fatalf("Parse: %v, want a size LimitError", err)
		}
	})
	t.Run("deep nesting", func(t *testing.T) {
		n := 10000
		in := sce(`<content>` + strings.Repeat(`<a xmlns='urn:a'>`, n) + strings.Repeat(`</a>`, n) + `</content>`)
		_, err := Parse([]byte(in))
		var le *LimitError
		if !errors.As(err, &le) || le.Limit != "depth" {
			t.Fatalf("Parse: %v, want a depth LimitError", err)
		}
	})
	t.Run("nesting at the limit", func(t *testing.T) {
		n := MaxDepth - 2 // envelope and content
		in := sce(`<content>` + strings.Repeat(`<a xmlns='urn:a'>`, n) + strings.Repeat(`</a>`, n) + `</content>`)
		if _, err := Parse([]byte(in)); err != nil {
			t.Fatal(err)
		}
		in = sce(`<content>` + strings.Repeat(`<a xmlns='urn:a'>`, n+1) + strings.Repeat(`</a>`, n+1) + `</content>`)
		if _, err := Parse([]byte(in)); !errors.Is(err, ErrLimit) {
			t.Fatalf("one deeper: %v, want ErrLimit", err)
		}
	})
	t.Run("too many elements", func(t *testing.T) {
		in := sce(`<content>` + strings.Repeat(`<a xmlns='urn:a'/>`, MaxNodes) + `</content>`)
		var le *LimitError
		if _, err := Parse([]byte(in)); !errors.As(err, &le) || le.Limit != "nodes" {
			t.Fatalf("Parse: %v, want a nodes LimitError", err)
		}
	})
	t.Run("too many attributes", func(t *testing.T) {
		var b strings.Builder
		for i := range MaxNodes {
			b.WriteString(" a" + strconv.Itoa(i) + "=''")
		}
		in := sce(`<content><a xmlns='urn:a'` + b.String() + `/></content>`)
		var le *LimitError
		if _, err := Parse([]byte(in)); !errors.As(err, &le) || le.Limit != "nodes" {
			t.Fatalf("Parse: %v, want a nodes LimitError", err)
		}
	})
	t.Run("stanza too large", func(t *testing.T) {
		in := `<message xmlns='jabber:client'><body>` + strings.Repeat("A", MaxStanzaSize) + `</body></message>`
		if _, err := ParseStanza([]byte(in)); !errors.Is(err, ErrLimit) {
			t.Fatalf("ParseStanza: %v, want ErrLimit", err)
		}
	})
	t.Run("token reader size", func(t *testing.T) {
		toks := []byte(strings.Repeat("A", 1<<20))
		src := &sliceReader{}
		src.toks = append(src.toks, start("jabber:client", "message"), start("jabber:client", "body"))
		for range 5 {
			src.toks = append(src.toks, toks) // []byte is not CharData: not a token type
		}
		if _, err := ReadStanza(src); !errors.Is(err, ErrInvalidXML) {
			t.Fatalf("ReadStanza: %v, want ErrInvalidXML", err)
		}
		src = &sliceReader{}
		src.toks = append(src.toks, start("jabber:client", "message"), start("jabber:client", "body"))
		for range 5 {
			src.toks = append(src.toks, xml.CharData(toks))
		}
		if _, err := ReadStanza(src); !errors.Is(err, ErrLimit) {
			t.Fatalf("ReadStanza: %v, want ErrLimit", err)
		}
	})
}
