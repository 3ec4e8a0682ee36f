package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNetExitCodes(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv(passwordEnv, "")
	dir := t.TempDir()
	pem := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(pem, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	const acct = "--jid=alice@example.org"
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"send"}, exitUsage, "want JID"},
		{[]string{"send", "--password", "x", "b@example.org", "hi"}, exitUsage, "never a flag"},
		{[]string{"send", "--password=x", "b@example.org", "hi"}, exitUsage, "never a flag"},
		{[]string{"send", "-p", "x", "b@example.org", "hi"}, exitUsage, "never a flag"},
		{[]string{"send", "b@example.org", "hi"}, exitUsage, "--jid is required"},
		{[]string{"send", acct, "b@example.org", "hi"}, exitUsage, "no password"},
		{[]string{"send", acct, "--ox", "--omemo", "b@example.org", "hi"}, exitUsage, "exclude each other"},
		{[]string{"send", acct, "--insecure", "--server", "example.org:5222", "b@example.org", "hi"}, exitUsage, "loopback"},
		{[]string{"send", acct, "--password-file", filepath.Join(dir, "missing"), "b@example.org", "hi"}, 1, "no such file"},
		{[]string{"send", acct, "--ca", pem, "b@example.org", "hi"}, 1, "no PEM certificate"},
		{[]string{"send", acct, "b@example.org", ""}, exitUsage, "empty message"},
		{[]string{"listen", "--count", "-2"}, exitUsage, "negative"},
		{[]string{"listen", "x"}, exitUsage, "unexpected argument"},
		{[]string{"devices", "a@example.org", "b@example.org"}, exitUsage, "unexpected argument"},
		{[]string{"fingerprints", "@"}, exitUsage, "invalid JID"},
		{[]string{"trust", "b@example.org"}, exitUsage, "want JID"},
		{[]string{"distrust", "--store", dir, acct, "b@example.org", "1"}, 1, "no keys of alice@example.org"},
		{[]string{"account", "add"}, exitUsage, "--jid is required"},
		{[]string{"account", "frob"}, exitUsage, "unknown command"},
	} {
		code, _, stderr := runHush(t, "", tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.stderr) {
			t.Errorf("hush %q: exit %d, stderr %q; want exit %d and %q", tc.args, code, stderr, tc.code, tc.stderr)
		}
	}
}

func TestLoopbackAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:5222": true,
		"[::1]:5222":     true,
		"localhost:5222": true,
		"127.8.9.1:1":    true,
		"10.0.0.1:5222":  false,
		"example.org:1":  false,
		"127.0.0.1":      false,
		"":               false,
	} {
		if got := loopbackAddr(addr); got != want {
			t.Errorf("loopbackAddr(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestReadPasswordFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		content, want string
		ok            bool
	}{
		{"secret\n", "secret", true},
		{"secret\r\n", "secret", true},
		{"secret", "secret", true},
		{" two words \n\n", " two words \n", true},
		{"\n", "", false},
		{"", "", false},
		{strings.Repeat("x", maxPasswordFile+1), "", false},
	} {
		p := filepath.Join(dir, "pw")
		if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := readPasswordFile(p)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("readPasswordFile(%q) = %q, %v", tc.content, got, err)
		}
		if err != nil && strings.Contains(err.Error(), tc.content) && tc.content != "" && tc.content != "\n" {
			t.Errorf("error %q holds the file's content", err)
		}
	}
}

func TestSavedAccount(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runHush(t, "", "account", "add", "--store", dir, "--jid", "alice@example.org/ignored", "--password-file", pw, "--server", "127.0.0.1:5222", "--insecure")
	if code != 0 {
		t.Fatalf("account add: exit %d\n%s", code, stderr)
	}
	s, err := loadAccount(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := savedAccount{JID: "alice@example.org", Server: "127.0.0.1:5222", Insecure: true, PasswordFile: pw}
	if *s != want {
		t.Errorf("saved %+v, want %+v", *s, want)
	}
	// Unknown fields are refused, not ignored.
	if err := os.WriteFile(filepath.Join(dir, configName), []byte(`{"jid":"a@b","password":"x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadAccount(dir); err == nil || strings.Contains(err.Error(), `"x"`) {
		t.Errorf("account with a password field: %v", err)
	}
}

func TestDemoXMPPWithoutProsody(t *testing.T) {
	code, stdout, stderr := runHush(t, "", "demo", "xmpp", "--prosody", filepath.Join(t.TempDir(), "prosody"))
	if code != 1 || !strings.Contains(stderr, "hush: error: demo xmpp: prosody: not installed") ||
		!strings.Contains(stderr, "hush: hint: install the Debian package prosody") || stdout != "" {
		t.Errorf("demo xmpp without prosody: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}
	if code, _, _ := runHush(t, "", "demo", "xmpp", "extra"); code != exitUsage {
		t.Errorf("demo xmpp extra: exit %d, want %d", code, exitUsage)
	}
}
