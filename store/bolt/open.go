package bolt

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"mellium.im/xmpp/jid"
)

// Open opens the store of account (a bare JID) in the file path, creating
// it if it does not exist. The directory is created with mode 0700 if
// missing; an existing one, and an existing file, must belong to this user
// and must not be writable by group or others (*PermissionError);
// permissions wider than 0700 and 0600 are tightened.
//
// Open takes an exclusive lock on the file, waiting at most
// Options.LockTimeout, and fails with ErrInUse if another process (or
// another Store in this process) holds it. It then verifies the whole file
// (see the package documentation) and fails with a *CorruptError if
// anything is wrong, leaving the file untouched; with ErrWrongAccount for
// another account's file; with ErrNewerSchema for a file of a newer
// version. A file of an older schema is migrated in one transaction.
//
// A new file is written completely under a temporary name and then
// linked into place, so that a file at path is never half-initialised: an
// empty or truncated file is corruption, not a new store.
func Open(path string, account jid.JID, opts *Options) (*Store, error) {
	if opts == nil {
		opts = &Options{}
	}
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	account = account.Bare()
	if account.Domainpart() == "" {
		return nil, errors.New("bolt: account JID has no domain")
	}
	path = filepath.Clean(path)
	if err := prepareDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		if err := create(path, account); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("bolt: %w", err)
	}
	db, schema, err := openDB(path, timeout, opts.MaxSize)
	if err != nil {
		return nil, err
	}
	if err := verify(db, path, account, schema); err != nil {
		db.Close()
		return nil, err
	}
	s := &Store{db: db, path: path, account: account, commit: (*bbolt.Tx).Commit}
	if schema < SchemaVersion {
		if err := s.migrate(schema); err != nil {
			db.Close()
			return nil, err
		}
	}
	return s, nil
}

// create writes a new empty store and links it to path, unless another
// process did so first.
func create(path string, account jid.JID) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".hush-new-*")
	if err != nil {
		return fmt.Errorf("bolt: %w", err)
	}
	name := tmp.Name()
	tmp.Close()
	defer os.Remove(name)
	db, err := bbolt.Open(name, fileMode, &bbolt.Options{Timeout: DefaultLockTimeout})
	if err != nil {
		return fmt.Errorf("bolt: creating %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error { return initialize(tx, account) })
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("bolt: creating %s: %w", path, err)
	}
	if err := os.Link(name, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return fmt.Errorf("bolt: creating %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("bolt: creating %s: %w", path, err)
	}
	return nil
}

// safely runs f in a goroutine of its own where a memory fault (a read
// past the end of a damaged mapped file) is a panic, and turns any panic
// into a *CorruptError: bbolt panics on some damaged pages instead of
// returning errors.
func safely(path string, cleanup func(), f func() error) error {
	ch := make(chan error, 1)
	go func() {
		debug.SetPanicOnFault(true)
		defer func() {
			if p := recover(); p != nil {
				if cleanup != nil {
					cleanup()
				}
				ch <- &CorruptError{Path: path, Reason: "damaged b-tree: " + panicReason(p)}
			}
		}()
		ch <- f()
	}()
	return <-ch
}

func panicReason(p any) string {
	var s string
	switch p := p.(type) {
	case runtime.Error:
		s = p.Error()
	case string:
		s = p
	case error:
		s = p.Error()
	default:
		s = fmt.Sprintf("%T", p)
	}
	const max = 120
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// openDB opens path with bbolt through openLocked and returns the schema
// version the file records.
func openDB(path string, timeout time.Duration, maxSize int) (*bbolt.DB, uint32, error) {
	var f *os.File
	var db *bbolt.DB
	var schema uint32
	err := safely(path, func() {
		if f != nil {
			f.Close()
		}
	}, func() error {
		var err error
		db, err = bbolt.Open(path, fileMode, &bbolt.Options{
			Timeout: timeout,
			MaxSize: maxSize,
			OpenFile: func(name string, flag int, _ fs.FileMode) (*os.File, error) {
				var err error
				f, schema, err = openLocked(name, flag, timeout)
				return f, err
			},
		})
		return err
	})
	if err == nil {
		return db, schema, nil
	}
	for _, e := range []error{berrors.ErrInvalid, berrors.ErrChecksum, berrors.ErrVersionMismatch, berrors.ErrInvalidMapping} {
		if errors.Is(err, e) {
			return nil, 0, &CorruptError{Path: path, Reason: "bbolt refused the file", Err: err}
		}
	}
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, 0, fmt.Errorf("bolt: %s is locked by another process: %w", path, ErrInUse)
	}
	return nil, 0, err
}

// verify checks, with bbolt, what checkFile found: the schema record
// (schema, as checkFile read it), the magic and the account. bbolt's own
// consistency check (Tx.Check) is not run: checkPages checks all it does
// (every page used once or free, page types, key order within pages and
// branches) before bbolt has mapped the file, and more.
func verify(db *bbolt.DB, path string, account jid.JID, schema uint32) error {
	return safely(path, nil, func() error {
		return db.View(func(tx *bbolt.Tx) error {
			got, err := readSchema(path, tx)
			if err != nil {
				return err
			}
			if got != schema {
				return &CorruptError{Path: path, Reason: "schema record changed while opening"}
			}
			if schema > SchemaVersion {
				return fmt.Errorf("bolt: %s has schema %d, this version reads up to %d: %w", path, schema, SchemaVersion, ErrNewerSchema)
			}
			return checkMeta(path, tx, schema, account)
		})
	})
}

// migrate brings the file from schema from to SchemaVersion in one
// durable transaction.
func (s *Store) migrate(from uint32) error {
	btx, err := s.db.Begin(true)
	if err != nil {
		return fmt.Errorf("bolt: %w", err)
	}
	if err := migrate(btx, from); err != nil {
		btx.Rollback()
		return err
	}
	if err := s.commit(btx); err != nil {
		return fmt.Errorf("bolt: migrating %s: %w", s.path, err)
	}
	return nil
}
