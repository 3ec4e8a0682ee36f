package kv

import (
	"encoding/binary"
	"slices"

	"mellium.im/xmpp/jid"
)

// The layout: one bucket per record kind. Keys:
//
//	identity, pending             "self"
//	prekeys, signed-prekeys       id (4 bytes, big-endian)
//	sessions, replay, bundles,    address: uvarint(len(jid)) ‖ jid ‖ device (4 bytes, big-endian)
//	legacy-sessions, legacy-bundles
//	device-lists,                 jid
//	legacy-device-lists
//	trust                         uvarint(len(jid)) ‖ jid ‖ identity key
//	inbox                         sequence number (8 bytes, big-endian)
//	seen                          id digest (16 bytes)
//	seen-order                    insertion number (8 bytes, big-endian)
//	counters                      counter name, "archive-cursor"
//
// Big-endian numbers make the backend's key order the numeric order, and
// the length prefix makes the keys of one JID a prefix that no other JID's
// keys share, so a prefix scan lists the devices of one JID in increasing
// order. Values are the records' MarshalBinary output (versioned by the
// records themselves) or the encodings of this package, each starting with
// a version byte.
const (
	bucketIdentity    = "identity"
	bucketPreKeys     = "prekeys"
	bucketSignedPKs   = "signed-prekeys"
	bucketSessions    = "sessions"
	bucketReplay      = "replay"
	bucketDeviceLists = "device-lists"
	bucketBundles     = "bundles"
	bucketTrust       = "trust"
	bucketPending     = "pending"
	bucketInbox       = "inbox"
	bucketSeen        = "seen"
	bucketSeenOrder   = "seen-order"
	bucketCounters    = "counters"

	bucketLegacySessions    = "legacy-sessions"
	bucketLegacyDeviceLists = "legacy-device-lists"
	bucketLegacyBundles     = "legacy-bundles"
)

// buckets lists every bucket name, sorted.
var buckets = []string{
	bucketBundles, bucketCounters, bucketDeviceLists, bucketIdentity,
	bucketInbox, bucketLegacyBundles, bucketLegacyDeviceLists,
	bucketLegacySessions, bucketPending, bucketPreKeys, bucketReplay,
	bucketSeen, bucketSeenOrder, bucketSessions, bucketSignedPKs,
	bucketTrust,
}

// Buckets returns the names of all buckets this package uses, sorted. A
// backend that must create buckets ahead of time creates these; a bucket
// with another name is not this package's.
func Buckets() []string { return slices.Clone(buckets) }

var keySelf = []byte("self")

func idKey(id uint32) []byte { return binary.BigEndian.AppendUint32(nil, id) }

func jidPrefix(j jid.JID, extra int) []byte {
	s := j.String()
	b := make([]byte, 0, binary.MaxVarintLen64+len(s)+extra)
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func addrKey(j jid.JID, device uint32) []byte {
	return binary.BigEndian.AppendUint32(jidPrefix(j, 4), device)
}

func trustKey(j jid.JID, identityKey []byte) []byte {
	return append(jidPrefix(j, len(identityKey)), identityKey...)
}

func seqKey(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }
