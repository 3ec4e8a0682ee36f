package kv

import (
	"maps"
	"slices"
	"strings"
	"sync"

	"hush.im/omemo"
)

// Memory is an in-memory omemo.Store whose transactions also implement
// store.Inbox. Records are kept only in serialized form, in the layout of
// this package. An Update buffers its writes and applies them only when
// its function returns nil, so a failed or panicking Update leaves the
// store exactly as before; Snapshot lets tests check that byte for byte.
//
// It is safe for concurrent use: Updates are serialized, Views run
// concurrently with each other. Scans sort the keys of a bucket, so it is
// meant for tests and small short-lived stores.
type Memory struct {
	mu      sync.RWMutex
	buckets map[string]map[string][]byte
}

var _ omemo.Store = (*Memory)(nil)

// NewMemory returns an empty store.
func NewMemory() *Memory {
	return &Memory{buckets: make(map[string]map[string][]byte)}
}

// Update implements omemo.Store.
func (m *Memory) Update(fn func(omemo.Tx) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Update(memTxn{m}, fn)
}

// View implements omemo.Store.
func (m *Memory) View(fn func(omemo.Tx) error) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return View(memTxn{m}, fn)
}

// Snapshot returns a deep copy of the whole store: bucket name → key →
// serialized value, without empty buckets. Two snapshots are equal
// (reflect.DeepEqual) exactly when the stores hold the same state.
func (m *Memory) Snapshot() map[string]map[string][]byte {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make(map[string]map[string][]byte, len(m.buckets))
	for name, b := range m.buckets {
		c := make(map[string][]byte, len(b))
		for k, v := range b {
			c[k] = slices.Clone(v)
		}
		out[name] = c
	}
	return out
}

// memTxn is the Txn of Memory. Only Update's apply writes, under the
// write lock.
type memTxn struct{ m *Memory }

func (t memTxn) Get(bucket string, key []byte) ([]byte, error) {
	return t.m.buckets[bucket][string(key)], nil
}

func (t memTxn) Put(bucket string, key, value []byte) error {
	b := t.m.buckets[bucket]
	if b == nil {
		b = make(map[string][]byte)
		t.m.buckets[bucket] = b
	}
	b[string(key)] = value
	return nil
}

func (t memTxn) Delete(bucket string, key []byte) error {
	b := t.m.buckets[bucket]
	delete(b, string(key))
	if b != nil && len(b) == 0 {
		delete(t.m.buckets, bucket)
	}
	return nil
}

func (t memTxn) Scan(bucket string, prefix []byte, fn func(key, value []byte) error) error {
	b := t.m.buckets[bucket]
	for _, k := range slices.Sorted(maps.Keys(b)) {
		if !strings.HasPrefix(k, string(prefix)) {
			continue
		}
		if err := fn([]byte(k), b[k]); err != nil {
			return err
		}
	}
	return nil
}
