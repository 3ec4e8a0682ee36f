package bolt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"hush.im/store/kv"
)

// checkPages verifies the page structure of a bbolt file before bbolt
// maps it: bbolt trusts its pages and loops forever on a branch page that
// points to itself, faults on a page past the end of the file, and panics
// on a bad page type. Walking the tree of the newest meta page, it checks
// that every page is within the high-water mark and referenced once (no
// cycles, no page both in use and free), that every page below the mark is
// either in use or free, that elements and their keys and values lie
// within their page, and that keys are strictly increasing within each
// page and within the ranges their branch pages give them. It also checks
// this package's layout: top-level entries are buckets, bucket entries are
// plain values (no nested buckets), and every value's seal (see txn.go)
// when the schema seals values.
//
// The page layout (bbolt internal/common, format version 2): a 16-byte
// header (id uint64, flags uint16, count uint16, overflow uint32), then
// count elements of 16 bytes. A branch element is pos uint32, ksize
// uint32, child pgid uint64; a leaf element is flags uint32, pos uint32,
// ksize uint32, vsize uint32; pos counts from the element itself, the
// value follows the key. A bucket's value is its root pgid uint64 and a
// sequence uint64, followed, when the root is 0, by an inline leaf page.
// A freelist page holds count page ids (uint64), or, when count is 0xFFFF,
// a uint64 count followed by the ids.
const (
	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	freelistPageFlag = 0x10
	bucketLeafFlag   = 0x01
	elementSize      = 16
	bucketHeaderSize = 16
	// maxTreeDepth bounds the b-tree depth: a bbolt page holds at least
	// two keys, so a tree of 2^63 pages is less than 64 deep.
	maxTreeDepth = 64
)

type pageChecker struct {
	data []byte // the file, up to the high-water mark
	ps   uint64
	hwm  uint64
	used []bool // page in use or free

	// Seals: the schema record, and the buckets with a value whose seal
	// is wrong (judged once the schema is known).
	schema   []byte
	badSeals []string
	// Entry counts and seal sums: found, and recorded in the meta bucket.
	found, recorded map[string]bucketSum
	badSums         bool
}

func (c *pageChecker) fail(format string, args ...any) error {
	return fmt.Errorf(format, args...)
}

// page returns the bytes of page id with its overflow pages, marking
// them used.
func (c *pageChecker) page(id uint64, what string) ([]byte, error) {
	if id < 2 || id >= c.hwm {
		return nil, c.fail("%s page %d beyond the high-water mark %d", what, id, c.hwm)
	}
	p := c.data[id*c.ps : (id+1)*c.ps]
	ne := binary.NativeEndian
	if ne.Uint64(p) != id {
		return nil, c.fail("page %d has the header of page %d", id, ne.Uint64(p))
	}
	n := uint64(ne.Uint32(p[12:])) + 1
	if n > c.hwm-id {
		return nil, c.fail("page %d overflows the high-water mark", id)
	}
	for i := id; i < id+n; i++ {
		if c.used[i] {
			return nil, c.fail("page %d referenced twice", i)
		}
		c.used[i] = true
	}
	return c.data[id*c.ps : (id+n)*c.ps], nil
}

func (c *pageChecker) freelist(id uint64) error {
	p, err := c.page(id, "freelist")
	if err != nil {
		return err
	}
	ne := binary.NativeEndian
	if ne.Uint16(p[8:]) != freelistPageFlag {
		return c.fail("freelist page %d has flags %#x", id, ne.Uint16(p[8:]))
	}
	count, ids := uint64(ne.Uint16(p[10:])), p[pageHeaderSize:]
	if count == 0xFFFF {
		count, ids = ne.Uint64(ids), ids[8:]
	}
	if count > uint64(len(ids))/8 {
		return c.fail("freelist page %d: %d ids do not fit", id, count)
	}
	for i := range count {
		f := ne.Uint64(ids[8*i:])
		if f < 2 || f >= c.hwm {
			return c.fail("free page %d beyond the high-water mark", f)
		}
		if c.used[f] {
			return c.fail("page %d freed twice", f)
		}
		c.used[f] = true
	}
	return nil
}

// element returns the key and value (nil for a branch element) and the
// leaf flags or child pgid of element i of the page p.
func (c *pageChecker) element(p []byte, i int, leaf bool) (key, value []byte, x uint64, err error) {
	ne := binary.NativeEndian
	off := uint64(pageHeaderSize + i*elementSize)
	if off+elementSize > uint64(len(p)) {
		return nil, nil, 0, c.fail("element %d beyond its page", i)
	}
	e := p[off : off+elementSize]
	var pos, ksize, vsize uint64
	if leaf {
		x, pos, ksize, vsize = uint64(ne.Uint32(e)), uint64(ne.Uint32(e[4:])), uint64(ne.Uint32(e[8:])), uint64(ne.Uint32(e[12:]))
	} else {
		pos, ksize, x = uint64(ne.Uint32(e)), uint64(ne.Uint32(e[4:])), ne.Uint64(e[8:])
	}
	start := off + pos
	if ksize == 0 || start+ksize+vsize > uint64(len(p)) {
		return nil, nil, 0, c.fail("element %d: key or value beyond its page", i)
	}
	key = p[start : start+ksize]
	if leaf {
		value = p[start+ksize : start+ksize+vsize]
	}
	return key, value, x, nil
}

// tree walks the b-tree rooted at page id. bucket is "" for the root
// tree, whose entries are buckets; keys must lie in [min, max).
func (c *pageChecker) tree(id uint64, bucket string, min, max []byte, depth int) error {
	if depth > maxTreeDepth {
		return c.fail("b-tree deeper than %d", maxTreeDepth)
	}
	p, err := c.page(id, "b-tree")
	if err != nil {
		return err
	}
	return c.node(p, id, bucket, min, max, depth)
}

// node checks the branch or leaf page p (of page id, 0 for inline).
func (c *pageChecker) node(p []byte, id uint64, bucket string, min, max []byte, depth int) error {
	ne := binary.NativeEndian
	flags, count := ne.Uint16(p[8:]), int(ne.Uint16(p[10:]))
	leaf := flags == leafPageFlag
	if !leaf && (flags != branchPageFlag || id == 0) {
		return c.fail("page %d has flags %#x", id, flags)
	}
	if !leaf && count == 0 {
		return c.fail("empty branch page %d", id)
	}
	prev := min
	for i := range count {
		key, value, x, err := c.element(p, i, leaf)
		if err != nil {
			return fmt.Errorf("page %d: %w", id, err)
		}
		if prev != nil && (bytes.Compare(key, prev) < 0 || i > 0 && bytes.Equal(key, prev)) {
			return c.fail("page %d: keys out of order", id)
		}
		if max != nil && bytes.Compare(key, max) >= 0 {
			return c.fail("page %d: key beyond its branch", id)
		}
		prev = key
		if !leaf {
			var next []byte = max
			if i+1 < count {
				if next, _, _, err = c.element(p, i+1, false); err != nil {
					return fmt.Errorf("page %d: %w", id, err)
				}
			}
			if err := c.tree(x, bucket, key, next, depth+1); err != nil {
				return err
			}
			continue
		}
		if err := c.entry(id, bucket, key, value, x, depth); err != nil {
			return err
		}
	}
	return nil
}

// entry checks one leaf entry.
func (c *pageChecker) entry(id uint64, bucket string, key, value []byte, flags uint64, depth int) error {
	if bucket != "" {
		if flags != 0 {
			return c.fail("page %d: nested bucket in bucket %s", id, bucket)
		}
		if _, err := unseal("", bucket, key, value); err != nil {
			if len(c.badSeals) == 0 || c.badSeals[len(c.badSeals)-1] != bucket {
				c.badSeals = append(c.badSeals, bucket)
			}
		}
		switch {
		case bucket != bucketMeta:
			s := c.found[bucket]
			s.count++
			if len(value) >= sealSize {
				s.sum += uint64(binary.BigEndian.Uint32(value[len(value)-sealSize:]))
			}
			c.found[bucket] = s
		case bytes.Equal(key, keySchema):
			c.schema = value
		case bytes.HasPrefix(key, []byte(sumPrefix)):
			s, err := readSum("", key, value)
			if err != nil {
				c.badSums = true
			}
			c.recorded[string(key[len(sumPrefix):])] = s
		}
		return nil
	}
	if flags != bucketLeafFlag {
		return c.fail("page %d: top-level entry is not a bucket", id)
	}
	if len(value) < bucketHeaderSize {
		return c.fail("page %d: short bucket header", id)
	}
	name := string(key)
	if !knownBucket(name) {
		return c.fail("unknown bucket %q", name)
	}
	root := binary.NativeEndian.Uint64(value)
	if root != 0 {
		if len(value) != bucketHeaderSize {
			return c.fail("page %d: bad bucket header", id)
		}
		return c.tree(root, name, nil, nil, depth+1)
	}
	inline := value[bucketHeaderSize:]
	if len(inline) < pageHeaderSize || binary.NativeEndian.Uint16(inline[8:]) != leafPageFlag {
		return c.fail("page %d: bad inline bucket %q", id, name)
	}
	return c.node(inline, 0, name, nil, nil, depth+1)
}

// checkPages checks the structure under the meta page m of the file
// data and returns the schema version it records (0 when it has none;
// the caller decides).
func checkPages(data []byte, m metaPage) (uint32, error) {
	c := &pageChecker{
		data: data, ps: uint64(m.pageSize), hwm: m.pgid, used: make([]bool, m.pgid),
		found: map[string]bucketSum{}, recorded: map[string]bucketSum{},
	}
	c.used[0], c.used[1] = true, true
	if err := c.freelist(m.freelist); err != nil {
		return 0, err
	}
	if err := c.tree(m.root, "", nil, nil, 0); err != nil {
		return 0, err
	}
	for id, ok := range c.used {
		if !ok {
			return 0, c.fail("page %d neither in use nor free", id)
		}
	}
	v, err := unseal("", bucketMeta, keySchema, c.schema)
	if err != nil || len(v) != 4 {
		return 0, c.fail("missing or damaged schema record")
	}
	schema := binary.BigEndian.Uint32(v)
	if schema < 2 || schema > SchemaVersion {
		return schema, nil
	}
	if len(c.badSeals) > 0 {
		return 0, fmt.Errorf("checksum mismatch in bucket %s", c.badSeals[0])
	}
	if c.badSums {
		return 0, fmt.Errorf("bad sum record")
	}
	for _, name := range kv.Buckets() {
		if f, r := c.found[name], c.recorded[name]; f != r {
			return 0, fmt.Errorf("bucket %s holds %d entries, %d recorded, or their checksums changed", name, f.count, r.count)
		}
	}
	return schema, nil
}

func knownBucket(name string) bool {
	return name == bucketMeta || slices.Contains(kv.Buckets(), name)
}
