package omemo_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"hush.im/internal/xeddsa"
	"hush.im/omemo"
	"hush.im/omemo/legacy"
	"hush.im/omemo/memstore"
	"hush.im/sce"
	"mellium.im/xmpp/jid"
)

// Legacy OMEMO beside OMEMO 2 in one Manager: per-device choice, both
// elements in one message, legacy sessions, bad input.

// sendMsg encrypts a message after a sync.
func (d *device) sendMsg(p *omemo.Plaintext, to ...jid.JID) (*omemo.Message, *omemo.Report) {
	d.w.t.Helper()
	d.sync(to...)
	msg, rep, err := d.m.EncryptMessage(p, to...)
	if err != nil {
		d.w.t.Fatalf("%v: encrypt: %v", d, err)
	}
	return msg, rep
}

// sendBody sends body to legacy devices and <envelope>body</envelope> to
// OMEMO 2 ones.
func (d *device) sendBody(text string, to ...jid.JID) (*omemo.Message, *omemo.Report) {
	return d.sendMsg(&omemo.Plaintext{Envelope: []byte("<envelope>" + text + "</envelope>"), Body: text}, to...)
}

// recvMsg decrypts the element of msg that has a key for d, fetching the
// sender's legacy bundle when hush asks for it (as python-oldmemo does).
func (d *device) recvMsg(from *device, msg *omemo.Message) (*omemo.Decrypted, error) {
	d.w.t.Helper()
	d.follow(from.jid)
	var got *omemo.Decrypted
	var err error
	switch {
	case msg.OMEMO2 != nil && msg.OMEMO2.Find(d.jid, d.m.DeviceID()) != nil:
		got, err = d.m.Decrypt(from.jid, msg.OMEMO2)
	case msg.Legacy != nil:
		got, err = d.m.DecryptLegacy(from.jid, msg.Legacy)
		if errors.Is(err, omemo.ErrUnknownDevice) {
			if b, ok := d.w.lbundles[from.addr().String()]; ok {
				if err := d.m.SetLegacyBundle(from.addr(), b); err != nil {
					d.w.t.Fatal(err)
				}
				got, err = d.m.DecryptLegacy(from.jid, msg.Legacy)
			}
		}
	default:
		return nil, omemo.ErrNotForThisDevice
	}
	if err != nil {
		return nil, err
	}
	if got.BundleChanged {
		d.publishBundle()
	}
	return got, nil
}

// mustRecvMsg decrypts msg and checks the text: the body for a legacy
// message, the envelope's for an OMEMO 2 one.
func (d *device) mustRecvMsg(from *device, msg *omemo.Message, text string) *omemo.Decrypted {
	d.w.t.Helper()
	got, err := d.recvMsg(from, msg)
	if err != nil {
		d.w.t.Fatalf("%v: decrypt from %v: %v", d, from, err)
	}
	var have string
	switch got.Protocol {
	case omemo.ProtocolLegacy:
		have = string(got.Body)
		if got.Envelope != nil {
			d.w.t.Fatal("legacy message with an envelope")
		}
	case omemo.ProtocolOMEMO2:
		have = string(got.Envelope)
		text = "<envelope>" + text + "</envelope>"
		if got.Body != nil {
			d.w.t.Fatal("OMEMO 2 message with a body")
		}
	default:
		d.w.t.Fatalf("protocol %v", got.Protocol)
	}
	if have != text || !got.Sender.Equal(from.addr()) || !bytes.Equal(got.IdentityKey, from.m.IdentityKey()) {
		d.w.t.Fatalf("%v: decrypted %q from %v (key %x), want %q from %v", d, have, got.Sender, got.IdentityKey, text, from)
	}
	return got
}

// answerMsg sends the empty message d owes, in the protocol it is owed in.
func (d *device) answerMsg(got *omemo.Decrypted, to *device) {
	d.w.t.Helper()
	if got.SendEmpty == omemo.EmptyNone {
		return
	}
	msg := &omemo.Message{}
	var err error
	if got.Protocol == omemo.ProtocolLegacy {
		msg.Legacy, err = d.m.EncryptEmptyLegacy(got.Sender)
	} else {
		msg.OMEMO2, err = d.m.EncryptEmpty(got.Sender)
	}
	if err != nil {
		d.w.t.Fatal(err)
	}
	r, err := to.recvMsg(d, msg)
	if err != nil {
		d.w.t.Fatalf("%v: empty message from %v: %v", to, d, err)
	}
	if r.Envelope != nil || r.Body != nil || r.Protocol != got.Protocol {
		d.w.t.Fatalf("empty message decrypted to %+v", r)
	}
}

func legacyKeyFor(msg *omemo.Message, d *device) *legacy.Key {
	if msg.Legacy == nil {
		return nil
	}
	ks := msg.Legacy.KeysFor(d.m.DeviceID())
	if len(ks) != 1 {
		return nil
	}
	return &ks[0]
}

func reportFor(rep *omemo.Report, d *device) omemo.DeviceReport {
	for _, r := range rep.Devices {
		if r.JID.Equal(d.jid) && r.DeviceID == d.m.DeviceID() {
			return r
		}
	}
	return omemo.DeviceReport{}
}

// TestLegacyOwnBundle: the legacy bundle carries the same identity (in
// Curve25519 form), signed prekey and prekeys as the OMEMO 2 one, with a
// libsignal signature that verifies, and sign bit 0.
func TestLegacyOwnBundle(t *testing.T) {
	w := newWorld(t)
	a := w.newDualDevice("alice@example.org", nil)
	b, err := a.m.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	lb, err := a.m.LegacyBundle()
	if err != nil {
		t.Fatal(err)
	}
	if err := legacy.VerifyBundle(lb); err != nil {
		t.Fatal(err)
	}
	ik, err := legacy.Ed25519IdentityKey(lb.IdentityKey, lb.SignBit())
	if err != nil || !bytes.Equal(ik, a.m.IdentityKey()) || lb.SignBit() != 0 {
		t.Fatalf("legacy identity %x (bit %d), want %x", ik, lb.SignBit(), a.m.IdentityKey())
	}
	if lb.SignedPreKeyID != b.SignedPreKeyID || !bytes.Equal(lb.SignedPreKey, b.SignedPreKey) ||
		bytes.Equal(lb.SignedPreKeySignature, b.SignedPreKeySignature) || len(lb.PreKeys) != len(b.PreKeys) {
		t.Fatal("legacy bundle differs from the OMEMO 2 one")
	}
	for i := range b.PreKeys {
		if lb.PreKeys[i].ID != b.PreKeys[i].ID || !bytes.Equal(lb.PreKeys[i].Key, b.PreKeys[i].Key) {
			t.Fatalf("prekey %d differs", i)
		}
	}
	// The XML round trip keeps it (0x05-prefixed keys on the wire).
	x, err := xml.Marshal(lb)
	if err != nil {
		t.Fatal(err)
	}
	var back legacy.Bundle
	if err := xml.Unmarshal(x, &back); err != nil || !bytes.Equal(back.IdentityKey, lb.IdentityKey) {
		t.Fatalf("round trip: %v", err)
	}
	// A key exchange of either protocol consumes the prekey in both.
	bob := w.newLegacyDevice("bob@example.net", nil)
	msg, _ := bob.sendMsg(&omemo.Plaintext{Body: "hi", Only: omemo.ProtocolLegacy}, a.jid)
	got := a.mustRecvMsg(bob, msg, "hi")
	if !got.BundleChanged || !got.NewSession || got.SendEmpty != omemo.EmptyKeyExchange {
		t.Fatalf("%+v", got)
	}
	b2, _ := a.m.Bundle()
	lb2, _ := a.m.LegacyBundle()
	kex, _ := legacy.ParseKeyExchange(legacyKeyFor(msg, a).Data)
	if b2.PreKey(kex.PreKeyID) != nil || lb2.PreKey(kex.PreKeyID) != nil || len(b2.PreKeys) != len(lb2.PreKeys) {
		t.Fatal("used prekey still published")
	}
	// The own device lists.
	l, changed, err := a.m.AnnounceLegacyDevice(&legacy.DeviceList{Devices: []uint32{7}})
	if err != nil || !changed || !slices.Equal(l.Devices, []uint32{7, a.m.DeviceID()}) {
		t.Fatalf("announce: %v %v %v", l, changed, err)
	}
	if _, changed, _ := a.m.AnnounceLegacyDevice(l); changed {
		t.Fatal("announced twice")
	}
	if announce, err := a.m.SetLegacyDeviceList(a.jid, &legacy.DeviceList{Devices: []uint32{7}}); err != nil || !announce {
		t.Fatalf("own list without this device: %v %v", announce, err)
	}
}

// TestLegacyConversation: alice (both protocols, two devices) and bob (a
// legacy-only phone, a legacy-only laptop and an OMEMO 2 tablet) talk.
// Every message to bob carries both elements; each device reads its own;
// key exchanges stop once answered; ratchets turn both ways.
func TestLegacyConversation(t *testing.T) {
	w := newWorld(t)
	a := w.newDualDevice("alice@example.org", nil)
	a2 := w.newDualDevice("alice@example.org", nil)
	phone := w.newLegacyDevice("bob@example.net", nil)
	laptop := w.newLegacyDevice("bob@example.net", nil)
	tablet := w.newDualDevice("bob@example.net", nil)
	bobs := []*device{phone, laptop, tablet}

	msg, rep := a.sendBody("hello bob", phone.jid)
	if msg.OMEMO2 == nil || msg.Legacy == nil {
		t.Fatal("a message to a mix of devices needs both elements")
	}
	want := map[*device]omemo.Protocol{phone: omemo.ProtocolLegacy, laptop: omemo.ProtocolLegacy, tablet: omemo.ProtocolOMEMO2, a2: omemo.ProtocolOMEMO2}
	for d, p := range want {
		r := reportFor(rep, d)
		if !r.OK() || r.Protocol != p || !r.KEX || !r.NewSession {
			t.Fatalf("%v: report %+v", d, r)
		}
	}
	if len(rep.Devices) != 4 || len(msg.Legacy.Keys) != 2 || len(msg.OMEMO2.Keys) != 2 {
		t.Fatalf("report %+v", rep.Devices)
	}
	for _, d := range append(bobs, a2) {
		got := d.mustRecvMsg(a, msg, "hello bob")
		if got.Protocol != want[d] || !got.KeyExchange || !got.Listed || got.Trust != omemo.TrustUndecided {
			t.Fatalf("%v: %+v", d, got)
		}
		d.answerMsg(got, a)
	}
	// Answered: no more key exchanges.
	msg, rep = a.sendBody("second", phone.jid)
	for _, r := range rep.Devices {
		if r.KEX || !r.OK() {
			t.Fatalf("after the answers: %+v", r)
		}
	}
	for _, d := range append(bobs, a2) {
		d.mustRecvMsg(a, msg, "second")
	}
	// Conversation both ways; the legacy-only phone sends legacy only.
	for i := range 30 {
		from := bobs[i%3]
		text := fmt.Sprintf("turn %d ❤", i)
		var p *omemo.Plaintext
		if from == tablet {
			p = &omemo.Plaintext{Envelope: []byte("<envelope>" + text + "</envelope>"), Body: text}
		} else {
			p = &omemo.Plaintext{Body: text, Only: omemo.ProtocolLegacy}
		}
		msg, _ := from.sendMsg(p, a.jid)
		for _, d := range []*device{a, a2} {
			got := d.mustRecvMsg(from, msg, text)
			d.answerMsg(got, from)
		}
		for _, d := range bobs {
			if d == from {
				continue
			}
			if _, err := d.recvMsg(from, msg); err != nil && !errors.Is(err, omemo.ErrNotForThisDevice) {
				t.Fatalf("%v reading its own account's message: %v", d, err)
			}
		}
		msg, _ = a.sendBody(fmt.Sprintf("reply %d", i), phone.jid)
		for _, d := range append(bobs, a2) {
			d.mustRecvMsg(a, msg, fmt.Sprintf("reply %d", i))
		}
	}
	// What alice knows about bob's devices.
	infos, err := a.m.Devices(phone.jid)
	if err != nil || len(infos) != 3 {
		t.Fatalf("devices %+v %v", infos, err)
	}
	for _, in := range infos {
		d := map[uint32]*device{phone.m.DeviceID(): phone, laptop.m.DeviceID(): laptop, tablet.m.DeviceID(): tablet}[in.Device]
		if d == nil || in.Protocol != want[d] || !in.Listed || !in.Session || !bytes.Equal(in.IdentityKey, d.m.IdentityKey()) {
			t.Fatalf("device info %+v", in)
		}
	}
}

// TestLegacyOutOfOrderAndReplay: legacy messages delivered shuffled all
// decrypt once; every replay is ErrDuplicate and changes nothing.
func TestLegacyOutOfOrderAndReplay(t *testing.T) {
	w := newWorld(t)
	a := w.newDualDevice("alice@example.org", nil)
	b := w.newLegacyDevice("bob@example.net", nil)
	first, _ := a.sendBody("0", b.jid)
	got := b.mustRecvMsg(a, first, "0")
	b.answerMsg(got, a)
	var msgs []*omemo.Message
	want := map[*omemo.Message]string{}
	for i := range 60 {
		if i == 30 {
			// A turn of the ratchet in the middle.
			m, _ := b.sendMsg(&omemo.Plaintext{Body: "turn", Only: omemo.ProtocolLegacy}, a.jid)
			a.mustRecvMsg(b, m, "turn")
		}
		m, _ := a.sendBody(fmt.Sprint(i+1), b.jid)
		msgs = append(msgs, m)
		want[m] = fmt.Sprint(i + 1)
	}
	r := mrand.New(mrand.NewPCG(3, 4))
	r.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
	for _, m := range msgs {
		b.mustRecvMsg(a, m, want[m])
	}
	for _, m := range append(msgs, first) {
		unchanged(t, b, func() {
			_, err := b.m.DecryptLegacy(a.jid, m.Legacy)
			mustErr(t, err, omemo.ErrDuplicate)
		})
	}
}

// TestLegacyKeyExchangeRepeated: an unanswered initiator repeats its key
// exchange; out of order, the repeats decrypt with the session the first
// one built, and only the first consumes a prekey.
func TestLegacyKeyExchangeRepeated(t *testing.T) {
	w := newWorld(t)
	a := w.newDualDevice("alice@example.org", nil)
	b := w.newLegacyDevice("bob@example.net", nil)
	var msgs []*omemo.Message
	for i := range 3 {
		m, rep := a.sendBody(fmt.Sprint(i), b.jid)
		if k := legacyKeyFor(m, b); k == nil || !k.PreKey || rep.Devices[0].NewSession != (i == 0) {
			t.Fatalf("message %d: %+v", i, rep.Devices[0])
		}
		msgs = append(msgs, m)
	}
	got := b.mustRecvMsg(a, msgs[2], "2")
	if !got.NewSession || !got.BundleChanged {
		t.Fatalf("%+v", got)
	}
	for _, i := range []int{0, 1} {
		got := b.mustRecvMsg(a, msgs[i], fmt.Sprint(i))
		if got.NewSession || got.BundleChanged || !got.KeyExchange || got.SendEmpty != omemo.EmptyKeyExchange {
			t.Fatalf("repeat %d: %+v", i, got)
		}
	}
	b.answerMsg(got, a)
	m, _ := a.sendBody("plain", b.jid)
	if legacyKeyFor(m, b).PreKey {
		t.Fatal("key exchange after the answer")
	}
	b.mustRecvMsg(a, m, "plain")
}

// TestLegacySimultaneousInitiation: both sides initiate at once; each
// replaces its session with the other's and keeps its own as a previous
// state, so the conversation goes on.
func TestLegacySimultaneousInitiation(t *testing.T) {
	w := newWorld(t)
	a := w.newLegacyDevice("alice@example.org", nil)
	b := w.newLegacyDevice("bob@example.net", nil)
	only := func(s string) *omemo.Plaintext { return &omemo.Plaintext{Body: s, Only: omemo.ProtocolLegacy} }
	ma, _ := a.sendMsg(only("a"), b.jid)
	mb, _ := b.sendMsg(only("b"), a.jid)
	gb := b.mustRecvMsg(a, ma, "a")
	ga := a.mustRecvMsg(b, mb, "b")
	b.answerMsg(gb, a)
	a.answerMsg(ga, b)
	for i := range 8 {
		from, to := a, b
		if i%2 == 1 {
			from, to = b, a
		}
		m, _ := from.sendMsg(only(fmt.Sprint(i)), to.jid)
		to.mustRecvMsg(from, m, fmt.Sprint(i))
	}
}

// TestLegacyWithheld: a stanza with a reply and a body to a mix of devices
// carries both elements; the legacy device's report lists the reply as
// withheld; each side opens the stanza in its protocol. A reaction
// without a body reaches no legacy device, and a recipient with legacy
// devices only gets nothing (fail closed).
func TestLegacyWithheld(t *testing.T) {
	w := newWorld(t)
	a := w.newDualDevice("alice@example.org", nil)
	legacyBob := w.newLegacyDevice("bob@example.net", nil)
	bob2 := w.newDualDevice("bob@example.net", nil)
	a.sync(legacyBob.jid)
	reply := xml.Name{Space: "urn:xmpp:reply:0", Local: "reply"}
	st := &sce.Stanza{
		Name: xml.Name{Space: "jabber:client", Local: "message"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "to"}, Value: "bob@example.net"}, {Name: xml.Name{Local: "type"}, Value: "chat"}},
		Children: []sce.Element{
			sce.TextElement(reply, "", xml.Attr{Name: xml.Name{Local: "id"}, Value: "m1"}),
			sce.TextElement(xml.Name{Space: "jabber:client", Local: "body"}, "yes, I agree"),
		},
	}
	outer, rep, err := a.m.SealStanza(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	lr := reportFor(rep, legacyBob)
	if !lr.OK() || lr.Protocol != omemo.ProtocolLegacy || !slices.Equal(lr.Withheld, []xml.Name{reply}) {
		t.Fatalf("legacy report %+v", lr)
	}
	if r := reportFor(rep, bob2); !r.OK() || r.Protocol != omemo.ProtocolOMEMO2 || r.Withheld != nil {
		t.Fatalf("OMEMO 2 report %+v", r)
	}
	wire, err := outer.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	n2, nl, eme := 0, 0, 0
	for _, el := range outer.Children {
		switch el.Name {
		case xml.Name{Space: omemo.NS, Local: "encrypted"}:
			n2++
		case xml.Name{Space: legacy.NS, Local: "encrypted"}:
			nl++
		case xml.Name{Space: "urn:xmpp:eme:0", Local: "encryption"}:
			eme++
		case xml.Name{Space: "jabber:client", Local: "body"}, reply:
			t.Fatalf("plaintext %v in the outer stanza", el.Name)
		}
	}
	if n2 != 1 || nl != 1 || eme != 2 {
		t.Fatalf("outer stanza %s", wire)
	}
	for _, d := range []*device{legacyBob, bob2} {
		d.follow(a.jid)
		in, err := sce.ParseStanza(wire)
		if err != nil {
			t.Fatal(err)
		}
		in.Attr = append(in.Attr, xml.Attr{Name: xml.Name{Local: "from"}, Value: "alice@example.org/phone"})
		op, err := d.m.OpenStanza(in, nil)
		if errors.Is(err, omemo.ErrUnknownDevice) {
			if err := d.m.SetLegacyBundle(a.addr(), w.lbundles[a.addr().String()]); err != nil {
				t.Fatal(err)
			}
			op, err = d.m.OpenStanza(in, nil)
		}
		if err != nil {
			t.Fatalf("%v: open: %v", d, err)
		}
		if wantP := map[*device]omemo.Protocol{legacyBob: omemo.ProtocolLegacy, bob2: omemo.ProtocolOMEMO2}[d]; op.Protocol != wantP {
			t.Fatalf("%v: opened with %v", d, op.Protocol)
		}
		var names []xml.Name
		body := ""
		for _, el := range op.Stanza.Children {
			if el.Encrypted {
				names = append(names, el.Name)
			}
			if el.Name.Local == "body" {
				body = el.Text()
				if !el.Encrypted {
					t.Fatal("body not marked encrypted")
				}
			}
		}
		if body != "yes, I agree" {
			t.Fatalf("%v: body %q", d, body)
		}
		hasReply := slices.Contains(names, reply)
		if hasReply != (d == bob2) {
			t.Fatalf("%v: encrypted elements %v", d, names)
		}
	}

	// A reaction alone: the legacy device is left out with ReasonNoBody.
	reaction := &sce.Stanza{
		Name:     st.Name,
		Attr:     st.Attr,
		Children: []sce.Element{sce.TextElement(xml.Name{Space: "urn:xmpp:reactions:0", Local: "reactions"}, "")},
	}
	_, rep, err = a.m.SealStanza(reaction, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := reportFor(rep, legacyBob); r.OK() || r.Reason != omemo.ReasonNoBody || r.Protocol != omemo.ProtocolLegacy || len(r.Withheld) != 1 {
		t.Fatalf("reaction to a legacy device: %+v", r)
	}
	// carol has legacy devices only.
	carol := w.newLegacyDevice("carol@example.com", nil)
	a.sync(carol.jid)
	reaction.Attr = []xml.Attr{{Name: xml.Name{Local: "to"}, Value: "carol@example.com"}}
	_, rep, err = a.m.SealStanza(reaction, nil)
	var ne *omemo.NoEligibleDevicesError
	if !errors.As(err, &ne) || reportFor(rep, carol).Reason != omemo.ReasonNoBody {
		t.Fatalf("reaction to carol: %v", err)
	}
	// Encrypt (an envelope, no body) treats legacy devices alike.
	if _, _, err := a.m.Encrypt([]byte("<envelope/>"), carol.jid); !errors.As(err, &ne) {
		t.Fatalf("Encrypt to legacy devices: %v", err)
	}
}

// TestLegacyOnly: Plaintext.Only restricts a message to one protocol.
func TestLegacyOnly(t *testing.T) {
	w := newWorld(t)
	a := w.newDualDevice("alice@example.org", nil)
	b := w.newDualDevice("bob@example.net", nil)
	// NeedLegacyBundles follows the per-device choice, which is OMEMO 2
	// for bob; NeedAllLegacyBundles, for a message with Only, asks for
	// bob's legacy bundle too.
	a.sync(b.jid)
	if need, _, err := a.m.NeedLegacyBundles(b.jid); err != nil || len(need) != 0 {
		t.Fatalf("need %v %v", need, err)
	}
	if need, _, err := a.m.NeedAllLegacyBundles(b.jid); err != nil || len(need) != 1 || need[0].String() != b.addr().String() {
		t.Fatalf("need all %v %v, want %v", need, err, b.addr())
	}
	if err := a.m.SetLegacyBundle(b.addr(), w.lbundles[b.addr().String()]); err != nil {
		t.Fatal(err)
	}
	if need, _, err := a.m.NeedAllLegacyBundles(b.jid); err != nil || len(need) != 0 {
		t.Fatalf("need all after SetLegacyBundle %v %v", need, err)
	}
	msg, rep := a.sendMsg(&omemo.Plaintext{Body: "legacy please", Only: omemo.ProtocolLegacy}, b.jid)
	if msg.OMEMO2 != nil || msg.Legacy == nil || rep.Devices[0].Protocol != omemo.ProtocolLegacy {
		t.Fatalf("%+v", rep.Devices)
	}
	b.mustRecvMsg(a, msg, "legacy please")
	msg, _ = a.sendMsg(&omemo.Plaintext{Envelope: []byte("<envelope>x</envelope>"), Body: "x", Only: omemo.ProtocolOMEMO2}, b.jid)
	if msg.Legacy != nil || msg.OMEMO2 == nil {
		t.Fatal("OMEMO 2 only")
	}
	if _, _, err := a.m.EncryptMessage(&omemo.Plaintext{Only: omemo.ProtocolLegacy}, b.jid); err == nil {
		t.Fatal("legacy without a body")
	}
}

// rawLegacy is a legacy OMEMO device built from package legacy alone, the
// way another client would: it can send what hush never writes (16-byte
// IVs).
type rawLegacy struct {
	id uint32
	ik *xeddsa.PrivateKey
	s  *legacy.Session
}

func newRawLegacy(t *testing.T, peer *legacy.Bundle) *rawLegacy {
	t.Helper()
	ik, err := xeddsa.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	r := &rawLegacy{id: 4242, ik: ik}
	pk, err := legacy.ChoosePreKey(peer)
	if err != nil {
		t.Fatal(err)
	}
	if r.s, err = legacy.Initiate(ik, peer, pk); err != nil {
		t.Fatal(err)
	}
	return r
}

// bundle returns a legacy bundle for the raw device's identity, as hush
// would fetch it to learn the sign bit.
func (r *rawLegacy) bundle(t *testing.T) *legacy.Bundle {
	spk, _ := ecdh.X25519().GenerateKey(rand.Reader)
	sig, err := legacy.SignSignedPreKey(r.ik, spk.PublicKey().Bytes())
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := ecdh.X25519().GenerateKey(rand.Reader)
	return &legacy.Bundle{SignedPreKeyID: 1, SignedPreKey: spk.PublicKey().Bytes(), SignedPreKeySignature: sig,
		IdentityKey: r.ik.Curve25519Public(), PreKeys: []legacy.PreKey{{ID: 1, Key: pk.PublicKey().Bytes()}}}
}

// encrypt seals body with an IV of ivSize bytes, as old clients did.
func (r *rawLegacy) encrypt(t *testing.T, rid uint32, body string, ivSize int) *legacy.Encrypted {
	key := make([]byte, 16)
	iv := make([]byte, ivSize)
	rand.Read(key)
	rand.Read(iv)
	block, _ := aes.NewCipher(key)
	gcm, err := cipher.NewGCMWithNonceSize(block, ivSize)
	if err != nil {
		t.Fatal(err)
	}
	sealed := gcm.Seal(nil, iv, []byte(body), nil)
	n := len(sealed) - 16
	data, pre, err := r.s.Encrypt(append(key, sealed[n:]...))
	if err != nil {
		t.Fatal(err)
	}
	return &legacy.Encrypted{SID: r.id, Keys: []legacy.Key{{RID: rid, PreKey: pre, Data: data}}, IV: iv, Payload: sealed[:n]}
}

// stripPreKeyID removes field 1 (preKeyId) from a framed
// PreKeySignalMessage.
func stripPreKeyID(framed []byte) []byte {
	out := []byte{framed[0]}
	b := framed[1:]
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if num != 1 {
			out = append(out, b[:n+m]...)
		}
		b = b[n+m:]
	}
	return out
}

// TestLegacyBadInput: malformed and forged legacy messages get a typed
// error and leave the store as it was; a 16-byte IV from an old client is
// accepted; a key exchange from an unknown device asks for its bundle.
func TestLegacyBadInput(t *testing.T) {
	w := newWorld(t)
	b := w.newDualDevice("bob@example.net", nil)
	lb, err := b.m.LegacyBundle()
	if err != nil {
		t.Fatal(err)
	}
	alice := jid.MustParse("alice@example.org")
	raw := newRawLegacy(t, lb)
	first := raw.encrypt(t, b.m.DeviceID(), "from an old client", legacy.LegacyIVSize)

	corrupt := func(e *legacy.Encrypted, f func(*legacy.Encrypted)) *legacy.Encrypted {
		c := *e
		c.Keys = slices.Clone(e.Keys)
		c.Keys[0].Data = bytes.Clone(e.Keys[0].Data)
		c.IV = bytes.Clone(e.IV)
		c.Payload = bytes.Clone(e.Payload)
		f(&c)
		return &c
	}
	// Nothing is known about the sender: its bundle is needed for the
	// sign bit of its identity key.
	unchanged(t, b, func() {
		_, err := b.m.DecryptLegacy(alice, first)
		mustErr(t, err, omemo.ErrUnknownDevice)
	})
	sender := omemo.Address{JID: alice, Device: raw.id}
	if err := b.m.SetLegacyBundle(sender, raw.bundle(t)); err != nil {
		t.Fatal(err)
	}
	kexCases := []struct {
		name string
		f    func(*legacy.Encrypted)
		want error
	}{
		{"wrong version byte", func(e *legacy.Encrypted) { e.Keys[0].Data[0] = 0x32 }, omemo.ErrDecryption},
		{"inner version byte", func(e *legacy.Encrypted) {
			kex, _ := legacy.ParseKeyExchange(e.Keys[0].Data)
			i := bytes.Index(e.Keys[0].Data, kex.SignalMessage())
			e.Keys[0].Data[i] = 0x34
		}, omemo.ErrDecryption},
		{"short MAC", func(e *legacy.Encrypted) { e.Keys[0].Data = e.Keys[0].Data[:len(e.Keys[0].Data)-1] }, omemo.ErrDecryption},
		{"bad MAC", func(e *legacy.Encrypted) { e.Keys[0].Data[len(e.Keys[0].Data)-1] ^= 1 }, omemo.ErrDecryption},
		{"no prekey id", func(e *legacy.Encrypted) { e.Keys[0].Data = stripPreKeyID(e.Keys[0].Data) }, omemo.ErrDecryption},
		{"GCM tag", func(e *legacy.Encrypted) { e.Payload[0] ^= 1 }, omemo.ErrDecryption},
		{"12-byte IV for a 16-byte one", func(e *legacy.Encrypted) { e.IV = e.IV[:12] }, omemo.ErrDecryption},
		{"truncated", func(e *legacy.Encrypted) { e.Keys[0].Data = e.Keys[0].Data[:10] }, omemo.ErrDecryption},
		{"not a key exchange", func(e *legacy.Encrypted) { e.Keys[0].PreKey = false }, omemo.ErrNoSession},
		{"other device", func(e *legacy.Encrypted) { e.Keys[0].RID++ }, omemo.ErrNotForThisDevice},
		{"own device id", func(e *legacy.Encrypted) { e.SID = b.m.DeviceID() }, omemo.ErrUnknownDevice},
	}
	for _, tc := range kexCases {
		t.Run(tc.name, func(t *testing.T) {
			unchanged(t, b, func() {
				_, err := b.m.DecryptLegacy(alice, corrupt(first, tc.f))
				mustErr(t, err, tc.want)
			})
		})
	}
	// The real one decrypts, 16-byte IV and all.
	got, err := b.m.DecryptLegacy(alice, first)
	if err != nil || string(got.Body) != "from an old client" || !got.NewSession || !bytes.Equal(got.IdentityKey, raw.ik.Ed25519Public()) {
		t.Fatalf("%+v %v", got, err)
	}
	// Answer it, so that the raw device sends plain SignalMessages.
	ans, err := b.m.EncryptEmptyLegacy(sender)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.s.Decrypt(ans.Keys[0].Data); err != nil {
		t.Fatal(err)
	}
	plain := raw.encrypt(t, b.m.DeviceID(), "plain", legacy.IVSize)
	for _, tc := range []struct {
		name string
		f    func(*legacy.Encrypted)
		want error
	}{
		{"wrong version byte", func(e *legacy.Encrypted) { e.Keys[0].Data[0] = 0x23 }, omemo.ErrDecryption},
		{"short MAC", func(e *legacy.Encrypted) { e.Keys[0].Data = e.Keys[0].Data[:len(e.Keys[0].Data)-7] }, omemo.ErrDecryption},
		{"bad MAC", func(e *legacy.Encrypted) { e.Keys[0].Data[len(e.Keys[0].Data)-3] ^= 0x80 }, omemo.ErrDecryption},
		{"GCM tag", func(e *legacy.Encrypted) { e.Payload[len(e.Payload)-1] ^= 1 }, omemo.ErrDecryption},
		{"16-byte IV for a 12-byte one", func(e *legacy.Encrypted) { e.IV = append(e.IV, 0, 0, 0, 0) }, omemo.ErrDecryption},
		{"marked a key exchange", func(e *legacy.Encrypted) { e.Keys[0].PreKey = true }, omemo.ErrDecryption},
		{"another sender", func(e *legacy.Encrypted) { e.SID++ }, omemo.ErrNoSession},
	} {
		t.Run("plain/"+tc.name, func(t *testing.T) {
			unchanged(t, b, func() {
				_, err := b.m.DecryptLegacy(alice, corrupt(plain, tc.f))
				mustErr(t, err, tc.want)
			})
		})
	}
	if got, err := b.m.DecryptLegacy(alice, plain); err != nil || string(got.Body) != "plain" || got.KeyExchange {
		t.Fatalf("%+v %v", got, err)
	}
	// A second <key> with our rid (another account's device with the same
	// id) that does not decrypt does not hide ours.
	two := raw.encrypt(t, b.m.DeviceID(), "two keys", legacy.IVSize)
	two.Keys = append([]legacy.Key{{RID: b.m.DeviceID(), Data: bytes.Repeat([]byte{0x33}, 60)}}, two.Keys...)
	if got, err := b.m.DecryptLegacy(alice, two); err != nil || string(got.Body) != "two keys" {
		t.Fatalf("%+v %v", got, err)
	}
	// Invalid XML text in a body: OpenStanza refuses it and commits
	// nothing.
	bad := raw.encrypt(t, b.m.DeviceID(), "nul \x00", legacy.IVSize)
	x, _ := xml.Marshal(bad)
	st, err := sce.ParseStanza([]byte(`<message xmlns="jabber:client" from="alice@example.org/x" to="bob@example.net">` + string(x) + `</message>`))
	if err != nil {
		t.Fatal(err)
	}
	unchanged(t, b, func() {
		_, err := b.m.OpenStanza(st, nil)
		mustErr(t, err, omemo.ErrInvalidBody)
	})
}

// TestLegacyIdentityMismatch: a key exchange that authenticates under an
// identity key other than the one of the device's cached bundle is
// ErrIdentityMismatch and changes nothing; so is such a bundle for a
// device with a session.
func TestLegacyIdentityMismatch(t *testing.T) {
	w := newWorld(t)
	b := w.newDualDevice("bob@example.net", nil)
	lb, _ := b.m.LegacyBundle()
	alice := jid.MustParse("alice@example.org")
	raw := newRawLegacy(t, lb)
	other := newRawLegacy(t, lb)
	sender := omemo.Address{JID: alice, Device: raw.id}
	if err := b.m.SetLegacyBundle(sender, other.bundle(t)); err != nil {
		t.Fatal(err)
	}
	e := raw.encrypt(t, b.m.DeviceID(), "who am I", legacy.IVSize)
	unchanged(t, b, func() {
		_, err := b.m.DecryptLegacy(alice, e)
		mustErr(t, err, omemo.ErrIdentityMismatch)
	})
	if err := b.m.ForgetDevice(sender); err != nil {
		t.Fatal(err)
	}
	// Trusting one form of the key tells the sign bit too.
	if err := b.m.SetTrust(alice, raw.ik.Ed25519Public(), omemo.TrustVerified); err != nil {
		t.Fatal(err)
	}
	got, err := b.m.DecryptLegacy(alice, e)
	if err != nil || got.Trust != omemo.TrustVerified {
		t.Fatalf("%+v %v", got, err)
	}
	unchanged(t, b, func() {
		if err := b.m.SetLegacyBundle(sender, other.bundle(t)); !errors.Is(err, omemo.ErrIdentityMismatch) {
			t.Fatalf("bundle with another key: %v", err)
		}
	})
}

// TestLegacyHeartbeat: a long one-way legacy conversation makes the
// receiver ask for a heartbeat once per sender chain.
func TestLegacyHeartbeat(t *testing.T) {
	w := newWorld(t)
	a := w.newDualDevice("alice@example.org", nil)
	b := w.newLegacyDevice("bob@example.net", nil)
	m, _ := a.sendBody("x", b.jid)
	b.answerMsg(b.mustRecvMsg(a, m, "x"), a)
	beats := 0
	for i := range 120 {
		m, _ := a.sendBody(fmt.Sprint(i), b.jid)
		got := b.mustRecvMsg(a, m, fmt.Sprint(i))
		if got.SendEmpty == omemo.EmptyHeartbeat {
			beats++
			b.answerMsg(got, a)
		}
	}
	if beats != 2 {
		t.Fatalf("%d heartbeats in 120 messages, want 2", beats)
	}
}

// TestLegacyCatchUp: during catch-up the answer to a legacy key exchange
// is queued as a legacy one and the used prekey is kept hidden.
func TestLegacyCatchUp(t *testing.T) {
	w := newWorld(t)
	a := w.newDualDevice("alice@example.org", nil)
	b := w.newLegacyDevice("bob@example.net", nil)
	c := w.newDualDevice("carol@example.com", nil)
	a.m.BeginCatchUp()
	mb, _ := b.sendMsg(&omemo.Plaintext{Body: "b", Only: omemo.ProtocolLegacy}, a.jid)
	mc, _ := c.sendBody("c", a.jid)
	for _, x := range []struct {
		from *device
		m    *omemo.Message
		text string
	}{{b, mb, "b"}, {c, mc, "c"}} {
		if got := a.mustRecvMsg(x.from, x.m, x.text); got.SendEmpty != omemo.EmptyNone {
			t.Fatalf("answer not deferred: %+v", got)
		}
	}
	pending, legacyPending, err := a.m.EndCatchUp()
	if err != nil || len(pending) != 1 || !pending[0].Equal(c.addr()) || len(legacyPending) != 1 || !legacyPending[0].Equal(b.addr()) {
		t.Fatalf("pending %v %v %v", pending, legacyPending, err)
	}
	got := &omemo.Decrypted{Sender: b.addr(), Protocol: omemo.ProtocolLegacy, SendEmpty: omemo.EmptyKeyExchange}
	a.answerMsg(got, b)
}

// TestLegacySessionReset: ResetSession and ForgetDevice cover both
// protocols.
func TestLegacySessionReset(t *testing.T) {
	w := newWorld(t)
	a := w.newDualDevice("alice@example.org", nil)
	b := w.newLegacyDevice("bob@example.net", nil)
	m, _ := a.sendBody("x", b.jid)
	b.mustRecvMsg(a, m, "x")
	if err := b.m.ResetSession(a.addr()); err != nil {
		t.Fatal(err)
	}
	mustErr(t, b.m.ResetSession(a.addr()), omemo.ErrNotFound)
	m, _ = a.sendBody("y", b.jid) // still a key exchange: unanswered
	if _, err := b.recvMsg(a, m); !errors.Is(err, omemo.ErrDecryption) {
		t.Fatalf("key exchange whose prekey is gone: %v", err)
	}
	infos, _ := b.m.Devices(a.jid)
	if len(infos) != 1 || infos[0].Session || infos[0].Protocol != omemo.ProtocolLegacy || !infos[0].Listed {
		t.Fatalf("%+v", infos)
	}
}

// TestLegacyUpgrade: a store written before legacy OMEMO (signed prekey
// records of version 1, without the legacy signature) gets the legacy
// signature when New opens it, and then publishes a valid legacy bundle.
func TestLegacyUpgrade(t *testing.T) {
	st := memstore.NewSerializing()
	j := jid.MustParse("alice@example.org")
	if _, err := omemo.New(j, st, nil); err != nil {
		t.Fatal(err)
	}
	err := st.Update(func(tx omemo.Tx) error {
		spks, err := tx.SignedPreKeys()
		if err != nil {
			return err
		}
		for _, s := range spks {
			b, err := s.MarshalBinary()
			if err != nil {
				return err
			}
			_, n := binary.Uvarint(b[1:])
			cut := 1 + n + 33 + 33 + 65 // version, id, private, public, OMEMO 2 signature
			v1 := append(append([]byte{1}, b[1:cut]...), b[cut+65:]...)
			var old omemo.SignedPreKeyRecord
			if err := old.UnmarshalBinary(v1); err != nil {
				return err
			}
			if old.LegacySignature() != nil {
				return errors.New("version 1 record with a legacy signature")
			}
			if err := tx.PutSignedPreKey(&old); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := omemo.New(j, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := m.LegacyBundle()
	if err != nil {
		t.Fatal(err)
	}
	if err := legacy.VerifyBundle(lb); err != nil {
		t.Fatal(err)
	}
}

// FuzzDecryptLegacy feeds mutated legacy <encrypted/> elements to a device
// with a legacy session and a known sender: nothing may panic, and every
// failure leaves the store exactly as it was. Seeds: a key exchange, a
// message, a key transport element.
func FuzzDecryptLegacy(f *testing.F) {
	w := newWorld(f)
	a := w.newDualDevice("alice@example.org", nil)
	b := w.newLegacyDevice("bob@example.net", nil)
	kex, _ := a.sendBody("first", b.jid)
	got := b.mustRecvMsg(a, kex, "first")
	seeds := [][]byte{mustXML(f, kex.Legacy)}
	b.answerMsg(got, a)
	msg, _ := a.sendBody("second", b.jid)
	seeds = append(seeds, mustXML(f, msg.Legacy))
	empty, err := a.m.EncryptEmptyLegacy(b.addr())
	if err != nil {
		f.Fatal(err)
	}
	seeds = append(seeds, mustXML(f, empty))
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, x []byte) {
		var e legacy.Encrypted
		if err := xml.Unmarshal(x, &e); err != nil {
			return
		}
		before := b.st.Snapshot()
		if _, err := b.m.DecryptLegacy(a.jid, &e); err != nil {
			if after := b.st.Snapshot(); !reflect.DeepEqual(before, after) {
				t.Fatalf("failed decryption (%v) changed the store", err)
			}
		}
	})
}

func mustXML(t testing.TB, v any) []byte {
	t.Helper()
	x, err := xml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return x
}
