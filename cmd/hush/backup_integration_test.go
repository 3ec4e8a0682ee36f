//go:build integration

package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"hush.im/client"
	"hush.im/internal/prosodytest"
	"hush.im/ox"
)

func TestIntegrationBackupRestore(t *testing.T) {
	srv := prosodytest.Start(t, prosodytest.Options{Users: []string{"alice", "bob"}})
	alice := addAccount(t, srv, "alice")
	aliceJID := srv.JID("alice").String()

	// No key yet: nothing to back up, nothing to restore.
	if code, _, stderr := alice.hush(t, "", "backup"); code != 1 || !strings.Contains(stderr, "has no OX key") {
		t.Fatalf("backup without a key: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := alice.hush(t, "", "restore", "--code", "TWNK-KD5Y-MT3T-E1GS-DRDB-KVTW"); code != 1 || !strings.Contains(stderr, "no backup of "+aliceJID) {
		t.Fatalf("restore without a backup: exit %d\n%s", code, stderr)
	}

	if code, _, stderr := alice.hush(t, "", "listen", "--ox", "--timeout", "1s"); code != 0 {
		t.Fatalf("listen --ox: exit %d\n%s", code, stderr)
	}
	code, stdout, stderr := runHush(t, "", "ox", "keys", "--store", alice.dir)
	m := regexp.MustCompile(`(?m)^([0-9A-F]{40})  \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  this device's key$`).FindStringSubmatch(stdout)
	if code != 0 || m == nil {
		t.Fatalf("ox keys: exit %d\n%s%s", code, stdout, stderr)
	}
	fpr := m[1]

	code, stdout, stderr = alice.hush(t, "", "backup")
	cm := regexp.MustCompile(`(?m)^hush: backup code: ([0-9A-Z]{4}(?:-[0-9A-Z]{4}){5})$`).FindStringSubmatch(stderr)
	if code != 0 || cm == nil || !strings.Contains(stdout, "backed up OX key "+fpr) || strings.Contains(stdout, cm[1]) {
		t.Fatalf("backup: exit %d\n%s%s", code, stdout, stderr)
	}
	backupCode := cm[1]

	// The backup node is private: bob cannot read it (XEP-0373 §5.3).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bobFull, _ := srv.JID("bob").WithResource("test")
	c, err := client.Dial(ctx, bobFull, srv.Password("bob"), &client.Options{Addr: srv.Addr, PlainLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	items, err := c.FetchItems(ctx, srv.JID("alice"), ox.NodeSecretKey)
	c.Close()
	if err == nil && len(items) > 0 {
		t.Fatalf("bob read alice's secret-key backup: %d items", len(items))
	}

	// A second device of alice restores it: wrong code, then the right
	// one (from standard input), then again (already there).
	alice2 := addAccount(t, srv, "alice")
	if code, _, stderr := alice2.hush(t, "", "restore", "--code", "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA"); code != 1 || !strings.Contains(stderr, "wrong backup code") {
		t.Fatalf("restore with a wrong code: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := alice2.hush(t, "", "restore"); code != exitUsage || !strings.Contains(stderr, "no backup code") {
		t.Fatalf("restore without a code: exit %d\n%s", code, stderr)
	}
	if code, stdout, stderr := alice2.hush(t, strings.ToLower(backupCode)+"\n", "restore"); code != 0 || !strings.Contains(stdout, "restored OX key "+fpr) {
		t.Fatalf("restore: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, stderr := alice2.hush(t, "", "restore", "--code", backupCode); code != 0 || !strings.Contains(stdout, "already in") {
		t.Fatalf("restore again: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, stderr := runHush(t, "", "ox", "keys", "--store", alice2.dir, aliceJID); code != 0 || !strings.Contains(stdout, fpr+"  ") || !strings.Contains(stdout, "this device's key") {
		t.Fatalf("ox keys on the restored device: exit %d\n%s%s", code, stdout, stderr)
	}
	// bob has no OX key.
	bob := addAccount(t, srv, "bob")
	if code, _, stderr := runHush(t, "", "ox", "keys", "--store", bob.dir); code != 1 || !strings.Contains(stderr, "announces no OX key") {
		t.Fatalf("ox keys without keys: exit %d\n%s", code, stderr)
	}
}
