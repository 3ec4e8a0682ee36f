package trust

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"hush.im/omemo"
	"mellium.im/xmpp/jid"
)

// Short authentication string (SAS) verification.
//
// XEP-0210 §4.3 ("Usability") allows users at most a one-time out-of-band
// check of "a string of up to 6 alphanumeric characters". A 6-character
// string can only be that short safely if a man in the middle cannot try
// many keys until the strings match; XEP-0188 §3.4 ("SAS-Only Overview")
// and XEP-0116 §4.7.2 solve that with a hash commitment, and so does this protocol:
//
//	A → B  Commit  sid, keys_A, C = SHA-256(label ‖ sid ‖ JID_A ‖ JID_B ‖ keys_A ‖ n_A)
//	B → A  Accept  sid, keys_B, n_B
//	A → B  Reveal  sid, n_A                       (B checks C in constant time)
//	both   SAS = Crockford-base32(HKDF-SHA-256(n_A ‖ n_B, sid, transcript))[:6]
//
// where keys_X is the sorted set of identity keys (Ed25519 form) that X
// vouches for and transcript binds both bare JIDs, both key sets and the
// commitment. A fixes n_A before seeing n_B and B fixes n_B before seeing
// n_A, so a man in the middle who substitutes keys must choose its own
// values before learning the honest party's nonce: each run gives him one
// guess, succeeding with probability 2^-30 (SASBits). The users compare
// the strings (read aloud, or side by side) and confirm; each side then
// marks the other side's keys verified.
//
// The messages are XML in namespace NSSAS. They carry no secret that needs
// confidentiality, but they MUST travel inside an encrypted, authenticated
// SCE envelope (XEP-0420) of OMEMO 2 and MUST only be accepted from one:
// the JIDs the transcript binds are the envelope's authenticated sender
// and recipient, and an unencrypted SAS message must be dropped.

// NSSAS is the namespace of the SAS messages; its trailing number is the
// protocol version (XEP-0210 §3.10 "Upgradability": a new version gets a new
// namespace).
const NSSAS = "urn:hush:sas:0"

// Sizes and limits of the SAS protocol.
const (
	// SASLength is the number of characters of a short authentication
	// string: XEP-0210 §4.3 allows at most 6.
	SASLength = 6
	// SASBits is the entropy of a short authentication string: 6
	// characters of 5 bits. A man in the middle succeeds in one run with
	// probability 2^-SASBits (about one in a billion).
	SASBits = 5 * SASLength
	// NonceSize is the size of n_A and n_B.
	NonceSize = 32
	// CommitmentSize is the size of the commitment, a SHA-256 digest.
	CommitmentSize = sha256.Size
	// SIDSize is the size of a verification run's random identifier.
	SIDSize = 16
	// KeySize is the size of an identity key in Ed25519 form
	// (XEP-0384 §5.3.2).
	KeySize = omemo.PublicKeySize
	// MaxKeys is the most identity keys one side may vouch for in a run:
	// omemo.MaxDevices, the most devices of one device list.
	MaxKeys = omemo.MaxDevices
)

// sasAlphabet is Crockford's base32 alphabet: digits and upper-case
// letters without I, L, O and U, so that no two characters look alike.
const sasAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// Domain separation labels.
const (
	commitLabel = NSSAS + " commit"
	sasLabel    = NSSAS + " sas"
)

// Role is the part a device plays in a Verification.
type Role uint8

// Roles.
const (
	// Initiator sent the Commit (called Start).
	Initiator Role = iota + 1
	// Responder answered the Commit with an Accept (called Respond).
	Responder
)

// String returns the role's name.
func (r Role) String() string {
	switch r {
	case Initiator:
		return "initiator"
	case Responder:
		return "responder"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// State is the state of a Verification.
type State uint8

// States of a Verification.
const (
	// StateCommitted: the initiator sent its Commit and waits for the
	// Accept.
	StateCommitted State = iota + 1
	// StateAccepted: the responder sent its Accept and waits for the
	// Reveal.
	StateAccepted
	// StateCompare: both nonces are known; SAS returns the string for the
	// users to compare, then Confirm or Reject.
	StateCompare
	// StateVerified: the user confirmed that the strings match.
	StateVerified
	// StateCanceled: the user rejected the strings or the peer canceled.
	StateCanceled
	// StateFailed: the revealed nonce did not open the commitment.
	StateFailed
)

// String returns the state's name.
func (s State) String() string {
	switch s {
	case StateCommitted:
		return "committed"
	case StateAccepted:
		return "accepted"
	case StateCompare:
		return "compare"
	case StateVerified:
		return "verified"
	case StateCanceled:
		return "canceled"
	case StateFailed:
		return "failed"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// VerifiedKey is an identity key (Ed25519 form) of a bare JID that a
// confirmed Verification authenticated. The caller records it with
// omemo.Manager.SetTrust(JID, IdentityKey, omemo.TrustVerified).
type VerifiedKey struct {
	JID         jid.JID
	IdentityKey []byte
}

// Verification is one run of the SAS protocol between this device and a
// peer. It is a state machine: messages move it forward only when they are
// valid in the current state; a message out of order (ErrUnexpected), of
// another run (ErrSessionMismatch) or received twice (ErrDuplicate) is
// refused and changes nothing. A Verification is not safe for concurrent
// use. It keeps no clock: abandon runs that stall.
type Verification struct {
	role  Role
	state State
	sid   []byte
	self  jid.JID
	peer  jid.JID
	own   [][]byte // sorted
	other [][]byte // sorted, nil until known
	// commitment is C; nonceA and nonceB are n_A and n_B. The own nonce
	// must be kept secret until revealed.
	commitment []byte
	nonceA     []byte
	nonceB     []byte
	sas        string
}

// Start begins a verification as initiator: self and peer are the bare
// JIDs of this account and of the peer (the same JID to verify an own
// device), ownKeys the identity keys this device vouches for: its own key
// and those own devices' keys it has itself verified, never blindly
// trusted ones. Send the Commit to the peer inside an encrypted SCE
// envelope.
func Start(self, peer jid.JID, ownKeys [][]byte) (*Verification, *Commit, error) {
	own, err := keySet(ownKeys)
	if err != nil {
		return nil, nil, err
	}
	v := &Verification{
		role: Initiator, state: StateCommitted,
		sid:  random(SIDSize),
		self: self.Bare(), peer: peer.Bare(), own: own,
		nonceA: random(NonceSize),
	}
	v.commitment = commit(v.sid, v.self, v.peer, own, v.nonceA)
	return v, &Commit{SID: bytes.Clone(v.sid), Keys: cloneKeys(own), Commitment: bytes.Clone(v.commitment)}, nil
}

// Respond answers a Commit received from peer (the authenticated sender
// of the SCE envelope that carried it) as responder; self and ownKeys are
// as for Start. Send the Accept to the peer inside an encrypted SCE
// envelope.
func Respond(self, peer jid.JID, ownKeys [][]byte, c *Commit) (*Verification, *Accept, error) {
	own, err := keySet(ownKeys)
	if err != nil {
		return nil, nil, err
	}
	if err := c.check(); err != nil {
		return nil, nil, err
	}
	v := &Verification{
		role: Responder, state: StateAccepted,
		sid:  bytes.Clone(c.SID),
		self: self.Bare(), peer: peer.Bare(), own: own,
		other:      cloneKeys(c.Keys),
		commitment: bytes.Clone(c.Commitment),
		nonceB:     random(NonceSize),
	}
	return v, &Accept{SID: bytes.Clone(v.sid), Keys: cloneKeys(own), Nonce: bytes.Clone(v.nonceB)}, nil
}

// Role returns the part this device plays.
func (v *Verification) Role() Role { return v.role }

// State returns the current state.
func (v *Verification) State() State { return v.state }

// SID returns the run's identifier, shared by all its messages.
func (v *Verification) SID() []byte { return bytes.Clone(v.sid) }

// Peer returns the peer's bare JID.
func (v *Verification) Peer() jid.JID { return v.peer }

// Receive processes a message from the peer; the caller must have taken it
// from an encrypted SCE envelope sent by Peer. It returns the message to
// send back, if any: the initiator answers an Accept with a Reveal. A
// Cancel ends the run (StateCanceled) and returns nil, nil; one that
// arrives after Confirm means the peer's user saw a different string, and
// the caller should undo the verification (set the keys back to
// omemo.TrustUndecided) and warn the user.
//
// Errors: ErrFailed or ErrCanceled once the run is over; ErrSessionMismatch
// for another run's message; ErrUnexpected for a message out of order or
// not meant for this role (also when both users started at once: keep the
// run with the lower SID and answer the other side's Commit with Respond);
// ErrDuplicate for a second Commit, Accept or Reveal; ErrInvalidKey or
// ErrMalformed for an invalid message. None of these change the state.
// ErrCommitment when the revealed nonce does not open the commitment: the
// run fails for good (StateFailed); tell the user that the verification
// failed, which may mean an attack.
func (v *Verification) Receive(m Message) (Message, error) {
	if err := v.over(); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, ErrUnexpected
	}
	if sid := m.sessionID(); len(sid) != SIDSize || !bytes.Equal(sid, v.sid) {
		return nil, ErrSessionMismatch
	}
	if _, ok := m.(*Cancel); !ok && v.state == StateVerified {
		return nil, ErrUnexpected
	}
	switch m := m.(type) {
	case *Cancel:
		v.state = StateCanceled
		v.wipe()
		return nil, nil
	case *Commit:
		if v.role == Responder {
			return nil, ErrDuplicate
		}
		return nil, ErrUnexpected
	case *Accept:
		if v.role != Initiator {
			return nil, ErrUnexpected
		}
		if v.state != StateCommitted {
			return nil, ErrDuplicate
		}
		if err := m.check(); err != nil {
			return nil, err
		}
		if err := v.finish(m.Keys, m.Nonce); err != nil {
			return nil, err
		}
		return &Reveal{SID: bytes.Clone(v.sid), Nonce: bytes.Clone(v.nonceA)}, nil
	case *Reveal:
		if v.role != Responder {
			return nil, ErrUnexpected
		}
		if v.state != StateAccepted {
			return nil, ErrDuplicate
		}
		if err := m.check(); err != nil {
			return nil, err
		}
		// XEP-0188 §3.4: the commitment opened with the revealed nonce
		// and the keys sent with it; compared in constant time.
		want := commit(v.sid, v.peer, v.self, v.other, m.Nonce)
		if !hmac.Equal(want, v.commitment) {
			v.state = StateFailed
			v.wipe()
			return nil, ErrCommitment
		}
		if err := v.finish(v.other, m.Nonce); err != nil {
			return nil, err
		}
		return nil, nil
	}
	return nil, ErrUnexpected
}

// over returns the error for a run that is over.
func (v *Verification) over() error {
	switch v.state {
	case StateFailed:
		return ErrFailed
	case StateCanceled:
		return ErrCanceled
	}
	return nil
}

// finish computes the SAS once the peer's keys and nonce are known and
// moves to StateCompare; on error nothing changes.
func (v *Verification) finish(peerKeys [][]byte, peerNonce []byte) error {
	jidA, jidB, keysA, keysB := v.self, v.peer, v.own, peerKeys
	nonceA, nonceB := v.nonceA, peerNonce
	if v.role == Responder {
		jidA, jidB, keysA, keysB = v.peer, v.self, peerKeys, v.own
		nonceA, nonceB = peerNonce, v.nonceB
	}
	sas, err := computeSAS(v.sid, jidA, jidB, keysA, keysB, v.commitment, nonceA, nonceB)
	if err != nil {
		return err
	}
	v.other = cloneKeys(peerKeys)
	v.nonceA, v.nonceB = bytes.Clone(nonceA), bytes.Clone(nonceB)
	v.sas = sas
	v.state = StateCompare
	return nil
}

// SAS returns the short authentication string, SASLength characters of
// Crockford's base32 alphabet, for the users to compare. It is available
// from StateCompare on.
func (v *Verification) SAS() (string, error) {
	if err := v.over(); err != nil {
		return "", err
	}
	if v.state != StateCompare && v.state != StateVerified {
		return "", ErrNotReady
	}
	return v.sas, nil
}

// Confirm records that the user saw the same string on both devices. It
// returns the peer's keys the run covered: the caller marks each verified
// (omemo.Manager.SetTrust with omemo.TrustVerified) and, with ATM
// (XEP-0450 §4.1.1, §4.2.1), tells its other verified devices.
func (v *Verification) Confirm() ([]VerifiedKey, error) {
	if err := v.over(); err != nil {
		return nil, err
	}
	switch v.state {
	case StateVerified:
		return nil, ErrDuplicate
	case StateCompare:
	default:
		return nil, ErrNotReady
	}
	v.state = StateVerified
	v.wipe()
	out := make([]VerifiedKey, len(v.other))
	for i, k := range v.other {
		out[i] = VerifiedKey{JID: v.peer, IdentityKey: bytes.Clone(k)}
	}
	return out, nil
}

// Reject records that the user saw different strings (or gave up) and
// returns the Cancel to send to the peer. A mismatch may mean an attack:
// nothing is verified.
func (v *Verification) Reject(reason CancelReason) (*Cancel, error) {
	if err := v.over(); err != nil {
		return nil, err
	}
	if v.state == StateVerified {
		return nil, ErrUnexpected
	}
	v.state = StateCanceled
	v.wipe()
	return &Cancel{SID: bytes.Clone(v.sid), Reason: reason}, nil
}

// wipe drops the nonces once they are no longer needed.
func (v *Verification) wipe() {
	clear(v.nonceA)
	clear(v.nonceB)
	v.nonceA, v.nonceB = nil, nil
}

// EqualSAS reports whether two short authentication strings are the same,
// reading them as Crockford's base32 does: case-insensitively, with O as
// 0, I and L as 1, and ignoring spaces and hyphens, so that a string typed
// by the user can be compared with the one computed. The comparison is in
// constant time.
func EqualSAS(a, b string) bool {
	na, nb := normalizeSAS(a), normalizeSAS(b)
	if len(na) != SASLength || len(nb) != SASLength {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(na), []byte(nb)) == 1
}

func normalizeSAS(s string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch {
		case r == ' ' || r == '-':
			continue
		case r == 'O':
			r = '0'
		case r == 'I' || r == 'L':
			r = '1'
		case !strings.ContainsRune(sasAlphabet, r):
			return ""
		}
		b.WriteRune(r)
	}
	return b.String()
}

// commit computes C = SHA-256(label ‖ sid ‖ JID_A ‖ JID_B ‖ keys_A ‖ n_A)
// with every field length-prefixed.
func commit(sid []byte, a, b jid.JID, keysA [][]byte, nonceA []byte) []byte {
	h := sha256.New()
	t := make(transcript, 0, 256+(4+KeySize)*len(keysA))
	t.bytes([]byte(commitLabel))
	t.bytes(sid)
	t.bytes([]byte(a.String()))
	t.bytes([]byte(b.String()))
	t.keys(keysA)
	t.bytes(nonceA)
	h.Write(t)
	return h.Sum(nil)
}

// computeSAS derives the short authentication string:
// HKDF-SHA-256(secret n_A ‖ n_B, salt sid, info transcript), the first
// SASBits bits as SASLength base32 characters, most significant first.
func computeSAS(sid []byte, a, b jid.JID, keysA, keysB [][]byte, commitment, nonceA, nonceB []byte) (string, error) {
	t := make(transcript, 0, 256+(4+KeySize)*(len(keysA)+len(keysB)))
	t.bytes([]byte(sasLabel))
	t.bytes([]byte(a.String()))
	t.keys(keysA)
	t.bytes([]byte(b.String()))
	t.keys(keysB)
	t.bytes(commitment)
	secret := append(bytes.Clone(nonceA), nonceB...)
	out, err := hkdf.Key(sha256.New, secret, sid, string(t), 4)
	clear(secret)
	if err != nil {
		return "", fmt.Errorf("trust: hkdf: %w", err)
	}
	return encodeSAS(binary.BigEndian.Uint32(out) >> (32 - SASBits)), nil
}

// encodeSAS writes the low SASBits bits of x as SASLength characters.
func encodeSAS(x uint32) string {
	var b [SASLength]byte
	for i := SASLength - 1; i >= 0; i-- {
		b[i] = sasAlphabet[x&31]
		x >>= 5
	}
	return string(b[:])
}

// transcript is an unambiguous encoding: every field is prefixed with its
// length as 4 bytes big-endian; a key set is its count followed by the
// keys.
type transcript []byte

func (t *transcript) bytes(b []byte) {
	*t = binary.BigEndian.AppendUint32(*t, uint32(len(b)))
	*t = append(*t, b...)
}

func (t *transcript) keys(keys [][]byte) {
	*t = binary.BigEndian.AppendUint32(*t, uint32(len(keys)))
	for _, k := range keys {
		t.bytes(k)
	}
}

// keySet validates a set of identity keys and returns a sorted copy.
func keySet(keys [][]byte) ([][]byte, error) {
	if len(keys) == 0 || len(keys) > MaxKeys {
		return nil, fmt.Errorf("%w: %d keys, want 1 to %d", ErrInvalidKey, len(keys), MaxKeys)
	}
	out := cloneKeys(keys)
	for _, k := range out {
		if len(k) != KeySize {
			return nil, fmt.Errorf("%w: key of %d bytes, want %d", ErrInvalidKey, len(k), KeySize)
		}
	}
	slices.SortFunc(out, bytes.Compare)
	for i := 1; i < len(out); i++ {
		if bytes.Equal(out[i-1], out[i]) {
			return nil, fmt.Errorf("%w: key listed twice", ErrInvalidKey)
		}
	}
	return out, nil
}

// checkSorted validates a key set as it travels: 1 to MaxKeys keys of
// KeySize bytes, strictly increasing (sorted, no duplicates).
func checkSorted(keys [][]byte) error {
	if len(keys) == 0 || len(keys) > MaxKeys {
		return fmt.Errorf("%w: %d keys, want 1 to %d", ErrInvalidKey, len(keys), MaxKeys)
	}
	for i, k := range keys {
		if len(k) != KeySize {
			return fmt.Errorf("%w: key of %d bytes, want %d", ErrInvalidKey, len(k), KeySize)
		}
		if i > 0 && bytes.Compare(keys[i-1], k) >= 0 {
			return fmt.Errorf("%w: keys not sorted or listed twice", ErrInvalidKey)
		}
	}
	return nil
}

func cloneKeys(keys [][]byte) [][]byte {
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = bytes.Clone(k)
	}
	return out
}

// random returns n bytes from crypto/rand.
func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails (Go 1.24+)
	return b
}
