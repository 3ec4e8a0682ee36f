//go:build integration

package main

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"hush.im/internal/prosodytest"
)

func TestIntegrationDoctor(t *testing.T) {
	srv := prosodytest.Start(t, prosodytest.Options{Users: []string{"alice", "bob", "carol"}})
	alice, bob := addAccount(t, srv, "alice"), addAccount(t, srv, "bob")
	alice.ownDevice(t)
	bob.ownDevice(t)
	bobJID, carolJID := srv.JID("bob").String(), srv.JID("carol").String()

	code, stdout, stderr := alice.hush(t, "", "doctor", bobJID)
	if code != 0 {
		t.Fatalf("doctor: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{
		`(?m)^ok +server supports PEP`,
		`(?m)^ok +server supports publish-options`,
		`(?m)^ok +own device list has 1 device, this one included$`,
		`(?m)^ok +own bundle is fetchable, \d+ prekeys left$`,
		`(?m)^ok +own legacy device list has 1 device, this one included$`,
		`(?m)^ok +own legacy bundle is fetchable, \d+ prekeys left$`,
		`(?m)^info +no OX key`,
		`(?m)^ok +` + regexp.QuoteMeta(bobJID) + ` announces OMEMO 2 \(1 device\), legacy OMEMO \(1 device\)$`,
		`(?m)^healthy$`,
	} {
		if !regexp.MustCompile(want).MatchString(stdout) {
			t.Errorf("doctor output lacks %s:\n%s", want, stdout)
		}
	}

	// bob gets an OX key: doctor sees it announced, alice sees both
	// protocols of bob.
	if code, _, stderr := bob.hush(t, "", "listen", "--ox", "--timeout", "1s"); code != 0 {
		t.Fatalf("listen --ox: exit %d\n%s", code, stderr)
	}
	if code, stdout, stderr := bob.hush(t, "", "doctor"); code != 0 || !regexp.MustCompile(`(?m)^ok +own OX key [0-9A-F]+ is announced$`).MatchString(stdout) {
		t.Fatalf("doctor with OX: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, stderr := alice.hush(t, "", "doctor", bobJID); code != 0 || !strings.Contains(stdout, bobJID+" announces OMEMO 2 (1 device), legacy OMEMO (1 device), OX (1 key)") {
		t.Fatalf("doctor %s: exit %d\n%s%s", bobJID, code, stdout, stderr)
	}

	// carol never used an encrypting client: a problem, exit 1.
	code, stdout, stderr = alice.hush(t, "", "doctor", carolJID)
	if code != 1 || !strings.Contains(stdout, "PROBLEM  "+carolJID+" announces no OMEMO 2, legacy OMEMO or OX keys") || !strings.Contains(stderr, "hush: error: doctor: 1 problem\n") {
		t.Fatalf("doctor %s: exit %d\n%s%s", carolJID, code, stdout, stderr)
	}
}

// TestIntegrationListenInbox: what listen has not printed stays in the
// store inbox and comes out on the next listen, once.
func TestIntegrationListenInbox(t *testing.T) {
	srv := prosodytest.Start(t, prosodytest.Options{Users: []string{"alice", "bob"}})
	alice, bob := addAccount(t, srv, "alice"), addAccount(t, srv, "bob")
	aliceDev := alice.ownDevice(t)
	bob.ownDevice(t)
	bobJID := srv.JID("bob").String()
	texts := []string{fmt.Sprintf("first %d", time.Now().UnixNano()), fmt.Sprintf("second %d", time.Now().UnixNano())}
	for _, text := range texts {
		if code, _, stderr := alice.hush(t, "", "send", bobJID, text); code != 0 {
			t.Fatalf("send: exit %d\n%s", code, stderr)
		}
	}
	// Both arrive from the offline store when bob comes online; listen
	// prints one, the other waits in the inbox (the server has handed it
	// over already).
	code, stdout, stderr := bob.hush(t, "", "listen", "--count", "1", "--timeout", "30s")
	line := func(text string) string {
		return fmt.Sprintf("%s [device %s, omemo2, blind]: %s\n", srv.JID("alice"), aliceDev, text)
	}
	if code != 0 || stdout != line(texts[0]) {
		t.Fatalf("first listen: exit %d, stdout %q\n%s", code, stdout, stderr)
	}
	time.Sleep(time.Second) // let the server flush its offline store
	code, stdout, stderr = bob.hush(t, "", "listen", "--count", "1", "--timeout", "10s")
	if code != 0 || stdout != line(texts[1]) {
		t.Fatalf("second listen: exit %d, stdout %q\n%s", code, stdout, stderr)
	}
	code, stdout, _ = bob.hush(t, "", "listen", "--count", "1", "--timeout", "2s")
	if code != exitTimeout || stdout != "" {
		t.Fatalf("third listen: exit %d, stdout %q (shown twice?)", code, stdout)
	}

	// listen dies while printing (its output is gone): the message,
	// already taken from the server, waits in the inbox for the next one.
	third := fmt.Sprintf("third %d", time.Now().UnixNano())
	if code, _, stderr := alice.hush(t, "", "send", bobJID, third); code != 0 {
		t.Fatalf("send: exit %d\n%s", code, stderr)
	}
	var errb strings.Builder
	code = run([]string{"listen", "--store", bob.dir, "--count", "1", "--timeout", "30s"}, strings.NewReader(""), brokenWriter{}, &errb)
	if code != 1 || !strings.Contains(errb.String(), "output closed") {
		t.Fatalf("listen with broken output: exit %d\n%s", code, errb.String())
	}
	code, stdout, stderr = bob.hush(t, "", "listen", "--count", "1", "--timeout", "10s")
	if code != 0 || stdout != line(third) {
		t.Fatalf("listen after a broken one: exit %d, stdout %q\n%s", code, stdout, stderr)
	}
	code, stdout, _ = bob.hush(t, "", "listen", "--count", "1", "--timeout", "2s")
	if code != exitTimeout || stdout != "" {
		t.Fatalf("listen: exit %d, stdout %q (shown twice?)", code, stdout)
	}
}

// brokenWriter fails every write, like a closed pipe.
type brokenWriter struct{}

func (brokenWriter) Write([]byte) (int, error) { return 0, errors.New("output closed") }
