package sce

import (
	"bytes"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
)

var (
	bodyName = xml.Name{Space: "jabber:client", Local: "body"}
	encName  = xml.Name{Space: "urn:xmpp:omemo:2", Local: "encrypted"}
)

// enc marks an element as coming from inside an envelope.
func enc(e Element) Element {
	e.Encrypted = true
	return e
}

func start(space, local string, attr ...xml.Attr) xml.StartElement {
	return xml.StartElement{Name: xml.Name{Space: space, Local: local}, Attr: attr}
}

func end(space, local string) xml.EndElement {
	return xml.EndElement{Name: xml.Name{Space: space, Local: local}}
}

func attr(local, value string) xml.Attr {
	return xml.Attr{Name: xml.Name{Local: local}, Value: value}
}

func elem(toks ...xml.Token) Element {
	return Element{Name: toks[0].(xml.StartElement).Name, Tokens: toks}
}

func mustStanza(t testing.TB, s string) *Stanza {
	t.Helper()
	st, err := ParseStanza([]byte(s))
	if err != nil {
		t.Fatalf("ParseStanza(%q): %v", s, err)
	}
	return st
}

func fixed(s string) func() time.Time {
	t, err := ParseDateTime(s)
	if err != nil {
		panic(err)
	}
	return func() time.Time { return t }
}

// envelopeEncodingCases are {Value, XML} pairs: marshalling Value gives XML
// and unmarshalling XML gives Value.
var envelopeEncodingCases = []struct {
	Value *Envelope
	XML   string
}{
	0: {
		Value: &Envelope{},
		XML:   `<envelope xmlns="urn:xmpp:sce:1"><content></content></envelope>`,
	},
	1: {
		Value: &Envelope{
			Content: []Element{enc(TextElement(bodyName, "Hi & <bye>"))},
			Rpad:    "C1DHN9HK-9A25tSmwK4hU!Jji9%GKYK^syIlHJT9TnI4", HasRpad: true,
			Time: time.Date(2004, 1, 25, 5, 5, 0, 0, time.UTC),
			To:   []jid.JID{jid.MustParse("missioncontrol@houston.nasa.gov")},
			From: jid.MustParse("opportunity@mars.planet"),
		},
		XML: `<envelope xmlns="urn:xmpp:sce:1"><content><body xmlns="jabber:client">Hi &amp; &lt;bye&gt;</body></content>` +
			`<rpad>C1DHN9HK-9A25tSmwK4hU!Jji9%GKYK^syIlHJT9TnI4</rpad><time stamp="2004-01-25T05:05:00Z"></time>` +
			`<to jid="missioncontrol@houston.nasa.gov"></to><from jid="opportunity@mars.planet"></from></envelope>`,
	},
	2: { // an empty <rpad/> is still an rpad; fractions survive
		Value: &Envelope{HasRpad: true, Time: time.Date(2024, 2, 29, 23, 59, 59, 123456000, time.UTC)},
		XML:   `<envelope xmlns="urn:xmpp:sce:1"><content></content><rpad></rpad><time stamp="2024-02-29T23:59:59.123456Z"></time></envelope>`,
	},
	3: { // namespaces: inherited, explicitly empty, prefixed attributes, xml:lang
		Value: &Envelope{Content: []Element{enc(elem(
			start("jabber:x:oob", "x", xml.Attr{Name: xml.Name{Space: nsXML, Local: "lang"}, Value: "en"}),
			start("jabber:x:oob", "url"), xml.CharData("https://example.org/?a=1&b=2"), end("jabber:x:oob", "url"),
			start("", "plain"), xml.CharData("no namespace"), end("", "plain"),
			start("urn:other", "o", xml.Attr{Name: xml.Name{Space: "urn:attr", Local: "k"}, Value: "v"}), end("urn:other", "o"),
			end("jabber:x:oob", "x"),
		))}},
		XML: `<envelope xmlns="urn:xmpp:sce:1"><content><x xmlns="jabber:x:oob" xml:lang="en"><url>https://example.org/?a=1&amp;b=2</url>` +
			`<plain xmlns="">no namespace</plain><o xmlns="urn:other" xmlns:_="urn:attr" _:k="v"></o></x></content></envelope>`,
	},
	4: { // protocol-specific affixes are kept in Extra
		Value: &Envelope{
			Content: []Element{enc(TextElement(bodyName, "x"))},
			Extra: []Element{
				enc(TextElement(xml.Name{Space: NS, Local: "future"}, "", attr("v", "2"))),
				enc(TextElement(xml.Name{Space: "urn:example:proto", Local: "counter"}, "7")),
			},
		},
		XML: `<envelope xmlns="urn:xmpp:sce:1"><content><body xmlns="jabber:client">x</body></content>` +
			`<future v="2"></future><counter xmlns="urn:example:proto">7</counter></envelope>`,
	},
	5: { // OX signcrypt: several <to/>, XEP-0373 order
		Value: &Envelope{
			Kind:    KindSigncrypt,
			Content: []Element{enc(TextElement(bodyName, "secret"))},
			Rpad:    "pad", HasRpad: true,
			Time: time.Date(2014, 7, 10, 15, 6, 0, 0, time.UTC),
			To:   []jid.JID{jid.MustParse("juliet@example.org"), jid.MustParse("romeo@example.net")},
		},
		XML: `<signcrypt xmlns="urn:xmpp:openpgp:0"><to jid="juliet@example.org"></to><to jid="romeo@example.net"></to>` +
			`<time stamp="2014-07-10T15:06:00Z"></time><rpad>pad</rpad><payload><body xmlns="jabber:client">secret</body></payload></signcrypt>`,
	},
	6: { // OX crypt without <to/>
		Value: &Envelope{Kind: KindCrypt, Time: time.Date(2014, 7, 10, 15, 6, 0, 0, time.UTC)},
		XML:   `<crypt xmlns="urn:xmpp:openpgp:0"><time stamp="2014-07-10T15:06:00Z"></time><payload></payload></crypt>`,
	},
	7: {
		Value: &Envelope{Kind: KindSign, To: []jid.JID{jid.MustParse("a@b.example")}, Time: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)},
		XML:   `<sign xmlns="urn:xmpp:openpgp:0"><to jid="a@b.example"></to><time stamp="2020-01-01T00:00:00Z"></time><payload></payload></sign>`,
	},
}

func TestEnvelopeEncoding(t *testing.T) {
	for i, tc := range envelopeEncodingCases {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Run("Marshal", func(t *testing.T) {
				b, err := tc.Value.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				if string(b) != tc.XML {
					t.Fatalf("got\n%s\nwant\n%s", b, tc.XML)
				}
			})
			t.Run("xml.Marshal", func(t *testing.T) {
				b, err := xml.Marshal(tc.Value)
				if err != nil {
					t.Fatal(err)
				}
				if string(b) != tc.XML {
					t.Fatalf("got\n%s\nwant\n%s", b, tc.XML)
				}
			})
			t.Run("TokenReader", func(t *testing.T) {
				var buf bytes.Buffer
				e := xml.NewEncoder(&buf)
				if _, err := xmlstream.Copy(e, tc.Value.TokenReader()); err != nil {
					t.Fatal(err)
				}
				if err := e.Flush(); err != nil {
					t.Fatal(err)
				}
				if buf.String() != tc.XML {
					t.Fatalf("got\n%s\nwant\n%s", buf.String(), tc.XML)
				}
			})
			t.Run("ParseKind", func(t *testing.T) {
				got, err := ParseKind([]byte(tc.XML), tc.Value.Kind)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tc.Value) {
					t.Fatalf("got\n%#v\nwant\n%#v", got, tc.Value)
				}
			})
			t.Run("xml.Unmarshal", func(t *testing.T) {
				got := new(Envelope)
				if err := xml.Unmarshal([]byte(tc.XML), got); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tc.Value) {
					t.Fatalf("got\n%#v\nwant\n%#v", got, tc.Value)
				}
			})
		})
	}
}

var stanzaEncodingCases = []struct {
	Value *Stanza
	XML   string
}{
	0: {
		Value: &Stanza{
			Name: xml.Name{Space: "jabber:client", Local: "message"},
			Attr: []xml.Attr{attr("to", "juliet@capulet.lit"), attr("type", "chat")},
			Children: []Element{
				TextElement(bodyName, "Hi"),
				TextElement(xml.Name{Space: nsSID, Local: "origin-id"}, "", attr("id", "x1")),
			},
		},
		XML: `<message xmlns="jabber:client" to="juliet@capulet.lit" type="chat"><body>Hi</body><origin-id xmlns="urn:xmpp:sid:0" id="x1"></origin-id></message>`,
	},
	1: {
		Value: &Stanza{Name: xml.Name{Space: "jabber:server", Local: "presence"}},
		XML:   `<presence xmlns="jabber:server"></presence>`,
	},
	2: {
		Value: &Stanza{
			Name: xml.Name{Space: "jabber:client", Local: "iq"},
			Attr: []xml.Attr{attr("type", "get"), attr("id", "q")},
			Children: []Element{elem(
				start("urn:xmpp:bob", "data", attr("cid", "sha1+8f@bob.xmpp.org")), end("urn:xmpp:bob", "data"))},
		},
		XML: `<iq xmlns="jabber:client" type="get" id="q"><data xmlns="urn:xmpp:bob" cid="sha1+8f@bob.xmpp.org"></data></iq>`,
	},
}

func TestStanzaEncoding(t *testing.T) {
	for i, tc := range stanzaEncodingCases {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			b, err := tc.Value.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.XML {
				t.Fatalf("Marshal:\n%s\nwant\n%s", b, tc.XML)
			}
			b, err = xml.Marshal(tc.Value)
			if err != nil || string(b) != tc.XML {
				t.Fatalf("xml.Marshal: %s, %v", b, err)
			}
			got, err := ParseStanza([]byte(tc.XML))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.Value) {
				t.Fatalf("ParseStanza:\n%#v\nwant\n%#v", got, tc.Value)
			}
			got = new(Stanza)
			if err := xml.Unmarshal([]byte(tc.XML), got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.Value) {
				t.Fatalf("xml.Unmarshal:\n%#v\nwant\n%#v", got, tc.Value)
			}
			got, err = ReadStanza(tc.Value.TokenReader())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.Value) {
				t.Fatalf("ReadStanza(TokenReader()):\n%#v\nwant\n%#v", got, tc.Value)
			}
		})
	}
}

func TestElementEncoding(t *testing.T) {
	for i, tc := range []struct {
		Value Element
		XML   string
	}{
		{TextElement(bodyName, "a\tb"), `<body xmlns="jabber:client">a&#x9;b</body>`},
		{elem(start("", "bare"), start("", "child"), end("", "child"), end("", "bare")), `<bare xmlns=""><child></child></bare>`},
		{elem(start("urn:a", "a"), start("urn:b", "b"), start("urn:b", "c"), end("urn:b", "c"), end("urn:b", "b"), end("urn:a", "a")),
			`<a xmlns="urn:a"><b xmlns="urn:b"><c></c></b></a>`},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			b, err := xml.Marshal(tc.Value)
			if err != nil || string(b) != tc.XML {
				t.Fatalf("xml.Marshal: %s, %v; want %s", b, err, tc.XML)
			}
			var got Element
			if err := xml.Unmarshal([]byte(tc.XML), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.Value) {
				t.Fatalf("xml.Unmarshal:\n%#v\nwant\n%#v", got, tc.Value)
			}
			got, err = ReadElement(tc.Value.TokenReader())
			if err != nil || !reflect.DeepEqual(got, tc.Value) {
				t.Fatalf("ReadElement(TokenReader()): %#v, %v", got, err)
			}
		})
	}
}

// TestReadStanzaInherit reads mellium-style tokens, where children without
// a namespace inherit their parent's.
func TestReadStanzaInherit(t *testing.T) {
	toks := []xml.Token{
		xml.CharData("\n "),
		start("jabber:client", "message", attr("to", "a@b.example")),
		start("", "body"), xml.CharData("hi"), end("", "body"),
		start("", "x", attr("xmlns", "jabber:x:oob")), start("", "url"), end("", "url"), end("", "x"),
		start("urn:q", "q"), start("", "r", attr("xmlns", "")), end("", "r"), end("urn:q", "q"),
		end("jabber:client", "message"),
		start("jabber:client", "message"), // the next stanza must stay unread
	}
	src := &sliceReader{toks: toks}
	st, err := ReadStanza(src)
	if err != nil {
		t.Fatal(err)
	}
	want := &Stanza{
		Name: xml.Name{Space: "jabber:client", Local: "message"},
		Attr: []xml.Attr{attr("to", "a@b.example")},
		Children: []Element{
			TextElement(bodyName, "hi"),
			elem(start("jabber:x:oob", "x"), start("jabber:x:oob", "url"), end("jabber:x:oob", "url"), end("jabber:x:oob", "x")),
			elem(start("urn:q", "q"), start("", "r"), end("", "r"), end("urn:q", "q")),
		},
	}
	if !reflect.DeepEqual(st, want) {
		t.Fatalf("got\n%#v\nwant\n%#v", st, want)
	}
	if src.i != len(toks)-1 {
		t.Fatalf("read %d tokens, want %d", src.i, len(toks)-1)
	}
}

// TestReadStanzaFromStream reads one stanza from a decoder inside a stream.
func TestReadStanzaFromStream(t *testing.T) {
	d := xml.NewDecoder(strings.NewReader(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>` +
		`<message to='a@b.example'><body>one</body></message><message><body>two</body></message>`))
	if _, err := d.Token(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"one", "two"} {
		st, err := ReadStanza(d)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Children[0].Text(); got != want || st.Children[0].Name != bodyName {
			t.Fatalf("got %v %q, want body %q", st.Children[0].Name, got, want)
		}
	}
}

func TestInvalidElementsNotWritten(t *testing.T) {
	for name, el := range map[string]Element{
		"empty":          {Name: bodyName},
		"name mismatch":  {Name: xml.Name{Space: "jabber:client", Local: "subject"}, Tokens: TextElement(bodyName, "x").Tokens},
		"unclosed":       elem(start("urn:a", "a"), start("urn:a", "b"), end("urn:a", "b")),
		"two roots":      elem(start("urn:a", "a"), end("urn:a", "a"), start("urn:a", "a"), end("urn:a", "a")),
		"text after":     elem(start("urn:a", "a"), end("urn:a", "a"), xml.CharData("x")),
		"mismatched end": elem(start("urn:a", "a"), end("urn:b", "a")),
		"comment":        elem(start("urn:a", "a"), xml.Comment("x"), end("urn:a", "a")),
		"bad name":       elem(start("urn:a", "a b"), end("urn:a", "a b")),
		"injection":      elem(start("urn:a", `a><script`), end("urn:a", `a><script`)),
		"bad namespace":  elem(start("urn:a b", "a"), end("urn:a b", "a")),
		"xmlns attr":     elem(start("urn:a", "a", attr("xmlns", "urn:b")), end("urn:a", "a")),
		"dup attr":       elem(start("urn:a", "a", attr("k", "1"), attr("k", "2")), end("urn:a", "a")),
		"bad utf8 text":  elem(start("urn:a", "a"), xml.CharData("\xff"), end("urn:a", "a")),
		"control char":   elem(start("urn:a", "a", attr("k", "\x01")), end("urn:a", "a")),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := xml.Marshal(el); !errors.Is(err, ErrInvalidElement) {
				t.Fatalf("xml.Marshal: %v, want ErrInvalidElement", err)
			}
			env := &Envelope{Content: []Element{el}}
			if _, err := env.Marshal(); !errors.Is(err, ErrInvalidElement) && !errors.Is(err, ErrInvalidContent) {
				t.Fatalf("Envelope.Marshal: %v, want ErrInvalidElement", err)
			}
			if _, err := ReadElement(el.TokenReader()); err == nil {
				t.Fatal("ReadElement of an invalid element's reader succeeded")
			}
		})
	}
}

func TestInvalidEnvelopesNotWritten(t *testing.T) {
	for name, tc := range map[string]struct {
		env  *Envelope
		want error
	}{
		"two to in SCE":     {&Envelope{To: []jid.JID{jid.MustParse("a@b.c"), jid.MustParse("d@e.f")}}, ErrDuplicate},
		"from in OX":        {&Envelope{Kind: KindSigncrypt, From: jid.MustParse("a@b.c")}, ErrAffixNotAllowed},
		"zero to":           {&Envelope{To: []jid.JID{{}}}, ErrMalformedAffix},
		"year 10000":        {&Envelope{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, ErrMalformedAffix},
		"bad rpad":          {&Envelope{Rpad: "\x00"}, ErrMalformedAffix},
		"unknown kind":      {&Envelope{Kind: 9}, ErrNotEnvelope},
		"content in sce ns": {&Envelope{Content: []Element{TextElement(xml.Name{Space: NS, Local: "body"}, "x")}}, ErrInvalidContent},
		"content no ns":     {&Envelope{Content: []Element{TextElement(xml.Name{Local: "body"}, "x")}}, ErrInvalidContent},
		"extra named rpad":  {&Envelope{Extra: []Element{TextElement(xml.Name{Space: NS, Local: "rpad"}, "x")}}, ErrInvalidElement},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := tc.env.Marshal(); !errors.Is(err, tc.want) {
				t.Fatalf("Marshal: %v, want %v", err, tc.want)
			}
			if _, err := tc.env.TokenReader().Token(); !errors.Is(err, tc.want) {
				t.Fatalf("TokenReader: %v, want %v", err, tc.want)
			}
		})
	}
}

// vectors are the files under testdata with what they must parse to.
var vectors = []struct {
	file    string
	kind    Kind
	affixes Affix
	content []xml.Name
}{
	{"xep0373-signcrypt.xml", KindSigncrypt, AffixTo | AffixTime | AffixRpad, []xml.Name{bodyName}},
	{"xep0420-message.xml", KindSCE, 0, []xml.Name{bodyName, {Space: "jabber:x:oob", Local: "x"}}},
	{"xep0420-iq.xml", KindSCE, AffixFrom | AffixTo, []xml.Name{{Space: "urn:xmpp:bob", Local: "data"}}},
	{"xep0384-omemo2.xml", KindSCE, AffixRpad | AffixFrom, []xml.Name{bodyName}},
	{"converse.xml", KindSCE, AffixRpad | AffixFrom, []xml.Name{bodyName}},
	{"libervia.xml", KindSCE, AffixRpad | AffixTime | AffixTo | AffixFrom,
		[]xml.Name{bodyName, {Space: "http://jabber.org/protocol/chatstates", Local: "active"}}},
}

func readVector(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVectors(t *testing.T) {
	for _, v := range vectors {
		t.Run(v.file, func(t *testing.T) {
			env, err := ParseKind(readVector(t, v.file), v.kind)
			if err != nil {
				t.Fatal(err)
			}
			if got := env.Affixes(); got != v.affixes {
				t.Errorf("affixes %v, want %v", got, v.affixes)
			}
			var names []xml.Name
			for _, c := range env.Content {
				names = append(names, c.Name)
			}
			if !reflect.DeepEqual(names, v.content) {
				t.Errorf("content %v, want %v", names, v.content)
			}
			b, err := env.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			again, err := ParseKind(b, v.kind)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(again, env) {
				t.Fatalf("round trip changed the envelope:\n%#v\n%#v", again, env)
			}
			ox, err := ParseOX(readVector(t, v.file))
			switch {
			case v.kind.ox() && (err != nil || !reflect.DeepEqual(ox, env)):
				t.Fatalf("ParseOX: %#v, %v; want %#v", ox, err, env)
			case !v.kind.ox() && !errors.Is(err, ErrNotEnvelope):
				t.Fatalf("ParseOX of an SCE envelope: %v, want ErrNotEnvelope", err)
			}
		})
	}
}

func TestParseOX(t *testing.T) {
	const (
		affixes = `<to jid='juliet@example.org'/><time stamp='2014-07-10T17:06:00+02:00'/><rpad>x</rpad>`
		payload = `<payload><body xmlns='jabber:client'>hi</body></payload>`
		ns      = ` xmlns='urn:xmpp:openpgp:0'`
	)
	for _, tc := range []struct {
		name string
		in   string
		kind Kind
		want error
	}{
		{"signcrypt", `<signcrypt` + ns + `>` + affixes + payload + `</signcrypt>`, KindSigncrypt, nil},
		{"sign", `<?xml version='1.0'?><sign` + ns + `>` + affixes + payload + `</sign>`, KindSign, nil},
		{"crypt", `<o:crypt xmlns:o='urn:xmpp:openpgp:0'><o:time stamp='2014-07-10T15:06:00Z'/><o:payload/></o:crypt>`, KindCrypt, nil},
		{"sce envelope", sce(content), 0, ErrNotEnvelope},
		{"signcrypt in the sce namespace", `<signcrypt xmlns='urn:xmpp:sce:1'>` + payload + `</signcrypt>`, 0, ErrNotEnvelope},
		{"openpgp element", `<openpgp` + ns + `>AAAA</openpgp>`, 0, ErrNotEnvelope},
		{"no namespace", `<signcrypt>` + payload + `</signcrypt>`, 0, ErrNotEnvelope},
		{"missing payload", `<crypt` + ns + `>` + affixes + `</crypt>`, 0, ErrMissingContent},
		{"second payload", `<sign` + ns + `>` + payload + payload + `</sign>`, 0, ErrDuplicate},
		{"invalid utf-8", `<signcrypt` + ns + `>` + affixes + "<payload><body xmlns='jabber:client'>\xff</body></payload></signcrypt>", 0, ErrInvalidXML},
		{"invalid utf-8 in a prefix", `<signcrypt` + ns + ` xmlns:p` + "\xff" + `='urn:x'>` + payload + `</signcrypt>`, 0, ErrInvalidXML},
		{"comment", `<signcrypt` + ns + `>` + payload + `<!-- -->` + `</signcrypt>`, 0, ErrInvalidXML},
		{"bad stamp", `<crypt` + ns + `><time stamp='yesterday'/>` + payload + `</crypt>`, 0, ErrMalformedAffix},
		{"trailing data", `<crypt` + ns + `>` + payload + `</crypt>x`, 0, ErrInvalidXML},
		{"empty", ``, 0, ErrInvalidXML},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, err := ParseOX([]byte(tc.in))
			if tc.want != nil {
				if !errors.Is(err, tc.want) || env != nil {
					t.Fatalf("ParseOX: %#v, %v; want %v", env, err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if env.Kind != tc.kind {
				t.Fatalf("kind %v, want %v", env.Kind, tc.kind)
			}
			want, err := ParseKind([]byte(tc.in), tc.kind)
			if err != nil || !reflect.DeepEqual(env, want) {
				t.Fatalf("ParseKind: %#v, %v; ParseOX: %#v", want, err, env)
			}
		})
	}
}

func TestSigncryptExample(t *testing.T) {
	env, err := ParseKind(readVector(t, "xep0373-signcrypt.xml"), KindSigncrypt)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2014, 7, 10, 15, 6, 0, 0, time.UTC); !env.Time.Equal(want) {
		t.Errorf("time %v, want %v", env.Time, want)
	}
	if len(env.To) != 1 || env.To[0].String() != "juliet@example.org" {
		t.Errorf("to %v", env.To)
	}
	if got := strings.TrimSpace(env.Rpad); got != "f0rm1l4n4-mT8y33j!Y%fRSrcd^ZE4Q7VDt1L%WEgR!kv" {
		t.Errorf("rpad %q", got)
	}
	if got := strings.TrimSpace(env.Content[0].Text()); got != "This is a secret message." {
		t.Errorf("body %q", got)
	}
	msg := mustStanza(t, `<message xmlns='jabber:client' from='romeo@example.net/orchard' to='juliet@example.org/balcony'>`+
		`<openpgp xmlns='urn:xmpp:openpgp:0'>BASE64</openpgp><body>unencrypted fallback</body></message>`)
	if err := Verify(env, msg, OX(KindSigncrypt), VerifyOptions{Now: fixed("2014-07-10T15:08:00Z")}); err != nil {
		t.Fatal(err)
	}
	if err := Verify(env, msg, OX(KindSigncrypt), VerifyOptions{Now: fixed("2014-07-10T16:08:00Z")}); !errors.Is(err, ErrStale) {
		t.Fatalf("an hour later: %v, want ErrStale", err)
	}
	if _, err := Parse(readVector(t, "xep0373-signcrypt.xml")); !errors.Is(err, ErrNotEnvelope) {
		t.Fatalf("Parse of a signcrypt: %v, want ErrNotEnvelope", err)
	}
	plain, err := Open(msg, env, xml.Name{Space: nsOX, Local: "openpgp"})
	if err != nil {
		t.Fatal(err)
	}
	if len(plain.Children) != 1 || plain.Children[0].Name != bodyName || !plain.Children[0].Encrypted ||
		strings.TrimSpace(plain.Children[0].Text()) != "This is a secret message." {
		t.Fatalf("opened children %#v", plain.Children)
	}
}
