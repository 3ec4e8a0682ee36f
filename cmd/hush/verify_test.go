package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"

	"mellium.im/xmpp/jid"

	"hush.im/trust"
)

// TestSASRunBothStart: both users start hush verify at once, so each side
// sends a Commit and receives the other's: exactly one side gives up its
// run and answers, and both end with the same string (package trust:
// the run with the lower SID goes on).
func TestSASRunBothStart(t *testing.T) {
	key := func() [][]byte {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return [][]byte{pub}
	}
	alice, bob := jid.MustParse("alice@example.org"), jid.MustParse("bob@example.net")
	for range 20 {
		a := &sasRun{self: alice, peer: bob, own: key()}
		b := &sasRun{self: bob, peer: alice, own: key()}
		ca, err := a.start()
		if err != nil {
			t.Fatal(err)
		}
		cb, err := b.start()
		if err != nil {
			t.Fatal(err)
		}
		// Each gets the other's Commit: one answers, one ignores it.
		ra, errA := a.receive(cb)
		rb, errB := b.receive(ca)
		if (ra == nil) == (rb == nil) || (errA == nil) == (errB == nil) {
			t.Fatalf("both or neither answered: %v %v / %v %v", ra, errA, rb, errB)
		}
		// Deliver until both compare.
		toA, toB := rb, ra
		for range 4 {
			var err error
			if toA != nil {
				if toB, err = a.receive(toA); err != nil {
					t.Fatal(err)
				}
				toA = nil
			} else if toB != nil {
				if toA, err = b.receive(toB); err != nil {
					t.Fatal(err)
				}
				toB = nil
			}
		}
		if a.v.State() != trust.StateCompare || b.v.State() != trust.StateCompare {
			t.Fatalf("states %v %v", a.v.State(), b.v.State())
		}
		sa, _ := a.v.SAS()
		sb, _ := b.v.SAS()
		if sa != sb || len(sa) != trust.SASLength {
			t.Fatalf("strings %q %q", sa, sb)
		}
	}
}

// TestSASRunCancel: a Cancel from the peer ends the run with
// trust.ErrCanceled.
func TestSASRunCancel(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	r := &sasRun{self: jid.MustParse("alice@example.org"), peer: jid.MustParse("bob@example.net"), own: [][]byte{pub}}
	c, err := r.start()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.receive(&trust.Cancel{SID: c.SID, Reason: trust.ReasonUser}); !errors.Is(err, trust.ErrCanceled) {
		t.Fatalf("cancel: %v", err)
	}
}
