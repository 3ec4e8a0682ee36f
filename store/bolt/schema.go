package bolt

import (
	"encoding/binary"
	"fmt"
	"slices"

	bbolt "go.etcd.io/bbolt"
	"hush.im/store/kv"
	"mellium.im/xmpp/jid"
)

// The file layout. Besides kv's buckets there is one bucket of this
// package, "hush", with:
//
//	"schema"   the schema version (4 bytes, big-endian), sealed
//	"magic"    magic, identifying a hush store file
//	"account"  the account's bare JID
//	"sum/…"    the entry count and seal sum of each bucket (txn.go)
//
// The schema record is sealed in every schema, so that it can be checked
// before the schema is known.
//
// Schema history:
//
//	1  hush before the inbox: kv's OMEMO buckets only; values not sealed
//	   (except the schema record).
//	2  adds the inbox, seen, seen-order and counters buckets and seals
//	   every value (see txn.go).
//	3  device lists may be in their binary form (omemo.DeviceList and
//	   legacy.DeviceList MarshalBinary) and replay logs in version 2 (with
//	   the time of the last message); those of schema 2 still decode. The
//	   migration changes nothing but the number, so that an older hush
//	   refuses the file (ErrNewerSchema) instead of failing on a record.
const (
	// SchemaVersion is the schema this package writes.
	SchemaVersion = 3

	bucketMeta = "hush"
	magic      = "hush.im/store/bolt"
)

var (
	keySchema  = []byte("schema")
	keyMagic   = []byte("magic")
	keyAccount = []byte("account")
)

// migrations[v] turns a schema v file into schema v+1, in the same
// transaction as every later migration.
var migrations = map[uint32]func(tx *bbolt.Tx) error{
	1: migrate1to2,
	2: func(*bbolt.Tx) error { return nil }, // see schema 3 above
}

func schemaValue(v uint32) []byte {
	return seal(bucketMeta, keySchema, binary.BigEndian.AppendUint32(nil, v))
}

// readSchema returns the schema version of the file.
func readSchema(path string, tx *bbolt.Tx) (uint32, error) {
	meta := tx.Bucket([]byte(bucketMeta))
	if meta == nil {
		return 0, &CorruptError{Path: path, Reason: "not a hush store (no meta bucket)"}
	}
	v, err := unseal(path, bucketMeta, keySchema, meta.Get(keySchema))
	if err != nil {
		return 0, err
	}
	if len(v) != 4 || binary.BigEndian.Uint32(v) == 0 {
		return 0, &CorruptError{Path: path, Reason: "bad schema record"}
	}
	return binary.BigEndian.Uint32(v), nil
}

// checkMeta checks the magic and the account of a file of the given
// schema.
func checkMeta(path string, tx *bbolt.Tx, schema uint32, account jid.JID) error {
	meta := tx.Bucket([]byte(bucketMeta))
	get := func(k []byte) ([]byte, error) {
		if schema < 2 {
			return meta.Get(k), nil
		}
		return unseal(path, bucketMeta, k, meta.Get(k))
	}
	m, err := get(keyMagic)
	if err != nil {
		return err
	}
	if string(m) != magic {
		return &CorruptError{Path: path, Reason: "bad magic record"}
	}
	a, err := get(keyAccount)
	if err != nil {
		return err
	}
	stored, err := jid.Parse(string(a))
	if err != nil {
		return &CorruptError{Path: path, Reason: "bad account record"}
	}
	if !stored.Equal(account) {
		return fmt.Errorf("bolt: %s is the store of %s: %w", path, stored, ErrWrongAccount)
	}
	return nil
}

// initialize writes the layout of an empty schema SchemaVersion file.
func initialize(tx *bbolt.Tx, account jid.JID) error {
	meta, err := tx.CreateBucket([]byte(bucketMeta))
	if err != nil {
		return err
	}
	if err := meta.Put(keySchema, schemaValue(SchemaVersion)); err != nil {
		return err
	}
	if err := meta.Put(keyMagic, seal(bucketMeta, keyMagic, []byte(magic))); err != nil {
		return err
	}
	a := []byte(account.String())
	if err := meta.Put(keyAccount, seal(bucketMeta, keyAccount, a)); err != nil {
		return err
	}
	for _, name := range kv.Buckets() {
		if _, err := tx.CreateBucket([]byte(name)); err != nil {
			return err
		}
	}
	return nil
}

// migrate runs the migrations from schema from to SchemaVersion in tx.
func migrate(tx *bbolt.Tx, from uint32) error {
	for v := from; v < SchemaVersion; v++ {
		if err := migrations[v](tx); err != nil {
			return fmt.Errorf("bolt: migrating from schema %d: %w", v, err)
		}
	}
	return tx.Bucket([]byte(bucketMeta)).Put(keySchema, schemaValue(SchemaVersion))
}

// migrate1to2 seals every value and creates the inbox buckets.
func migrate1to2(tx *bbolt.Tx) error {
	var names []string
	err := tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
		names = append(names, string(name))
		return nil
	})
	if err != nil {
		return err
	}
	sums := sums{}
	for _, name := range names {
		b := tx.Bucket([]byte(name))
		var kvs [][2][]byte
		err := b.ForEach(func(k, v []byte) error {
			if name == bucketMeta && string(k) == string(keySchema) {
				return nil // sealed already, rewritten by migrate
			}
			sealed := seal(name, k, v)
			if name != bucketMeta {
				sums.add(name, sealed, 1)
			}
			kvs = append(kvs, [2][]byte{slices.Clone(k), sealed})
			return nil
		})
		if err != nil {
			return err
		}
		for _, e := range kvs {
			if err := b.Put(e[0], e[1]); err != nil {
				return err
			}
		}
	}
	if err := sums.flush("", tx); err != nil {
		return err
	}
	for _, name := range kv.Buckets() {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return err
		}
	}
	return nil
}
