//go:build interop

package legacy

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"testing"

	"hush.im/internal/omemotest"
)

// Interop with python-oldmemo (through internal/omemotest's python-omemo
// driver, legacy backend only). The session and message plumbing that the
// omemo manager will do is done by hand here (helpers_test.go's device).

const (
	goJID = "hush@example.org"
	pyJID = "python@example.org"
	goID  = 424242
)

// interopPair starts a python-oldmemo device and a Go device, and tells
// python about the Go device (device list and bundle, as PEP would).
func interopPair(t *testing.T, opts ...omemotest.Option) (*omemotest.Peer, *device) {
	t.Helper()
	py := omemotest.StartPeer(t, pyJID, append([]omemotest.Option{omemotest.WithNamespaces(omemotest.NSLegacy)}, opts...)...)
	g := newDevice(t, goID)
	list, err := xml.Marshal(DeviceList{Devices: []uint32{goID}})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := py.AddDeviceList(omemotest.NSLegacy, goJID, list)
	if err != nil || len(ids) != 1 || ids[0] != goID {
		t.Fatalf("python read our device list as %v (%v)", ids, err)
	}
	publishBundle(t, py, g)
	return py, g
}

func publishBundle(t *testing.T, py *omemotest.Peer, g *device) {
	t.Helper()
	b, err := xml.Marshal(g.bundle())
	if err != nil {
		t.Fatal(err)
	}
	ik, err := py.AddBundle(omemotest.NSLegacy, goJID, g.id, b)
	if err != nil {
		t.Fatalf("python rejected our bundle: %v\n%s", err, b)
	}
	if !bytes.Equal(ik, g.ik.Ed25519Public()) {
		t.Fatalf("python read our identity key as %x, want %x", ik, g.ik.Ed25519Public())
	}
}

// pyBundle fetches and parses python's legacy bundle.
func pyBundle(t *testing.T, py *omemotest.Peer) *Bundle {
	t.Helper()
	bundles, err := py.OwnBundles()
	if err != nil {
		t.Fatal(err)
	}
	var b Bundle
	if err := xml.Unmarshal(bundles[omemotest.NSLegacy], &b); err != nil {
		t.Fatalf("parsing python's bundle: %v\n%s", err, bundles[omemotest.NSLegacy])
	}
	if err := VerifyBundle(&b); err != nil {
		t.Fatalf("python's bundle: %v", err)
	}
	ed, err := Ed25519IdentityKey(b.IdentityKey, b.SignBit())
	if err != nil || !bytes.Equal(ed, py.IdentityKey()) {
		t.Fatalf("python's identity key read as %x, want %x (%v)", ed, py.IdentityKey(), err)
	}
	return &b
}

// pyToGo has python encrypt body to the Go device and Go decrypt it. It
// returns whether python sent a key exchange.
func pyToGo(t *testing.T, py *omemotest.Peer, g *device, body string) bool {
	t.Helper()
	return goReceive(t, py, g, pyEncrypt(t, py, body))
}

// fromPy is one message python encrypted to the Go device.
type fromPy struct {
	body   string
	msg    []byte
	preKey bool
}

func pyEncrypt(t *testing.T, py *omemotest.Peer, body string) fromPy {
	t.Helper()
	enc, err := py.Encrypt([]string{goJID}, []byte(body), omemotest.NSLegacy)
	if err != nil {
		t.Fatalf("python encrypt: %v", err)
	}
	msg := enc.Messages[omemotest.NSLegacy]
	rcpt := enc.Recipients[omemotest.NSLegacy]
	if msg == nil || len(rcpt) != 1 || rcpt[0].DeviceID != goID || len(enc.Errors) != 0 {
		t.Fatalf("python encrypted to %v (errors %v)", rcpt, enc.Errors)
	}
	return fromPy{body, msg, rcpt[0].KeyExchange}
}

func goReceive(t *testing.T, py *omemotest.Peer, g *device, m fromPy) bool {
	t.Helper()
	out, err := g.decrypt(m.msg)
	if err != nil {
		t.Fatalf("Go decrypting %q from python: %v\n%s", m.body, err, m.msg)
	}
	if string(out.body) != m.body || out.preKey != m.preKey {
		t.Fatalf("Go decrypted %q (prekey %v), want %q (prekey %v)", out.body, out.preKey, m.body, m.preKey)
	}
	if out.newSession {
		publishBundle(t, py, g) // the used prekey is gone
	}
	return out.preKey
}

// goToPy has Go encrypt body (nil: a KeyTransportElement) to python and
// python decrypt it. It returns whether Go sent a key exchange.
func goToPy(t *testing.T, py *omemotest.Peer, g *device, b *Bundle, body []byte) bool {
	t.Helper()
	return pyReceive(t, py, g, body, g.encrypt(t, body, map[uint32]*Bundle{py.DeviceID(): b}))
}

func pyReceive(t *testing.T, py *omemotest.Peer, g *device, body, msg []byte) bool {
	t.Helper()
	d, err := py.Decrypt(goJID, msg)
	if err != nil {
		t.Fatalf("python decrypting %q from Go: %v\n%s", body, err, msg)
	}
	if d.Namespace != omemotest.NSLegacy || d.SenderDeviceID != goID || !bytes.Equal(d.SenderIdentityKey, g.ik.Ed25519Public()) {
		t.Fatalf("python saw %+v", d)
	}
	if body == nil {
		if !d.Empty || d.Plaintext != nil {
			t.Fatalf("python decrypted a key transport message to %q", d.Plaintext)
		}
	} else if string(d.Plaintext) != string(body) {
		t.Fatalf("python decrypted %q, want %q", d.Plaintext, body)
	}
	return d.KeyExchange
}

// drainOutbox delivers python's automatic empty messages (the answer to a
// key exchange, heartbeats) to Go and returns how many there were.
func drainOutbox(t *testing.T, py *omemotest.Peer, g *device) int {
	t.Helper()
	msgs, err := py.Outbox()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Namespace != omemotest.NSLegacy || m.To != goJID || !m.Empty {
			t.Fatalf("unexpected automatic message %+v", m)
		}
		out, err := g.decrypt(m.XML)
		if err != nil {
			t.Fatalf("Go decrypting python's empty message: %v\n%s", err, m.XML)
		}
		if out.body != nil {
			t.Fatalf("empty message decrypted to %q", out.body)
		}
	}
	return len(msgs)
}

// converse runs n messages both ways in turns of varying length, so that
// both ratchets turn many times. Every fifth message is held back for two
// turns: it arrives after its sender has sent on a new ratchet key, so the
// receiver must have kept its key from the previous chain (derived from the
// new message's previousCounter).
func converse(t *testing.T, py *omemotest.Peer, g *device, b *Bundle, n int) {
	t.Helper()
	pattern := []int{1, 3, 2, 1, 4, 1, 1, 2, 5, 1}
	type held struct {
		fromPy bool
		py     fromPy
		body   []byte
		msg    []byte
		turn   int
	}
	var queue []held
	sent, late := 0, 0
	for turn := 0; sent < n || len(queue) > 0; turn++ {
		for i := 0; i < pattern[turn%len(pattern)] && sent < n; i++ {
			body := fmt.Sprintf("turn %d, message %d: ¿qué tal? ❤", turn, i)
			sent++
			hold := sent%5 == 0
			if turn%2 == 0 {
				m := pyEncrypt(t, py, body)
				if m.preKey {
					t.Fatalf("%q: python still sends key exchanges", body)
				}
				if hold {
					queue = append(queue, held{fromPy: true, py: m, turn: turn})
				} else {
					goReceive(t, py, g, m)
				}
				continue
			}
			msg := g.encrypt(t, []byte(body), map[uint32]*Bundle{py.DeviceID(): b})
			if hold {
				queue = append(queue, held{body: []byte(body), msg: msg, turn: turn})
			} else if pyReceive(t, py, g, []byte(body), msg) {
				t.Fatalf("%q: Go still sends key exchanges", body)
			}
		}
		rest := queue[:0]
		for _, h := range queue {
			switch {
			case turn < h.turn+2 && sent < n:
				rest = append(rest, h)
			case h.fromPy:
				goReceive(t, py, g, h.py)
				late++
			default:
				pyReceive(t, py, g, h.body, h.msg)
				late++
			}
		}
		queue = rest
		drainOutbox(t, py, g)
	}
	if late == 0 {
		t.Fatal("no message was delivered late")
	}
}

// TestInteropPythonInitiates: python-oldmemo builds the session from the
// Go device's bundle and encrypts bodies to it; Go answers.
func TestInteropPythonInitiates(t *testing.T) {
	py, g := interopPair(t)
	b := pyBundle(t, py)
	// python repeats its key exchange until Go answers.
	for i := range 3 {
		if !pyToGo(t, py, g, fmt.Sprintf("key exchange %d", i)) {
			t.Fatalf("python's message %d is not a key exchange", i)
		}
	}
	if len(g.pks) != 24 {
		t.Fatalf("Go has %d prekeys left, want 24", len(g.pks))
	}
	s := g.sessions[py.DeviceID()]
	if s == nil || s.Initiator() {
		t.Fatal("no responder session")
	}
	ed, err := Ed25519IdentityKey(s.PeerIdentityKey(), b.SignBit())
	if err != nil || !bytes.Equal(ed, py.IdentityKey()) {
		t.Fatal("the session's identity key is not python's")
	}
	if goToPy(t, py, g, b, []byte("answer")) {
		t.Fatal("Go answered with a key exchange")
	}
	info, err := py.Session(omemotest.NSLegacy, goJID, goID)
	if err != nil || !info.Exists || info.Initiation != "active" || !info.Confirmed {
		t.Fatalf("python's session after the answer: %+v %v", info, err)
	}
	converse(t, py, g, b, 40)

	// python replaces the session (a fresh key exchange in an empty
	// message); Go builds a new one and the conversation goes on.
	if failed, err := py.ReplaceSessions(goJID, goID); err != nil || len(failed) != 0 {
		t.Fatalf("ReplaceSessions: %v %v", failed, err)
	}
	msgs, err := py.Outbox()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("replacement: %d messages, %v", len(msgs), err)
	}
	out, err := g.decrypt(msgs[0].XML)
	if err != nil || !out.preKey || !out.newSession || out.body != nil {
		t.Fatalf("replacement key exchange: %+v %v", out, err)
	}
	publishBundle(t, py, g)
	// Go answers the key exchange with an empty message, as python-omemo
	// does, which confirms python's new session.
	if goToPy(t, py, g, b, nil) {
		t.Fatal("Go answered with a key exchange")
	}
	if info, err := py.Session(omemotest.NSLegacy, goJID, goID); err != nil || !info.Confirmed {
		t.Fatalf("python's replacement session after the answer: %+v %v", info, err)
	}
	converse(t, py, g, b, 12)
}

// TestInteropGoInitiates: Go builds the session from python's bundle;
// python answers its key exchange with an empty message, which confirms the
// Go session. python's identity key has each Ed25519 sign bit in turn: with
// bit 1 its bundle signature carries the bit in byte 63 (libsignal style).
func TestInteropGoInitiates(t *testing.T) {
	for _, bit := range []int{0, 1} {
		t.Run(fmt.Sprintf("python sign bit %d", bit), func(t *testing.T) { goInitiates(t, bit) })
	}
}

func goInitiates(t *testing.T, signBit int) {
	py, g := interopPair(t, omemotest.WithIdentitySignBit(signBit))
	b := pyBundle(t, py)
	if int(b.SignBit()) != signBit {
		t.Fatalf("python's bundle carries sign bit %d, want %d", b.SignBit(), signBit)
	}
	if !goToPy(t, py, g, b, []byte("hello python")) {
		t.Fatal("Go's first message is not a key exchange")
	}
	if !goToPy(t, py, g, b, []byte("hello again")) {
		t.Fatal("Go's second message (unanswered) is not a key exchange")
	}
	// python queued an empty message answering the key exchange.
	if n := drainOutbox(t, py, g); n == 0 {
		t.Fatal("python did not answer the key exchange")
	}
	if !g.sessions[py.DeviceID()].Confirmed() {
		t.Fatal("Go's session not confirmed by python's empty message")
	}
	if goToPy(t, py, g, b, []byte("confirmed")) {
		t.Fatal("Go still sends key exchanges")
	}
	// A key transport message (Go's empty message) decrypts in python too.
	goToPy(t, py, g, b, nil)
	converse(t, py, g, b, 40)
}

// TestInteropPythonParsesGo checks python-oldmemo's schema accepts the
// bundle and device list hush writes and reads the same values.
func TestInteropPythonParsesGo(t *testing.T) {
	py := omemotest.StartPeer(t, pyJID, omemotest.WithNamespaces(omemotest.NSLegacy))
	g := newDevice(t, goID)
	b, err := xml.Marshal(g.bundle())
	if err != nil {
		t.Fatal(err)
	}
	pb, err := py.ParseBundle(omemotest.NSLegacy, b)
	if err != nil {
		t.Fatalf("python rejected our bundle: %v", err)
	}
	if !bytes.Equal(pb.IdentityKey, g.ik.Ed25519Public()) || pb.SignedPreKeyID != g.spkID ||
		!bytes.Equal(pb.SignedPreKey, g.spk.PublicKey().Bytes()) || len(pb.PreKeys) != len(g.pks) {
		t.Fatalf("python read our bundle as %+v", pb)
	}
	list, _ := xml.Marshal(DeviceList{Devices: []uint32{1, goID, MaxDeviceID}})
	devs, err := py.ParseDeviceList(omemotest.NSLegacy, list)
	if err != nil || len(devs) != 3 {
		t.Fatalf("python read our device list as %v (%v)", devs, err)
	}
}
