package kv

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"
	"unicode/utf8"

	"hush.im/store"
	"mellium.im/xmpp/jid"
)

// The inbox and the seen index (store.Inbox).
//
// inbox:      seq → message (messageVersion encoding below)
// seen:       digest(id) → insertion number
// seen-order: insertion number → digest(id)
// counters:   "inbox" → last seq, "seen" → last insertion number,
//             "seen-first" → oldest insertion number kept,
//             "archive-cursor" → the archive cursor (a string)
//
// The seen index keeps the last store.MaxSeen ids: each insertion evicts
// the entries whose insertion number is at most last−MaxSeen.

var (
	// counterArchive is not a counter but the archive cursor
	// (store.ArchiveCursor), a string.
	counterArchive = []byte("archive-cursor")
	counterInbox   = []byte("inbox")
	counterSeen    = []byte("seen")
	// counterSeenFirst is the oldest insertion number still in seen.
	counterSeenFirst = []byte("seen-first")
)

// maxJIDLength bounds a JID in a stored value: RFC 7622 §3.1 allows
// 1023 bytes for each of the three parts.
const maxJIDLength = 3*1023 + 2

// seenDigestSize is the size of an id digest: SHA-256 truncated to 128
// bits, far beyond accidental collisions among MaxSeen entries.
const seenDigestSize = 16

// seenDomain separates seen-index digests from any other use of SHA-256.
const seenDomain = "hush.im/store seen-id v1\x00"

func seenDigest(id store.MessageID) []byte {
	h := sha256.New()
	h.Write([]byte(seenDomain))
	scope := id.Scope.String()
	var b []byte
	b = append(b, byte(id.Kind))
	b = binary.AppendUvarint(b, uint64(len(scope)))
	b = append(b, scope...)
	b = binary.AppendUvarint(b, uint64(len(id.ID)))
	b = append(b, id.ID...)
	h.Write(b)
	return h.Sum(nil)[:seenDigestSize]
}

// counter returns the value of a counter (0 when it was never set).
func (t *Tx) counter(name []byte) (uint64, error) {
	v, err := t.get(bucketCounters, name)
	if err != nil || v == nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, corrupt(bucketCounters, "value of %d bytes", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// next increments a counter and returns its new value.
func (t *Tx) next(name []byte) (uint64, error) {
	n, err := t.counter(name)
	if err != nil {
		return 0, err
	}
	if n == 1<<64-1 {
		return 0, corrupt(bucketCounters, "counter exhausted")
	}
	n++
	return n, t.put(bucketCounters, name, seqKey(n))
}

// Seen implements store.Inbox.
func (t *Tx) Seen(ids ...store.MessageID) (bool, error) {
	for _, id := range ids {
		if err := id.Check(); err != nil {
			return false, err
		}
		v, err := t.get(bucketSeen, seenDigest(id))
		if err != nil {
			return false, err
		}
		if v != nil {
			return true, nil
		}
	}
	return false, nil
}

// MarkSeen implements store.Inbox.
func (t *Tx) MarkSeen(ids ...store.MessageID) error {
	if err := t.check(true); err != nil {
		return err
	}
	for _, id := range ids {
		if err := id.Check(); err != nil {
			return err
		}
	}
	return t.markSeen(ids)
}

func (t *Tx) markSeen(ids []store.MessageID) error {
	var last uint64
	for _, id := range ids {
		d := seenDigest(id)
		v, err := t.get(bucketSeen, d)
		if err != nil {
			return err
		}
		if v != nil {
			continue
		}
		if last, err = t.next(counterSeen); err != nil {
			return err
		}
		if err := t.put(bucketSeen, d, seqKey(last)); err != nil {
			return err
		}
		if err := t.put(bucketSeenOrder, seqKey(last), d); err != nil {
			return err
		}
	}
	if last == 0 {
		return nil
	}
	return t.evictSeen(last)
}

// maxSeen is store.MaxSeen, lowered by tests.
var maxSeen uint64 = store.MaxSeen

// evictSeen forgets the oldest ids so that the insertions first … last
// that remain number at most maxSeen. Insertion numbers are contiguous:
// entries are only ever removed here, oldest first.
func (t *Tx) evictSeen(last uint64) error {
	first, err := t.counter(counterSeenFirst)
	if err != nil {
		return err
	}
	stored := first
	if first == 0 {
		first = 1
	}
	if first > last {
		return corrupt(bucketCounters, "seen counters out of order")
	}
	for ; last-first+1 > maxSeen; first++ {
		k := seqKey(first)
		d, err := t.get(bucketSeenOrder, k)
		if err != nil {
			return err
		}
		if len(d) != seenDigestSize {
			return corrupt(bucketSeenOrder, "missing or bad entry")
		}
		if err := t.del(bucketSeen, d); err != nil {
			return err
		}
		if err := t.del(bucketSeenOrder, k); err != nil {
			return err
		}
	}
	if first == stored {
		return nil
	}
	return t.put(bucketCounters, counterSeenFirst, seqKey(first))
}

// PutInbox implements store.Inbox.
func (t *Tx) PutInbox(m *store.Message) (uint64, error) {
	if err := t.check(true); err != nil {
		return 0, err
	}
	if err := m.Check(); err != nil {
		return 0, err
	}
	seen, err := t.Seen(m.IDs...)
	if err != nil {
		return 0, err
	}
	if seen {
		return 0, store.ErrDuplicate
	}
	seq, err := t.next(counterInbox)
	if err != nil {
		return 0, err
	}
	v, err := marshalMessage(m, seq)
	if err != nil {
		return 0, err
	}
	if err := t.put(bucketInbox, seqKey(seq), v); err != nil {
		return 0, err
	}
	if err := t.markSeen(m.IDs); err != nil {
		return 0, err
	}
	m.Seq = seq
	return seq, nil
}

// Inbox implements store.Inbox.
func (t *Tx) Inbox(limit int) ([]*store.Message, error) {
	var out []*store.Message
	err := t.scan(bucketInbox, nil, func(k, v []byte) error {
		if limit > 0 && len(out) == limit {
			return errStop
		}
		m, err := unmarshalMessage(v)
		if err != nil {
			return err
		}
		if len(k) != 8 || binary.BigEndian.Uint64(k) != m.Seq {
			return corrupt(bucketInbox, "key does not match message")
		}
		out = append(out, m)
		return nil
	})
	return out, err
}

// Ack implements store.Inbox.
func (t *Tx) Ack(seqs ...uint64) error {
	for _, s := range seqs {
		if err := t.del(bucketInbox, seqKey(s)); err != nil {
			return err
		}
	}
	return nil
}

// messageVersion is the version byte of an inbox message:
//
//	version=1 ‖ uvarint seq ‖ string from ‖ uvarint device ‖
//	uvarint n ‖ n × (uvarint kind ‖ string scope ‖ string id) ‖
//	uvarint hasTime ‖ [varint unix seconds ‖ uvarint nanoseconds] ‖
//	bytes payload
//
// where string and bytes are uvarint length ‖ contents. Decoding rejects
// non-minimal varints, values out of range and trailing bytes, so every
// message has exactly one encoding.
const messageVersion = 1

func marshalMessage(m *store.Message, seq uint64) ([]byte, error) {
	w := writer{b: make([]byte, 0, 64+len(m.Payload))}
	w.b = append(w.b, messageVersion)
	w.uint(seq)
	w.string(m.From.String())
	w.uint(uint64(m.Device))
	w.uint(uint64(len(m.IDs)))
	for _, id := range m.IDs {
		w.uint(uint64(id.Kind))
		w.string(id.Scope.String())
		w.string(id.ID)
	}
	if m.Received.IsZero() {
		w.uint(0)
	} else {
		w.uint(1)
		w.b = binary.AppendVarint(w.b, m.Received.Unix())
		w.uint(uint64(m.Received.Nanosecond()))
	}
	w.bytes(m.Payload)
	return w.b, nil
}

func unmarshalMessage(b []byte) (*store.Message, error) {
	r := reader{b: b, what: bucketInbox}
	r.version(messageVersion)
	m := new(store.Message)
	m.Seq = r.uint()
	from := r.string(maxJIDLength)
	m.Device = r.uint32()
	n := r.uint()
	if n > store.MaxMessageIDs {
		r.fail("too many ids")
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		var id store.MessageID
		k := r.uint()
		if k > 255 {
			r.fail("bad id kind")
		}
		id.Kind = store.IDKind(k)
		scope := r.string(maxJIDLength)
		id.ID = r.string(store.MaxIDLength)
		if r.err != nil {
			break
		}
		var err error
		if id.Scope, err = jid.Parse(scope); err != nil {
			r.fail("bad id scope")
			break
		}
		m.IDs = append(m.IDs, id)
	}
	switch r.uint() {
	case 0:
	case 1:
		sec := r.varint()
		ns := r.uint()
		if ns >= 1e9 {
			r.fail("bad time")
		}
		m.Received = time.Unix(sec, int64(ns)).UTC()
	default:
		r.fail("bad time flag")
	}
	m.Payload = r.bytes(store.MaxPayloadSize)
	if err := r.end(); err != nil {
		return nil, err
	}
	if from != "" {
		var err error
		if m.From, err = jid.Parse(from); err != nil {
			return nil, corrupt(bucketInbox, "bad sender")
		}
	}
	if err := m.Check(); err != nil {
		return nil, corrupt(bucketInbox, "%v", err)
	}
	return m, nil
}

// writer and reader are the strict binary codec of this package's
// values.
type writer struct{ b []byte }

func (w *writer) uint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }

func (w *writer) bytes(v []byte) {
	w.uint(uint64(len(v)))
	w.b = append(w.b, v...)
}

func (w *writer) string(v string) {
	w.uint(uint64(len(v)))
	w.b = append(w.b, v...)
}

type reader struct {
	b    []byte
	what string
	err  error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = corrupt(r.what, format, args...)
	}
}

func (r *reader) version(want byte) {
	if len(r.b) == 0 {
		r.fail("empty value")
		return
	}
	if r.b[0] != want {
		r.fail("unknown version %d", r.b[0])
		return
	}
	r.b = r.b[1:]
}

func (r *reader) uint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || n != len(binary.AppendUvarint(nil, v)) {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 || n != len(binary.AppendVarint(nil, v)) {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) uint32() uint32 {
	v := r.uint()
	if v > 1<<32-1 {
		r.fail("value out of range")
		return 0
	}
	return uint32(v)
}

func (r *reader) bytes(limit int) []byte {
	n := r.uint()
	if r.err != nil {
		return nil
	}
	if n > uint64(limit) || n > uint64(len(r.b)) {
		r.fail("field too long or truncated")
		return nil
	}
	v := make([]byte, n)
	copy(v, r.b)
	r.b = r.b[n:]
	return v
}

func (r *reader) string(limit int) string { return string(r.bytes(limit)) }

func (r *reader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	return r.err
}

// ArchiveCursor implements store.ArchiveCursor.
func (t *Tx) ArchiveCursor() (string, error) {
	v, err := t.get(bucketCounters, counterArchive)
	if err != nil || v == nil {
		return "", err
	}
	if len(v) == 0 || v[0] != cursorVersion || len(v)-1 > store.MaxArchiveCursor || !utf8.Valid(v[1:]) {
		return "", corrupt(bucketCounters, "archive cursor of %d bytes", len(v))
	}
	return string(v[1:]), nil
}

// cursorVersion is the version byte of the stored archive cursor.
const cursorVersion = 1

// SetArchiveCursor implements store.ArchiveCursor.
func (t *Tx) SetArchiveCursor(cursor string) error {
	if len(cursor) > store.MaxArchiveCursor || !utf8.ValidString(cursor) {
		return fmt.Errorf("%w: archive cursor of %d bytes (at most %d, UTF-8)", store.ErrInvalidMessage, len(cursor), store.MaxArchiveCursor)
	}
	return t.put(bucketCounters, counterArchive, append([]byte{cursorVersion}, cursor...))
}
