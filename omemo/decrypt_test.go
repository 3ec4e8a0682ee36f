package omemo_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"hush.im/internal/wire"
	"hush.im/omemo"
	"mellium.im/xmpp/jid"
)

// pair sets up alice (one device) and bob (one device) in one world.
func pair(t *testing.T) (*world, *device, *device) {
	w := newWorld(t)
	return w, w.newDevice("alice@example.org", nil), w.newDevice("bob@example.net", nil)
}

func TestOutOfOrderAndReplay(t *testing.T) {
	_, a, b := pair(t)
	const n = 40
	msgs := make([]*omemo.Encrypted, n)
	for i := range msgs {
		msgs[i], _ = a.send(body(i), b.jid)
	}
	// Bob answers after the first one so that later ones are plain
	// messages, then alice sends more on a new chain.
	got := b.mustRecv(a, msgs[0], body(0))
	b.answer(got, a)
	more := make([]*omemo.Encrypted, n)
	for i := range more {
		more[i], _ = a.send(body(n+i), b.jid)
		if k := keyFor(more[i], b); k.KEX {
			t.Fatalf("message %d after the answer still carries a key exchange", i)
		}
	}
	all := append(msgs[1:], more...)
	want := make(map[*omemo.Encrypted]string)
	for i, e := range msgs {
		want[e] = body(i)
	}
	for i, e := range more {
		want[e] = body(n + i)
	}
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	for _, e := range all {
		b.mustRecv(a, e, want[e])
	}
	// Every replay is rejected with ErrDuplicate and changes nothing.
	for _, e := range append(all, msgs[0]) {
		unchanged(t, b, func() {
			_, err := b.m.Decrypt(a.jid, e)
			mustErr(t, err, omemo.ErrDuplicate)
		})
	}
}

func TestKeyExchangeRepeatedUntilAnswered(t *testing.T) {
	_, a, b := pair(t)
	var msgs []*omemo.Encrypted
	for i := range 3 {
		e, rep := a.send(body(i), b.jid)
		if !rep.Devices[0].KEX || rep.Devices[0].NewSession != (i == 0) {
			t.Fatalf("message %d: %+v", i, rep.Devices[0])
		}
		msgs = append(msgs, e)
	}
	// Delivered out of order: the third builds the session, the others
	// are recognised as the same key exchange.
	got := b.mustRecv(a, msgs[2], body(2))
	if !got.NewSession {
		t.Fatal("first key exchange did not build a session")
	}
	for _, i := range []int{0, 1} {
		got := b.mustRecv(a, msgs[i], body(i))
		if got.NewSession || !got.KeyExchange || got.BundleChanged {
			t.Fatalf("repeated key exchange %d: %+v", i, got)
		}
	}
	b.answer(got, a)
	e, rep := a.send("after", b.jid)
	if rep.Devices[0].KEX || keyFor(e, b).KEX {
		t.Fatal("key exchange sent after the answer")
	}
	b.mustRecv(a, e, "after")
}

func TestEmptyMessage(t *testing.T) {
	_, a, b := pair(t)
	_, err := a.m.EncryptEmpty(b.addr())
	mustErr(t, err, omemo.ErrUnknownDevice)
	a.sync(b.jid)
	e, err := a.m.EncryptEmpty(b.addr())
	if err != nil {
		t.Fatal(err)
	}
	if e.Payload != nil || !keyFor(e, b).KEX {
		t.Fatalf("empty message: %+v", e)
	}
	got, err := b.recv(a, e)
	if err != nil {
		t.Fatal(err)
	}
	if got.Envelope != nil || !got.NewSession {
		t.Fatalf("got %+v", got)
	}
}

// corrupt returns a copy of e with f applied to the key for d.
func corrupt(e *omemo.Encrypted, d *device, f func(k *omemo.Key)) *omemo.Encrypted {
	c := *e
	c.Payload = bytes.Clone(e.Payload)
	c.Keys = nil
	for _, ks := range e.Keys {
		nks := omemo.Keys{JID: ks.JID}
		for _, k := range ks.Keys {
			k.Data = bytes.Clone(k.Data)
			if ks.JID.Equal(d.jid) && k.RID == d.m.DeviceID() {
				f(&k)
			}
			nks.Keys = append(nks.Keys, k)
		}
		c.Keys = append(c.Keys, nks)
	}
	return &c
}

func editKEX(f func(*wire.OMEMOKeyExchange)) func(*omemo.Key) {
	return func(k *omemo.Key) {
		var kex wire.OMEMOKeyExchange
		if err := kex.Unmarshal(k.Data); err != nil {
			panic(err)
		}
		f(&kex)
		k.Data = kex.Marshal()
	}
}

func editAuth(f func(*wire.OMEMOAuthenticatedMessage)) func(*omemo.Key) {
	return func(k *omemo.Key) {
		var m wire.OMEMOAuthenticatedMessage
		if err := m.Unmarshal(k.Data); err != nil {
			panic(err)
		}
		f(&m)
		k.Data = m.Marshal()
	}
}

func editInner(f func(*wire.OMEMOMessage)) func(*omemo.Key) {
	return editAuth(func(a *wire.OMEMOAuthenticatedMessage) {
		var m wire.OMEMOMessage
		if err := m.Unmarshal(a.Message); err != nil {
			panic(err)
		}
		f(&m)
		a.Message = m.Marshal()
	})
}

// lowOrder is a point of order 8 on Curve25519 (RFC 7748 §6.1 checks).
var lowOrder = []byte{
	0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
	0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00,
}

// TestBadInput feeds corrupted messages to a device and checks each fails
// with exactly the ErrDecryption text (no detail about which check failed)
// and leaves the store unchanged.
func TestBadInput(t *testing.T) {
	w, a, b := pair(t)
	kexMsg, _ := a.send("first", b.jid)
	// A second initiator sharing nothing with alice.
	c := w.newDevice("carol@example.com", nil)
	other, _ := c.send("carol", b.jid)

	bitflip := func(i int) func(k *omemo.Key) {
		return func(k *omemo.Key) { k.Data[(i%len(k.Data)+len(k.Data))%len(k.Data)] ^= 0x01 }
	}
	kexCases := []struct {
		name string
		f    func(*omemo.Key)
		e    func(*omemo.Encrypted)
	}{
		{"truncated", func(k *omemo.Key) { k.Data = k.Data[:len(k.Data)-1] }, nil},
		{"extended", func(k *omemo.Key) { k.Data = append(k.Data, 0) }, nil},
		{"empty-ish", func(k *omemo.Key) { k.Data = []byte{0} }, nil},
		{"bit flip start", bitflip(3), nil},
		{"bit flip middle", bitflip(60), nil},
		{"bit flip end", bitflip(-1), nil},
		{"wrong pk id", editKEX(func(x *wire.OMEMOKeyExchange) { x.PKID += 1000 }), nil},
		{"pk id 0", editKEX(func(x *wire.OMEMOKeyExchange) { x.PKID = 0 }), nil},
		{"wrong spk id", editKEX(func(x *wire.OMEMOKeyExchange) { x.SPKID++ }), nil},
		{"low-order ek", editKEX(func(x *wire.OMEMOKeyExchange) { x.EK = lowOrder }), nil},
		{"zero ek", editKEX(func(x *wire.OMEMOKeyExchange) { x.EK = make([]byte, 32) }), nil},
		{"other ek", editKEX(func(x *wire.OMEMOKeyExchange) { x.EK = bytes.Repeat([]byte{9}, 32) }), nil},
		{"short ek", editKEX(func(x *wire.OMEMOKeyExchange) { x.EK = x.EK[:31] }), nil},
		{"long ik", editKEX(func(x *wire.OMEMOKeyExchange) { x.IK = append(x.IK, 0) }), nil},
		{"ik 0x05 prefixed", editKEX(func(x *wire.OMEMOKeyExchange) { x.IK = append([]byte{5}, x.IK[:32]...) }), nil},
		{"low-order ik", editKEX(func(x *wire.OMEMOKeyExchange) { x.IK = lowOrder }), nil},
		{"ik not a point", editKEX(func(x *wire.OMEMOKeyExchange) { x.IK = bytes.Repeat([]byte{0xff}, 32) }), nil},
		{"bad mac", editKEX(func(x *wire.OMEMOKeyExchange) { x.Message.MAC[0] ^= 1 }), nil},
		{"short mac", editKEX(func(x *wire.OMEMOKeyExchange) { x.Message.MAC = x.Message.MAC[:8] }), nil},
		{"payload flipped", nil, func(e *omemo.Encrypted) { e.Payload[0] ^= 1 }},
		{"payload truncated", nil, func(e *omemo.Encrypted) { e.Payload = e.Payload[:len(e.Payload)-16] }},
		{"payload odd length", nil, func(e *omemo.Encrypted) { e.Payload = e.Payload[:len(e.Payload)-1] }},
		{"payload removed", nil, func(e *omemo.Encrypted) { e.Payload = nil }},
		{"payload replaced", nil, func(e *omemo.Encrypted) { e.Payload = other.Payload }},
		{"key of another sender", func(k *omemo.Key) { k.Data = keyFor(other, b).Data }, nil},
	}
	for _, tc := range kexCases {
		t.Run("kex/"+tc.name, func(t *testing.T) {
			f := tc.f
			if f == nil {
				f = func(*omemo.Key) {}
			}
			e := corrupt(kexMsg, b, f)
			if tc.e != nil {
				tc.e(e)
			}
			unchanged(t, b, func() {
				_, err := b.m.Decrypt(a.jid, e)
				if err == nil || err.Error() != omemo.ErrDecryption.Error() {
					t.Fatalf("error %v, want exactly %v", err, omemo.ErrDecryption)
				}
			})
		})
	}
	// The original still decrypts after all that.
	got := b.mustRecv(a, kexMsg, "first")
	b.answer(got, a)

	msg, _ := a.send("second", b.jid)
	if keyFor(msg, b).KEX {
		t.Fatal("unexpected key exchange")
	}
	msgCases := []struct {
		name string
		f    func(*omemo.Key)
	}{
		{"truncated", func(k *omemo.Key) { k.Data = k.Data[:len(k.Data)-1] }},
		{"bit flip", bitflip(20)},
		{"flag added", func(k *omemo.Key) { k.KEX = true }},
		{"mac flipped", editAuth(func(m *wire.OMEMOAuthenticatedMessage) { m.MAC[15] ^= 0x80 })},
		{"counter far ahead", editInner(func(m *wire.OMEMOMessage) { m.N += 5000 })},
		{"counter changed", editInner(func(m *wire.OMEMOMessage) { m.N++ })},
		{"pn changed", editInner(func(m *wire.OMEMOMessage) { m.PN++ })},
		{"low-order ratchet key", editInner(func(m *wire.OMEMOMessage) { m.DHPub = lowOrder })},
		{"zero ratchet key", editInner(func(m *wire.OMEMOMessage) { m.DHPub = make([]byte, 32) })},
		{"short ratchet key", editInner(func(m *wire.OMEMOMessage) { m.DHPub = m.DHPub[:31] })},
		{"ciphertext dropped", editInner(func(m *wire.OMEMOMessage) { m.Ciphertext = nil })},
		{"ciphertext flipped", editInner(func(m *wire.OMEMOMessage) { m.Ciphertext[0] ^= 1 })},
	}
	for _, tc := range msgCases {
		t.Run("msg/"+tc.name, func(t *testing.T) {
			e := corrupt(msg, b, tc.f)
			unchanged(t, b, func() {
				_, err := b.m.Decrypt(a.jid, e)
				if err == nil || err.Error() != omemo.ErrDecryption.Error() {
					t.Fatalf("error %v, want exactly %v", err, omemo.ErrDecryption)
				}
			})
		})
	}
	b.mustRecv(a, msg, "second")
}

// TestCounterFarAhead delivers only a message more than ratchet.MaxJump
// messages ahead: it fails without changing anything; a message within
// the bound decrypts.
func TestCounterFarAhead(t *testing.T) {
	_, a, b := pair(t)
	got := b.mustRecv(a, mustSend(a, "x", b.jid), "x")
	b.answer(got, a)
	// Alice is on a new chain now; bob gets only its 1002nd message, whose
	// counter 1001 is more than ratchet.MaxJump ahead.
	var last *omemo.Encrypted
	for range 1002 {
		last = mustSend(a, "z", b.jid)
	}
	unchanged(t, b, func() {
		_, err := b.m.Decrypt(a.jid, last)
		if err == nil || err.Error() != omemo.ErrDecryption.Error() {
			t.Fatalf("error %v, want exactly %v", err, omemo.ErrDecryption)
		}
	})
}

func mustSend(d *device, body string, to ...jid.JID) *omemo.Encrypted {
	e, _ := d.send(body, to...)
	return e
}

func TestNotForThisDevice(t *testing.T) {
	w, a, b := pair(t)
	e := mustSend(a, "x", b.jid)
	b2 := w.newDevice("bob@example.net", nil)
	unchanged(t, b2, func() {
		_, err := b2.m.Decrypt(a.jid, e)
		mustErr(t, err, omemo.ErrNotForThisDevice)
	})
	// Our own sent message, as carbons and MAM return it.
	unchanged(t, a, func() {
		_, err := a.m.Decrypt(a.jid, e)
		mustErr(t, err, omemo.ErrNotForThisDevice)
	})
}

func TestNoSession(t *testing.T) {
	w, a, b := pair(t)
	got := b.mustRecv(a, mustSend(a, "x", b.jid), "x")
	b.answer(got, a)
	e := mustSend(a, "y", b.jid)
	if keyFor(e, b).KEX {
		t.Fatal("unexpected key exchange")
	}
	// A second bob device that lost its state (same id impossible); use a
	// device that never talked to alice: rewrite the rid.
	b2 := w.newDevice("bob@example.net", nil)
	e2 := corrupt(e, b, func(k *omemo.Key) { k.RID = b2.m.DeviceID() })
	unchanged(t, b2, func() {
		_, err := b2.m.Decrypt(a.jid, e2)
		mustErr(t, err, omemo.ErrNoSession)
	})
}

func TestDecryptWithRollsBack(t *testing.T) {
	_, a, b := pair(t)
	e := mustSend(a, "x", b.jid)
	b.sync(a.jid)
	boom := errors.New("inbox full")
	unchanged(t, b, func() {
		_, err := b.m.DecryptWith(a.jid, e, func(tx omemo.Tx, d *omemo.Decrypted) error {
			if string(d.Envelope) != "x" {
				t.Errorf("callback got %q", d.Envelope)
			}
			return boom
		})
		mustErr(t, err, boom)
	})
	unchanged(t, b, func() {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		b.m.DecryptWith(a.jid, e, func(omemo.Tx, *omemo.Decrypted) error { panic("boom") })
	})
	b.mustRecv(a, e, "x")
}

func counter(t *testing.T, e *omemo.Encrypted, d *device) uint32 {
	t.Helper()
	var am wire.OMEMOAuthenticatedMessage
	var m wire.OMEMOMessage
	if err := am.Unmarshal(keyFor(e, d).Data); err != nil {
		t.Fatal(err)
	}
	if err := m.Unmarshal(am.Message); err != nil {
		t.Fatal(err)
	}
	return m.N
}

func TestHeartbeat(t *testing.T) {
	_, a, b := pair(t)
	got := b.mustRecv(a, mustSend(a, "x", b.jid), "x")
	b.answer(got, a)
	// Alice sends without an answer; the first message with counter 53
	// asks bob for a heartbeat, once per chain; the heartbeat turns
	// alice's ratchet, so her next message has counter 0.
	var asked []uint32
	var after []uint32
	for i := range 120 {
		e := mustSend(a, body(i), b.jid)
		n := counter(t, e, b)
		if len(asked) > 0 && len(after) < 3 {
			after = append(after, n)
		}
		got := b.mustRecv(a, e, body(i))
		if got.SendEmpty == omemo.EmptyHeartbeat {
			asked = append(asked, n)
			b.answer(got, a)
		} else if got.SendEmpty != omemo.EmptyNone {
			t.Fatalf("message %d: SendEmpty %v", i, got.SendEmpty)
		}
	}
	if len(asked) != 2 || asked[0] != 53 || asked[1] != 53 {
		t.Fatalf("heartbeats asked at counters %v, want [53 53]", asked)
	}
	if after[0] != 0 || after[1] != 1 {
		t.Fatalf("counters after the heartbeat: %v", after)
	}
}

// TestKEXFlagDropped: a key exchange without kex='true' is read as a plain
// message, for which there is no session.
func TestKEXFlagDropped(t *testing.T) {
	_, a, b := pair(t)
	e := corrupt(mustSend(a, "x", b.jid), b, func(k *omemo.Key) { k.KEX = false })
	unchanged(t, b, func() {
		_, err := b.m.Decrypt(a.jid, e)
		mustErr(t, err, omemo.ErrNoSession)
	})
}

// TestUnlistedSender: a key exchange binds a session to an identity key,
// not to a JID. A message relabelled as coming from another account
// decrypts (the SCE <from/> affix is what catches it), but Decrypt reports
// the sender as not listed and its identity key as undecided for that JID.
func TestUnlistedSender(t *testing.T) {
	_, a, b := pair(t)
	e := mustSend(a, "x", b.jid)
	mallory := jid.MustParse("mallory@example.org")
	got, err := b.m.Decrypt(mallory, e)
	if err != nil {
		t.Fatal(err)
	}
	if got.Listed || got.Trust != omemo.TrustUndecided || !bytes.Equal(got.IdentityKey, a.m.IdentityKey()) {
		t.Fatalf("got %+v", got)
	}
}

// TestHeartbeatOncePerChain: a heartbeat that is not delivered is not
// asked for again on the same chain.
func TestHeartbeatOncePerChain(t *testing.T) {
	_, a, b := pair(t)
	got := b.mustRecv(a, mustSend(a, "x", b.jid), "x")
	b.answer(got, a)
	asked := 0
	for i := range 150 {
		got := b.mustRecv(a, mustSend(a, body(i), b.jid), body(i))
		if got.SendEmpty == omemo.EmptyHeartbeat {
			asked++
		}
	}
	if asked != 1 {
		t.Fatalf("%d heartbeats asked on one chain", asked)
	}
}
