//go:build interop

package omemotest

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// These tests run python-omemo against itself through the wrapper, showing
// that the oracle works: bundles and device lists travel through Go, and so
// does every message, including python-omemo's automatic empty ones.

var namespaces = []string{NSOMEMO2, NSLegacy}

// world routes messages between peers by bare JID and device id.
type world struct {
	t     *testing.T
	peers []*Peer
}

func (w *world) peer(jid string, id uint32) *Peer {
	for _, p := range w.peers {
		if p.JID() == jid && p.DeviceID() == id {
			return p
		}
	}
	return nil
}

// deliver hands xml from sender to every recipient device in rcpts that is
// in the world and returns their results.
func (w *world) deliver(from *Peer, xml []byte, rcpts []Recipient) map[*Peer]*Decrypted {
	w.t.Helper()
	out := map[*Peer]*Decrypted{}
	for _, r := range rcpts {
		q := w.peer(r.JID, r.DeviceID)
		if q == nil {
			w.t.Fatalf("%s encrypted for unknown device %s/%d", from, r.JID, r.DeviceID)
		}
		d, err := q.Decrypt(from.JID(), xml)
		if err != nil {
			w.t.Fatalf("%s decrypting from %s: %v", q, from, err)
		}
		if d.SenderDeviceID != from.DeviceID() || !bytes.Equal(d.SenderIdentityKey, from.IdentityKey()) {
			w.t.Fatalf("%s: sender %d/%x, want %s", q, d.SenderDeviceID, d.SenderIdentityKey, from)
		}
		if d.KeyExchange != r.KeyExchange {
			w.t.Fatalf("%s: kex %v, recipient list says %v", q, d.KeyExchange, r.KeyExchange)
		}
		out[q] = d
	}
	return out
}

// flush delivers python-omemo's automatic messages until there are none and
// returns how many were delivered.
func (w *world) flush() int {
	w.t.Helper()
	n := 0
	for range 10 {
		moved := false
		for _, p := range w.peers {
			msgs, err := p.Outbox()
			if err != nil {
				w.t.Fatal(err)
			}
			for _, m := range msgs {
				if !m.Empty || bytes.Contains(m.XML, []byte("<payload")) {
					w.t.Fatalf("%s sent a non-empty automatic message: %s", p, m.XML)
				}
				for _, d := range w.deliver(p, m.XML, m.Recipients) {
					if !d.Empty || d.Plaintext != nil {
						w.t.Fatalf("automatic message decrypted to %q", d.Plaintext)
					}
				}
				n++
				moved = true
			}
		}
		if !moved {
			return n
		}
	}
	w.t.Fatal("automatic messages did not settle")
	return n
}

// send encrypts plaintext from p to the bare JIDs in to using namespace ns
// only, delivers it, checks every recipient got the plaintext, and returns
// the results.
func (w *world) send(p *Peer, ns string, plaintext []byte, to ...string) map[*Peer]*Decrypted {
	w.t.Helper()
	enc, err := p.Encrypt(to, plaintext, ns)
	if err != nil {
		w.t.Fatalf("%s encrypt: %v", p, err)
	}
	if len(enc.Errors) > 0 {
		w.t.Fatalf("%s encrypt errors: %+v", p, enc.Errors)
	}
	xml, ok := enc.Messages[ns]
	if !ok || len(enc.Messages) != 1 {
		w.t.Fatalf("%s: messages for %v, want only %s", p, keys(enc.Messages), ns)
	}
	got := w.deliver(p, xml, enc.Recipients[ns])
	for q, d := range got {
		if d.Namespace != ns || d.Empty || !bytes.Equal(d.Plaintext, plaintext) {
			w.t.Fatalf("%s got %+v from %s, want %q in %s", q, d, p, plaintext, ns)
		}
	}
	return got
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestInteropManualExchange moves bundles and device lists by hand between
// two single-device accounts and exchanges 20 messages both ways per
// namespace, starting with a key exchange.
func TestInteropManualExchange(t *testing.T) {
	alice := StartPeer(t, "alice@example.org")
	bob := StartPeer(t, "bob@example.org")
	t.Logf("versions %v", alice.Versions())

	for _, pair := range [][2]*Peer{{alice, bob}, {bob, alice}} {
		from, to := pair[0], pair[1]
		lists, err := from.OwnDeviceLists()
		if err != nil {
			t.Fatal(err)
		}
		bundles, err := from.OwnBundles()
		if err != nil {
			t.Fatal(err)
		}
		for _, ns := range namespaces {
			ids, err := to.AddDeviceList(ns, from.JID(), lists[ns])
			if err != nil || len(ids) != 1 || ids[0] != from.DeviceID() {
				t.Fatalf("AddDeviceList %s: %v %v", ns, ids, err)
			}
			ik, err := to.AddBundle(ns, from.JID(), from.DeviceID(), bundles[ns])
			if err != nil || !bytes.Equal(ik, from.IdentityKey()) {
				t.Fatalf("AddBundle %s: ik %x (want %x), %v", ns, ik, from.IdentityKey(), err)
			}
		}
	}

	w := &world{t: t, peers: []*Peer{alice, bob}}
	for _, ns := range namespaces {
		t.Run(ns, func(t *testing.T) {
			w.t = t
			kex := 0
			for i := range 20 {
				from, to := alice, bob
				if i%2 == 1 {
					from, to = bob, alice
				}
				msg := []byte(fmt.Sprintf("message %d from %s in %s", i, from.JID(), ns))
				d := w.send(from, ns, msg, to.JID())[to]
				if d.KeyExchange {
					kex++
					if i != 0 || !d.SessionBuilt || d.SessionExisted || d.AutoMessages != 1 {
						t.Fatalf("message %d: unexpected key exchange %+v", i, d)
					}
				} else if !d.SessionExisted || d.SessionBuilt {
					t.Fatalf("message %d: %+v", i, d)
				}
				if i == 0 {
					// The used pre key is replaced and the bundle republished.
					items, err := bob.Published()
					if err != nil || len(items) == 0 {
						t.Fatalf("bob published %v, %v", items, err)
					}
					last := items[len(items)-1]
					if last.Kind != "bundle" || last.Namespace != ns || last.DeviceID != bob.DeviceID() || last.JID != bob.JID() {
						t.Fatalf("bob's last publication: %+v", last)
					}
					if _, err := alice.AddBundle(ns, bob.JID(), bob.DeviceID(), last.XML); err != nil {
						t.Fatal(err)
					}
					// Key exchange completion: bob answers with an empty message.
					if n := w.flush(); n != 1 {
						t.Fatalf("%d automatic messages after the key exchange, want 1", n)
					}
					s, err := alice.Session(ns, bob.JID(), bob.DeviceID())
					if err != nil || !s.Exists || s.Initiation != "active" || !s.Confirmed {
						t.Fatalf("alice's session after completion: %+v %v", s, err)
					}
				} else if n := w.flush(); n != 0 {
					t.Fatalf("message %d: %d automatic messages", i, n)
				}
			}
			if kex != 1 {
				t.Fatalf("%d key exchanges, want 1", kex)
			}
		})
	}
}

// TestInteropPEPMultiDevice runs two accounts with two devices each on a
// shared PEP model: 20 messages per namespace from rotating senders, each
// reaching all other devices, and exactly one key exchange per pair.
func TestInteropPEPMultiDevice(t *testing.T) {
	pep := NewPEP()
	a1 := StartPeer(t, "alice@example.org", WithPEP(pep), WithDeviceID(1001), WithLabel("alice laptop"))
	b1 := StartPeer(t, "bob@example.org", WithPEP(pep), WithDeviceID(2001))
	a2 := StartPeer(t, "alice@example.org", WithPEP(pep), WithDeviceID(1002))
	b2 := StartPeer(t, "bob@example.org", WithPEP(pep), WithDeviceID(2002))
	all := []*Peer{a1, a2, b1, b2}

	for _, p := range all {
		for _, jid := range []string{"alice@example.org", "bob@example.org"} {
			devs, err := p.Devices(jid)
			if err != nil {
				t.Fatal(err)
			}
			if len(devs) != 2 {
				t.Fatalf("%s knows %d devices of %s: %+v", p, len(devs), jid, devs)
			}
			for _, d := range devs {
				if strings.Join(d.Namespaces, " ") != NSLegacy+" "+NSOMEMO2 {
					t.Fatalf("%s: device %d namespaces %v", p, d.DeviceID, d.Namespaces)
				}
			}
		}
	}
	for _, ns := range namespaces {
		list := pep.DeviceList(ns, "alice@example.org")
		for _, id := range []uint32{1001, 1002} {
			if !bytes.Contains(list, []byte(`id="`+strconv.Itoa(int(id))+`"`)) {
				t.Fatalf("PEP %s list of alice misses %d: %s", ns, id, list)
			}
		}
		if pep.Bundle(ns, "bob@example.org", 2002) == nil {
			t.Fatalf("PEP has no %s bundle of bob/2002", ns)
		}
	}
	if !bytes.Contains(pep.DeviceList(NSOMEMO2, "alice@example.org"), []byte(`label="alice laptop"`)) {
		t.Fatalf("label missing: %s", pep.DeviceList(NSOMEMO2, "alice@example.org"))
	}

	w := &world{t: t, peers: all}
	for _, ns := range namespaces {
		t.Run(ns, func(t *testing.T) {
			w.t = t
			kex := map[[2]uint32]int{}
			for i := range 20 {
				from := all[i%len(all)]
				to := "bob@example.org"
				if from.JID() == to {
					to = "alice@example.org"
				}
				got := w.send(from, ns, []byte(fmt.Sprintf("%s #%d", ns, i)), to)
				if len(got) != 3 {
					t.Fatalf("message %d reached %d devices, want 3", i, len(got))
				}
				for q, d := range got {
					if d.KeyExchange {
						pair := [2]uint32{min(q.DeviceID(), from.DeviceID()), max(q.DeviceID(), from.DeviceID())}
						kex[pair]++
					}
				}
				w.flush()
			}
			if len(kex) != 6 {
				t.Fatalf("key exchanges for %d device pairs, want 6: %v", len(kex), kex)
			}
			for pair, n := range kex {
				if n != 1 {
					t.Fatalf("pair %v: %d key exchanges", pair, n)
				}
			}
		})
	}
}

// TestInteropRestart stops a device with file storage and starts it again:
// same id and identity, sessions intact (no new key exchange).
func TestInteropRestart(t *testing.T) {
	pep := NewPEP()
	path := filepath.Join(t.TempDir(), "bob.json")
	alice := StartPeer(t, "alice@example.org", WithPEP(pep))
	bob := StartPeer(t, "bob@example.org", WithPEP(pep), WithStorage(path))
	w := &world{t: t, peers: []*Peer{alice, bob}}
	for _, ns := range namespaces {
		w.send(alice, ns, []byte("before "+ns), bob.JID())
		w.flush()
	}
	id, ik := bob.DeviceID(), bob.IdentityKey()
	bob.Stop()

	bob = StartPeer(t, "bob@example.org", WithPEP(pep), WithStorage(path))
	if bob.DeviceID() != id || !bytes.Equal(bob.IdentityKey(), ik) {
		t.Fatalf("restarted bob is %d/%x, want %d/%x", bob.DeviceID(), bob.IdentityKey(), id, ik)
	}
	w.peers = []*Peer{alice, bob}
	for _, ns := range namespaces {
		for i, from := range []*Peer{bob, alice} {
			to := alice.JID()
			if from == alice {
				to = bob.JID()
			}
			for _, d := range w.send(from, ns, []byte(fmt.Sprintf("after %d", i)), to) {
				if d.KeyExchange || !d.SessionExisted {
					t.Fatalf("%s after restart: %+v", ns, d)
				}
			}
		}
		if n := w.flush(); n != 0 {
			t.Fatalf("%d automatic messages after restart", n)
		}
	}
}

// TestInteropHeartbeat shows python-omemo's staleness rule: once a
// receiving chain is longer than 53 messages, every further message is
// answered with an empty message.
func TestInteropHeartbeat(t *testing.T) {
	pep := NewPEP()
	alice := StartPeer(t, "alice@example.org", WithPEP(pep), WithNamespaces(NSOMEMO2))
	bob := StartPeer(t, "bob@example.org", WithPEP(pep), WithNamespaces(NSOMEMO2))
	w := &world{t: t, peers: []*Peer{alice, bob}}
	w.send(alice, NSOMEMO2, []byte("hello"), bob.JID())
	w.flush() // bob's key exchange completion starts a new chain at alice's side
	first := -1
	for i := 1; i <= 60; i++ {
		d := w.send(alice, NSOMEMO2, []byte("m"+strconv.Itoa(i)), bob.JID())[bob]
		s, err := bob.Session(NSOMEMO2, alice.JID(), alice.DeviceID())
		if err != nil || s.ReceivingChainLength == nil || *s.ReceivingChainLength != i {
			t.Fatalf("message %d: session %+v %v", i, s, err)
		}
		if d.AutoMessages > 0 && first < 0 {
			first = i
		}
		if (i > 53) != (d.AutoMessages == 1) {
			t.Fatalf("message %d (chain length %d): %d automatic messages", i, i, d.AutoMessages)
		}
	}
	if first != 54 {
		t.Fatalf("first heartbeat after message %d, want 54", first)
	}
	if n := w.flush(); n != 60-53 {
		t.Fatalf("%d heartbeats delivered, want %d", n, 60-53)
	}
}

// TestInteropKexFalseTrap pins the reference trap: any kex/prekey attribute
// value, even "false", makes python-omemo parse a key exchange, so an
// ordinary message marked kex='false' fails to decrypt.
func TestInteropKexFalseTrap(t *testing.T) {
	pep := NewPEP()
	alice := StartPeer(t, "alice@example.org", WithPEP(pep))
	bob := StartPeer(t, "bob@example.org", WithPEP(pep))
	w := &world{t: t, peers: []*Peer{alice, bob}}
	attr := map[string]string{NSOMEMO2: "kex", NSLegacy: "prekey"}
	for _, ns := range namespaces {
		w.send(alice, ns, []byte("kex"), bob.JID())
		w.flush()
		enc, err := alice.Encrypt([]string{bob.JID()}, []byte("plain"), ns)
		if err != nil {
			t.Fatal(err)
		}
		rid := []byte(`rid="` + strconv.Itoa(int(bob.DeviceID())) + `"`)
		marked := bytes.Replace(enc.Messages[ns], rid, append([]byte(attr[ns]+`="false" `), rid...), 1)
		if bytes.Equal(marked, enc.Messages[ns]) {
			t.Fatalf("no %s in %s", rid, enc.Messages[ns])
		}
		if _, err := bob.Decrypt(alice.JID(), marked); err == nil {
			t.Fatalf("%s: %s='false' decrypted; the trap is gone, update DESIGN.md", ns, attr[ns])
		} else {
			t.Logf("%s: %s='false' -> %v", ns, attr[ns], err)
		}
		// The failed attempt changed nothing: the unmarked message decrypts.
		d, err := bob.Decrypt(alice.JID(), enc.Messages[ns])
		if err != nil || string(d.Plaintext) != "plain" {
			t.Fatalf("%s: unmarked message: %+v %v", ns, d, err)
		}
	}
}

// TestInteropTrust covers manual trust, distrust and the typed errors.
func TestInteropTrust(t *testing.T) {
	pep := NewPEP()
	alice := StartPeer(t, "alice@example.org", WithPEP(pep), WithManualTrust())
	bob := StartPeer(t, "bob@example.org", WithPEP(pep))
	var e *Error
	if _, err := alice.Encrypt([]string{bob.JID()}, []byte("x")); !errors.As(err, &e) || e.Type != "StillUndecided" {
		t.Fatalf("undecided: %v", err)
	}
	if err := alice.SetTrust(bob.JID(), bob.DeviceID(), TrustDistrusted); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Encrypt([]string{bob.JID()}, []byte("x")); !errors.As(err, &e) || e.Type != "NoEligibleDevices" {
		t.Fatalf("distrusted: %v", err)
	}
	if err := alice.SetTrust(bob.JID(), bob.DeviceID(), TrustTrusted); err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, peers: []*Peer{alice, bob}}
	w.send(alice, NSOMEMO2, []byte("trusted now"), bob.JID())
	if err := alice.SetTrust(bob.JID(), bob.DeviceID(), "bogus"); !errors.As(err, &e) || e.Type != "DriverError" {
		t.Fatalf("bogus level: %v", err)
	}
	devs, err := alice.Devices(bob.JID())
	if err != nil || len(devs) != 1 || devs[0].Trust != TrustTrusted {
		t.Fatalf("devices %+v %v", devs, err)
	}
}

// TestInteropIdentity checks the identity options and the reference's
// reading of its own bundles in both namespaces (the legacy bundle carries
// the Ed25519 sign bit in bit 7 of signature byte 63).
func TestInteropIdentity(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, 32)
	x := StartPeer(t, "x@example.org", WithIdentitySeed(seed))
	y := StartPeer(t, "y@example.org", WithIdentitySeed(seed))
	if !bytes.Equal(x.IdentityKey(), y.IdentityKey()) || len(x.Fingerprint()) != 64 {
		t.Fatalf("same seed, identities %x / %x", x.IdentityKey(), y.IdentityKey())
	}
	for bit := range 2 {
		p := StartPeer(t, "s@example.org", WithIdentitySignBit(bit))
		if got := int(p.IdentityKey()[31] >> 7); got != bit {
			t.Fatalf("sign bit %d, want %d", got, bit)
		}
		bundles, err := p.OwnBundles()
		if err != nil {
			t.Fatal(err)
		}
		for _, ns := range namespaces {
			b, err := p.ParseBundle(ns, bundles[ns])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b.IdentityKey, p.IdentityKey()) || len(b.PreKeys) != 100 || b.SignedPreKeyID == 0 ||
				len(b.SignedPreKey) != 32 || len(b.SignedPreKeySig) != 64 {
				t.Fatalf("%s bundle of sign bit %d: %+v", ns, bit, b)
			}
			for _, pk := range b.PreKeys {
				if pk.ID == 0 || len(pk.Key) != 32 {
					t.Fatalf("%s pre key %+v", ns, pk)
				}
			}
		}
	}
	var e *Error
	bad := []byte(`<bundle xmlns="urn:xmpp:omemo:2"><spk id="1">AAAA</spk></bundle>`)
	if _, err := x.AddBundle(NSOMEMO2, "z@example.org", 5, bad); !errors.As(err, &e) || !strings.Contains(e.Type, "XMLSchema") {
		t.Fatalf("malformed bundle: %v", err)
	}
	devs, err := x.ParseDeviceList(NSOMEMO2, []byte(`<devices xmlns="urn:xmpp:omemo:2"/>`))
	if err != nil || len(devs) != 0 {
		t.Fatalf("empty device list: %v %v", devs, err)
	}
}

// TestInteropHistorySync checks that in history synchronisation mode the
// key exchange completion is queued until the mode ends.
func TestInteropHistorySync(t *testing.T) {
	pep := NewPEP()
	alice := StartPeer(t, "alice@example.org", WithPEP(pep))
	bob := StartPeer(t, "bob@example.org", WithPEP(pep), WithHistorySync())
	w := &world{t: t, peers: []*Peer{alice, bob}}
	for _, ns := range namespaces {
		if d := w.send(alice, ns, []byte("while syncing"), bob.JID())[bob]; !d.KeyExchange || d.AutoMessages != 0 {
			t.Fatalf("%s: %+v", ns, d)
		}
	}
	if n := w.flush(); n != 0 {
		t.Fatalf("%d automatic messages during history sync", n)
	}
	if err := bob.SetHistorySync(false); err != nil {
		t.Fatal(err)
	}
	if n := w.flush(); n != 2 {
		t.Fatalf("%d queued messages after history sync, want 2", n)
	}
	for _, ns := range namespaces {
		if s, err := alice.Session(ns, bob.JID(), bob.DeviceID()); err != nil || !s.Confirmed {
			t.Fatalf("%s: %+v %v", ns, s, err)
		}
	}
}

// TestInteropReplaceSessions shows python-omemo's manual session
// replacement: an empty key exchange message that the other side accepts.
func TestInteropReplaceSessions(t *testing.T) {
	pep := NewPEP()
	alice := StartPeer(t, "alice@example.org", WithPEP(pep))
	bob := StartPeer(t, "bob@example.org", WithPEP(pep))
	w := &world{t: t, peers: []*Peer{alice, bob}}
	w.send(alice, NSOMEMO2, []byte("one"), bob.JID())
	w.flush()
	failed, err := bob.ReplaceSessions(alice.JID(), alice.DeviceID())
	if err != nil || len(failed) != 0 {
		t.Fatalf("replace: %v %v", failed, err)
	}
	msgs, err := bob.Outbox()
	if err != nil || len(msgs) != 1 || !msgs[0].Recipients[0].KeyExchange {
		t.Fatalf("outbox %+v %v", msgs, err)
	}
	d := w.deliver(bob, msgs[0].XML, msgs[0].Recipients)[alice]
	if !d.Empty || !d.SessionBuilt || !d.SessionExisted {
		t.Fatalf("replacement: %+v", d)
	}
	w.flush()
	w.send(alice, NSOMEMO2, []byte("two"), bob.JID())
}

// TestInteropTiming measures the reference: python's own time to encrypt
// and decrypt n messages on an established session, for later comparison
// with hush's benchmarks.
func TestInteropTiming(t *testing.T) {
	const n = 50
	pep := NewPEP()
	alice := StartPeer(t, "alice@example.org", WithPEP(pep))
	bob := StartPeer(t, "bob@example.org", WithPEP(pep))
	w := &world{t: t, peers: []*Peer{alice, bob}}
	envelope := []byte(`<envelope xmlns="urn:xmpp:sce:1"><content><body xmlns="jabber:client">` +
		strings.Repeat("hello ", 20) + `</body></content><rpad>abcdefgh</rpad></envelope>`)
	for _, ns := range namespaces {
		w.send(alice, ns, envelope, bob.JID())
		w.flush()
		tm, err := Measure(alice, bob, ns, envelope, n)
		if err != nil {
			t.Fatal(err)
		}
		enc, dec := tm.PerMessage()
		if enc <= 0 || dec <= 0 {
			t.Fatalf("timing %+v", tm)
		}
		t.Logf("python-omemo %s: %d messages of %d bytes: encrypt %v/msg, decrypt %v/msg", ns, n, len(envelope), enc, dec)
	}
}

// BenchmarkReference reports python-omemo's own time per message (encrypt
// on one device, decrypt on another) as py-enc-ns/op and py-dec-ns/op, to
// set beside hush's benchmarks. Run with -tags interop -benchtime=100x.
// Beyond 53 messages python-omemo also sends a heartbeat per message,
// which is part of its cost.
func BenchmarkReference(b *testing.B) {
	for _, ns := range namespaces {
		b.Run(ns, func(b *testing.B) {
			pep := NewPEP()
			alice := StartPeer(b, "alice@example.org", WithPEP(pep))
			bob := StartPeer(b, "bob@example.org", WithPEP(pep))
			plaintext := []byte("<envelope xmlns='urn:xmpp:sce:1'><content><body xmlns='jabber:client'>hi</body></content><rpad/></envelope>")
			// Establish the session: key exchange and its completion.
			if _, err := Measure(alice, bob, ns, plaintext, 1); err != nil {
				b.Fatal(err)
			}
			msgs, err := bob.Outbox()
			if err != nil || len(msgs) != 1 {
				b.Fatalf("outbox %v %v", msgs, err)
			}
			if _, err := alice.Decrypt(bob.JID(), msgs[0].XML); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			tm, err := Measure(alice, bob, ns, plaintext, b.N)
			if err != nil {
				b.Fatal(err)
			}
			enc, dec := tm.PerMessage()
			b.ReportMetric(float64(enc.Nanoseconds()), "py-enc-ns/op")
			b.ReportMetric(float64(dec.Nanoseconds()), "py-dec-ns/op")
		})
	}
}
