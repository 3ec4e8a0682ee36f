package ratchet

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"testing"

	"hush.im/internal/wire"
)

var allProfiles = []*Profile{OMEMO2, Legacy}

func randBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// pair is a session between alice (initiator) and bob (responder), with
// bob's first message already decrypted.
type pair struct {
	t          testing.TB
	alice, bob *Session
}

func newPair(t testing.TB, p *Profile) *pair {
	t.Helper()
	ss, ad := randBytes(t, KeySize), randBytes(t, p.adSize)
	spk, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := NewInitiator(p, ss, ad, spk.PublicKey().Bytes())
	if err != nil {
		t.Fatal(err)
	}
	bob, err := NewResponder(p, ss, ad, spk)
	if err != nil {
		t.Fatal(err)
	}
	pr := &pair{t, alice, bob}
	pr.deliver(bob, pr.send(alice, "hello"))
	return pr
}

func (pr *pair) send(s *Session, pt string) []byte {
	pr.t.Helper()
	msg, err := s.Encrypt([]byte(pt))
	if err != nil {
		pr.t.Fatal(err)
	}
	return msg
}

func (pr *pair) deliver(s *Session, msg []byte) string {
	pr.t.Helper()
	pt, err := s.Decrypt(msg)
	if err != nil {
		pr.t.Fatalf("Decrypt: %v", err)
	}
	return string(pt)
}

// mustFail checks that Decrypt fails with want and changes nothing.
func mustFail(t testing.TB, s *Session, msg []byte, want error) {
	t.Helper()
	before := mustMarshal(t, s)
	pt, err := s.Decrypt(msg)
	if err == nil {
		t.Fatalf("Decrypt succeeded: %q", pt)
	}
	if !errors.Is(err, want) {
		t.Fatalf("Decrypt error %v, want %v", err, want)
	}
	if !errors.Is(err, ErrAuthentication) {
		t.Fatalf("Decrypt error %v is not ErrAuthentication", err)
	}
	if after := mustMarshal(t, s); !bytes.Equal(before, after) {
		t.Fatal("failed Decrypt changed the session")
	}
}

func forProfiles(t *testing.T, f func(t *testing.T, p *Profile)) {
	for _, p := range allProfiles {
		t.Run(p.String(), func(t *testing.T) { f(t, p) })
	}
}

// TestOutOfOrder sends bursts in turns and delivers each burst shuffled,
// with some messages dropped and some delivered only a turn later.
func TestOutOfOrder(t *testing.T) {
	forProfiles(t, func(t *testing.T, p *Profile) {
		pr := newPair(t, p)
		rng := mrand.New(mrand.NewPCG(1, 2))
		type pending struct {
			to  *Session
			msg []byte
			pt  string
		}
		var late []pending
		sessions := [2]*Session{pr.alice, pr.bob}
		for turn := 0; turn < 12; turn++ {
			from, to := sessions[turn%2], sessions[(turn+1)%2]
			var burst []pending
			for i := 0; i < 1+rng.IntN(8); i++ {
				pt := fmt.Sprintf("turn %d message %d", turn, i)
				burst = append(burst, pending{to, pr.send(from, pt), pt})
			}
			rng.Shuffle(len(burst), func(i, j int) { burst[i], burst[j] = burst[j], burst[i] })
			for _, m := range burst {
				switch rng.IntN(6) {
				case 0: // dropped
				case 1:
					late = append(late, m)
				default:
					if got := pr.deliver(m.to, m.msg); got != m.pt {
						t.Fatalf("got %q, want %q", got, m.pt)
					}
				}
			}
			// Messages held back from earlier turns arrive now, across
			// ratchet steps.
			if turn%3 == 2 {
				for _, m := range late {
					if got := pr.deliver(m.to, m.msg); got != m.pt {
						t.Fatalf("late: got %q, want %q", got, m.pt)
					}
				}
				late = nil
			}
		}
	})
}

func TestReplay(t *testing.T) {
	forProfiles(t, func(t *testing.T, p *Profile) {
		pr := newPair(t, p)
		m1, m2, m3 := pr.send(pr.alice, "1"), pr.send(pr.alice, "2"), pr.send(pr.alice, "3")
		pr.deliver(pr.bob, m2)
		mustFail(t, pr.bob, m2, ErrDuplicate) // in-chain replay
		pr.deliver(pr.bob, m1)
		mustFail(t, pr.bob, m1, ErrDuplicate) // replay of a skipped-key message
		pr.deliver(pr.bob, m3)
		reply := pr.send(pr.bob, "r")
		pr.deliver(pr.alice, reply)
		m4 := pr.send(pr.alice, "4")
		pr.deliver(pr.bob, m4)
		// A replay from an earlier chain carries a ratchet key that looks
		// new: the trial DH step fails authentication (python alike).
		mustFail(t, pr.bob, m3, ErrAuthentication)
		mustFail(t, pr.alice, reply, ErrDuplicate) // alice's current receiving chain
	})
}

// TestSkippedKeyBound accumulates more than MaxSkip skipped keys over two
// chains: the oldest are dropped first.
func TestSkippedKeyBound(t *testing.T) {
	forProfiles(t, func(t *testing.T, p *Profile) {
		pr := newPair(t, p)
		const perChain = 600
		var chain1, chain2 [][]byte
		for i := 0; i < perChain; i++ {
			chain1 = append(chain1, pr.send(pr.alice, fmt.Sprint("c1 ", i)))
		}
		pr.deliver(pr.bob, chain1[perChain-1])
		if n := pr.bob.SkippedKeys(); n != perChain-1 {
			t.Fatalf("%d skipped keys, want %d", n, perChain-1)
		}
		pr.deliver(pr.alice, pr.send(pr.bob, "turn"))
		for i := 0; i < perChain; i++ {
			chain2 = append(chain2, pr.send(pr.alice, fmt.Sprint("c2 ", i)))
		}
		pr.deliver(pr.bob, chain2[perChain-1])
		if n := pr.bob.SkippedKeys(); n != MaxSkip {
			t.Fatalf("%d skipped keys, want MaxSkip", n)
		}
		// The oldest of chain 1 went. Legacy reads pn as the last index of
		// the old chain and keeps one more key of it (never used here).
		dropped := 2*(perChain-1) - MaxSkip
		if p.pnIsLastIndex {
			dropped++
		}
		mustFail(t, pr.bob, chain1[dropped-1], ErrAuthentication)
		if got := pr.deliver(pr.bob, chain1[dropped]); got != fmt.Sprint("c1 ", dropped) {
			t.Fatalf("got %q", got)
		}
		if got := pr.deliver(pr.bob, chain2[0]); got != "c2 0" {
			t.Fatalf("got %q", got)
		}
		if n := pr.bob.SkippedKeys(); n != MaxSkip-2 {
			t.Fatalf("%d skipped keys after using two, want %d", n, MaxSkip-2)
		}
	})
}

// TestCounterJumpBound: a message may skip MaxJump keys of its chain, not one
// more; a new ratchet key announcing more than MaxJump missing messages of
// the old chain is still accepted, and those messages are lost.
func TestCounterJumpBound(t *testing.T) {
	forProfiles(t, func(t *testing.T, p *Profile) {
		pr := newPair(t, p) // bob has message 0 of alice's chain
		var msgs [][]byte
		for i := 1; i <= MaxJump+2; i++ {
			msgs = append(msgs, pr.send(pr.alice, fmt.Sprint(i)))
		}
		// msgs[i] has counter i+1; bob's receiving chain has length 1.
		mustFail(t, pr.bob, msgs[MaxJump+1], ErrTooManySkipped) // counter MaxJump+2: MaxJump+1 keys to skip
		if got := pr.deliver(pr.bob, msgs[MaxJump]); got != fmt.Sprint(MaxJump+1) {
			t.Fatalf("got %q", got) // counter MaxJump+1: exactly MaxJump keys skipped
		}
		pr.deliver(pr.bob, msgs[MaxJump+1])
		pr.deliver(pr.bob, msgs[0])

		// Old-chain gap: bob sends MaxJump+2 messages alice never reads, then
		// alice answers, bob ratchets, and the next new-chain message tells
		// alice about MaxJump+2 missing messages.
		var old [][]byte
		for i := 0; i < MaxJump+2; i++ {
			old = append(old, pr.send(pr.bob, fmt.Sprint("old ", i)))
		}
		pr.deliver(pr.alice, old[0])
		pr.deliver(pr.bob, pr.send(pr.alice, "turn"))
		if got := pr.deliver(pr.alice, pr.send(pr.bob, "new")); got != "new" {
			t.Fatalf("got %q", got)
		}
		mustFail(t, pr.alice, old[5], ErrAuthentication) // given up
	})
}

// TestTampered flips every bit of a message in turn: nothing decrypts and
// nothing changes.
func TestTampered(t *testing.T) {
	forProfiles(t, func(t *testing.T, p *Profile) {
		pr := newPair(t, p)
		pr.deliver(pr.alice, pr.send(pr.bob, "ratchet once"))
		msg := pr.send(pr.alice, string(randBytes(t, 48)))
		for i := range msg {
			for bit := 0; bit < 8; bit++ {
				bad := bytes.Clone(msg)
				bad[i] ^= 1 << bit
				mustFail(t, pr.bob, bad, ErrAuthentication)
			}
		}
		for _, bad := range [][]byte{nil, {}, msg[:len(msg)-1], append(bytes.Clone(msg), 0), msg[1:]} {
			mustFail(t, pr.bob, bad, ErrAuthentication)
		}
		pr.deliver(pr.bob, msg)
	})
}

// A message authenticated for another direction or session fails.
func TestWrongSession(t *testing.T) {
	forProfiles(t, func(t *testing.T, p *Profile) {
		pr, other := newPair(t, p), newPair(t, p)
		msg := pr.send(pr.alice, "x")
		mustFail(t, other.bob, msg, ErrAuthentication)
		mustFail(t, pr.alice, msg, ErrAuthentication) // own message reflected
	})
}

func TestLowOrderRatchetKey(t *testing.T) {
	forProfiles(t, func(t *testing.T, p *Profile) {
		pr := newPair(t, p)
		msg := pr.send(pr.alice, "x")
		h, _, _, _, err := p.format.parse(msg)
		if err != nil {
			t.Fatal(err)
		}
		// Re-encode the header with an all-zero (low-order) key; the MAC
		// cannot be right, but the DH step must fail cleanly first.
		h.dh = [KeySize]byte{}
		bad, _, _ := p.format.frame(h, randBytes(t, 16), p.macSize)
		mustFail(t, pr.bob, bad, ErrAuthentication)
	})
}

// Before any answer, the initiator's only peer key is the signed PreKey;
// a message claiming to come from it has no receiving chain.
func TestInitiatorWithoutReceivingChain(t *testing.T) {
	forProfiles(t, func(t *testing.T, p *Profile) {
		spk, _ := ecdh.X25519().GenerateKey(rand.Reader)
		alice, err := NewInitiator(p, randBytes(t, 32), randBytes(t, p.adSize), spk.PublicKey().Bytes())
		if err != nil {
			t.Fatal(err)
		}
		h := header{n: 0}
		copy(h.dh[:], spk.PublicKey().Bytes())
		msg, _, _ := p.format.frame(h, randBytes(t, 16), p.macSize)
		mustFail(t, alice, msg, ErrAuthentication)
	})
}

func TestMessageWithoutCiphertext(t *testing.T) {
	pr := newPair(t, OMEMO2)
	inner := (&wire.OMEMOMessage{N: 1, DHPub: pr.alice.ownPub[:]}).Marshal()
	msg := (&wire.OMEMOAuthenticatedMessage{MAC: make([]byte, 16), Message: inner}).Marshal()
	mustFail(t, pr.bob, msg, ErrAuthentication)
}

func TestResponderMustDecryptFirst(t *testing.T) {
	forProfiles(t, func(t *testing.T, p *Profile) {
		spk, _ := ecdh.X25519().GenerateKey(rand.Reader)
		bob, err := NewResponder(p, randBytes(t, 32), randBytes(t, p.adSize), spk)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.Encrypt([]byte("x")); !errors.Is(err, ErrNotInitialized) {
			t.Fatalf("Encrypt = %v, want ErrNotInitialized", err)
		}
		if bob.PeerRatchetKey() != nil {
			t.Error("responder has a peer key before any message")
		}
		// A failed first message leaves the responder as it was.
		mustFail(t, bob, []byte("junk"), ErrAuthentication)
	})
}

func TestConstructorsValidate(t *testing.T) {
	spk, _ := ecdh.X25519().GenerateKey(rand.Reader)
	p256, _ := ecdh.P256().GenerateKey(rand.Reader)
	pub := spk.PublicKey().Bytes()
	ss, ad := make([]byte, 32), make([]byte, 64)
	for i, err := range []error{
		func() error { _, err := NewInitiator(OMEMO2, ss[:31], ad, pub); return err }(),
		func() error { _, err := NewInitiator(OMEMO2, ss, ad[:63], pub); return err }(),
		func() error { _, err := NewInitiator(Legacy, ss, ad, pub); return err }(), // legacy AD is 66 bytes
		func() error { _, err := NewInitiator(OMEMO2, ss, ad, append([]byte{5}, pub...)); return err }(),
		func() error { _, err := NewInitiator(OMEMO2, ss, ad, make([]byte, 32)); return err }(), // low order
		func() error { _, err := NewInitiator(&Profile{}, ss, ad, pub); return err }(),
		func() error { _, err := NewInitiator(nil, ss, ad, pub); return err }(),
		func() error { _, err := NewResponder(OMEMO2, ss, ad, nil); return err }(),
		func() error { _, err := NewResponder(OMEMO2, ss, ad, p256); return err }(),
		func() error { _, err := NewResponder(OMEMO2, ss[:16], ad, spk); return err }(),
	} {
		if err == nil {
			t.Errorf("case %d: no error", i)
		}
	}
}

func TestCounters(t *testing.T) {
	forProfiles(t, func(t *testing.T, p *Profile) {
		pr := newPair(t, p)
		if n := pr.bob.ReceivedSinceLastSend(); n != 1 {
			t.Fatalf("ReceivedSinceLastSend = %d, want 1", n)
		}
		for i := 0; i < HeartbeatThreshold; i++ {
			pr.deliver(pr.bob, pr.send(pr.alice, "x"))
		}
		if n := pr.bob.ReceivedSinceLastSend(); n != HeartbeatThreshold+1 {
			t.Fatalf("ReceivedSinceLastSend = %d, want %d", n, HeartbeatThreshold+1)
		}
		if n := pr.bob.ReceivingChainLength(); n != HeartbeatThreshold+1 {
			t.Fatalf("ReceivingChainLength = %d", n)
		}
		mustFail(t, pr.bob, []byte("junk"), ErrAuthentication)
		if n := pr.bob.ReceivedSinceLastSend(); n != HeartbeatThreshold+1 {
			t.Fatal("a failed Decrypt counted")
		}
		pr.deliver(pr.alice, pr.send(pr.bob, "heartbeat"))
		if !bytes.Equal(pr.alice.PeerRatchetKey(), pr.bob.ownPub[:]) {
			t.Error("alice's PeerRatchetKey is not bob's ratchet key")
		}
		if n := pr.bob.ReceivedSinceLastSend(); n != 0 {
			t.Fatalf("ReceivedSinceLastSend after Encrypt = %d", n)
		}
		if n := pr.bob.SendingChainLength(); n != 1 {
			t.Fatalf("SendingChainLength = %d", n)
		}
		pr.deliver(pr.bob, pr.send(pr.alice, "answer"))
		if !bytes.Equal(pr.bob.PeerRatchetKey(), pr.alice.ownPub[:]) {
			t.Error("bob's PeerRatchetKey is not alice's ratchet key")
		}
		if !pr.alice.Initiator() || pr.bob.Initiator() || pr.alice.Profile() != p {
			t.Error("Initiator/Profile wrong")
		}
	})
}

func TestChainExhausted(t *testing.T) {
	forProfiles(t, func(t *testing.T, p *Profile) {
		pr := newPair(t, p)
		pr.alice.send.n = 1<<32 - 1
		msg := pr.send(pr.alice, "last")
		h, _, _, _, err := p.format.parse(msg)
		if err != nil || h.n != 1<<32-1 {
			t.Fatalf("last header n = %d, %v", h.n, err)
		}
		if _, err := pr.alice.Encrypt([]byte("one too many")); !errors.Is(err, ErrChainExhausted) {
			t.Fatalf("Encrypt = %v, want ErrChainExhausted", err)
		}
	})
}

// TestSerialization marshals and restores both sides at every step of a
// conversation with out-of-order delivery; the restored sessions carry on.
func TestSerialization(t *testing.T) {
	forProfiles(t, func(t *testing.T, p *Profile) {
		spk, _ := ecdh.X25519().GenerateKey(rand.Reader)
		ss, ad := randBytes(t, 32), randBytes(t, p.adSize)
		bob, err := NewResponder(p, ss, ad, spk)
		if err != nil {
			t.Fatal(err)
		}
		alice, err := NewInitiator(p, ss, ad, spk.PublicKey().Bytes())
		if err != nil {
			t.Fatal(err)
		}
		pr := &pair{t, alice, bob}
		roundTrip := func(s *Session) *Session {
			t.Helper()
			b := mustMarshal(t, s)
			var r Session
			if err := r.UnmarshalBinary(b); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if b2 := mustMarshal(t, &r); !bytes.Equal(b, b2) {
				t.Fatal("MarshalBinary(UnmarshalBinary(b)) != b")
			}
			return &r
		}
		bob = roundTrip(bob) // before the first message
		var held [][]byte
		for turn := 0; turn < 6; turn++ {
			from, to := &pr.alice, &pr.bob
			if turn%2 == 1 {
				from, to = to, from
			}
			*from = roundTrip(*from)
			m1, m2 := pr.send(*from, "one"), pr.send(*from, "two")
			held = append(held, pr.send(*from, "held"))
			*to = roundTrip(*to)
			if pr.deliver(*to, m2) != "two" {
				t.Fatal("two")
			}
			*to = roundTrip(*to)
			if pr.deliver(*to, m1) != "one" {
				t.Fatal("one")
			}
			_ = bob
		}
		pr.alice, pr.bob = roundTrip(pr.alice), roundTrip(pr.bob)
		for i, m := range held {
			to := pr.bob
			if i%2 == 1 {
				to = pr.alice
			}
			if pr.deliver(to, m) != "held" {
				t.Fatal("held")
			}
		}
	})
}

func TestClone(t *testing.T) {
	forProfiles(t, func(t *testing.T, p *Profile) {
		pr := newPair(t, p)
		m1, m2 := pr.send(pr.alice, "1"), pr.send(pr.alice, "2")
		pr.deliver(pr.bob, m2) // m1's key is skipped
		c := pr.bob.Clone()
		before := mustMarshal(t, c)
		pr.deliver(pr.bob, m1)
		pr.deliver(pr.alice, pr.send(pr.bob, "r"))
		if after := mustMarshal(t, c); !bytes.Equal(before, after) {
			t.Fatal("using a session changed its clone")
		}
		if pr.deliver(c, m1) != "1" {
			t.Fatal("clone cannot decrypt")
		}
	})
}

func TestUnmarshalBinaryMalformed(t *testing.T) {
	pr := newPair(t, Legacy)
	pr.deliver(pr.alice, pr.send(pr.bob, "r"))
	m1 := pr.send(pr.alice, "1")
	pr.deliver(pr.bob, pr.send(pr.alice, "2"))
	_ = m1 // one skipped key on bob's side
	good := mustMarshal(t, pr.bob)
	if err := new(Session).UnmarshalBinary(good); err != nil {
		t.Fatal(err)
	}
	n, count := len(good), pr.bob.SkippedKeys()
	if count == 0 || count > 255 {
		t.Fatalf("%d skipped keys", count)
	}
	skippedAt := n - count*skippedEntrySize - 2 // the count
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"truncated", good[:n-1]},
		{"trailing", append(bytes.Clone(good), 0)},
		{"version", mut(func(b []byte) []byte { b[0] = 3; return b })},
		{"version 0", mut(func(b []byte) []byte { b[0] = 0; return b })},
		{"version 1 with a public key", mut(func(b []byte) []byte { b[0] = stateVersionV1; return b })},
		{"version 2 without a public key", func() []byte { b := toV1(t, good); b[0] = stateVersion; return b }()},
		{"profile", mut(func(b []byte) []byte { b[1] = 9; return b })},
		{"wrong profile for the length", mut(func(b []byte) []byte { b[1] = OMEMO2.id; return b })},
		{"unknown flag", mut(func(b []byte) []byte { b[2] |= 0x10; return b })},
		{"receiving chain without sending chain", mut(func(b []byte) []byte { b[2] &^= flagSend; return b })},
		{"responder without receiving chain", mut(func(b []byte) []byte { b[2] &^= flagRecv; return b })},
		{"skipped count above MaxSkip", mut(func(b []byte) []byte { b[skippedAt], b[skippedAt+1] = 0x03, 0xe9; return b })},
		{"skipped count too high", mut(func(b []byte) []byte { b[skippedAt+1]++; return b })},
		{"skipped count too low", mut(func(b []byte) []byte { b[skippedAt+1]--; return b })},
		{"duplicate skipped key", append(mut(func(b []byte) []byte { b[skippedAt+1]++; return b }), good[n-skippedEntrySize:]...)},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := pr.alice.Clone()
			before := mustMarshal(t, s)
			if err := s.UnmarshalBinary(c.b); !errors.Is(err, ErrInvalidState) {
				t.Fatalf("UnmarshalBinary = %v, want ErrInvalidState", err)
			}
			if !bytes.Equal(before, mustMarshal(t, s)) {
				t.Fatal("failed UnmarshalBinary changed the session")
			}
		})
	}
	var zero Session
	if _, err := zero.MarshalBinary(); err == nil {
		t.Error("MarshalBinary of a zero Session succeeded")
	}
	if _, err := zero.Encrypt(nil); err == nil {
		t.Error("Encrypt on a zero Session succeeded")
	}
	if _, err := zero.Decrypt(m1); !errors.Is(err, ErrAuthentication) {
		t.Error("Decrypt on a zero Session did not fail")
	}
}

func TestUnpad(t *testing.T) {
	block := func(tail ...byte) []byte {
		return append(bytes.Repeat([]byte{0xaa}, 16-len(tail)), tail...)
	}
	for _, c := range []struct {
		b    []byte
		n    int
		good bool
	}{
		{block(1), 15, true},
		{block(2, 2), 14, true},
		{bytes.Repeat([]byte{16}, 16), 0, true},
		{block(0), 0, false},
		{block(17), 0, false},
		{block(1, 2), 0, false},
		{block(3, 2, 3), 0, false},
		{append(bytes.Repeat([]byte{16}, 16), block(0xff)...), 0, false},
	} {
		n, ok := unpad(c.b)
		if ok != c.good || ok && n != c.n {
			t.Errorf("unpad(%x) = %d, %v", c.b, n, ok)
		}
	}
}
