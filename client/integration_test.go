//go:build integration

package client_test

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp/jid"

	"hush.im/client"
	"hush.im/internal/prosodytest"
	"hush.im/sce"
)

// testTimeout bounds every integration scenario.
const testTimeout = 30 * time.Second

// waitTimeout bounds the wait for one expected stanza or event.
const waitTimeout = 10 * time.Second

// users share one Prosody per test and are all in one mod_groups group
// (mutual subscriptions).
var users = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace"}

func startServer(t *testing.T, tls bool) *prosodytest.Server {
	return prosodytest.Start(t, prosodytest.Options{Users: users, TLS: tls, PasswordHash: "SHA-256", MaxArchiveResults: 20})
}

func dialPlain(t *testing.T, ctx context.Context, srv *prosodytest.Server, user, resource string) *client.Client {
	t.Helper()
	j, err := srv.JID(user).WithResource(resource)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(ctx, j, srv.Password(user), &client.Options{Addr: srv.Addr, PlainLoopback: true})
	if err != nil {
		t.Fatalf("dial %s: %v", j, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// inbox collects what handlers receive.
type inbox[T any] struct {
	c chan T
}

func newInbox[T any]() *inbox[T] { return &inbox[T]{c: make(chan T, 256)} }

func (b *inbox[T]) put(v T) { b.c <- v }

func (b *inbox[T]) next(t *testing.T, what string) T {
	t.Helper()
	select {
	case v := <-b.c:
		return v
	case <-time.After(waitTimeout):
		var zero T
		t.Fatalf("timed out waiting for %s", what)
		return zero
	}
}

func (b *inbox[T]) none(t *testing.T, what string, d time.Duration) {
	t.Helper()
	select {
	case v := <-b.c:
		t.Fatalf("unexpected %s: %+v", what, v)
	case <-time.After(d):
	}
}

func messageInbox(c *client.Client) *inbox[*client.Incoming] {
	b := newInbox[*client.Incoming]()
	c.HandleMessage(func(_ context.Context, in *client.Incoming) { b.put(in) })
	return b
}

func chat(to jid.JID, body string) *sce.Stanza {
	return &sce.Stanza{
		Name: xml.Name{Space: "jabber:client", Local: "message"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "to"}, Value: to.String()}, {Name: xml.Name{Local: "type"}, Value: "chat"}},
		Children: []sce.Element{
			sce.TextElement(xml.Name{Space: "jabber:client", Local: "body"}, body),
		},
	}
}

func body(st *sce.Stanza) string {
	for _, ch := range st.Children {
		if ch.Name == (xml.Name{Space: "jabber:client", Local: "body"}) {
			return ch.Text()
		}
	}
	return ""
}

func TestIntegrationConnect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	srv := startServer(t, true)

	t.Run("plain loopback", func(t *testing.T) {
		c := dialPlain(t, ctx, srv, "alice", "dev1")
		if got := c.JID().String(); got != "alice@localhost/dev1" {
			t.Errorf("bound %s, want alice@localhost/dev1", got)
		}
		info, err := c.DiscoInfo(ctx, jid.MustParse(srv.Domain), "")
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"urn:xmpp:carbons:2", "urn:xmpp:ping"} {
			if !info.Has(f) {
				t.Errorf("server features lack %s: %v", f, info.Features)
			}
		}
		// The archive and PEP are the account's (XEP-0313 §6, XEP-0163 §6).
		info, err = c.DiscoInfo(ctx, c.JID().Bare(), "")
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"urn:xmpp:mam:2", "http://jabber.org/protocol/pubsub#publish-options"} {
			if !info.Has(f) {
				t.Errorf("account features lack %s: %v", f, info.Features)
			}
		}
	})

	for _, tc := range []struct {
		name  string
		opts  client.Options
		addr  string
		mechs []sasl.Mechanism
	}{
		{name: "starttls scram-sha-256", addr: srv.Addr, mechs: []sasl.Mechanism{sasl.ScramSha256}},
		{name: "starttls plain", addr: srv.Addr, mechs: []sasl.Mechanism{sasl.Plain}},
		{name: "direct tls", addr: srv.DirectTLSAddr, opts: client.Options{DirectTLS: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.Addr, opts.TLS, opts.Mechanisms = tc.addr, srv.TLSConfig(), tc.mechs
			c, err := client.Dial(ctx, srv.JID("bob"), srv.Password("bob"), &opts)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if !c.Session().ConnectionState().HandshakeComplete {
				t.Error("no TLS")
			}
			if c.JID().Bare().String() != "bob@localhost" || c.JID().Resourcepart() == "" {
				t.Errorf("bound %s", c.JID())
			}
		})
	}

	t.Run("wrong password", func(t *testing.T) {
		_, err := client.Dial(ctx, srv.JID("bob"), "not the password", &client.Options{Addr: srv.Addr, TLS: srv.TLSConfig()})
		var ae *client.AuthError
		if !errors.Is(err, client.ErrAuth) || !errors.As(err, &ae) {
			t.Fatalf("err = %v, want ErrAuth", err)
		}
		t.Logf("wrong password: %v", err)
	})

	t.Run("untrusted certificate", func(t *testing.T) {
		_, err := client.Dial(ctx, srv.JID("bob"), srv.Password("bob"), &client.Options{Addr: srv.Addr})
		if err == nil || errors.Is(err, client.ErrAuth) {
			t.Fatalf("err = %v, want a certificate error", err)
		}
		t.Logf("system roots: %v", err)
	})

	t.Run("plain to non-loopback refused", func(t *testing.T) {
		_, err := client.Dial(ctx, srv.JID("bob"), srv.Password("bob"), &client.Options{PlainLoopback: true})
		if !errors.Is(err, client.ErrInsecureRemote) {
			t.Fatalf("err = %v, want ErrInsecureRemote", err)
		}
	})
}

const testNode = "urn:example:hush:test"

func payload(text string) sce.Element {
	return sce.TextElement(xml.Name{Space: testNode, Local: "note"}, text, xml.Attr{Name: xml.Name{Local: "b"}, Value: "2"}, xml.Attr{Name: xml.Name{Local: "a"}, Value: "1"})
}

func TestIntegrationPEP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	srv := startServer(t, false)
	outsider := srv.Register(t, "outsider")

	alice := dialPlain(t, ctx, srv, "alice", "a1")
	bob := dialPlain(t, ctx, srv, "bob", "b1")
	events := newInbox[*client.Event]()
	if err := bob.HandleEvents(testNode, func(_ context.Context, ev *client.Event) { events.put(ev) }); err != nil {
		t.Fatal(err)
	}
	if err := alice.Online(ctx); err != nil {
		t.Fatal(err)
	}
	if err := bob.Online(ctx); err != nil {
		t.Fatal(err)
	}

	// Bob's client advertises the +notify feature through disco and caps.
	info, err := alice.DiscoInfo(ctx, bob.JID(), "")
	if err != nil {
		t.Fatal(err)
	}
	if !info.Has(testNode + "+notify") {
		t.Fatalf("bob's features lack +notify: %v", info.Features)
	}

	// Prosody queries bob's caps before it sends him events: wait until
	// the first publication reaches him.
	var id string
	deadline := time.Now().Add(waitTimeout)
	var ev *client.Event
	for ev == nil {
		id, err = alice.Publish(ctx, testNode, client.Item{ID: "current", Payload: payload("v1")}, &client.PublishOptions{MaxItems: client.MaxItemsMax})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case ev = <-events.c:
		case <-time.After(200 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("no +notify event for bob")
			}
		}
	}
	if id != "current" {
		t.Errorf("published id %q", id)
	}
	if !ev.From.Equal(alice.JID().Bare()) || ev.Node != testNode || len(ev.Items) != 1 || ev.Items[0].Payload.Text() != "v1" {
		t.Fatalf("event %+v", ev)
	}

	// Open access: an account without a subscription fetches the item.
	other := dialPlain(t, ctx, srv, outsider.Localpart(), "o1")
	items, err := other.FetchItems(ctx, alice.JID().Bare(), testNode, "current")
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].Payload.Text() != "v1" || items[0].Payload.AttrValue("a") != "1" {
		t.Fatalf("outsider fetched %+v", items)
	}

	// A second item, then all items, then a retraction.
	if _, err := alice.Publish(ctx, testNode, client.Item{ID: "second", Payload: payload("v2")}, &client.PublishOptions{MaxItems: client.MaxItemsMax}); err != nil {
		t.Fatal(err)
	}
	// Skip the events of repeated "current" publications above.
	for {
		ev := events.next(t, "event for the second item")
		if len(ev.Items) == 1 && ev.Items[0].ID == "current" {
			continue
		}
		if len(ev.Items) != 1 || ev.Items[0].ID != "second" || ev.Items[0].Payload.Text() != "v2" {
			t.Fatalf("event %+v", ev)
		}
		break
	}
	all, err := bob.FetchItems(ctx, alice.JID().Bare(), testNode)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Fatalf("fetched %d items, want 2", len(all))
	}
	if err := alice.Retract(ctx, testNode, "second"); err != nil {
		t.Fatal(err)
	}
	if ev := events.next(t, "retraction"); len(ev.Retracted) != 1 || ev.Retracted[0] != "second" {
		t.Fatalf("event %+v", ev)
	}
	// Each notification is handled once (Prosody sends it twice).
	events.none(t, "duplicate event", 300*time.Millisecond)
	items, err = other.FetchItems(ctx, alice.JID().Bare(), testNode, "second")
	var se *client.StanzaError
	if !(err == nil && len(items) == 0) && !(errors.As(err, &se) && se.Condition == "item-not-found") {
		t.Fatalf("fetching a retracted item: %v %+v", err, items)
	}
}

func TestIntegrationPreconditionRecovery(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	srv := startServer(t, false)
	carol := dialPlain(t, ctx, srv, "carol", "c1")

	// Pre-create the node with another configuration (XEP-0060 §8.1.3).
	create := &sce.Stanza{
		Name: xml.Name{Space: "jabber:client", Local: "iq"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "type"}, Value: "set"}},
		Children: []sce.Element{mustParseElement(t, `<pubsub xmlns="http://jabber.org/protocol/pubsub">
<create node="`+testNode+`"/><configure><x xmlns="jabber:x:data" type="submit">
<field var="FORM_TYPE" type="hidden"><value>http://jabber.org/protocol/pubsub#node_config</value></field>
<field var="pubsub#access_model"><value>presence</value></field>
<field var="pubsub#max_items"><value>1</value></field></x></configure></pubsub>`)},
	}
	if _, err := carol.SendIQ(ctx, create); err != nil {
		t.Fatalf("creating the node: %v", err)
	}
	cfg, err := carol.NodeConfig(ctx, testNode)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg["pubsub#access_model"]; len(got) != 1 || got[0] != "presence" {
		t.Fatalf("pre-created node has access model %q", got)
	}

	id, err := carol.Publish(ctx, testNode, client.Item{ID: "1", Payload: payload("bundle")}, &client.PublishOptions{MaxItems: client.MaxItemsMax})
	if err != nil {
		t.Fatalf("publish after precondition-not-met: %v", err)
	}
	cfg, err = carol.NodeConfig(ctx, testNode)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg["pubsub#access_model"]; len(got) != 1 || got[0] != "open" {
		t.Errorf("node access model %q after recovery", got)
	}
	if got := cfg["pubsub#max_items"]; len(got) != 1 || got[0] != "max" {
		t.Errorf("node max_items %q after recovery", got)
	}
	if err := carol.ConfigureNode(ctx, testNode, map[string]string{"pubsub#max_items": "5"}); err != nil {
		t.Fatal(err)
	}
	if cfg, err = carol.NodeConfig(ctx, testNode); err != nil || cfg["pubsub#max_items"][0] != "5" || cfg["pubsub#access_model"][0] != "open" {
		t.Fatalf("after ConfigureNode: %v %v", cfg, err)
	}
	// Stranger-readable now.
	other := dialPlain(t, ctx, srv, srv.Register(t, "stranger").Localpart(), "s1")
	items, err := other.FetchItems(ctx, carol.JID().Bare(), testNode, id)
	if err != nil || len(items) != 1 {
		t.Fatalf("stranger fetch: %v %+v", err, items)
	}
}

func mustParseElement(t *testing.T, s string) sce.Element {
	t.Helper()
	d := xml.NewDecoder(stringsReader(s))
	el, err := sce.ReadElement(d)
	if err != nil {
		t.Fatal(err)
	}
	return el
}

func TestIntegrationCarbons(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	srv := startServer(t, false)
	dev1 := dialPlain(t, ctx, srv, "alice", "dev1")
	dev2 := dialPlain(t, ctx, srv, "alice", "dev2")
	bob := dialPlain(t, ctx, srv, "bob", "b1")
	in1, in2, inBob := messageInbox(dev1), messageInbox(dev2), messageInbox(bob)
	for _, c := range []*client.Client{dev1, dev2} {
		if err := c.EnableCarbons(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*client.Client{dev1, dev2, bob} {
		if err := c.Online(ctx); err != nil {
			t.Fatal(err)
		}
	}

	if err := bob.Send(ctx, chat(dev1.JID(), "to device 1")); err != nil {
		t.Fatal(err)
	}
	got := in1.next(t, "message on device 1")
	if got.Via != client.ViaLive || body(got.Stanza) != "to device 1" {
		t.Fatalf("device 1 got %v %q", got.Via, body(got.Stanza))
	}
	cc := in2.next(t, "carbon on device 2")
	if cc.Via != client.ViaCarbonReceived || body(cc.Stanza) != "to device 1" || cc.Stanza.AttrValue("to") != dev1.JID().String() {
		t.Fatalf("device 2 got %v %q to %s", cc.Via, body(cc.Stanza), cc.Stanza.AttrValue("to"))
	}
	if f := cc.From; !f.Bare().Equal(bob.JID().Bare()) {
		t.Errorf("carbon from %s", f)
	}

	if err := dev1.Send(ctx, chat(bob.JID(), "from device 1")); err != nil {
		t.Fatal(err)
	}
	if got := inBob.next(t, "message to bob"); body(got.Stanza) != "from device 1" {
		t.Fatalf("bob got %q", body(got.Stanza))
	}
	sent := in2.next(t, "sent carbon on device 2")
	if sent.Via != client.ViaCarbonSent || body(sent.Stanza) != "from device 1" {
		t.Fatalf("device 2 got %v %q", sent.Via, body(sent.Stanza))
	}

	// A forged carbon from another account is dropped (XEP-0280 §11).
	forged := &sce.Stanza{
		Name: xml.Name{Space: "jabber:client", Local: "message"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "to"}, Value: dev2.JID().String()}},
		Children: []sce.Element{mustParseElement(t, `<received xmlns="urn:xmpp:carbons:2"><forwarded xmlns="urn:xmpp:forward:0">
<message xmlns="jabber:client" from="carol@localhost/x" to="alice@localhost/dev1" type="chat"><body>forged</body></message></forwarded></received>`)},
	}
	if err := bob.Send(ctx, forged); err != nil {
		t.Fatal(err)
	}
	in2.none(t, "forged carbon", 300*time.Millisecond)
}

func TestIntegrationArchivePaging(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	srv := startServer(t, false)
	dave := dialPlain(t, ctx, srv, "dave", "d1")
	erin := dialPlain(t, ctx, srv, "erin", "e1")
	got := messageInbox(erin)
	if err := erin.Online(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := range n {
		if err := dave.Send(ctx, chat(erin.JID().Bare(), "archived "+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		got.next(t, "live message")
	}

	// Pages of 7 through 50 messages (Prosody caps pages at 20).
	var bodies []string
	seen := map[string]bool{}
	q := client.ArchiveQuery{With: dave.JID().Bare(), Max: 7}
	pages := 0
	for {
		page, err := erin.QueryArchive(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(page.Messages) > 7 {
			t.Fatalf("page of %d", len(page.Messages))
		}
		for _, m := range page.Messages {
			if m.Via != client.ViaArchive || m.ArchiveID == "" || seen[m.ArchiveID] {
				t.Fatalf("result %v id %q", m.Via, m.ArchiveID)
			}
			seen[m.ArchiveID] = true
			bodies = append(bodies, body(m.Stanza))
		}
		if page.Complete {
			if page.Count != -1 && page.Count != n {
				t.Errorf("count %d, want %d", page.Count, n)
			}
			break
		}
		q.After = page.Last
	}
	if len(bodies) != n || pages != (n+6)/7 {
		t.Fatalf("%d messages in %d pages", len(bodies), pages)
	}
	for i, b := range bodies {
		if b != "archived "+strconv.Itoa(i) {
			t.Fatalf("message %d is %q", i, b)
		}
	}

	// CatchUp pages on its own, with the server's page size (20).
	var all []string
	err := erin.CatchUp(ctx, client.ArchiveQuery{With: dave.JID().Bare(), Max: client.MaxArchivePage}, func(in *client.Incoming) error {
		all = append(all, body(in.Stanza))
		return nil
	})
	if err != nil || len(all) != n || all[n-1] != "archived 49" {
		t.Fatalf("catch-up: %v, %d messages", err, len(all))
	}
}

func TestIntegrationOffline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	srv := startServer(t, false)
	frank := dialPlain(t, ctx, srv, "frank", "f1")
	grace := srv.JID("grace")
	if err := frank.Send(ctx, chat(grace, "while you were away")); err != nil {
		t.Fatal(err)
	}
	// The message is stored once the server has processed it: a round
	// trip after it orders the two.
	if _, err := frank.DiscoInfo(ctx, jid.MustParse(srv.Domain), ""); err != nil {
		t.Fatal(err)
	}
	g := dialPlain(t, ctx, srv, "grace", "g1")
	got := messageInbox(g)
	if err := g.Online(ctx); err != nil {
		t.Fatal(err)
	}
	m := got.next(t, "offline message")
	if m.Via != client.ViaOffline || body(m.Stanza) != "while you were away" {
		t.Fatalf("got %v %q", m.Via, body(m.Stanza))
	}
	// The data directory check later scenarios use to prove that no
	// plaintext reached the server: here the plaintext is there.
	files, err := srv.FilesContaining([]byte("while you were away"))
	if err != nil || len(files) == 0 {
		t.Fatalf("plaintext not found in the data directory: %v %v", files, err)
	}
	t.Logf("plaintext stored in %v", files)
}

func TestIntegrationIQ(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	srv := startServer(t, false)
	alice := dialPlain(t, ctx, srv, "alice", "a1")
	bob := dialPlain(t, ctx, srv, "bob", "b1")
	echo := xml.Name{Space: "urn:example:hush:echo", Local: "echo"}
	var mu sync.Mutex
	var inHandlerErr error
	if err := alice.HandleIQ(echo, func(ctx context.Context, in *client.Incoming) ([]sce.Element, error) {
		// A round trip from the handler fails at once instead of
		// deadlocking the stream.
		_, err := alice.DiscoInfo(ctx, jid.MustParse(srv.Domain), "")
		mu.Lock()
		inHandlerErr = err
		mu.Unlock()
		// Replies may still be sent.
		if err := alice.Send(ctx, chat(bob.JID(), "side note")); err != nil {
			return nil, err
		}
		if in.Stanza.Children[0].Text() == "fail" {
			return nil, &client.StanzaError{Type: "modify", Condition: "not-acceptable"}
		}
		return []sce.Element{sce.TextElement(echo, "re: "+in.Stanza.Children[0].Text())}, nil
	}); err != nil {
		t.Fatal(err)
	}
	req := func(text string) *sce.Stanza {
		return &sce.Stanza{
			Name:     xml.Name{Space: "jabber:client", Local: "iq"},
			Attr:     []xml.Attr{{Name: xml.Name{Local: "type"}, Value: "get"}, {Name: xml.Name{Local: "to"}, Value: alice.JID().String()}},
			Children: []sce.Element{sce.TextElement(echo, text)},
		}
	}
	resp, err := bob.SendIQ(ctx, req("ping"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.AttrValue("type") != "result" || resp.Children[0].Text() != "re: ping" {
		t.Fatalf("response %+v", resp)
	}
	mu.Lock()
	if !errors.Is(inHandlerErr, client.ErrIQInHandler) {
		t.Errorf("round trip from the handler: %v", inHandlerErr)
	}
	mu.Unlock()
	_, err = bob.SendIQ(ctx, req("fail"))
	var se *client.StanzaError
	if !errors.As(err, &se) || se.Condition != "not-acceptable" {
		t.Fatalf("error reply: %v", err)
	}
	// No handler: service-unavailable (RFC 6120 §8.4).
	other := req("x")
	other.Children = []sce.Element{sce.TextElement(xml.Name{Space: "urn:example:none", Local: "q"}, "")}
	_, err = bob.SendIQ(ctx, other)
	if !errors.As(err, &se) || se.Condition != "service-unavailable" {
		t.Fatalf("unhandled iq: %v", err)
	}
	// The stream is still served after all that.
	if _, err := alice.DiscoInfo(ctx, bob.JID(), ""); err != nil {
		t.Fatal(err)
	}
	_ = fmt.Sprint
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

// BenchmarkIntegrationPlaintext measures messages per second from one
// client to another through Prosody on loopback: the plaintext side of the
// issue's encrypted/plaintext ratio.
func BenchmarkIntegrationPlaintext(b *testing.B) {
	srv := prosodytest.Start(b, prosodytest.Options{Users: []string{"alice", "bob"}})
	ctx := context.Background()
	dial := func(user string) *client.Client {
		c, err := client.Dial(ctx, srv.JID(user), srv.Password(user), &client.Options{Addr: srv.Addr, PlainLoopback: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		return c
	}
	alice, bob := dial("alice"), dial("bob")
	got := make(chan struct{}, 1024)
	bob.HandleMessage(func(context.Context, *client.Incoming) { got <- struct{}{} })
	if err := bob.Online(ctx); err != nil {
		b.Fatal(err)
	}
	to := bob.JID()
	b.ResetTimer()
	go func() {
		for i := 0; i < b.N; i++ {
			if err := alice.Send(ctx, chat(to, "benchmark message "+strconv.Itoa(i))); err != nil {
				return
			}
		}
	}()
	for i := 0; i < b.N; i++ {
		select {
		case <-got:
		case <-time.After(waitTimeout):
			b.Fatalf("received %d of %d", i, b.N)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
