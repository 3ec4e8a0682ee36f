package omemo

import (
	"strconv"

	"hush.im/omemo/legacy"
	"mellium.im/xmpp/jid"
)

// Address names one device of one account: a bare JID and a device id.
type Address struct {
	JID    jid.JID
	Device uint32
}

// Equal reports whether a and b name the same device.
func (a Address) Equal(b Address) bool {
	return a.Device == b.Device && a.JID.Equal(b.JID)
}

// String returns "jid#device", e.g. "juliet@capulet.lit#31415", for logs
// and as a map key. It is not a JID.
func (a Address) String() string {
	return a.JID.String() + "#" + strconv.FormatUint(uint64(a.Device), 10)
}

// TrustLevel is what the user (or a trust policy such as BTBV) decided
// about one identity key of one bare JID (XEP-0384 §8, XEP-0450).
type TrustLevel uint8

// Trust levels. The zero value is TrustUndecided.
const (
	TrustUndecided TrustLevel = iota
	TrustTrusted
	TrustVerified
	TrustDistrusted
)

var trustText = [...]string{"undecided", "trusted", "verified", "distrusted"}

// String returns the level's name.
func (l TrustLevel) String() string {
	if int(l) < len(trustText) {
		return trustText[l]
	}
	return "unknown trust level"
}

// Store holds every piece of OMEMO state of one account's device. Each
// Manager operation runs in exactly one Update or View, so a
// Store must give Update real transaction semantics: when fn returns an
// error (or panics), nothing fn wrote is visible afterwards; when it returns
// nil, everything fn wrote is committed atomically. Update calls never run
// concurrently with each other.
//
// The records are opaque to a Store: each has MarshalBinary and
// UnmarshalBinary with an explicit, versioned encoding (a version byte, or
// for device lists and bundles their namespaced XML). An in-memory Store
// is in package omemo/memstore; an on-disk one implements the same
// interface with one bucket per record kind.
type Store interface {
	// Update runs fn in a read-write transaction.
	Update(fn func(Tx) error) error
	// View runs fn in a read-only transaction; setters return an error.
	View(fn func(Tx) error) error
}

// Tx is one transaction of a Store. Getters return ErrNotFound (possibly
// wrapped) when a record does not exist, and every record they return is
// the caller's to modify (a fresh decoding or a Clone). A setter takes
// ownership of the record passed: the caller does not modify it
// afterwards, so a store may keep it as it is, or serialized
// (MarshalBinary).
type Tx interface {
	// Identity returns this device's identity and key counters.
	Identity() (*IdentityRecord, error)
	PutIdentity(*IdentityRecord) error

	// PreKey returns one own one-time prekey by id; PreKeys returns all,
	// ordered by id.
	PreKey(id uint32) (*PreKeyRecord, error)
	PreKeys() ([]*PreKeyRecord, error)
	PutPreKey(*PreKeyRecord) error
	DeletePreKey(id uint32) error

	// SignedPreKey returns one own signed prekey by id; SignedPreKeys
	// returns all, ordered by id.
	SignedPreKey(id uint32) (*SignedPreKeyRecord, error)
	SignedPreKeys() ([]*SignedPreKeyRecord, error)
	PutSignedPreKey(*SignedPreKeyRecord) error
	DeleteSignedPreKey(id uint32) error

	// Session returns the session with one remote device; SessionDevices
	// lists the device ids with which there is a session, for a bare JID,
	// in increasing order.
	Session(Address) (*SessionRecord, error)
	SessionDevices(bare jid.JID) ([]uint32, error)
	PutSession(*SessionRecord) error
	DeleteSession(Address) error

	// ReplayLog returns the digests of the last messages decrypted from
	// one remote device.
	ReplayLog(Address) (*ReplayLog, error)
	PutReplayLog(*ReplayLog) error
	DeleteReplayLog(Address) error

	// DeviceList returns the last device list seen for a bare JID
	// (including the own one).
	DeviceList(bare jid.JID) (*DeviceList, error)
	PutDeviceList(bare jid.JID, l *DeviceList) error

	// Bundle returns the cached bundle of a remote device.
	Bundle(Address) (*Bundle, error)
	PutBundle(Address, *Bundle) error
	DeleteBundle(Address) error

	// Trust returns the trust level recorded for an identity key (Ed25519
	// form) of a bare JID, TrustUndecided when none is.
	Trust(bare jid.JID, identityKey []byte) (TrustLevel, error)
	PutTrust(bare jid.JID, identityKey []byte, level TrustLevel) error

	// Pending returns the devices owed an empty message (key exchange
	// completion, heartbeat) deferred during archive catch-up. PutPending
	// with a record for which Empty is true may delete the record.
	Pending() (*PendingRecord, error)
	PutPending(*PendingRecord) error

	// Legacy OMEMO (XEP-0384 0.3, package omemo/legacy) state, kept apart
	// from the OMEMO 2 records of the same device: a device may have a
	// session in each protocol. The identity, prekeys, signed prekeys,
	// replay logs, trust and pending records above serve both protocols.

	// LegacySession returns the legacy session with one remote device;
	// LegacySessionDevices lists the device ids with which there is one,
	// for a bare JID, in increasing order.
	LegacySession(Address) (*LegacySessionRecord, error)
	LegacySessionDevices(bare jid.JID) ([]uint32, error)
	PutLegacySession(*LegacySessionRecord) error
	DeleteLegacySession(Address) error

	// LegacyDeviceList returns the last legacy device list
	// (eu.siacs.conversations.axolotl.devicelist) seen for a bare JID,
	// including the own one. Its MarshalBinary/UnmarshalBinary encoding
	// is the <list/> XML.
	LegacyDeviceList(bare jid.JID) (*legacy.DeviceList, error)
	PutLegacyDeviceList(bare jid.JID, l *legacy.DeviceList) error

	// LegacyBundle returns the cached legacy bundle of a remote device.
	// Its MarshalBinary/UnmarshalBinary encoding is the <bundle/> XML.
	LegacyBundle(Address) (*legacy.Bundle, error)
	PutLegacyBundle(Address, *legacy.Bundle) error
	DeleteLegacyBundle(Address) error
}
