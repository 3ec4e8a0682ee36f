//go:build interop

package omemo_test

// Interop of the Manager's legacy OMEMO (XEP-0384 0.3) with python-omemo's
// python-oldmemo backend, and of one hush identity with an OMEMO 2 peer
// and a legacy peer at once, through internal/omemotest.

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"hush.im/internal/omemotest"
	"hush.im/omemo"
	"hush.im/omemo/legacy"
	"hush.im/omemo/memstore"
	"hush.im/sce"
	"mellium.im/xmpp/jid"
)

const nsLegacy = omemotest.NSLegacy

// element is one <encrypted/> element and the devices it has keys for.
type element struct {
	ns  string
	xml []byte
	to  []nodeAddr
}

// lnode is one device that may send several elements per message.
type lnode interface {
	String() string
	JID() string
	ID() uint32
	// send encrypts text for the account to (and the sender's other
	// devices).
	send(text string, to string) []element
	// recv decrypts an element; nil text for an empty message.
	recv(from lnode, e element) ([]byte, error)
	// owed returns the empty messages the device wants sent.
	owed() []element
}

// dualNode is a hush device announcing both protocols.
type dualNode struct {
	t    *testing.T
	pep  *omemotest.PEP
	m    *omemo.Manager
	j    jid.JID
	debt []omemo.Decrypted
	// ids maps device ids to accounts, for routing legacy keys (which
	// name no account).
	ids map[uint32]string
}

func newDualNode(t *testing.T, pep *omemotest.PEP, account string) *dualNode {
	t.Helper()
	j := jid.MustParse(account)
	m, err := omemo.New(j, memstore.New(), &omemo.Options{Trust: omemo.BlindTrust{}})
	if err != nil {
		t.Fatal(err)
	}
	h := &dualNode{t: t, pep: pep, m: m, j: j}
	var cur *omemo.DeviceList
	if x := pep.DeviceList(ns2, account); x != nil {
		cur = new(omemo.DeviceList)
		mustUnmarshal(t, x, cur)
	}
	l, _, err := m.AnnounceDevice(cur)
	if err != nil {
		t.Fatal(err)
	}
	if err := pep.PublishDeviceList(ns2, account, mustMarshal(t, l)); err != nil {
		t.Fatal(err)
	}
	var lcur *legacy.DeviceList
	if x := pep.DeviceList(nsLegacy, account); x != nil {
		lcur = new(legacy.DeviceList)
		mustUnmarshal(t, x, lcur)
	}
	ll, _, err := m.AnnounceLegacyDevice(lcur)
	if err != nil {
		t.Fatal(err)
	}
	if err := pep.PublishDeviceList(nsLegacy, account, mustMarshal(t, ll)); err != nil {
		t.Fatalf("python rejected hush's legacy device list: %v", err)
	}
	h.publishBundles()
	return h
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	x, err := xml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func mustUnmarshal(t *testing.T, x []byte, v any) {
	t.Helper()
	if err := xml.Unmarshal(x, v); err != nil {
		t.Fatalf("parsing %T: %v\n%s", v, err, x)
	}
}

func (h *dualNode) String() string { return "hush " + h.m.Address().String() }
func (h *dualNode) JID() string    { return h.j.String() }
func (h *dualNode) ID() uint32     { return h.m.DeviceID() }

func (h *dualNode) publishBundles() {
	h.t.Helper()
	b, err := h.m.Bundle()
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.pep.PublishBundle(ns2, h.JID(), h.ID(), mustMarshal(h.t, b)); err != nil {
		h.t.Fatalf("python rejected hush's bundle: %v", err)
	}
	lb, err := h.m.LegacyBundle()
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.pep.PublishBundle(nsLegacy, h.JID(), h.ID(), mustMarshal(h.t, lb)); err != nil {
		h.t.Fatalf("python rejected hush's legacy bundle: %v", err)
	}
}

// follow reads an account's device lists from PEP, as +notify delivers
// them.
func (h *dualNode) follow(account string) {
	h.t.Helper()
	j := jid.MustParse(account)
	if x := h.pep.DeviceList(ns2, account); x != nil {
		var l omemo.DeviceList
		mustUnmarshal(h.t, x, &l)
		if _, err := h.m.SetDeviceList(j, &l); err != nil {
			h.t.Fatal(err)
		}
	}
	if x := h.pep.DeviceList(nsLegacy, account); x != nil {
		var l legacy.DeviceList
		mustUnmarshal(h.t, x, &l)
		if _, err := h.m.SetLegacyDeviceList(j, &l); err != nil {
			h.t.Fatal(err)
		}
		if h.ids == nil {
			h.ids = map[uint32]string{}
		}
		for _, id := range l.Devices {
			h.ids[id] = account
		}
	}
}

func (h *dualNode) fetchLegacyBundle(a omemo.Address) bool {
	h.t.Helper()
	x := h.pep.Bundle(nsLegacy, a.JID.String(), a.Device)
	if x == nil {
		return false
	}
	var b legacy.Bundle
	mustUnmarshal(h.t, x, &b)
	if err := h.m.SetLegacyBundle(a, &b); err != nil {
		h.t.Fatal(err)
	}
	return true
}

// sync fetches the device lists and the bundles Encrypt needs.
func (h *dualNode) sync(to jid.JID) {
	h.t.Helper()
	h.follow(to.String())
	h.follow(h.JID())
	need, _, err := h.m.NeedBundles(to)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, a := range need {
		if x := h.pep.Bundle(ns2, a.JID.String(), a.Device); x != nil {
			var b omemo.Bundle
			mustUnmarshal(h.t, x, &b)
			if err := h.m.SetBundle(a, &b); err != nil {
				h.t.Fatal(err)
			}
		}
	}
	lneed, _, err := h.m.NeedLegacyBundles(to)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, a := range lneed {
		h.fetchLegacyBundle(a)
	}
}

func (h *dualNode) elements(msg *omemo.Message) []element {
	var out []element
	if msg.OMEMO2 != nil {
		out = append(out, element{ns: ns2, xml: mustMarshal(h.t, msg.OMEMO2), to: addrsOf(msg.OMEMO2)})
	}
	if msg.Legacy != nil {
		e := element{ns: nsLegacy, xml: mustMarshal(h.t, msg.Legacy)}
		for _, k := range msg.Legacy.Keys {
			account, ok := h.ids[k.RID]
			if !ok {
				h.t.Fatalf("%v: legacy key for unknown device %d", h, k.RID)
			}
			e.to = append(e.to, nodeAddr{jid: account, id: k.RID, kex: k.PreKey})
		}
		out = append(out, e)
	}
	return out
}

func (h *dualNode) send(text string, to string) []element {
	h.t.Helper()
	toJID := jid.MustParse(to)
	h.sync(toJID)
	msg, rep, err := h.m.EncryptMessage(&omemo.Plaintext{Envelope: []byte(text), Body: text}, toJID)
	if err != nil {
		h.t.Fatalf("%v encrypt: %v", h, err)
	}
	if s := rep.Skipped(); len(s) != 0 {
		h.t.Fatalf("%v left out devices: %+v", h, s)
	}
	return h.elements(msg)
}

func (h *dualNode) recv(from lnode, e element) ([]byte, error) {
	h.t.Helper()
	h.follow(from.JID())
	fromJID := jid.MustParse(from.JID())
	var d *omemo.Decrypted
	var err error
	if e.ns == ns2 {
		var enc omemo.Encrypted
		mustUnmarshal(h.t, e.xml, &enc)
		if d, err = h.m.Decrypt(fromJID, &enc); err != nil {
			return nil, err
		}
	} else {
		var enc legacy.Encrypted
		mustUnmarshal(h.t, e.xml, &enc)
		d, err = h.m.DecryptLegacy(fromJID, &enc)
		if errors.Is(err, omemo.ErrUnknownDevice) && h.fetchLegacyBundle(omemo.Address{JID: fromJID, Device: enc.SID}) {
			d, err = h.m.DecryptLegacy(fromJID, &enc)
		}
		if err != nil {
			return nil, err
		}
	}
	if d.Sender.Device != from.ID() || !d.Listed {
		h.t.Fatalf("%v: sender %v (listed %v), want %v", h, d.Sender, d.Listed, from)
	}
	if d.BundleChanged {
		h.publishBundles()
	}
	if d.SendEmpty != omemo.EmptyNone {
		h.debt = append(h.debt, *d)
	}
	if d.Protocol == omemo.ProtocolLegacy {
		return d.Body, nil
	}
	return d.Envelope, nil
}

func (h *dualNode) owed() []element {
	var out []element
	for _, d := range h.debt {
		msg := &omemo.Message{}
		var err error
		if d.Protocol == omemo.ProtocolLegacy {
			msg.Legacy, err = h.m.EncryptEmptyLegacy(d.Sender)
		} else {
			msg.OMEMO2, err = h.m.EncryptEmpty(d.Sender)
		}
		if err != nil {
			h.t.Fatal(err)
		}
		out = append(out, h.elements(msg)...)
	}
	h.debt = nil
	return out
}

// pyLegacy is a python-omemo device with the oldmemo backend alone.
type pyLegacy struct {
	t *testing.T
	p *omemotest.Peer
}

func startPyLegacy(t *testing.T, pep *omemotest.PEP, account string, opts ...omemotest.Option) *pyLegacy {
	t.Helper()
	opts = append([]omemotest.Option{omemotest.WithPEP(pep), omemotest.WithNamespaces(nsLegacy)}, opts...)
	return &pyLegacy{t: t, p: omemotest.StartPeer(t, account, opts...)}
}

func (n *pyLegacy) String() string {
	return "python-oldmemo " + n.p.JID() + "#" + fmt.Sprint(n.p.DeviceID())
}
func (n *pyLegacy) JID() string { return n.p.JID() }
func (n *pyLegacy) ID() uint32  { return n.p.DeviceID() }

func (n *pyLegacy) send(text string, to string) []element {
	n.t.Helper()
	enc, err := n.p.Encrypt([]string{to}, []byte(text), nsLegacy)
	if err != nil {
		n.t.Fatalf("%v encrypt: %v", n, err)
	}
	if len(enc.Errors) > 0 {
		n.t.Fatalf("%v encrypt errors: %+v", n, enc.Errors)
	}
	return []element{{ns: nsLegacy, xml: enc.Messages[nsLegacy], to: pyAddrs(enc.Recipients[nsLegacy])}}
}

func (n *pyLegacy) recv(from lnode, e element) ([]byte, error) {
	d, err := n.p.Decrypt(from.JID(), e.xml)
	if err != nil {
		return nil, err
	}
	if d.SenderDeviceID != from.ID() || d.Namespace != e.ns {
		n.t.Fatalf("%v: sender %d in %s, want %v in %s", n, d.SenderDeviceID, d.Namespace, from, e.ns)
	}
	if d.Empty {
		return nil, nil
	}
	if d.Plaintext == nil {
		d.Plaintext = []byte{}
	}
	return d.Plaintext, nil
}

func (n *pyLegacy) owed() []element {
	msgs, err := n.p.Outbox()
	if err != nil {
		n.t.Fatal(err)
	}
	out := make([]element, len(msgs))
	for i, m := range msgs {
		if !m.Empty {
			n.t.Fatalf("%v sent a non-empty automatic message", n)
		}
		out[i] = element{ns: m.Namespace, xml: m.XML, to: pyAddrs(m.Recipients)}
	}
	return out
}

type lnet struct {
	t     *testing.T
	nodes []lnode
}

func (w *lnet) node(a nodeAddr) lnode {
	for _, n := range w.nodes {
		if n.JID() == a.jid && n.ID() == a.id {
			return n
		}
	}
	w.t.Fatalf("message for unknown device %s#%d", a.jid, a.id)
	return nil
}

type ldelivery struct {
	msg  int
	from lnode
	to   lnode
	el   element
	want []byte // nil: empty message
	dup  bool
}

// TestInteropLegacyConversation: 3 hush devices (both protocols) and 3
// python-oldmemo devices exchange 240 messages in legacy OMEMO (hush's own
// devices among themselves in OMEMO 2, in the same messages), delivered out
// of order, some dropped, some duplicated, with the automatic empty
// messages (key exchange answers, heartbeats) delivered late. Every
// delivered message decrypts exactly once to what was sent; every
// duplicate is rejected.
func TestInteropLegacyConversation(t *testing.T) {
	pep := omemotest.NewPEP()
	var pys []*pyLegacy
	for i := range 3 {
		// Half the python identities have the Ed25519 sign bit set,
		// which legacy OMEMO carries only in the bundle signature.
		pys = append(pys, startPyLegacy(t, pep, "bob@example.net", omemotest.WithIdentitySignBit(i%2)))
	}
	var hs []*dualNode
	for range 3 {
		hs = append(hs, newDualNode(t, pep, "alice@example.org"))
	}
	w := &lnet{t: t}
	for _, h := range hs {
		w.nodes = append(w.nodes, h)
	}
	for _, p := range pys {
		w.nodes = append(w.nodes, p)
	}
	other := func(n lnode) string {
		if n.JID() == "alice@example.org" {
			return "bob@example.net"
		}
		return "alice@example.org"
	}
	rng := rand.New(rand.NewPCG(384, 3))
	var pool []ldelivery
	msgs := 0
	var stats struct{ sent, delivered, dropped, dups, empties, legacy, omemo2 int }

	enqueue := func(from lnode, text []byte, els []element) {
		id := msgs
		msgs++
		for _, e := range els {
			for _, a := range e.to {
				pool = append(pool, ldelivery{msg: id, from: from, to: w.node(a), el: e, want: text})
			}
		}
	}
	collect := func() {
		for _, n := range w.nodes {
			for _, e := range n.owed() {
				stats.empties++
				enqueue(n, nil, []element{e})
			}
		}
	}
	deliver := func(d ldelivery) {
		got, err := d.to.recv(d.from, d.el)
		if d.dup {
			if err == nil {
				t.Fatalf("duplicate of message %d from %v to %v decrypted", d.msg, d.from, d.to)
			}
			if h, ok := d.to.(*dualNode); ok && !errors.Is(err, omemo.ErrDuplicate) {
				t.Fatalf("%v: duplicate gave %v, want ErrDuplicate", h, err)
			}
			stats.dups++
			return
		}
		if err != nil {
			t.Fatalf("message %d (%s) from %v to %v: %v", d.msg, d.el.ns, d.from, d.to, err)
		}
		if !bytes.Equal(got, d.want) || (got == nil) != (d.want == nil) {
			t.Fatalf("message %d from %v to %v: got %q, want %q", d.msg, d.from, d.to, got, d.want)
		}
		stats.delivered++
		if d.el.ns == nsLegacy {
			stats.legacy++
		} else {
			stats.omemo2++
		}
	}
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
	send := func(n lnode) {
		text := fmt.Sprintf("%d from %v: ¿qué tal? ❤", msgs, n)
		els := n.send(text, other(n))
		stats.sent++
		recipients := 0
		for _, e := range els {
			recipients += len(e.to)
		}
		if recipients != 5 {
			t.Fatalf("%v encrypted for %d devices, want 5", n, recipients)
		}
		enqueue(n, []byte(text), els)
	}

	// Phase 1: every device speaks once, everything delivered in order.
	for _, n := range w.nodes {
		send(n)
		for len(pool) > 0 {
			d := pool[0]
			pool = pool[1:]
			deliver(d)
		}
	}
	collect() // the answers stay in the pool: answered late

	// Phase 2: random traffic.
	for i := 0; stats.sent < 240; i++ {
		send(w.nodes[rng.IntN(len(w.nodes))])
		deliverSome(rng.IntN(8))
		if i%7 == 0 {
			collect()
		}
	}
	for len(pool) > 0 {
		deliverSome(len(pool))
		collect()
	}
	t.Logf("%d messages sent, %d deliveries decrypted (%d legacy, %d OMEMO 2), %d dropped, %d duplicates rejected, %d empty messages",
		stats.sent, stats.delivered, stats.legacy, stats.omemo2, stats.dropped, stats.dups, stats.empties)
	if stats.dups == 0 || stats.dropped == 0 || stats.empties == 0 || stats.legacy < 500 {
		t.Fatal("scenario did not exercise duplicates, drops, empty messages and legacy traffic")
	}
}

// TestInteropLegacyHeartbeat: 60 unanswered legacy messages make the
// receiver send a heartbeat, both ways.
func TestInteropLegacyHeartbeat(t *testing.T) {
	for _, hushSends := range []bool{true, false} {
		t.Run(fmt.Sprint("hushSends=", hushSends), func(t *testing.T) {
			pep := omemotest.NewPEP()
			py := startPyLegacy(t, pep, "bob@example.net")
			h := newDualNode(t, pep, "alice@example.org")
			var a, b lnode = h, py
			if !hushSends {
				a, b = py, h
			}
			one := func(text string) {
				t.Helper()
				for _, e := range a.send(text, b.JID()) {
					got, err := b.recv(a, e)
					if err != nil || string(got) != text {
						t.Fatalf("%q: %q %v", text, got, err)
					}
				}
			}
			one("x")
			for _, e := range b.owed() {
				if _, err := a.recv(b, e); err != nil {
					t.Fatal(err)
				}
			}
			beats := 0
			for i := range 60 {
				one(fmt.Sprint(i))
				for _, e := range b.owed() {
					beats++
					if got, err := a.recv(b, e); err != nil || got != nil {
						t.Fatalf("heartbeat: %q %v", got, err)
					}
				}
			}
			if beats != 1 {
				t.Fatalf("%d heartbeats after 60 unanswered messages, want 1", beats)
			}
		})
	}
}

// TestInteropLegacySimultaneousInitiation: hush and python-oldmemo
// initiate at the same time and converge.
func TestInteropLegacySimultaneousInitiation(t *testing.T) {
	pep := omemotest.NewPEP()
	py := startPyLegacy(t, pep, "bob@example.net")
	h := newDualNode(t, pep, "alice@example.org")
	eh := h.send("h", py.JID())
	ep := py.send("p", h.JID())
	if got, err := py.recv(h, eh[0]); err != nil || string(got) != "h" {
		t.Fatalf("python: %q %v", got, err)
	}
	if got, err := h.recv(py, ep[0]); err != nil || string(got) != "p" {
		t.Fatalf("hush: %q %v", got, err)
	}
	for _, e := range py.owed() {
		if _, err := h.recv(py, e); err != nil {
			t.Fatalf("hush reading python's answer: %v", err)
		}
	}
	for _, e := range h.owed() {
		if _, err := py.recv(h, e); err != nil {
			t.Fatalf("python reading hush's answer: %v", err)
		}
	}
	for i := range 8 {
		var a, b lnode = h, py
		if i%2 == 1 {
			a, b = py, h
		}
		for _, e := range a.send(fmt.Sprint(i), b.JID()) {
			if got, err := b.recv(a, e); err != nil || string(got) != fmt.Sprint(i) {
				t.Fatalf("message %d %v→%v: %q %v", i, a, b, got, err)
			}
		}
	}
}

// TestInteropLegacyBadInput: python-oldmemo's own messages, corrupted as
// issue 4 lists (wrong version byte, short MAC, a key exchange without
// prekey id, an IV of the other size, a GCM tag that does not verify), are
// refused with a typed error and leave hush's store as it was; the
// originals decrypt afterwards.
func TestInteropLegacyBadInput(t *testing.T) {
	pep := omemotest.NewPEP()
	py := startPyLegacy(t, pep, "bob@example.net")
	st := memstore.New()
	j := jid.MustParse("alice@example.org")
	m, err := omemo.New(j, st, &omemo.Options{Trust: omemo.BlindTrust{}})
	if err != nil {
		t.Fatal(err)
	}
	h := &dualNode{t: t, pep: pep, m: m, j: j}
	ll, _, _ := m.AnnounceLegacyDevice(nil)
	if err := pep.PublishDeviceList(nsLegacy, h.JID(), mustMarshal(t, ll)); err != nil {
		t.Fatal(err)
	}
	h.publishBundles()
	h.follow(py.JID())
	h.fetchLegacyBundle(omemo.Address{JID: jid.MustParse(py.JID()), Device: py.ID()})
	from := jid.MustParse(py.JID())

	check := func(name string, x []byte, f func(*legacy.Encrypted), want error) {
		t.Helper()
		var e legacy.Encrypted
		mustUnmarshal(t, x, &e)
		for i := range e.Keys {
			e.Keys[i].Data = bytes.Clone(e.Keys[i].Data)
		}
		f(&e)
		before := st.Snapshot()
		_, err := m.DecryptLegacy(from, &e)
		if !errors.Is(err, want) {
			t.Fatalf("%s: %v, want %v", name, err, want)
		}
		if !mapsEqual(before, st.Snapshot()) {
			t.Fatalf("%s: store changed", name)
		}
	}
	kex := py.send("key exchange", h.JID())[0]
	if !kex.to[0].kex {
		t.Fatal("python's first message is not a key exchange")
	}
	cases := []struct {
		name string
		f    func(*legacy.Encrypted)
	}{
		{"wrong version byte", func(e *legacy.Encrypted) { e.Keys[0].Data[0] = 0x23 }},
		{"short MAC", func(e *legacy.Encrypted) { e.Keys[0].Data = e.Keys[0].Data[:len(e.Keys[0].Data)-4] }},
		{"no prekey id", func(e *legacy.Encrypted) { e.Keys[0].Data = stripPreKeyID(e.Keys[0].Data) }},
		{"16-byte IV", func(e *legacy.Encrypted) { e.IV = append(e.IV, 1, 2, 3, 4) }},
		{"GCM tag", func(e *legacy.Encrypted) { e.Payload[len(e.Payload)-1] ^= 0x40 }},
	}
	for _, tc := range cases {
		check("key exchange: "+tc.name, kex.xml, tc.f, omemo.ErrDecryption)
	}
	if got, err := h.recv(py, kex); err != nil || string(got) != "key exchange" {
		t.Fatalf("the original: %q %v", got, err)
	}
	for _, e := range h.owed() {
		if _, err := py.recv(h, e); err != nil {
			t.Fatal(err)
		}
	}
	plain := py.send("plain", h.JID())[0]
	if plain.to[0].kex {
		t.Fatal("python still sends key exchanges")
	}
	for _, tc := range cases {
		if tc.name == "no prekey id" {
			continue
		}
		check("message: "+tc.name, plain.xml, tc.f, omemo.ErrDecryption)
	}
	check("message: marked a key exchange", plain.xml, func(e *legacy.Encrypted) { e.Keys[0].PreKey = true }, omemo.ErrDecryption)
	if got, err := h.recv(py, plain); err != nil || string(got) != "plain" {
		t.Fatalf("the original: %q %v", got, err)
	}
	check("replay", plain.xml, func(*legacy.Encrypted) {}, omemo.ErrDuplicate)
}

func mapsEqual(a, b map[string]map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, x := range a {
		y, ok := b[k]
		if !ok || len(x) != len(y) {
			return false
		}
		for kk, v := range x {
			if w, ok := y[kk]; !ok || !bytes.Equal(v, w) {
				return false
			}
		}
	}
	return true
}

// TestInteropMixedStanza: one hush identity talks to bob's OMEMO 2
// python device and his legacy python device at once. hush's stanza
// carries both <encrypted/> elements; the OMEMO 2 peer reads the whole
// SCE envelope (body and reply), the legacy peer the body alone, which
// the report says per device; both answer, and hush opens their stanzas.
func TestInteropMixedStanza(t *testing.T) {
	pep := omemotest.NewPEP()
	tablet := startPython(t, pep, "bob@example.net")
	phone := startPyLegacy(t, pep, "bob@example.net")
	h := newDualNode(t, pep, "alice@example.org")
	bob := jid.MustParse("bob@example.net")
	reply := xml.Name{Space: "urn:xmpp:reply:0", Local: "reply"}
	now := time.Now()

	open := func(from, x string) *omemo.Opened {
		t.Helper()
		st, err := sce.ParseStanza([]byte(x))
		if err != nil {
			t.Fatal(err)
		}
		op, err := h.m.OpenStanza(st, nil)
		if errors.Is(err, omemo.ErrUnknownDevice) && h.fetchLegacyBundle(omemo.Address{JID: bob, Device: phone.ID()}) {
			op, err = h.m.OpenStanza(st, nil)
		}
		if err != nil {
			t.Fatalf("opening %s's stanza: %v\n%s", from, err, x)
		}
		if op.BundleChanged {
			h.publishBundles()
		}
		return op
	}
	wrap := func(from string, el []byte) string {
		return `<message xmlns="jabber:client" type="chat" from="` + from + `/x" to="alice@example.org/y">` + string(el) + `</message>`
	}
	bodyOf := func(st *sce.Stanza) (body string, encrypted []xml.Name) {
		for _, el := range st.Children {
			if el.Encrypted {
				encrypted = append(encrypted, el.Name)
			}
			if el.Name.Local == "body" && el.Encrypted {
				body = el.Text()
			}
		}
		return body, encrypted
	}

	for round := range 4 {
		text := fmt.Sprintf("round %d: <ok> & ¿sí?", round)
		h.sync(bob)
		plain := &sce.Stanza{
			Name: xml.Name{Space: "jabber:client", Local: "message"},
			Attr: []xml.Attr{{Name: xml.Name{Local: "to"}, Value: "bob@example.net"}, {Name: xml.Name{Local: "type"}, Value: "chat"}},
			Children: []sce.Element{
				sce.TextElement(reply, "", xml.Attr{Name: xml.Name{Local: "id"}, Value: fmt.Sprint("m", round)}),
				sce.TextElement(xml.Name{Space: "jabber:client", Local: "body"}, text),
			},
		}
		outer, rep, err := h.m.SealStanza(plain, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rep.Devices {
			switch r.DeviceID {
			case tablet.ID():
				if !r.OK() || r.Protocol != omemo.ProtocolOMEMO2 || r.Withheld != nil {
					t.Fatalf("tablet: %+v", r)
				}
			case phone.ID():
				if !r.OK() || r.Protocol != omemo.ProtocolLegacy || !slices.Equal(r.Withheld, []xml.Name{reply}) {
					t.Fatalf("phone: %+v", r)
				}
			default:
				t.Fatalf("report for %+v", r)
			}
		}
		outer.Attr = append(outer.Attr, xml.Attr{Name: xml.Name{Local: "from"}, Value: "alice@example.org/y"})
		stanza, err := outer.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if n := bytes.Count(stanza, []byte("<encrypted ")); n != 2 {
			t.Fatalf("%d <encrypted> elements in %s", n, stanza)
		}
		// The OMEMO 2 peer gets the envelope.
		d2, err := tablet.p.Decrypt(h.JID(), stanza)
		if err != nil || d2.Namespace != ns2 {
			t.Fatalf("tablet: %+v %v", d2, err)
		}
		env, err := sce.Parse(d2.Plaintext)
		if err != nil {
			t.Fatal(err)
		}
		if len(env.Content) != 2 || env.Content[0].Name != reply || env.Content[1].Text() != text {
			t.Fatalf("tablet's envelope: %s", d2.Plaintext)
		}
		// The legacy peer gets the body.
		var dl omemotest.Decrypted
		if err := phone.p.Call("decrypt", map[string]any{"from": h.JID(), "xml": string(stanza), "namespace": nsLegacy}, &dl); err != nil {
			t.Fatalf("phone: %v", err)
		}
		if dl.Namespace != nsLegacy || string(dl.Plaintext) != text {
			t.Fatalf("phone decrypted %+v", dl)
		}
		// Their automatic answers.
		for _, p := range []*omemotest.Peer{tablet.p, phone.p} {
			msgs, err := p.Outbox()
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				if op := open("bob", wrap("bob@example.net", m.XML)); op.Stanza != nil {
					t.Fatal("empty message with a stanza")
				}
			}
		}
		// Both answer: the tablet with an SCE envelope (OMEMO 2), the
		// phone with a body (legacy).
		answer := &sce.Stanza{
			Name: xml.Name{Space: "jabber:client", Local: "message"},
			Attr: []xml.Attr{{Name: xml.Name{Local: "to"}, Value: "alice@example.org"}, {Name: xml.Name{Local: "from"}, Value: "bob@example.net/x"}},
			Children: []sce.Element{
				sce.TextElement(reply, "", xml.Attr{Name: xml.Name{Local: "id"}, Value: "a"}),
				sce.TextElement(xml.Name{Space: "jabber:client", Local: "body"}, "tablet: "+text),
			},
		}
		_, aenv, err := sce.Seal(answer, sce.SealOptions{Profile: sce.OMEMO2(), Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		envBytes, _ := aenv.Marshal()
		enc, err := tablet.p.Encrypt([]string{h.JID()}, envBytes, ns2)
		if err != nil || len(enc.Errors) != 0 {
			t.Fatalf("tablet encrypt: %+v %v", enc, err)
		}
		op := open("tablet", wrap("bob@example.net", enc.Messages[ns2]))
		if body, encd := bodyOf(op.Stanza); body != "tablet: "+text || !slices.Contains(encd, reply) || op.Protocol != omemo.ProtocolOMEMO2 {
			t.Fatalf("tablet's answer: %q %v", body, encd)
		}
		enc, err = phone.p.Encrypt([]string{h.JID()}, []byte("phone: "+text), nsLegacy)
		if err != nil || len(enc.Errors) != 0 {
			t.Fatalf("phone encrypt: %+v %v", enc, err)
		}
		op = open("phone", wrap("bob@example.net", enc.Messages[nsLegacy]))
		if body, encd := bodyOf(op.Stanza); body != "phone: "+text || len(encd) != 1 || op.Protocol != omemo.ProtocolLegacy {
			t.Fatalf("phone's answer: %q %v", body, encd)
		}
		if op.SendEmpty != omemo.EmptyNone {
			e, err := h.m.EncryptEmptyLegacy(op.Sender)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := phone.recv(h, element{ns: nsLegacy, xml: mustMarshal(t, e)}); err != nil {
				t.Fatal(err)
			}
		}
	}
}
