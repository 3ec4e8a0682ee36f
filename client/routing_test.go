package client

import (
	"context"
	"encoding/xml"
	"errors"
	"slices"
	"testing"

	"mellium.im/xmpp/jid"

	"hush.im/sce"
)

// testOldProtocol is the second element of multiTestEngine, as legacy
// OMEMO's is of the OMEMO engine.
var testOldProtocol = name("urn:example:test-engine-old", "sealed")

// multiTestEngine is a testEngine that also reads and writes
// testOldProtocol (MultiEngine).
type multiTestEngine struct {
	testEngine
	names  []xml.Name
	oldOut bool // Encrypt writes testOldProtocol instead
}

func (e *multiTestEngine) EncryptedNames() []xml.Name { return e.names }

func (e *multiTestEngine) Encrypt(ctx context.Context, plain *sce.Stanza) (*sce.Stanza, *Report, error) {
	out, rep, err := e.testEngine.Encrypt(ctx, plain)
	if err == nil && e.oldOut {
		for i, ch := range out.Children {
			if ch.Name == testProtocol {
				out.Children[i] = elem(testOldProtocol, nil, children(ch)...)
			}
		}
	}
	return out, rep, err
}

func (e *multiTestEngine) Decrypt(ctx context.Context, in *Incoming) (*sce.Stanza, *Security, error) {
	old, ok := stanzaChild(in.Stanza, testOldProtocol)
	if !ok {
		return e.testEngine.Decrypt(ctx, in)
	}
	out := &sce.Stanza{Name: in.Stanza.Name, Attr: in.Stanza.Attr}
	for _, ch := range children(old) {
		ch.Encrypted = true
		out.Children = append(out.Children, ch)
	}
	return out, &Security{Protocol: testOldProtocol, Sender: senderOf(in.Stanza, jid.JID{}).Bare(), Device: "8", Trust: TrustBlind}, nil
}

func TestEngineNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    Engine
		want []xml.Name
	}{
		{"single", &testEngine{}, []xml.Name{testProtocol}},
		{"multi", &multiTestEngine{names: []xml.Name{testOldProtocol}}, []xml.Name{testProtocol, testOldProtocol}},
		{"multi without extra names", &multiTestEngine{}, []xml.Name{testProtocol}},
		{"duplicates dropped", &multiTestEngine{names: []xml.Name{testProtocol, testOldProtocol, testOldProtocol}}, []xml.Name{testProtocol, testOldProtocol}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := engineNames(tc.e); !slices.Equal(got, tc.want) {
				t.Errorf("engineNames = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAddEngineRejectsEmptyExtraName(t *testing.T) {
	c, _ := newPair(t)
	if err := c.AddEngine(&multiTestEngine{names: []xml.Name{{Space: "urn:example:x"}}}); err == nil {
		t.Fatal("engine with an empty extra name added")
	}
	if _, ok := c.engine(testProtocol); ok {
		t.Fatal("refused engine registered under its primary name")
	}
}

// A MultiEngine receives stanzas carrying any of its elements and is
// reachable for sending under each of its names; a plain Engine keeps
// receiving only its own element.
func TestMultiEngineRouting(t *testing.T) {
	for _, multi := range []bool{false, true} {
		t.Run(map[bool]string{false: "single", true: "multi"}[multi], func(t *testing.T) {
			c, fs := newPair(t)
			ctx := context.Background()
			var e Engine = &testEngine{}
			if multi {
				e = &multiTestEngine{names: []xml.Name{testOldProtocol}}
			}
			if err := c.AddEngine(e); err != nil {
				t.Fatal(err)
			}
			msgs := make(chan *Incoming, 4)
			c.HandleMessage(func(_ context.Context, in *Incoming) { msgs <- in })

			fs.send(`<message xmlns="jabber:client" from="bob@example.org/x"><sealed xmlns="urn:example:test-engine-old"><body xmlns="jabber:client">old</body></sealed></message>`)
			in := recv(t, msgs, "old-protocol message")
			if multi {
				if in.Err != nil || in.Security == nil || in.Security.Protocol != testOldProtocol || body(in.Stanza) != "old" {
					t.Fatalf("old-protocol message not decrypted: %+v", in)
				}
			} else if in.Security != nil || in.Err != nil {
				t.Fatalf("a single engine got a stanza of another protocol: %+v", in)
			}
			fs.send(`<message xmlns="jabber:client" from="bob@example.org/x"><sealed xmlns="urn:example:test-engine"><body xmlns="jabber:client">new</body></sealed></message>`)
			if in := recv(t, msgs, "message"); in.Security == nil || in.Security.Protocol != testProtocol || body(in.Stanza) != "new" {
				t.Fatalf("primary-protocol message not decrypted: %+v", in)
			}

			msg := mustStanza(t, `<message xmlns="jabber:client" to="bob@example.org" type="chat"><body>secret</body></message>`)
			_, err := c.SendEncrypted(ctx, testOldProtocol, msg)
			if !multi {
				if !errors.Is(err, ErrNoEngine) {
					t.Fatalf("send under an unknown name: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("send under the extra name: %v", err)
			}
			if out := fs.next(); body(out) != "" {
				t.Fatalf("sent %+v", out)
			}
			// Output carrying only the extra element passes the leak check.
			e.(*multiTestEngine).oldOut = true
			if _, err := c.SendEncrypted(ctx, testProtocol, msg); err != nil {
				t.Fatalf("send with the extra element: %v", err)
			}
			out := fs.next()
			if _, ok := stanzaChild(out, testOldProtocol); !ok || body(out) != "" {
				t.Fatalf("sent %+v", out)
			}
		})
	}
}

func TestCheckNoLeakSeveralProtocols(t *testing.T) {
	plain := mustStanza(t, `<message xmlns="jabber:client" to="bob@example.org"><body>secret</body></message>`)
	for _, tc := range []struct {
		name string
		out  string
		ok   bool
	}{
		{"primary", `<message xmlns="jabber:client"><sealed xmlns="urn:example:test-engine"/></message>`, true},
		{"extra", `<message xmlns="jabber:client"><sealed xmlns="urn:example:test-engine-old"/></message>`, true},
		{"both", `<message xmlns="jabber:client"><sealed xmlns="urn:example:test-engine"/><sealed xmlns="urn:example:test-engine-old"/></message>`, true},
		{"neither", `<message xmlns="jabber:client"><sealed xmlns="urn:example:other"/></message>`, false},
		{"extra with body in the clear", `<message xmlns="jabber:client"><body>secret</body><sealed xmlns="urn:example:test-engine-old"/></message>`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkNoLeak(plain, mustStanza(t, tc.out), testProtocol, testOldProtocol)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrPlaintextLeak) {
				t.Errorf("err = %v, want ErrPlaintextLeak", err)
			}
		})
	}
	if err := checkNoLeak(plain, mustStanza(t, `<message xmlns="jabber:client"><sealed xmlns="urn:example:test-engine"/></message>`)); !errors.Is(err, ErrPlaintextLeak) {
		t.Errorf("no protocol names: %v", err)
	}
}
