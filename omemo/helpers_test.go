package omemo_test

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"hush.im/omemo"
	"hush.im/omemo/legacy"
	"hush.im/omemo/memstore"
	"mellium.im/xmpp/jid"
)

// newStore makes the store of every test device.
var newStore = memstore.New

// TestSerializingStore runs the main scenarios again on a store that keeps
// only MarshalBinary encodings, as an on-disk store does.
func TestSerializingStore(t *testing.T) {
	newStore = memstore.NewSerializing
	defer func() { newStore = memstore.New }()
	for name, f := range map[string]func(*testing.T){
		"ConversationMultiDevice": TestConversationMultiDevice,
		"OutOfOrderAndReplay":     TestOutOfOrderAndReplay,
		"BadInput":                TestBadInput,
		"CatchUp":                 TestCatchUp,
		"Heartbeat":               TestHeartbeat,
		"SignedPreKeyRotation":    TestSignedPreKeyRotation,
		"SealOpenStanza":          TestSealOpenStanza,
		"ReportReasons":           TestReportReasons,
		"LegacyConversation":      TestLegacyConversation,
		"LegacyOutOfOrder":        TestLegacyOutOfOrderAndReplay,
		"LegacySimultaneous":      TestLegacySimultaneousInitiation,
		"LegacyBadInput":          TestLegacyBadInput,
		"LegacyWithheld":          TestLegacyWithheld,
		"LegacyCatchUp":           TestLegacyCatchUp,
		"LegacyIdentityMismatch":  TestLegacyIdentityMismatch,
	} {
		t.Run(name, f)
	}
}

// world is a fake PEP service: the device lists and bundles every device
// published, OMEMO 2 and legacy.
type world struct {
	t        testing.TB
	lists    map[string]*omemo.DeviceList
	bundles  map[string]*omemo.Bundle
	llists   map[string]*legacy.DeviceList
	lbundles map[string]*legacy.Bundle
}

func newWorld(t testing.TB) *world {
	return &world{t: t, lists: map[string]*omemo.DeviceList{}, bundles: map[string]*omemo.Bundle{},
		llists: map[string]*legacy.DeviceList{}, lbundles: map[string]*legacy.Bundle{}}
}

type device struct {
	w   *world
	m   *omemo.Manager
	st  *memstore.Store
	jid jid.JID
	// legacyOnly devices follow the legacy device lists alone, as a
	// client that speaks only legacy OMEMO does.
	legacyOnly bool
}

func (d *device) addr() omemo.Address { return d.m.Address() }

func (d *device) String() string { return d.addr().String() }

func (w *world) newDevice(account string, opts *omemo.Options) *device {
	w.t.Helper()
	if opts == nil {
		opts = &omemo.Options{Trust: omemo.BlindTrust{}}
	}
	st := newStore()
	j := jid.MustParse(account)
	m, err := omemo.New(j, st, opts)
	if err != nil {
		w.t.Fatal(err)
	}
	d := &device{w: w, m: m, st: st, jid: j}
	l, _, err := m.AnnounceDevice(w.lists[j.String()])
	if err != nil {
		w.t.Fatal(err)
	}
	w.lists[j.String()] = l
	d.publishBundle()
	return d
}

// publishBundle publishes both bundles; the device lists say which one
// peers use.
func (d *device) publishBundle() {
	d.w.t.Helper()
	b, err := d.m.Bundle()
	if err != nil {
		d.w.t.Fatal(err)
	}
	d.w.bundles[d.addr().String()] = b
	lb, err := d.m.LegacyBundle()
	if err != nil {
		d.w.t.Fatal(err)
	}
	d.w.lbundles[d.addr().String()] = lb
}

// announceLegacy adds d to its account's legacy device list: a hush device
// announces both protocols.
func (d *device) announceLegacy() {
	d.w.t.Helper()
	l, _, err := d.m.AnnounceLegacyDevice(d.w.llists[d.jid.String()])
	if err != nil {
		d.w.t.Fatal(err)
	}
	d.w.llists[d.jid.String()] = l
}

// newLegacyDevice makes a device that announces only legacy OMEMO, like
// Conversations or Dino: it is on its account's legacy device list alone.
func (w *world) newLegacyDevice(account string, opts *omemo.Options) *device {
	w.t.Helper()
	if opts == nil {
		opts = &omemo.Options{Trust: omemo.BlindTrust{}}
	}
	st := newStore()
	j := jid.MustParse(account)
	m, err := omemo.New(j, st, opts)
	if err != nil {
		w.t.Fatal(err)
	}
	d := &device{w: w, m: m, st: st, jid: j, legacyOnly: true}
	d.announceLegacy()
	d.publishBundle()
	return d
}

// newDualDevice makes a device that announces both protocols.
func (w *world) newDualDevice(account string, opts *omemo.Options) *device {
	w.t.Helper()
	d := w.newDevice(account, opts)
	d.announceLegacy()
	return d
}

// sync gives d the current device lists of the recipients and itself and
// the bundles it lacks, as a client does right before sending.
func (d *device) sync(recipients ...jid.JID) {
	d.w.t.Helper()
	for _, j := range append([]jid.JID{d.jid}, recipients...) {
		d.follow(j)
	}
	need, _, err := d.m.NeedBundles(recipients...)
	if err != nil {
		d.w.t.Fatal(err)
	}
	for _, a := range need {
		if b, ok := d.w.bundles[a.String()]; ok {
			if err := d.m.SetBundle(a, b); err != nil {
				d.w.t.Fatal(err)
			}
		}
	}
	lneed, _, err := d.m.NeedLegacyBundles(recipients...)
	if err != nil {
		d.w.t.Fatal(err)
	}
	for _, a := range lneed {
		if b, ok := d.w.lbundles[a.String()]; ok {
			if err := d.m.SetLegacyBundle(a, b); err != nil {
				d.w.t.Fatal(err)
			}
		}
	}
}

// follow gives d the current device lists of j, as PEP notifications do.
func (d *device) follow(j jid.JID) {
	d.w.t.Helper()
	if l, ok := d.w.lists[j.String()]; ok && !d.legacyOnly {
		if _, err := d.m.SetDeviceList(j, l); err != nil {
			d.w.t.Fatal(err)
		}
	}
	if l, ok := d.w.llists[j.String()]; ok {
		if _, err := d.m.SetLegacyDeviceList(j, l); err != nil {
			d.w.t.Fatal(err)
		}
	}
}

// send encrypts body for the recipients after a sync.
func (d *device) send(body string, to ...jid.JID) (*omemo.Encrypted, *omemo.Report) {
	d.w.t.Helper()
	d.sync(to...)
	e, rep, err := d.m.Encrypt([]byte(body), to...)
	if err != nil {
		d.w.t.Fatalf("%v: encrypt: %v", d, err)
	}
	return e, rep
}

// recv decrypts e from sender and handles the outcomes (republish bundle;
// the empty message owed is returned, not sent).
func (d *device) recv(from *device, e *omemo.Encrypted) (*omemo.Decrypted, error) {
	d.w.t.Helper()
	// A client follows its contacts' device lists through PEP.
	d.follow(from.jid)
	got, err := d.m.Decrypt(from.jid, e)
	if err != nil {
		return nil, err
	}
	if got.BundleChanged {
		d.publishBundle()
	}
	return got, nil
}

// mustRecv decrypts e and checks the plaintext.
func (d *device) mustRecv(from *device, e *omemo.Encrypted, want string) *omemo.Decrypted {
	d.w.t.Helper()
	got, err := d.recv(from, e)
	if err != nil {
		d.w.t.Fatalf("%v: decrypt from %v: %v", d, from, err)
	}
	if string(got.Envelope) != want {
		d.w.t.Fatalf("%v: decrypted %q, want %q", d, got.Envelope, want)
	}
	if !got.Sender.Equal(from.addr()) {
		d.w.t.Fatalf("%v: sender %v, want %v", d, got.Sender, from)
	}
	return got
}

// answer sends the empty message d owes to a device, if any, and delivers
// it.
func (d *device) answer(got *omemo.Decrypted, to *device) {
	d.w.t.Helper()
	if got.SendEmpty == omemo.EmptyNone {
		return
	}
	e, err := d.m.EncryptEmpty(got.Sender)
	if err != nil {
		d.w.t.Fatal(err)
	}
	r, err := to.recv(d, e)
	if err != nil {
		d.w.t.Fatalf("%v: empty message from %v: %v", to, d, err)
	}
	if r.Envelope != nil {
		d.w.t.Fatalf("empty message has an envelope")
	}
}

// unchanged runs f and checks the store of d did not change.
func unchanged(t testing.TB, d *device, f func()) {
	t.Helper()
	before := d.st.Snapshot()
	f()
	if after := d.st.Snapshot(); !reflect.DeepEqual(before, after) {
		t.Fatalf("%v: store changed", d)
	}
}

func keyFor(e *omemo.Encrypted, d *device) *omemo.Key {
	return e.Find(d.jid, d.m.DeviceID())
}

func mustErr(t testing.TB, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
}

func body(i int) string { return fmt.Sprintf("<envelope>%d</envelope>", i) }
