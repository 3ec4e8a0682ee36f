//go:build integration || interop

package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"hush.im/internal/prosodytest"
)

// hushAccount is one account's store for the integration tests.
type hushAccount struct {
	name, dir string
}

// addAccount saves user's account on srv in a new store, with its
// password in a file, and returns the store.
func addAccount(t *testing.T, srv *prosodytest.Server, user string) *hushAccount {
	t.Helper()
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte(srv.Password(user)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	code, _, stderr := runHush(t, "", "account", "add", "--store", store, "--jid", srv.JID(user).String(),
		"--password-file", pw, "--server", srv.Addr, "--insecure")
	if code != 0 || !strings.Contains(stderr, "saved "+srv.JID(user).String()) {
		t.Fatalf("account add %s: exit %d\n%s", user, code, stderr)
	}
	for path, want := range map[string]os.FileMode{store: 0o700, filepath.Join(store, configName): 0o600} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != want {
			t.Fatalf("%s: mode %v %v, want %v", path, fi.Mode(), err, want)
		}
	}
	cfg, err := os.ReadFile(filepath.Join(store, configName))
	if err != nil || strings.Contains(string(cfg), srv.Password(user)) {
		t.Fatalf("saved account holds the password or is missing (%v):\n%s", err, cfg)
	}
	return &hushAccount{name: user, dir: store}
}

// hush runs a command of the account a.
func (a *hushAccount) hush(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	args = append([]string{args[0], "--store", a.dir}, args[1:]...)
	return runHush(t, stdin, args...)
}

// ownDevice returns the id of the account's own device, from hush devices.
func (a *hushAccount) ownDevice(t *testing.T) string {
	t.Helper()
	code, stdout, stderr := a.hush(t, "", "devices")
	if code != 0 {
		t.Fatalf("%s: devices: exit %d\n%s", a.name, code, stderr)
	}
	m := regexp.MustCompile(`(?m)^(\d+) +this device$`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("%s: devices: no own device in\n%s", a.name, stdout)
	}
	return m[1]
}
