package wire

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// ErrMalformed is the error every decoding failure of this package satisfies
// (errors.Is). The wrapping error says which message and field were at fault,
// for logs; it never contains field contents.
var ErrMalformed = errors.New("wire: malformed message")

// KeySize is the size of a raw X25519 (Curve25519) public key and of an
// Ed25519 public key, the form of every key in OMEMO 2 messages
// (XEP-0384 §Protobuf Schemas: dh_pub, ik, ek).
const KeySize = 32

// MACSize is the size of the truncated authentication tag in an
// OMEMOAuthenticatedMessage (XEP-0384 §Double Ratchet: "Authentication tags
// are truncated to 16 bytes").
const MACSize = 16

// maxMessageSize bounds every message this package decodes. A <key> element
// holds a key and a tag (48 bytes of plaintext); even with a key exchange the
// serialized message stays far below this.
const maxMessageSize = 1 << 16

func malformed(msg, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrMalformed, msg, fmt.Sprintf(format, args...))
}

// reader walks the fields of one serialized protobuf message, enforcing the
// strict rules of this package. Field numbers of the messages here are all
// below 64, so one bit per number records what was seen.
type reader struct {
	msg     string // message name, for errors
	b       []byte
	seen    uint64
	last    protowire.Number
	ordered bool // fields must come in ascending order
}

func newReader(msg string, b []byte, ordered bool) (reader, error) {
	r := reader{msg: msg, b: b, ordered: ordered}
	if len(b) > maxMessageSize {
		return r, malformed(msg, "%d bytes, more than the %d allowed", len(b), maxMessageSize)
	}
	return r, nil
}

func (r *reader) done() bool { return len(r.b) == 0 }

// consumeVarint reads one varint and rejects non-minimal encodings, so that
// every accepted input has exactly one encoding.
func (r *reader) consumeVarint(what string) (uint64, error) {
	v, n := protowire.ConsumeVarint(r.b)
	if n < 0 {
		return 0, malformed(r.msg, "%s: %v", what, protowire.ParseError(n))
	}
	if n != protowire.SizeVarint(v) {
		return 0, malformed(r.msg, "%s: non-minimal varint", what)
	}
	r.b = r.b[n:]
	return v, nil
}

// tag reads the next field's tag. It rejects invalid numbers, numbers outside
// known (a bit set), repeated fields and, if r.ordered, fields out of order.
func (r *reader) tag(known uint64) (protowire.Number, protowire.Type, error) {
	v, err := r.consumeVarint("tag")
	if err != nil {
		return 0, 0, err
	}
	num, typ := protowire.DecodeTag(v)
	if num < 1 || num > 63 || known&(1<<uint(num)) == 0 {
		return 0, 0, malformed(r.msg, "unknown field %d", num)
	}
	if r.seen&(1<<uint(num)) != 0 {
		return 0, 0, malformed(r.msg, "repeated field %d", num)
	}
	if r.ordered && num < r.last {
		return 0, 0, malformed(r.msg, "field %d after field %d", num, r.last)
	}
	r.seen |= 1 << uint(num)
	r.last = num
	return num, typ, nil
}

func (r *reader) uint32(num protowire.Number, typ protowire.Type) (uint32, error) {
	if typ != protowire.VarintType {
		return 0, malformed(r.msg, "field %d: wire type %d, want varint", num, typ)
	}
	v, err := r.consumeVarint(fmt.Sprintf("field %d", num))
	if err != nil {
		return 0, err
	}
	if v > math.MaxUint32 {
		return 0, malformed(r.msg, "field %d: value does not fit in uint32", num)
	}
	return uint32(v), nil
}

// bytes returns a copy of a length-delimited field, so that the decoded
// message never aliases the caller's buffer.
func (r *reader) bytes(num protowire.Number, typ protowire.Type) ([]byte, error) {
	v, err := r.raw(num, typ)
	if err != nil {
		return nil, err
	}
	return append([]byte{}, v...), nil
}

// raw returns a length-delimited field without copying it.
func (r *reader) raw(num protowire.Number, typ protowire.Type) ([]byte, error) {
	if typ != protowire.BytesType {
		return nil, malformed(r.msg, "field %d: wire type %d, want length-delimited", num, typ)
	}
	l, err := r.consumeVarint(fmt.Sprintf("field %d length", num))
	if err != nil {
		return nil, err
	}
	if l > uint64(len(r.b)) {
		return nil, malformed(r.msg, "field %d: truncated", num)
	}
	v := r.b[:l]
	r.b = r.b[l:]
	return v, nil
}

// key reads a length-delimited field that must hold a key of size bytes.
func (r *reader) key(num protowire.Number, typ protowire.Type, size int) ([]byte, error) {
	v, err := r.bytes(num, typ)
	if err != nil {
		return nil, err
	}
	if len(v) != size {
		return nil, malformed(r.msg, "field %d: %d bytes, want %d", num, len(v), size)
	}
	return v, nil
}

// require checks that every field in the bit set required was present.
func (r *reader) require(required uint64) error {
	if missing := required &^ r.seen; missing != 0 {
		for num := 1; num < 64; num++ {
			if missing&(1<<uint(num)) != 0 {
				return malformed(r.msg, "missing required field %d", num)
			}
		}
	}
	return nil
}

func bit(nums ...protowire.Number) uint64 {
	var s uint64
	for _, n := range nums {
		s |= 1 << uint(n)
	}
	return s
}

// Encoding helpers: every field is emitted with its minimal tag and length.

func appendUint32(b []byte, num protowire.Number, v uint32) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func sizeUint32(num protowire.Number, v uint32) int {
	return protowire.SizeTag(num) + protowire.SizeVarint(uint64(v))
}

func sizeBytes(num protowire.Number, n int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

func appendTagLen(b []byte, num protowire.Number, n int) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendVarint(b, uint64(n))
}
