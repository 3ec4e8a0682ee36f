package omemo_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"hush.im/internal/wire"
	"hush.im/omemo"
	"hush.im/omemo/memstore"
	"mellium.im/xmpp/jid"
)

func TestNewIdentity(t *testing.T) {
	st := memstore.New()
	own := jid.MustParse("alice@example.org/phone")
	m, err := omemo.New(own, st, &omemo.Options{Label: "phone"})
	if err != nil {
		t.Fatal(err)
	}
	if !m.JID().Equal(jid.MustParse("alice@example.org")) {
		t.Fatalf("JID %v not bare", m.JID())
	}
	if !omemo.ValidDeviceID(m.DeviceID()) {
		t.Fatalf("device id %d", m.DeviceID())
	}
	if ik := m.IdentityKey(); len(ik) != 32 || ik[31]&0x80 != 0 {
		t.Fatalf("identity key %x: sign bit must be 0", ik)
	}
	b, err := m.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	if len(b.PreKeys) != omemo.DefaultPreKeys || !bytes.Equal(b.IdentityKey, m.IdentityKey()) || b.SignedPreKeyID != 1 {
		t.Fatalf("bundle: %d prekeys, spk id %d", len(b.PreKeys), b.SignedPreKeyID)
	}
	for i, pk := range b.PreKeys {
		if pk.ID != uint32(i+1) {
			t.Fatalf("prekey ids: %d at %d", pk.ID, i)
		}
	}
	// Loading again gives the same identity.
	m2, err := omemo.New(own, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m2.DeviceID() != m.DeviceID() || !bytes.Equal(m2.IdentityKey(), m.IdentityKey()) {
		t.Fatal("identity not persistent")
	}
	l, changed, err := m.AnnounceDevice(nil)
	if err != nil || !changed || len(l.Devices) != 1 || l.Devices[0].Label != "phone" {
		t.Fatalf("announce: %+v %v %v", l, changed, err)
	}
	if !omemo.VerifyLabel(m.IdentityKey(), l.Devices[0]) {
		t.Fatal("labelsig does not verify")
	}
	if omemo.VerifyLabel(m.IdentityKey(), omemo.Device{ID: 1, Label: "phon", LabelSig: l.Devices[0].LabelSig}) {
		t.Fatal("labelsig verifies another label")
	}
	if _, changed, _ := m.AnnounceDevice(l); changed {
		t.Fatal("announce of an up-to-date list reports a change")
	}
	if err := m.SetLabel("laptop"); err != nil {
		t.Fatal(err)
	}
	l2, changed, _ := m.AnnounceDevice(l)
	if !changed || l2.Devices[0].Label != "laptop" || !omemo.VerifyLabel(m.IdentityKey(), l2.Devices[0]) {
		t.Fatalf("relabel: %+v", l2)
	}
	if err := m.SetLabel(string(bytes.Repeat([]byte("x"), omemo.MaxOwnLabelRunes+1))); err == nil {
		t.Fatal("overlong label accepted")
	}
	fp, err := omemo.Fingerprint(m.IdentityKey())
	if err != nil || len(fp) != 64+7 {
		t.Fatalf("fingerprint %q %v", fp, err)
	}
}

func TestDeviceIDAvoidsOwnList(t *testing.T) {
	// With every id but one taken… is impractical; check that a stored own
	// list is consulted by making New see it and verifying the id is not
	// on it.
	st := memstore.New()
	own := jid.MustParse("alice@example.org")
	l := &omemo.DeviceList{}
	for i := uint32(1); i <= omemo.MaxDevices; i++ {
		l.Devices = append(l.Devices, omemo.Device{ID: i})
	}
	if err := st.Update(func(tx omemo.Tx) error { return tx.PutDeviceList(own, l) }); err != nil {
		t.Fatal(err)
	}
	m, err := omemo.New(own, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Contains(m.DeviceID()) {
		t.Fatal("device id already on the own list")
	}
	if announce, _ := m.SetDeviceList(own, l); !announce {
		t.Fatal("missing own device not reported")
	}
}

func TestPreKeyConsumedAndReplaced(t *testing.T) {
	w, a, b := pair(t)
	before, _ := b.m.Bundle()
	e := mustSend(a, "x", b.jid)
	got := b.mustRecv(a, e, "x")
	if !got.BundleChanged {
		t.Fatal("bundle not changed")
	}
	after, _ := b.m.Bundle()
	if len(after.PreKeys) != omemo.DefaultPreKeys {
		t.Fatalf("%d prekeys after refill", len(after.PreKeys))
	}
	var maxBefore uint32
	for _, pk := range before.PreKeys {
		maxBefore = max(maxBefore, pk.ID)
	}
	// Exactly one prekey was replaced, by one with a new, higher id.
	missing := 0
	for _, pk := range before.PreKeys {
		if after.PreKey(pk.ID) == nil {
			missing++
		}
	}
	if missing != 1 || after.PreKeys[len(after.PreKeys)-1].ID != maxBefore+1 {
		t.Fatalf("missing %d, last id %d", missing, after.PreKeys[len(after.PreKeys)-1].ID)
	}
	// The sender never picks the same prekey of bob's cached bundle again.
	c := w.newDevice("carol@example.com", nil)
	c.sync(b.jid)
	for range 3 {
		if err := c.m.ResetSession(b.addr()); err != nil && !errors.Is(err, omemo.ErrNotFound) {
			t.Fatal(err)
		}
		e, rep, err := c.m.Encrypt([]byte("y"), b.jid)
		if err != nil || !rep.Devices[0].NewSession {
			t.Fatalf("%v %+v", err, rep)
		}
		got := b.mustRecv(c, e, "y")
		if !got.NewSession {
			t.Fatal("no new session")
		}
	}
}

// TestConverseBundle: a bundle whose only prekey has id 0 is never used.
func TestConverseBundle(t *testing.T) {
	_, a, b := pair(t)
	bb, _ := b.m.Bundle()
	bb.PreKeys = []omemo.PreKey{{ID: 0, Key: bb.PreKeys[0].Key}}
	a.sync(b.jid)
	if err := a.m.SetBundle(b.addr(), bb); err != nil {
		t.Fatal(err)
	}
	unchanged(t, a, func() {
		_, rep, err := a.m.Encrypt([]byte("x"), b.jid)
		var ne *omemo.NoEligibleDevicesError
		if !errors.As(err, &ne) || rep.Devices[0].Reason != omemo.ReasonInvalidBundle {
			t.Fatalf("%v %+v", err, rep)
		}
	})
}

func TestReportReasons(t *testing.T) {
	w := newWorld(t)
	a := w.newDevice("alice@example.org", &omemo.Options{})
	b1 := w.newDevice("bob@example.net", nil)
	b2 := w.newDevice("bob@example.net", nil)
	b3 := w.newDevice("bob@example.net", nil)
	c := jid.MustParse("carol@example.com")

	// b3 never published a bundle.
	delete(w.bundles, b3.addr().String())
	// Default ManualTrust: nobody is trusted.
	a.sync(b1.jid)
	unchanged(t, a, func() {
		_, rep, err := a.m.Encrypt([]byte("x"), b1.jid)
		var ne *omemo.NoEligibleDevicesError
		if !errors.As(err, &ne) || len(ne.JIDs) != 1 || !ne.JIDs[0].Equal(b1.jid) {
			t.Fatalf("error %v", err)
		}
		for _, d := range rep.Devices {
			if d.Reason != omemo.ReasonUntrusted && !(d.DeviceID == b3.m.DeviceID() && d.Reason == omemo.ReasonNoBundle) {
				t.Fatalf("%+v", d)
			}
		}
	})
	for _, d := range []*device{b1, b2, b3} {
		if err := a.m.SetTrust(d.jid, d.m.IdentityKey(), omemo.TrustTrusted); err != nil {
			t.Fatal(err)
		}
	}
	// b2's bundle is invalid (signature), b3's is missing.
	bad := *w.bundles[b2.addr().String()]
	bad.SignedPreKeySignature = bytes.Clone(bad.SignedPreKeySignature)
	bad.SignedPreKeySignature[0] ^= 1
	if err := a.m.SetBundle(b2.addr(), &bad); err != nil {
		t.Fatal(err)
	}
	a.sync(b1.jid)
	e, rep, err := a.m.Encrypt([]byte("x"), b1.jid)
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint32]omemo.Reason{
		b1.m.DeviceID(): omemo.ReasonNone,
		b2.m.DeviceID(): omemo.ReasonInvalidBundle,
		b3.m.DeviceID(): omemo.ReasonNoBundle,
	}
	if len(rep.Devices) != 3 {
		t.Fatalf("%+v", rep)
	}
	for _, d := range rep.Devices {
		if d.Reason != want[d.DeviceID] {
			t.Fatalf("device %d: %v, want %v", d.DeviceID, d.Reason, want[d.DeviceID])
		}
	}
	if rep.Devices[1].Err == nil {
		t.Fatal("invalid bundle without detail")
	}
	if len(e.Keys) != 1 || len(e.Keys[0].Keys) != 1 {
		t.Fatalf("keys: %+v", e.Keys)
	}

	// b1 leaves the device list: inactive; carol has no device list.
	l := &omemo.DeviceList{}
	for _, d := range w.lists[b1.jid.String()].Devices {
		if d.ID != b1.m.DeviceID() {
			l.Devices = append(l.Devices, d)
		}
	}
	w.lists[b1.jid.String()] = l
	a.sync(b1.jid)
	_, rep, err = a.m.Encrypt([]byte("x"), b1.jid, c)
	var ne *omemo.NoEligibleDevicesError
	if !errors.As(err, &ne) || len(ne.JIDs) != 2 {
		t.Fatalf("error %v", err)
	}
	reasons := map[omemo.Reason]int{}
	for _, d := range rep.Devices {
		reasons[d.Reason]++
	}
	if reasons[omemo.ReasonInactive] != 1 || reasons[omemo.ReasonNoDeviceList] != 1 {
		t.Fatalf("reasons %v", reasons)
	}

	// Explicit distrust wins over BlindTrust.
	d := w.newDevice("dave@example.com", nil)
	d.sync(a.jid)
	if err := d.m.SetTrust(a.jid, a.m.IdentityKey(), omemo.TrustDistrusted); err != nil {
		t.Fatal(err)
	}
	_, rep, err = d.m.Encrypt([]byte("x"), a.jid)
	if err == nil || rep.Devices[0].Reason != omemo.ReasonUntrusted {
		t.Fatalf("%v %+v", err, rep)
	}
	infos, err := d.m.Devices(a.jid)
	if err != nil || len(infos) != 1 || infos[0].Trust != omemo.TrustDistrusted || !infos[0].Listed {
		t.Fatalf("%v %+v", err, infos)
	}
}

func TestIdentityMismatch(t *testing.T) {
	w, a, b := pair(t)
	b.mustRecv(a, mustSend(a, "x", b.jid), "x")
	// Someone publishes a bundle with another identity under bob's id.
	evil := w.newDevice("eve@example.com", nil)
	eb, _ := evil.m.Bundle()
	unchanged(t, a, func() {
		mustErr(t, a.m.SetBundle(b.addr(), eb), omemo.ErrIdentityMismatch)
	})
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestSignedPreKeyRotation(t *testing.T) {
	w := newWorld(t)
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	a := w.newDevice("alice@example.org", nil)
	b := w.newDevice("bob@example.net", &omemo.Options{Trust: omemo.BlindTrust{}, Now: clk.now})
	oldBundle, _ := b.m.Bundle()
	a.sync(b.jid)
	late := mustSend(a, "late", b.jid) // uses spk 1

	if changed, err := b.m.Refresh(); err != nil || changed {
		t.Fatalf("refresh before rotation: %v %v", changed, err)
	}
	clk.t = clk.t.Add(omemo.DefaultSignedPreKeyRotation)
	if changed, err := b.m.Refresh(); err != nil || !changed {
		t.Fatalf("rotation: %v %v", changed, err)
	}
	nb, _ := b.m.Bundle()
	if nb.SignedPreKeyID != 2 || bytes.Equal(nb.SignedPreKey, oldBundle.SignedPreKey) {
		t.Fatalf("spk id %d after rotation", nb.SignedPreKeyID)
	}
	// Within the grace period the old signed prekey still works.
	clk.t = clk.t.Add(omemo.DefaultSignedPreKeyRotation - time.Second)
	b.m.Refresh()
	b.mustRecv(a, late, "late")

	// A second late key exchange after the grace period fails.
	c := w.newDevice("carol@example.com", nil)
	if err := c.m.SetBundle(b.addr(), oldBundle); err != nil {
		t.Fatal(err)
	}
	c.sync(b.jid)
	tooLate, _, err := c.m.Encrypt([]byte("too late"), b.jid)
	if err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(2 * time.Second)
	if _, err := b.m.Refresh(); err != nil {
		t.Fatal(err)
	}
	unchanged(t, b, func() {
		_, err := b.m.Decrypt(c.jid, tooLate)
		mustErr(t, err, omemo.ErrDecryption)
	})
}

func TestCatchUp(t *testing.T) {
	w := newWorld(t)
	a := w.newDevice("alice@example.org", nil)
	c := w.newDevice("carol@example.com", nil)
	b := w.newDevice("bob@example.net", nil)
	// Both initiators pick the same prekey: bob's bundle offers only one.
	bb := *w.bundles[b.addr().String()]
	bb.PreKeys = bb.PreKeys[:1]
	for _, d := range []*device{a, c} {
		d.sync(b.jid)
		if err := d.m.SetBundle(b.addr(), &bb); err != nil {
			t.Fatal(err)
		}
	}
	ea := mustSend(a, "from alice", b.jid)
	ec := mustSend(c, "from carol", b.jid)
	ea2 := mustSend(a, "alice again", b.jid)

	b.m.BeginCatchUp()
	for _, tc := range []struct {
		from *device
		e    *omemo.Encrypted
		body string
	}{{a, ea, "from alice"}, {c, ec, "from carol"}, {a, ea2, "alice again"}} {
		got := tc.from
		d := b.mustRecv(got, tc.e, tc.body)
		if d.SendEmpty != omemo.EmptyNone {
			t.Fatal("empty message asked for during catch-up")
		}
	}
	// A replay of alice's key exchange after her session was replaced
	// can not build it again.
	if err := b.m.ResetSession(a.addr()); err != nil {
		t.Fatal(err)
	}
	fresh := corrupt(ea, b, func(*omemo.Key) {})
	unchanged(t, b, func() {
		_, err := b.m.Decrypt(a.jid, fresh)
		if !errors.Is(err, omemo.ErrDuplicate) && !errors.Is(err, omemo.ErrDecryption) {
			t.Fatalf("replayed key exchange: %v", err)
		}
	})
	pending, legacyPending, err := b.m.EndCatchUp()
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 2 || len(legacyPending) != 0 {
		t.Fatalf("pending %v", pending)
	}
	// The shared prekey is gone now: a third initiator using it fails.
	d := w.newDevice("dave@example.com", nil)
	d.sync(b.jid)
	if err := d.m.SetBundle(b.addr(), &bb); err != nil {
		t.Fatal(err)
	}
	ed := mustSend(d, "from dave", b.jid)
	unchanged(t, b, func() {
		_, err := b.m.Decrypt(d.jid, ed)
		mustErr(t, err, omemo.ErrDecryption)
	})
	if p, lp, _ := b.m.EndCatchUp(); len(p)+len(lp) != 0 {
		t.Fatalf("pending not cleared: %v", p)
	}
}

// TestPreKeyReuseOutsideCatchUp: without catch-up a prekey is deleted at
// once and the second initiator loses (XEP-0384 §6 race).
func TestPreKeyReuseOutsideCatchUp(t *testing.T) {
	w := newWorld(t)
	a := w.newDevice("alice@example.org", nil)
	c := w.newDevice("carol@example.com", nil)
	b := w.newDevice("bob@example.net", nil)
	bb := *w.bundles[b.addr().String()]
	bb.PreKeys = bb.PreKeys[:1]
	for _, d := range []*device{a, c} {
		d.sync(b.jid)
		if err := d.m.SetBundle(b.addr(), &bb); err != nil {
			t.Fatal(err)
		}
	}
	ea := mustSend(a, "from alice", b.jid)
	ec := mustSend(c, "from carol", b.jid)
	b.mustRecv(a, ea, "from alice")
	unchanged(t, b, func() {
		_, err := b.m.Decrypt(c.jid, ec)
		mustErr(t, err, omemo.ErrDecryption)
	})
}

func TestForgetDevice(t *testing.T) {
	w, a, b := pair(t)
	b.mustRecv(a, mustSend(a, "x", b.jid), "x")
	evil := w.newDevice("eve@example.com", nil)
	eb, _ := evil.m.Bundle()
	mustErr(t, a.m.SetBundle(b.addr(), eb), omemo.ErrIdentityMismatch)
	if err := a.m.ForgetDevice(b.addr()); err != nil {
		t.Fatal(err)
	}
	if err := a.m.SetBundle(b.addr(), eb); err != nil {
		t.Fatal(err)
	}
	infos, err := a.m.Devices(b.jid)
	if err != nil || len(infos) != 1 || infos[0].Session || !bytes.Equal(infos[0].IdentityKey, evil.m.IdentityKey()) {
		t.Fatalf("%v %+v", err, infos)
	}
}

// TestKEXIdentityMismatch: a real key exchange from another identity under
// a known device's address is refused with ErrIdentityMismatch; a forged
// one is a plain decryption failure.
func TestKEXIdentityMismatch(t *testing.T) {
	w, a, b := pair(t)
	b.mustRecv(a, mustSend(a, "x", b.jid), "x")
	evil := w.newDevice("alice@example.org", nil)
	e := mustSend(evil, "evil", b.jid)
	e.SID = a.m.DeviceID() // evil claims to be alice's known device
	unchanged(t, b, func() {
		_, err := b.m.Decrypt(a.jid, e)
		mustErr(t, err, omemo.ErrIdentityMismatch)
	})
	forged := corrupt(e, b, editKEX(func(x *wire.OMEMOKeyExchange) { x.Message.MAC[0] ^= 1 }))
	unchanged(t, b, func() {
		_, err := b.m.Decrypt(a.jid, forged)
		mustErr(t, err, omemo.ErrDecryption)
	})
}

// TestDevicesLastMessage: Devices says when a message from each device
// was last decrypted (legacy OMEMO too), nothing before the first.
func TestDevicesLastMessage(t *testing.T) {
	w := newWorld(t)
	clock := time.Unix(1800000000, 0)
	opts := func() *omemo.Options {
		return &omemo.Options{Trust: omemo.BlindTrust{}, Now: func() time.Time { return clock }}
	}
	a := w.newDualDevice("alice@example.org", opts())
	b := w.newDualDevice("bob@example.net", opts())
	phone := w.newLegacyDevice("bob@example.net", opts())
	a.sync(b.jid)
	infos, err := a.m.Devices(b.jid)
	if err != nil || len(infos) != 2 || !infos[0].LastMessage.IsZero() || !infos[1].LastMessage.IsZero() {
		t.Fatalf("before any message: %+v %v", infos, err)
	}
	a.mustRecv(b, mustSend(b, "from the laptop", a.jid), "from the laptop")
	clock = clock.Add(90 * time.Second)
	phone.sync(a.jid)
	msg, _ := phone.sendMsg(&omemo.Plaintext{Body: "from the phone", Only: omemo.ProtocolLegacy}, a.jid)
	a.mustRecvMsg(phone, msg, "from the phone")
	infos, err = a.m.Devices(b.jid)
	if err != nil || len(infos) != 2 {
		t.Fatalf("%+v %v", infos, err)
	}
	for _, info := range infos {
		want := time.Unix(1800000000, 0)
		if info.Device == phone.addr().Device {
			want = want.Add(90 * time.Second)
		}
		if !info.LastMessage.Equal(want) {
			t.Errorf("device %d: last message %v, want %v", info.Device, info.LastMessage, want)
		}
	}
}

// TestAuthenticated: verifying a key marks the JID authenticated for good;
// distrusting that key later does not undo it; other JIDs are not marked.
func TestAuthenticated(t *testing.T) {
	_, a, b := pair(t)
	a.sync(b.jid)
	if ok, err := a.m.Authenticated(b.jid); ok || err != nil {
		t.Fatalf("before any verification: %v %v", ok, err)
	}
	if err := a.m.SetTrust(b.jid, b.m.IdentityKey(), omemo.TrustDistrusted); err != nil {
		t.Fatal(err)
	}
	if ok, _ := a.m.Authenticated(b.jid); ok {
		t.Fatal("a distrust alone authenticated the JID")
	}
	for _, l := range []omemo.TrustLevel{omemo.TrustVerified, omemo.TrustDistrusted, omemo.TrustUndecided} {
		if err := a.m.SetTrust(b.jid, b.m.IdentityKey(), l); err != nil {
			t.Fatal(err)
		}
		if ok, err := a.m.Authenticated(b.jid); !ok || err != nil {
			t.Fatalf("after %v: %v %v", l, ok, err)
		}
	}
	if ok, _ := a.m.Authenticated(jid.MustParse("carol@example.com")); ok {
		t.Fatal("another JID is authenticated")
	}
	infos, err := a.m.Devices(b.jid)
	if err != nil || len(infos) != 1 || infos[0].Trust != omemo.TrustUndecided {
		t.Fatalf("the mark shows as a device: %+v %v", infos, err)
	}
}
