package bolt

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
)

// Before bbolt maps a file, checkFile reads its two meta pages with plain
// reads and checks what bbolt itself does not: that both are intact (bbolt
// silently falls back to the older one, which would roll the ratchet back
// one step), that they are the two latest transactions, and that the file
// is as long as they say (bbolt would fault reading past its end).
//
// The bbolt file format (version 2, go.etcd.io/bbolt internal/common):
// page i at offset i·pageSize starts with a 16-byte header (id uint64,
// flags uint16, count uint16, overflow uint32); pages 0 and 1 are meta
// pages whose body is
//
//	magic uint32 | version uint32 | pageSize uint32 | flags uint32 |
//	root bucket (root pgid uint64, sequence uint64) | freelist pgid uint64 |
//	pgid (high-water mark) uint64 | txid uint64 | checksum uint64
//
// in the machine's byte order, the checksum being FNV-1a 64 over the
// preceding 56 bytes. A commit of transaction t writes meta page t mod 2.
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	pageHeaderSize   = 16
	metaSize         = 64
	metaChecksumAt   = 56
	metaPageFlag     = 0x04
	minPageSize      = 1024
	maxPageSize      = 1 << 16
	noFreelistPageID = 1<<64 - 1
)

type metaPage struct {
	pageSize uint32
	root     uint64
	freelist uint64
	pgid     uint64
	txid     uint64
}

// readMetaPage reads and checks meta page i at offset off.
func readMetaPage(r io.ReaderAt, i int, off int64) (metaPage, error) {
	var buf [pageHeaderSize + metaSize]byte
	if _, err := r.ReadAt(buf[:], off); err != nil {
		return metaPage{}, fmt.Errorf("meta page %d: unreadable: %w", i, err)
	}
	ne := binary.NativeEndian
	id, flags := ne.Uint64(buf[0:]), ne.Uint16(buf[8:])
	m := buf[pageHeaderSize:]
	h := fnv.New64a()
	h.Write(m[:metaChecksumAt])
	switch {
	case ne.Uint32(m[0:]) != boltMagic:
		return metaPage{}, fmt.Errorf("meta page %d: bad magic", i)
	case ne.Uint32(m[4:]) != boltVersion:
		return metaPage{}, fmt.Errorf("meta page %d: unknown bbolt version %d", i, ne.Uint32(m[4:]))
	case ne.Uint64(m[metaChecksumAt:]) != h.Sum64():
		return metaPage{}, fmt.Errorf("meta page %d: checksum mismatch", i)
	case id != uint64(i) || flags != metaPageFlag:
		return metaPage{}, fmt.Errorf("meta page %d: bad page header", i)
	}
	p := metaPage{
		pageSize: ne.Uint32(m[8:]),
		root:     ne.Uint64(m[16:]),
		freelist: ne.Uint64(m[32:]),
		pgid:     ne.Uint64(m[40:]),
		txid:     ne.Uint64(m[48:]),
	}
	if p.pageSize < minPageSize || p.pageSize > maxPageSize || p.pageSize&(p.pageSize-1) != 0 {
		return metaPage{}, fmt.Errorf("meta page %d: bad page size %d", i, p.pageSize)
	}
	if p.txid%2 != uint64(i) {
		return metaPage{}, fmt.Errorf("meta page %d: holds transaction %d", i, p.txid)
	}
	if p.freelist == noFreelistPageID {
		return metaPage{}, fmt.Errorf("meta page %d: no freelist", i)
	}
	if p.root < 2 || p.root >= p.pgid || p.freelist < 2 || p.freelist >= p.pgid {
		return metaPage{}, fmt.Errorf("meta page %d: page ids out of range", i)
	}
	return p, nil
}

// checkFile checks the meta pages of the bbolt file f, then the page
// structure under the newest one (checkPages), and returns the schema
// version the file records. The error names what failed; the caller wraps
// it in a CorruptError.
func checkFile(f io.ReaderAt, size int64) (uint32, error) {
	if size == 0 {
		return 0, fmt.Errorf("empty file")
	}
	m0, err := readMetaPage(f, 0, 0)
	if err != nil {
		return 0, err
	}
	m1, err := readMetaPage(f, 1, int64(m0.pageSize))
	if err != nil {
		return 0, err
	}
	if m0.pageSize != m1.pageSize {
		return 0, fmt.Errorf("meta pages disagree on the page size")
	}
	if m0.txid+1 != m1.txid && m1.txid+1 != m0.txid {
		return 0, fmt.Errorf("meta pages are not consecutive transactions")
	}
	for _, m := range []metaPage{m0, m1} {
		if need := m.pgid * uint64(m.pageSize); need > uint64(size) {
			return 0, fmt.Errorf("file truncated: %d bytes, transaction %d needs %d", size, m.txid, need)
		}
	}
	newest := m0
	if m1.txid > m0.txid {
		newest = m1
	}
	data := make([]byte, newest.pgid*uint64(newest.pageSize))
	if _, err := f.ReadAt(data, 0); err != nil {
		return 0, fmt.Errorf("unreadable: %w", err)
	}
	return checkPages(data, newest)
}
