package bolt

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"

	bbolt "go.etcd.io/bbolt"
)

// Every value in the file (schema 2 and later) is sealed: the value kv encoded,
// followed by a CRC-32C (Castagnoli), big-endian, over
//
//	bucket name ‖ 0x00 ‖ uvarint(len(key)) ‖ key ‖ value
//
// so that a flipped bit in a key, a value or their lengths, or a value
// moved to another key, is detected. bbolt checksums only its meta pages.
const sealSize = 4

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func checksum(bucket string, key, value []byte) uint32 {
	var hdr [binary.MaxVarintLen64 + 1]byte
	c := crc32.Update(0, castagnoli, []byte(bucket))
	hdr[0] = 0
	n := binary.PutUvarint(hdr[1:], uint64(len(key)))
	c = crc32.Update(c, castagnoli, hdr[:1+n])
	c = crc32.Update(c, castagnoli, key)
	return crc32.Update(c, castagnoli, value)
}

func seal(bucket string, key, value []byte) []byte {
	out := make([]byte, len(value), len(value)+sealSize)
	copy(out, value)
	return binary.BigEndian.AppendUint32(out, checksum(bucket, key, value))
}

// unseal checks a sealed value and returns the value without its
// checksum (aliasing v).
func unseal(path, bucket string, key, v []byte) ([]byte, error) {
	if len(v) < sealSize {
		return nil, &CorruptError{Path: path, Reason: "value without checksum in bucket " + bucket}
	}
	value := v[:len(v)-sealSize]
	if binary.BigEndian.Uint32(v[len(value):]) != checksum(bucket, key, value) {
		return nil, &CorruptError{Path: path, Reason: "checksum mismatch in bucket " + bucket}
	}
	return value, nil
}

// Every bucket's entries are also summed: the meta bucket holds, under
// "sum/" and the bucket name, the number of entries and the sum (mod 2^64)
// of their seals, both uint64 big-endian, sealed. They are updated in the
// transaction that changes the bucket and checked on open, so that an
// entry that disappears (a damaged element count in a page, which no
// checksum covers) is detected too.
const sumPrefix = "sum/"

type bucketSum struct{ count, sum uint64 }

// sums accumulates the changes of one bbolt transaction to the bucket
// sums, written to the meta bucket by flush before the commit.
type sums map[string]*bucketSum

func (s sums) add(bucket string, sealed []byte, sign uint64) {
	d := s[bucket]
	if d == nil {
		d = new(bucketSum)
		s[bucket] = d
	}
	d.count += sign
	d.sum += sign * uint64(binary.BigEndian.Uint32(sealed[len(sealed)-sealSize:]))
}

func sumKey(bucket string) []byte { return []byte(sumPrefix + bucket) }

// flush adds the accumulated changes to the sums in the meta bucket.
func (s sums) flush(path string, tx *bbolt.Tx) error {
	meta := tx.Bucket([]byte(bucketMeta))
	for bucket, d := range s {
		k := sumKey(bucket)
		cur, err := readSum(path, k, meta.Get(k))
		if err != nil {
			return err
		}
		cur.count += d.count
		cur.sum += d.sum
		if err := meta.Put(k, sealSum(k, cur)); err != nil {
			return err
		}
	}
	clear(s)
	return nil
}

func sealSum(k []byte, s bucketSum) []byte {
	v := binary.BigEndian.AppendUint64(nil, s.count)
	return seal(bucketMeta, k, binary.BigEndian.AppendUint64(v, s.sum))
}

// readSum decodes a sum record (zero when absent).
func readSum(path string, k, v []byte) (bucketSum, error) {
	if v == nil {
		return bucketSum{}, nil
	}
	v, err := unseal(path, bucketMeta, k, v)
	if err != nil {
		return bucketSum{}, err
	}
	if len(v) != 16 {
		return bucketSum{}, &CorruptError{Path: path, Reason: "bad sum record"}
	}
	return bucketSum{binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])}, nil
}

// txn is the kv.Txn of a bbolt transaction.
type txn struct {
	tx   *bbolt.Tx
	path string
	sums sums // nil in read-only transactions
}

func (t txn) Get(bucket string, key []byte) ([]byte, error) {
	b := t.tx.Bucket([]byte(bucket))
	if b == nil {
		return nil, nil
	}
	v := b.Get(key)
	if v == nil {
		return nil, nil
	}
	return unseal(t.path, bucket, key, v)
}

func (t txn) Put(bucket string, key, value []byte) error {
	b := t.tx.Bucket([]byte(bucket))
	if b == nil {
		var err error
		if b, err = t.tx.CreateBucket([]byte(bucket)); err != nil {
			return err
		}
	}
	if old := b.Get(key); len(old) >= sealSize {
		t.sums.add(bucket, old, 1<<64-1)
	}
	v := seal(bucket, key, value)
	t.sums.add(bucket, v, 1)
	return b.Put(key, v)
}

func (t txn) Delete(bucket string, key []byte) error {
	b := t.tx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	if old := b.Get(key); len(old) >= sealSize {
		t.sums.add(bucket, old, 1<<64-1)
	}
	return b.Delete(key)
}

func (t txn) Scan(bucket string, prefix []byte, fn func(key, value []byte) error) error {
	b := t.tx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if v == nil {
			return &CorruptError{Path: t.path, Reason: "nested bucket in bucket " + bucket}
		}
		value, err := unseal(t.path, bucket, k, v)
		if err != nil {
			return err
		}
		if err := fn(k, value); err != nil {
			return err
		}
	}
	return nil
}
