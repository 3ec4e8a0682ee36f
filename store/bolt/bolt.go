// Package bolt is the on-disk store of hush: every piece of OMEMO 2 state
// (XEP-0384 0.9.1, urn:xmpp:omemo:2) of one account's device, the inbox of
// decrypted messages and the seen-id index (package hush.im/store), in one
// go.etcd.io/bbolt file per account.
//
// Open creates or opens the file (mode 0600, in a directory of mode 0700)
// and takes an exclusive lock on it, so that a second process gets
// ErrInUse instead of forking a ratchet. It verifies the whole file on
// open — bbolt's meta pages and its consistency check, this package's
// magic record and schema version, and a CRC-32C over every key and value —
// and refuses a damaged file with a *CorruptError, never repairing or
// overwriting it. Older schemas are migrated forward in one transaction.
//
// A Store implements omemo.Store: every Update is one durable bbolt
// transaction (fsync before it returns), so an omemo.Manager step —
// advanced ratchet, consumed prekey, replay record, and the decrypted
// message put in the inbox from omemo.Manager.DecryptWith — is committed
// entirely or not at all. BeginBatch groups many Updates into one durable
// commit for archive catch-up.
//
// The record layout is package hush.im/store/kv's, shared with the
// in-memory store; values are stored as kv encodes them, followed by a
// checksum (see schema.go).
package bolt

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"hush.im/omemo"
	"hush.im/store"
	"hush.im/store/kv"
	"mellium.im/xmpp/jid"
)

// Errors of this package. Callers branch on them with errors.Is.
var (
	// ErrInUse is returned by Open when another process (or another
	// Store in this process) has the file open.
	ErrInUse = errors.New("store in use")

	// ErrCorrupt is store.ErrCorrupt: every *CorruptError matches it.
	ErrCorrupt = store.ErrCorrupt

	// ErrInsecure is matched by a *PermissionError: the directory or the
	// file is writable by others or not owned by this user.
	ErrInsecure = errors.New("insecure store permissions")

	// ErrNewerSchema is returned by Open for a file written by a newer
	// version of this package. It is left untouched.
	ErrNewerSchema = errors.New("store written by a newer version of hush")

	// ErrWrongAccount is returned by Open when the file belongs to
	// another account.
	ErrWrongAccount = errors.New("store belongs to another account")

	// ErrClosed is returned after Close.
	ErrClosed = errors.New("bolt: store closed")

	// ErrReopen is wrapped by the error of every operation after a commit
	// failed with an I/O error: what reached the disk is then unknown, so
	// the store must be closed and opened again (which verifies it).
	ErrReopen = errors.New("bolt: a commit failed, close and reopen the store")

	// ErrBatchOpen is returned by BeginBatch while a batch is open.
	ErrBatchOpen = errors.New("bolt: a batch is already open")

	// ErrBatchDone is returned by Batch.Commit after the batch ended.
	ErrBatchDone = errors.New("bolt: batch already committed or rolled back")

	// ErrUnsupported is returned by Open on systems without Unix file
	// permissions and flock.
	ErrUnsupported = errors.New("bolt: unsupported operating system")
)

// CorruptError is returned by Open (and, should the file be damaged while
// open, by transactions) for a file that fails verification. It names the
// file and what failed, never the contents. It matches ErrCorrupt.
type CorruptError struct {
	Path   string
	Reason string
	// Err is the underlying error, if any (for example bbolt's
	// errors.ErrChecksum).
	Err error
}

// Error describes the damage: the file and what check failed.
func (e *CorruptError) Error() string {
	s := "bolt: " + e.Path + ": corrupt store: " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is reports whether target is ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns the underlying error.
func (e *CorruptError) Unwrap() error { return e.Err }

// PermissionError is returned by Open when the store directory or file
// has unsafe permissions that it will not repair: writable by group or
// others (someone else could have replaced the contents) or owned by
// another user. It matches ErrInsecure.
type PermissionError struct {
	Path   string
	Mode   fs.FileMode
	Reason string
}

// Error names the file or directory, its mode and the problem.
func (e *PermissionError) Error() string {
	return fmt.Sprintf("bolt: %s (mode %04o): %s", e.Path, e.Mode.Perm(), e.Reason)
}

// Is reports whether target is ErrInsecure.
func (e *PermissionError) Is(target error) bool { return target == ErrInsecure }

// Permissions of the store directory and file.
const (
	dirMode  fs.FileMode = 0o700
	fileMode fs.FileMode = 0o600
)

// DefaultLockTimeout is how long Open waits for another process to close
// the store before it fails with ErrInUse.
const DefaultLockTimeout = 250 * time.Millisecond

// Options configures Open. The zero value (or nil) gives the defaults.
type Options struct {
	// LockTimeout is how long Open waits for the lock; 0 means
	// DefaultLockTimeout.
	LockTimeout time.Duration
	// MaxSize bounds the file size in bytes: a commit that would grow the
	// file beyond it fails, changing nothing. 0 means no bound.
	MaxSize int
}

// Store is an open store file. It implements omemo.Store; its
// transactions also implement store.Inbox. It is safe for concurrent use:
// Updates are serialized, Views run concurrently (outside a batch).
type Store struct {
	db      *bbolt.DB
	path    string
	account jid.JID

	mu     sync.Mutex // serializes Update, batches, Close
	batch  *Batch
	closed bool
	failed error // set when a commit failed with an I/O error

	// commit commits a bbolt transaction; tests replace it to inject
	// failures.
	commit func(*bbolt.Tx) error
}

var _ omemo.Store = (*Store)(nil)

// Path returns the file, in dir, of the store of an account: the bare JID
// with every byte outside [a-z0-9@._-] percent-encoded, and the suffix
// ".hush". Different accounts get different files.
func Path(dir string, account jid.JID) string {
	s := account.Bare().String()
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '@', c == '.' && i > 0, c == '_', c == '-':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return dir + string(pathSeparator) + b.String() + ".hush"
}

// Account returns the account the store belongs to.
func (s *Store) Account() jid.JID { return s.account }

// File returns the path of the store file.
func (s *Store) File() string { return s.path }

// Close closes the store, rolling back an open batch, and releases the
// lock. Closing twice is harmless.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.batch != nil {
		s.batch.tx.Rollback()
		s.batch.done = true
		s.batch = nil
	}
	return s.db.Close()
}

// usable reports why the store cannot be used, with s.mu held.
func (s *Store) usable() error {
	if s.closed {
		return ErrClosed
	}
	return s.failed
}

// Update implements omemo.Store: fn runs in one bbolt read-write
// transaction that is committed and synced to disk before Update returns
// nil. When fn fails or the commit fails, nothing fn wrote is stored.
//
// While a batch is open (BeginBatch), Update runs inside the batch
// instead: its writes become durable only with Batch.Commit.
func (s *Store) Update(fn func(omemo.Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	if s.batch != nil {
		return s.batch.update(fn)
	}
	btx, err := s.db.Begin(true)
	if err != nil {
		return fmt.Errorf("bolt: %w", err)
	}
	done := false
	defer func() {
		if !done {
			btx.Rollback()
		}
	}()
	w := txn{tx: btx, path: s.path, sums: sums{}}
	t := kv.NewTx(w, true)
	defer t.Close()
	if err := fn(t); err != nil {
		return err
	}
	if t.Writes() == 0 {
		return nil // nothing to make durable; the deferred Rollback ends it
	}
	if err := t.Commit(); err != nil {
		return err
	}
	if err := w.sums.flush(s.path, btx); err != nil {
		return err
	}
	done = true
	if err := s.commit(btx); err != nil {
		return s.commitFailed(err)
	}
	return nil
}

// commitFailed records a failed bbolt commit. bbolt rolled the
// transaction back in memory. A failure before anything was written
// (the size limit) leaves the store usable; after an I/O error what
// reached the disk is unknown, so the store refuses further work until it
// is reopened and verified.
func (s *Store) commitFailed(err error) error {
	if errors.Is(err, berrors.ErrMaxSizeReached) {
		return fmt.Errorf("bolt: commit: %w", err)
	}
	s.failed = fmt.Errorf("%w: %w", ErrReopen, err)
	return fmt.Errorf("bolt: commit: %w", err)
}

// View implements omemo.Store: fn runs in a read-only transaction. While
// a batch is open it sees the batch's writes.
func (s *Store) View(fn func(omemo.Tx) error) error {
	s.mu.Lock()
	if err := s.usable(); err != nil {
		s.mu.Unlock()
		return err
	}
	if s.batch != nil {
		defer s.mu.Unlock()
		if s.batch.err != nil {
			return s.batch.err
		}
		return kv.View(txn{tx: s.batch.tx, path: s.path}, fn)
	}
	s.mu.Unlock()
	err := s.db.View(func(btx *bbolt.Tx) error {
		return kv.View(txn{tx: btx, path: s.path}, fn)
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}
