//go:build interop

package omemo_test

// Interop with the reference implementation, python-omemo 1.0 with the
// python-twomemo backend, driven through internal/omemotest. Hush devices
// and python devices share one PEP model; every message travels as the
// <encrypted/> XML each side writes.

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"hush.im/internal/omemotest"
	"hush.im/omemo"
	"hush.im/omemo/memstore"
	"mellium.im/xmpp/jid"
)

const ns2 = omemotest.NSOMEMO2

// node is one device on either side.
type node interface {
	String() string
	JID() string
	ID() uint32
	// send encrypts body (nil: an owed empty message) for the account to
	// and returns the XML and the recipient devices.
	send(body []byte, to string) ([]byte, []nodeAddr)
	// recv decrypts; plaintext is nil for an empty message.
	recv(from node, x []byte) ([]byte, error)
	// owed returns the automatic (empty) messages the device wants sent.
	owed() []autoMsg
}

type nodeAddr struct {
	jid string
	id  uint32
	kex bool
}

type autoMsg struct {
	xml  []byte
	to   []nodeAddr
	from node
}

type hushNode struct {
	t    *testing.T
	pep  *omemotest.PEP
	m    *omemo.Manager
	st   *memstore.Store
	j    jid.JID
	debt []omemo.Address
}

func newHushNode(t *testing.T, pep *omemotest.PEP, account string) *hushNode {
	t.Helper()
	st := memstore.New()
	j := jid.MustParse(account)
	m, err := omemo.New(j, st, &omemo.Options{Trust: omemo.BlindTrust{}})
	if err != nil {
		t.Fatal(err)
	}
	h := &hushNode{t: t, pep: pep, m: m, st: st, j: j}
	var current *omemo.DeviceList
	if x := pep.DeviceList(ns2, account); x != nil {
		current = new(omemo.DeviceList)
		if err := xml.Unmarshal(x, current); err != nil {
			t.Fatalf("hush parsing python's device list: %v\n%s", err, x)
		}
	}
	l, _, err := m.AnnounceDevice(current)
	if err != nil {
		t.Fatal(err)
	}
	x, err := xml.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	if err := pep.PublishDeviceList(ns2, account, x); err != nil {
		t.Fatalf("python rejected hush's device list: %v\n%s", err, x)
	}
	h.publishBundle()
	return h
}

func (h *hushNode) String() string { return "hush " + h.m.Address().String() }
func (h *hushNode) JID() string    { return h.j.String() }
func (h *hushNode) ID() uint32     { return h.m.DeviceID() }

func (h *hushNode) publishBundle() {
	h.t.Helper()
	b, err := h.m.Bundle()
	if err != nil {
		h.t.Fatal(err)
	}
	x, err := xml.Marshal(b)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.pep.PublishBundle(ns2, h.JID(), h.ID(), x); err != nil {
		h.t.Fatalf("python rejected hush's bundle: %v", err)
	}
}

// follow reads the device list of an account from PEP, as a +notify
// subscription delivers it.
func (h *hushNode) follow(account string) {
	h.t.Helper()
	x := h.pep.DeviceList(ns2, account)
	if x == nil {
		return
	}
	var l omemo.DeviceList
	if err := xml.Unmarshal(x, &l); err != nil {
		h.t.Fatalf("hush parsing device list of %s: %v\n%s", account, err, x)
	}
	if _, err := h.m.SetDeviceList(jid.MustParse(account), &l); err != nil {
		h.t.Fatal(err)
	}
}

func (h *hushNode) send(body []byte, to string) ([]byte, []nodeAddr) {
	h.t.Helper()
	toJID := jid.MustParse(to)
	h.follow(to)
	h.follow(h.JID())
	need, _, err := h.m.NeedBundles(toJID)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, a := range need {
		x := h.pep.Bundle(ns2, a.JID.String(), a.Device)
		if x == nil {
			continue
		}
		var b omemo.Bundle
		if err := xml.Unmarshal(x, &b); err != nil {
			h.t.Fatalf("hush parsing bundle of %v: %v\n%s", a, err, x)
		}
		if err := h.m.SetBundle(a, &b); err != nil {
			h.t.Fatal(err)
		}
	}
	e, rep, err := h.m.Encrypt(body, toJID)
	if err != nil {
		h.t.Fatalf("%v encrypt: %v", h, err)
	}
	if s := rep.Skipped(); len(s) != 0 {
		h.t.Fatalf("%v left out devices: %+v", h, s)
	}
	return marshalEncrypted(h.t, e), addrsOf(e)
}

func marshalEncrypted(t *testing.T, e *omemo.Encrypted) []byte {
	x, err := xml.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func addrsOf(e *omemo.Encrypted) []nodeAddr {
	var out []nodeAddr
	for _, ks := range e.Keys {
		for _, k := range ks.Keys {
			out = append(out, nodeAddr{jid: ks.JID.String(), id: k.RID, kex: k.KEX})
		}
	}
	return out
}

func (h *hushNode) recv(from node, x []byte) ([]byte, error) {
	h.t.Helper()
	h.follow(from.JID())
	var e omemo.Encrypted
	if err := xml.Unmarshal(x, &e); err != nil {
		h.t.Fatalf("%v parsing <encrypted/> from %v: %v\n%s", h, from, err, x)
	}
	d, err := h.m.Decrypt(jid.MustParse(from.JID()), &e)
	if err != nil {
		return nil, err
	}
	if d.Sender.Device != from.ID() || !d.Listed {
		h.t.Fatalf("%v: sender %v (listed %v), want %v", h, d.Sender, d.Listed, from)
	}
	if d.BundleChanged {
		h.publishBundle()
	}
	if d.SendEmpty != omemo.EmptyNone {
		h.debt = append(h.debt, d.Sender)
	}
	return d.Envelope, nil
}

func (h *hushNode) owed() []autoMsg {
	var out []autoMsg
	for _, a := range h.debt {
		e, err := h.m.EncryptEmpty(a)
		if err != nil {
			h.t.Fatal(err)
		}
		out = append(out, autoMsg{xml: marshalEncrypted(h.t, e), to: addrsOf(e), from: h})
	}
	h.debt = nil
	return out
}

type pyNode struct {
	t *testing.T
	p *omemotest.Peer
}

func (n *pyNode) String() string { return "python " + n.p.JID() + "#" + fmt.Sprint(n.p.DeviceID()) }
func (n *pyNode) JID() string    { return n.p.JID() }
func (n *pyNode) ID() uint32     { return n.p.DeviceID() }

func pyAddrs(rs []omemotest.Recipient) []nodeAddr {
	out := make([]nodeAddr, len(rs))
	for i, r := range rs {
		out[i] = nodeAddr{jid: r.JID, id: r.DeviceID, kex: r.KeyExchange}
	}
	return out
}

func (n *pyNode) send(body []byte, to string) ([]byte, []nodeAddr) {
	n.t.Helper()
	enc, err := n.p.Encrypt([]string{to}, body, ns2)
	if err != nil {
		n.t.Fatalf("%v encrypt: %v", n, err)
	}
	if len(enc.Errors) > 0 {
		n.t.Fatalf("%v encrypt errors: %+v", n, enc.Errors)
	}
	return enc.Messages[ns2], pyAddrs(enc.Recipients[ns2])
}

func (n *pyNode) recv(from node, x []byte) ([]byte, error) {
	d, err := n.p.Decrypt(from.JID(), x)
	if err != nil {
		return nil, err
	}
	if d.SenderDeviceID != from.ID() {
		n.t.Fatalf("%v: sender %d, want %v", n, d.SenderDeviceID, from)
	}
	if d.Empty {
		return nil, nil
	}
	if d.Plaintext == nil {
		d.Plaintext = []byte{}
	}
	return d.Plaintext, nil
}

func (n *pyNode) owed() []autoMsg {
	msgs, err := n.p.Outbox()
	if err != nil {
		n.t.Fatal(err)
	}
	out := make([]autoMsg, len(msgs))
	for i, m := range msgs {
		if !m.Empty {
			n.t.Fatalf("%v sent a non-empty automatic message", n)
		}
		out[i] = autoMsg{xml: m.XML, to: pyAddrs(m.Recipients), from: n}
	}
	return out
}

// net routes messages between nodes by (jid, device id).
type net struct {
	t     *testing.T
	nodes []node
}

func (w *net) node(a nodeAddr) node {
	for _, n := range w.nodes {
		if n.JID() == a.jid && n.ID() == a.id {
			return n
		}
	}
	w.t.Fatalf("message for unknown device %s#%d", a.jid, a.id)
	return nil
}

func startPython(t *testing.T, pep *omemotest.PEP, account string) *pyNode {
	t.Helper()
	return &pyNode{t: t, p: omemotest.StartPeer(t, account, omemotest.WithPEP(pep), omemotest.WithNamespaces(ns2))}
}

// TestInteropFirstContact: each side initiates once towards the other and
// the key exchanges are answered as the reference expects.
func TestInteropFirstContact(t *testing.T) {
	for _, hushFirst := range []bool{true, false} {
		t.Run(fmt.Sprint("hushFirst=", hushFirst), func(t *testing.T) {
			pep := omemotest.NewPEP()
			py := startPython(t, pep, "bob@example.net")
			h := newHushNode(t, pep, "alice@example.org")
			w := &net{t: t, nodes: []node{h, py}}
			var a, b node = h, py
			if !hushFirst {
				a, b = py, h
			}
			for i := range 4 {
				x, to := a.send([]byte(fmt.Sprintf("<envelope>%d</envelope>", i)), b.JID())
				if len(to) != 1 || to[0].id != b.ID() || !to[0].kex {
					t.Fatalf("message %d: recipients %+v", i, to)
				}
				got, err := b.recv(a, x)
				if err != nil || string(got) != fmt.Sprintf("<envelope>%d</envelope>", i) {
					t.Fatalf("message %d: %q %v", i, got, err)
				}
			}
			// The late answer: one empty message per key exchange
			// received (python answers each, hush too).
			autos := b.owed()
			if len(autos) == 0 {
				t.Fatal("key exchange not answered")
			}
			for _, m := range autos {
				for _, r := range m.to {
					got, err := w.node(r).recv(b, m.xml)
					if err != nil || got != nil {
						t.Fatalf("empty answer: %q %v", got, err)
					}
				}
			}
			x, to := a.send([]byte("<envelope>after</envelope>"), b.JID())
			if to[0].kex {
				t.Fatal("key exchange still sent after the answer")
			}
			if got, err := b.recv(a, x); err != nil || string(got) != "<envelope>after</envelope>" {
				t.Fatalf("after: %q %v", got, err)
			}
			// And back.
			x, to = b.send([]byte("<envelope>back</envelope>"), a.JID())
			if to[0].kex {
				t.Fatal("answer carries a key exchange")
			}
			if got, err := a.recv(b, x); err != nil || string(got) != "<envelope>back</envelope>" {
				t.Fatalf("back: %q %v", got, err)
			}
		})
	}
}

// TestInteropPayloads: python parses hush's PEP payloads to the same values,
// and hush parses python's.
func TestInteropPayloads(t *testing.T) {
	pep := omemotest.NewPEP()
	py := startPython(t, pep, "bob@example.net")
	h := newHushNode(t, pep, "alice@example.org")
	b, _ := h.m.Bundle()
	x, _ := xml.Marshal(b)
	pb, err := py.p.ParseBundle(ns2, x)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pb.IdentityKey, b.IdentityKey) || !bytes.Equal(pb.SignedPreKey, b.SignedPreKey) ||
		pb.SignedPreKeyID != b.SignedPreKeyID || len(pb.PreKeys) != len(b.PreKeys) {
		t.Fatalf("python reads %+v", pb)
	}
	var back omemo.Bundle
	if err := xml.Unmarshal(pep.Bundle(ns2, py.JID(), py.ID()), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.PreKeys) != 100 || back.PreKey(0) != nil {
		t.Fatalf("python's bundle: %d prekeys", len(back.PreKeys))
	}
}

type delivery struct {
	msg  int
	from node
	to   node
	xml  []byte
	want []byte // nil: empty message
	dup  bool
}

// TestInteropConversation: 3 hush devices (alice) and 3 python devices
// (bob) exchange 240 messages in both directions, delivered out of order,
// some dropped, some duplicated, with the automatic answers (key exchange
// completion, heartbeats) delivered late. Every delivered message decrypts
// exactly once to what was sent, and every duplicate is rejected.
func TestInteropConversation(t *testing.T) {
	pep := omemotest.NewPEP()
	var pys []*pyNode
	for range 3 {
		pys = append(pys, startPython(t, pep, "bob@example.net"))
	}
	var hs []*hushNode
	for range 3 {
		hs = append(hs, newHushNode(t, pep, "alice@example.org"))
	}
	w := &net{t: t}
	for _, h := range hs {
		w.nodes = append(w.nodes, h)
	}
	for _, p := range pys {
		w.nodes = append(w.nodes, p)
	}
	other := func(n node) string {
		if n.JID() == "alice@example.org" {
			return "bob@example.net"
		}
		return "alice@example.org"
	}
	rng := rand.New(rand.NewPCG(384, 2))
	var pool []delivery
	msgs := 0
	var stats struct{ sent, delivered, dropped, dups, empties int }

	enqueue := func(from node, body []byte, x []byte, to []nodeAddr) {
		id := msgs
		msgs++
		for _, a := range to {
			pool = append(pool, delivery{msg: id, from: from, to: w.node(a), xml: x, want: body})
		}
	}
	collect := func() {
		for _, n := range w.nodes {
			for _, m := range n.owed() {
				stats.empties++
				enqueue(m.from, nil, m.xml, m.to)
			}
		}
	}
	deliver := func(d delivery) {
		got, err := d.to.recv(d.from, d.xml)
		if d.dup {
			if err == nil {
				t.Fatalf("duplicate of message %d from %v to %v decrypted", d.msg, d.from, d.to)
			}
			if h, ok := d.to.(*hushNode); ok && !errors.Is(err, omemo.ErrDuplicate) {
				t.Fatalf("%v: duplicate gave %v, want ErrDuplicate", h, err)
			}
			stats.dups++
			return
		}
		if err != nil {
			t.Fatalf("message %d from %v to %v: %v", d.msg, d.from, d.to, err)
		}
		if !bytes.Equal(got, d.want) || (got == nil) != (d.want == nil) {
			t.Fatalf("message %d from %v to %v: got %q, want %q", d.msg, d.from, d.to, got, d.want)
		}
		stats.delivered++
	}
	// deliverSome delivers k random pending deliveries; each may be
	// dropped (never for empty messages, which carry the answers that
	// stop key exchanges) or duplicated.
	deliverSome := func(k int) {
		for ; k > 0 && len(pool) > 0; k-- {
			i := rng.IntN(len(pool))
			d := pool[i]
			pool = append(pool[:i], pool[i+1:]...)
			if !d.dup && d.want != nil && rng.IntN(20) == 0 {
				stats.dropped++
				continue
			}
			deliver(d)
			if !d.dup && rng.IntN(10) == 0 {
				d.dup = true
				pool = append(pool, d)
			}
		}
	}

	// Phase 1: every device speaks once and everything is delivered, so
	// that all sessions exist before deliveries overtake each other (two
	// devices initiating towards each other at the same time break both
	// sessions in the reference too).
	for _, n := range w.nodes {
		body := []byte(fmt.Sprintf("<envelope>hello %d from %v</envelope>", msgs, n))
		x, to := n.send(body, other(n))
		stats.sent++
		if len(to) != 5 {
			t.Fatalf("%v encrypted for %d devices, want 5", n, len(to))
		}
		enqueue(n, body, x, to)
		for len(pool) > 0 {
			d := pool[0]
			pool = pool[1:]
			deliver(d)
		}
	}
	// The answers to the key exchanges stay in the pool: answered late.
	collect()

	// Phase 2: random traffic.
	for i := 0; stats.sent < 240; i++ {
		n := w.nodes[rng.IntN(len(w.nodes))]
		body := []byte(fmt.Sprintf("<envelope>%d from %v</envelope>", msgs, n))
		x, to := n.send(body, other(n))
		stats.sent++
		enqueue(n, body, x, to)
		deliverSome(rng.IntN(8))
		if i%7 == 0 {
			collect()
		}
	}
	for len(pool) > 0 {
		deliverSome(len(pool))
		collect()
	}
	t.Logf("%d messages sent, %d deliveries decrypted, %d dropped, %d duplicates rejected, %d empty messages",
		stats.sent, stats.delivered, stats.dropped, stats.dups, stats.empties)
	if stats.dups == 0 || stats.dropped == 0 || stats.empties == 0 {
		t.Fatal("scenario did not exercise duplicates, drops and empty messages")
	}
}

// TestInteropHeartbeat: 60 messages one way without an answer make the
// receiver send a heartbeat, in both directions; after it the sender's
// ratchet turns.
func TestInteropHeartbeat(t *testing.T) {
	for _, hushSends := range []bool{true, false} {
		t.Run(fmt.Sprint("hushSends=", hushSends), func(t *testing.T) {
			pep := omemotest.NewPEP()
			py := startPython(t, pep, "bob@example.net")
			h := newHushNode(t, pep, "alice@example.org")
			var a, b node = h, py
			if !hushSends {
				a, b = py, h
			}
			// Establish and confirm the session.
			x, _ := a.send([]byte("<envelope>x</envelope>"), b.JID())
			if _, err := b.recv(a, x); err != nil {
				t.Fatal(err)
			}
			for _, m := range b.owed() {
				if _, err := a.recv(b, m.xml); err != nil {
					t.Fatal(err)
				}
			}
			heartbeats := 0
			for i := range 60 {
				body := []byte(fmt.Sprintf("<envelope>%d</envelope>", i))
				x, _ := a.send(body, b.JID())
				got, err := b.recv(a, x)
				if err != nil || !bytes.Equal(got, body) {
					t.Fatalf("message %d: %q %v", i, got, err)
				}
				for _, m := range b.owed() {
					heartbeats++
					if got, err := a.recv(b, m.xml); err != nil || got != nil {
						t.Fatalf("heartbeat: %q %v", got, err)
					}
				}
			}
			if heartbeats == 0 {
				t.Fatal("no heartbeat after 60 unanswered messages")
			}
			t.Logf("%d heartbeats", heartbeats)
		})
	}
}

// TestInteropSimultaneousInitiation: hush and python-omemo initiate at the
// same time. python-omemo replaces its session with the one hush built;
// hush does the same but keeps its own as a previous state, which python's
// answer then revives, so both end up on hush's session.
func TestInteropSimultaneousInitiation(t *testing.T) {
	pep := omemotest.NewPEP()
	py := startPython(t, pep, "bob@example.net")
	h := newHushNode(t, pep, "alice@example.org")
	xh, _ := h.send([]byte("<envelope>h</envelope>"), py.JID())
	xp, _ := py.send([]byte("<envelope>p</envelope>"), h.JID())
	if got, err := py.recv(h, xh); err != nil || string(got) != "<envelope>h</envelope>" {
		t.Fatalf("python: %q %v", got, err)
	}
	if got, err := h.recv(py, xp); err != nil || string(got) != "<envelope>p</envelope>" {
		t.Fatalf("hush: %q %v", got, err)
	}
	for _, m := range py.owed() {
		if _, err := h.recv(py, m.xml); err != nil {
			t.Fatalf("hush reading python's answer: %v", err)
		}
	}
	for _, m := range h.owed() {
		if _, err := py.recv(h, m.xml); err != nil {
			t.Fatalf("python reading hush's answer: %v", err)
		}
	}
	for i := range 6 {
		var a, b node = h, py
		if i%2 == 1 {
			a, b = py, h
		}
		body := []byte(fmt.Sprintf("<envelope>%d</envelope>", i))
		x, _ := a.send(body, b.JID())
		if got, err := b.recv(a, x); err != nil || !bytes.Equal(got, body) {
			t.Fatalf("message %d %v→%v: %q %v", i, a, b, got, err)
		}
	}
}
