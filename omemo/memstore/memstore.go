// Package memstore is an in-memory omemo.Store (XEP-0384 0.9.1,
// urn:xmpp:omemo:2 state) with real transaction semantics, for tests and
// short-lived processes. It is hush.im/store/kv's Memory: the record
// layout is the on-disk store's (hush.im/store/bolt), and its
// transactions also implement store.Inbox.
package memstore

import "hush.im/store/kv"

// ErrReadOnly is returned by setters of a View transaction.
var ErrReadOnly = kv.ErrReadOnly

// ErrTxDone is returned when a transaction is used after its function
// returned.
var ErrTxDone = kv.ErrTxDone

// Store is an in-memory omemo.Store; see kv.Memory.
type Store = kv.Memory

// New returns an empty store.
func New() *Store { return kv.NewMemory() }

// NewSerializing returns an empty store; see kv.Memory.
func NewSerializing() *Store { return kv.NewMemory() }
