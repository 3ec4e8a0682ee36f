package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hush.im/ox"
	"mellium.im/xmpp/jid"
)

// oxRun runs "hush ox args…" in-process.
func oxRun(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(append([]string{"ox"}, args...), strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// oxOK runs a command that must succeed and returns its stdout.
func oxOK(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	code, stdout, stderr := oxRun(t, stdin, args...)
	if code != 0 {
		t.Fatalf("hush ox %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
	}
	return stdout
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// oneLineError checks a failure: exit code, a single "hush: error:" line
// containing want.
func oneLineError(t *testing.T, name string, code int, stderr string, wantCode int, want string) {
	t.Helper()
	if code != wantCode {
		t.Errorf("%s: exit %d, want %d (stderr %q)", name, code, wantCode, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	found := false
	for _, l := range lines {
		if strings.HasPrefix(l, "hush: error: ") && strings.Contains(l, want) {
			found = true
		}
	}
	if !found {
		t.Errorf("%s: stderr %q, want an error with %q", name, stderr, want)
	}
	if wantCode == 1 && len(lines) != 1 {
		t.Errorf("%s: %d lines on stderr, want one: %q", name, len(lines), stderr)
	}
}

func TestOXRoundTrip(t *testing.T) {
	dir := t.TempDir()
	aliceSec := writeFile(t, dir, "alice.sec", oxOK(t, "", "keygen", "--jid", "alice@example.org"))
	bobSec := writeFile(t, dir, "bob.sec", oxOK(t, "", "keygen", "--jid", "bob@example.org"))
	carolSec := writeFile(t, dir, "carol.sec", oxOK(t, "", "keygen", "--jid", "carol@example.org"))
	alicePub := writeFile(t, dir, "alice.pub", oxOK(t, mustRead(t, aliceSec), "public"))
	bobPub := writeFile(t, dir, "bob.pub", oxOK(t, mustRead(t, bobSec), "public"))
	carolPub := writeFile(t, dir, "carol.pub", oxOK(t, mustRead(t, carolSec), "public"))
	if s := mustRead(t, aliceSec); !strings.HasPrefix(s, "-----BEGIN PGP PRIVATE KEY BLOCK-----") {
		t.Fatalf("keygen output:\n%s", s)
	}
	if s := mustRead(t, alicePub); !strings.HasPrefix(s, "-----BEGIN PGP PUBLIC KEY BLOCK-----") {
		t.Fatalf("public output:\n%s", s)
	}
	keys, err := ox.ParseKeys([]byte(mustRead(t, alicePub)))
	if err != nil || len(keys) != 1 || keys[0].IsSecret() || !keys[0].HasJID(mustJIDMain(t, "alice@example.org")) {
		t.Fatalf("public key: %v", err)
	}

	el := oxOK(t, "", "signcrypt", "--key", aliceSec, "--from", "alice@example.org", "--to", "bob@example.org",
		"--recipient-key", bobPub, "--text", "Hi Bob <3 & more")
	if !strings.HasPrefix(el, `<openpgp xmlns="urn:xmpp:openpgp:0">`) || strings.Contains(el, "Hi Bob") {
		t.Fatalf("signcrypt output: %s", el)
	}
	dec := []string{"decrypt", "--key", bobSec, "--sender-key", alicePub, "--from", "alice@example.org/phone", "--to", "bob@example.org"}
	if got := oxOK(t, el, dec...); got != "Hi Bob <3 & more\n" {
		t.Errorf("decrypt: %q", got)
	}
	if got := oxOK(t, el, append(dec, "--xml")...); !strings.HasPrefix(got, `<signcrypt xmlns="urn:xmpp:openpgp:0"><to jid="bob@example.org">`) ||
		!strings.Contains(got, `<body xmlns="jabber:client">Hi Bob &lt;3 &amp; more</body>`) {
		t.Errorf("decrypt --xml: %s", got)
	}
	// Encrypted to self: alice reads her own message.
	if got := oxOK(t, el, "decrypt", "--key", aliceSec, "--sender-key", alicePub, "--from", "alice@example.org", "--to", "bob@example.org"); got != "Hi Bob <3 & more\n" {
		t.Errorf("alice's own copy: %q", got)
	}

	// The body from stdin, the whole stanza out and back in.
	msg := oxOK(t, "Line one\nline two\n", "signcrypt", "--key", aliceSec, "--from", "alice@example.org", "--to", "bob@example.org",
		"--recipient-key", bobPub, "--recipient-key", carolPub, "--stanza")
	for _, want := range []string{`<message xmlns="jabber:client" from="alice@example.org" to="bob@example.org"`, `<store xmlns="urn:xmpp:hints">`,
		`<encryption xmlns="urn:xmpp:eme:0" namespace="urn:xmpp:openpgp:0">`, ox.DefaultFallbackBody, `<openpgp xmlns="urn:xmpp:openpgp:0">`} {
		if !strings.Contains(msg, want) {
			t.Errorf("--stanza output lacks %s:\n%s", want, msg)
		}
	}
	if got := oxOK(t, msg, dec...); got != "Line one\nline two\n" {
		t.Errorf("decrypt of the stanza: %q", got)
	}

	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"wrong sender key", el, []string{"decrypt", "--key", bobSec, "--sender-key", carolPub, "--from", "alice@example.org", "--to", "bob@example.org"}, 1, "bad signature"},
		{"forged from", el, []string{"decrypt", "--key", bobSec, "--sender-key", alicePub, "--from", "carol@example.org", "--to", "bob@example.org"}, 1, "signer is not the sender"},
		{"wrong to", el, []string{"decrypt", "--key", carolSec, "--sender-key", alicePub, "--from", "alice@example.org", "--to", "carol@example.org"}, 1, "not encrypted to any of our keys"},
		{"forwarded to carol", msg, []string{"decrypt", "--key", carolSec, "--sender-key", alicePub, "--from", "alice@example.org", "--to", "carol@example.org"}, 1, "the message's to"},
		{"stale", el, append(slicesClone(dec), "--now", "2030-01-01T00:00:00Z"), 1, "time outside window"},
		{"garbage", "not xml at all", dec, 1, "no <openpgp/> or <message/>"},
		{"other element", "<iq xmlns='jabber:client' type='get'/>", dec, 1, "not <openpgp"},
		{"bad base64", `<openpgp xmlns="urn:xmpp:openpgp:0">!!!</openpgp>`, dec, 1, "not Base64"},
		{"truncated", el[:len(el)/2] + `</openpgp>`, dec, 1, "message rejected"},
		{"public key to decrypt", el, []string{"decrypt", "--key", bobPub, "--sender-key", alicePub, "--from", "alice@example.org", "--to", "bob@example.org"}, 1, "not a secret key"},
		{"missing key file", el, []string{"decrypt", "--key", filepath.Join(dir, "nope"), "--sender-key", alicePub, "--from", "alice@example.org", "--to", "bob@example.org"}, 1, "no such file"},
		{"no --sender-key", el, []string{"decrypt", "--key", bobSec, "--from", "alice@example.org", "--to", "bob@example.org"}, 2, "--sender-key is required"},
		{"no --from", el, []string{"decrypt", "--key", bobSec, "--sender-key", alicePub, "--to", "bob@example.org"}, 2, "--from is required"},
		{"bad --now", el, append(slicesClone(dec), "--now", "yesterday"), 2, "--now"},
		{"signer without the user id", "", []string{"signcrypt", "--key", carolSec, "--from", "alice@example.org", "--to", "bob@example.org", "--recipient-key", bobPub, "--text", "x"}, 1, "signer is not the sender"},
		{"no recipient", "", []string{"signcrypt", "--key", aliceSec, "--from", "alice@example.org", "--to", "bob@example.org", "--text", "x"}, 2, "--recipient-key is required"},
		{"invalid jid", "", []string{"signcrypt", "--key", aliceSec, "--from", "alice@@", "--to", "bob@example.org", "--recipient-key", bobPub}, 2, "invalid JID"},
		{"keygen without jid", "", []string{"keygen"}, 2, "--jid is required"},
		{"extra argument", "", []string{"keygen", "--jid", "a@b", "extra"}, 2, "unexpected argument"},
		{"public of garbage", "garbage", []string{"public"}, 1, "invalid key"},
		{"unknown command", "", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"no command", "", nil, 2, "no command given"},
	} {
		code, _, stderr := oxRun(t, tc.stdin, tc.args...)
		oneLineError(t, tc.name, code, stderr, tc.code, tc.want)
	}
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestOXGoSendxmppVector decrypts the go-sendxmpp-format message made with
// GnuPG by ox/testdata/gen.sh, given as the whole <message/> go-sendxmpp
// sends (no namespace declared).
func TestOXGoSendxmppVector(t *testing.T) {
	td := filepath.Join("..", "..", "ox", "testdata")
	args := []string{"decrypt", "--key", filepath.Join(td, "alice.sec"), "--sender-key", filepath.Join(td, "bob.pub"),
		"--from", "bob@example.org/laptop", "--to", "alice@example.org", "--now", "2026-01-02T03:05:00Z"}
	stdin := mustRead(t, filepath.Join(td, "sendxmpp-signcrypt.xml"))
	if got := oxOK(t, stdin, args...); got != "Hello from go-sendxmpp's format\n" {
		t.Errorf("decrypt: %q", got)
	}
	if got := oxOK(t, stdin, append(args, "--xml")...); !strings.HasPrefix(got, "<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='alice@example.org'/><time stamp='2026-01-02T03:04:05Z'/>") {
		t.Errorf("decrypt --xml: %s", got)
	}
	code, _, stderr := oxRun(t, stdin, append(args[:len(args)-1], "2026-01-02T04:05:00Z")...)
	oneLineError(t, "an hour late", code, stderr, 1, "too old")
}

func TestOXBackupRestore(t *testing.T) {
	dir := t.TempDir()
	sec := oxOK(t, "", "keygen", "--jid", "alice@example.org")
	aliceSec := writeFile(t, dir, "alice.sec", sec)
	code, backup, stderr := oxRun(t, "", "backup", "--key", aliceSec)
	if code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, stderr)
	}
	backupCode := strings.TrimSpace(stderr)
	if len(backupCode) != ox.BackupCodeLen || strings.Count(backupCode, "-") != 5 {
		t.Fatalf("backup code %q", stderr)
	}
	if !strings.HasPrefix(backup, `<secretkey xmlns="urn:xmpp:openpgp:0">`) {
		t.Fatalf("backup output: %s", backup)
	}
	restored := oxOK(t, backup, "restore", "--code", backupCode)
	if oxOK(t, restored, "public") != oxOK(t, sec, "public") {
		t.Error("restored key differs")
	}
	if !strings.HasPrefix(restored, "-----BEGIN PGP PRIVATE KEY BLOCK-----") {
		t.Errorf("restore output: %s", restored)
	}
	c, out, stderr := oxRun(t, backup, "restore", "--code", "TWNK-KD5Y-MT3T-E1GS-DRDB-KVTW")
	oneLineError(t, "wrong code", c, stderr, 1, "wrong backup code")
	if out != "" {
		t.Errorf("wrong code printed %q", out)
	}
	c, _, stderr = oxRun(t, backup, "restore", "--code", "1234")
	oneLineError(t, "malformed code", c, stderr, 1, "malformed backup code")
	c, _, stderr = oxRun(t, "<pubkey xmlns='urn:xmpp:openpgp:0'/>", "restore", "--code", backupCode)
	oneLineError(t, "not a backup", c, stderr, 1, "secretkey")
	c, _, stderr = oxRun(t, "", "restore")
	oneLineError(t, "no code", c, stderr, 2, "--code is required")

	// The gpg-made backup of ox/testdata.
	td := filepath.Join("..", "..", "ox", "testdata")
	got := oxOK(t, mustRead(t, filepath.Join(td, "gpg-backup.xml")), "restore", "--code", strings.TrimSpace(mustRead(t, filepath.Join(td, "gpg-backup.code"))))
	if oxOK(t, got, "public") != oxOK(t, mustRead(t, filepath.Join(td, "bob.pub")), "public") {
		t.Error("gpg backup: restored key differs from bob's")
	}
}

func TestOXHelp(t *testing.T) {
	if got := oxOK(t, "", "help"); !strings.Contains(got, "hush ox keygen --jid alice@example.org") {
		t.Errorf("help: %s", got)
	}
}

func mustJIDMain(t *testing.T, s string) jid.JID {
	t.Helper()
	j, err := jid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}
