//go:build integration

package client_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"hush.im/client"
	"hush.im/internal/prosodytest"
	"hush.im/omemo"
	"hush.im/omemo/memstore"
	"hush.im/sce"
)

// e2eTimeout bounds one end-to-end scenario.
const e2eTimeout = 60 * time.Second

func startE2EServer(t *testing.T) *prosodytest.Server {
	return prosodytest.Start(t, prosodytest.Options{Users: users, MaxArchiveResults: client.MaxArchivePage})
}

// omemoDevice is one OMEMO 2 device of an account: a client, its engine
// and what its handlers received.
type omemoDevice struct {
	name  string
	c     *client.Client
	o     *client.OMEMO
	store *memstore.Store
	msgs  *inbox[*client.Incoming]
	pres  *inbox[*client.Incoming]
}

func (d *omemoDevice) id() string { return strconv.FormatUint(uint64(d.o.Manager().DeviceID()), 10) }

// startOMEMO connects user/resource with the OMEMO 2 engine on store (a
// new one when nil), carbons enabled, and sends initial presence.
func startOMEMO(t *testing.T, ctx context.Context, srv *prosodytest.Server, user, resource string, store *memstore.Store) *omemoDevice {
	t.Helper()
	if store == nil {
		store = memstore.New()
	}
	d := &omemoDevice{name: user + "/" + resource, c: dialPlain(t, ctx, srv, user, resource), store: store}
	d.msgs = messageInbox(d.c)
	d.pres = newInbox[*client.Incoming]()
	d.c.HandlePresence(func(_ context.Context, in *client.Incoming) {
		if in.Security != nil || in.Err != nil {
			d.pres.put(in)
		}
	})
	var err error
	if d.o, err = client.NewOMEMO(ctx, d.c, store, nil); err != nil {
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

// waitKnows waits until observer has every device in devs on bare's
// device list (learnt through +notify events).
func waitKnows(t *testing.T, observer *omemoDevice, bare jid.JID, devs ...*omemoDevice) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		infos, err := observer.o.Manager().Devices(bare)
		if err != nil {
			t.Fatal(err)
		}
		missing := 0
		for _, d := range devs {
			if !slices.ContainsFunc(infos, func(i omemo.DeviceInfo) bool {
				return i.Device == d.o.Manager().DeviceID() && i.Listed
			}) {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not know %d devices of %s: %+v", observer.name, missing, bare, infos)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// expectMessage reads the next message of d and checks that it is body,
// decrypted, from sender's device.
func expectMessage(t *testing.T, d *omemoDevice, sender *omemoDevice, text string) *client.Incoming {
	t.Helper()
	in := d.msgs.next(t, d.name+" message "+strconv.Quote(text))
	checkSecure(t, d.name, in, sender, text)
	return in
}

func checkSecure(t *testing.T, who string, in *client.Incoming, sender *omemoDevice, text string) {
	t.Helper()
	if in.Err != nil {
		t.Fatalf("%s: %v (via %v)", who, in.Err, in.Via)
	}
	if in.Security == nil {
		t.Fatalf("%s: unencrypted stanza via %v: %q", who, in.Via, body(in.Stanza))
	}
	if got := body(in.Stanza); got != text {
		t.Fatalf("%s got %q via %v, want %q", who, got, in.Via, text)
	}
	for _, ch := range in.Stanza.Children {
		if ch.Name.Local == "body" && !ch.Encrypted {
			t.Fatalf("%s: body not marked Encrypted", who)
		}
	}
	sec := in.Security
	if sec.Protocol != client.OMEMOEncrypted || !sec.Sender.Equal(sender.c.JID().Bare()) || sec.Device != sender.id() || sec.Trust != client.TrustBlind {
		t.Fatalf("%s: security record %+v, want sender %s device %s", who, sec, sender.c.JID().Bare(), sender.id())
	}
}

// send sends an encrypted chat message from d to the bare JID to and
// checks that every device in want got a key.
func sendOMEMO(t *testing.T, ctx context.Context, d *omemoDevice, to jid.JID, text string, want ...*omemoDevice) {
	t.Helper()
	rep, err := d.c.SendEncrypted(ctx, client.OMEMOEncrypted, chat(to, text))
	if err != nil {
		t.Fatalf("%s: send %q: %v (report %+v)", d.name, text, err, rep)
	}
	for _, w := range want {
		if !slices.ContainsFunc(rep.Sent(), func(r client.DeviceReport) bool { return r.Device == w.id() }) {
			t.Fatalf("%s: %s got no key: %+v", d.name, w.name, rep.Devices)
		}
	}
}

// noPlaintext checks that Prosody's data directory (offline store,
// archives, PEP) holds none of texts.
func noPlaintext(t *testing.T, srv *prosodytest.Server, texts ...string) {
	t.Helper()
	for _, s := range texts {
		files, err := srv.FilesContaining([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) > 0 {
			t.Fatalf("plaintext %q stored by the server in %v", s, files)
		}
	}
}

func TestIntegrationOMEMO(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	srv := startE2EServer(t)
	aliceJID, bobJID := srv.JID("alice"), srv.JID("bob")

	a1 := startOMEMO(t, ctx, srv, "alice", "a1", nil)
	a2 := startOMEMO(t, ctx, srv, "alice", "a2", nil)
	b1 := startOMEMO(t, ctx, srv, "bob", "b1", nil)
	b2 := startOMEMO(t, ctx, srv, "bob", "b2", nil)
	all := []*omemoDevice{a1, a2, b1, b2}
	for _, d := range all {
		waitKnows(t, d, aliceJID, other(d, a1, a2)...)
		waitKnows(t, d, bobJID, other(d, b1, b2)...)
	}
	// The features are advertised.
	info, err := a1.c.DiscoInfo(ctx, b1.c.JID(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{omemo.NS, omemo.NodeDevices + "+notify", sce.NS, "urn:xmpp:eme:0", "urn:xmpp:hints"} {
		if !info.Has(f) {
			t.Errorf("bob's features lack %s", f)
		}
	}
	// The bundle node is open and keeps every device's item.
	cfg, err := a1.c.NodeConfig(ctx, omemo.NodeBundles)
	if err != nil || cfg["pubsub#max_items"][0] != "max" || cfg["pubsub#access_model"][0] != "open" {
		t.Fatalf("bundles node configuration %v %v", cfg, err)
	}

	var secrets []string
	secret := func(s string) string {
		s = fmt.Sprintf("%s %d", s, time.Now().UnixNano())
		secrets = append(secrets, s)
		return s
	}

	t.Run("both ways", func(t *testing.T) {
		for i := range 3 {
			text := secret("alice to bob " + strconv.Itoa(i))
			sendOMEMO(t, ctx, a1, bobJID, text, b1, b2, a2)
			expectMessage(t, b1, a1, text)
			expectMessage(t, b2, a1, text)
			if in := expectMessage(t, a2, a1, text); in.Via != client.ViaCarbonSent {
				t.Fatalf("a2 got alice's message via %v", in.Via)
			}

			text = secret("bob to alice " + strconv.Itoa(i))
			sendOMEMO(t, ctx, b2, aliceJID, text, a1, a2, b1)
			expectMessage(t, a1, b2, text)
			expectMessage(t, a2, b2, text)
			if in := expectMessage(t, b1, b2, text); in.Via != client.ViaCarbonSent {
				t.Fatalf("b1 got bob's message via %v", in.Via)
			}
		}
		noPlaintext(t, srv, secrets...)
	})

	t.Run("iq", func(t *testing.T) {
		echo := xml.Name{Space: "urn:example:hush:echo", Local: "echo"}
		if err := a1.c.HandleIQ(echo, func(_ context.Context, in *client.Incoming) ([]sce.Element, error) {
			if in.Security == nil || !in.Stanza.Children[0].Encrypted {
				return nil, &client.StanzaError{Type: "auth", Condition: "forbidden"}
			}
			return []sce.Element{sce.TextElement(echo, "re: "+in.Stanza.Children[0].Text())}, nil
		}); err != nil {
			t.Fatal(err)
		}
		q := secret("iq question")
		req := &sce.Stanza{
			Name:     xml.Name{Space: "jabber:client", Local: "iq"},
			Attr:     []xml.Attr{{Name: xml.Name{Local: "type"}, Value: "get"}, {Name: xml.Name{Local: "to"}, Value: a1.c.JID().String()}},
			Children: []sce.Element{sce.TextElement(echo, q)},
		}
		resp, rep, err := b1.c.SendEncryptedIQ(ctx, client.OMEMOEncrypted, req)
		if err != nil {
			t.Fatalf("iq: %v %+v", err, rep)
		}
		if resp.Err != nil || resp.Security == nil || resp.Security.Device != a1.id() {
			t.Fatalf("response %+v", resp)
		}
		var got []string
		for _, ch := range resp.Stanza.Children {
			if ch.Name == echo && ch.Encrypted {
				got = append(got, ch.Text())
			}
		}
		if len(got) != 1 || got[0] != "re: "+q {
			t.Fatalf("response payload %q", got)
		}
		secrets = append(secrets, "re: "+q)
		noPlaintext(t, srv, secrets...)
	})

	t.Run("directed presence", func(t *testing.T) {
		status := secret("presence status")
		p := &sce.Stanza{
			Name:     xml.Name{Space: "jabber:client", Local: "presence"},
			Attr:     []xml.Attr{{Name: xml.Name{Local: "to"}, Value: b2.c.JID().String()}},
			Children: []sce.Element{sce.TextElement(xml.Name{Space: "jabber:client", Local: "status"}, status)},
		}
		if _, err := a2.c.SendEncrypted(ctx, client.OMEMOEncrypted, p); err != nil {
			t.Fatal(err)
		}
		in := b2.pres.next(t, "encrypted presence")
		if in.Err != nil || in.Security == nil || in.Security.Device != a2.id() {
			t.Fatalf("presence %+v", in)
		}
		ok := false
		for _, ch := range in.Stanza.Children {
			ok = ok || (ch.Name.Local == "status" && ch.Encrypted && ch.Text() == status)
		}
		if !ok {
			t.Fatalf("presence without the encrypted status: %+v", in.Stanza)
		}
		noPlaintext(t, srv, secrets...)
	})

	t.Run("device added", func(t *testing.T) {
		b3 := startOMEMO(t, ctx, srv, "bob", "b3", nil)
		for _, d := range []*omemoDevice{a1, a2, b1, b2} {
			waitKnows(t, d, bobJID, other(d, b1, b2, b3)...)
		}
		text := secret("alice to three bobs")
		sendOMEMO(t, ctx, a2, bobJID, text, b1, b2, b3, a1)
		for _, d := range []*omemoDevice{b1, b2, b3, a1} {
			expectMessage(t, d, a2, text)
		}
		text = secret("the new bob speaks")
		sendOMEMO(t, ctx, b3, aliceJID, text, a1, a2, b1, b2)
		for _, d := range []*omemoDevice{a1, a2, b1, b2} {
			expectMessage(t, d, b3, text)
		}
		if err := b3.c.Close(); err != nil {
			t.Fatal(err)
		}
		noPlaintext(t, srv, secrets...)
	})

	t.Run("session repair", func(t *testing.T) {
		// b1 loses its session with a1 (XEP-0384 §6: a broken session).
		if err := b1.o.Manager().ResetSession(a1.o.Manager().Address()); err != nil {
			t.Fatal(err)
		}
		text := secret("into the broken session")
		sendOMEMO(t, ctx, a1, bobJID, text, b1, b2, a2)
		expectMessage(t, b2, a1, text)
		expectMessage(t, a2, a1, text)
		if in := b1.msgs.next(t, "undecryptable message"); !errors.Is(in.Err, omemo.ErrNoSession) {
			t.Fatalf("b1: %v, want ErrNoSession", in.Err)
		}
		// b1 answers with a key exchange in an empty message; once a1 has
		// it, a1's messages reach b1 again.
		if err := b1.o.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		for i := 0; ; i++ {
			text := secret("after the repair " + strconv.Itoa(i))
			sendOMEMO(t, ctx, a1, bobJID, text, b1, b2, a2)
			expectMessage(t, b2, a1, text)
			expectMessage(t, a2, a1, text)
			in := b1.msgs.next(t, "message after the repair")
			if in.Err == nil {
				checkSecure(t, "b1", in, a1, text)
				break
			}
			if i == 20 {
				t.Fatalf("session not repaired: %v", in.Err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		noPlaintext(t, srv, secrets...)
	})

	t.Run("restart", func(t *testing.T) {
		text := secret("before the restart")
		sendOMEMO(t, ctx, b1, aliceJID, text, a1, a2)
		expectMessage(t, a1, b1, text)
		expectMessage(t, a2, b1, text)
		expectMessage(t, b2, b1, text)
		if err := a1.c.Close(); err != nil {
			t.Fatal(err)
		}
		old := a1
		a1 = startOMEMO(t, ctx, srv, "alice", "a1", old.store)
		if a1.id() != old.id() {
			t.Fatalf("device id changed across the restart: %s → %s", old.id(), a1.id())
		}
		text = secret("after the restart")
		sendOMEMO(t, ctx, b1, aliceJID, text, a1, a2)
		expectMessage(t, a1, b1, text)
		expectMessage(t, a2, b1, text)
		expectMessage(t, b2, b1, text)
		text = secret("restarted alice answers")
		sendOMEMO(t, ctx, a1, bobJID, text, b1, b2, a2)
		expectMessage(t, b1, a1, text)
		expectMessage(t, b2, a1, text)
		expectMessage(t, a2, a1, text)
		noPlaintext(t, srv, secrets...)
	})

	// Nothing else arrived: no undecryptable stanza, no empty message
	// reached a handler.
	for _, d := range []*omemoDevice{a1, a2, b1, b2} {
		d.msgs.none(t, d.name+" extra message", 100*time.Millisecond)
	}
}

// other returns devs without d.
func other(d *omemoDevice, devs ...*omemoDevice) []*omemoDevice {
	return slices.DeleteFunc(slices.Clone(devs), func(e *omemoDevice) bool { return e == d })
}

func TestIntegrationOMEMOOffline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	srv := startE2EServer(t)
	aliceJID, bobJID := srv.JID("alice"), srv.JID("bob")

	a1 := startOMEMO(t, ctx, srv, "alice", "a1", nil)
	a2 := startOMEMO(t, ctx, srv, "alice", "a2", nil)
	b1 := startOMEMO(t, ctx, srv, "bob", "b1", nil)
	b2 := startOMEMO(t, ctx, srv, "bob", "b2", nil)
	for _, d := range []*omemoDevice{a1, a2} {
		waitKnows(t, d, bobJID, b1, b2)
	}
	waitKnows(t, b1, aliceJID, a1, a2)
	waitKnows(t, b2, aliceJID, a1, a2)
	for _, d := range []*omemoDevice{b1, b2} {
		if err := d.c.Close(); err != nil {
			t.Fatal(err)
		}
	}

	// Both of bob's devices are offline: the server stores the message
	// and delivers it to the first device that connects (XEP-0160); the
	// second finds it in the archive.
	text := fmt.Sprintf("while bob was away %d", time.Now().UnixNano())
	sendOMEMO(t, ctx, a1, bobJID, text, b1, b2, a2)
	expectMessage(t, a2, a1, text)
	// A round trip orders the offline storage before bob connects.
	if _, err := a1.c.DiscoInfo(ctx, jid.MustParse(srv.Domain), ""); err != nil {
		t.Fatal(err)
	}
	noPlaintext(t, srv, text)

	b1 = startOMEMO(t, ctx, srv, "bob", "b1", b1.store)
	if in := expectMessage(t, b1, a1, text); in.Via != client.ViaOffline {
		t.Fatalf("b1 got the message via %v", in.Via)
	}
	b2 = startOMEMO(t, ctx, srv, "bob", "b2", b2.store)
	var got []*client.Incoming
	err := b2.c.CatchUp(ctx, client.ArchiveQuery{With: aliceJID, Max: client.MaxArchivePage}, func(in *client.Incoming) error {
		got = append(got, in)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Via != client.ViaArchive {
		t.Fatalf("b2 caught up %d messages", len(got))
	}
	checkSecure(t, "b2", got[0], a1, text)
	noPlaintext(t, srv, text)
}

func TestIntegrationOMEMOCatchUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*e2eTimeout)
	defer cancel()
	srv := startE2EServer(t)
	bobJID := srv.JID("bob")

	a1 := startOMEMO(t, ctx, srv, "alice", "a1", nil)
	b1 := startOMEMO(t, ctx, srv, "bob", "b1", nil)
	b2 := startOMEMO(t, ctx, srv, "bob", "b2", nil)
	waitKnows(t, a1, bobJID, b1, b2)
	if err := b2.c.Close(); err != nil {
		t.Fatal(err)
	}

	// 500 messages while b2 is away; b1 is online, so they are not kept
	// as offline messages but only in the archive.
	const n = 500
	prefix := fmt.Sprintf("archived secret %d #", time.Now().UnixNano())
	start := time.Now()
	for i := range n {
		if _, err := a1.c.SendEncrypted(ctx, client.OMEMOEncrypted, chat(bobJID, prefix+strconv.Itoa(i))); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	for i := range n {
		expectMessage(t, b1, a1, prefix+strconv.Itoa(i))
	}
	t.Logf("%d messages sent and received live in %v", n, time.Since(start))

	b2 = startOMEMO(t, ctx, srv, "bob", "b2", b2.store)
	start = time.Now()
	var got []*client.Incoming
	err := b2.c.CatchUp(ctx, client.ArchiveQuery{Max: client.MaxArchivePage}, func(in *client.Incoming) error {
		got = append(got, in)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("caught up %d messages in %v", len(got), time.Since(start))
	if len(got) != n {
		t.Fatalf("caught up %d messages, want %d", len(got), n)
	}
	for i, in := range got {
		checkSecure(t, "b2", in, a1, prefix+strconv.Itoa(i))
	}
	// The archive is read again: every message is a duplicate now.
	var again int
	if err := b2.c.CatchUp(ctx, client.ArchiveQuery{Max: client.MaxArchivePage}, func(*client.Incoming) error { again++; return nil }); err != nil || again != 0 {
		t.Fatalf("second catch-up: %v, %d messages", err, again)
	}
	// After the catch-up b2 is an ordinary device.
	text := fmt.Sprintf("after the catch-up %d", time.Now().UnixNano())
	sendOMEMO(t, ctx, a1, bobJID, text, b1, b2)
	expectMessage(t, b1, a1, text)
	expectMessage(t, b2, a1, text)
	noPlaintext(t, srv, prefix, text)
}

// BenchmarkIntegrationOMEMOThroughput measures messages per second from
// one client to another through Prosody on loopback, plaintext and OMEMO
// 2 in the same run (b.N messages each, sent as fast as the sender can,
// counted when the receiver's handler has them decrypted), and reports
// their ratio (issue 7: at least 0.8).
func BenchmarkIntegrationOMEMOThroughput(b *testing.B) {
	srv := prosodytest.Start(b, prosodytest.Options{Users: []string{"alice", "bob"}})
	ctx := context.Background()
	dial := func(user string) *client.Client {
		c, err := client.Dial(ctx, srv.JID(user), srv.Password(user), &client.Options{Addr: srv.Addr, PlainLoopback: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		return c
	}
	alice, bob := dial("alice"), dial("bob")
	got := make(chan *client.Incoming, 1024)
	bob.HandleMessage(func(_ context.Context, in *client.Incoming) { got <- in })
	oa, err := client.NewOMEMO(ctx, alice, memstore.New(), nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := client.NewOMEMO(ctx, bob, memstore.New(), nil); err != nil {
		b.Fatal(err)
	}
	for _, c := range []*client.Client{alice, bob} {
		if err := c.Online(ctx); err != nil {
			b.Fatal(err)
		}
	}
	to := bob.JID()
	// The key exchange and its answer happen before the clock starts.
	if err := oa.RefreshDevices(ctx, to.Bare()); err != nil {
		b.Fatal(err)
	}
	if _, err := alice.SendEncrypted(ctx, client.OMEMOEncrypted, chat(to, "warm-up")); err != nil {
		b.Fatal(err)
	}
	if in := <-got; in.Err != nil || in.Security == nil {
		b.Fatalf("warm-up: %+v", in)
	}

	// The control: a plaintext message as long on the wire as the OMEMO 2
	// one (its body padded), to tell the server's cost per byte from
	// hush's.
	text := func(i int) string {
		return "benchmark message of an ordinary length for a chat, number " + strconv.Itoa(i)
	}
	sealed, _, err := oa.Encrypt(ctx, chat(to, text(0)))
	if err != nil {
		b.Fatal(err)
	}
	encSize, err1 := sealed.Marshal()
	plainSize, err2 := chat(to, text(0)).Marshal()
	if err1 != nil || err2 != nil {
		b.Fatal(err1, err2)
	}
	padding := strings.Repeat("x", max(0, len(encSize)-len(plainSize)))

	// Rounds alternate between plaintext, OMEMO 2 and the sized plaintext
	// so that the load of the (shared) machine weighs on all alike.
	const round = 100
	run := func(encrypted, sized bool, n int) time.Duration {
		start := time.Now()
		errc := make(chan error, 1)
		go func() {
			for i := range n {
				msg := chat(to, text(i))
				if sized {
					msg = chat(to, text(i)+padding)
				}
				var err error
				if encrypted {
					_, err = alice.SendEncrypted(ctx, client.OMEMOEncrypted, msg)
				} else {
					err = alice.Send(ctx, msg)
				}
				if err != nil {
					errc <- err
					return
				}
			}
		}()
		for i := range n {
			select {
			case in := <-got:
				if in.Err != nil || (in.Security != nil) != encrypted {
					b.Fatalf("message %d: %+v", i, in)
				}
			case err := <-errc:
				b.Fatal(err)
			case <-time.After(waitTimeout):
				b.Fatalf("received %d of %d", i, n)
			}
		}
		return time.Since(start)
	}
	// CPU time of Prosody and of this process per phase: on a loaded
	// machine wall-clock rates swing with the neighbours' load, the CPU
	// spent per message does not.
	pid := prosodyPID(b, srv)
	cpu := func() time.Duration { return prosodyCPU(b, pid) + selfCPU(b) }
	b.ResetTimer()
	var plain, enc, sized, plainCPU, encCPU, sizedCPU, plainSelf, encSelf time.Duration
	for done := 0; done < b.N; done += round {
		n := min(round, b.N-done)
		c0, s0 := cpu(), selfCPU(b)
		plain += run(false, false, n)
		c1, s1 := cpu(), selfCPU(b)
		enc += run(true, false, n)
		c2, s2 := cpu(), selfCPU(b)
		sized += run(false, true, n)
		c3 := cpu()
		plainCPU += c1 - c0
		encCPU += c2 - c1
		sizedCPU += c3 - c2
		plainSelf += s1 - s0
		encSelf += s2 - s1
	}
	b.ReportMetric(float64(plainSelf.Microseconds())/float64(b.N), "plain-go-µs/msg")
	b.ReportMetric(float64(encSelf.Microseconds())/float64(b.N), "omemo2-go-µs/msg")
	b.StopTimer()
	pr := float64(b.N) / plain.Seconds()
	er := float64(b.N) / enc.Seconds()
	b.ReportMetric(float64(plainCPU.Microseconds())/float64(b.N), "plain-cpu-µs/msg")
	b.ReportMetric(float64(encCPU.Microseconds())/float64(b.N), "omemo2-cpu-µs/msg")
	b.ReportMetric(float64(plainCPU)/float64(encCPU), "cpu-ratio")
	b.ReportMetric(pr, "plain-msgs/s")
	b.ReportMetric(er, "omemo2-msgs/s")
	b.ReportMetric(er/pr, "ratio")
	sr := float64(b.N) / sized.Seconds()
	b.ReportMetric(float64(len(encSize)), "omemo2-stanza-bytes")
	b.ReportMetric(float64(sizedCPU.Microseconds())/float64(b.N), "sized-cpu-µs/msg")
	b.ReportMetric(sr/pr, "sized-ratio")
	b.ReportMetric(er/sr, "omemo2-vs-sized")
}

// clockTick is the unit of /proc/PID/stat CPU times (USER_HZ, 100 on
// Linux).
const clockTick = 10 * time.Millisecond

// prosodyPID returns the process id of the Prosody of srv, found by its
// configuration path in /proc.
func prosodyPID(tb testing.TB, srv *prosodytest.Server) string {
	tb.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		tb.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err == nil && bytes.Contains(cmd, []byte(srv.ConfigPath)) && !bytes.Contains(cmd, []byte("prosodyctl")) {
			return d.Name()
		}
	}
	tb.Fatal("prosody process not found")
	return ""
}

// prosodyCPU returns the CPU time process pid used so far.
func prosodyCPU(tb testing.TB, pid string) time.Duration {
	tb.Helper()
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the parenthesised command: state is field 3, utime 14
	// and stime 15.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) < 13 {
		tb.Fatalf("/proc/%s/stat: %q", pid, stat)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		tb.Fatalf("/proc/%s/stat: %q", pid, stat)
	}
	return time.Duration(ut+st) * clockTick
}

// selfCPU returns the CPU time this process used so far.
func selfCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
