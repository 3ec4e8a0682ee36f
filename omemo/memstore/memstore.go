// Package memstore is an in-memory omemo.Store (XEP-0384 0.9.1,
// urn:xmpp:omemo:2 state, and the legacy OMEMO state of XEP-0384 0.3,
// eu.siacs.conversations.axolotl) with real transaction semantics, for
// tests and short-lived processes.
//
// Records live in buckets, like an on-disk store's. An Update works
// copy-on-write at bucket granularity: the first write to a bucket copies
// it, and the copies replace the originals only when the transaction
// function returns nil. A failed or panicking Update leaves the store
// exactly as before, which Snapshot lets tests check byte for byte.
//
// New keeps the records it is given and hands out copies (Clone), which
// is fast;
// NewSerializing keeps only their MarshalBinary encoding and decodes on
// every read, exactly like an on-disk store, to exercise the encodings.
package memstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"hush.im/omemo"
	"hush.im/omemo/legacy"
	"mellium.im/xmpp/jid"
)

// ErrReadOnly is returned by setters of a View transaction.
var ErrReadOnly = errors.New("memstore: write in a read-only transaction")

// ErrTxDone is returned when a transaction is used after its function
// returned.
var ErrTxDone = errors.New("memstore: transaction used after it ended")

// Store is an in-memory omemo.Store. The zero value is not usable; use
// New or NewSerializing. It is safe for concurrent use: Updates are
// serialized, Views run concurrently with each other.
type Store struct {
	mu        sync.RWMutex
	serialize bool
	buckets   map[string]map[string]any
}

var _ omemo.Store = (*Store)(nil)

// New returns an empty store that keeps deep copies of the records.
func New() *Store {
	return &Store{buckets: make(map[string]map[string]any)}
}

// NewSerializing returns an empty store that keeps only the serialized
// form of every record, like an on-disk store.
func NewSerializing() *Store {
	return &Store{serialize: true, buckets: make(map[string]map[string]any)}
}

// Update implements omemo.Store.
func (s *Store) Update(fn func(omemo.Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &tx{s: s, writable: true, dirty: make(map[string]map[string]any)}
	defer func() { t.done = true }()
	if err := fn(t); err != nil {
		return err
	}
	for name, b := range t.dirty {
		if len(b) == 0 {
			delete(s.buckets, name)
		} else {
			s.buckets[name] = b
		}
	}
	return nil
}

// View implements omemo.Store.
func (s *Store) View(fn func(omemo.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t := &tx{s: s}
	defer func() { t.done = true }()
	return fn(t)
}

// Snapshot returns the whole store serialized: bucket name → key →
// MarshalBinary of the record. Two snapshots are equal (reflect.DeepEqual)
// exactly when the stores hold the same state.
func (s *Store) Snapshot() map[string]map[string][]byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]map[string][]byte, len(s.buckets))
	for name, b := range s.buckets {
		c := make(map[string][]byte, len(b))
		for k, v := range b {
			switch v := v.(type) {
			case []byte:
				c[k] = slices.Clone(v)
			case interface{ MarshalBinary() ([]byte, error) }:
				enc, err := v.MarshalBinary()
				if err != nil {
					panic(fmt.Sprintf("memstore: snapshot of %s: %v", name, err))
				}
				c[k] = enc
			}
		}
		out[name] = c
	}
	return out
}

type tx struct {
	s        *Store
	writable bool
	done     bool
	dirty    map[string]map[string]any

	// The bucket names of the last JID asked for: a fan-out reads and
	// writes the same account's records once per device.
	lastJID   jid.JID
	lastNames map[string]string // prefix → prefix + JID
}

// bucketOf returns the name of the bucket prefix+JID.
func (t *tx) bucketOf(prefix string, j jid.JID) string {
	if t.lastNames == nil || !t.lastJID.Equal(j) {
		t.lastJID, t.lastNames = j, make(map[string]string, 4)
	}
	name, ok := t.lastNames[prefix]
	if !ok {
		name = prefix + j.String()
		t.lastNames[prefix] = name
	}
	return name
}

func (t *tx) check(write bool) error {
	if t.done {
		return ErrTxDone
	}
	if write && !t.writable {
		return ErrReadOnly
	}
	return nil
}

// read returns the bucket as this transaction sees it (may be nil).
func (t *tx) read(name string) map[string]any {
	if b, ok := t.dirty[name]; ok {
		return b
	}
	return t.s.buckets[name]
}

// write returns this transaction's private copy of the bucket. Values are
// immutable once stored, so a shallow copy of the map suffices.
func (t *tx) write(name string) map[string]any {
	if b, ok := t.dirty[name]; ok {
		return b
	}
	b := maps.Clone(t.s.buckets[name])
	if b == nil {
		b = make(map[string]any)
	}
	t.dirty[name] = b
	return b
}

// record is what the omemo record types have in common.
type record[T any] interface {
	*T
	Clone() *T
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
}

func get[T any, P record[T]](t *tx, bucket, key string) (*T, error) {
	if err := t.check(false); err != nil {
		return nil, err
	}
	v, ok := t.read(bucket)[key]
	if !ok {
		return nil, omemo.ErrNotFound
	}
	if b, ok := v.([]byte); ok {
		r := P(new(T))
		if err := r.UnmarshalBinary(b); err != nil {
			return nil, err
		}
		return (*T)(r), nil
	}
	return P(v.(*T)).Clone(), nil
}

func put[T any, P record[T]](t *tx, bucket, key string, r P) error {
	if err := t.check(true); err != nil {
		return err
	}
	if t.s.serialize {
		b, err := r.MarshalBinary()
		if err != nil {
			return err
		}
		t.write(bucket)[key] = b
		return nil
	}
	// omemo.Tx: a setter takes ownership of the record.
	t.write(bucket)[key] = (*T)(r)
	return nil
}

// serialized is what the legacy PEP payloads (legacy.DeviceList,
// legacy.Bundle) have: an encoding, no Clone. They are always kept
// serialized.
type serialized[T any] interface {
	*T
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
}

func getSerialized[T any, P serialized[T]](t *tx, bucket, key string) (*T, error) {
	if err := t.check(false); err != nil {
		return nil, err
	}
	v, ok := t.read(bucket)[key]
	if !ok {
		return nil, omemo.ErrNotFound
	}
	r := P(new(T))
	if err := r.UnmarshalBinary(v.([]byte)); err != nil {
		return nil, err
	}
	return (*T)(r), nil
}

func putSerialized[T any, P serialized[T]](t *tx, bucket, key string, r P) error {
	if err := t.check(true); err != nil {
		return err
	}
	b, err := r.MarshalBinary()
	if err != nil {
		return err
	}
	t.write(bucket)[key] = b
	return nil
}

func (t *tx) del(bucket, key string) error {
	if err := t.check(true); err != nil {
		return err
	}
	if _, ok := t.read(bucket)[key]; !ok {
		return nil
	}
	delete(t.write(bucket), key)
	return nil
}

// keys returns the keys of a bucket in sorted order.
func (t *tx) keys(bucket string) ([]string, error) {
	if err := t.check(false); err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(t.read(bucket))), nil
}

func idKey(id uint32) string {
	return string(binary.BigEndian.AppendUint32(nil, id))
}

func keyID(k string) uint32 {
	return binary.BigEndian.Uint32([]byte(k))
}

const (
	bucketIdentity    = "identity"
	bucketPreKeys     = "prekeys"
	bucketSignedPKs   = "signed-prekeys"
	bucketDeviceLists = "device-lists"
	bucketPending     = "pending"
	prefixSessions    = "sessions/"
	prefixReplay      = "replay/"
	prefixBundles     = "bundles/"
	prefixTrust       = "trust/"

	bucketLegacyDeviceLists = "legacy-device-lists"
	prefixLegacySessions    = "legacy-sessions/"
	prefixLegacyBundles     = "legacy-bundles/"
)

func (t *tx) Identity() (*omemo.IdentityRecord, error) {
	return get[omemo.IdentityRecord](t, bucketIdentity, "")
}

func (t *tx) PutIdentity(r *omemo.IdentityRecord) error { return put(t, bucketIdentity, "", r) }

func (t *tx) PreKey(id uint32) (*omemo.PreKeyRecord, error) {
	return get[omemo.PreKeyRecord](t, bucketPreKeys, idKey(id))
}

func (t *tx) PreKeys() ([]*omemo.PreKeyRecord, error) {
	ks, err := t.keys(bucketPreKeys)
	if err != nil {
		return nil, err
	}
	out := make([]*omemo.PreKeyRecord, 0, len(ks))
	for _, k := range ks {
		r, err := t.PreKey(keyID(k))
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (t *tx) PutPreKey(r *omemo.PreKeyRecord) error { return put(t, bucketPreKeys, idKey(r.ID()), r) }

func (t *tx) DeletePreKey(id uint32) error { return t.del(bucketPreKeys, idKey(id)) }

func (t *tx) SignedPreKey(id uint32) (*omemo.SignedPreKeyRecord, error) {
	return get[omemo.SignedPreKeyRecord](t, bucketSignedPKs, idKey(id))
}

func (t *tx) SignedPreKeys() ([]*omemo.SignedPreKeyRecord, error) {
	ks, err := t.keys(bucketSignedPKs)
	if err != nil {
		return nil, err
	}
	out := make([]*omemo.SignedPreKeyRecord, 0, len(ks))
	for _, k := range ks {
		r, err := t.SignedPreKey(keyID(k))
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (t *tx) PutSignedPreKey(r *omemo.SignedPreKeyRecord) error {
	return put(t, bucketSignedPKs, idKey(r.ID()), r)
}

func (t *tx) DeleteSignedPreKey(id uint32) error { return t.del(bucketSignedPKs, idKey(id)) }

func (t *tx) Session(a omemo.Address) (*omemo.SessionRecord, error) {
	return get[omemo.SessionRecord](t, t.bucketOf(prefixSessions, a.JID), idKey(a.Device))
}

func (t *tx) SessionDevices(bare jid.JID) ([]uint32, error) {
	ks, err := t.keys(t.bucketOf(prefixSessions, bare))
	if err != nil {
		return nil, err
	}
	out := make([]uint32, len(ks))
	for i, k := range ks {
		out[i] = keyID(k)
	}
	return out, nil
}

func (t *tx) PutSession(r *omemo.SessionRecord) error {
	a := r.Address()
	return put(t, t.bucketOf(prefixSessions, a.JID), idKey(a.Device), r)
}

func (t *tx) DeleteSession(a omemo.Address) error {
	return t.del(t.bucketOf(prefixSessions, a.JID), idKey(a.Device))
}

func (t *tx) ReplayLog(a omemo.Address) (*omemo.ReplayLog, error) {
	return get[omemo.ReplayLog](t, t.bucketOf(prefixReplay, a.JID), idKey(a.Device))
}

func (t *tx) PutReplayLog(r *omemo.ReplayLog) error {
	a := r.Address()
	return put(t, t.bucketOf(prefixReplay, a.JID), idKey(a.Device), r)
}

func (t *tx) DeleteReplayLog(a omemo.Address) error {
	return t.del(t.bucketOf(prefixReplay, a.JID), idKey(a.Device))
}

func (t *tx) DeviceList(bare jid.JID) (*omemo.DeviceList, error) {
	return get[omemo.DeviceList](t, bucketDeviceLists, bare.String())
}

func (t *tx) PutDeviceList(bare jid.JID, l *omemo.DeviceList) error {
	return put(t, bucketDeviceLists, bare.String(), l)
}

func (t *tx) Bundle(a omemo.Address) (*omemo.Bundle, error) {
	return get[omemo.Bundle](t, t.bucketOf(prefixBundles, a.JID), idKey(a.Device))
}

func (t *tx) PutBundle(a omemo.Address, b *omemo.Bundle) error {
	return put(t, t.bucketOf(prefixBundles, a.JID), idKey(a.Device), b)
}

func (t *tx) DeleteBundle(a omemo.Address) error {
	return t.del(t.bucketOf(prefixBundles, a.JID), idKey(a.Device))
}

func (t *tx) Trust(bare jid.JID, identityKey []byte) (omemo.TrustLevel, error) {
	if err := t.check(false); err != nil {
		return 0, err
	}
	x, ok := t.read(t.bucketOf(prefixTrust, bare))[string(identityKey)]
	if !ok {
		return omemo.TrustUndecided, nil
	}
	v, _ := x.([]byte)
	if len(v) != 1 || v[0] > byte(omemo.TrustDistrusted) {
		return 0, fmt.Errorf("memstore: %w: trust record", omemo.ErrMalformed)
	}
	return omemo.TrustLevel(v[0]), nil
}

func (t *tx) PutTrust(bare jid.JID, identityKey []byte, level omemo.TrustLevel) error {
	if err := t.check(true); err != nil {
		return err
	}
	t.write(t.bucketOf(prefixTrust, bare))[string(identityKey)] = []byte{byte(level)}
	return nil
}

func (t *tx) Pending() (*omemo.PendingRecord, error) {
	return get[omemo.PendingRecord](t, bucketPending, "")
}

func (t *tx) PutPending(r *omemo.PendingRecord) error {
	if r.Empty() {
		return t.del(bucketPending, "")
	}
	return put(t, bucketPending, "", r)
}

func (t *tx) LegacySession(a omemo.Address) (*omemo.LegacySessionRecord, error) {
	return get[omemo.LegacySessionRecord](t, t.bucketOf(prefixLegacySessions, a.JID), idKey(a.Device))
}

func (t *tx) LegacySessionDevices(bare jid.JID) ([]uint32, error) {
	ks, err := t.keys(t.bucketOf(prefixLegacySessions, bare))
	if err != nil {
		return nil, err
	}
	out := make([]uint32, len(ks))
	for i, k := range ks {
		out[i] = keyID(k)
	}
	return out, nil
}

func (t *tx) PutLegacySession(r *omemo.LegacySessionRecord) error {
	a := r.Address()
	return put(t, t.bucketOf(prefixLegacySessions, a.JID), idKey(a.Device), r)
}

func (t *tx) DeleteLegacySession(a omemo.Address) error {
	return t.del(t.bucketOf(prefixLegacySessions, a.JID), idKey(a.Device))
}

func (t *tx) LegacyDeviceList(bare jid.JID) (*legacy.DeviceList, error) {
	return getSerialized[legacy.DeviceList](t, bucketLegacyDeviceLists, bare.String())
}

func (t *tx) PutLegacyDeviceList(bare jid.JID, l *legacy.DeviceList) error {
	return putSerialized(t, bucketLegacyDeviceLists, bare.String(), l)
}

func (t *tx) LegacyBundle(a omemo.Address) (*legacy.Bundle, error) {
	return getSerialized[legacy.Bundle](t, t.bucketOf(prefixLegacyBundles, a.JID), idKey(a.Device))
}

func (t *tx) PutLegacyBundle(a omemo.Address, b *legacy.Bundle) error {
	return putSerialized(t, t.bucketOf(prefixLegacyBundles, a.JID), idKey(a.Device), b)
}

func (t *tx) DeleteLegacyBundle(a omemo.Address) error {
	return t.del(t.bucketOf(prefixLegacyBundles, a.JID), idKey(a.Device))
}
