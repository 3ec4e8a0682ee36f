package omemo

import (
	"bytes"
	"fmt"

	"hush.im/internal/xeddsa"
	"hush.im/omemo/legacy"
)

// LegacySessionRecord is the legacy OMEMO session with one remote device
// (XEP-0384 0.3 §Building a session): the libsignal session
// (legacy.Session), the peer's identity key in the Ed25519 form that trust
// records use, and the peer ratchet key for which a heartbeat was last
// asked. Like SessionRecord it keeps up to MaxPreviousSessions replaced
// states, which decryption also tries, so that two devices that initiated
// at the same time converge on one session.
type LegacySessionRecord struct {
	addr Address
	legacyState
	previous []legacyState // most recent first
}

// legacyState is one libsignal session.
type legacyState struct {
	// identityKey is the peer's identity key, Ed25519 form; its
	// Curve25519 form is session.PeerIdentityKey().
	identityKey []byte
	session     *legacy.Session
	heartbeat   []byte // peer ratchet key for which a heartbeat was already asked
}

// Address returns the remote device.
func (r *LegacySessionRecord) Address() Address { return r.addr }

// IdentityKey returns the remote device's identity key (Ed25519 form).
func (r *LegacySessionRecord) IdentityKey() []byte { return bytes.Clone(r.identityKey) }

// Initiator reports whether this device built the session from a bundle.
func (r *LegacySessionRecord) Initiator() bool { return r.session.Initiator() }

// Confirmed reports whether the session sends plain SignalMessages: always
// for a responder, for an initiator once the peer answered.
func (r *LegacySessionRecord) Confirmed() bool { return r.session.Confirmed() }

// Clone returns a copy of r that shares nothing mutable with it.
func (r *LegacySessionRecord) Clone() *LegacySessionRecord {
	c := *r
	c.session = r.session.Clone()
	if len(r.previous) > 0 {
		c.previous = make([]legacyState, len(r.previous))
		for i, p := range r.previous {
			p.session = p.session.Clone()
			c.previous[i] = p
		}
	}
	return &c
}

// replace makes s the current state, keeping the old one as the most
// recent previous state.
func (r *LegacySessionRecord) replace(s legacyState) {
	r.previous = append([]legacyState{r.legacyState}, r.previous...)
	if len(r.previous) > MaxPreviousSessions {
		r.previous = r.previous[:MaxPreviousSessions]
	}
	r.legacyState = s
}

// promote makes previous state i the current one.
func (r *LegacySessionRecord) promote(i int) {
	s := r.previous[i]
	rest := append(r.previous[:i:i], r.previous[i+1:]...)
	r.previous = append([]legacyState{r.legacyState}, rest...)
	r.legacyState = s
}

// state returns state i: 0 the current one, i > 0 previous state i−1.
func (r *LegacySessionRecord) state(i int) *legacyState {
	if i == 0 {
		return &r.legacyState
	}
	return &r.previous[i-1]
}

// states returns the number of states, current and previous.
func (r *LegacySessionRecord) states() int { return 1 + len(r.previous) }

// use makes state i the current one (a no-op for 0).
func (r *LegacySessionRecord) use(i int) {
	if i > 0 {
		r.promote(i - 1)
	}
}

// legacySessionVersion is the version of LegacySessionRecord's encoding:
//
//	1  JID, device id, then per state (current first, then a count and
//	   the previous ones): Ed25519 identity key, heartbeat key (empty or
//	   32 bytes), legacy.Session.MarshalBinary
const legacySessionVersion = 1

func (s *legacyState) marshal(w *recWriter) error {
	b, err := s.session.MarshalBinary()
	if err != nil {
		return err
	}
	w.bytes(s.identityKey)
	w.bytes(s.heartbeat)
	w.bytes(b)
	return nil
}

func (s *legacyState) unmarshal(rd *recReader) {
	s.identityKey = rd.fixed(PublicKeySize, false)
	s.heartbeat = rd.fixed(PublicKeySize, true)
	b := rd.bytes()
	if rd.err != nil {
		return
	}
	s.session = new(legacy.Session)
	if err := s.session.UnmarshalBinary(b); err != nil {
		rd.fail("%v", err)
		return
	}
	// The two forms of the peer's identity key must be one key.
	u, err := xeddsa.Ed25519PublicToCurve25519(s.identityKey)
	if err != nil || !bytes.Equal(u, s.session.PeerIdentityKey()) {
		rd.fail("identity key forms disagree")
	}
}

// MarshalBinary encodes the record, session secrets included.
func (r *LegacySessionRecord) MarshalBinary() ([]byte, error) {
	if r.session == nil {
		return nil, fmt.Errorf("omemo: marshaling an empty legacy session record")
	}
	return marshalSessions(legacySessionVersion, r.addr, &r.legacyState, r.previous)
}

// UnmarshalBinary decodes a record written by MarshalBinary.
func (r *LegacySessionRecord) UnmarshalBinary(b []byte) error {
	var v LegacySessionRecord
	if err := unmarshalSessions(b, "legacy session", legacySessionVersion, &v.addr, &v.legacyState, &v.previous); err != nil {
		return err
	}
	*r = v
	return nil
}

// cloneLegacyBundle returns a deep copy of b.
func cloneLegacyBundle(b *legacy.Bundle) *legacy.Bundle {
	c := *b
	c.SignedPreKey = bytes.Clone(b.SignedPreKey)
	c.SignedPreKeySignature = bytes.Clone(b.SignedPreKeySignature)
	c.IdentityKey = bytes.Clone(b.IdentityKey)
	c.PreKeys = make([]legacy.PreKey, len(b.PreKeys))
	for i, pk := range b.PreKeys {
		c.PreKeys[i] = legacy.PreKey{ID: pk.ID, Key: bytes.Clone(pk.Key)}
	}
	return &c
}
