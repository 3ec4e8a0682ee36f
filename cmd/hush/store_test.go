package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"hush.im/store/bolt"
)

// TestStoreFailures: a store that another hush holds open, or whose file
// is damaged, is refused with a clear error and a hint, never used.
func TestStoreFailures(t *testing.T) {
	account := jid.MustParse("alice@example.org")
	newStore := func(t *testing.T) (dir, path string) {
		dir = filepath.Join(t.TempDir(), "s")
		path = bolt.Path(dir, account)
		st, err := bolt.Open(path, account, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		return dir, path
	}
	trust := func(dir string) (int, string) {
		code, _, stderr := runHush(t, "", "trust", "--store", dir, "--jid", account.String(), "bob@example.net", "123")
		return code, stderr
	}

	t.Run("healthy", func(t *testing.T) {
		dir, _ := newStore(t)
		code, stderr := trust(dir)
		if code != 1 || !strings.Contains(stderr, "no device 123 of bob@example.net known") {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
	})
	t.Run("in use", func(t *testing.T) {
		dir, path := newStore(t)
		st, err := bolt.Open(path, account, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		code, stderr := trust(dir)
		if code != 1 || !strings.Contains(stderr, "store in use") || !strings.Contains(stderr, "hush: hint: another hush (listen?) has this account open") {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
	})
	damage := []struct {
		name string
		f    func(b []byte) []byte
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }},
		{"truncated to a page", func(b []byte) []byte { return b[:4096] }},
		{"empty", func(b []byte) []byte { return nil }},
		{"meta pages bit flip", func(b []byte) []byte { b[16+40] ^= 0x10; b[4096+16+40] ^= 0x10; return b }},
		{"data bit flip", func(b []byte) []byte {
			for i := 2 * 4096; i < len(b); i += 4096 {
				b[i+64] ^= 0x01
			}
			return b
		}},
		{"not a store", func([]byte) []byte { return []byte("hello, I am not a bbolt file\n") }},
	}
	for _, d := range damage {
		t.Run(d.name, func(t *testing.T) {
			dir, path := newStore(t)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, d.f(b), 0o600); err != nil {
				t.Fatal(err)
			}
			code, stderr := trust(dir)
			if code != 1 || !strings.Contains(stderr, "corrupt") || !strings.Contains(stderr, "hush: hint: the store file is damaged") {
				t.Fatalf("exit %d\n%s", code, stderr)
			}
			if strings.Contains(stderr, "panic") {
				t.Fatalf("panic:\n%s", stderr)
			}
		})
	}
}
