package ratchet

import (
	"crypto/ecdh"
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrInvalidState is returned by UnmarshalBinary for bytes that are not a
// session serialized by MarshalBinary (wrapped with the reason).
var ErrInvalidState = errors.New("ratchet: invalid serialized session")

// stateVersion is the first byte of a serialized session. Version 2:
//
//	version   1 byte  = 2
//	profile   1 byte  Profile.id (1 OMEMO2, 2 Legacy)
//	flags     1 byte  0x01 initiator, 0x02 peer key, 0x04 sending chain,
//	                  0x08 receiving chain; other bits zero
//	ad        Profile.adSize bytes
//	root key  32
//	own key   32      X25519 private key of the current ratchet key pair
//	own pub   32      its public key
//	peer key  32      if flag 0x02
//	sending   32 + 8  chain key, length (≤ 2^32) — if flag 0x04
//	pn        4       previous sending chain length
//	receiving 32 + 8  chain key, length (≤ 2^32) — if flag 0x08
//	received  4       messages decrypted since the last Encrypt
//	skipped   2       count (≤ MaxSkip), then oldest first:
//	          32 + 4 + 32  ratchet key, message number, message key
//
// Integers are big-endian. Nothing may follow; the same state always
// serializes to the same bytes.
//
// Version 1 is version 2 without "own pub": loading it costs a scalar
// multiplication (30–100 µs) to derive the public key, which version 2
// stores so that loading a session is only copying. UnmarshalBinary reads
// both; MarshalBinary writes version 2. The stored public key is checked
// against the private key when a DH ratchet step first uses the key pair,
// at no extra cost (crypto/ecdh derives it then anyway).
const (
	stateVersion   = 2
	stateVersionV1 = 1
)

const (
	flagInitiator = 1 << iota
	flagPeer
	flagSend
	flagRecv
	flagsKnown = flagInitiator | flagPeer | flagSend | flagRecv
)

const skippedEntrySize = KeySize + 4 + KeySize

// MarshalBinary serializes the session, secrets included (root, chain and
// message keys, the ratchet private key): the result must be kept secret.
func (s *Session) MarshalBinary() ([]byte, error) {
	if s.p == nil {
		return nil, errors.New("ratchet: marshaling an uninitialized session")
	}
	b := make([]byte, 0, 3+s.p.adSize+6*KeySize+2*8+2*4+2+len(s.skipped)*skippedEntrySize)
	var flags byte
	if s.initiator {
		flags |= flagInitiator
	}
	if s.hasPeer {
		flags |= flagPeer
	}
	if s.hasSend {
		flags |= flagSend
	}
	if s.hasRecv {
		flags |= flagRecv
	}
	b = append(b, stateVersion, s.p.id, flags)
	b = append(b, s.ad[:s.p.adSize]...)
	b = append(b, s.rootKey[:]...)
	b = append(b, s.ownPriv[:]...)
	b = append(b, s.ownPub[:]...)
	if s.hasPeer {
		b = append(b, s.peer[:]...)
	}
	if s.hasSend {
		b = append(b, s.send.key[:]...)
		b = binary.BigEndian.AppendUint64(b, s.send.n)
	}
	b = binary.BigEndian.AppendUint32(b, s.prevSend)
	if s.hasRecv {
		b = append(b, s.recv.key[:]...)
		b = binary.BigEndian.AppendUint64(b, s.recv.n)
	}
	b = binary.BigEndian.AppendUint32(b, s.received)
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.skipped)))
	for i := range s.skipped {
		k := &s.skipped[i]
		b = append(b, k.dh[:]...)
		b = binary.BigEndian.AppendUint32(b, k.n)
		b = append(b, k.mk[:]...)
	}
	return b, nil
}

// stateReader consumes a serialized session.
type stateReader struct {
	b   []byte
	err error
}

func (r *stateReader) next(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.err = fmt.Errorf("%w: truncated", ErrInvalidState)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *stateReader) key(dst *[KeySize]byte) {
	if v := r.next(KeySize); v != nil {
		copy(dst[:], v)
	}
}

func (r *stateReader) uint16() uint16 {
	if v := r.next(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *stateReader) uint32() uint32 {
	if v := r.next(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *stateReader) chainLength() uint64 {
	v := r.next(8)
	if v == nil {
		return 0
	}
	n := binary.BigEndian.Uint64(v)
	if n > 1<<32 {
		r.err = fmt.Errorf("%w: chain length out of range", ErrInvalidState)
	}
	return n
}

// UnmarshalBinary restores a session serialized by MarshalBinary (state
// version 2, or version 1 of earlier releases), strictly: unknown versions,
// profiles or flags, inconsistent flags, bounds exceeded, duplicate skipped
// keys, and trailing or missing bytes are ErrInvalidState. On error s is
// unchanged.
func (s *Session) UnmarshalBinary(data []byte) error {
	r := &stateReader{b: data}
	head := r.next(3)
	if r.err != nil {
		return r.err
	}
	version := head[0]
	if version != stateVersion && version != stateVersionV1 {
		return fmt.Errorf("%w: unknown version %d", ErrInvalidState, version)
	}
	var p *Profile
	for _, q := range profiles {
		if q.id == head[1] {
			p = q
		}
	}
	if p == nil {
		return fmt.Errorf("%w: unknown profile %d", ErrInvalidState, head[1])
	}
	flags := head[2]
	if flags&^flagsKnown != 0 {
		return fmt.Errorf("%w: unknown flags %#02x", ErrInvalidState, flags)
	}
	v := Session{
		p:         p,
		initiator: flags&flagInitiator != 0,
		hasPeer:   flags&flagPeer != 0,
		hasSend:   flags&flagSend != 0,
		hasRecv:   flags&flagRecv != 0,
		newKey:    generateKey,
	}
	// A DH ratchet step sets the peer key and both chains; only an initiator
	// has a sending chain (and the signed PreKey as peer) before any.
	switch {
	case v.hasRecv && !(v.hasSend && v.hasPeer),
		v.hasSend && !v.hasPeer,
		v.hasPeer && !v.hasSend,
		v.hasPeer && !v.hasRecv && !v.initiator,
		v.initiator && !v.hasSend:
		return fmt.Errorf("%w: inconsistent flags %#02x", ErrInvalidState, flags)
	}
	copy(v.ad[:], r.next(p.adSize))
	r.key(&v.rootKey)
	r.key(&v.ownPriv)
	if version == stateVersion {
		r.key(&v.ownPub)
	}
	if v.hasPeer {
		r.key(&v.peer)
	}
	if v.hasSend {
		r.key(&v.send.key)
		v.send.n = r.chainLength()
	}
	v.prevSend = r.uint32()
	if v.hasRecv {
		r.key(&v.recv.key)
		v.recv.n = r.chainLength()
	}
	v.received = r.uint32()
	count := int(r.uint16())
	if r.err != nil {
		return r.err
	}
	if !v.hasRecv && (v.received != 0 || count != 0) || !v.hasSend && v.prevSend != 0 {
		return fmt.Errorf("%w: counters without chains", ErrInvalidState)
	}
	if count > MaxSkip {
		return fmt.Errorf("%w: %d skipped keys, more than %d", ErrInvalidState, count, MaxSkip)
	}
	if len(r.b) != count*skippedEntrySize {
		return fmt.Errorf("%w: %d bytes for %d skipped keys", ErrInvalidState, len(r.b), count)
	}
	if count > 0 {
		v.skipped = make([]skippedKey, count)
		seen := make(map[[KeySize + 4]byte]bool, count)
		for i := range v.skipped {
			k := &v.skipped[i]
			r.key(&k.dh)
			k.n = r.uint32()
			r.key(&k.mk)
			var id [KeySize + 4]byte
			copy(id[:], k.dh[:])
			binary.BigEndian.PutUint32(id[KeySize:], k.n)
			if seen[id] {
				return fmt.Errorf("%w: duplicate skipped key", ErrInvalidState)
			}
			seen[id] = true
		}
	}
	if version == stateVersionV1 {
		priv, err := ecdh.X25519().NewPrivateKey(v.ownPriv[:])
		if err != nil {
			return fmt.Errorf("%w: ratchet key: %w", ErrInvalidState, err)
		}
		if err := v.setOwn(priv); err != nil {
			return err
		}
	}
	*s = v
	return nil
}
