package omemo

import (
	"bytes"
	"crypto/ecdh"
	"crypto/sha256"
	"fmt"
	"slices"
	"time"

	"hush.im/internal/ratchet"
	"hush.im/internal/xeddsa"
	"mellium.im/xmpp/jid"
)

// Store records. Each has MarshalBinary/UnmarshalBinary with a version
// byte; secrets live in unexported fields and only leave the record in
// MarshalBinary output, which must be stored as secret as the keys.

const recordVersion = 1

// IdentityRecord is this device's long-term state: device id, identity key
// (a Curve25519 scalar whose Ed25519 form has sign bit 0), own label and
// its signature, and the counters that keep prekey ids from ever being
// reused.
type IdentityRecord struct {
	deviceID   uint32
	key        *xeddsa.PrivateKey
	label      string
	labelSig   []byte
	nextPreKey uint32 // next one-time prekey id, starts at 1
	nextSPK    uint32 // next signed prekey id, starts at 1
}

// DeviceID returns the device id.
func (r *IdentityRecord) DeviceID() uint32 { return r.deviceID }

// IdentityKey returns the public identity key in Ed25519 form.
func (r *IdentityRecord) IdentityKey() []byte { return r.key.Ed25519Public() }

// Label returns the own device label ("" for none).
func (r *IdentityRecord) Label() string { return r.label }

// Clone returns a copy of r (the identity key itself is immutable and
// shared).
func (r *IdentityRecord) Clone() *IdentityRecord {
	c := *r
	c.labelSig = bytes.Clone(r.labelSig)
	return &c
}

// MarshalBinary encodes the record, private identity key included.
func (r *IdentityRecord) MarshalBinary() ([]byte, error) {
	if r.key == nil {
		return nil, fmt.Errorf("omemo: marshaling an empty identity record")
	}
	w := recWriter{b: []byte{recordVersion}}
	w.uint(uint64(r.deviceID))
	w.bytes(r.key.Bytes())
	w.string(r.label)
	w.bytes(r.labelSig)
	w.uint(uint64(r.nextPreKey))
	w.uint(uint64(r.nextSPK))
	return w.b, nil
}

// UnmarshalBinary decodes a record written by MarshalBinary.
func (r *IdentityRecord) UnmarshalBinary(b []byte) error {
	rd := recReader{b: b, what: "identity"}
	rd.version(recordVersion)
	var v IdentityRecord
	v.deviceID = rd.uint32()
	scalar := rd.fixed(xeddsa.PrivateKeySize, false)
	v.label = rd.string()
	v.labelSig = rd.fixed(SignatureSize, true)
	v.nextPreKey = rd.uint32()
	v.nextSPK = rd.uint32()
	if err := rd.end(); err != nil {
		return err
	}
	if !ValidDeviceID(v.deviceID) {
		return fmt.Errorf("omemo: %w: identity record: invalid device id", ErrMalformed)
	}
	k, err := xeddsa.NewPrivateKey(scalar)
	if err != nil || !bytes.Equal(k.Bytes(), scalar) {
		return fmt.Errorf("omemo: %w: identity record: invalid key", ErrMalformed)
	}
	v.key = k
	*r = v
	return nil
}

// PreKeyRecord is one own one-time prekey (XEP-0384 §4.2). A prekey used
// by a key exchange during archive catch-up is hidden (left out of the
// bundle) but kept until EndCatchUp, together with digests of the key
// exchanges that used it, so that a replayed key exchange cannot build a
// session twice.
type PreKeyRecord struct {
	id     uint32
	priv   []byte // X25519 private key, secret
	pub    []byte // its public key, kept to spare a scalar multiplication
	hidden bool
	usedBy [][]byte // SHA-256(IK ‖ EK) of key exchanges that used it
}

// ID returns the prekey id.
func (r *PreKeyRecord) ID() uint32 { return r.id }

// Public returns the raw X25519 public key.
func (r *PreKeyRecord) Public() []byte { return bytes.Clone(r.pub) }

func (r *PreKeyRecord) ecdh() (*ecdh.PrivateKey, error) { return ecdh.X25519().NewPrivateKey(r.priv) }

// Clone returns a deep copy of r.
func (r *PreKeyRecord) Clone() *PreKeyRecord {
	c := *r
	c.usedBy = make([][]byte, len(r.usedBy))
	for i, u := range r.usedBy {
		c.usedBy[i] = bytes.Clone(u)
	}
	return &c
}

// Hidden reports whether the prekey was used during catch-up and is no
// longer published.
func (r *PreKeyRecord) Hidden() bool { return r.hidden }

// maxPreKeyUses bounds the key exchanges recorded on one hidden prekey.
const maxPreKeyUses = 16

// MarshalBinary encodes the record, private key included.
func (r *PreKeyRecord) MarshalBinary() ([]byte, error) {
	w := recWriter{b: []byte{recordVersion}}
	w.uint(uint64(r.id))
	w.bytes(r.priv)
	w.bytes(r.pub)
	w.bool(r.hidden)
	w.uint(uint64(len(r.usedBy)))
	for _, u := range r.usedBy {
		w.bytes(u)
	}
	return w.b, nil
}

// UnmarshalBinary decodes a record written by MarshalBinary.
func (r *PreKeyRecord) UnmarshalBinary(b []byte) error {
	rd := recReader{b: b, what: "prekey"}
	rd.version(recordVersion)
	var v PreKeyRecord
	v.id = rd.uint32()
	v.priv = rd.fixed(32, false)
	v.pub = rd.fixed(32, false)
	v.hidden = rd.bool()
	n := rd.uint()
	if n > maxPreKeyUses {
		rd.fail("too many uses")
	}
	for i := uint64(0); i < n && rd.err == nil; i++ {
		v.usedBy = append(v.usedBy, rd.fixed(sha256.Size, false))
	}
	if err := rd.end(); err != nil {
		return err
	}
	*r = v
	return nil
}

// SignedPreKeyRecord is one own signed prekey (XEP-0384 §4.2): the
// current one, or a previous one kept for a grace period after rotation.
// One signed prekey serves both protocols, with one signature each: OMEMO
// 2 signs the raw 32-byte key with Ed25519 (XEP-0384 0.9 §5.3.2), legacy
// OMEMO the 33-byte 0x05-prefixed key with libsignal's XEdDSA signature
// (legacy.SignSignedPreKey).
type SignedPreKeyRecord struct {
	id        uint32
	priv      []byte // X25519 private key, secret
	pub       []byte
	sig       []byte
	legacySig []byte // nil only in a version 1 record not upgraded yet
	created   time.Time
	retired   time.Time // zero for the current signed prekey
}

// ID returns the signed prekey id.
func (r *SignedPreKeyRecord) ID() uint32 { return r.id }

// Public returns the raw X25519 public key.
func (r *SignedPreKeyRecord) Public() []byte { return bytes.Clone(r.pub) }

func (r *SignedPreKeyRecord) ecdh() (*ecdh.PrivateKey, error) {
	return ecdh.X25519().NewPrivateKey(r.priv)
}

// Clone returns a copy of r.
func (r *SignedPreKeyRecord) Clone() *SignedPreKeyRecord {
	c := *r
	return &c
}

// Signature returns the Ed25519 signature by the identity key over Public.
func (r *SignedPreKeyRecord) Signature() []byte { return bytes.Clone(r.sig) }

// LegacySignature returns the legacy OMEMO signedPreKeySignature: the
// identity key's libsignal signature over 0x05 ‖ Public.
func (r *SignedPreKeyRecord) LegacySignature() []byte { return bytes.Clone(r.legacySig) }

// Created returns when the signed prekey was generated.
func (r *SignedPreKeyRecord) Created() time.Time { return r.created }

// Retired returns when the signed prekey was replaced, or the zero time
// for the current one.
func (r *SignedPreKeyRecord) Retired() time.Time { return r.retired }

func unixOrZero(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.Unix())
}

func timeOrZero(s uint64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(int64(s), 0).UTC()
}

// signedPreKeyVersion is the version of SignedPreKeyRecord's encoding:
//
//	1  id, private key, public key, OMEMO 2 signature, created, retired
//	2  the legacy OMEMO signature after the OMEMO 2 one
const signedPreKeyVersion = 2

// MarshalBinary encodes the record, private key included. A version 1
// record that was not upgraded yet (no legacy signature) is written in
// version 1.
func (r *SignedPreKeyRecord) MarshalBinary() ([]byte, error) {
	v := byte(signedPreKeyVersion)
	if r.legacySig == nil {
		v = 1
	}
	w := recWriter{b: []byte{v}}
	w.uint(uint64(r.id))
	w.bytes(r.priv)
	w.bytes(r.pub)
	w.bytes(r.sig)
	if v >= 2 {
		w.bytes(r.legacySig)
	}
	w.uint(unixOrZero(r.created))
	w.uint(unixOrZero(r.retired))
	return w.b, nil
}

// UnmarshalBinary decodes a record written by MarshalBinary, in version 1
// or 2. New upgrades version 1 records by adding the legacy signature.
func (r *SignedPreKeyRecord) UnmarshalBinary(b []byte) error {
	rd := recReader{b: b, what: "signed prekey"}
	version := rd.versions(1, signedPreKeyVersion)
	var v SignedPreKeyRecord
	v.id = rd.uint32()
	v.priv = rd.fixed(32, false)
	v.pub = rd.fixed(32, false)
	v.sig = rd.fixed(SignatureSize, false)
	if version >= 2 {
		v.legacySig = rd.fixed(SignatureSize, false)
	}
	created := rd.uint()
	retired := rd.uint()
	if created > 1<<62 || retired > 1<<62 {
		rd.fail("time out of range")
	}
	if err := rd.end(); err != nil {
		return err
	}
	v.created, v.retired = timeOrZero(created), timeOrZero(retired)
	*r = v
	return nil
}

// SessionRecord is the session with one remote device: the Double Ratchet
// state, the peer's identity key, and the X3DH header of the key exchange
// that built it. An initiator keeps sending that header (OMEMOKeyExchange)
// until the peer answers; a responder compares a repeated key exchange
// with it (python-twomemo builds_same_session).
//
// When a key exchange replaces the session, the replaced state is kept
// among at most MaxPreviousSessions previous states, which decryption
// also tries (as libsignal keeps "previous session states"): when both
// devices initiated at the same time, each replaces its own session with
// the other's, and the previous state is what lets them converge on one.
type SessionRecord struct {
	addr Address
	sessionState
	previous []sessionState // most recent first
}

// MaxPreviousSessions bounds the replaced session states kept per device.
const MaxPreviousSessions = 3

// sessionState is one Double Ratchet session and its key exchange.
type sessionState struct {
	identityKey []byte // peer's, Ed25519 form
	initiator   bool
	confirmed   bool   // initiator only: the peer answered
	pkID        uint32 // X3DH header: peer's (initiator) or own (responder) prekey id
	spkID       uint32
	ek          []byte // X3DH ephemeral public key (own for initiator, peer's for responder)
	ratchet     *ratchet.Session
	heartbeat   []byte // peer ratchet key for which a heartbeat was already asked
}

// Address returns the remote device.
func (r *SessionRecord) Address() Address { return r.addr }

// IdentityKey returns the remote device's identity key (Ed25519 form).
func (r *SessionRecord) IdentityKey() []byte { return bytes.Clone(r.identityKey) }

// Initiator reports whether this device built the session from a bundle.
func (r *SessionRecord) Initiator() bool { return r.initiator }

// Confirmed reports whether the session is usable without a key exchange:
// always for a responder, and for an initiator once the peer answered.
func (r *SessionRecord) Confirmed() bool { return !r.initiator || r.confirmed }

// Clone returns a copy of r that shares nothing mutable with it (the byte
// slices of a record are never modified in place, only replaced).
func (r *SessionRecord) Clone() *SessionRecord {
	c := *r
	c.ratchet = r.ratchet.Clone()
	if len(r.previous) > 0 {
		c.previous = make([]sessionState, len(r.previous))
		for i, p := range r.previous {
			p.ratchet = p.ratchet.Clone()
			c.previous[i] = p
		}
	}
	return &c
}

// replace makes s the current state, keeping the old one as the most
// recent previous state.
func (r *SessionRecord) replace(s sessionState) {
	r.previous = append([]sessionState{r.sessionState}, r.previous...)
	if len(r.previous) > MaxPreviousSessions {
		r.previous = r.previous[:MaxPreviousSessions]
	}
	r.sessionState = s
}

// promote makes previous state i the current one (it just decrypted a
// message), keeping the current one as the most recent previous state.
func (r *SessionRecord) promote(i int) {
	s := r.previous[i]
	rest := append(r.previous[:i:i], r.previous[i+1:]...)
	r.previous = append([]sessionState{r.sessionState}, rest...)
	r.sessionState = s
}

func (s *sessionState) marshal(w *recWriter) error {
	st, err := s.ratchet.MarshalBinary()
	if err != nil {
		return err
	}
	w.bytes(s.identityKey)
	w.bool(s.initiator)
	w.bool(s.confirmed)
	w.uint(uint64(s.pkID))
	w.uint(uint64(s.spkID))
	w.bytes(s.ek)
	w.bytes(s.heartbeat)
	w.bytes(st)
	return nil
}

func (s *sessionState) unmarshal(rd *recReader) {
	s.identityKey = rd.fixed(PublicKeySize, false)
	s.initiator = rd.bool()
	s.confirmed = rd.bool()
	s.pkID = rd.uint32()
	s.spkID = rd.uint32()
	s.ek = rd.fixed(PublicKeySize, false)
	s.heartbeat = rd.fixed(PublicKeySize, true)
	st := rd.bytes()
	if rd.err != nil {
		return
	}
	s.ratchet = new(ratchet.Session)
	if err := s.ratchet.UnmarshalBinary(st); err != nil {
		rd.fail("%v", err)
	} else if s.ratchet.Profile() != ratchet.OMEMO2 {
		rd.fail("not an OMEMO 2 session")
	}
}

// MarshalBinary encodes the record, ratchet secrets included.
func (r *SessionRecord) MarshalBinary() ([]byte, error) {
	return marshalSessions(recordVersion, r.addr, &r.sessionState, r.previous)
}

// UnmarshalBinary decodes a record written by MarshalBinary.
func (r *SessionRecord) UnmarshalBinary(b []byte) error {
	var v SessionRecord
	if err := unmarshalSessions(b, "session", recordVersion, &v.addr, &v.sessionState, &v.previous); err != nil {
		return err
	}
	*r = v
	return nil
}

// sessionCodec is a session state (*sessionState or *legacyState) as the
// session records encode it.
type sessionCodec[S any] interface {
	*S
	marshal(*recWriter) error
	unmarshal(*recReader)
}

// marshalSessions encodes a session record of either protocol: version,
// address, current state, previous states (at most MaxPreviousSessions).
func marshalSessions[S any, PS sessionCodec[S]](version byte, a Address, cur PS, previous []S) ([]byte, error) {
	w := recWriter{b: make([]byte, 0, 512)}
	w.b = append(w.b, version)
	w.string(a.JID.String())
	w.uint(uint64(a.Device))
	if err := cur.marshal(&w); err != nil {
		return nil, err
	}
	w.uint(uint64(len(previous)))
	for i := range previous {
		if err := PS(&previous[i]).marshal(&w); err != nil {
			return nil, err
		}
	}
	return w.b, nil
}

// unmarshalSessions decodes what marshalSessions wrote into a, cur and
// previous; what names the record in errors.
func unmarshalSessions[S any, PS sessionCodec[S]](b []byte, what string, version byte, a *Address, cur PS, previous *[]S) error {
	rd := recReader{b: b, what: what}
	rd.version(version)
	j := rd.string()
	a.Device = rd.uint32()
	cur.unmarshal(&rd)
	n := rd.uint()
	if n > MaxPreviousSessions {
		rd.fail("too many previous states")
	}
	for i := uint64(0); i < n && rd.err == nil; i++ {
		var s S
		PS(&s).unmarshal(&rd)
		*previous = append(*previous, s)
	}
	if err := rd.end(); err != nil {
		return err
	}
	var err error
	if a.JID, err = parseStoredJID(j); err != nil || !ValidDeviceID(a.Device) {
		return fmt.Errorf("omemo: %w: %s record: invalid address", ErrMalformed, what)
	}
	return nil
}

// parseStoredJID parses a bare JID as MarshalBinary wrote it, rejecting
// any other spelling of it.
func parseStoredJID(s string) (jid.JID, error) {
	j, err := jid.Parse(s)
	if err != nil || j.String() != s || j.Resourcepart() != "" {
		return jid.JID{}, fmt.Errorf("invalid JID")
	}
	return j, nil
}

// MaxReplayRecords is how many messages per remote device are remembered
// to recognise duplicates (XEP-0384 §6: a message received twice MUST be
// ignored without an error), the same as the skipped-key window MaxSkip.
const MaxReplayRecords = ratchet.MaxSkip

// replayDigestSize is the size of one replay digest: SHA-256 truncated to
// 128 bits, far beyond accidental collisions among 1000 entries.
const replayDigestSize = 16

// ReplayLog holds digests of the last MaxReplayRecords messages decrypted
// from one remote device, oldest first, and when the newest was decrypted
// (the device's last activity as this device saw it).
type ReplayLog struct {
	addr    Address
	last    time.Time // zero in logs written before it was recorded
	digests [][replayDigestSize]byte
}

// replayLogVersion is the version of ReplayLog records: 1 without the time
// of the last message, 2 with it (seconds since the Unix epoch, 0 unknown).
const replayLogVersion = 2

// Last returns when the newest message of the log was decrypted; zero when
// not known.
func (r *ReplayLog) Last() time.Time { return r.last }

// Address returns the remote device.
func (r *ReplayLog) Address() Address { return r.addr }

// Clone returns a deep copy of r.
func (r *ReplayLog) Clone() *ReplayLog {
	c := *r
	c.digests = append([][replayDigestSize]byte(nil), r.digests...)
	return &c
}

func (r *ReplayLog) contains(d [replayDigestSize]byte) bool {
	for i := range r.digests {
		if r.digests[i] == d {
			return true
		}
	}
	return false
}

// add records a message decrypted at now.
func (r *ReplayLog) add(d [replayDigestSize]byte, now time.Time) {
	if len(r.digests) >= MaxReplayRecords {
		r.digests = append(r.digests[:0:0], r.digests[len(r.digests)-MaxReplayRecords+1:]...)
	}
	r.digests = append(r.digests, d)
	r.last = now.Truncate(time.Second)
}

// MarshalBinary encodes the log.
func (r *ReplayLog) MarshalBinary() ([]byte, error) {
	w := recWriter{b: make([]byte, 0, 64+len(r.digests)*replayDigestSize)}
	w.b = append(w.b, replayLogVersion)
	w.string(r.addr.JID.String())
	w.uint(uint64(r.addr.Device))
	var last uint64
	if u := r.last.Unix(); !r.last.IsZero() && u > 0 && u <= maxStoredUnix {
		last = uint64(u)
	}
	w.uint(last)
	w.uint(uint64(len(r.digests)))
	for _, d := range r.digests {
		w.b = append(w.b, d[:]...)
	}
	return w.b, nil
}

// UnmarshalBinary decodes a log written by MarshalBinary.
func (r *ReplayLog) UnmarshalBinary(b []byte) error {
	rd := recReader{b: b, what: "replay log"}
	version := rd.versions(1, replayLogVersion)
	var v ReplayLog
	j := rd.string()
	v.addr.Device = rd.uint32()
	if version >= 2 {
		if last := rd.uint(); last > maxStoredUnix {
			rd.fail("time out of range")
		} else {
			v.last = timeOrZero(last)
		}
	}
	n := rd.uint()
	if rd.err == nil && (n > MaxReplayRecords || n*replayDigestSize != uint64(len(rd.b))) {
		rd.fail("bad digest count")
	}
	if rd.err == nil {
		v.digests = make([][replayDigestSize]byte, n)
		for i := range v.digests {
			copy(v.digests[i][:], rd.b[i*replayDigestSize:])
		}
		rd.b = nil
	}
	if err := rd.end(); err != nil {
		return err
	}
	var err error
	if v.addr.JID, err = parseStoredJID(j); err != nil {
		return fmt.Errorf("omemo: %w: replay log: invalid address", ErrMalformed)
	}
	*r = v
	return nil
}

// maxStoredUnix bounds stored times (year 9999), so that they convert to
// time.Time and back unchanged.
const maxStoredUnix = 253402300799

// PendingRecord lists the devices owed an empty OMEMO message that was
// deferred during archive catch-up (XEP-0384 §6): Devices an OMEMO 2 one
// (Manager.EncryptEmpty), Legacy a legacy one (Manager.EncryptEmptyLegacy).
type PendingRecord struct {
	Devices []Address
	Legacy  []Address
}

// Clone returns a copy of r.
func (r *PendingRecord) Clone() *PendingRecord {
	return &PendingRecord{Devices: slices.Clone(r.Devices), Legacy: slices.Clone(r.Legacy)}
}

// Empty reports whether no device is owed anything.
func (r *PendingRecord) Empty() bool { return len(r.Devices) == 0 && len(r.Legacy) == 0 }

func addAddress(list []Address, a Address) []Address {
	for _, d := range list {
		if d.Equal(a) {
			return list
		}
	}
	return append(list, a)
}

func (r *PendingRecord) add(a Address, p Protocol) {
	if p == ProtocolLegacy {
		r.Legacy = addAddress(r.Legacy, a)
	} else {
		r.Devices = addAddress(r.Devices, a)
	}
}

// maxPending bounds the deferred empty messages of each protocol.
const maxPending = 1 << 16

// pendingVersion is the version of PendingRecord's encoding:
//
//	1  the OMEMO 2 devices
//	2  then the legacy devices, at least one
//
// A record without legacy devices is written in version 1, so that every
// record has exactly one encoding.
const pendingVersion = 2

// MarshalBinary encodes the record.
func (r *PendingRecord) MarshalBinary() ([]byte, error) {
	lists := [][]Address{r.Devices, r.Legacy}
	if len(r.Legacy) == 0 {
		lists = lists[:1]
	}
	w := recWriter{b: []byte{byte(len(lists))}}
	for _, list := range lists {
		w.uint(uint64(len(list)))
		for _, a := range list {
			w.string(a.JID.String())
			w.uint(uint64(a.Device))
		}
	}
	return w.b, nil
}

// UnmarshalBinary decodes a record written by MarshalBinary, in version 1
// (no legacy devices) or 2.
func (r *PendingRecord) UnmarshalBinary(b []byte) error {
	rd := recReader{b: b, what: "pending"}
	version := rd.versions(1, pendingVersion)
	var v PendingRecord
	v.Devices = rd.addresses()
	if version >= 2 {
		if v.Legacy = rd.addresses(); rd.err == nil && len(v.Legacy) == 0 {
			rd.fail("version 2 without legacy devices")
		}
	}
	if err := rd.end(); err != nil {
		return err
	}
	*r = v
	return nil
}

// addresses reads a count and as many (JID, device id) pairs.
func (rd *recReader) addresses() []Address {
	n := rd.uint()
	if n > maxPending {
		rd.fail("too many entries")
	}
	var out []Address
	for i := uint64(0); i < n && rd.err == nil; i++ {
		s := rd.string()
		d := rd.uint32()
		if rd.err != nil {
			break
		}
		j, err := parseStoredJID(s)
		if err != nil {
			rd.fail("invalid address")
			break
		}
		out = append(out, Address{JID: j, Device: d})
	}
	return out
}

// Clone returns a deep copy of l.
func (l *DeviceList) Clone() *DeviceList {
	c := &DeviceList{Devices: make([]Device, len(l.Devices))}
	for i, d := range l.Devices {
		d.LabelSig = bytes.Clone(d.LabelSig)
		c.Devices[i] = d
	}
	return c
}

// Clone returns a deep copy of b.
func (b *Bundle) Clone() *Bundle {
	c := *b
	c.SignedPreKey = bytes.Clone(b.SignedPreKey)
	c.SignedPreKeySignature = bytes.Clone(b.SignedPreKeySignature)
	c.IdentityKey = bytes.Clone(b.IdentityKey)
	c.PreKeys = make([]PreKey, len(b.PreKeys))
	for i, pk := range b.PreKeys {
		c.PreKeys[i] = PreKey{ID: pk.ID, Key: bytes.Clone(pk.Key)}
	}
	return &c
}

// MarshalBinary encodes the device list for a Store (its XML form).
//
// The form is binary (a version byte, the count, then id, label and label
// signature of each device), as every message reads the lists of its
// recipients; lists written before it are their XML form, which
// UnmarshalBinary still reads (they start with '<').
func (l *DeviceList) MarshalBinary() ([]byte, error) {
	if len(l.Devices) > MaxDevices {
		return nil, fmt.Errorf("omemo: %w: more than %d devices", ErrMalformed, MaxDevices)
	}
	w := recWriter{b: make([]byte, 1, 2+8*len(l.Devices))}
	w.b[0] = recordVersion
	w.uint(uint64(len(l.Devices)))
	for _, d := range l.Devices {
		w.uint(uint64(d.ID))
		w.string(d.Label)
		w.bytes(d.LabelSig)
	}
	return w.b, nil
}

// UnmarshalBinary decodes a device list written by MarshalBinary, checked
// as a published one is (XEP-0384 §5.3.1: ids in range and unique, labels
// valid).
func (l *DeviceList) UnmarshalBinary(b []byte) error {
	if len(b) > 0 && b[0] == '<' {
		return unmarshalXML(b, l)
	}
	rd := recReader{b: b, what: "device list"}
	rd.version(recordVersion)
	n := rd.uint()
	if n > MaxDevices {
		rd.fail("more than %d devices", MaxDevices)
	}
	var v DeviceList
	if rd.err == nil && n > 0 {
		v.Devices = make([]Device, 0, n)
	}
	for range n {
		if rd.err != nil {
			break
		}
		d := Device{ID: rd.uint32(), Label: rd.string(), LabelSig: rd.fixed(SignatureSize, true)}
		switch {
		case rd.err != nil:
		case !ValidDeviceID(d.ID):
			rd.fail("device id %d out of range", d.ID)
		case slices.ContainsFunc(v.Devices, func(o Device) bool { return o.ID == d.ID }):
			rd.fail("duplicate device id %d", d.ID)
		case len(d.Label) > MaxLabelSize || (d.Label != "" && !validLabel(d.Label)):
			rd.fail("invalid label")
		}
		v.Devices = append(v.Devices, d)
	}
	if err := rd.end(); err != nil {
		return err
	}
	*l = v
	return nil
}

// MarshalBinary encodes the bundle for a Store (its XML form).
func (b *Bundle) MarshalBinary() ([]byte, error) {
	return marshalXML(b)
}

// UnmarshalBinary decodes a bundle written by MarshalBinary.
func (b *Bundle) UnmarshalBinary(data []byte) error {
	return unmarshalXML(data, b)
}
