//go:build interop

package main

// Interop through a real Prosody between the hush command and Profanity
// 0.13.1 (Debian package profanity), driven in tmux by
// internal/profanitytest, with legacy OMEMO (XEP-0384 0.3,
// eu.siacs.conversations.axolotl) in both directions and with the session
// built by either side. Run with
//
//	go test -tags interop,integration -run TestInteropProfanity -v ./cmd/hush
//
// Profanity 0.13.1 only announces its device when fetching its own device
// list succeeds or fails with the legacy error code="404"; Prosody 0.12
// answers item-not-found without a code, so Profanity would never publish
// its device list on a fresh account. The test publishes an empty legacy
// device list for Profanity's account first (as any earlier OMEMO client of
// the account would have left), and Profanity adds its device to it.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"hush.im/client"
	"hush.im/internal/profanitytest"
	"hush.im/internal/prosodytest"
	"hush.im/omemo/legacy"
	"hush.im/sce"
)

// profTimeout bounds each wait for Profanity or for hush to see what
// Profanity published.
const profTimeout = 30 * time.Second

func TestInteropProfanity(t *testing.T) {
	began := time.Now()
	profanitytest.Require(t)
	srv := prosodytest.Start(t, prosodytest.Options{Users: []string{"alice", "bob", "carol"}})
	aliceJID, bobJID, carolJID := srv.JID("alice").String(), srv.JID("bob").String(), srv.JID("carol").String()
	bob, carol := addAccount(t, srv, "bob"), addAccount(t, srv, "carol")
	bobDev, carolDev := bob.ownDevice(t), carol.ownDevice(t)

	// alice is Profanity.
	profEmptyDeviceList(t, srv, "alice")
	host, portStr, err := net.SplitHostPort(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		t.Fatal(err)
	}
	prof := profanitytest.Start(t, profanitytest.Options{JID: aliceJID, Password: srv.Password("alice"), Host: host, Port: port})
	prof.Type("/omemo gen")
	profDev := prof.WaitFor(regexp.MustCompile(`Your Device ID is (\d+)\.`), profTimeout)[1]
	prof.Type("/omemo fingerprint")
	profFpr := prof.WaitFor(regexp.MustCompile(`Your OMEMO fingerprint: ((?:[0-9a-f]{8}-){7}[0-9a-f]{8})`), profTimeout)[1]

	// Both sides see the other's keys with the same fingerprints: hush
	// reads Profanity's device list and bundle, Profanity hush's.
	profWaitHushSees(t, bob, aliceJID, profDev, profFpr)
	for _, a := range []*hushAccount{bob, carol} {
		code, stdout, stderr := a.hush(t, "", "fingerprints")
		m := regexp.MustCompile(`(?m)^\d+ +((?:[0-9a-f]{8} ){7}[0-9a-f]{8})  this device$`).FindStringSubmatch(stdout)
		if code != 0 || m == nil {
			t.Fatalf("%s: fingerprints: exit %d\n%s%s", a.name, code, stdout, stderr)
		}
		dev := map[*hushAccount]string{bob: bobDev, carol: carolDev}[a]
		prof.WaitFor(regexp.MustCompile(`Blind trust for `+regexp.QuoteMeta(srv.JID(a.name).String())+` device `+dev+` \(`+strings.ReplaceAll(m[1], " ", "-")+`\)`), profTimeout)
	}

	var secrets []string
	secret := func(what string) string {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			t.Fatal(err)
		}
		s := what + " " + hex.EncodeToString(b[:])
		secrets = append(secrets, s)
		return s
	}

	// 1. Profanity starts the session (a key exchange to hush's bundle);
	// hush reads it from its offline messages.
	prof.Type("/omemo start " + bobJID)
	text := secret("profanity to hush")
	prof.Type(text)
	prof.WaitChatLog(bobJID, "me", text, profTimeout)
	prof.WaitFor(regexp.MustCompile(`~ me: `+regexp.QuoteMeta(text)), profTimeout)
	code, stdout, stderr := bob.hush(t, "", "listen", "--json", "--count", "1", "--timeout", "30s")
	if code != 0 {
		t.Fatalf("bob: listen: exit %d\n%s%s", code, stdout, stderr)
	}
	var got listened
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("bob: listen --json output %q: %v", stdout, err)
	}
	if want := (listened{From: aliceJID, Device: profDev, Protocol: "legacy", Trust: "blind", Via: "offline", Text: text}); got != want {
		t.Fatalf("bob: listen: got %+v, want %+v\n%s", got, want, stderr)
	}

	// 2. hush answers in that session; Profanity shows it decrypted (~ is
	// its OMEMO mark) and logs it.
	text = secret("hush to profanity")
	code, _, stderr = bob.hush(t, "", "send", "--legacy", aliceJID, text)
	if code != 0 || !strings.Contains(stderr, "hush: sent to "+aliceJID+" device "+profDev+"\n") {
		t.Fatalf("bob: send --legacy: exit %d\n%s", code, stderr)
	}
	prof.WaitChatLog(bobJID, bobJID, text, profTimeout)
	prof.WaitFor(regexp.MustCompile(`~ \S+: `+regexp.QuoteMeta(text)), profTimeout)

	// Without a protocol flag hush picks legacy OMEMO, all Profanity
	// announces.
	text = secret("hush picks legacy")
	code, _, stderr = bob.hush(t, "", "send", aliceJID, text)
	if code != 0 || !strings.Contains(stderr, "hush: sent to "+aliceJID+" device "+profDev+"\n") {
		t.Fatalf("bob: send: exit %d\n%s", code, stderr)
	}
	prof.WaitChatLog(bobJID, bobJID, text, profTimeout)
	prof.WaitFor(regexp.MustCompile(`~ \S+: `+regexp.QuoteMeta(text)), profTimeout)

	// 3. hush starts the session (a key exchange to Profanity's bundle);
	// Profanity answers in it and hush reads the answer live.
	text = secret("hush first")
	code, _, stderr = carol.hush(t, "", "send", "--legacy", aliceJID, text)
	if code != 0 || !strings.Contains(stderr, "hush: sent to "+aliceJID+" device "+profDev+"\n") {
		t.Fatalf("carol: send --legacy: exit %d\n%s", code, stderr)
	}
	prof.WaitChatLog(carolJID, carolJID, text, profTimeout)
	prof.Type("/omemo start " + carolJID)
	prof.WaitFor(regexp.MustCompile(`~ \S+: `+regexp.QuoteMeta(text)), profTimeout)
	text = secret("profanity answers")
	prof.Type(text)
	prof.WaitChatLog(carolJID, "me", text, profTimeout)
	code, stdout, stderr = carol.hush(t, "", "listen", "--count", "1", "--timeout", "30s")
	if want := aliceJID + " [device " + profDev + ", legacy, blind]: " + text + "\n"; code != 0 || stdout != want {
		t.Fatalf("carol: listen: exit %d, got %q, want %q\n%s", code, stdout, want, stderr)
	}

	// The server never held a plaintext.
	for _, s := range secrets {
		files, err := srv.FilesContaining([]byte(s))
		if err != nil || len(files) > 0 {
			t.Fatalf("plaintext %q stored by the server in %v (%v)", s, files, err)
		}
	}
	t.Logf("profanity interop: %v", time.Since(began).Round(time.Millisecond))

}

// profEmptyDeviceList publishes an empty legacy OMEMO device list for
// user, open to everyone, so that Profanity 0.13.1 finds the node and adds
// its device (see the file comment).
func profEmptyDeviceList(t *testing.T, srv *prosodytest.Server, user string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), profTimeout)
	defer cancel()
	c, err := client.Dial(ctx, srv.JID(user), srv.Password(user), &client.Options{Addr: srv.Addr, PlainLoopback: true})
	if err != nil {
		t.Fatalf("%s: connecting: %v", user, err)
	}
	defer c.Close()
	el, err := sce.ReadElement(legacy.DeviceList{}.TokenReader())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx, legacy.NodeDeviceList, client.Item{ID: legacy.ItemID, Payload: el}, &client.PublishOptions{AccessModel: client.AccessOpen}); err != nil {
		t.Fatalf("%s: publishing an empty legacy device list: %v", user, err)
	}
}

// profWaitHushSees waits until the hush account a lists device dev of
// contact with the fingerprint fpr (in Profanity's dashed form).
func profWaitHushSees(t *testing.T, a *hushAccount, contact, dev, fpr string) {
	t.Helper()
	want := regexp.MustCompile(`(?m)^` + dev + ` +` + strings.ReplaceAll(fpr, "-", " ") + `  \w+$`)
	deadline := time.Now().Add(profTimeout)
	for {
		code, stdout, stderr := a.hush(t, "", "fingerprints", contact)
		if code == 0 && want.MatchString(stdout) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: fingerprints %s: exit %d, no device %s with fingerprint %s in\n%s%s", a.name, contact, code, dev, fpr, stdout, stderr)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
