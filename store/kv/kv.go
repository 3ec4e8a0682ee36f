// Package kv implements omemo.Tx (XEP-0384 0.9.1, urn:xmpp:omemo:2 state)
// and store.Inbox once, over any ordered key/value backend, so that the
// in-memory store and the on-disk store share one record layout: the
// bucket names, the key encodings and the versioned value encodings are
// defined here and nowhere else.
//
// A backend provides a Txn: buckets of byte keys in byte order, with Get,
// Put, Delete and a prefix Scan. Update runs a transaction function over
// a write buffer on top of a Txn and applies the buffer only when the
// function succeeded, so a backend gets per-Update rollback even inside a
// larger backend transaction (which is how store/bolt groups many Updates
// into one durable commit). Memory is the in-memory backend; most callers
// use it through omemo/memstore or use store/bolt.
//
// Low-level: most callers won't need this package directly.
package kv

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"hush.im/omemo"
	"hush.im/store"
)

// Errors of transactions.
var (
	// ErrReadOnly is returned by the setters of a View transaction.
	ErrReadOnly = errors.New("kv: write in a read-only transaction")
	// ErrTxDone is returned when a transaction is used after its
	// function returned.
	ErrTxDone = errors.New("kv: transaction used after it ended")
)

// Limits of backends (bbolt's, the strictest): a longer key or value is
// refused when it is written, before anything reaches the backend.
const (
	// MaxKeySize is bbolt's bolt.MaxKeySize.
	MaxKeySize = 32768
	// MaxValueSize bounds one value. bbolt allows 2 GiB; store records
	// are far smaller (omemo bounds a record field at 4 MiB).
	MaxValueSize = 1 << 26
)

// Txn is one transaction of a key/value backend. Keys are ordered
// bytewise within a bucket; a bucket that was never written is empty.
//
// Low-level: implemented by backends, called only by this package.
type Txn interface {
	// Get returns the value of key, nil when there is none. The value is
	// valid until the transaction ends and must not be modified.
	Get(bucket string, key []byte) ([]byte, error)
	// Put sets the value of key. Backends may keep key and value until
	// the transaction ends; the caller does not modify them.
	Put(bucket string, key, value []byte) error
	// Delete removes key; removing a missing key is not an error.
	Delete(bucket string, key []byte) error
	// Scan calls fn for every key that starts with prefix, in increasing
	// order, and returns the first error fn returns, unchanged. fn must
	// not write and must not keep key or value.
	Scan(bucket string, prefix []byte, fn func(key, value []byte) error) error
}

// Update runs fn in a read-write transaction over base: fn's writes are
// buffered and written to base, in key order, only when fn returns nil. If
// fn fails (or panics) base is untouched. If writing to base fails, base
// may hold part of the writes and must be discarded (rolled back).
func Update(base Txn, fn func(omemo.Tx) error) error {
	t := NewTx(base, true)
	defer t.Close()
	if err := fn(t); err != nil {
		return err
	}
	return t.Commit()
}

// View runs fn in a read-only transaction over base.
func View(base Txn, fn func(omemo.Tx) error) error {
	t := NewTx(base, false)
	defer t.Close()
	return fn(t)
}

// NewTx returns a transaction over base, read-write or read-only. Reads
// see base and the transaction's own writes; writes are buffered until
// Commit. Most backends use Update and View instead.
func NewTx(base Txn, writable bool) *Tx {
	return &Tx{base: base, writable: writable}
}

// Close ends the transaction without writing anything to base; using it
// afterwards fails with ErrTxDone. Closing twice, or after Commit, is
// harmless.
func (t *Tx) Close() { t.done = true }

// Writes returns the number of keys the transaction has written (put or
// deleted) so far; a backend may skip committing a transaction without
// writes.
func (t *Tx) Writes() int {
	n := 0
	for _, b := range t.writes {
		n += len(b)
	}
	return n
}

// Commit ends the transaction and writes its buffer to base, in bucket
// and key order. If it fails, base may hold part of the writes and must be
// discarded (rolled back).
func (t *Tx) Commit() error {
	if t.done {
		return ErrTxDone
	}
	t.done = true
	return t.apply()
}

// Tx is a transaction over a Txn. It implements omemo.Tx and store.Inbox.
type Tx struct {
	base     Txn
	writable bool
	done     bool
	// writes is the buffer: bucket → key → value, nil value for a
	// deletion.
	writes map[string]map[string][]byte
}

var (
	_ omemo.Tx    = (*Tx)(nil)
	_ store.Inbox = (*Tx)(nil)
)

func (t *Tx) check(write bool) error {
	if t.done {
		return ErrTxDone
	}
	if write && !t.writable {
		return ErrReadOnly
	}
	return nil
}

func (t *Tx) get(bucket string, key []byte) ([]byte, error) {
	if err := t.check(false); err != nil {
		return nil, err
	}
	if v, ok := t.writes[bucket][string(key)]; ok {
		return v, nil
	}
	return t.base.Get(bucket, key)
}

func (t *Tx) set(bucket string, key, value []byte) error {
	if err := t.check(true); err != nil {
		return err
	}
	if len(key) == 0 || len(key) > MaxKeySize {
		return fmt.Errorf("kv: key of %d bytes in %s", len(key), bucket)
	}
	if len(value) > MaxValueSize {
		return fmt.Errorf("kv: value of %d bytes in %s (at most %d)", len(value), bucket, MaxValueSize)
	}
	if t.writes == nil {
		t.writes = make(map[string]map[string][]byte)
	}
	b := t.writes[bucket]
	if b == nil {
		b = make(map[string][]byte)
		t.writes[bucket] = b
	}
	b[string(key)] = value
	return nil
}

func (t *Tx) put(bucket string, key, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	return t.set(bucket, key, value)
}

func (t *Tx) del(bucket string, key []byte) error { return t.set(bucket, key, nil) }

// errStop ends a scan early.
var errStop = errors.New("kv: stop")

// scan calls fn for the keys with prefix as this transaction sees them:
// base merged with the write buffer.
func (t *Tx) scan(bucket string, prefix []byte, fn func(key, value []byte) error) error {
	if err := t.check(false); err != nil {
		return err
	}
	buf := t.writes[bucket]
	var pending []string
	for k := range buf {
		if len(k) >= len(prefix) && k[:len(prefix)] == string(prefix) {
			pending = append(pending, k)
		}
	}
	slices.Sort(pending)
	i := 0
	// emit sends buffered keys up to (excluding) limit, or all for nil.
	emit := func(limit []byte) error {
		for ; i < len(pending) && (limit == nil || pending[i] < string(limit)); i++ {
			if v := buf[pending[i]]; v != nil {
				if err := fn([]byte(pending[i]), v); err != nil {
					return err
				}
			}
		}
		return nil
	}
	err := t.base.Scan(bucket, prefix, func(k, v []byte) error {
		if err := emit(k); err != nil {
			return err
		}
		if i < len(pending) && pending[i] == string(k) {
			i++
			if bv := buf[string(k)]; bv != nil {
				return fn(k, bv)
			}
			return nil
		}
		return fn(k, v)
	})
	if err == nil {
		err = emit(nil)
	}
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// apply writes the buffer to base in bucket and key order.
func (t *Tx) apply() error {
	for _, name := range slices.Sorted(maps.Keys(t.writes)) {
		b := t.writes[name]
		for _, k := range slices.Sorted(maps.Keys(b)) {
			var err error
			if v := b[k]; v == nil {
				err = t.base.Delete(name, []byte(k))
			} else {
				err = t.base.Put(name, []byte(k), v)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func corrupt(bucket, format string, args ...any) error {
	return fmt.Errorf("kv: %w: %s: %s", store.ErrCorrupt, bucket, fmt.Sprintf(format, args...))
}
