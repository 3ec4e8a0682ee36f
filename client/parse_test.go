package client

import (
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"hush.im/sce"
)

func readStanza(t testing.TB, file string) *sce.Stanza {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sce.ParseStanza(b)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return st
}

func mustStanza(t testing.TB, s string) *sce.Stanza {
	t.Helper()
	st, err := sce.ParseStanza([]byte(s))
	if err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	return st
}

func TestParseStanzaError(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   *sce.Stanza
		want StanzaError
	}{
		{
			name: "prosody precondition-not-met (recorded)",
			in:   readStanza(t, "prosody-0.12-precondition-not-met.xml"),
			want: StanzaError{Type: "cancel", Condition: "conflict", App: name(nsPubSubErrors, "precondition-not-met"), Text: "Field does not match: access_model"},
		},
		{
			name: "ejabberd max_items refused (recorded)",
			in:   readStanza(t, "ejabberd-23.01-publish-max-items.xml"),
			want: StanzaError{Type: "wait", Condition: "resource-constraint", Text: "Unknown field 'pubsub#max_items' of type 'http://jabber.org/protocol/pubsub#publish-options'"},
		},
		{
			name: "no error element",
			in:   mustStanza(t, `<iq xmlns="jabber:client" type="error" id="1"/>`),
			want: StanzaError{Condition: "undefined-condition"},
		},
		{
			name: "long text is shortened",
			in:   mustStanza(t, `<iq xmlns="jabber:client" type="error" id="1"><error type="modify"><bad-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/><text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">`+strings.Repeat("é", 300)+`</text></error></iq>`),
			want: StanzaError{Type: "modify", Condition: "bad-request", Text: strings.Repeat("é", 128)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := parseStanzaError(tc.in)
			if *got != tc.want {
				t.Errorf("got %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}

func TestPublishOptionError(t *testing.T) {
	sent := []string{"pubsub#access_model", "pubsub#max_items"}
	for _, tc := range []struct {
		name        string
		in          *sce.Stanza
		wantField   string
		wantRefused bool
	}{
		{name: "ejabberd 23.01 max_items", in: readStanza(t, "ejabberd-23.01-publish-max-items.xml"), wantField: "pubsub#max_items", wantRefused: true},
		{name: "prosody precondition-not-met", in: readStanza(t, "prosody-0.12-precondition-not-met.xml")},
		{name: "unsupported publish-options", in: mustStanza(t, `<iq xmlns="jabber:client" type="error" id="1"><error type="cancel"><feature-not-implemented xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/><unsupported xmlns="http://jabber.org/protocol/pubsub#errors" feature="publish-options"/></error></iq>`), wantRefused: true},
		{name: "option named in text", in: mustStanza(t, `<iq xmlns="jabber:client" type="error" id="1"><error type="modify"><bad-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/><text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">bad value for pubsub#max_items</text></error></iq>`), wantField: "pubsub#max_items", wantRefused: true},
		{name: "forbidden", in: mustStanza(t, `<iq xmlns="jabber:client" type="error" id="1"><error type="auth"><forbidden xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := publishOptionError("urn:xmpp:omemo:2:bundles", sent, parseStanzaError(tc.in))
			var pe *PublishOptionError
			if got := errors.As(err, &pe); got != tc.wantRefused {
				t.Fatalf("PublishOptionError = %v, want %v (%v)", got, tc.wantRefused, err)
			}
			if errors.Is(err, ErrPublishOptionUnsupported) != tc.wantRefused {
				t.Errorf("errors.Is(ErrPublishOptionUnsupported) wrong for %v", err)
			}
			var se *StanzaError
			if !errors.As(err, &se) {
				t.Errorf("%v does not unwrap to a StanzaError", err)
			}
			if pe != nil && pe.Field != tc.wantField {
				t.Errorf("field %q, want %q", pe.Field, tc.wantField)
			}
			if pe != nil {
				t.Log(pe)
			}
		})
	}
}

// XEP-0115 §5.2 (simple generation example) and §5.3 (complex, forms
// omitted here as the client sends none) vectors.
func TestCapsVer(t *testing.T) {
	got := capsVer([]identity{{Category: "client", Type: "pc", Name: "Exodus 0.9.1"}},
		[]string{"http://jabber.org/protocol/muc", "http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#items"})
	if want := "QgayPKawpkPSDYmwT/WM94uAlu0="; got != want {
		t.Errorf("ver %s, want %s", got, want)
	}
}

func TestParseEvent(t *testing.T) {
	alice := jid.MustParse("alice@localhost")
	items := readStanza(t, "prosody-0.12-event-items.xml")
	el, _ := stanzaChild(items, name(nsPubSubEvent, "event"))
	ev, err := parseEvent(alice, el)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Node != "urn:example:hush:test" || len(ev.Items) != 1 || ev.Items[0].ID != "current" ||
		ev.Items[0].Payload.Name != name("urn:example:hush:test", "note") || ev.Items[0].Payload.Text() != "v1" {
		t.Errorf("event %+v", ev)
	}
	retract := readStanza(t, "prosody-0.12-event-retract.xml")
	el, _ = stanzaChild(retract, name(nsPubSubEvent, "event"))
	ev, err = parseEvent(alice, el)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Items) != 0 || len(ev.Retracted) != 1 || ev.Retracted[0] != "second" {
		t.Errorf("event %+v", ev)
	}

	for _, tc := range []struct{ name, in string }{
		{"no child", `<event xmlns="http://jabber.org/protocol/pubsub#event"/>`},
		{"two children", `<event xmlns="http://jabber.org/protocol/pubsub#event"><purge node="a"/><purge node="b"/></event>`},
		{"no node", `<event xmlns="http://jabber.org/protocol/pubsub#event"><items/></event>`},
		{"two payloads", `<event xmlns="http://jabber.org/protocol/pubsub#event"><items node="n"><item id="1"><a xmlns="x"/><b xmlns="x"/></item></items></event>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			el, err := sce.ReadElement(xml.NewDecoder(strings.NewReader(tc.in)))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := parseEvent(alice, el); !errors.Is(err, ErrMalformed) {
				t.Errorf("err = %v, want ErrMalformed", err)
			}
		})
	}
	el, _ = sce.ReadElement(xml.NewDecoder(strings.NewReader(`<event xmlns="http://jabber.org/protocol/pubsub#event"><delete node="n"/></event>`)))
	if ev, err := parseEvent(alice, el); err != nil || !ev.Deleted {
		t.Errorf("delete: %+v %v", ev, err)
	}
}

func TestParseFin(t *testing.T) {
	for _, tc := range []struct {
		file string
		want ArchivePage
	}{
		{"prosody-0.12-mam-fin.xml", ArchivePage{First: "zidgB30aBGJe7RMuNGoIEOGG", Last: "AXmv5LvGEEpkHoRXTDBvUOEB", Count: -1}},
		{"prosody-0.12-mam-fin-complete.xml", ArchivePage{First: "A7XtMEgOwMzrQMLofoIf4iCG", Last: "A7XtMEgOwMzrQMLofoIf4iCG", Count: -1, Complete: true}},
	} {
		st := readStanza(t, tc.file)
		fin, _ := stanzaChild(st, name(nsMAM, "fin"))
		got, err := parseFin(fin)
		if err != nil {
			t.Fatal(err)
		}
		if got.First != tc.want.First || got.Last != tc.want.Last || got.Count != tc.want.Count || got.Complete != tc.want.Complete {
			t.Errorf("%s: %+v", tc.file, got)
		}
	}
	for _, in := range []string{
		`<fin xmlns="urn:xmpp:mam:2" complete="yes"><set xmlns="http://jabber.org/protocol/rsm"/></fin>`,
		`<fin xmlns="urn:xmpp:mam:2"/>`,
		`<fin xmlns="urn:xmpp:mam:2"><set xmlns="http://jabber.org/protocol/rsm"><count>-1</count></set></fin>`,
	} {
		el, err := sce.ReadElement(xml.NewDecoder(strings.NewReader(in)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseFin(el); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v", in, err)
		}
	}
}

func TestArchiveResultUnwrap(t *testing.T) {
	st := readStanza(t, "prosody-0.12-mam-result.xml")
	inner, wrapper, err := sce.Forwarded(st)
	if err != nil {
		t.Fatal(err)
	}
	if wrapper != name(nsMAM, "result") || inner.AttrValue("from") != "dave@localhost/d1" {
		t.Errorf("unwrapped %v from %s", wrapper, inner.AttrValue("from"))
	}
}

func TestParseDiscoInfo(t *testing.T) {
	in := `<query xmlns="http://jabber.org/protocol/disco#info"><identity category="client" type="pc" name="hush" xml:lang="en"/><feature var="a"/><feature var="b"/><feature/></query>`
	el, err := sce.ReadElement(xml.NewDecoder(strings.NewReader(in)))
	if err != nil {
		t.Fatal(err)
	}
	info, err := parseDiscoInfo(el)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Identities) != 1 || info.Identities[0] != (Identity{Category: "client", Type: "pc", Name: "hush", Lang: "en"}) || !info.Has("b") || len(info.Features) != 2 {
		t.Errorf("info %+v", info)
	}
	many := `<query xmlns="http://jabber.org/protocol/disco#info">` + strings.Repeat(`<feature var="x"/>`, maxDiscoFeatures+1) + `</query>`
	el, err = sce.ReadElement(xml.NewDecoder(strings.NewReader(many)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseDiscoInfo(el); !errors.Is(err, ErrMalformed) {
		t.Errorf("too many features: %v", err)
	}
}

// TestEncoding checks the XML the client builds against the wire format of
// the specifications, byte for byte, and that it parses back to the same
// tokens.
func TestEncoding(t *testing.T) {
	c := &Client{own: jid.MustParse("alice@example.org/dev")}
	req := mustStanza(t, `<iq xmlns="jabber:client" type="get" id="q1"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>`)
	for _, tc := range []struct {
		name string
		el   sce.Element
		st   *sce.Stanza
		want string
	}{
		{
			name: "publish with publish-options (XEP-0060 §7.1.5)",
			el: elem(name(nsPubSub, "pubsub"), nil,
				elem(name(nsPubSub, "publish"), []xml.Attr{attr("node", "urn:xmpp:omemo:2:bundles")},
					elem(name(nsPubSub, "item"), []xml.Attr{attr("id", "31415")}, sce.TextElement(name("urn:xmpp:omemo:2", "bundle"), ""))),
				elem(name(nsPubSub, "publish-options"), nil, submitForm(formPublishOpts, (&PublishOptions{MaxItems: MaxItemsMax}).fields()))),
			want: `<pubsub xmlns="http://jabber.org/protocol/pubsub"><publish node="urn:xmpp:omemo:2:bundles"><item id="31415"><bundle xmlns="urn:xmpp:omemo:2"></bundle></item></publish><publish-options><x xmlns="jabber:x:data" type="submit"><field type="hidden" var="FORM_TYPE"><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var="pubsub#access_model"><value>open</value></field><field var="pubsub#max_items"><value>max</value></field></x></publish-options></pubsub>`,
		},
		{
			name: "archive query (XEP-0313 §4.1, XEP-0059 §2.2)",
			el:   archiveQuery("q7", ArchiveQuery{With: jid.MustParse("bob@example.org"), After: "abc"}, 10),
			want: `<query xmlns="urn:xmpp:mam:2" queryid="q7"><x xmlns="jabber:x:data" type="submit"><field type="hidden" var="FORM_TYPE"><value>urn:xmpp:mam:2</value></field><field var="with"><value>bob@example.org</value></field></x><set xmlns="http://jabber.org/protocol/rsm"><max>10</max><after>abc</after></set></query>`,
		},
		{
			name: "error reply to the account (RFC 6120 §8.3)",
			st:   c.errorReply(req, &StanzaError{Type: "wait", Condition: "resource-constraint"}),
			want: `<iq xmlns="jabber:client" type="error" id="q1" to="alice@example.org"><error type="wait"><resource-constraint xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"></resource-constraint></error></iq>`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []byte
			var err error
			if tc.st != nil {
				got, err = tc.st.Marshal()
			} else {
				got, err = marshalElement(tc.el)
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if tc.st == nil {
				back, err := sce.ReadElement(xml.NewDecoder(strings.NewReader(tc.want)))
				if err != nil {
					t.Fatal(err)
				}
				again, err := marshalElement(back)
				if err != nil || string(again) != tc.want {
					t.Errorf("round trip: %s %v", again, err)
				}
			}
		})
	}
}

func TestCheckNoLeak(t *testing.T) {
	protocol := name("urn:example:e2e", "encrypted")
	plain := mustStanza(t, `<message xmlns="jabber:client" to="bob@example.org" type="chat" id="m1"><body>secret</body><origin-id xmlns="urn:xmpp:sid:0" id="o1"/><x xmlns="urn:example:private" a="1" b="2">hidden</x></message>`)
	for _, tc := range []struct {
		name string
		out  string
		ok   bool
	}{
		{"encrypted", `<message xmlns="jabber:client" to="bob@example.org" type="chat" id="m1"><origin-id xmlns="urn:xmpp:sid:0" id="o1"/><encrypted xmlns="urn:example:e2e"/><store xmlns="urn:xmpp:hints"/></message>`, true},
		{"fallback body differs", `<message xmlns="jabber:client" to="bob@example.org"><body>I sent you an encrypted message</body><encrypted xmlns="urn:example:e2e"/></message>`, true},
		{"body left in the clear", `<message xmlns="jabber:client" to="bob@example.org"><body>secret</body><encrypted xmlns="urn:example:e2e"/></message>`, false},
		{"extension reordered attributes", `<message xmlns="jabber:client" to="bob@example.org"><x xmlns="urn:example:private" b="2" a="1">hidden</x><encrypted xmlns="urn:example:e2e"/></message>`, false},
		{"no encrypted element", `<message xmlns="jabber:client" to="bob@example.org"><store xmlns="urn:xmpp:hints"/></message>`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkNoLeak(plain, mustStanza(t, tc.out), protocol)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrPlaintextLeak) {
				t.Errorf("err = %v, want ErrPlaintextLeak", err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("error string leaks plaintext: %v", err)
			}
		})
	}
}

func TestSameEntity(t *testing.T) {
	c := &Client{own: jid.MustParse("alice@example.org/dev")}
	for _, tc := range []struct {
		to, from string
		ok       bool
	}{
		{"", "", true},
		{"", "alice@example.org", true},
		{"alice@example.org", "", true},
		{"", "example.org", true},
		{"bob@example.org", "bob@example.org", true},
		{"bob@example.org", "BOB@example.org", true},
		{"bob@example.org/r", "bob@example.org/r", true},
		{"bob@example.org", "", false},
		{"bob@example.org", "eve@example.org", false},
		{"", "eve@example.org", false},
		{"bob@example.org/r", "bob@example.org", false},
		{"", "not a jid@@", false},
	} {
		if got := c.sameEntity(tc.to, tc.from); got != tc.ok {
			t.Errorf("sameEntity(%q, %q) = %v", tc.to, tc.from, got)
		}
	}
}

func TestStrings(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{ViaArchive.String(), "archive"},
		{ViaCarbonSent.String(), "carbon-sent"},
		{Via(99).String(), "unknown"},
		{TrustBlind.String(), "blind"},
		{Trust(99).String(), "invalid"},
	} {
		if tc.got != tc.want {
			t.Errorf("%q, want %q", tc.got, tc.want)
		}
	}
	r := &Report{Devices: []DeviceReport{{Device: "1", Sent: true}, {Device: "2", Reason: "untrusted"}}}
	if len(r.Sent()) != 1 || r.Sent()[0].Device != "1" || len(r.Skipped()) != 1 || r.Skipped()[0].Device != "2" {
		t.Errorf("report %+v", r)
	}
	var nilReport *Report
	if nilReport.Sent() != nil || nilReport.Skipped() != nil {
		t.Error("nil report")
	}
}
