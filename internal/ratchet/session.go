package ratchet

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
)

// MaxSkip is the number of skipped message keys a session keeps for late or
// out-of-order messages; when more are skipped the oldest are dropped first
// (XEP-0384 §Double Ratchet MAX_SKIP and deletion policy: "RECOMMENDED to
// keep 1000 skipped message keys around per session", FIFO; python-twomemo
// max_num_per_session_skipped_keys = 1000).
const MaxSkip = 1000

// MaxJump bounds how far one message may move a receiving chain: a message
// whose counter is more than MaxJump ahead of the chain is rejected with
// ErrTooManySkipped, without deriving anything (XEP-0384 §Double Ratchet
// MAX_SKIP: "the maximum number of skipped message keys in a single message
// has to be limited … values of around 1000"; python-twomemo's
// max_num_per_message_skipped_keys defaults to the per-session maximum, and
// python-doubleratchet calls it dos_protection_threshold). As in
// python-doubleratchet, when a new ratchet key announces that more than
// MaxJump messages of the previous chain are missing, those keys are not
// derived (the messages are lost) but the message itself is processed.
const MaxJump = 1000

// HeartbeatThreshold is XEP-0384's staleness number (§Business Rules: "When a
// client receives the first message for a given ratchet key with a counter
// of 53 or higher, it MUST send a heartbeat message"; python-omemo
// STALENESS_MAGIC_NUMBER). An engine sends an empty message when
// ReceivedSinceLastSend exceeds it (the 54th message received without
// answering has counter 53 or more), which moves the ratchet forward.
const HeartbeatThreshold = 53

var (
	// ErrAuthentication is the error of every failed Decrypt: malformed
	// message, wrong MAC, bad padding, unusable ratchet key, unknown or
	// already used message key. It never says which MAC or padding check
	// failed. The two header-based refusals below wrap it.
	ErrAuthentication = errors.New("ratchet: message authentication failed")

	// ErrDuplicate is returned by Decrypt for a message whose key was already
	// used or dropped, typically a replay of a decrypted message (XEP-0384
	// §Business Rules: a message received twice MUST be ignored silently).
	// The header is not authenticated at that point. errors.Is(err,
	// ErrAuthentication) holds.
	ErrDuplicate = fmt.Errorf("%w: message key already used or dropped", ErrAuthentication)

	// ErrTooManySkipped is returned by Decrypt for a message whose counter is
	// more than MaxJump ahead of its chain. errors.Is(err, ErrAuthentication)
	// holds.
	ErrTooManySkipped = fmt.Errorf("%w: counter more than %d ahead", ErrAuthentication, MaxJump)

	// ErrNotInitialized is returned by Encrypt on a responder session that
	// has not decrypted its first message yet: the responder's sending chain
	// comes from the initiator's first ratchet key.
	ErrNotInitialized = errors.New("ratchet: responder must decrypt a message before encrypting")

	// ErrChainExhausted is returned by Encrypt when the message counter would
	// no longer fit the header's 32 bits.
	ErrChainExhausted = errors.New("ratchet: sending chain exhausted")
)

// chain is a sending or receiving KDF chain (Signal DR §2.2) and its length,
// the number of message keys derived from it so far.
type chain struct {
	key [KeySize]byte
	n   uint64 // ≤ 1<<32
}

// step derives the next message key (KDF_CK) into w.mk.
func (c *chain) step(w *work) {
	c.n++
	w.chainStep(&c.key)
}

// skippedKey is a message key kept for a message that has not arrived yet,
// identified by the sender's ratchet key and the message number.
type skippedKey struct {
	dh [KeySize]byte
	n  uint32
	mk [KeySize]byte
}

// maxADSize is the longest associated data of any profile (Legacy's).
const maxADSize = 2 * 33

// Session is one side of a Double Ratchet session (Signal DR §3). Its
// methods are not safe for concurrent use. The zero value is only good for
// UnmarshalBinary.
//
// Everything but the skipped keys is held in fixed-size arrays, so that a
// Clone is one allocation (two with skipped keys).
type Session struct {
	p         *Profile
	initiator bool
	ad        [maxADSize]byte // X3DH associated data, initiator first; p.adSize bytes

	rootKey [KeySize]byte
	// DHs, the current own ratchet key pair: the raw X25519 private and
	// public keys, and as a crypto/ecdh key once a DH step needed it (a
	// loaded session only has the raw keys: building the ecdh key costs a
	// scalar multiplication, which Encrypt never needs).
	ownPriv [KeySize]byte
	ownPub  [KeySize]byte
	own     *ecdh.PrivateKey // nil or the key of ownPriv; immutable, shared by clones
	peer    [KeySize]byte    // DHr: the peer's current ratchet key
	hasPeer bool

	send     chain // CKs, Ns
	hasSend  bool
	prevSend uint32 // PN
	recv     chain  // CKr, Nr
	hasRecv  bool

	received uint32 // messages decrypted since the last Encrypt, saturating

	skipped []skippedKey // MKSKIPPED, oldest first, at most MaxSkip

	// newKey makes ratchet key pairs; tests replace it to derandomize.
	newKey func() (*ecdh.PrivateKey, error)
}

func generateKey() (*ecdh.PrivateKey, error) {
	return ecdh.X25519().GenerateKey(rand.Reader)
}

func checkCommon(p *Profile, sharedSecret, ad []byte) error {
	if p == nil || p.format == nil {
		return errors.New("ratchet: unknown profile: use OMEMO2 or Legacy")
	}
	if len(sharedSecret) != KeySize {
		return fmt.Errorf("ratchet: shared secret is %d bytes, want %d", len(sharedSecret), KeySize)
	}
	if len(ad) != p.adSize {
		return fmt.Errorf("ratchet: associated data is %d bytes, want %d for %s", len(ad), p.adSize, p)
	}
	return nil
}

// NewInitiator starts a session as the party that fetched the peer's bundle
// and ran X3DH actively ("Alice"; XEP-0384 §Double Ratchet initialization,
// Signal DR §3.3 RatchetInitAlice). sharedSecret is the 32-byte X3DH output
// SK (the initial root key; must be kept secret), ad the X3DH associated data
// (Profile.AssociatedDataSize bytes, initiator first) and peerSignedPreKey
// the raw 32-byte X25519 signed PreKey the exchange used, which serves as the
// peer's first ratchet key. The session can Encrypt at once.
func NewInitiator(p *Profile, sharedSecret, ad, peerSignedPreKey []byte) (*Session, error) {
	return newInitiator(p, sharedSecret, ad, peerSignedPreKey, generateKey)
}

func newInitiator(p *Profile, sharedSecret, ad, peerSignedPreKey []byte, newKey func() (*ecdh.PrivateKey, error)) (*Session, error) {
	if err := checkCommon(p, sharedSecret, ad); err != nil {
		return nil, err
	}
	if len(peerSignedPreKey) != KeySize {
		return nil, fmt.Errorf("ratchet: signed PreKey is %d bytes, want a raw %d-byte X25519 key", len(peerSignedPreKey), KeySize)
	}
	s := &Session{p: p, initiator: true, newKey: newKey}
	copy(s.ad[:], ad)
	copy(s.rootKey[:], sharedSecret)
	copy(s.peer[:], peerSignedPreKey)
	s.hasPeer = true
	own, err := newKey()
	if err != nil {
		return nil, fmt.Errorf("ratchet: generating a ratchet key: %w", err)
	}
	if err := s.setOwn(own); err != nil {
		return nil, err
	}
	w := getWork()
	defer w.done()
	ck, err := s.dhStep(w)
	if err != nil {
		return nil, fmt.Errorf("ratchet: unusable signed PreKey: %w", err)
	}
	s.send, s.hasSend = chain{key: ck}, true
	return s, nil
}

// NewResponder starts a session as the party whose signed PreKey the peer
// used ("Bob"; Signal DR §3.3 RatchetInitBob): sharedSecret and ad as for
// NewInitiator, ownSignedPreKey the X25519 private key of that signed
// PreKey, which serves as the first own ratchet key. The first call must be
// Decrypt of the peer's first message (Encrypt returns ErrNotInitialized
// until then); python-doubleratchet's decrypt_initial_message is the same
// thing in one step.
func NewResponder(p *Profile, sharedSecret, ad []byte, ownSignedPreKey *ecdh.PrivateKey) (*Session, error) {
	if err := checkCommon(p, sharedSecret, ad); err != nil {
		return nil, err
	}
	if ownSignedPreKey == nil {
		return nil, errors.New("ratchet: missing signed PreKey")
	}
	s := &Session{p: p, newKey: generateKey}
	copy(s.ad[:], ad)
	copy(s.rootKey[:], sharedSecret)
	if err := s.setOwn(ownSignedPreKey); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Session) setOwn(k *ecdh.PrivateKey) error {
	if k.Curve() != ecdh.X25519() {
		return errors.New("ratchet: ratchet keys must be X25519 keys")
	}
	s.own = k
	copy(s.ownPriv[:], k.Bytes())
	copy(s.ownPub[:], k.PublicKey().Bytes())
	return nil
}

// errKeyPair is the error of a DH step with a loaded session whose stored
// ratchet public key is not that of its private key.
var errKeyPair = fmt.Errorf("%w: ratchet public key does not match the private key", ErrInvalidState)

// ownKey returns the own ratchet key as a crypto/ecdh key, building it from
// the raw private key of a loaded session (and checking it against the
// stored public key) on first use.
func (s *Session) ownKey() (*ecdh.PrivateKey, error) {
	if s.own != nil {
		return s.own, nil
	}
	k, err := ecdh.X25519().NewPrivateKey(s.ownPriv[:])
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(k.PublicKey().Bytes(), s.ownPub[:]) != 1 {
		return nil, errKeyPair
	}
	s.own = k
	return k, nil
}

// dhStep performs KDF_RK(RK, DH(DHs, DHr)) and returns the new chain key.
func (s *Session) dhStep(w *work) ([KeySize]byte, error) {
	var ck [KeySize]byte
	own, err := s.ownKey()
	if err != nil {
		return ck, err
	}
	peer, err := ecdh.X25519().NewPublicKey(s.peer[:])
	if err != nil {
		return ck, err
	}
	dh, err := own.ECDH(peer) // rejects low-order keys (all-zero output)
	if err != nil {
		return ck, err
	}
	return s.p.kdfRoot(w, &s.rootKey, (*[KeySize]byte)(dh)), nil
}

// adParts returns the associated data in the order the MAC covers it for a
// message sent by the initiator or not.
func (s *Session) adParts(senderIsInitiator bool) (first, second []byte) {
	ad := s.ad[:s.p.adSize]
	if !s.p.senderFirstAD || senderIsInitiator {
		return ad, nil
	}
	half := len(ad) / 2
	return ad[half:], ad[:half]
}

// Encrypt encrypts plaintext with the next key of the sending chain and
// returns the wire message (RatchetEncrypt, Signal DR §3.4): for OMEMO2 a
// serialized OMEMOAuthenticatedMessage, for Legacy a framed SignalMessage.
// It advances the sending chain and resets ReceivedSinceLastSend.
func (s *Session) Encrypt(plaintext []byte) ([]byte, error) {
	if s.p == nil {
		return nil, errors.New("ratchet: uninitialized session")
	}
	if !s.hasSend {
		return nil, ErrNotInitialized
	}
	if s.send.n > math.MaxUint32 {
		return nil, ErrChainExhausted
	}
	h := header{dh: s.ownPub, pn: s.prevSend, n: uint32(s.send.n)}
	w := getWork()
	defer w.done()
	next := s.send
	next.step(w)
	ad1, ad2 := s.adParts(s.initiator)
	msg, err := s.p.seal(w, ad1, ad2, &h, plaintext)
	if err != nil {
		return nil, fmt.Errorf("ratchet: encrypting: %w", err)
	}
	s.send = next
	s.received = 0
	return msg, nil
}

// Decrypt authenticates and decrypts a wire message (RatchetDecrypt, Signal
// DR §3.5), using a skipped message key, the current receiving chain, or a
// DH ratchet step when the message carries a new ratchet key. The session
// changes only if the message authenticates (the candidate state is computed
// aside and swapped in on success); every failure of a message satisfies
// errors.Is(err, ErrAuthentication), and a replay of a decrypted message
// fails with ErrDuplicate. A session loaded from a corrupted state whose
// ratchet public key does not belong to its private key fails its first DH
// ratchet step with ErrInvalidState instead.
func (s *Session) Decrypt(msg []byte) ([]byte, error) {
	if s.p == nil {
		return nil, ErrAuthentication
	}
	h, ct, covered, tag, err := s.p.format.parse(msg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAuthentication, err)
	}
	if ct == nil {
		return nil, fmt.Errorf("%w: message without ciphertext", ErrAuthentication)
	}

	w := getWork()
	defer w.done()
	next := *s // scalar state is copied; next.skipped is only read
	var fresh []skippedKey
	used := s.findSkipped(&h)
	if used >= 0 {
		w.mk = s.skipped[used].mk
	} else if fresh, err = next.advance(w, &h); err != nil {
		return nil, err
	}

	ad1, ad2 := s.adParts(!s.initiator)
	pt, ok := s.p.open(w, ad1, ad2, covered, tag, ct)
	if !ok {
		return nil, ErrAuthentication
	}

	next.skipped = commitSkipped(s.skipped, used, fresh)
	if next.received < math.MaxUint32 {
		next.received++
	}
	*s = next
	return pt, nil
}

func (s *Session) findSkipped(h *header) int {
	for i := range s.skipped {
		if s.skipped[i].n == h.n && s.skipped[i].dh == h.dh {
			return i
		}
	}
	return -1
}

// advance moves the (candidate) state to the key of the message with header
// h, as python-doubleratchet's DiffieHellmanRatchet.next_decryption_key: a
// DH ratchet step if h carries a new ratchet key, then forward along the
// receiving chain. It leaves the message key in w.mk and returns the keys
// it skipped.
func (s *Session) advance(w *work, h *header) (fresh []skippedKey, err error) {
	if !s.hasPeer || h.dh != s.peer {
		// Keys left on the old receiving chain (Signal DR SkipMessageKeys
		// with header.pn). Above MaxJump they are given up, as python does.
		if s.hasRecv {
			until := uint64(h.pn)
			if s.p.pnIsLastIndex {
				until++
			}
			if until > s.recv.n && until-s.recv.n <= MaxJump {
				fresh = s.skipTo(w, fresh, until)
			}
		}
		// DHRatchet (Signal DR §3.5).
		s.peer, s.hasPeer = h.dh, true
		ck, err := s.dhStep(w)
		if errors.Is(err, ErrInvalidState) {
			return nil, err
		} else if err != nil {
			return nil, fmt.Errorf("%w: unusable ratchet key", ErrAuthentication)
		}
		s.recv, s.hasRecv = chain{key: ck}, true
		own, err := s.newKey()
		if err != nil {
			return nil, fmt.Errorf("ratchet: generating a ratchet key: %w", err)
		}
		if err := s.setOwn(own); err != nil {
			return nil, err
		}
		if ck, err = s.dhStep(w); err != nil {
			return nil, fmt.Errorf("%w: unusable ratchet key", ErrAuthentication)
		}
		if s.hasSend {
			s.prevSend = uint32(s.send.n) // ≤ MaxUint32: Encrypt stops there
		}
		s.send, s.hasSend = chain{key: ck}, true
	}
	if !s.hasRecv {
		// The initiator's only peer key so far is the signed PreKey, which
		// the responder never sends with.
		return nil, ErrAuthentication
	}
	if uint64(h.n) > s.recv.n && uint64(h.n)-s.recv.n > MaxJump {
		return nil, ErrTooManySkipped
	}
	fresh = s.skipTo(w, fresh, uint64(h.n))
	if uint64(h.n) < s.recv.n {
		return nil, ErrDuplicate
	}
	s.recv.step(w)
	return fresh, nil
}

// skipTo derives and records the receiving chain's keys up to (excluding)
// message number until.
func (s *Session) skipTo(w *work, fresh []skippedKey, until uint64) []skippedKey {
	for s.recv.n < until {
		n := uint32(s.recv.n)
		s.recv.step(w)
		fresh = append(fresh, skippedKey{dh: s.peer, n: n, mk: w.mk})
	}
	return fresh
}

// commitSkipped applies a successful Decrypt to the skipped keys: the used
// one goes, the fresh ones join, and the oldest beyond MaxSkip are dropped
// (XEP-0384 §Double Ratchet: FIFO). Dropped keys are wiped.
func commitSkipped(old []skippedKey, used int, fresh []skippedKey) []skippedKey {
	if used < 0 && len(fresh) == 0 {
		return old
	}
	all := make([]skippedKey, 0, len(old)+len(fresh))
	for i := range old {
		if i != used {
			all = append(all, old[i])
		}
	}
	all = append(all, fresh...)
	if drop := len(all) - MaxSkip; drop > 0 {
		clear(all[:drop])
		all = append(all[:0:0], all[drop:]...)
	}
	if used >= 0 {
		clear(old[used : used+1])
	}
	return all
}

// Clone returns an independent copy of s.
func (s *Session) Clone() *Session {
	c := *s
	if len(s.skipped) > 0 {
		c.skipped = append([]skippedKey(nil), s.skipped...)
	}
	return &c
}

// Profile returns the session's profile.
func (s *Session) Profile() *Profile { return s.p }

// Initiator reports whether s was created with NewInitiator.
func (s *Session) Initiator() bool { return s.initiator }

// ReceivedSinceLastSend returns the number of messages decrypted since s
// last encrypted one (or since it was created). Compare with
// HeartbeatThreshold (XEP-0384 §Business Rules).
func (s *Session) ReceivedSinceLastSend() int { return int(s.received) }

// SendingChainLength returns the number of messages encrypted on the
// current sending chain, the next message's counter (python-doubleratchet
// sending_chain_length).
func (s *Session) SendingChainLength() int { return int(s.send.n) }

// ReceivingChainLength returns the length of the current receiving chain:
// one more than the highest counter received or skipped on the peer's
// current ratchet key, 0 before any message (python-doubleratchet
// receiving_chain_length; python-omemo sends a heartbeat when it exceeds
// HeartbeatThreshold).
func (s *Session) ReceivingChainLength() int { return int(s.recv.n) }

// PeerRatchetKey returns a copy of the peer's current ratchet public key, raw
// 32-byte X25519 (for the initiator before any answer, the peer's signed
// PreKey), or nil for a responder before its first message.
func (s *Session) PeerRatchetKey() []byte {
	if !s.hasPeer {
		return nil
	}
	return append([]byte(nil), s.peer[:]...)
}

// SkippedKeys returns the number of stored skipped message keys (at most
// MaxSkip).
func (s *Session) SkippedKeys() int { return len(s.skipped) }
