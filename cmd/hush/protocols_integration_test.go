//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"hush.im/client"
	"hush.im/internal/prosodytest"
	"hush.im/ox"
)

// TestIntegrationSendProtocols: hush send --legacy reaches a hush
// listener as legacy OMEMO; without a flag hush send picks OMEMO for a
// contact with OMEMO devices, OX for a contact that announces only an
// OpenPGP key, and refuses (exit 4, nothing sent) a contact that announces
// neither.
func TestIntegrationSendProtocols(t *testing.T) {
	srv := prosodytest.Start(t, prosodytest.Options{Users: []string{"alice", "bob", "carol", "dave"}})
	alice, bob := addAccount(t, srv, "alice"), addAccount(t, srv, "bob")
	aliceDev, bobDev := alice.ownDevice(t), bob.ownDevice(t)
	bobJID, carolJID, daveJID := srv.JID("bob").String(), srv.JID("carol").String(), srv.JID("dave").String()

	// --legacy: legacy OMEMO alone; bob's listen names the protocol.
	secret := fmt.Sprintf("legacy lighthouse %d", time.Now().UnixNano())
	code, _, stderr := alice.hush(t, "", "send", "--legacy", bobJID, secret)
	if code != 0 || !strings.Contains(stderr, "hush: sent to "+bobJID+" device "+bobDev+"\n") {
		t.Fatalf("send --legacy: exit %d\n%s", code, stderr)
	}
	code, stdout, stderr := bob.hush(t, "", "listen", "--json", "--count", "1", "--timeout", "30s")
	var got listened
	if code != 0 || json.Unmarshal([]byte(stdout), &got) != nil {
		t.Fatalf("listen: exit %d, stdout %q\n%s", code, stdout, stderr)
	}
	if want := (listened{From: srv.JID("alice").String(), Device: aliceDev, Protocol: "legacy", Trust: "blind", Via: "offline", Text: secret}); got != want {
		t.Errorf("listen: got %+v, want %+v", got, want)
	}

	// bob's devices list shows when alice's device last wrote.
	code, stdout, stderr = bob.hush(t, "", "devices", srv.JID("alice").String())
	if last := regexp.MustCompile(`(?m)^` + aliceDev + ` +undecided, session, last message \d{4}-\d\d-\d\d \d\d:\d\d \S+$`); code != 0 || !last.MatchString(stdout) {
		t.Fatalf("devices: exit %d\n%s%s", code, stdout, stderr)
	}

	// No flag, a contact with OMEMO 2 and legacy devices: OMEMO 2.
	secret2 := fmt.Sprintf("newest protocol %d", time.Now().UnixNano())
	if code, _, stderr := alice.hush(t, "", "send", bobJID, secret2); code != 0 {
		t.Fatalf("send: exit %d\n%s", code, stderr)
	}
	code, stdout, stderr = bob.hush(t, "", "listen", "--count", "1", "--timeout", "30s")
	if want := fmt.Sprintf("%s [device %s, omemo2, blind]: %s\n", srv.JID("alice"), aliceDev, secret2); code != 0 || stdout != want {
		t.Fatalf("listen: exit %d, stdout %q, want %q\n%s", code, stdout, want, stderr)
	}

	// dave announces nothing: exit 4, nothing sent.
	code, _, stderr = alice.hush(t, "", "send", daveJID, "never in the clear")
	if code != exitNotSent || !strings.Contains(stderr, "announces no OMEMO device and no OpenPGP key; nothing was sent") {
		t.Fatalf("send to a contact without keys: exit %d\n%s", code, stderr)
	}

	// carol is an OX-only client: no flag picks OX, and carol reads it.
	ctx, carol := dialClient(t, srv, "carol")
	key, err := ox.GenerateKey(srv.JID("carol"), ox.Curve25519)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.NewOX(ctx, carol, key, nil); err != nil {
		t.Fatal(err)
	}
	inbox := make(chan *client.Incoming, 4)
	carol.HandleMessage(func(_ context.Context, in *client.Incoming) { inbox <- in })
	if err := carol.Online(ctx); err != nil {
		t.Fatal(err)
	}
	secret3 := fmt.Sprintf("openpgp only %d", time.Now().UnixNano())
	code, _, stderr = alice.hush(t, "", "send", carolJID, secret3)
	if code != 0 || !strings.Contains(stderr, "hush: sent to "+carolJID) {
		t.Fatalf("send to an OX-only contact: exit %d\n%s", code, stderr)
	}
	select {
	case in := <-inbox:
		if in.Err != nil || in.Security == nil || in.Security.Protocol != client.OXEncrypted || body(in.Stanza) != secret3 {
			t.Fatalf("carol got %+v (err %v)", in.Security, in.Err)
		}
	case <-ctx.Done():
		t.Fatal("carol got nothing")
	}

	for _, s := range []string{secret, secret2, secret3} {
		if files, err := srv.FilesContaining([]byte(s)); err != nil || len(files) > 0 {
			t.Errorf("the server holds %q in %v (%v)", s, files, err)
		}
	}
}

// TestIntegrationPing: hush ping reaches a listening hush end to end
// (an OMEMO 2 IQ answered encrypted); a contact with no client online,
// a full JID nobody uses, and a contact without OMEMO each fail.
func TestIntegrationPing(t *testing.T) {
	srv := prosodytest.Start(t, prosodytest.Options{Users: []string{"alice", "bob", "carol"}})
	alice, bob := addAccount(t, srv, "alice"), addAccount(t, srv, "bob")
	bobDev := bob.ownDevice(t)
	bobJID := srv.JID("bob").String()

	// bob listens for a while; alice pings him.
	done := make(chan string, 1)
	go func() {
		code, stdout, stderr := bob.hush(t, "", "listen", "--timeout", "8s")
		done <- fmt.Sprintf("exit %d\n%s%s", code, stdout, stderr)
	}()
	time.Sleep(500 * time.Millisecond)
	code, stdout, stderr := alice.hush(t, "", "ping", bobJID)
	pong := regexp.MustCompile(`(?m)^bob@localhost/hush-[0-9a-f]+: encrypted pong from device ` + bobDev + ` \(omemo2, blind\) in \d+ms$`)
	if code != 0 || !pong.MatchString(stdout) {
		t.Fatalf("ping: exit %d\n%s%s", code, stdout, stderr)
	}
	// A full JID: the one that answered, and one nobody uses.
	full := strings.TrimSuffix(regexp.MustCompile(`(?m)^(\S+):`).FindStringSubmatch(stdout)[1], ":")
	if code, stdout, stderr := alice.hush(t, "", "ping", full); code != 0 || !pong.MatchString(stdout) {
		t.Fatalf("ping %s: exit %d\n%s%s", full, code, stdout, stderr)
	}
	code, stdout, stderr = alice.hush(t, "", "ping", bobJID+"/nobody")
	if code != 1 || !strings.Contains(stdout, bobJID+"/nobody: no answer: ") || !strings.Contains(stderr, "hush: error: ping: no client of "+bobJID+" answered encrypted") {
		t.Fatalf("ping to an unused resource: exit %d\n%s%s", code, stdout, stderr)
	}
	if got := <-done; !strings.HasPrefix(got, "exit 0\n") {
		t.Fatalf("bob's listen: %s", got)
	}
	// Nobody of bob is online now.
	code, _, stderr = alice.hush(t, "", "ping", bobJID)
	if code != 1 || !strings.Contains(stderr, "hush: error: ping: no client of "+bobJID+" is online") {
		t.Fatalf("ping with bob offline: exit %d\n%s", code, stderr)
	}
	// carol is online with a client that speaks no OMEMO: exit 4.
	ctx, carol := dialClient(t, srv, "carol")
	if err := carol.Online(ctx); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = alice.hush(t, "", "ping", srv.JID("carol").String())
	if code != exitNotSent || !strings.Contains(stderr, "announces no OMEMO 2 device list; nothing was sent") {
		t.Fatalf("ping to a client without OMEMO: exit %d\n%s", code, stderr)
	}
}

// TestIntegrationVerify: alice and bob run hush verify at the same time,
// see the same 6-character string, confirm, and each has the other's key
// verified; a run both users reject verifies nothing; a peer that never
// answers times out (exit 3).
func TestIntegrationVerify(t *testing.T) {
	srv := prosodytest.Start(t, prosodytest.Options{Users: []string{"alice", "bob", "carol"}})
	alice, bob, carol := addAccount(t, srv, "alice"), addAccount(t, srv, "bob"), addAccount(t, srv, "carol")
	aliceDev, bobDev := alice.ownDevice(t), bob.ownDevice(t)
	carol.ownDevice(t)
	aliceJID, bobJID := srv.JID("alice").String(), srv.JID("bob").String()
	sas := regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{6}\n`)

	type result struct {
		code           int
		stdout, stderr string
	}
	both := func(aliceAnswer, bobAnswer string, delay time.Duration) (a, b result) {
		done := make(chan result, 1)
		go func() {
			var r result
			r.code, r.stdout, r.stderr = bob.hush(t, bobAnswer, "verify", "--timeout", "30s", aliceJID)
			done <- r
		}()
		time.Sleep(delay)
		a.code, a.stdout, a.stderr = alice.hush(t, aliceAnswer, "verify", "--timeout", "30s", bobJID)
		return a, <-done
	}

	// Both reject: nothing verified, both exit 1.
	a, b := both("n\n", "n\n", 300*time.Millisecond)
	if a.code != 1 || b.code != 1 || !sas.MatchString(a.stdout) || a.stdout[:6] != b.stdout[:6] || !strings.Contains(a.stderr, "nothing was verified") {
		t.Fatalf("rejected run:\nalice %+v\nbob %+v", a, b)
	}
	// Both start at once (whoever commits first, or both: then the run
	// with the lower SID goes on, see TestSASRunBothStart); both reject.
	a, b = both("n\n", "n\n", 0)
	if a.code != 1 || b.code != 1 || !sas.MatchString(a.stdout) || a.stdout[:7] != b.stdout[:7] {
		t.Fatalf("simultaneous run:\nalice %+v\nbob %+v", a, b)
	}
	// Both confirm: the same string, each key verified.
	a, b = both("y\n", "yes\n", 300*time.Millisecond)
	if a.code != 0 || b.code != 0 || !sas.MatchString(a.stdout) || a.stdout[:7] != b.stdout[:7] {
		t.Fatalf("confirmed run:\nalice %+v\nbob %+v", a, b)
	}
	for _, c := range []struct {
		who      *hushAccount
		peer, id string
	}{{alice, bobJID, bobDev}, {bob, aliceJID, aliceDev}} {
		if out := c.who.hushOut(t, "devices", c.peer); !regexp.MustCompile(`(?m)^` + c.id + ` +verified`).MatchString(out) {
			t.Errorf("%s does not have %s's device %s verified:\n%s", c.who.name, c.peer, c.id, out)
		}
	}
	// carol never answers alice.
	code, _, stderr := alice.hush(t, "", "verify", "--timeout", "3s", srv.JID("carol").String())
	if code != exitTimeout || !strings.Contains(stderr, "did not answer within 3s; nothing was verified") {
		t.Fatalf("verify without an answer: exit %d\n%s", code, stderr)
	}
}

// hushOut runs a command of the account that must succeed and returns its
// standard output.
func (a *hushAccount) hushOut(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := a.hush(t, "", args...)
	if code != 0 {
		t.Fatalf("%s: hush %s: exit %d\n%s", a.name, strings.Join(args, " "), code, stderr)
	}
	return stdout
}

// TestIntegrationArchiveCatchUp: a message that another device of the
// account took from the server while this one was offline is read from
// the archive (XEP-0313) by the next listen, once.
func TestIntegrationArchiveCatchUp(t *testing.T) {
	srv := prosodytest.Start(t, prosodytest.Options{Users: []string{"alice", "bob"}})
	laptop, bob := addAccount(t, srv, "alice"), addAccount(t, srv, "bob")
	phone := addAccount(t, srv, "alice")
	bobDev := bob.ownDevice(t)
	// The phone listens once: its device is announced and its archive
	// cursor starts now.
	if code, _, stderr := phone.hush(t, "", "listen", "--timeout", "1s"); code != 0 {
		t.Fatalf("phone listen: exit %d\n%s", code, stderr)
	}
	laptop.ownDevice(t)

	// The laptop is online and takes bob's message; the phone is not.
	got := make(chan string, 1)
	go func() {
		code, stdout, stderr := laptop.hush(t, "", "listen", "--count", "1", "--timeout", "30s")
		got <- fmt.Sprintf("exit %d\n%s%s", code, stdout, stderr)
	}()
	time.Sleep(time.Second)
	secret := fmt.Sprintf("for both of alice's devices %d", time.Now().UnixNano())
	if code, _, stderr := bob.hush(t, "", "send", srv.JID("alice").String(), secret); code != 0 || strings.Count(stderr, "hush: sent to alice@localhost device") != 2 {
		t.Fatalf("send: exit %d\n%s", code, stderr)
	}
	if out := <-got; !strings.HasPrefix(out, "exit 0\n") || !strings.Contains(out, secret) {
		t.Fatalf("laptop listen: %s", out)
	}
	// The phone reads it from the archive, once.
	code, stdout, stderr := phone.hush(t, "", "listen", "--json", "--count", "1", "--timeout", "30s")
	var m listened
	if code != 0 || json.Unmarshal([]byte(stdout), &m) != nil || m.Text != secret || m.Device != bobDev || m.Via != "archive" {
		t.Fatalf("phone listen: exit %d, %+v\n%s%s", code, m, stdout, stderr)
	}
	if strings.Contains(stderr, "warning") {
		t.Errorf("phone listen warned:\n%s", stderr)
	}
	if code, stdout, _ := phone.hush(t, "", "listen", "--count", "1", "--timeout", "3s"); code != exitTimeout || stdout != "" {
		t.Fatalf("the phone read it twice: exit %d\n%s", code, stdout)
	}
	// What the phone sent itself is in the archive too: no warning, nothing
	// shown.
	if code, _, stderr := phone.hush(t, "", "send", srv.JID("bob").String(), "from the phone"); code != 0 {
		t.Fatalf("phone send: exit %d\n%s", code, stderr)
	}
	if code, stdout, stderr := phone.hush(t, "", "listen", "--timeout", "2s"); code != 0 || stdout != "" || strings.Contains(stderr, "warning") {
		t.Fatalf("phone listen after its own send: exit %d\n%s%s", code, stdout, stderr)
	}
}

// dialClient connects user with package client alone (no hush store), for
// a minute: a client that is not hush.
func dialClient(t *testing.T, srv *prosodytest.Server, user string) (context.Context, *client.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	c, err := client.Dial(ctx, srv.JID(user), srv.Password(user), &client.Options{Addr: srv.Addr, PlainLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return ctx, c
}
