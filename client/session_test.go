package client

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"hush.im/sce"
)

const testWait = 5 * time.Second

// fakeServer is the server end of an in-memory stream: it reads what the
// client sends and writes raw XML to it. The stream is already negotiated
// (no stream headers): the client's Session starts in the Ready state.
type fakeServer struct {
	t    testing.TB
	conn net.Conn
	in   chan *sce.Stanza
	mu   sync.Mutex
}

func newPair(t testing.TB) (*Client, *fakeServer) {
	t.Helper()
	a, b := net.Pipe()
	own := jid.MustParse("alice@example.org/dev")
	neg := func(context.Context, *stream.Info, *stream.Info, *xmpp.Session, any) (xmpp.SessionState, io.ReadWriter, any, error) {
		return 0, nil, nil, errors.New("already negotiated")
	}
	s, err := xmpp.NewSession(context.Background(), own.Domain(), own, a, xmpp.Ready|xmpp.Secure|xmpp.Authn, neg)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(s, &Options{})
	fs := &fakeServer{t: t, conn: b, in: make(chan *sce.Stanza, 64)}
	go func() {
		defer close(fs.in)
		defer b.Close()
		d := xml.NewDecoder(b)
		for {
			st, err := sce.ReadStanza(d)
			if err != nil {
				return
			}
			fs.in <- st
		}
	}()
	t.Cleanup(func() {
		c.Close()
		b.Close()
	})
	return c, fs
}

// send writes raw XML to the client.
func (fs *fakeServer) send(xmlText string) {
	fs.t.Helper()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if _, err := fs.conn.Write([]byte(xmlText)); err != nil {
		fs.t.Fatalf("fake server write: %v", err)
	}
}

// next returns the next stanza the client sent.
func (fs *fakeServer) next() *sce.Stanza {
	fs.t.Helper()
	select {
	case st, ok := <-fs.in:
		if !ok {
			fs.t.Fatal("client closed the stream")
		}
		return st
	case <-time.After(testWait):
		fs.t.Fatal("timed out waiting for the client")
		return nil
	}
}

// expectIQ answers the next iq the client sends with the result children
// built by reply (given the request).
func (fs *fakeServer) answer(reply func(req *sce.Stanza) string) *sce.Stanza {
	fs.t.Helper()
	req := fs.next()
	fs.send(reply(req))
	return req
}

func recv[T any](t testing.TB, c chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(testWait):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// A message handler runs off the stream: it can do an IQ round trip
// whose response arrives after the message.
func TestHandlerRoundTrip(t *testing.T) {
	c, fs := newPair(t)
	done := make(chan error, 1)
	c.HandleMessage(func(ctx context.Context, in *Incoming) {
		_, err := c.DiscoInfo(ctx, jid.MustParse("bob@example.org/x"), "")
		done <- err
	})
	fs.send(`<message xmlns="jabber:client" from="bob@example.org/x" type="chat"><body>hi</body></message>`)
	fs.answer(func(req *sce.Stanza) string {
		return `<iq xmlns="jabber:client" type="result" from="bob@example.org/x" id="` + req.AttrValue("id") + `"><query xmlns="http://jabber.org/protocol/disco#info"><feature var="urn:xmpp:omemo:2"/></query></iq>`
	})
	if err := recv(t, done, "handler round trip"); err != nil {
		t.Fatal(err)
	}
}

// A response from another entity than the one asked is refused.
func TestSpoofedResponse(t *testing.T) {
	c, fs := newPair(t)
	errc := make(chan error, 1)
	go func() {
		_, err := c.DiscoInfo(context.Background(), jid.MustParse("bob@example.org/x"), "")
		errc <- err
	}()
	fs.answer(func(req *sce.Stanza) string {
		return `<iq xmlns="jabber:client" type="result" from="eve@example.org/x" id="` + req.AttrValue("id") + `"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>`
	})
	if err := recv(t, errc, "response"); !errors.Is(err, ErrUnexpectedResponder) {
		t.Fatalf("err = %v, want ErrUnexpectedResponder", err)
	}
}

func TestIQHandler(t *testing.T) {
	c, fs := newPair(t)
	c.iqTimeout = 200 * time.Millisecond
	q := name("urn:example:q", "q")
	if err := c.HandleIQ(q, func(ctx context.Context, in *Incoming) ([]sce.Element, error) {
		switch in.Stanza.Children[0].Text() {
		case "slow":
			<-ctx.Done()
			return nil, ctx.Err()
		case "iq":
			_, err := c.DiscoInfo(ctx, jid.MustParse("example.org"), "")
			if !errors.Is(err, ErrIQInHandler) {
				return nil, &StanzaError{Type: "cancel", Condition: "conflict"}
			}
		case "panic":
			panic("boom")
		}
		return []sce.Element{sce.TextElement(q, "ok")}, nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ text, typ, cond string }{
		{"fine", "result", ""},
		{"iq", "result", ""},
		{"slow", "error", "resource-constraint"},
		{"panic", "error", "internal-server-error"},
	} {
		fs.send(`<iq xmlns="jabber:client" type="get" id="r-` + tc.text + `" from="bob@example.org/x"><q xmlns="urn:example:q">` + tc.text + `</q></iq>`)
		resp := fs.next()
		if resp.AttrValue("id") != "r-"+tc.text || resp.AttrValue("type") != tc.typ || resp.AttrValue("to") != "bob@example.org/x" {
			t.Fatalf("%s: response %+v", tc.text, resp)
		}
		if tc.cond != "" {
			if se := parseStanzaError(resp); se.Condition != tc.cond {
				t.Errorf("%s: condition %s, want %s", tc.text, se.Condition, tc.cond)
			}
		}
	}
	// Unhandled payload, ping and a malformed request.
	fs.send(`<iq xmlns="jabber:client" type="set" id="u" from="bob@example.org/x"><other xmlns="urn:example:other"/></iq>`)
	if se := parseStanzaError(fs.next()); se.Condition != "service-unavailable" {
		t.Errorf("unhandled: %s", se.Condition)
	}
	fs.send(`<iq xmlns="jabber:client" type="get" id="p" from="example.org"><ping xmlns="urn:xmpp:ping"/></iq>`)
	if r := fs.next(); r.AttrValue("type") != "result" || r.AttrValue("id") != "p" {
		t.Errorf("ping: %+v", r)
	}
	fs.send(`<iq xmlns="jabber:client" type="get" id="m" from="bob@example.org/x"><a xmlns="urn:x">` + strings.Repeat(`<b/>`, sce.MaxNodes) + `</a></iq>`)
	if se := parseStanzaError(fs.next()); se.Condition != "bad-request" {
		t.Errorf("oversized: %s", se.Condition)
	}
}

// Disco and caps: the features answered match the ver sent in presence.
func TestDiscoAndCaps(t *testing.T) {
	c, fs := newPair(t)
	if err := c.HandleEvents("urn:xmpp:omemo:2:devices", func(context.Context, *Event) {}); err != nil {
		t.Fatal(err)
	}
	if err := c.Online(context.Background()); err != nil {
		t.Fatal(err)
	}
	pres := fs.next()
	caps, ok := stanzaChild(pres, name(nsCaps, "c"))
	if !ok || caps.AttrValue("hash") != "sha-1" || caps.AttrValue("node") != "https://hush.im" {
		t.Fatalf("presence %+v", pres)
	}
	fs.send(`<iq xmlns="jabber:client" type="get" id="d" from="alice@example.org"><query xmlns="http://jabber.org/protocol/disco#info" node="https://hush.im#` + caps.AttrValue("ver") + `"/></iq>`)
	resp := fs.next()
	q, _ := stanzaChild(resp, name(nsDiscoInfo, "query"))
	info, err := parseDiscoInfo(q)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Has("urn:xmpp:omemo:2:devices+notify") || !info.Has(nsCaps) {
		t.Errorf("features %v", info.Features)
	}
	ids := []identity{{Category: info.Identities[0].Category, Type: info.Identities[0].Type, Name: info.Identities[0].Name}}
	if v := capsVer(ids, info.Features); v != caps.AttrValue("ver") {
		t.Errorf("disco hashes to %s, presence says %s", v, caps.AttrValue("ver"))
	}
	if resp.AttrValue("to") != "alice@example.org" {
		t.Errorf("reply to %q", resp.AttrValue("to"))
	}
	// Another node: item-not-found.
	fs.send(`<iq xmlns="jabber:client" type="get" id="d2" from="bob@example.org/x"><query xmlns="http://jabber.org/protocol/disco#info" node="https://hush.im#stale"/></iq>`)
	if se := parseStanzaError(fs.next()); se.Condition != "item-not-found" {
		t.Errorf("stale node: %s", se.Condition)
	}
	// A new event node re-announces the capabilities.
	if err := c.HandleEvents("urn:xmpp:openpgp:0:public-keys", func(context.Context, *Event) {}); err != nil {
		t.Fatal(err)
	}
	pres = fs.next()
	if caps2, _ := stanzaChild(pres, name(nsCaps, "c")); caps2.AttrValue("ver") == caps.AttrValue("ver") {
		t.Error("caps not updated")
	}
}

// Carbons are unwrapped when the account sent them and dropped otherwise;
// duplicate PEP notifications are handled once.
func TestReceivePaths(t *testing.T) {
	c, fs := newPair(t)
	msgs := make(chan *Incoming, 8)
	events := make(chan *Event, 8)
	c.HandleMessage(func(_ context.Context, in *Incoming) { msgs <- in })
	if err := c.HandleEvents("n", func(_ context.Context, ev *Event) { events <- ev }); err != nil {
		t.Fatal(err)
	}
	carbon := func(from, text string) string {
		return `<message xmlns="jabber:client" from="` + from + `" to="alice@example.org/dev"><received xmlns="urn:xmpp:carbons:2"><forwarded xmlns="urn:xmpp:forward:0"><message xmlns="jabber:client" from="bob@example.org/x" to="alice@example.org/other" type="chat"><body>` + text + `</body></message></forwarded></received></message>`
	}
	fs.send(carbon("eve@example.org", "forged"))
	fs.send(carbon("alice@example.org", "genuine"))
	in := recv(t, msgs, "carbon")
	if in.Via != ViaCarbonReceived || in.Stanza.AttrValue("from") != "bob@example.org/x" || in.From.String() != "bob@example.org/x" {
		t.Fatalf("got %v from %s", in.Via, in.Stanza.AttrValue("from"))
	}
	fs.send(`<message xmlns="jabber:client" from="bob@example.org/x"><body>offline</body><delay xmlns="urn:xmpp:delay" from="example.org" stamp="2024-01-01T00:00:00Z"/></message>`)
	if in := recv(t, msgs, "offline message"); in.Via != ViaOffline {
		t.Errorf("via %v", in.Via)
	}
	// An archive result of no running query is dropped.
	fs.send(`<message xmlns="jabber:client" to="alice@example.org/dev"><result xmlns="urn:xmpp:mam:2" queryid="nope" id="1"><forwarded xmlns="urn:xmpp:forward:0"><message xmlns="jabber:client" from="bob@example.org/x"><body>old</body></message></forwarded></result></message>`)
	event := `<message xmlns="jabber:client" from="bob@example.org" id="e1" type="headline"><event xmlns="http://jabber.org/protocol/pubsub#event"><items node="n"><item id="1"><x xmlns="urn:x"/></item></items></event></message>`
	fs.send(event)
	fs.send(event)
	fs.send(`<message xmlns="jabber:client" from="bob@example.org/x"><body>last</body></message>`)
	if in := recv(t, msgs, "last message"); body(in.Stanza) != "last" {
		t.Errorf("got %q: a dropped stanza got through", body(in.Stanza))
	}
	if ev := recv(t, events, "event"); ev.Node != "n" || len(ev.Items) != 1 || !ev.From.Equal(jid.MustParse("bob@example.org")) {
		t.Errorf("event %+v", ev)
	}
	select {
	case ev := <-events:
		t.Errorf("duplicate event %+v", ev)
	default:
	}
}

func body(st *sce.Stanza) string {
	b, _ := stanzaChild(st, name(nsClient, "body"))
	if b.Name.Local == "" {
		return ""
	}
	return b.Text()
}

func TestArchiveQuery(t *testing.T) {
	c, fs := newPair(t)
	type res struct {
		page *ArchivePage
		err  error
	}
	out := make(chan res, 1)
	go func() {
		p, err := c.QueryArchive(context.Background(), ArchiveQuery{Max: 2})
		out <- res{p, err}
	}()
	req := fs.next()
	q, _ := stanzaChild(req, name(nsMAM, "query"))
	qid := q.AttrValue("queryid")
	for i, id := range []string{"a1", "a2"} {
		fs.send(`<message xmlns="jabber:client" to="alice@example.org/dev"><result xmlns="urn:xmpp:mam:2" queryid="` + qid + `" id="` + id + `"><forwarded xmlns="urn:xmpp:forward:0"><delay xmlns="urn:xmpp:delay" stamp="2024-01-01T00:00:0` + string(rune('0'+i)) + `Z"/><message xmlns="jabber:client" from="bob@example.org/x"><body>m` + id + `</body></message></forwarded></result></message>`)
	}
	// A result for the query from someone else is not collected.
	fs.send(`<message xmlns="jabber:client" from="eve@example.org" to="alice@example.org/dev"><result xmlns="urn:xmpp:mam:2" queryid="` + qid + `" id="evil"><forwarded xmlns="urn:xmpp:forward:0"><message xmlns="jabber:client" from="bob@example.org/x"><body>forged</body></message></forwarded></result></message>`)
	fs.send(`<iq xmlns="jabber:client" type="result" id="` + req.AttrValue("id") + `"><fin xmlns="urn:xmpp:mam:2" complete="true"><set xmlns="http://jabber.org/protocol/rsm"><first>a1</first><last>a2</last><count>2</count></set></fin></iq>`)
	r := recv(t, out, "archive page")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.page.Messages) != 2 || r.page.Messages[1].ArchiveID != "a2" || body(r.page.Messages[0].Stanza) != "ma1" || !r.page.Complete || r.page.Count != 2 {
		t.Fatalf("page %+v", r.page)
	}
	if _, ok := stanzaChild(r.page.Messages[0].Stanza, name(nsDelay, "delay")); !ok {
		t.Error("archive delay not carried to the message")
	}

	// More results than asked for.
	go func() {
		p, err := c.QueryArchive(context.Background(), ArchiveQuery{Max: 1})
		out <- res{p, err}
	}()
	req = fs.next()
	q, _ = stanzaChild(req, name(nsMAM, "query"))
	for _, id := range []string{"b1", "b2"} {
		fs.send(`<message xmlns="jabber:client"><result xmlns="urn:xmpp:mam:2" queryid="` + q.AttrValue("queryid") + `" id="` + id + `"><forwarded xmlns="urn:xmpp:forward:0"><message xmlns="jabber:client" from="bob@example.org/x"><body>x</body></message></forwarded></result></message>`)
	}
	fs.send(`<iq xmlns="jabber:client" type="result" id="` + req.AttrValue("id") + `"><fin xmlns="urn:xmpp:mam:2"><set xmlns="http://jabber.org/protocol/rsm"/></fin></iq>`)
	if r := recv(t, out, "overflowing page"); !errors.Is(r.err, ErrArchiveOverflow) {
		t.Fatalf("err = %v, want ErrArchiveOverflow", r.err)
	}
}

// testEngine is a test double of an Engine: it "encrypts" by moving the
// body into <sealed/> (no cryptography) so that the client's seams can be
// observed. It is not an encryption engine.
type testEngine struct {
	leak     bool
	noDevice bool
}

var testProtocol = name("urn:example:test-engine", "sealed")

func (e *testEngine) Encrypted() xml.Name { return testProtocol }
func (e *testEngine) Features() []string  { return []string{"urn:example:test-engine"} }

func (e *testEngine) Encrypt(_ context.Context, plain *sce.Stanza) (*sce.Stanza, *Report, error) {
	out := &sce.Stanza{Name: plain.Name, Attr: plain.Attr}
	var inner []sce.Element
	for _, ch := range plain.Children {
		if e.leak || sce.Classify(ch.Name) != sce.Sensitive {
			out.Children = append(out.Children, ch)
		}
		if sce.Classify(ch.Name) == sce.Sensitive {
			inner = append(inner, ch)
		}
	}
	out.Children = append(out.Children, elem(testProtocol, nil, inner...))
	rep := &Report{Protocol: testProtocol, Devices: []DeviceReport{{JID: jid.MustParse("bob@example.org"), Device: "7", Sent: !e.noDevice}}}
	return out, rep, nil
}

func (e *testEngine) Decrypt(_ context.Context, in *Incoming) (*sce.Stanza, *Security, error) {
	sealed, _ := stanzaChild(in.Stanza, testProtocol)
	if sealed.AttrValue("bad") != "" {
		return nil, nil, errors.New("test engine: cannot decrypt")
	}
	out := &sce.Stanza{Name: in.Stanza.Name, Attr: in.Stanza.Attr}
	for _, ch := range in.Stanza.Children {
		if ch.Name != testProtocol {
			out.Children = append(out.Children, ch)
		}
	}
	for _, ch := range children(sealed) {
		ch.Encrypted = true
		out.Children = append(out.Children, ch)
	}
	return out, &Security{Protocol: testProtocol, Sender: senderOf(in.Stanza, jid.JID{}).Bare(), Device: "7", Trust: TrustBlind}, nil
}

func TestEngineSeam(t *testing.T) {
	c, fs := newPair(t)
	ctx := context.Background()
	msg := func() *sce.Stanza {
		return mustStanza(t, `<message xmlns="jabber:client" to="bob@example.org" type="chat"><body>secret</body></message>`)
	}
	if _, err := c.SendEncrypted(ctx, testProtocol, msg()); !errors.Is(err, ErrNoEngine) {
		t.Fatalf("no engine: %v", err)
	}
	e := &testEngine{}
	if err := c.AddEngine(e); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(c.Features(), " "), "urn:example:test-engine") {
		t.Error("engine features not advertised")
	}
	rep, err := c.SendEncrypted(ctx, testProtocol, msg())
	if err != nil || len(rep.Sent()) != 1 {
		t.Fatalf("send: %v %+v", err, rep)
	}
	out := fs.next()
	if _, ok := stanzaChild(out, testProtocol); !ok || body(out) != "" {
		t.Fatalf("sent %+v", out)
	}

	// Fail closed: nothing is sent.
	e.leak = true
	if _, err := c.SendEncrypted(ctx, testProtocol, msg()); !errors.Is(err, ErrPlaintextLeak) {
		t.Errorf("leaky engine: %v", err)
	}
	e.leak, e.noDevice = false, true
	if _, err := c.SendEncrypted(ctx, testProtocol, msg()); !errors.Is(err, ErrNoRecipientDevice) {
		t.Errorf("no device: %v", err)
	}
	e.noDevice = false
	if err := c.Send(ctx, mustStanza(t, `<message xmlns="jabber:client" to="bob@example.org"><body>marker</body></message>`)); err != nil {
		t.Fatal(err)
	}
	if got := fs.next(); body(got) != "marker" {
		t.Fatalf("a refused stanza was sent: %+v", got)
	}

	// Receiving: decrypted with a security record, or the error.
	msgs := make(chan *Incoming, 4)
	c.HandleMessage(func(_ context.Context, in *Incoming) { msgs <- in })
	fs.send(`<message xmlns="jabber:client" from="bob@example.org/x"><sealed xmlns="urn:example:test-engine"><body xmlns="jabber:client">hello</body></sealed></message>`)
	in := recv(t, msgs, "encrypted message")
	if in.Err != nil || in.Security == nil || in.Security.Device != "7" || body(in.Stanza) != "hello" {
		t.Fatalf("got %+v", in)
	}
	b, _ := stanzaChild(in.Stanza, name(nsClient, "body"))
	if !b.Encrypted {
		t.Error("decrypted body not marked Encrypted")
	}
	fs.send(`<message xmlns="jabber:client" from="bob@example.org/x"><sealed xmlns="urn:example:test-engine" bad="1"/></message>`)
	if in := recv(t, msgs, "undecryptable message"); in.Err == nil || in.Security != nil {
		t.Fatalf("got %+v", in)
	}

	// An encrypted IQ request is answered encrypted.
	q := name("urn:example:q", "q")
	if err := c.HandleIQ(q, func(_ context.Context, in *Incoming) ([]sce.Element, error) {
		if in.Security == nil {
			return nil, &StanzaError{Type: "auth", Condition: "not-authorized"}
		}
		return []sce.Element{sce.TextElement(q, "answer")}, nil
	}); err != nil {
		t.Fatal(err)
	}
	fs.send(`<iq xmlns="jabber:client" type="get" id="e1" from="bob@example.org/x"><sealed xmlns="urn:example:test-engine"><q xmlns="urn:example:q">question</q></sealed></iq>`)
	resp := fs.next()
	sealed, ok := stanzaChild(resp, testProtocol)
	if !ok || resp.AttrValue("type") != "result" || len(children(sealed)) != 1 || children(sealed)[0].Text() != "answer" {
		t.Fatalf("response %+v", resp)
	}
	if _, ok := stanzaChild(resp, q); ok {
		t.Error("response payload in the clear")
	}
}

func TestClose(t *testing.T) {
	c, _ := newPair(t)
	if err := c.Online(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Close()
	select {
	case <-c.Done():
	case <-time.After(testWait):
		t.Fatal("Done not closed")
	}
	if err := c.Send(context.Background(), mustStanza(t, `<message xmlns="jabber:client"/>`)); !errors.Is(err, ErrClosed) {
		t.Errorf("send after close: %v", err)
	}
	if _, err := c.SendIQ(context.Background(), mustStanza(t, `<iq xmlns="jabber:client" type="get"/>`)); !errors.Is(err, ErrClosed) {
		t.Errorf("iq after close: %v", err)
	}
	if _, err := c.SendIQ(context.Background(), mustStanza(t, `<message xmlns="jabber:client"/>`)); !errors.Is(err, ErrNotIQRequest) {
		t.Errorf("SendIQ of a message: %v", err)
	}
}
