// Package store defines the state hush keeps for the application beyond the
// records of its protocol engines: the inbox of decrypted messages that the
// application has not acknowledged yet, and a bounded index of message ids
// already received (XEP-0359 stanza-id and origin-id, urn:xmpp:sid:0) that
// recognises a duplicate — typically the archive copy (XEP-0313) of a
// message that already arrived live — before it is decrypted again.
//
// The OMEMO records are defined by package hush.im/omemo (omemo.Store and
// omemo.Tx). Package hush.im/store/kv implements omemo.Tx and Inbox once,
// over any ordered key/value backend; hush.im/store/bolt is the on-disk
// backend (one bbolt file per account) that most callers use.
//
// A message is never lost (DESIGN: "committed with the ratchet step and
// handed to the application until acknowledged"): decrypt with
// omemo.Manager.DecryptWith and call PutInbox on the transaction passed to
// its callback, so the message is committed together with the ratchet
// step; show what Inbox returns, then Ack it.
package store

import (
	"errors"
	"fmt"
	"time"

	"mellium.im/xmpp/jid"
)

// Errors returned by the stores of hush.im/store/....
var (
	// ErrDuplicate is returned by PutInbox when one of the message's ids
	// was already seen. Returned from the callback of
	// omemo.Manager.DecryptWith it aborts the transaction, so nothing of
	// the decryption is committed; callers drop the message quietly
	// (XEP-0384 §6 treats a message received twice the same way).
	ErrDuplicate = errors.New("store: duplicate message")

	// ErrInvalidMessage is wrapped by errors about a Message that
	// exceeds the limits below or has an invalid id.
	ErrInvalidMessage = errors.New("store: invalid inbox message")

	// ErrCorrupt is wrapped by every error about stored data that fails
	// its checks: a checksum mismatch, a key or value that does not
	// follow the layout, a record that does not decode. Such errors name
	// the place (file, bucket), never the contents.
	ErrCorrupt = errors.New("store: corrupt")
)

// Limits on inbox messages. XEP-0359 sets no length for ids; these bounds
// are far above what servers and clients generate (UUIDs, 16–40 bytes).
const (
	// MaxIDLength bounds one stanza-id or origin-id, in bytes.
	MaxIDLength = 1024
	// MaxMessageIDs bounds the ids recorded for one message: one
	// origin-id and a stanza-id from each archive that stamped it.
	MaxMessageIDs = 8
	// MaxPayloadSize bounds the payload of one inbox message. It is
	// above every server's stanza size limit (Prosody's default is
	// 256 KiB) so that any decrypted stanza fits.
	MaxPayloadSize = 1 << 20
	// MaxSeen is how many message ids the seen index keeps; when it is
	// full the oldest are forgotten. It must cover the overlap between
	// live delivery and an archive catch-up (a MAM query from the last
	// message received), which is small compared with this.
	MaxSeen = 1 << 15
)

// IDKind says which XEP-0359 identifier a MessageID is.
type IDKind uint8

// Kinds of message ids (XEP-0359 §3, §4).
const (
	// StanzaID is a <stanza-id/> stamped by an entity (the user's server
	// or a MUC archive), unique for its 'by' JID.
	StanzaID IDKind = 1
	// OriginID is an <origin-id/> chosen by the sending client, unique
	// for the sender only.
	OriginID IDKind = 2
)

// String returns the XEP-0359 element name of the kind.
func (k IDKind) String() string {
	switch k {
	case StanzaID:
		return "stanza-id"
	case OriginID:
		return "origin-id"
	}
	return "unknown id kind"
}

// MessageID is one XEP-0359 identifier of a message together with the JID
// it is unique for: the 'by' attribute of a stanza-id, the sender's bare
// JID for an origin-id (so that one sender cannot suppress another's
// messages by reusing their ids).
type MessageID struct {
	Kind  IDKind
	Scope jid.JID
	ID    string
}

// Check reports whether id is well formed and within the limits.
func (id MessageID) Check() error {
	if id.Kind != StanzaID && id.Kind != OriginID {
		return fmt.Errorf("%w: unknown id kind %d", ErrInvalidMessage, id.Kind)
	}
	if id.ID == "" || len(id.ID) > MaxIDLength {
		return fmt.Errorf("%w: %v of %d bytes (1 to %d allowed)", ErrInvalidMessage, id.Kind, len(id.ID), MaxIDLength)
	}
	if id.Scope.Domainpart() == "" {
		return fmt.Errorf("%w: %v without a scope JID", ErrInvalidMessage, id.Kind)
	}
	return nil
}

// Message is one decrypted message in the inbox.
type Message struct {
	// Seq is assigned by PutInbox: increasing, never reused, the key for
	// Ack. An application that shows messages idempotently remembers the
	// highest Seq it has shown.
	Seq uint64
	// From is the sender as the application wants to remember it (a bare
	// JID, or a full JID for a MUC occupant); Device is the sending
	// device, 0 when the protocol has none (OX).
	From   jid.JID
	Device uint32
	// IDs are the message's stanza-ids and origin-id, recorded in the
	// seen index by PutInbox.
	IDs []MessageID
	// Received is when the message was received (or its archive
	// timestamp). It is stored with nanosecond precision.
	Received time.Time
	// Payload is the decrypted content (for example the verified
	// plaintext stanza). It is secret: String and GoString leave it out so
	// that it does not reach logs by accident.
	Payload []byte
}

// Check reports whether m is within the limits.
func (m *Message) Check() error {
	if len(m.IDs) > MaxMessageIDs {
		return fmt.Errorf("%w: %d ids (at most %d)", ErrInvalidMessage, len(m.IDs), MaxMessageIDs)
	}
	for _, id := range m.IDs {
		if err := id.Check(); err != nil {
			return err
		}
	}
	if len(m.Payload) > MaxPayloadSize {
		return fmt.Errorf("%w: payload of %d bytes (at most %d)", ErrInvalidMessage, len(m.Payload), MaxPayloadSize)
	}
	return nil
}

// String describes m without its payload.
func (m Message) String() string {
	return fmt.Sprintf("store.Message{Seq: %d, From: %s, Device: %d, IDs: %d, Received: %s, Payload: %d bytes}",
		m.Seq, m.From, m.Device, len(m.IDs), m.Received.Format(time.RFC3339Nano), len(m.Payload))
}

// GoString is String, so that %#v does not print the payload either.
func (m Message) GoString() string { return m.String() }

// Inbox is the part of a store transaction that holds decrypted messages
// until the application acknowledges them, and the seen index. It is
// implemented by the transactions of hush.im/store/kv (and so of
// hush.im/store/bolt); inside omemo.Manager.DecryptWith get it with a type
// assertion, tx.(store.Inbox).
type Inbox interface {
	// PutInbox records m.IDs in the seen index and appends m to the
	// inbox, setting and returning m.Seq. It fails with ErrDuplicate,
	// writing nothing, when one of the ids was already seen.
	PutInbox(m *Message) (seq uint64, err error)
	// Inbox returns the unacknowledged messages, oldest first, at most
	// limit of them (all when limit ≤ 0).
	Inbox(limit int) ([]*Message, error)
	// Ack removes messages from the inbox. Unknown sequence numbers are
	// ignored, so acknowledging twice is harmless. Their ids stay in the
	// seen index.
	Ack(seqs ...uint64) error
	// Seen reports whether any of ids is in the seen index. Check it
	// before decrypting a message; PutInbox checks again.
	Seen(ids ...MessageID) (bool, error)
	// MarkSeen records ids in the seen index without an inbox entry, for
	// messages that have nothing to show (an empty OMEMO message) or that
	// failed for good.
	MarkSeen(ids ...MessageID) error
}

// MaxArchiveCursor bounds an archive cursor (ArchiveCursor): an archive
// id (at most MaxIDLength bytes) with a short prefix.
const MaxArchiveCursor = MaxIDLength + 64

// ArchiveCursor is the part of a store transaction that remembers how far
// the application has read the account's archive (XEP-0313), so that a
// device that was offline catches up with the messages another device of
// the account took from the server meanwhile. The value is the
// application's: hush.im/store/kv keeps it as it is given. It is
// implemented by the transactions of hush.im/store/kv (and so of
// hush.im/store/bolt).
type ArchiveCursor interface {
	// ArchiveCursor returns the cursor, "" when none was set.
	ArchiveCursor() (string, error)
	// SetArchiveCursor replaces the cursor; one longer than
	// MaxArchiveCursor bytes or not UTF-8 is ErrInvalidMessage.
	SetArchiveCursor(cursor string) error
}
