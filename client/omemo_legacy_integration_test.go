//go:build integration

package client_test

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"hush.im/client"
	"hush.im/internal/prosodytest"
	"hush.im/omemo"
	"hush.im/omemo/legacy"
	"hush.im/omemo/memstore"
	"hush.im/sce"
)

// extraName is a sensitive element that only an SCE envelope protects:
// legacy devices must not get it.
var extraName = xml.Name{Space: "urn:example:hush:extra", Local: "x"}

// startOMEMOWith is startOMEMO with engine options.
func startOMEMOWith(t *testing.T, ctx context.Context, srv *prosodytest.Server, user, resource string, opts *client.OMEMOOptions) *omemoDevice {
	t.Helper()
	d := &omemoDevice{name: user + "/" + resource, c: dialPlain(t, ctx, srv, user, resource), store: memstore.New()}
	d.msgs = messageInbox(d.c)
	d.pres = newInbox[*client.Incoming]()
	var err error
	if d.o, err = client.NewOMEMO(ctx, d.c, d.store, opts); err != nil {
		t.Fatalf("%s: NewOMEMO: %v", d.name, err)
	}
	if err := d.c.EnableCarbons(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.c.Online(ctx); err != nil {
		t.Fatal(err)
	}
	return d
}

// expectProtocol reads the next message of d and checks that it is text,
// decrypted with protocol from sender's device.
func expectProtocol(t *testing.T, d, sender *omemoDevice, text string, protocol xml.Name) *client.Incoming {
	t.Helper()
	in := d.msgs.next(t, d.name+" message "+strconv.Quote(text))
	if in.Err != nil {
		t.Fatalf("%s: %v (via %v)", d.name, in.Err, in.Via)
	}
	if in.Security == nil {
		t.Fatalf("%s: unencrypted stanza via %v: %q", d.name, in.Via, body(in.Stanza))
	}
	if got := body(in.Stanza); got != text {
		t.Fatalf("%s got %q via %v, want %q", d.name, got, in.Via, text)
	}
	for _, ch := range in.Stanza.Children {
		if ch.Name.Local == "body" && !ch.Encrypted {
			t.Fatalf("%s: body not marked Encrypted", d.name)
		}
	}
	sec := in.Security
	if sec.Protocol != protocol || !sec.Sender.Equal(sender.c.JID().Bare()) || sec.Device != sender.id() {
		t.Fatalf("%s: security record %+v, want %v from %s device %s", d.name, sec, protocol, sender.c.JID().Bare(), sender.id())
	}
	return in
}

// sendChecked sends st from d and checks that each device in want got a
// key with the protocol given beside it.
func sendChecked(t *testing.T, ctx context.Context, d *omemoDevice, st *sce.Stanza, want map[*omemoDevice]xml.Name) *client.Report {
	t.Helper()
	rep, err := d.c.SendEncrypted(ctx, client.OMEMOEncrypted, st)
	if err != nil {
		t.Fatalf("%s: send: %v (report %+v)", d.name, err, rep)
	}
	for w, p := range want {
		i := slices.IndexFunc(rep.Sent(), func(r client.DeviceReport) bool { return r.Device == w.id() })
		if i < 0 {
			t.Fatalf("%s: %s got no key: %+v", d.name, w.name, rep.Devices)
		}
		if got := rep.Sent()[i].Protocol; got != p {
			t.Fatalf("%s: %s got its key with %v, want %v", d.name, w.name, got, p)
		}
	}
	return rep
}

func withExtra(st *sce.Stanza, text string) *sce.Stanza {
	st.Children = append(st.Children, sce.TextElement(extraName, text))
	return st
}

func hasChild(st *sce.Stanza, n xml.Name) bool {
	return slices.ContainsFunc(st.Children, func(ch sce.Element) bool { return ch.Name == n })
}

func TestIntegrationLegacyBothWays(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	srv := startE2EServer(t)
	aliceJID, bobJID := srv.JID("alice"), srv.JID("bob")

	a1 := startOMEMOWith(t, ctx, srv, "alice", "a1", &client.OMEMOOptions{Legacy: true})
	a2 := startOMEMOWith(t, ctx, srv, "alice", "a2", &client.OMEMOOptions{Legacy: true})
	b1 := startOMEMOWith(t, ctx, srv, "bob", "b1", &client.OMEMOOptions{LegacyOnly: true})
	b2 := startOMEMOWith(t, ctx, srv, "bob", "b2", &client.OMEMOOptions{LegacyOnly: true})
	for _, d := range []*omemoDevice{a1, a2} {
		waitKnows(t, d, aliceJID, other(d, a1, a2)...)
		waitKnows(t, d, bobJID, b1, b2)
	}
	for _, d := range []*omemoDevice{b1, b2} {
		waitKnows(t, d, aliceJID, a1, a2)
		waitKnows(t, d, bobJID, other(d, b1, b2)...)
	}

	// Features: alice both protocols, bob legacy alone.
	info, err := b1.c.DiscoInfo(ctx, a1.c.JID(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{omemo.NS, omemo.NodeDevices + "+notify", legacy.NS, legacy.NodeDeviceList + "+notify"} {
		if !info.Has(f) {
			t.Errorf("alice's features lack %s", f)
		}
	}
	if info, err = a1.c.DiscoInfo(ctx, b1.c.JID(), ""); err != nil {
		t.Fatal(err)
	}
	if !info.Has(legacy.NodeDeviceList+"+notify") || info.Has(omemo.NodeDevices+"+notify") || info.Has(sce.NS) {
		t.Errorf("legacy-only bob's features %v", info)
	}
	// Legacy nodes are open; bob published no OMEMO 2 node.
	for _, node := range []string{legacy.NodeDeviceList, legacy.BundleNode(a1.o.Manager().DeviceID())} {
		cfg, err := a1.c.NodeConfig(ctx, node)
		if err != nil || cfg["pubsub#access_model"][0] != "open" {
			t.Fatalf("%s configuration %v %v", node, cfg, err)
		}
	}
	if items, err := a1.c.FetchItems(ctx, bobJID, omemo.NodeDevices); err == nil && len(items) > 0 {
		t.Fatalf("legacy-only bob published an OMEMO 2 device list: %+v", items)
	}

	var secrets []string
	secret := func(s string) string {
		s = fmt.Sprintf("%s %d", s, time.Now().UnixNano())
		secrets = append(secrets, s)
		return s
	}
	legacyEnc, v2Enc := client.OMEMOLegacyEncrypted, client.OMEMOEncrypted
	for i := range 3 {
		text, extra := secret("alice to bob "+strconv.Itoa(i)), secret("extra "+strconv.Itoa(i))
		rep := sendChecked(t, ctx, a1, withExtra(chat(bobJID, text), extra), map[*omemoDevice]xml.Name{b1: legacyEnc, b2: legacyEnc, a2: v2Enc})
		for _, d := range rep.Sent() {
			withheld := slices.Contains(d.Withheld, extraName)
			if withheld != (d.Protocol == legacyEnc) {
				t.Fatalf("device %s (%v) withheld %v", d.Device, d.Protocol, d.Withheld)
			}
		}
		for _, b := range []*omemoDevice{b1, b2} {
			if in := expectProtocol(t, b, a1, text, legacyEnc); hasChild(in.Stanza, extraName) {
				t.Fatalf("legacy %s got the SCE-only element: %+v", b.name, in.Stanza)
			}
		}
		in := expectProtocol(t, a2, a1, text, v2Enc)
		if in.Via != client.ViaCarbonSent {
			t.Fatalf("a2 got alice's message via %v", in.Via)
		}
		if !hasChild(in.Stanza, extraName) {
			t.Fatalf("a2 lacks the SCE element: %+v", in.Stanza)
		}

		text = secret("bob to alice " + strconv.Itoa(i))
		sendChecked(t, ctx, b1, chat(aliceJID, text), map[*omemoDevice]xml.Name{a1: legacyEnc, a2: legacyEnc, b2: legacyEnc})
		expectProtocol(t, a1, b1, text, legacyEnc)
		expectProtocol(t, a2, b1, text, legacyEnc)
		if in := expectProtocol(t, b2, b1, text, legacyEnc); in.Via != client.ViaCarbonSent {
			t.Fatalf("b2 got bob's message via %v", in.Via)
		}
	}
	// Asked for by its name, legacy OMEMO alone: alice's other device gets
	// it with legacy OMEMO too (it speaks both).
	text := secret("legacy by name")
	if _, err := a2.c.SendEncrypted(ctx, client.OMEMOLegacyEncrypted, chat(bobJID, text)); err != nil {
		t.Fatal(err)
	}
	expectProtocol(t, b1, a2, text, legacyEnc)
	expectProtocol(t, b2, a2, text, legacyEnc)
	expectProtocol(t, a1, a2, text, legacyEnc)
	// EncryptOnly(ProtocolOMEMO2) reaches no device of legacy-only bob.
	if _, rep, err := a2.o.EncryptOnly(ctx, chat(bobJID, "never sent"), omemo.ProtocolOMEMO2); err == nil && slices.ContainsFunc(rep.Sent(), func(d client.DeviceReport) bool { return d.JID.Bare().Equal(bobJID) }) {
		t.Fatalf("OMEMO 2 alone reached legacy-only bob: %+v", rep)
	}
	if _, _, err := b1.o.EncryptOnly(ctx, chat(aliceJID, "never sent"), omemo.ProtocolOMEMO2); !errors.Is(err, client.ErrNoEngine) {
		t.Fatalf("a legacy-only device encrypted with OMEMO 2: %v", err)
	}
	noPlaintext(t, srv, secrets...)
}

// One stanza from alice carries both elements: OMEMO 2 for carol (and
// alice's own devices), legacy for bob.
func TestIntegrationLegacyMixedStanza(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	srv := startE2EServer(t)
	aliceJID, bobJID, carolJID := srv.JID("alice"), srv.JID("bob"), srv.JID("carol")

	a1 := startOMEMOWith(t, ctx, srv, "alice", "a1", &client.OMEMOOptions{Legacy: true})
	a2 := startOMEMOWith(t, ctx, srv, "alice", "a2", nil)
	b1 := startOMEMOWith(t, ctx, srv, "bob", "b1", &client.OMEMOOptions{LegacyOnly: true})
	c1 := startOMEMOWith(t, ctx, srv, "carol", "c1", nil)
	waitKnows(t, a1, aliceJID, a2)
	waitKnows(t, a1, bobJID, b1)
	waitKnows(t, a1, carolJID, c1)
	waitKnows(t, b1, aliceJID, a1)
	waitKnows(t, c1, aliceJID, a1)

	var secrets []string
	secret := func(s string) string {
		s = fmt.Sprintf("%s %d", s, time.Now().UnixNano())
		secrets = append(secrets, s)
		return s
	}
	// First messages through the engine fetch the bundles.
	first := secret("hello bob")
	sendChecked(t, ctx, a1, chat(bobJID, first), map[*omemoDevice]xml.Name{b1: client.OMEMOLegacyEncrypted, a2: client.OMEMOEncrypted})
	expectProtocol(t, b1, a1, first, client.OMEMOLegacyEncrypted)
	expectProtocol(t, a2, a1, first, client.OMEMOEncrypted)
	first = secret("hello carol")
	sendChecked(t, ctx, a1, chat(carolJID, first), map[*omemoDevice]xml.Name{c1: client.OMEMOEncrypted, a2: client.OMEMOEncrypted})
	expectProtocol(t, c1, a1, first, client.OMEMOEncrypted)
	expectProtocol(t, a2, a1, first, client.OMEMOEncrypted)

	text := secret("to both")
	sealed, rep, err := a1.o.Manager().SealStanza(chat(carolJID, text), &omemo.SealOptions{Recipients: []jid.JID{bobJID, carolJID}})
	if err != nil {
		t.Fatalf("seal: %v %+v", err, rep)
	}
	if !hasChild(sealed, client.OMEMOEncrypted) || !hasChild(sealed, client.OMEMOLegacyEncrypted) || body(sealed) == text {
		t.Fatalf("mixed stanza %+v", sealed)
	}
	for _, d := range rep.Devices {
		want := omemo.ProtocolOMEMO2
		if d.JID.Equal(bobJID) {
			want = omemo.ProtocolLegacy
		}
		if !d.OK() || d.Protocol != want {
			t.Fatalf("report %+v", d)
		}
	}
	if err := a1.c.Send(ctx, sealed); err != nil {
		t.Fatal(err)
	}
	expectProtocol(t, c1, a1, text, client.OMEMOEncrypted)
	expectProtocol(t, a2, a1, text, client.OMEMOEncrypted) // carbon
	// The same stanza readdressed to bob.
	for i, a := range sealed.Attr {
		if a.Name.Local == "to" {
			sealed.Attr[i].Value = bobJID.String()
		}
		if a.Name.Local == "id" {
			sealed.Attr[i].Value = "mixed-2"
		}
	}
	if err := a1.c.Send(ctx, sealed); err != nil {
		t.Fatal(err)
	}
	expectProtocol(t, b1, a1, text, client.OMEMOLegacyEncrypted)
	// a2's copy repeats the key it already used: a duplicate, dropped. a2
	// speaks no legacy OMEMO: bob's empty legacy answer reaches it
	// undecrypted, which is all it may get.
	deadline := time.After(500 * time.Millisecond)
	for done := false; !done; {
		select {
		case in := <-a2.msgs.c:
			if in.Security != nil || in.Err != nil || body(in.Stanza) != "" || !hasChild(in.Stanza, client.OMEMOLegacyEncrypted) {
				t.Fatalf("a2 got %+v (err %v)", in.Stanza, in.Err)
			}
		case <-deadline:
			done = true
		}
	}
	noPlaintext(t, srv, secrets...)
}
