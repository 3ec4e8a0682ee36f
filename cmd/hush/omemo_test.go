package main

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hush.im/omemo"
	"hush.im/store/bolt"
	"mellium.im/xmpp/jid"
)

// omemoPair makes two stores, alice (device 1001) and bob (device 2002),
// that know each other's device from its bundle (legacy: the legacy one).
func omemoPair(t *testing.T, legacy bool) (alice, bob string) {
	t.Helper()
	dir := t.TempDir()
	alice, bob = filepath.Join(dir, "alice"), filepath.Join(dir, "bob")
	mustHush(t, "", "omemo", "init", "--store", alice, "--jid", "alice@example.org", "--device-id", "1001")
	mustHush(t, "", "omemo", "init", "--store", bob, "--jid", "bob@example.net", "--device-id", "2002")
	flag := []string{}
	if legacy {
		flag = []string{"--legacy"}
	}
	for _, x := range []struct{ store, other, jid, id string }{{alice, bob, "bob@example.net", "2002"}, {bob, alice, "alice@example.org", "1001"}} {
		b := mustHush(t, "", append([]string{"omemo", "bundle", "--store", x.other}, flag...)...)
		file := filepath.Join(dir, x.id+".xml")
		if err := os.WriteFile(file, []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
		mustHush(t, "", "omemo", "add-device", "--store", x.store, "--jid", x.jid, "--device", x.id, "--bundle", file)
	}
	return alice, bob
}

func mustHush(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	code, stdout, stderr := runHush(t, stdin, args...)
	if code != 0 {
		t.Fatalf("hush %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
	}
	return stdout
}

// withManager opens a store directly, as the commands do.
func withManager(t *testing.T, dir, account string, f func(*omemo.Manager)) {
	t.Helper()
	j := jid.MustParse(account)
	st, err := bolt.Open(bolt.Path(dir, j), j, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err := omemo.New(j, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	f(m)
}

// TestOMEMOExitCodes: bad usage is 2, every other failure 1 with exactly
// one error line.
func TestOMEMOExitCodes(t *testing.T) {
	alice, bob := omemoPair(t, false)
	msg := mustHush(t, "", "omemo", "encrypt", "--store", alice, "--to", "bob@example.net", "--text", "hi")
	forged := strings.Replace(msg, "<payload>", "<payload>AAAA", 1)
	for _, tc := range []struct {
		args  []string
		stdin string
		code  int
	}{
		{[]string{"omemo"}, "", exitUsage},
		{[]string{"omemo", "decrypt", "--store", bob}, msg, exitUsage},
		{[]string{"omemo", "decrypt", "--store", bob, "--from", "alice@example.org", "extra"}, msg, exitUsage},
		{[]string{"omemo", "decrypt", "--store", bob, "--from", "alice@example.org"}, forged, 1},
		{[]string{"omemo", "decrypt", "--store", bob, "--from", "alice@example.org"}, "<garbage", 1},
		{[]string{"omemo", "decrypt", "--store", bob, "--from", "alice@example.org"}, "", 1},
		{[]string{"omemo", "inspect"}, "<encrypted xmlns='urn:xmpp:omemo:2'/>", 1},
	} {
		code, stdout, stderr := runHush(t, tc.stdin, tc.args...)
		if code != tc.code || stdout != "" || !strings.Contains(stderr, "hush: error: ") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", tc.args, code, stdout, stderr)
		}
		if lines := strings.Count(strings.TrimSuffix(stderr, "\n"), "\n"); code == 1 && (lines != 0 || !strings.HasPrefix(stderr, "hush: error: ")) {
			t.Errorf("%v: %d error lines: %q", tc.args, lines+1, stderr)
		}
	}
	// The forged message changed nothing: the real one decrypts.
	if out := mustHush(t, msg, "omemo", "decrypt", "--store", bob, "--from", "alice@example.org"); out != "hi\n" {
		t.Fatalf("decrypted %q", out)
	}
}

// TestOMEMODecryptEmpty: an empty OMEMO message (key exchange answer,
// heartbeat) of either protocol prints nothing and exits 0.
func TestOMEMODecryptEmpty(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		alice, bob := omemoPair(t, legacy)
		var x []byte
		withManager(t, alice, "alice@example.org", func(m *omemo.Manager) {
			a := omemo.Address{JID: jid.MustParse("bob@example.net"), Device: 2002}
			var v any
			var err error
			if legacy {
				v, err = m.EncryptEmptyLegacy(a)
			} else {
				v, err = m.EncryptEmpty(a)
			}
			if err != nil {
				t.Fatal(err)
			}
			if x, err = xml.Marshal(v); err != nil {
				t.Fatal(err)
			}
		})
		code, stdout, stderr := runHush(t, string(x), "omemo", "decrypt", "--store", bob, "--from", "alice@example.org")
		if code != 0 || stdout != "" || stderr != "" {
			t.Fatalf("legacy %v: exit %d, stdout %q, stderr %q", legacy, code, stdout, stderr)
		}
		if !strings.Contains(mustHush(t, string(x), "omemo", "inspect"), "empty OMEMO message") {
			t.Fatal("inspect does not call it empty")
		}
	}
}

// TestOMEMOStoreSelection: later commands find the account in --store;
// --account picks one when the directory holds several.
func TestOMEMOStoreSelection(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	mustHush(t, "", "omemo", "init", "--store", dir, "--jid", "Alice@Example.ORG", "--device-id", "7")
	if out := mustHush(t, "", "omemo", "devicelist", "--store", dir, "--legacy"); !strings.Contains(out, `<device id="7">`) {
		t.Fatal(out)
	}
	// A second account's store in the same directory, made directly.
	j := jid.MustParse("bob@example.net")
	st, err := bolt.Open(bolt.Path(dir, j), j, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := omemo.New(j, st, nil); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if code, _, stderr := runHush(t, "", "omemo", "bundle", "--store", dir); code != exitUsage || !strings.Contains(stderr, "holds 2 accounts") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	mustHush(t, "", "omemo", "bundle", "--store", dir, "--account", "alice@example.org")
}
