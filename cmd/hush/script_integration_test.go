//go:build integration

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"hush.im/internal/prosody"
	"hush.im/internal/prosodytest"
)

// scriptUsers are the accounts of each script's server. carol never runs
// hush: she is the contact without keys.
var scriptUsers = []string{"alice", "bob", "carol"}

// heldTimeout bounds the wait of the held command for a background hush
// to open its store.
const heldTimeout = 30 * time.Second

// raceExitSleep is the GORACE atexit_sleep_ms of the hush processes.
const raceExitSleep = "10"

// serverKey keys the script's *prosodytest.Server in testscript's values.
type serverKey struct{}

// TestIntegrationScripts runs the command-line scripts in
// testdata/net/*.txt, each against a private Prosody of its own (in the
// style of cmd/age/testdata, like TestScripts, whose Dir "testdata" does
// not descend into testdata/net). Setup starts the server and gives the
// script:
//
//	$SERVER      the server's c2s address (127.0.0.1:port, plain TCP)
//	$DOMAIN      its domain: the accounts are alice@$DOMAIN, bob@$DOMAIN
//	             and carol@$DOMAIN
//	$NOSERVER    a loopback address where nothing listens
//	$WORK/USER.pass  each account's password (mode 0600)
//
// and the commands
//
//	exits CODE PROGRAM [ARGS...]  exec that must exit with CODE
//	held FILE                     wait until another process holds FILE's
//	                              lock (a background hush has the store
//	                              open); ! held: nobody holds it now
//	corrupt FILE                  flip a bit in both meta pages of a store
//	serverhas TEXT                some file of the server's data holds TEXT
//	capture NAME FILE REGEXP      set $NAME to REGEXP's first group in FILE
//	                              (stdout or stderr: the last command's)
//	expand FILE...                replace $VAR and ${VAR} in the files with
//	                              the script's variables
func TestIntegrationScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("testdata", "net"),
		RequireExplicitExec: true,
		Setup:               setupScriptServer,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits":     cmdExits,
			"held":      cmdHeld,
			"corrupt":   cmdCorrupt,
			"serverhas": cmdServerHas,
			"capture":   cmdCapture,
			"expand":    cmdExpand,
		},
	})
}

// setupScriptServer starts the script's Prosody; its stop is a cleanup of
// the script's subtest.
func setupScriptServer(env *testscript.Env) error {
	// testscript.Run hands each script its subtest's *testing.T (wrapped,
	// embedded): the server's cleanup runs when the script ends.
	t, ok := env.T().(testing.TB)
	if !ok {
		return fmt.Errorf("testscript gave a %T, not a testing.TB", env.T())
	}
	srv := prosodytest.Start(t, prosodytest.Options{Users: scriptUsers})
	for _, u := range scriptUsers {
		if err := os.WriteFile(filepath.Join(env.WorkDir, u+".pass"), []byte(srv.Password(u)+"\n"), 0o600); err != nil {
			return err
		}
	}
	port, err := prosody.FreePort()
	if err != nil {
		return err
	}
	env.Setenv("SERVER", srv.Addr)
	env.Setenv("DOMAIN", srv.Domain)
	env.Setenv("NOSERVER", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	env.Setenv("XDG_CONFIG_HOME", filepath.Join(env.WorkDir, "config"))
	// A -race build of hush sleeps a second before exiting (GORACE
	// atexit_sleep_ms, default 1000); a script runs dozens of them. A race
	// is still reported (exit 66, which fails the script).
	if gorace := env.Getenv("GORACE"); !strings.Contains(gorace, "atexit_sleep_ms") {
		env.Setenv("GORACE", strings.TrimSpace(gorace+" atexit_sleep_ms="+raceExitSleep))
	}
	env.Values[serverKey{}] = srv
	return nil
}

// cmdHeld waits until another process holds the exclusive flock of a
// store file (store/bolt locks it while the store is open); with !, it
// checks once that nobody does. Its own probe takes the lock for an
// instant only, well within the wait of bolt.Open
// (bolt.DefaultLockTimeout).
func cmdHeld(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: held FILE")
	}
	path := ts.MkAbs(args[0])
	deadline := time.Now().Add(heldTimeout)
	for {
		held, err := lockHeld(path)
		switch {
		case err != nil && !errors.Is(err, os.ErrNotExist):
			ts.Fatalf("held: %v", err)
		case neg && held:
			ts.Fatalf("%s is held by another process", args[0])
		case neg:
			return
		case held:
			return
		case time.Now().After(deadline):
			ts.Fatalf("%s: not held by another process after %v", args[0], heldTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lockHeld reports whether another process holds the flock of path.
func lockHeld(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return true, nil
		case err != nil:
			return false, err
		}
		return false, syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	}
}

// bbolt's file layout (go.etcd.io/bbolt, page.go and db.go): each page
// starts with a 16-byte header; pages 0 and 1 are the meta pages, whose
// meta starts with the magic and holds the page size at offset 8. The
// byte flipped is the one TestStoreFailures flips ("meta pages bit flip").
const (
	boltPageHeader = 16
	boltMagic      = 0xED0CDAED
	boltFlipOffset = 40
)

// cmdCorrupt flips one bit in both meta pages of a bbolt file, as a disk
// error would: bbolt cannot fall back to the other meta page.
func cmdCorrupt(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: corrupt FILE")
	}
	path := ts.MkAbs(args[0])
	b, err := os.ReadFile(path)
	ts.Check(err)
	if len(b) < boltPageHeader+16 || binary.LittleEndian.Uint32(b[boltPageHeader:]) != boltMagic {
		ts.Fatalf("corrupt: %s is not a bbolt file", args[0])
	}
	pageSize := int(binary.LittleEndian.Uint32(b[boltPageHeader+8:]))
	if pageSize < boltPageHeader+boltFlipOffset+1 || len(b) < 2*pageSize {
		ts.Fatalf("corrupt: %s: page size %d, length %d", args[0], pageSize, len(b))
	}
	for _, page := range []int{0, 1} {
		b[page*pageSize+boltPageHeader+boltFlipOffset] ^= 0x10
	}
	ts.Check(os.WriteFile(path, b, 0o600))
}

// cmdServerHas checks whether a file of the server's data (accounts,
// offline messages, archives, PEP nodes) holds TEXT; "! serverhas TEXT"
// is how a script asserts that a plaintext never reached the server.
func cmdServerHas(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || args[0] == "" {
		ts.Fatalf("usage: serverhas TEXT")
	}
	srv, ok := ts.Value(serverKey{}).(*prosodytest.Server)
	if !ok {
		ts.Fatalf("serverhas: no server")
	}
	files, err := srv.FilesContaining([]byte(args[0]))
	ts.Check(err)
	switch {
	case neg && len(files) > 0:
		ts.Fatalf("the server stored %q in %v", args[0], files)
	case !neg && len(files) == 0:
		ts.Fatalf("no file of the server holds %q", args[0])
	}
}

// cmdCapture sets an environment variable of the script to the first
// group of a regular expression (multi-line mode) matched in a file, or
// in the last command's stdout or stderr: what a later command needs of
// an earlier one's output, such as a fingerprint or a backup code.
func cmdCapture(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: capture NAME FILE REGEXP")
	}
	re, err := regexp.Compile("(?m)" + args[2])
	ts.Check(err)
	if re.NumSubexp() < 1 {
		ts.Fatalf("capture: %q has no group", args[2])
	}
	m := re.FindStringSubmatch(ts.ReadFile(args[1]))
	if m == nil {
		ts.Fatalf("capture: no match for %q in %s", args[2], args[1])
	}
	ts.Setenv(args[0], m[1])
}

// cmdExpand replaces the script's variables in files (as cmpenv does when
// comparing), so that a file of the archive can hold a captured value.
func cmdExpand(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: expand FILE...")
	}
	for _, name := range args {
		path := ts.MkAbs(name)
		b, err := os.ReadFile(path)
		ts.Check(err)
		ts.Check(os.WriteFile(path, []byte(os.Expand(string(b), ts.Getenv)), 0o600))
	}
}
