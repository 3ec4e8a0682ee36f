package omemo_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"strings"
	"testing"

	"hush.im/omemo"
	"hush.im/sce"
)

func parseStanza(t *testing.T, s string) *sce.Stanza {
	t.Helper()
	st, err := sce.ParseStanza([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func marshal(t *testing.T, st *sce.Stanza) string {
	t.Helper()
	b, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSealOpenStanza(t *testing.T) {
	_, a, b := pair(t)
	a.sync(b.jid)
	st := parseStanza(t, `<message xmlns="jabber:client" to="bob@example.net/pc" id="m1" type="chat">`+
		`<body>Secret plans</body><origin-id xmlns="urn:xmpp:sid:0" id="o1"/></message>`)
	outer, rep, err := a.m.SealStanza(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Sent()) != 1 {
		t.Fatalf("report %+v", rep)
	}
	wire := marshal(t, outer)
	for _, want := range []string{
		`<encrypted xmlns="urn:xmpp:omemo:2"><header sid=`,
		`<encryption xmlns="urn:xmpp:eme:0" namespace="urn:xmpp:omemo:2" name="OMEMO">`,
		`<store xmlns="urn:xmpp:hints">`,
		`<origin-id xmlns="urn:xmpp:sid:0" id="o1">`,
	} {
		if !strings.Contains(wire, want) {
			t.Errorf("outer stanza lacks %s:\n%s", want, wire)
		}
	}
	if strings.Contains(wire, "Secret") || strings.Contains(wire, "<body") {
		t.Fatalf("plaintext outside: %s", wire)
	}

	// The receiver sees the stanza as the server delivers it.
	in := parseStanza(t, strings.Replace(wire, `<message xmlns="jabber:client"`, `<message xmlns="jabber:client" from="alice@example.org/phone"`, 1))

	// A stanza relabelled as from someone else fails SCE verification
	// and changes nothing.
	forged := parseStanza(t, strings.Replace(wire, `<message xmlns="jabber:client"`, `<message xmlns="jabber:client" from="mallory@example.org/x"`, 1))
	unchanged(t, b, func() {
		_, err := b.m.OpenStanza(forged, nil)
		if !errors.Is(err, sce.ErrSenderMismatch) {
			t.Fatalf("forged sender: %v", err)
		}
	})

	got, err := b.m.OpenStanza(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Stanza == nil || !got.NewSession {
		t.Fatalf("opened %+v", got)
	}
	var body *sce.Element
	for i, el := range got.Stanza.Children {
		if el.Name.Local == "body" {
			body = &got.Stanza.Children[i]
		}
		if el.Name == (xml.Name{Space: omemo.NS, Local: "encrypted"}) {
			t.Fatal("encrypted element left in the opened stanza")
		}
	}
	if body == nil || !body.Encrypted || body.Text() != "Secret plans" {
		t.Fatalf("body %+v", body)
	}
	_, err = b.m.OpenStanza(in, nil)
	mustErr(t, err, omemo.ErrDuplicate)

	// An empty message (the key exchange answer) opens to no stanza.
	e, err := b.m.EncryptEmpty(got.Sender)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := xml.NewEncoder(&buf).Encode(e); err != nil {
		t.Fatal(err)
	}
	empty := parseStanza(t, `<message xmlns="jabber:client" from="bob@example.net/pc" to="alice@example.org">`+buf.String()+`</message>`)
	opened, err := a.m.OpenStanza(empty, nil)
	if err != nil || opened.Stanza != nil || opened.Envelope != nil {
		t.Fatalf("empty: %+v %v", opened, err)
	}

	_, err = a.m.OpenStanza(parseStanza(t, `<message xmlns="jabber:client" from="bob@example.net"><body>hi</body></message>`), nil)
	mustErr(t, err, omemo.ErrNoEncrypted)
}

func TestSealNoEligible(t *testing.T) {
	_, a, _ := pair(t)
	st := parseStanza(t, `<message xmlns="jabber:client" to="nobody@example.net" type="chat"><body>x</body></message>`)
	unchanged(t, a, func() {
		_, rep, err := a.m.SealStanza(st, nil)
		var ne *omemo.NoEligibleDevicesError
		if !errors.As(err, &ne) || rep == nil || rep.Devices[0].Reason != omemo.ReasonNoDeviceList {
			t.Fatalf("%v %+v", err, rep)
		}
	})
}
