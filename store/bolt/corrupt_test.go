package bolt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	bbolt "go.etcd.io/bbolt"
	"hush.im/store/internal/storetest"
)

// sampleStore writes a store with every kind of record (identity,
// prekeys, signed prekey, sessions, replay logs, device lists, bundles,
// trust, inbox, seen ids) and returns its file's bytes and contents.
func sampleStore(t testing.TB, dir string) (string, []byte, map[string]map[string]string) {
	t.Helper()
	pep := storetest.NewPEP()
	sa := openT(t, Path(dir, alice), alice)
	sb := openT(t, Path(dir, bob), bob)
	da, err := storetest.Join(pep, alice.String(), sa, nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := storetest.Join(pep, bob.String(), sb, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		from, to := da, db
		if i%2 == 1 {
			from, to = db, da
		}
		e, err := from.Send(fmt.Appendf(nil, "<envelope>%d</envelope>", i), to.JID)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := to.Receive(from.JID, e, storetest.OriginID(from.JID, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	contents := dump(t, sb)
	sa.Close()
	sb.Close()
	path := Path(dir, bob)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, b, contents
}

// lookup returns the contents of the file as seen by key lookups (through
// the branch pages) rather than a cursor walk.
func lookup(t testing.TB, s *Store, want map[string]map[string]string) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	s.db.View(func(tx *bbolt.Tx) error {
		for name, kvs := range want {
			m := map[string]string{}
			out[name] = m
			b := tx.Bucket([]byte(name))
			if b == nil {
				continue
			}
			for k := range kvs {
				if v := b.Get([]byte(k)); v != nil {
					m[k] = string(v)
				}
			}
		}
		return nil
	})
	return out
}

// openDamaged writes data to path and opens it. A store that opens must
// hold exactly the original contents; one that does not must fail with a
// CorruptError and be left byte for byte as it was.
func openDamaged(t *testing.T, path string, data []byte, want map[string]map[string]string) error {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, bob, nil)
	if err != nil {
		var ce *CorruptError
		if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) || ce.Path != path {
			t.Fatalf("error %v is not a CorruptError", err)
		}
		after, rerr := os.ReadFile(path)
		if rerr != nil || !bytes.Equal(after, data) {
			t.Fatalf("damaged file was modified (%v)", rerr)
		}
		return err
	}
	defer s.Close()
	if got := dump(t, s); !reflect.DeepEqual(got, want) {
		for b := range want {
			for k, v := range want[b] {
				if got[b][k] != v {
					t.Logf("bucket %s key %x: %x, want %x", b, k, got[b][k], v)
				}
			}
			for k := range got[b] {
				if _, ok := want[b][k]; !ok {
					t.Logf("bucket %s key %x: extra", b, k)
				}
			}
		}
		t.Fatalf("store opened with different contents")
	}
	if got := lookup(t, s, want); !reflect.DeepEqual(got, want) {
		t.Fatalf("store opened, but lookups find different contents")
	}
	return nil
}

func hwm(data []byte) (pageSize, pages int) {
	ne := binary.NativeEndian
	pageSize = int(ne.Uint32(data[pageHeaderSize+8:]))
	m0 := ne.Uint64(data[pageHeaderSize+40:])
	m1 := ne.Uint64(data[pageSize+pageHeaderSize+40:])
	return pageSize, int(max(m0, m1))
}

func TestTruncated(t *testing.T) {
	dir := t.TempDir()
	path, data, want := sampleStore(t, dir)
	ps, pages := hwm(data)
	for _, n := range []int{0, 100, ps, 2 * ps, pages * ps / 2, pages*ps - ps, pages*ps - 1} {
		err := openDamaged(t, path, data[:n], want)
		if err == nil {
			t.Fatalf("truncated to %d of %d bytes: opened", n, len(data))
		}
		if n >= 2*ps && !strings.Contains(err.Error(), "truncated") {
			t.Errorf("truncated to %d: %v", n, err)
		}
	}
}

func TestBitFlips(t *testing.T) {
	dir := t.TempDir()
	path, data, want := sampleStore(t, dir)
	ps, _ := hwm(data)
	flip := func(off int, bit byte) []byte {
		d := bytes.Clone(data)
		d[off] ^= bit
		return d
	}
	// Every bit of both meta pages' meta and page id/flags.
	for _, page := range []int{0, 1} {
		for off := 0; off < pageHeaderSize+metaSize; off++ {
			if off >= 10 && off < pageHeaderSize {
				continue // count and overflow: unused in meta pages
			}
			for bit := range 8 {
				if err := openDamaged(t, path, flip(page*ps+off, 1<<bit), want); err == nil {
					t.Fatalf("meta page %d byte %d bit %d flipped: opened", page, off, bit)
				}
			}
		}
	}
	// Every byte of a few stored values.
	for _, bucket := range []string{"identity", "sessions", "inbox", "hush"} {
		for k, v := range want[bucket] {
			i := bytes.Index(data, []byte(v))
			if i < 0 || bytes.Contains(data[i+1:], []byte(v)) {
				continue // not stored exactly once in the file
			}
			for j := 0; j < len(v); j += 1 + len(v)/64 {
				err := openDamaged(t, path, flip(i+j, 0x20), want)
				if err == nil || !strings.Contains(err.Error(), "checksum") {
					t.Fatalf("%s %x: byte %d flipped: %v", bucket, k, j, err)
				}
			}
		}
	}
}

// TestRandomDamage flips random bits anywhere in the file: each open must
// either fail with a CorruptError or give exactly the original contents
// (the flip hit unused space); it must never crash or return other data.
func TestRandomDamage(t *testing.T) {
	dir := t.TempDir()
	path, data, want := sampleStore(t, dir)
	r := rand.New(rand.NewPCG(6, 6))
	n := 800
	if testing.Short() {
		n = 100
	}
	var failed, opened int
	for range n {
		d := bytes.Clone(data)
		var flips [][2]int
		for range 1 + r.IntN(3) {
			off, bit := r.IntN(len(d)), r.IntN(8)
			flips = append(flips, [2]int{off, bit})
			d[off] ^= 1 << bit
		}
		t.Logf("flipping (offset, bit) %v", flips)
		if openDamaged(t, path, d, want) != nil {
			failed++
		} else {
			opened++
		}
	}
	t.Logf("%d damaged files refused, %d opened unchanged (damage in unused space)", failed, opened)
	if failed == 0 {
		t.Fatal("no damage detected")
	}
}

// TestEmptyFile: an empty file is never initialised over.
func TestEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.hush")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, alice, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("error %v", err)
	}
	if fi, _ := os.Stat(path); fi.Size() != 0 {
		t.Fatal("empty file was written")
	}
	if err := os.WriteFile(path, []byte("not a store"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, alice, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("error %v", err)
	}
}
