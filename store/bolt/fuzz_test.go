package bolt

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"hush.im/omemo"
	"hush.im/store"
)

// fuzzSeeds returns store files: the schema 1 test data and a small
// schema 2 store.
func fuzzSeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	for _, name := range []string{"testdata/schema1-bob.hush", "testdata/schema1-alice.hush"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	path := filepath.Join(f.TempDir(), "b.hush")
	s, err := Open(path, bob, nil)
	if err != nil {
		f.Fatal(err)
	}
	for i := range 20 {
		err := s.Update(func(tx omemo.Tx) error {
			_, err := tx.(store.Inbox).PutInbox(&store.Message{IDs: []store.MessageID{mamID(i)}, Payload: fmt.Appendf(nil, "%d", i)})
			return err
		})
		if err != nil {
			f.Fatal(err)
		}
	}
	s.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return append(seeds, b)
}

// FuzzOpen opens arbitrary files: Open must return a store or an error,
// never panic, hang or crash, and must not change a file it refuses.
func FuzzOpen(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "b.hush")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path, bob, nil)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongAccount) && !errors.Is(err, ErrNewerSchema) {
				t.Fatalf("error of an unexpected kind: %v", err)
			}
			after, _ := os.ReadFile(path)
			if string(after) != string(data) {
				t.Fatal("refused file was modified")
			}
			return
		}
		// What opens must be readable throughout.
		s.View(func(tx omemo.Tx) error {
			tx.Identity()
			tx.PreKeys()
			tx.SignedPreKeys()
			tx.(store.Inbox).Inbox(0)
			return nil
		})
		s.Close()
	})
}

// FuzzCheckFile runs the file checks that precede bbolt on arbitrary
// bytes: they must return, without panicking, an error or the schema.
func FuzzCheckFile(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFile(bytes.NewReader(data), int64(len(data)))
	})
}
