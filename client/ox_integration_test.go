//go:build integration

package client_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"hush.im/client"
	"hush.im/internal/prosodytest"
	"hush.im/ox"
)

// oxDevice is one OX client of an account, with a key of its own.
type oxDevice struct {
	name string
	c    *client.Client
	o    *client.OX
	msgs *inbox[*client.Incoming]
}

func (d *oxDevice) fpr() string { return d.o.Key().Fingerprint().String() }

func startOX(t *testing.T, ctx context.Context, srv *prosodytest.Server, user, resource string) *oxDevice {
	t.Helper()
	d := &oxDevice{name: user + "/" + resource, c: dialPlain(t, ctx, srv, user, resource)}
	d.msgs = messageInbox(d.c)
	key, err := ox.GenerateKey(srv.JID(user), ox.Curve25519)
	if err != nil {
		t.Fatal(err)
	}
	if d.o, err = client.NewOX(ctx, d.c, key, nil); err != nil {
		t.Fatalf("%s: NewOX: %v", d.name, err)
	}
	if err := d.c.EnableCarbons(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.c.Online(ctx); err != nil {
		t.Fatal(err)
	}
	return d
}

// waitKeys waits until observer knows the keys of every device in devs
// as announced keys of bare (kept current by metadata events).
func waitKeys(t *testing.T, ctx context.Context, observer *oxDevice, bare jid.JID, devs ...*oxDevice) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		keys, err := observer.o.Keys(ctx, bare)
		if err != nil {
			t.Fatal(err)
		}
		missing := 0
		for _, d := range devs {
			if !slices.ContainsFunc(keys, func(k *ox.Key) bool { return k.Fingerprint() == d.o.Key().Fingerprint() }) {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not know %d keys of %s", observer.name, missing, bare)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func expectOX(t *testing.T, d, sender *oxDevice, text string) *client.Incoming {
	t.Helper()
	in := d.msgs.next(t, d.name+" message "+strconv.Quote(text))
	if in.Err != nil {
		t.Fatalf("%s: %v (via %v)", d.name, in.Err, in.Via)
	}
	sec := in.Security
	if sec == nil || sec.Protocol != client.OXEncrypted || !sec.Sender.Equal(sender.c.JID().Bare()) || sec.Device != sender.fpr() {
		t.Fatalf("%s: security record %+v, want %s key %s", d.name, sec, sender.c.JID().Bare(), sender.fpr())
	}
	found := false
	for _, ch := range in.Stanza.Children {
		if ch.Name.Local == "body" {
			if !ch.Encrypted || ch.Text() != text || found {
				t.Fatalf("%s: body %q (encrypted %v), want %q", d.name, ch.Text(), ch.Encrypted, text)
			}
			found = true
		}
	}
	if !found {
		t.Fatalf("%s: no body", d.name)
	}
	return in
}

func TestIntegrationOX(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	srv := startE2EServer(t)
	aliceJID, bobJID := srv.JID("alice"), srv.JID("bob")
	a1 := startOX(t, ctx, srv, "alice", "a1")
	a2 := startOX(t, ctx, srv, "alice", "a2")
	b1 := startOX(t, ctx, srv, "bob", "b1")
	b2 := startOX(t, ctx, srv, "bob", "b2")
	for _, d := range []*oxDevice{a1, a2, b1, b2} {
		waitKeys(t, ctx, d, aliceJID, a1, a2)
		waitKeys(t, ctx, d, bobJID, b1, b2)
	}
	info, err := a1.c.DiscoInfo(ctx, b2.c.JID(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{ox.NSIM, ox.FeaturePublicKeysNotify} {
		if !info.Has(f) {
			t.Errorf("bob's features lack %s", f)
		}
	}

	var secrets []string
	for i := range 2 {
		text := fmt.Sprintf("ox alice to bob %d %d", i, time.Now().UnixNano())
		secrets = append(secrets, text)
		rep, err := a1.c.SendEncrypted(ctx, client.OXEncrypted, chat(bobJID, text))
		if err != nil {
			t.Fatalf("send: %v %+v", err, rep)
		}
		for _, d := range []*oxDevice{a1, a2, b1, b2} {
			if !slices.ContainsFunc(rep.Sent(), func(r client.DeviceReport) bool { return r.Device == d.fpr() }) {
				t.Fatalf("not encrypted to %s: %+v", d.name, rep.Devices)
			}
		}
		expectOX(t, b1, a1, text)
		expectOX(t, b2, a1, text)
		if in := expectOX(t, a2, a1, text); in.Via != client.ViaCarbonSent {
			t.Fatalf("a2 got it via %v", in.Via)
		}

		text = fmt.Sprintf("ox bob to alice %d %d", i, time.Now().UnixNano())
		secrets = append(secrets, text)
		if _, err := b2.c.SendEncrypted(ctx, client.OXEncrypted, chat(aliceJID, text)); err != nil {
			t.Fatal(err)
		}
		expectOX(t, a1, b2, text)
		expectOX(t, a2, b2, text)
		if in := expectOX(t, b1, b2, text); in.Via != client.ViaCarbonSent {
			t.Fatalf("b1 got it via %v", in.Via)
		}
	}
	noPlaintext(t, srv, secrets...)

	// The archive keeps OX messages readable (XEP-0374 §1): b1 reads them
	// back.
	var got int
	err = b1.c.CatchUp(ctx, client.ArchiveQuery{With: aliceJID, Max: client.MaxArchivePage}, func(in *client.Incoming) error {
		if in.Err != nil || in.Security == nil {
			return fmt.Errorf("archived message: %v", in.Err)
		}
		got++
		return nil
	})
	if err != nil || got != len(secrets) {
		t.Fatalf("archive: %v, %d messages", err, got)
	}
	for _, d := range []*oxDevice{a1, a2, b1, b2} {
		d.msgs.none(t, d.name+" extra message", 100*time.Millisecond)
	}
}
