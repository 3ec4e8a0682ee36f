package client

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"hush.im/omemo"
	"hush.im/omemo/legacy"
	"hush.im/omemo/memstore"
	"hush.im/ox"
	"hush.im/sce"
)

// quietEngine is a test double whose Decrypt fails with the error named
// by the <sealed quiet=…/> attribute.
type quietEngine struct{ testEngine }

func (e *quietEngine) Decrypt(ctx context.Context, in *Incoming) (*sce.Stanza, *Security, error) {
	sealed, _ := stanzaChild(in.Stanza, testProtocol)
	switch sealed.AttrValue("quiet") {
	case "content":
		return nil, nil, fmt.Errorf("%w: empty", ErrNoContent)
	case "dup":
		return nil, nil, fmt.Errorf("%w: again", ErrDuplicate)
	}
	return e.testEngine.Decrypt(ctx, in)
}

// The engine's names and features follow its mode: OMEMO 2 alone, both
// protocols, or legacy OMEMO alone.
func TestOMEMOModes(t *testing.T) {
	for _, tc := range []struct {
		name        string
		legacy, v2  bool
		names       []xml.Name
		only        omemo.Protocol
		has, hasNot []string
	}{
		{"omemo2", false, true, nil, omemo.ProtocolOMEMO2,
			[]string{omemo.NS, omemo.NodeDevices + "+notify", sce.NS},
			[]string{legacy.NS, legacy.NodeDeviceList + "+notify"}},
		{"both", true, true, []xml.Name{OMEMOLegacyEncrypted}, 0,
			[]string{omemo.NS, omemo.NodeDevices + "+notify", sce.NS, legacy.NS, legacy.NodeDeviceList + "+notify"},
			nil},
		{"legacy only", true, false, []xml.Name{OMEMOLegacyEncrypted}, omemo.ProtocolLegacy,
			[]string{legacy.NS, legacy.NodeDeviceList + "+notify"},
			[]string{omemo.NS, omemo.NodeDevices + "+notify", sce.NS}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newOMEMO(nil, nil, nil, 0)
			o.legacy, o.v2 = tc.legacy, tc.v2
			if o.Encrypted() != OMEMOEncrypted {
				t.Errorf("Encrypted = %v", o.Encrypted())
			}
			if got := o.EncryptedNames(); !slices.Equal(got, tc.names) {
				t.Errorf("EncryptedNames = %v, want %v", got, tc.names)
			}
			if got := o.only(); got != tc.only {
				t.Errorf("only = %v, want %v", got, tc.only)
			}
			fs := o.Features()
			for _, f := range tc.has {
				if !slices.Contains(fs, f) {
					t.Errorf("features %v lack %s", fs, f)
				}
			}
			for _, f := range tc.hasNot {
				if slices.Contains(fs, f) {
					t.Errorf("features %v have %s", fs, f)
				}
			}
		})
	}
}

// Stanzas with nothing for the application never reach handlers; other
// decryption failures do.
func TestQuietDecryptOutcomes(t *testing.T) {
	c, fs := newPair(t)
	if err := c.AddEngine(&quietEngine{}); err != nil {
		t.Fatal(err)
	}
	msgs := make(chan *Incoming, 8)
	c.HandleMessage(func(_ context.Context, in *Incoming) { msgs <- in })
	pres := make(chan *Incoming, 8)
	c.HandlePresence(func(_ context.Context, in *Incoming) { pres <- in })
	for _, tc := range []struct {
		stanza string
		quiet  bool
	}{
		{`<message xmlns="jabber:client" from="bob@example.org/x"><sealed xmlns="urn:example:test-engine" quiet="content"/></message>`, true},
		{`<message xmlns="jabber:client" from="bob@example.org/x"><sealed xmlns="urn:example:test-engine" quiet="dup"/></message>`, true},
		{`<presence xmlns="jabber:client" from="bob@example.org/x"><sealed xmlns="urn:example:test-engine" quiet="content"/></presence>`, true},
		{`<message xmlns="jabber:client" from="bob@example.org/x"><sealed xmlns="urn:example:test-engine" bad="1"/></message>`, false},
	} {
		fs.send(tc.stanza)
		fs.send(`<message xmlns="jabber:client" from="bob@example.org/x"><body>marker</body></message>`)
		fs.send(`<presence xmlns="jabber:client" from="bob@example.org/x"/>`)
		in := recv(t, msgs, "message")
		if !tc.quiet && !strings.Contains(tc.stanza, "presence") {
			if in.Err == nil {
				t.Fatalf("%s: no error", tc.stanza)
			}
			in = recv(t, msgs, "marker")
		}
		if body(in.Stanza) != "marker" {
			t.Fatalf("%s reached the handler: %+v", tc.stanza, in)
		}
		if p := recv(t, pres, "presence"); p.Err != nil {
			t.Fatalf("%s: presence handler got %v", tc.stanza, p.Err)
		}
	}
}

func TestConvertOMEMOReport(t *testing.T) {
	bob := jid.MustParse("bob@example.org")
	bad := errors.New("bad signature")
	for _, tc := range []struct {
		in   *omemo.Report
		want []DeviceReport
	}{
		{nil, nil},
		{&omemo.Report{}, []DeviceReport{}},
		{&omemo.Report{Devices: []omemo.DeviceReport{
			{JID: bob, DeviceID: 7, Protocol: omemo.ProtocolOMEMO2},
			{JID: bob, DeviceID: 8, Reason: omemo.ReasonUntrusted},
			{JID: bob, DeviceID: 9, Reason: omemo.ReasonInvalidBundle, Err: bad},
			{JID: bob, Reason: omemo.ReasonNoDeviceList},
		}}, []DeviceReport{
			{JID: bob, Device: "7", Sent: true},
			{JID: bob, Device: "8", Reason: omemo.ReasonUntrusted.String()},
			{JID: bob, Device: "9", Reason: omemo.ReasonInvalidBundle.String(), Err: bad},
			{JID: bob, Reason: omemo.ReasonNoDeviceList.String()},
		}},
		{&omemo.Report{Devices: []omemo.DeviceReport{
			{JID: bob, DeviceID: 7, Protocol: omemo.ProtocolOMEMO2},
			{JID: bob, DeviceID: 8, Protocol: omemo.ProtocolLegacy, Withheld: []xml.Name{{Space: "urn:example", Local: "x"}}},
		}}, []DeviceReport{
			{JID: bob, Device: "7", Sent: true, Protocol: OMEMOEncrypted},
			{JID: bob, Device: "8", Sent: true, Protocol: OMEMOLegacyEncrypted, Withheld: []xml.Name{{Space: "urn:example", Local: "x"}}},
		}},
	} {
		got := convertOMEMOReport(tc.in)
		if tc.in == nil {
			if got != nil {
				t.Errorf("nil report converted to %+v", got)
			}
			continue
		}
		if got.Protocol != OMEMOEncrypted || len(got.Devices) != len(tc.want) {
			t.Fatalf("got %+v, want %+v", got, tc.want)
		}
		for i, d := range got.Devices {
			w := tc.want[i]
			if w.Protocol == (xml.Name{}) {
				w.Protocol = d.Protocol // cases without a protocol check
			}
			if !d.JID.Equal(w.JID) || d.Device != w.Device || d.Sent != w.Sent || d.Reason != w.Reason || d.Err != w.Err ||
				d.Protocol != w.Protocol || !slices.Equal(d.Withheld, w.Withheld) {
				t.Errorf("device %d: got %+v, want %+v", i, d, w)
			}
		}
	}
}

func TestIQPayloadOnly(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`<iq xmlns="jabber:client" type="get"><store xmlns="urn:xmpp:hints"/><encrypted xmlns="urn:xmpp:omemo:2"/><encryption xmlns="urn:xmpp:eme:0" namespace="urn:xmpp:omemo:2"/></iq>`,
			`<iq xmlns="jabber:client" type="get"><encrypted xmlns="urn:xmpp:omemo:2"></encrypted></iq>`},
		{`<message xmlns="jabber:client"><store xmlns="urn:xmpp:hints"/><encrypted xmlns="urn:xmpp:omemo:2"/></message>`,
			`<message xmlns="jabber:client"><store xmlns="urn:xmpp:hints"></store><encrypted xmlns="urn:xmpp:omemo:2"></encrypted></message>`},
	} {
		st := mustStanza(t, tc.in)
		iqPayloadOnly(st)
		b, err := st.Marshal()
		if err != nil || string(b) != tc.want {
			t.Errorf("iqPayloadOnly(%s) = %s %v, want %s", tc.in, b, err, tc.want)
		}
	}
	iqPayloadOnly(nil)
}

func TestCurrentItem(t *testing.T) {
	p := sce.TextElement(xml.Name{Space: omemo.NS, Local: "devices"}, "")
	for _, tc := range []struct {
		items []Item
		want  string
		ok    bool
	}{
		{nil, "", false},
		{[]Item{{ID: "a"}, {ID: "b", Payload: p}}, "b", true},
		{[]Item{{ID: "a"}, {ID: "current"}, {ID: "b"}}, "current", true},
	} {
		it, ok := currentItem(tc.items)
		if ok != tc.ok || it.ID != tc.want {
			t.Errorf("currentItem(%+v) = %q %v, want %q %v", tc.items, it.ID, ok, tc.want, tc.ok)
		}
	}
}

// omemoPeer is a device of another account, driven directly through its
// Manager.
func omemoPeer(t *testing.T, bare string) *omemo.Manager {
	t.Helper()
	m, err := omemo.New(jid.MustParse(bare), memstore.New(), &omemo.Options{Trust: omemo.BlindTrust{}, PreKeys: omemo.MinPreKeys})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// introduce gives from the device list and bundles of to's devices.
func introduce(t *testing.T, from *omemo.Manager, to ...*omemo.Manager) {
	t.Helper()
	l := &omemo.DeviceList{}
	for _, m := range to {
		l.Devices = append(l.Devices, omemo.Device{ID: m.DeviceID()})
	}
	if _, err := from.SetDeviceList(to[0].JID(), l); err != nil {
		t.Fatal(err)
	}
	for _, m := range to {
		b, err := m.Bundle()
		if err != nil {
			t.Fatal(err)
		}
		if err := from.SetBundle(m.Address(), b); err != nil {
			t.Fatal(err)
		}
	}
}

// The OMEMO adapter's Decrypt: plaintext with a security record, follow-up
// work queued, duplicates and empty messages classified as quiet.
func TestOMEMODecrypt(t *testing.T) {
	c, _ := newPair(t) // alice@example.org/dev
	own := omemoPeer(t, "alice@example.org")
	own2 := omemoPeer(t, "alice@example.org")
	bob := omemoPeer(t, "bob@example.org")
	introduce(t, bob, own, own2)
	o := newOMEMO(c, own, nil, 0)
	ctx := context.Background()

	plain := mustStanza(t, `<message xmlns="jabber:client" to="alice@example.org" type="chat"><body>hi alice</body></message>`)
	sealed, _, err := bob.SealStanza(plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	setAttr(sealed, "from", "bob@example.org/phone")
	in := &Incoming{Stanza: sealed, Received: sealed, From: jid.MustParse("bob@example.org/phone")}
	st, sec, err := o.Decrypt(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if body(st) != "hi alice" || sec.Protocol != OMEMOEncrypted || !sec.Sender.Equal(bob.JID()) ||
		sec.Device != fmt.Sprint(bob.DeviceID()) || sec.Trust != TrustBlind {
		t.Fatalf("got %q %+v", body(st), sec)
	}
	// A key exchange: the bundle changed, an empty message is owed, and
	// bob's device list (unknown so far) is to be fetched.
	o.mu.Lock()
	_, empty := o.empties[bob.Address().String()]
	_, refresh := o.refresh[bob.JID().String()]
	bundle := o.bundle
	o.mu.Unlock()
	if !empty || !refresh || !bundle {
		t.Errorf("follow-ups: empty %v refresh %v bundle %v", empty, refresh, bundle)
	}

	// The same stanza again is a duplicate, dropped quietly.
	if _, _, err := o.Decrypt(ctx, in); !errors.Is(err, ErrDuplicate) || !quiet(err) {
		t.Errorf("replay: %v", err)
	}

	// An empty message for alice's other device is no content for this
	// one.
	enc, err := bob.EncryptEmpty(own2.Address())
	if err != nil {
		t.Fatal(err)
	}
	el, err := sce.ReadElement(enc.TokenReader())
	if err != nil {
		t.Fatal(err)
	}
	empty2 := newStanza("message", []xml.Attr{attr("from", "bob@example.org/phone"), attr("to", "alice@example.org")}, el)
	if _, _, err := o.Decrypt(ctx, &Incoming{Stanza: empty2, From: jid.MustParse("bob@example.org/phone")}); !errors.Is(err, ErrNoContent) {
		t.Errorf("empty message for another device: %v", err)
	}

	// A message for other devices with a payload is an error the
	// application sees.
	introduce(t, bob, own2)
	only2, _, err := bob.SealStanza(plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	setAttr(only2, "from", "bob@example.org/phone")
	if _, _, err := o.Decrypt(ctx, &Incoming{Stanza: only2, From: jid.MustParse("bob@example.org/phone")}); !errors.Is(err, omemo.ErrNotForThisDevice) || quiet(err) {
		t.Errorf("message for another device: %v", err)
	}
}

func TestOMEMOTrustOf(t *testing.T) {
	c, _ := newPair(t)
	m := omemoPeer(t, "alice@example.org")
	d := func(l omemo.TrustLevel) *omemo.Decrypted {
		return &omemo.Decrypted{Sender: omemo.Address{JID: jid.MustParse("bob@example.org"), Device: 9}, Trust: l, IdentityKey: make([]byte, 32), Listed: true}
	}
	for _, tc := range []struct {
		policy omemo.TrustPolicy
		level  omemo.TrustLevel
		want   Trust
	}{
		{omemo.BlindTrust{}, omemo.TrustUndecided, TrustBlind},
		{omemo.ManualTrust{}, omemo.TrustUndecided, TrustUndecided},
		{omemo.ManualTrust{}, omemo.TrustTrusted, TrustBlind},
		{omemo.BlindTrust{}, omemo.TrustVerified, TrustVerified},
		{omemo.BlindTrust{}, omemo.TrustDistrusted, TrustUntrusted},
	} {
		o := newOMEMO(c, m, tc.policy, 0)
		if got := o.trustOf(d(tc.level)); got != tc.want {
			t.Errorf("%T %v: %v, want %v", tc.policy, tc.level, got, tc.want)
		}
	}
}

// newTestOX returns the OX adapter of the test client (alice) with key,
// and cached keys for the given JIDs.
func newTestOX(c *Client, key *ox.Key, cache map[string][]*ox.Key) *OX {
	o := &OX{c: c, key: key, now: time.Now, keys: cache, gen: map[string]uint64{}, skips: map[string][]DeviceReport{}, work: make(chan struct{}, 1)}
	return o
}

// The OX adapter with keys from its cache: Encrypt to every key of the
// recipient and the account, Decrypt with the sender's keys.
func TestOXAdapter(t *testing.T) {
	c, _ := newPair(t)
	alice, bob := jid.MustParse("alice@example.org"), jid.MustParse("bob@example.org")
	gen := func(j jid.JID) *ox.Key {
		k, err := ox.GenerateKey(j, ox.Curve25519)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	aliceKey, alice2Key, bobKey := gen(alice), gen(alice), gen(bob)
	o := newTestOX(c, aliceKey, map[string][]*ox.Key{
		"bob@example.org":   {bobKey.Public()},
		"alice@example.org": {aliceKey.Public(), alice2Key.Public()},
	})
	ctx := context.Background()

	plain := mustStanza(t, `<message xmlns="jabber:client" to="bob@example.org/x" type="chat"><body>pgp secret</body></message>`)
	out, rep, err := o.Encrypt(ctx, plain)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Sent()) != 3 || len(rep.Skipped()) != 0 {
		t.Fatalf("report %+v", rep.Devices)
	}
	for _, d := range rep.Sent() {
		if (d.Device == bobKey.Fingerprint().String()) != d.JID.Equal(bob) {
			t.Errorf("report entry %+v", d)
		}
	}
	if err := checkNoLeak(plain, out, OXEncrypted); err != nil {
		t.Fatal(err)
	}
	setAttr(out, "from", "alice@example.org/dev")
	opened, err := ox.Open(out, ox.OpenOptions{Keys: []*ox.Key{bobKey}, SenderKeys: []*ox.Key{aliceKey.Public()}})
	if err != nil || body(opened.Stanza) != "pgp secret" {
		t.Fatalf("bob cannot open: %v", err)
	}
	// Alice's other device reads the carbon.
	if _, err := ox.Open(out, ox.OpenOptions{Keys: []*ox.Key{alice2Key}, SenderKeys: []*ox.Key{aliceKey.Public()}}); err != nil {
		t.Fatalf("alice's other key cannot open: %v", err)
	}

	// From bob.
	in := mustStanza(t, `<message xmlns="jabber:client" from="bob@example.org/x" to="alice@example.org/dev" type="chat"><body>reply</body></message>`)
	sealed, err := ox.Seal(in, ox.SealOptions{Signer: bobKey, From: bob, Recipients: []*ox.Key{aliceKey.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	st, sec, err := o.Decrypt(ctx, &Incoming{Stanza: sealed.Stanza, From: jid.MustParse("bob@example.org/x")})
	if err != nil || body(st) != "reply" {
		t.Fatalf("decrypt: %v", err)
	}
	if sec.Protocol != OXEncrypted || !sec.Sender.Equal(bob) || sec.Device != bobKey.Fingerprint().String() || sec.Trust != TrustBlind {
		t.Fatalf("security %+v", sec)
	}
	// Signed by a key bob did not announce: rejected (inside an IQ
	// handler no refetch is tried).
	rogue := gen(bob)
	forged, err := ox.Seal(in, ox.SealOptions{Signer: rogue, From: bob, Recipients: []*ox.Key{aliceKey.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	iqCtx := context.WithValue(ctx, inIQHandlerKey{}, true)
	if _, _, err := o.Decrypt(iqCtx, &Incoming{Stanza: forged.Stanza, From: jid.MustParse("bob@example.org/x")}); !errors.Is(err, ox.ErrBadSignature) {
		t.Fatalf("rogue key: %v", err)
	}
	// No keys known for carol, and none fetchable inside an IQ handler.
	toCarol := mustStanza(t, `<message xmlns="jabber:client" to="carol@example.org" type="chat"><body>x</body></message>`)
	if _, _, err := o.Encrypt(iqCtx, toCarol); !errors.Is(err, ox.ErrNoRecipients) {
		t.Fatalf("no keys: %v", err)
	}
}

// benchOMEMOPair returns alice's adapter (on the test client) and bob's
// Manager with sessions both ways established.
func benchOMEMOPair(b *testing.B) (*OMEMO, *omemo.Manager, *sce.Stanza) {
	c, _ := newPair(b)
	mk := func(bare string) *omemo.Manager {
		m, err := omemo.New(jid.MustParse(bare), memstore.New(), &omemo.Options{Trust: omemo.BlindTrust{}, PreKeys: omemo.MinPreKeys})
		if err != nil {
			b.Fatal(err)
		}
		return m
	}
	alice, bob := mk("alice@example.org"), mk("bob@example.org")
	for _, p := range [][2]*omemo.Manager{{alice, bob}, {bob, alice}} {
		if _, err := p[0].SetDeviceList(p[1].JID(), &omemo.DeviceList{Devices: []omemo.Device{{ID: p[1].DeviceID()}}}); err != nil {
			b.Fatal(err)
		}
		bu, _ := p[1].Bundle()
		if err := p[0].SetBundle(p[1].Address(), bu); err != nil {
			b.Fatal(err)
		}
	}
	o := newOMEMO(c, alice, nil, 0)
	plain := mustStanza(b, `<message xmlns="jabber:client" to="bob@example.org/x" type="chat"><body>Hello, this is a message of ordinary length for a chat.</body></message>`)
	return o, bob, plain
}

// BenchmarkOMEMOAdapterEncrypt measures the adapter's Encrypt of a chat
// message for one device (what SendEncrypted adds before sending).
func BenchmarkOMEMOAdapterEncrypt(b *testing.B) {
	o, _, plain := benchOMEMOPair(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := o.Encrypt(ctx, plain); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFloorOMEMOSealStanza is the floor of BenchmarkOMEMOAdapterEncrypt:
// the Manager's SealStanza alone.
func BenchmarkFloorOMEMOSealStanza(b *testing.B) {
	o, _, plain := benchOMEMOPair(b)
	recipients := []jid.JID{jid.MustParse("bob@example.org")}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := o.m.SealStanza(plain, &omemo.SealOptions{Recipients: recipients, Only: omemo.ProtocolOMEMO2}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestOMEMORateLimit(t *testing.T) {
	o := newOMEMO(nil, nil, nil, time.Hour)
	last := map[string]time.Time{}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.allowLocked(last, "a") || o.allowLocked(last, "a") {
		t.Fatal("second repair within the interval allowed")
	}
	last["a"] = time.Now().Add(-2 * time.Hour)
	if !o.allowLocked(last, "a") {
		t.Fatal("repair after the interval refused")
	}
	for i := range 2 * maxRateRecords {
		if !o.allowLocked(last, fmt.Sprint("k", i)) {
			t.Fatalf("new key %d refused", i)
		}
		if len(last) > maxRateRecords {
			t.Fatalf("%d records kept", len(last))
		}
	}
}
