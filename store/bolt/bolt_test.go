package bolt

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
	"hush.im/omemo"
	"hush.im/store"
	"hush.im/store/internal/storetest"
	"mellium.im/xmpp/jid"
)

// childEnv makes the test binary a helper process (see TestMain).
const childEnv = "HUSH_BOLT_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		flag.Parse()
		if *genSchema1 {
			if err := generateSchema1(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			fmt.Println("wrote testdata/schema1-*")
			os.Exit(0)
		}
		os.Exit(m.Run())
	case "open":
		// Open the store named by the arguments after "--" and report.
		args := os.Args[len(os.Args)-2:]
		s, err := Open(args[0], jid.MustParse(args[1]), &Options{LockTimeout: 50 * time.Millisecond})
		switch {
		case errors.Is(err, ErrInUse):
			fmt.Println("in use:", err)
			os.Exit(3)
		case err != nil:
			fmt.Println("error:", err)
			os.Exit(1)
		}
		s.Close()
		fmt.Println("opened")
		os.Exit(0)
	case "crash":
		os.Exit(crashChild())
	default:
		fmt.Fprintln(os.Stderr, "unknown child mode")
		os.Exit(2)
	}
}

var (
	alice = jid.MustParse("alice@example.org")
	bob   = jid.MustParse("bob@example.net")
)

func openT(t testing.TB, path string, account jid.JID) *Store {
	t.Helper()
	s, err := Open(path, account, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// dump returns every key and value of the file as the store sees it now.
func dump(t testing.TB, s *Store) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			m := map[string]string{}
			out[string(name)] = m
			return b.ForEach(func(k, v []byte) error {
				m[string(k)] = string(v)
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func fileHash(t testing.TB, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func mode(t testing.TB, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestConversationAcrossRestarts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hush")
	pa, pb := Path(dir, alice), Path(dir, bob)
	if want := filepath.Join(dir, "alice@example.org.hush"); pa != want {
		t.Fatalf("Path %q, want %q", pa, want)
	}
	pep := storetest.NewPEP()
	sa, sb := openT(t, pa, alice), openT(t, pb, bob)
	if m := mode(t, dir); m != 0o700 {
		t.Fatalf("directory mode %o", m)
	}
	if m := mode(t, pa); m != 0o600 {
		t.Fatalf("file mode %o", m)
	}
	da, err := storetest.Join(pep, alice.String(), sa, nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := storetest.Join(pep, bob.String(), sb, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := da.M.DeviceID()
	exchange := func(n int) {
		t.Helper()
		for i := range n {
			from, to := da, db
			if i%2 == 1 {
				from, to = db, da
			}
			body := fmt.Appendf(nil, "<envelope>%d</envelope>", i)
			e, err := from.Send(body, to.JID)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := to.Receive(from.JID, e, storetest.OriginID(from.JID, fmt.Sprint(time.Now().UnixNano()))); err != nil {
				t.Fatal(err)
			}
		}
	}
	exchange(6)
	sa.Close()
	sb.Close()
	if err := sa.Update(func(omemo.Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Update after Close: %v", err)
	}
	sa, sb = openT(t, pa, alice), openT(t, pb, bob)
	if da, err = storetest.Join(pep, alice.String(), sa, nil); err != nil {
		t.Fatal(err)
	}
	if db, err = storetest.Join(pep, bob.String(), sb, nil); err != nil {
		t.Fatal(err)
	}
	if da.M.DeviceID() != id {
		t.Fatalf("device id %d after reopening, want %d", da.M.DeviceID(), id)
	}
	exchange(6)
	msgs, err := storetest.Inbox(sb)
	if err != nil || len(msgs) != 6 {
		t.Fatalf("bob's inbox: %d messages, %v", len(msgs), err)
	}
}

func TestPermissions(t *testing.T) {
	tests := []struct {
		name     string
		dirMode  fs.FileMode
		fileMode fs.FileMode // 0: no file yet
		insecure bool
		wantDir  fs.FileMode
		wantFile fs.FileMode
	}{
		{"private", 0o700, 0o600, false, 0o700, 0o600},
		{"readable dir", 0o755, 0, false, 0o700, 0o600},
		{"readable dir and file", 0o750, 0o644, false, 0o700, 0o600},
		{"group-writable dir", 0o770, 0, true, 0o770, 0},
		{"world-writable sticky dir", 0o1777, 0, true, 0o777, 0},
		{"world-writable file", 0o700, 0o666, true, 0o700, 0o666},
		{"group-writable file", 0o700, 0o620, true, 0o700, 0o620},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "d")
			path := filepath.Join(dir, "a.hush")
			if tc.fileMode != 0 {
				s := openT(t, path, alice)
				s.Close()
				if err := os.Chmod(path, tc.fileMode); err != nil {
					t.Fatal(err)
				}
			} else if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tc.dirMode); err != nil {
				t.Fatal(err)
			}
			s, err := Open(path, alice, nil)
			if tc.insecure {
				var pe *PermissionError
				if !errors.Is(err, ErrInsecure) || !errors.As(err, &pe) || !strings.Contains(err.Error(), "writable by group or others") {
					t.Fatalf("error %v, want a PermissionError", err)
				}
			} else if err != nil {
				t.Fatal(err)
			} else {
				s.Close()
			}
			if m := mode(t, dir); m != tc.wantDir {
				t.Errorf("directory mode %o, want %o", m, tc.wantDir)
			}
			if tc.wantFile != 0 {
				if m := mode(t, path); m != tc.wantFile {
					t.Errorf("file mode %o, want %o", m, tc.wantFile)
				}
			} else if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("file created in an insecure directory: %v", err)
			}
		})
	}
}

func TestNotAFile(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real.hush")
	openT(t, real, alice).Close()
	link := filepath.Join(dir, "link.hush")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(link, alice, nil); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("symlink: %v", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.hush"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(filepath.Join(dir, "sub.hush"), alice, nil); err == nil {
		t.Fatal("opened a directory")
	}
	if _, err := Open(filepath.Join(real, "x.hush"), alice, nil); err == nil {
		t.Fatal("opened a store under a file")
	}
}

// TestInUse opens the store here and then in a second process, which
// must fail with ErrInUse; after Close the second process succeeds.
func TestInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.hush")
	s := openT(t, path, alice)

	start := time.Now()
	_, err := Open(path, alice, &Options{LockTimeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "store in use") {
		t.Fatalf("second Open in this process: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("second Open took %v", d)
	}

	child := func() (int, string) {
		cmd := exec.Command(os.Args[0], "-test.run=^$", "--", path, alice.String())
		cmd.Env = append(os.Environ(), childEnv+"=open")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	if code, out := child(); code != 3 || !strings.Contains(out, "store in use") {
		t.Fatalf("second process: exit %d, %q; want ErrInUse", code, out)
	}
	s.Close()
	if code, out := child(); code != 0 {
		t.Fatalf("second process after Close: exit %d, %q", code, out)
	}
}

func TestWrongAccount(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.hush")
	openT(t, path, alice).Close()
	if _, err := Open(path, bob, nil); !errors.Is(err, ErrWrongAccount) {
		t.Fatalf("error %v, want ErrWrongAccount", err)
	}
	// A full JID is reduced to its bare JID.
	s, err := Open(path, jid.MustParse("alice@example.org/phone"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// rawUpdate changes a closed store file with bbolt directly.
func rawUpdate(t testing.TB, path string, fn func(tx *bbolt.Tx) error) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.hush")
	openT(t, path, alice).Close()
	rawUpdate(t, path, func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(bucketMeta)).Put(keySchema, schemaValue(SchemaVersion+1))
	})
	before := fileHash(t, path)
	if _, err := Open(path, alice, nil); !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("error %v, want ErrNewerSchema", err)
	}
	if fileHash(t, path) != before {
		t.Fatal("file changed")
	}
}

func TestUnknownBucket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.hush")
	openT(t, path, alice).Close()
	rawUpdate(t, path, func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucket([]byte("stray"))
		return err
	})
	if _, err := Open(path, alice, nil); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "unknown bucket") {
		t.Fatalf("error %v, want ErrCorrupt", err)
	}
}

// TestFailedCommit injects a real bbolt commit failure (the file would
// outgrow Options.MaxSize) into a decryption: the caller gets an error and
// no plaintext, the store is as before, and the same message decrypts
// after the store is reopened without the limit.
func TestFailedCommit(t *testing.T) {
	dir := t.TempDir()
	pep := storetest.NewPEP()
	da, err := storetest.Join(pep, alice.String(), openT(t, Path(dir, alice), alice), nil)
	if err != nil {
		t.Fatal(err)
	}
	pb := Path(dir, bob)
	sb := openT(t, pb, bob)
	if _, err := storetest.Join(pep, bob.String(), sb, nil); err != nil {
		t.Fatal(err)
	}
	sb.Close()
	fi, err := os.Stat(pb)
	if err != nil {
		t.Fatal(err)
	}
	sb, err = Open(pb, bob, &Options{MaxSize: int(fi.Size())})
	if err != nil {
		t.Fatal(err)
	}
	db, err := storetest.Join(pep, bob.String(), sb, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A large message (the inbox holds it) makes the commit grow the file.
	body := bytes.Repeat([]byte("x"), 256<<10)
	e, err := da.Send(body, bob)
	if err != nil {
		t.Fatal(err)
	}
	before := dump(t, sb)
	got, _, err := db.Receive(alice, e, storetest.OriginID(alice, "big"))
	if err == nil || got != nil || !strings.Contains(err.Error(), "maximum size") {
		t.Fatalf("Receive: %v, %v; want a commit error and no plaintext", got, err)
	}
	if !reflect.DeepEqual(before, dump(t, sb)) {
		t.Fatal("failed commit changed the store")
	}
	if seen, err := storetest.Seen(sb, storetest.OriginID(alice, "big")); err != nil || seen {
		t.Fatalf("failed message marked seen: %v %v", seen, err)
	}
	sb.Close()
	sb = openT(t, pb, bob)
	if db, err = storetest.Join(pep, bob.String(), sb, nil); err != nil {
		t.Fatal(err)
	}
	if got, _, err = db.Receive(alice, e, storetest.OriginID(alice, "big")); err != nil || !bytes.Equal(got.Envelope, body) {
		t.Fatalf("Receive after reopening: %v", err)
	}
}

// TestCommitIOError injects an I/O error at commit: the Update fails, the
// state is as before, and the store refuses work until it is reopened.
func TestCommitIOError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.hush")
	s := openT(t, path, alice)
	if _, err := storetest.Join(storetest.NewPEP(), alice.String(), s, nil); err != nil {
		t.Fatal(err)
	}
	before := dump(t, s)
	injected := errors.New("injected I/O error")
	s.commit = func(tx *bbolt.Tx) error {
		tx.Rollback()
		return injected
	}
	err := s.Update(func(tx omemo.Tx) error {
		_, err := tx.(store.Inbox).PutInbox(&store.Message{Payload: []byte("lost")})
		return err
	})
	if !errors.Is(err, injected) {
		t.Fatalf("Update: %v", err)
	}
	if !reflect.DeepEqual(before, dump(t, s)) {
		t.Fatal("failed commit changed the store")
	}
	if err := s.View(func(omemo.Tx) error { return nil }); !errors.Is(err, ErrReopen) {
		t.Fatalf("View after a failed commit: %v, want ErrReopen", err)
	}
	if _, err := s.BeginBatch(); !errors.Is(err, ErrReopen) {
		t.Fatalf("BeginBatch after a failed commit: %v, want ErrReopen", err)
	}
	s.Close()
	s = openT(t, path, alice)
	if !reflect.DeepEqual(before, dump(t, s)) {
		t.Fatal("store changed across reopening")
	}
}

func TestUpdateFailsOrPanics(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "a.hush"), alice)
	if _, err := storetest.Join(storetest.NewPEP(), alice.String(), s, nil); err != nil {
		t.Fatal(err)
	}
	before := dump(t, s)
	write := func(tx omemo.Tx) {
		if err := tx.DeletePreKey(1); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.(store.Inbox).PutInbox(&store.Message{}); err != nil {
			t.Fatal(err)
		}
	}
	boom := errors.New("boom")
	if err := s.Update(func(tx omemo.Tx) error { write(tx); return boom }); err != boom {
		t.Fatal(err)
	}
	func() {
		defer func() { recover() }()
		s.Update(func(tx omemo.Tx) error { write(tx); panic(boom) })
	}()
	if !reflect.DeepEqual(before, dump(t, s)) {
		t.Fatal("failed Update changed the store")
	}
	if err := s.Update(func(tx omemo.Tx) error { write(tx); return nil }); err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(before, dump(t, s)) {
		t.Fatal("Update changed nothing")
	}
}

func TestPath(t *testing.T) {
	tests := []struct {
		account, want string
	}{
		{"alice@example.org", "alice@example.org.hush"},
		{"Alice@Example.org/phone", "alice@example.org.hush"},
		{"example.org", "example.org.hush"},
		{"o+x@example.org", "o%2Bx@example.org.hush"},
		{"jürgen@example.org", "j%C3%BCrgen@example.org.hush"},
	}
	for _, tc := range tests {
		if got := Path("/d", jid.MustParse(tc.account)); got != "/d/"+tc.want {
			t.Errorf("Path(%q) = %q, want %q", tc.account, got, "/d/"+tc.want)
		}
	}
}
