package sce

import (
	"bytes"
	"encoding/xml"
	"errors"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
)

// serializeBoth serializes env with the fast path and with encoding/xml's
// encoder and fails unless both give the same bytes or the same error.
func serializeBoth(t testing.TB, env *Envelope) {
	t.Helper()
	var fast, slow bytes.Buffer
	fastAt, slowAt := -1, -1
	_, errFast := serialize(env, &fast, &fastAt, false)
	_, errSlow := serialize(env, &slow, &slowAt, true)
	if (errFast == nil) != (errSlow == nil) || errFast != nil && errFast.Error() != errSlow.Error() {
		t.Fatalf("fast error %v, encoding/xml error %v", errFast, errSlow)
	}
	if errFast != nil {
		return
	}
	if !bytes.Equal(fast.Bytes(), slow.Bytes()) || fastAt != slowAt {
		t.Fatalf("fast path wrote (rpad at %d)\n%s\nencoding/xml wrote (rpad at %d)\n%s", fastAt, fast.Bytes(), slowAt, slow.Bytes())
	}
}

// fastEncoderEnvelope builds an envelope around arbitrary names, text and
// attribute values, including ones the fast path hands to encoding/xml.
func fastEncoderEnvelope(kind Kind, space, local, text, attrSpace, attrValue, rpad string) *Envelope {
	name := xml.Name{Space: space, Local: local}
	child := xml.Name{Space: space + "#child", Local: "c"}
	attr := []xml.Attr{{Name: xml.Name{Local: "a"}, Value: attrValue}}
	if attrSpace != "" {
		attr = append(attr, xml.Attr{Name: xml.Name{Space: attrSpace, Local: "b"}, Value: attrValue})
	}
	toks := []xml.Token{
		xml.StartElement{Name: name, Attr: attr},
		xml.CharData(text),
		xml.StartElement{Name: child},
		xml.CharData(attrValue),
		xml.EndElement{Name: child},
		xml.StartElement{Name: xml.Name{Local: "none"}},
		xml.EndElement{Name: xml.Name{Local: "none"}},
		xml.EndElement{Name: name},
	}
	env := &Envelope{
		Kind:    kind,
		Content: []Element{{Name: name, Tokens: toks}},
		To:      []jid.JID{jid.MustParse("juliet@example.org")},
		Time:    time.Date(2026, 11, 26, 15, 4, 5, 6e6, time.UTC),
		Rpad:    rpad,
		HasRpad: true,
	}
	if kind == KindSCE {
		env.From = jid.MustParse("romeo@example.net")
	}
	return env
}

var fastEncoderCases = []struct{ space, local, text, attrSpace, attrValue, rpad string }{
	{"jabber:client", "body", "Hello", "", "v", "pad"},
	{"jabber:client", "body", "a\nb\tc\rd \"q\" 'a' <&> ]]>", "", "a\nb\tc\rd \"q\" 'a' <&>", ""},
	{"urn:x:é", "élément", "ünïcödé 😀 \u2028", "", "😀\u00a0", "x"},
	{"urn:x\"'<&>\n", "x", "", "", "", ""},
	{"jabber:client", "body", "\x01 invalid \xff\xfe", "", "\x00\xc3", ""},
	{"jabber:client", "body", "t", "http://www.w3.org/XML/1998/namespace", "en", ""},
	{"jabber:client", "body", "t", "urn:attr", "v", ""},
	{"", "body", "t", "", "v", ""},
	{"jabber:client", "", "t", "", "v", ""},
	{"jabber:client", "1bad", "t", "", "v", ""},
}

// TestFastEncoderMatchesEncodingXML checks that Marshal's and SealBytes'
// fast serialization writes exactly what encoding/xml's encoder writes, for
// every envelope the tests use and for awkward names, text and attributes.
func TestFastEncoderMatchesEncodingXML(t *testing.T) {
	for _, b := range envelopeSeeds(t) {
		for _, k := range allKinds {
			env, err := ParseKind(b, k)
			if err != nil {
				continue
			}
			serializeBoth(t, env)
		}
	}
	for _, tc := range fastEncoderCases {
		for _, k := range allKinds {
			serializeBoth(t, fastEncoderEnvelope(k, tc.space, tc.local, tc.text, tc.attrSpace, tc.attrValue, tc.rpad))
		}
	}
}

// TestFastEncoderFallsBack checks that the fast path gives up, writing
// nothing, on the tokens it does not handle.
func TestFastEncoderFallsBack(t *testing.T) {
	for _, tok := range []xml.Token{
		xml.StartElement{Name: xml.Name{Local: "a"}, Attr: []xml.Attr{{Name: xml.Name{Space: "urn:x", Local: "b"}}}},
		xml.StartElement{},
		xml.EndElement{Name: xml.Name{Local: "a"}},
		xml.Comment("c"),
		xml.ProcInst{Target: "xml"},
		xml.Directive("DOCTYPE"),
	} {
		var buf bytes.Buffer
		if err := newFastEncoder(&buf).EncodeToken(tok); !errors.Is(err, errSlowPath) || buf.Len() != 0 {
			t.Errorf("%#v: err %v, wrote %q", tok, err, buf.Bytes())
		}
	}
}

// FuzzFastEncoder compares the fast serialization with encoding/xml's on
// arbitrary names, text and attribute values.
func FuzzFastEncoder(f *testing.F) {
	for _, tc := range fastEncoderCases {
		f.Add(tc.space, tc.local, tc.text, tc.attrSpace, tc.attrValue, tc.rpad)
	}
	f.Fuzz(func(t *testing.T, space, local, text, attrSpace, attrValue, rpad string) {
		for _, k := range allKinds {
			serializeBoth(t, fastEncoderEnvelope(k, space, local, text, attrSpace, attrValue, rpad))
		}
	})
}
