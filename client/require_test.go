package client

import (
	"context"
	"encoding/xml"
	"errors"
	"testing"

	"mellium.im/xmpp/jid"

	"hush.im/sce"
)

// TestRequireEncryption: a contact that requires encryption never gets
// content in the clear through Send; server-processed elements, stanzas to
// the own account and other contacts still go.
func TestRequireEncryption(t *testing.T) {
	c, fs := newPair(t)
	ctx := context.Background()
	bob, carol := jid.MustParse("bob@example.org"), jid.MustParse("carol@example.org")
	msg := func(to string, children ...sce.Element) *sce.Stanza {
		return &sce.Stanza{
			Name:     xml.Name{Space: nsClient, Local: "message"},
			Attr:     []xml.Attr{{Name: xml.Name{Local: "to"}, Value: to}, {Name: xml.Name{Local: "type"}, Value: "chat"}},
			Children: children,
		}
	}
	body := sce.TextElement(xml.Name{Space: nsClient, Local: "body"}, "in the clear")
	state := sce.TextElement(xml.Name{Space: "http://jabber.org/protocol/chatstates", Local: "active"}, "")
	eme := sce.TextElement(xml.Name{Space: nsEME, Local: "encryption"}, "", xml.Attr{Name: xml.Name{Local: "namespace"}, Value: "urn:example:e2e"})
	status := sce.TextElement(xml.Name{Space: nsClient, Local: "status"}, "at the lighthouse")
	presence := &sce.Stanza{Name: xml.Name{Space: nsClient, Local: "presence"}, Attr: []xml.Attr{{Name: xml.Name{Local: "to"}, Value: "bob@example.org/phone"}}, Children: []sce.Element{status}}

	if c.RequiresEncryption(bob) {
		t.Fatal("bob requires encryption before anyone said so")
	}
	c.SetRequireEncryption(bob, true)
	for _, st := range []*sce.Stanza{msg("bob@example.org", body), msg("bob@example.org/phone", state), presence} {
		if err := c.Send(ctx, st); !errors.Is(err, ErrEncryptionRequired) {
			t.Fatalf("Send of %s to bob: %v, want ErrEncryptionRequired", st.Name.Local, err)
		}
	}
	// What may go: no content, or to someone else.
	for _, st := range []*sce.Stanza{msg("bob@example.org", eme), msg("carol@example.org", body), msg("alice@example.org", body)} {
		if err := c.Send(ctx, st); err != nil {
			t.Fatalf("Send to %s: %v", st.AttrValue("to"), err)
		}
		if got := fs.next(); got.AttrValue("to") != st.AttrValue("to") {
			t.Fatalf("the server got a stanza to %s, want %s", got.AttrValue("to"), st.AttrValue("to"))
		}
	}
	// Everyone, but carol by name.
	c.mu.Lock()
	c.requireAll = true
	c.mu.Unlock()
	c.SetRequireEncryption(carol, false)
	if err := c.Send(ctx, msg("dave@example.org", body)); !errors.Is(err, ErrEncryptionRequired) {
		t.Fatalf("dave with RequireEncryption: %v", err)
	}
	if err := c.Send(ctx, msg("carol@example.org", body)); err != nil {
		t.Fatal(err)
	}
	fs.next()
	select {
	case st := <-fs.in:
		t.Fatalf("the server got %+v", st)
	default:
	}
}
