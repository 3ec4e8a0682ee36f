package main

import (
	"encoding/xml"
	"errors"
	"path/filepath"
	"testing"

	"mellium.im/xmpp/jid"

	"hush.im/client"
	"hush.im/sce"
	"hush.im/store"
	"hush.im/store/bolt"
)

func sidElement(local string, attrs ...string) sce.Element {
	var a []xml.Attr
	for i := 0; i+1 < len(attrs); i += 2 {
		a = append(a, xml.Attr{Name: xml.Name{Local: attrs[i]}, Value: attrs[i+1]})
	}
	start := xml.StartElement{Name: xml.Name{Space: nsSID, Local: local}, Attr: a}
	return sce.Element{Name: start.Name, Tokens: []xml.Token{start, start.End()}}
}

func TestMessageIDs(t *testing.T) {
	own, alice := jid.MustParse("bob@example.org"), jid.MustParse("alice@example.net/phone")
	tests := []struct {
		name string
		in   *client.Incoming
		want []store.MessageID
	}{
		{"none", &client.Incoming{From: alice, Stanza: &sce.Stanza{}}, nil},
		{"stanza-id by own server", &client.Incoming{From: alice, Stanza: &sce.Stanza{Children: []sce.Element{sidElement("stanza-id", "by", "bob@example.org", "id", "s1")}}},
			[]store.MessageID{{Kind: store.StanzaID, Scope: own, ID: "s1"}}},
		{"stanza-id by someone else is ignored", &client.Incoming{From: alice, Stanza: &sce.Stanza{Children: []sce.Element{sidElement("stanza-id", "by", "alice@example.net", "id", "s1")}}}, nil},
		{"origin-id scoped to the sender", &client.Incoming{From: alice, Stanza: &sce.Stanza{Children: []sce.Element{sidElement("origin-id", "id", "o1")}}},
			[]store.MessageID{{Kind: store.OriginID, Scope: alice.Bare(), ID: "o1"}}},
		{"empty origin-id is ignored", &client.Incoming{From: alice, Stanza: &sce.Stanza{Children: []sce.Element{sidElement("origin-id", "id", "")}}}, nil},
		{"archive id and stanza-id, once", &client.Incoming{From: alice, Via: client.ViaArchive, ArchiveID: "a1", Stanza: &sce.Stanza{Children: []sce.Element{sidElement("stanza-id", "by", "bob@example.org", "id", "a1")}}},
			[]store.MessageID{{Kind: store.StanzaID, Scope: own, ID: "a1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := messageIDs(own, tt.in)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i].Kind != tt.want[i].Kind || got[i].ID != tt.want[i].ID || !got[i].Scope.Equal(tt.want[i].Scope) {
					t.Errorf("id %d: got %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestInbox: a decrypted message waits in the inbox until acknowledged,
// survives reopening the store, and a duplicate is refused.
func TestInbox(t *testing.T) {
	own, alice := jid.MustParse("bob@example.org"), jid.MustParse("alice@example.net/phone")
	path := filepath.Join(t.TempDir(), "s", "bob.hush")
	st, err := bolt.Open(path, own, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &session{st: st}
	in := &client.Incoming{From: alice, Via: client.ViaLive, Stanza: &sce.Stanza{Children: []sce.Element{sidElement("origin-id", "id", "o1")}}}
	bodyEl := sce.TextElement(xml.Name{Space: nsClient, Local: "body"}, "hello")
	bodyEl.Encrypted = true
	plain := &sce.Stanza{Children: []sce.Element{bodyEl}}
	sec := &client.Security{Protocol: client.OMEMOEncrypted, Sender: alice.Bare(), Device: "1234", Trust: client.TrustBlind}
	if dup, err := s.seen(messageIDs(own, in)); err != nil || dup {
		t.Fatalf("seen before put: %v %v", dup, err)
	}
	if err := s.putInbox(own, in, plain, sec); err != nil {
		t.Fatal(err)
	}
	if dup, err := s.seen(messageIDs(own, in)); err != nil || !dup {
		t.Fatalf("seen after put: %v %v", dup, err)
	}
	if err := s.putInbox(own, in, plain, sec); !errors.Is(err, client.ErrDuplicate) {
		t.Fatalf("second put: %v, want client.ErrDuplicate", err)
	}
	// A message without ids (no origin-id, no stanza-id) is kept too.
	if err := s.putInbox(own, &client.Incoming{From: alice, Stanza: &sce.Stanza{}}, plain, sec); err != nil {
		t.Fatal(err)
	}
	// The process dies before printing: the next listen finds both.
	st.Close()
	if st, err = bolt.Open(path, own, nil); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s = &session{st: st}
	msgs, err := s.pendingInbox(0)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("inbox: %d messages, %v; want 2", len(msgs), err)
	}
	e, err := decodeEntry(msgs[0])
	want := listened{From: "alice@example.net", Device: "1234", Protocol: "omemo2", Trust: "blind", Via: "live", Text: "hello"}
	if err != nil || e != want {
		t.Fatalf("entry: %+v %v, want %+v", e, err, want)
	}
	if msgs[0].Device != 1234 || !msgs[0].From.Equal(alice.Bare()) {
		t.Errorf("message %v", msgs[0])
	}
	if err := s.ack(msgs[0].Seq); err != nil {
		t.Fatal(err)
	}
	if msgs, err = s.pendingInbox(0); err != nil || len(msgs) != 1 {
		t.Fatalf("after ack: %d messages, %v; want 1", len(msgs), err)
	}
	// An empty message (no body) leaves nothing to show but is seen.
	in2 := &client.Incoming{From: alice, Stanza: &sce.Stanza{Children: []sce.Element{sidElement("origin-id", "id", "o2")}}}
	if err := s.putInbox(own, in2, &sce.Stanza{}, sec); err != nil {
		t.Fatal(err)
	}
	if dup, err := s.seen(messageIDs(own, in2)); err != nil || !dup {
		t.Fatalf("empty message not marked seen: %v %v", dup, err)
	}
	if msgs, err = s.pendingInbox(0); err != nil || len(msgs) != 1 {
		t.Fatalf("after empty message: %d messages, %v; want 1", len(msgs), err)
	}
	// A payload that is not ours is a clear error.
	if _, err := decodeEntry(&store.Message{Seq: 9, Payload: []byte("{")}); !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("decodeEntry of junk: %v", err)
	}
}
