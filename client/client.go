package client

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"hush.im/sce"
)

// Limits and timeouts of the receive path.
const (
	// MaxQueued is the number of received stanzas waiting for the receive
	// goroutine. When it is full the stream is not read further (TCP
	// back-pressure) until handlers catch up.
	MaxQueued = 4096

	// IQReplyTimeout bounds the time an IQHandler (and the engine decrypting
	// or encrypting its request and response) has to answer. The session
	// reads nothing else meanwhile; after it the request is answered with
	// <resource-constraint/> (RFC 6120 §8.3.3.18).
	IQReplyTimeout = 10 * time.Second

	// closeTimeout bounds how long Close waits for the server to end its
	// stream.
	closeTimeout = 3 * time.Second
)

// Client is a connected XMPP session: it runs mellium's Session.Serve on
// its own goroutine and hands received stanzas to handlers on another, so
// that handlers may send, run IQ round trips and decrypt without holding
// up the stream (mellium holds the stream while a Serve handler runs).
//
// Register handlers (HandleMessage, HandlePresence, HandleIQ,
// HandleEvents) and engines (AddEngine) before Online, so that nothing the
// server sends on initial presence (offline messages, last PEP items) is
// missed. All methods are safe for concurrent use.
type Client struct {
	session *xmpp.Session
	own     jid.JID // full JID bound
	log     *slog.Logger

	ident     identity
	capsNode  string
	iqTimeout time.Duration // IQReplyTimeout; shorter in tests

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	inbox  chan *sce.Stanza
	done   chan struct{} // closed when Serve has returned
	err    error         // Serve's error, set before done is closed

	mu         sync.Mutex
	requireAll bool            // Options.RequireEncryption
	required   map[string]bool // bare JIDs that require encryption (or not)
	online     bool
	presence   []sce.Element // extra children of the initial presence
	engines    map[xml.Name]Engine
	extraFeat  []string
	msgH       []Handler
	presH      []Handler
	iqH        map[xml.Name]IQHandler
	eventH     map[string][]EventHandler
	mam        map[string]*archiveCollector
	eventSeen  map[string]struct{}
	eventRing  []string
	closeOnce  sync.Once
}

// Handler receives messages or presences. It runs on the client's receive
// goroutine, one stanza at a time in the order received; it may call any
// method of the Client. ctx is cancelled when the client closes.
type Handler func(ctx context.Context, in *Incoming)

// IQHandler answers an IQ request (type get or set) whose payload it was
// registered for. It returns the children of the result, or an error: a
// *StanzaError is sent as it is, anything else as
// <internal-server-error/>. A request that was encrypted is answered
// encrypted with the same engine, or with an error if that fails (DESIGN:
// fail closed).
//
// It runs on its own goroutine while the session waits for its answer (at
// most IQReplyTimeout): it may send stanzas but not wait for IQ responses
// (ErrIQInHandler).
type IQHandler func(ctx context.Context, in *Incoming) ([]sce.Element, error)

func newClient(s *xmpp.Session, opts *Options) *Client {
	ctx, cancel := context.WithCancel(context.Background())
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		session:    s,
		own:        s.LocalAddr(),
		log:        log,
		ident:      identity{Category: "client", Type: opts.Type, Name: opts.Name},
		capsNode:   opts.CapsNode,
		iqTimeout:  IQReplyTimeout,
		ctx:        ctx,
		cancel:     cancel,
		inbox:      make(chan *sce.Stanza, MaxQueued),
		done:       make(chan struct{}),
		engines:    make(map[xml.Name]Engine),
		requireAll: opts.RequireEncryption,
		extraFeat:  append([]string(nil), opts.Features...),
		iqH:        make(map[xml.Name]IQHandler),
		eventH:     make(map[string][]EventHandler),
		mam:        make(map[string]*archiveCollector),
		eventSeen:  make(map[string]struct{}),
	}
	if c.ident.Type == "" {
		c.ident.Type = "pc"
	}
	if c.ident.Name == "" {
		c.ident.Name = "hush"
	}
	if c.capsNode == "" {
		c.capsNode = "https://hush.im"
	}
	go c.receive()
	go func() {
		err := s.Serve(xmpp.HandlerFunc(c.handleXMPP))
		if err != nil && !errors.Is(err, context.Canceled) {
			c.err = err
		}
		close(c.done)
		c.cancel()
	}()
	return c
}

// JID returns the full JID the server bound.
func (c *Client) JID() jid.JID { return c.own }

// Session returns the underlying mellium session, for protocols this
// package does not wrap. Sending on it directly bypasses the fail-closed
// checks of SendEncrypted.
func (c *Client) Session() *xmpp.Session { return c.session }

// Done is closed when the session has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the session ended, after Done is closed; nil for a clean
// close.
func (c *Client) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Close sends unavailable presence, ends the stream, waits briefly for the
// server to end its own and closes the connection.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		c.mu.Lock()
		online := c.online
		c.online = false
		c.mu.Unlock()
		if online {
			_ = c.Send(ctx, newStanza("presence", []xml.Attr{attr("type", "unavailable")}))
		}
		// Not Session.SetCloseDeadline: it races with Serve. Closing the
		// connection after closeTimeout ends Serve instead.
		err = c.session.Close()
		select {
		case <-c.done:
		case <-ctx.Done():
		}
		if e := c.session.Conn().Close(); err == nil && !errors.Is(e, net.ErrClosed) {
			err = e
		}
		c.cancel()
		<-c.done
	})
	return err
}

// HandleMessage registers h for every message that is not a PEP event
// (those go to HandleEvents) and not a result of a running archive query.
func (c *Client) HandleMessage(h Handler) {
	c.mu.Lock()
	c.msgH = append(c.msgH, h)
	c.mu.Unlock()
}

// HandlePresence registers h for every presence.
func (c *Client) HandlePresence(h Handler) {
	c.mu.Lock()
	c.presH = append(c.presH, h)
	c.mu.Unlock()
}

// HandleIQ registers h for IQ requests whose payload is named payload
// (after decryption, for encrypted requests), replacing any earlier
// handler, and advertises payload's namespace as a feature.
func (c *Client) HandleIQ(payload xml.Name, h IQHandler) error {
	c.mu.Lock()
	c.iqH[payload] = h
	c.mu.Unlock()
	return c.featuresChanged()
}

// Send sends st as it is: a message, a presence, or an iq of type result
// or error. It adds an id when st has none. It does not encrypt: see
// SendEncrypted. A message or presence with content for a contact that
// requires encryption (RequiresEncryption) is refused with
// ErrEncryptionRequired.
func (c *Client) Send(ctx context.Context, st *sce.Stanza) error {
	select {
	case <-c.done:
		return ErrClosed
	default:
	}
	if st == nil {
		return sce.ErrNotStanza
	}
	if st.Name.Local == "iq" {
		if t := st.AttrValue("type"); t == "get" || t == "set" {
			return fmt.Errorf("client: Send of an iq %s: use SendIQ", t)
		}
	}
	if err := c.checkRequired(st); err != nil {
		return err
	}
	return c.send(ctx, st)
}

// send sends st, after Send's or seal's checks.
func (c *Client) send(ctx context.Context, st *sce.Stanza) error {
	if st.AttrValue("id") == "" {
		setAttr(st, "id", newID())
	}
	return c.session.Send(ctx, st.TokenReader())
}

// SetRequireEncryption records whether the contact bare requires
// encryption (DESIGN: fail closed): while it does, Send refuses a message
// or presence with content for it that is not encrypted
// (ErrEncryptionRequired), whatever Options.RequireEncryption says.
func (c *Client) SetRequireEncryption(bare jid.JID, required bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.required == nil {
		c.required = make(map[string]bool)
	}
	c.required[bare.Bare().String()] = required
}

// RequiresEncryption reports whether the contact bare requires encryption:
// as set with SetRequireEncryption, else Options.RequireEncryption.
func (c *Client) RequiresEncryption(bare jid.JID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.required[bare.Bare().String()]; ok {
		return r
	}
	return c.requireAll
}

// checkRequired refuses a message or presence to another account that
// requires encryption when it carries a child that is neither
// server-processed (sce.Classify) nor an engine's encrypted element.
// Stanzas to the own account or a server, and iqs (protocol requests such
// as PEP; encrypted ones go through SendEncryptedIQ), are not checked.
func (c *Client) checkRequired(st *sce.Stanza) error {
	if st.Name.Local != "message" && st.Name.Local != "presence" {
		return nil
	}
	to, err := jid.Parse(st.AttrValue("to"))
	if err != nil || to.Localpart() == "" || to.Bare().Equal(c.own.Bare()) || !c.RequiresEncryption(to) {
		return nil
	}
	for _, ch := range st.Children {
		if sce.Classify(ch.Name) != sce.Sensitive {
			continue
		}
		if _, ok := c.engine(ch.Name); ok {
			continue
		}
		return fmt.Errorf("%w: <%s xmlns='%s'/> to %s", ErrEncryptionRequired, ch.Name.Local, ch.Name.Space, to.Bare())
	}
	return nil
}

type inIQHandlerKey struct{}

// SendIQ sends an iq request (type get or set) and returns the response.
// An error response is returned with a *StanzaError. It adds an id when st
// has none, and refuses a response that does not come from the entity
// addressed (ErrUnexpectedResponder).
func (c *Client) SendIQ(ctx context.Context, st *sce.Stanza) (*sce.Stanza, error) {
	if st == nil || st.Name.Local != "iq" {
		return nil, ErrNotIQRequest
	}
	if t := st.AttrValue("type"); t != "get" && t != "set" {
		return nil, ErrNotIQRequest
	}
	if ctx.Value(inIQHandlerKey{}) != nil {
		return nil, ErrIQInHandler
	}
	select {
	case <-c.done:
		return nil, ErrClosed
	default:
	}
	if st.AttrValue("id") == "" {
		setAttr(st, "id", newID())
	}
	to := st.AttrValue("to")
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		// Unblock the wait when the session ends first.
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	r, err := c.session.SendIQ(ctx, st.TokenReader())
	if err != nil {
		select {
		case <-c.done:
			return nil, ErrClosed
		default:
		}
		return nil, fmt.Errorf("client: iq: %w", err)
	}
	resp, err := sce.ReadStanza(r)
	r.Close()
	if err != nil {
		return nil, fmt.Errorf("client: iq response: %w", err)
	}
	if !c.sameEntity(to, resp.AttrValue("from")) {
		return nil, ErrUnexpectedResponder
	}
	if resp.AttrValue("type") == "error" {
		return resp, parseStanzaError(resp)
	}
	return resp, nil
}

// sameEntity reports whether a response from "from" answers a request to
// "to". mellium removes a from equal to the account's bare JID, and a
// request without to is answered by the account (RFC 6120 §10.3).
func (c *Client) sameEntity(to, from string) bool {
	if to == from {
		return true
	}
	own := c.own.Bare()
	norm := func(s string) (jid.JID, bool) {
		if s == "" {
			return own, true
		}
		j, err := jid.Parse(s)
		return j, err == nil
	}
	t, ok1 := norm(to)
	f, ok2 := norm(from)
	if !ok1 || !ok2 {
		return false
	}
	if t.Equal(f) {
		return true
	}
	// The server answers for the account's bare JID with its own domain
	// only in error cases; accept the account's bare and the domain for
	// requests to the account.
	return t.Equal(own) && (f.Equal(own) || f.Equal(own.Domain()))
}

// iq sends an iq request with one payload and returns the response.
func (c *Client) iq(ctx context.Context, typ string, to jid.JID, payload sce.Element) (*sce.Stanza, error) {
	toAttr := ""
	if !to.Equal(jid.JID{}) {
		toAttr = to.String()
	}
	return c.SendIQ(ctx, newStanza("iq", []xml.Attr{attr("type", typ), attr("to", toAttr)}, payload))
}

// senderOf returns the sender of st: its from attribute, or own's bare JID
// when there is none.
func senderOf(st *sce.Stanza, own jid.JID) jid.JID {
	if f := st.AttrValue("from"); f != "" {
		if j, err := jid.Parse(f); err == nil {
			return j
		}
	}
	return own.Bare()
}

// fromOwnAccount reports whether st was sent by the account itself (no
// from, or the bare JID: mellium removes a from equal to the bare JID).
func (c *Client) fromOwnAccount(st *sce.Stanza) bool {
	f := st.AttrValue("from")
	if f == "" {
		return true
	}
	j, err := jid.Parse(f)
	return err == nil && j.Equal(c.own.Bare())
}

// handleXMPP is the Serve handler. It runs with the stream held: it only
// reads the stanza into memory, answers what needs no network (disco,
// ping, roster pushes), collects archive results, waits for IQ handlers,
// and queues the rest for the receive goroutine.
func (c *Client) handleXMPP(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	if start.Name.Space != nsClient || (start.Name.Local != "message" && start.Name.Local != "presence" && start.Name.Local != "iq") {
		// Not a stanza (e.g. a XEP-0198 request): nothing to do; Serve
		// skips the rest of the element.
		return nil
	}
	st, err := sce.ReadStanza(xmlstream.MultiReader(xmlstream.Token(*start), r))
	if err != nil {
		c.log.Warn("client: dropping unreadable stanza", "stanza", start.Name.Local, "err", err)
		if start.Name.Local == "iq" {
			req := &sce.Stanza{Name: start.Name, Attr: start.Attr}
			if t := req.AttrValue("type"); t == "get" || t == "set" {
				return c.writeError(r, req, &StanzaError{Type: "modify", Condition: "bad-request"})
			}
		}
		return nil
	}
	switch st.Name.Local {
	case "iq":
		return c.handleIQ(r, st)
	case "message":
		if c.collectArchive(st) {
			return nil
		}
	}
	select {
	case c.inbox <- st:
	case <-c.ctx.Done():
	}
	return nil
}

// receive runs handlers for queued stanzas, in order.
func (c *Client) receive() {
	for {
		select {
		case st := <-c.inbox:
			c.dispatch(st)
		case <-c.ctx.Done():
			return
		}
	}
}

func (c *Client) dispatch(st *sce.Stanza) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("client: handler panicked", "panic", p)
		}
	}()
	switch st.Name.Local {
	case "presence":
		in := &Incoming{Stanza: st, Received: st, From: senderOf(st, c.own), Via: ViaLive}
		c.open(c.ctx, in)
		if quiet(in.Err) {
			return
		}
		c.mu.Lock()
		hs := append([]Handler(nil), c.presH...)
		c.mu.Unlock()
		for _, h := range hs {
			h(c.ctx, in)
		}
	case "message":
		if _, ok := stanzaChild(st, name(nsPubSubEvent, "event")); ok {
			c.dispatchEvent(st)
			return
		}
		in, ok := c.unwrap(st)
		if !ok {
			return
		}
		c.open(c.ctx, in)
		if quiet(in.Err) {
			c.log.Debug("client: dropping message without content", "from", st.AttrValue("from"), "err", in.Err)
			return
		}
		c.mu.Lock()
		hs := append([]Handler(nil), c.msgH...)
		c.mu.Unlock()
		for _, h := range hs {
			h(c.ctx, in)
		}
	}
}

// unwrap turns a received message into an Incoming, taking carbons out of
// their wrapper. It drops carbons not sent by the account (XEP-0280 §11:
// a forged carbon could impersonate anyone) and archive results of no
// running query.
func (c *Client) unwrap(st *sce.Stanza) (*Incoming, bool) {
	in := &Incoming{Stanza: st, Received: st, From: senderOf(st, c.own), Via: ViaLive}
	_, sent := stanzaChild(st, name(nsCarbons, "sent"))
	_, recv := stanzaChild(st, name(nsCarbons, "received"))
	_, res := stanzaChild(st, name(nsMAM, "result"))
	switch {
	case sent || recv:
		if !c.fromOwnAccount(st) {
			c.log.Warn("client: dropping carbon not sent by the account", "from", st.AttrValue("from"))
			return nil, false
		}
		inner, wrapper, err := sce.Forwarded(st)
		if err != nil {
			c.log.Warn("client: dropping malformed carbon", "err", err)
			return nil, false
		}
		in.Stanza, in.From = inner, senderOf(inner, c.own)
		in.Via = ViaCarbonReceived
		if wrapper.Local == "sent" {
			in.Via = ViaCarbonSent
		}
	case res:
		c.log.Debug("client: dropping archive result of no running query")
		return nil, false
	default:
		if c.offline(st) {
			in.Via = ViaOffline
		}
	}
	return in, true
}

// offline reports whether a live message carries a XEP-0203 delay added by
// the account's server: XEP-0160 offline storage.
func (c *Client) offline(st *sce.Stanza) bool {
	for _, ch := range st.Children {
		if ch.Name != name(nsDelay, "delay") {
			continue
		}
		f, err := jid.Parse(ch.AttrValue("from"))
		if err == nil && (f.Equal(c.own.Domain()) || f.Equal(c.own.Bare())) {
			return true
		}
	}
	return false
}

// handleIQ answers an IQ request while the stream waits. Results and
// errors that reach it answer no pending request (mellium routes those)
// and are dropped.
func (c *Client) handleIQ(w xmlstream.TokenWriter, st *sce.Stanza) error {
	typ := st.AttrValue("type")
	if typ != "get" && typ != "set" {
		return nil
	}
	if len(st.Children) == 0 {
		return c.writeError(w, st, &StanzaError{Type: "modify", Condition: "bad-request"})
	}
	payload := st.Children[0]
	switch {
	case typ == "get" && payload.Name == name(nsDiscoInfo, "query"):
		return c.answerDisco(w, st, payload)
	case typ == "get" && payload.Name == name(nsPing, "ping"):
		// XEP-0199 §4.
		return c.writeResult(w, st)
	case typ == "set" && payload.Name == name(nsRoster, "query"):
		// RFC 6121 §2.1.6: acknowledge pushes from the account, ignore
		// others.
		if c.fromOwnAccount(st) {
			return c.writeResult(w, st)
		}
		return c.writeError(w, st, &StanzaError{Type: "cancel", Condition: "service-unavailable"})
	}
	resp := c.answerIQ(st)
	_, err := resp.WriteXML(w)
	return err
}

// answerIQ runs the IQ handler (and engine) for a request on its own
// goroutine and returns the response, an error response if it fails or
// takes longer than IQReplyTimeout.
func (c *Client) answerIQ(st *sce.Stanza) *sce.Stanza {
	ctx, cancel := context.WithTimeout(c.ctx, c.iqTimeout)
	defer cancel()
	ctx = context.WithValue(ctx, inIQHandlerKey{}, true)
	out := make(chan *sce.Stanza, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				c.log.Error("client: iq handler panicked", "panic", p)
				out <- c.errorReply(st, &StanzaError{Type: "cancel", Condition: "internal-server-error"})
			}
		}()
		out <- c.runIQHandler(ctx, st)
	}()
	select {
	case resp := <-out:
		return resp
	case <-ctx.Done():
		return c.errorReply(st, &StanzaError{Type: "wait", Condition: "resource-constraint"})
	}
}

func (c *Client) runIQHandler(ctx context.Context, st *sce.Stanza) *sce.Stanza {
	in := &Incoming{Stanza: st, Received: st, From: senderOf(st, c.own), Via: ViaLive}
	c.open(ctx, in)
	if in.Err != nil {
		c.log.Warn("client: undecryptable iq request", "from", st.AttrValue("from"), "err", in.Err)
		return c.errorReply(st, &StanzaError{Type: "modify", Condition: "not-acceptable"})
	}
	var payload xml.Name
	for _, ch := range in.Stanza.Children {
		if in.Security == nil || ch.Encrypted {
			payload = ch.Name
			break
		}
	}
	c.mu.Lock()
	h := c.iqH[payload]
	c.mu.Unlock()
	if h == nil {
		// RFC 6120 §8.4.
		return c.errorReply(st, &StanzaError{Type: "cancel", Condition: "service-unavailable"})
	}
	children, err := h(ctx, in)
	if err != nil {
		var se *StanzaError
		if !errors.As(err, &se) {
			c.log.Warn("client: iq handler failed", "payload", payload.Space, "err", err)
			se = &StanzaError{Type: "cancel", Condition: "internal-server-error"}
		}
		return c.errorReply(st, se)
	}
	resp := c.replyTo(st, "result", children...)
	if in.Security == nil {
		return resp
	}
	out, _, err := c.seal(ctx, in.Security.Protocol, resp)
	if err != nil {
		c.log.Warn("client: cannot encrypt iq response", "err", err)
		return c.errorReply(st, &StanzaError{Type: "cancel", Condition: "not-acceptable"})
	}
	return out
}

// replyTo builds the response of type typ to an iq request. A request
// without from came from the account (RFC 6120 §8.1.2.1; mellium also
// removes a from equal to the account's bare JID): the response is
// addressed to the bare JID explicitly.
func (c *Client) replyTo(req *sce.Stanza, typ string, children ...sce.Element) *sce.Stanza {
	to := req.AttrValue("from")
	if to == "" {
		to = c.own.Bare().String()
	}
	return newStanza("iq", []xml.Attr{attr("type", typ), attr("id", req.AttrValue("id")), attr("to", to)}, children...)
}

// errorReply builds the error response to an iq request (RFC 6120 §8.3.1;
// the request's payload is not echoed).
func (c *Client) errorReply(req *sce.Stanza, se *StanzaError) *sce.Stanza {
	typ := se.Type
	if typ == "" {
		typ = "cancel"
	}
	kids := []sce.Element{elem(name(nsStanzas, se.Condition), nil)}
	if se.Text != "" {
		kids = append(kids, sce.TextElement(name(nsStanzas, "text"), se.Text))
	}
	if se.App.Local != "" {
		kids = append(kids, elem(se.App, nil))
	}
	return c.replyTo(req, "error", elem(name(nsClient, "error"), []xml.Attr{attr("type", typ)}, kids...))
}

func (c *Client) writeResult(w xmlstream.TokenWriter, req *sce.Stanza, children ...sce.Element) error {
	_, err := c.replyTo(req, "result", children...).WriteXML(w)
	return err
}

func (c *Client) writeError(w xmlstream.TokenWriter, req *sce.Stanza, se *StanzaError) error {
	_, err := c.errorReply(req, se).WriteXML(w)
	return err
}
