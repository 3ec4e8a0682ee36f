package omemo

import (
	"encoding/binary"
	"fmt"
)

// A tiny strict binary codec for store records: a version byte, then
// fields in a fixed order, each an unsigned varint or a length-prefixed byte
// string. Decoding rejects non-minimal varints, short input and trailing
// bytes, so that every record has exactly one encoding.

// maxRecordField bounds one length-prefixed field of a store record (a
// serialized ratchet session with MaxSkip skipped keys is far below it).
const maxRecordField = 1 << 22

type recWriter struct{ b []byte }

func (w *recWriter) uint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }

func (w *recWriter) bool(v bool) {
	if v {
		w.uint(1)
	} else {
		w.uint(0)
	}
}

func (w *recWriter) bytes(v []byte) {
	w.uint(uint64(len(v)))
	w.b = append(w.b, v...)
}

func (w *recWriter) string(v string) {
	w.uint(uint64(len(v)))
	w.b = append(w.b, v...)
}

type recReader struct {
	b    []byte
	what string
	err  error
}

func (r *recReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("omemo: %w: %s record: %s", ErrMalformed, r.what, fmt.Sprintf(format, args...))
	}
}

func (r *recReader) uint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	if n != len(binary.AppendUvarint(nil, v)) {
		r.fail("non-minimal varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recReader) uint32() uint32 {
	v := r.uint()
	if v > 1<<32-1 {
		r.fail("value out of range")
		return 0
	}
	return uint32(v)
}

func (r *recReader) bool() bool {
	switch r.uint() {
	case 0:
		return false
	case 1:
		return true
	}
	r.fail("bad boolean")
	return false
}

func (r *recReader) bytes() []byte {
	n := r.uint()
	if r.err != nil {
		return nil
	}
	if n > maxRecordField || n > uint64(len(r.b)) {
		r.fail("truncated")
		return nil
	}
	v := make([]byte, n)
	copy(v, r.b)
	r.b = r.b[n:]
	return v
}

// fixed reads a byte string that must be empty or exactly size bytes long.
func (r *recReader) fixed(size int, optional bool) []byte {
	v := r.bytes()
	if r.err != nil {
		return nil
	}
	if len(v) == 0 && optional {
		return nil
	}
	if len(v) != size {
		r.fail("field of %d bytes, want %d", len(v), size)
		return nil
	}
	return v
}

func (r *recReader) string() string { return string(r.bytes()) }

func (r *recReader) version(want byte) {
	if len(r.b) == 0 {
		r.fail("empty")
		return
	}
	if r.b[0] != want {
		r.fail("unknown version %d", r.b[0])
		return
	}
	r.b = r.b[1:]
}

// versions reads a version byte that must be in min…max and returns it.
func (r *recReader) versions(min, max byte) byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail("empty")
		return 0
	}
	v := r.b[0]
	if v < min || v > max {
		r.fail("unknown version %d", v)
		return 0
	}
	r.b = r.b[1:]
	return v
}

func (r *recReader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	return r.err
}
