//go:build integration

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"hush.im/internal/prosodytest"
	"hush.im/store/bolt"
)

func TestIntegrationSendListen(t *testing.T) {
	srv := prosodytest.Start(t, prosodytest.Options{Users: []string{"alice", "bob", "carol"}})
	alice, bob := addAccount(t, srv, "alice"), addAccount(t, srv, "bob")
	aliceDev, bobDev := alice.ownDevice(t), bob.ownDevice(t)
	if aliceDev == bobDev {
		t.Fatalf("alice and bob have the same device id %s", aliceDev)
	}
	bobJID := srv.JID("bob").String()

	// alice sends while bob is offline; bob reads it from the offline store.
	secret := fmt.Sprintf("Meet me at the lighthouse %d", time.Now().UnixNano())
	code, _, stderr := alice.hush(t, "", "send", bobJID, secret)
	if code != 0 || !strings.Contains(stderr, "hush: sent to "+bobJID+" device "+bobDev+"\n") {
		t.Fatalf("send: exit %d\n%s", code, stderr)
	}
	code, stdout, stderr := bob.hush(t, "", "listen", "--json", "--count", "1", "--timeout", "30s")
	if code != 0 {
		t.Fatalf("listen: exit %d\n%s", code, stderr)
	}
	var got listened
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("listen --json output %q: %v", stdout, err)
	}
	want := listened{From: srv.JID("alice").String(), Device: aliceDev, Protocol: "omemo2", Trust: "blind", Via: "offline", Text: secret}
	if got != want {
		t.Errorf("listen: got %+v, want %+v", got, want)
	}

	// The text from standard input, the plain output format.
	secret2 := fmt.Sprintf("second %d", time.Now().UnixNano())
	if code, _, stderr := alice.hush(t, secret2+"\n", "send", "--omemo", bobJID); code != 0 {
		t.Fatalf("send from stdin: exit %d\n%s", code, stderr)
	}
	code, stdout, stderr = bob.hush(t, "", "listen", "--count", "1", "--timeout", "30s")
	if wantLine := fmt.Sprintf("%s [device %s, omemo2, blind]: %s\n", srv.JID("alice"), aliceDev, secret2); code != 0 || stdout != wantLine {
		t.Fatalf("listen: exit %d, stdout %q, want %q\n%s", code, stdout, wantLine, stderr)
	}

	// Nothing left: --count with --timeout exits 3.
	code, stdout, _ = bob.hush(t, "", "listen", "--count", "1", "--timeout", "2s")
	if code != exitTimeout || stdout != "" {
		t.Fatalf("listen with nothing to read: exit %d, stdout %q", code, stdout)
	}

	// The server never held the plaintext.
	for _, s := range []string{secret, secret2} {
		files, err := srv.FilesContaining([]byte(s))
		if err != nil || len(files) > 0 {
			t.Fatalf("plaintext %q stored by the server in %v (%v)", s, files, err)
		}
	}

	// Live: bob listens while alice sends (if bob is not online yet, the
	// server keeps it offline: it arrives either way). bob's store is in
	// use meanwhile.
	type result struct {
		code           int
		stdout, stderr string
	}
	done := make(chan result, 1)
	go func() {
		code, stdout, stderr := bob.hush(t, "", "listen", "--count", "2", "--timeout", "30s")
		done <- result{code, stdout, stderr}
	}()
	live := []string{fmt.Sprintf("live one %d", time.Now().UnixNano()), fmt.Sprintf("live two %d", time.Now().UnixNano())}
	for _, text := range live {
		if code, _, stderr := alice.hush(t, "", "send", bobJID, text); code != 0 {
			t.Fatalf("send %q: exit %d\n%s", text, code, stderr)
		}
	}
	for inUse := false; !inUse; {
		code, _, stderr := bob.hush(t, "", "devices")
		switch {
		case code == 1 && strings.Contains(stderr, "store in use"):
			inUse = true
		case code == 0:
			// listen has not opened the store yet, or is already done.
			select {
			case r := <-done:
				done <- r
				inUse = true
			default:
				time.Sleep(50 * time.Millisecond)
			}
		default:
			t.Fatalf("devices while listening: exit %d\n%s", code, stderr)
		}
	}
	r := <-done
	if r.code != 0 || r.stdout != fmt.Sprintf("%[1]s [device %[2]s, omemo2, blind]: %[3]s\n%[1]s [device %[2]s, omemo2, blind]: %[4]s\n", srv.JID("alice"), aliceDev, live[0], live[1]) {
		t.Fatalf("live listen: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// Fingerprints and trust: alice verifies bob's key, then distrusts it:
	// after that nothing is sent.
	code, stdout, stderr = alice.hush(t, "", "fingerprints", bobJID)
	m := regexp.MustCompile(`(?m)^` + bobDev + ` +((?:[0-9a-f]{8} ){7}[0-9a-f]{8})  (\w+)$`).FindStringSubmatch(stdout)
	if code != 0 || m == nil || m[2] != "undecided" {
		t.Fatalf("fingerprints: exit %d, no undecided key of device %s in\n%s%s", code, bobDev, stdout, stderr)
	}
	code, stdout, stderr = alice.hush(t, "", "trust", bobJID, m[1])
	if code != 0 || !strings.Contains(stdout, ": verified") {
		t.Fatalf("trust by fingerprint: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, _, stderr := alice.hush(t, "", "send", bobJID, "verified now"); code != 0 {
		t.Fatalf("send to a verified device: exit %d\n%s", code, stderr)
	}
	if code, stdout, stderr := bob.hush(t, "", "listen", "--count", "1", "--timeout", "30s"); code != 0 || !strings.Contains(stdout, "verified now") {
		t.Fatalf("listen: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = alice.hush(t, "", "devices", bobJID)
	if code != 0 || !regexp.MustCompile(`(?m)^`+bobDev+` +verified, session$`).MatchString(stdout) {
		t.Fatalf("devices: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, stderr := alice.hush(t, "", "distrust", bobJID, bobDev); code != 0 || !strings.Contains(stdout, ": distrusted") {
		t.Fatalf("distrust by id: exit %d\n%s%s", code, stdout, stderr)
	}
	code, _, stderr = alice.hush(t, "", "send", bobJID, "must not leave")
	if code != exitNotSent || !strings.Contains(stderr, "hush: skipped "+bobJID+" device "+bobDev+": ") || !strings.Contains(stderr, "nothing was sent") {
		t.Fatalf("send to a distrusted device: exit %d\n%s", code, stderr)
	}
	if code, stdout, _ := bob.hush(t, "", "listen", "--count", "1", "--timeout", "2s"); code != exitTimeout {
		t.Fatalf("bob received something after the refused send: exit %d %q", code, stdout)
	}
}

func TestIntegrationFailures(t *testing.T) {
	srv := prosodytest.Start(t, prosodytest.Options{Users: []string{"alice", "bob"}})
	alice := addAccount(t, srv, "alice")
	alice.ownDevice(t)

	t.Run("unknown contact", func(t *testing.T) {
		for _, to := range []string{srv.JID("bob").String(), "nobody@" + srv.Domain} {
			code, _, stderr := alice.hush(t, "", "send", to, "hello")
			if code != exitNotSent || !strings.Contains(stderr, "nothing was sent") {
				t.Errorf("send to %s (no OMEMO device): exit %d\n%s", to, code, stderr)
			}
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		pw := filepath.Join(t.TempDir(), "wrong")
		if err := os.WriteFile(pw, []byte("not the password"), 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := alice.hush(t, "", "send", "--password-file", pw, srv.JID("bob").String(), "hello")
		if code != 1 || !strings.Contains(stderr, "authentication failed") || !strings.Contains(stderr, "hush: hint: check the password") {
			t.Errorf("wrong password: exit %d\n%s", code, stderr)
		}
		t.Setenv(passwordEnv, "also wrong")
		code, _, stderr = alice.hush(t, "", "listen", "--timeout", "1s")
		if code != 1 || !strings.Contains(stderr, "authentication failed") {
			t.Errorf("wrong %s: exit %d\n%s", passwordEnv, code, stderr)
		}
	})
	t.Run("store in use", func(t *testing.T) {
		st, err := bolt.Open(bolt.Path(alice.dir, srv.JID("alice")), srv.JID("alice"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		code, _, stderr := alice.hush(t, "", "send", srv.JID("bob").String(), "hello")
		if code != 1 || !strings.Contains(stderr, "store in use") || !strings.Contains(stderr, "hush: hint:") {
			t.Errorf("store in use: exit %d\n%s", code, stderr)
		}
	})
	t.Run("server unreachable", func(t *testing.T) {
		code, _, stderr := alice.hush(t, "", "devices", "--server", "127.0.0.1:1")
		if code != 1 || !strings.Contains(stderr, "connecting to 127.0.0.1:1") {
			t.Errorf("unreachable server: exit %d\n%s", code, stderr)
		}
	})
	t.Run("insecure remote", func(t *testing.T) {
		code, _, stderr := alice.hush(t, "", "devices", "--server", "192.0.2.1:5222")
		if code != exitUsage || !strings.Contains(stderr, "loopback") {
			t.Errorf("--insecure to a remote address: exit %d\n%s", code, stderr)
		}
	})
}

func TestIntegrationOX(t *testing.T) {
	srv := prosodytest.Start(t, prosodytest.Options{Users: []string{"alice", "bob", "carol"}})
	alice, bob := addAccount(t, srv, "alice"), addAccount(t, srv, "bob")
	bobJID := srv.JID("bob").String()

	// bob makes and publishes his OX key.
	if code, _, stderr := bob.hush(t, "", "listen", "--ox", "--timeout", "1s"); code != 0 {
		t.Fatalf("listen --ox: exit %d\n%s", code, stderr)
	}
	fi, err := os.Stat(filepath.Join(bob.dir, "bob@localhost.ox.asc"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("bob's OX key: %v %v", fi, err)
	}

	secret := fmt.Sprintf("signcrypted %d", time.Now().UnixNano())
	code, _, stderr := alice.hush(t, "", "send", "--ox", bobJID, secret)
	m := regexp.MustCompile(`(?m)^hush: sent to ` + regexp.QuoteMeta(bobJID) + ` device ([0-9A-F]{40})$`).FindStringSubmatch(stderr)
	if code != 0 || m == nil {
		t.Fatalf("send --ox: exit %d\n%s", code, stderr)
	}
	aliceFPR := regexp.MustCompile(`(?m)^hush: sent to alice@localhost device ([0-9A-F]{40})$`).FindStringSubmatch(stderr)
	if aliceFPR == nil {
		t.Fatalf("send --ox: not encrypted to alice's own key\n%s", stderr)
	}
	code, stdout, stderr := bob.hush(t, "", "listen", "--json", "--count", "1", "--timeout", "30s")
	if code != 0 {
		t.Fatalf("listen: exit %d\n%s", code, stderr)
	}
	var got listened
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("listen --json output %q: %v", stdout, err)
	}
	// bob listened before: the message comes from the archive, read from
	// where he stopped, before the offline store would bring it.
	want := listened{From: srv.JID("alice").String(), Device: aliceFPR[1], Protocol: "ox", Trust: "blind", Via: "archive", Text: secret}
	if got != want {
		t.Errorf("listen: got %+v, want %+v", got, want)
	}
	files, err := srv.FilesContaining([]byte(secret))
	if err != nil || len(files) > 0 {
		t.Fatalf("plaintext stored by the server in %v (%v)", files, err)
	}

	// carol has no OX key: nothing is sent.
	code, _, stderr = alice.hush(t, "", "send", "--ox", srv.JID("carol").String(), "hello")
	if code != exitNotSent || !strings.Contains(stderr, "nothing was sent") {
		t.Fatalf("send --ox to an account without key: exit %d\n%s", code, stderr)
	}
}

func TestIntegrationDemoXMPP(t *testing.T) {
	code, stdout, stderr := runHush(t, "", "demo", "xmpp")
	if code != 0 {
		t.Fatalf("demo xmpp: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^    hush: sent to bob@localhost device \d+$`),
		regexp.MustCompile(`(?m)^    alice@localhost \[device \d+, omemo2, blind\]: Meet me at the lighthouse at nine. Come alone.$`),
		regexp.MustCompile(`(?m)^    \{"from":"bob@localhost","device":"\d+","protocol":"omemo2","trust":"blind","via":"offline","text":"I'll be there."\}$`),
		regexp.MustCompile(`(?m)^    alice@localhost \[device \d+, legacy, blind\]: Bring the old map.$`),
		regexp.MustCompile(`(?m)^    bob@localhost/hush-[0-9a-f]+: encrypted pong from device \d+ \(omemo2, blind\) in \d+ms$`),
		regexp.MustCompile(`(?m)^    bob@localhost( [0-9a-f]{8}){8}: verified$`),
		regexp.MustCompile(`(?m)^    alice@localhost( [0-9a-f]{8}){8}: verified$`),
		regexp.MustCompile(`(?m)^    alice@localhost \[device [0-9A-F]{40}, ox, blind\]: The boat leaves at dawn.$`),
		regexp.MustCompile(`(?m)^    hush: skipped alice@localhost device \d+: untrusted$`),
		regexp.MustCompile(`(?m)^    "this must never leave" in the server's files: nowhere$`),
		regexp.MustCompile(`(?m)^    an excerpt of bob's archive: .*"payload"$`),
	} {
		if !want.MatchString(stdout) {
			t.Errorf("demo xmpp output lacks %s", want)
		}
	}
	if strings.Contains(stdout, " IN ") {
		t.Errorf("demo xmpp: the server stored a plaintext:\n%s", stdout)
	}
}
