package trust_test

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"hush.im/trust"
	"mellium.im/xmpp/jid"
)

var mallory = jid.MustParse("mallory@evil.example")

// run performs a whole verification between alice (initiator) and bob.
func run(t *testing.T, aKeys, bKeys [][]byte) (va, vb *trust.Verification) {
	t.Helper()
	va, commit, err := trust.Start(alice, bob, aKeys)
	if err != nil {
		t.Fatal(err)
	}
	vb, accept, err := trust.Respond(bob, alice, bKeys, roundTrip(t, commit))
	if err != nil {
		t.Fatal(err)
	}
	reveal, err := va.Receive(roundTrip(t, accept))
	if err != nil {
		t.Fatal(err)
	}
	if reply, err := vb.Receive(roundTrip(t, reveal)); err != nil || reply != nil {
		t.Fatalf("responder Receive(reveal) = %v, %v", reply, err)
	}
	return va, vb
}

// roundTrip sends a message through its XML form, as it travels.
func roundTrip[M trust.Message](t *testing.T, m M) M {
	t.Helper()
	out, err := parseMessage(marshal(t, m))
	if err != nil {
		t.Fatalf("parsing our own %s: %v", marshal(t, m), err)
	}
	return out.(M)
}

func sasOf(t *testing.T, v *trust.Verification) string {
	t.Helper()
	s, err := v.SAS()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerification(t *testing.T) {
	aKeys := [][]byte{key(3), key(1)}
	bKeys := [][]byte{key(9)}
	va, vb := run(t, aKeys, bKeys)
	if va.State() != trust.StateCompare || vb.State() != trust.StateCompare {
		t.Fatalf("states %v, %v, want compare", va.State(), vb.State())
	}
	if va.Role() != trust.Initiator || vb.Role() != trust.Responder || !bytes.Equal(va.SID(), vb.SID()) {
		t.Fatal("roles or SIDs wrong")
	}
	sa, sb := sasOf(t, va), sasOf(t, vb)
	if sa != sb {
		t.Fatalf("honest run: SAS %q and %q differ", sa, sb)
	}
	if len(sa) != trust.SASLength || strings.Trim(sa, "0123456789ABCDEFGHJKMNPQRSTVWXYZ") != "" {
		t.Fatalf("SAS %q is not %d Crockford base32 characters", sa, trust.SASLength)
	}
	ka, err := va.Confirm()
	if err != nil {
		t.Fatal(err)
	}
	kb, err := vb.Confirm()
	if err != nil {
		t.Fatal(err)
	}
	if len(ka) != 1 || !ka[0].JID.Equal(bob) || !bytes.Equal(ka[0].IdentityKey, key(9)) {
		t.Errorf("alice verified %v, want bob's key", ka)
	}
	if len(kb) != 2 || !kb[0].JID.Equal(alice) || !bytes.Equal(kb[0].IdentityKey, key(1)) || !bytes.Equal(kb[1].IdentityKey, key(3)) {
		t.Errorf("bob verified %v, want alice's two keys, sorted", kb)
	}
	if va.State() != trust.StateVerified {
		t.Errorf("state after Confirm = %v", va.State())
	}
	if _, err := va.Confirm(); !errors.Is(err, trust.ErrDuplicate) {
		t.Errorf("second Confirm: %v, want ErrDuplicate", err)
	}
	if s, err := va.SAS(); err != nil || s != sa {
		t.Errorf("SAS after Confirm = %q, %v", s, err)
	}
}

// TestVerificationFresh: two runs over the same keys give independent
// strings (the nonces are fresh).
func TestVerificationFresh(t *testing.T) {
	seen := map[string]bool{}
	for range 8 {
		va, _ := run(t, [][]byte{key(1)}, [][]byte{key(2)})
		seen[sasOf(t, va)] = true
	}
	if len(seen) < 7 {
		t.Fatalf("8 runs gave only %d distinct strings", len(seen))
	}
}

// TestMITMSubstitutesKeys: Mallory runs one verification with each side,
// substituting her keys for theirs. The strings the users compare differ.
func TestMITMSubstitutesKeys(t *testing.T) {
	for i := range 16 {
		// Alice ↔ Mallory posing as Bob.
		va, commitA, err := trust.Start(alice, bob, [][]byte{key(1)})
		if err != nil {
			t.Fatal(err)
		}
		vm1, acceptM, err := trust.Respond(bob, alice, [][]byte{key(0xee)}, commitA)
		if err != nil {
			t.Fatal(err)
		}
		// Mallory posing as Alice ↔ Bob.
		vm2, commitM, err := trust.Start(alice, bob, [][]byte{key(0xef)})
		if err != nil {
			t.Fatal(err)
		}
		vb, acceptB, err := trust.Respond(bob, alice, [][]byte{key(2)}, commitM)
		if err != nil {
			t.Fatal(err)
		}
		revealM, err := vm2.Receive(acceptB)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := vb.Receive(revealM); err != nil {
			t.Fatal(err)
		}
		revealA, err := va.Receive(acceptM)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := vm1.Receive(revealA); err != nil {
			t.Fatal(err)
		}
		if sasOf(t, va) == sasOf(t, vb) {
			t.Fatalf("run %d: Alice and Bob see the same string %s through a man in the middle", i, sasOf(t, va))
		}
	}
}

// TestMITMRelaysNonces: Mallory relays the nonces but changes the keys
// each side receives. Changing the initiator's keys breaks the
// commitment; changing the responder's changes the string.
func TestMITMRelaysNonces(t *testing.T) {
	t.Run("initiator keys", func(t *testing.T) {
		va, commit, _ := trust.Start(alice, bob, [][]byte{key(1)})
		forged := *commit
		forged.Keys = [][]byte{key(0xee)}
		vb, accept, err := trust.Respond(bob, alice, [][]byte{key(2)}, &forged)
		if err != nil {
			t.Fatal(err)
		}
		reveal, _ := va.Receive(accept)
		if _, err := vb.Receive(reveal); !errors.Is(err, trust.ErrCommitment) {
			t.Fatalf("forged commit keys: %v, want ErrCommitment", err)
		}
		if vb.State() != trust.StateFailed {
			t.Fatalf("state %v, want failed", vb.State())
		}
		if _, err := vb.SAS(); !errors.Is(err, trust.ErrFailed) {
			t.Fatalf("SAS after failure: %v", err)
		}
		if _, err := vb.Confirm(); !errors.Is(err, trust.ErrFailed) {
			t.Fatalf("Confirm after failure: %v", err)
		}
	})
	t.Run("responder keys", func(t *testing.T) {
		va, commit, _ := trust.Start(alice, bob, [][]byte{key(1)})
		vb, accept, _ := trust.Respond(bob, alice, [][]byte{key(2)}, commit)
		forged := *accept
		forged.Keys = [][]byte{key(0xee)}
		reveal, err := va.Receive(&forged)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := vb.Receive(reveal); err != nil {
			t.Fatal(err)
		}
		if sasOf(t, va) == sasOf(t, vb) {
			t.Fatal("forged accept keys give the same string")
		}
	})
	t.Run("wrong peer JID", func(t *testing.T) {
		// Bob believes the commit came from Mallory: the commitment binds
		// the JIDs, so it does not open.
		va, commit, _ := trust.Start(alice, bob, [][]byte{key(1)})
		vb, accept, _ := trust.Respond(bob, mallory, [][]byte{key(2)}, commit)
		reveal, _ := va.Receive(accept)
		if _, err := vb.Receive(reveal); !errors.Is(err, trust.ErrCommitment) {
			t.Fatalf("commitment opened for another JID: %v", err)
		}
	})
}

func TestCommitmentBinds(t *testing.T) {
	va, commit, _ := trust.Start(alice, bob, [][]byte{key(1)})
	vb, accept, _ := trust.Respond(bob, alice, [][]byte{key(2)}, commit)
	reveal, err := va.Receive(accept)
	if err != nil {
		t.Fatal(err)
	}
	r := reveal.(*trust.Reveal)
	for i := range []int{0, 31} {
		forged := &trust.Reveal{SID: r.SID, Nonce: bytes.Clone(r.Nonce)}
		forged.Nonce[i*31] ^= 1
		// A fresh responder for each attempt: the first failure is final.
		vb2, _, _ := trust.Respond(bob, alice, [][]byte{key(2)}, commit)
		if _, err := vb2.Receive(forged); !errors.Is(err, trust.ErrCommitment) {
			t.Fatalf("other nonce: %v, want ErrCommitment", err)
		}
		if _, err := vb2.Receive(r); !errors.Is(err, trust.ErrFailed) {
			t.Fatalf("after a failed reveal: %v, want ErrFailed", err)
		}
	}
	if _, err := vb.Receive(r); err != nil {
		t.Fatal(err)
	}
}

func TestVerificationOrder(t *testing.T) {
	va, commit, _ := trust.Start(alice, bob, [][]byte{key(1)})
	vb, accept, _ := trust.Respond(bob, alice, [][]byte{key(2)}, commit)
	other, otherCommit, _ := trust.Start(alice, bob, [][]byte{key(1)})
	_, otherAccept, _ := trust.Respond(bob, alice, [][]byte{key(2)}, otherCommit)
	otherReveal, _ := other.Receive(otherAccept)

	step := func(v *trust.Verification, m trust.Message, want error) {
		t.Helper()
		before := v.State()
		_, err := v.Receive(m)
		if !errors.Is(err, want) {
			t.Fatalf("Receive(%T) in %v: %v, want %v", m, before, err, want)
		}
		if want != nil && v.State() != before && !errors.Is(want, trust.ErrCommitment) {
			t.Fatalf("refused %T changed the state %v → %v", m, before, v.State())
		}
	}
	// Before the accept.
	if _, err := va.SAS(); !errors.Is(err, trust.ErrNotReady) {
		t.Fatalf("SAS too early: %v", err)
	}
	if _, err := va.Confirm(); !errors.Is(err, trust.ErrNotReady) {
		t.Fatalf("Confirm too early: %v", err)
	}
	step(va, commit, trust.ErrUnexpected)           // initiators never get commits
	step(va, otherReveal, trust.ErrSessionMismatch) // another run
	step(va, otherAccept, trust.ErrSessionMismatch)
	step(vb, otherReveal, trust.ErrSessionMismatch)
	step(vb, commit, trust.ErrDuplicate)  // replayed commit
	step(vb, accept, trust.ErrUnexpected) // responders never get accepts
	step(va, nil, trust.ErrUnexpected)
	step(va, (*trust.Accept)(nil), trust.ErrSessionMismatch)
	step(vb, (*trust.Reveal)(nil), trust.ErrSessionMismatch)
	step(vb, (*trust.Cancel)(nil), trust.ErrSessionMismatch)
	step(vb, (*trust.Commit)(nil), trust.ErrSessionMismatch)
	var zero trust.Verification
	if _, err := zero.Receive(&trust.Cancel{}); !errors.Is(err, trust.ErrSessionMismatch) {
		t.Fatalf("zero Verification: %v", err)
	}
	bad := *accept
	bad.Keys = [][]byte{key(3), key(2)} // not sorted
	step(va, &bad, trust.ErrInvalidKey)
	bad.Keys, bad.Nonce = [][]byte{key(2)}, []byte{1}
	step(va, &bad, trust.ErrMalformed)

	reveal, err := va.Receive(accept)
	if err != nil {
		t.Fatal(err)
	}
	sas := sasOf(t, va)
	replayed := *accept
	replayed.Nonce = bytes.Repeat([]byte{7}, trust.NonceSize) // a second, different answer
	step(va, &replayed, trust.ErrDuplicate)
	step(va, accept, trust.ErrDuplicate)
	if sasOf(t, va) != sas {
		t.Fatal("a refused accept changed the string")
	}
	step(va, reveal, trust.ErrUnexpected) // initiators never get reveals
	step(vb, reveal, nil)
	step(vb, reveal, trust.ErrDuplicate)
	step(vb, commit, trust.ErrDuplicate)

	if _, err := va.Confirm(); err != nil {
		t.Fatal(err)
	}
	step(va, accept, trust.ErrUnexpected)
}

func TestVerificationCancel(t *testing.T) {
	va, vb := run(t, [][]byte{key(1)}, [][]byte{key(2)})
	c, err := va.Reject(trust.ReasonMismatch)
	if err != nil {
		t.Fatal(err)
	}
	if va.State() != trust.StateCanceled {
		t.Fatalf("state after Reject: %v", va.State())
	}
	if reply, err := vb.Receive(roundTrip(t, c)); err != nil || reply != nil {
		t.Fatalf("Receive(cancel) = %v, %v", reply, err)
	}
	if vb.State() != trust.StateCanceled {
		t.Fatalf("state after cancel: %v", vb.State())
	}
	for _, v := range []*trust.Verification{va, vb} {
		if _, err := v.Confirm(); !errors.Is(err, trust.ErrCanceled) {
			t.Errorf("Confirm after cancel: %v", err)
		}
		if _, err := v.SAS(); !errors.Is(err, trust.ErrCanceled) {
			t.Errorf("SAS after cancel: %v", err)
		}
		if _, err := v.Receive(c); !errors.Is(err, trust.ErrCanceled) {
			t.Errorf("Receive after cancel: %v", err)
		}
		if _, err := v.Reject(trust.ReasonUser); !errors.Is(err, trust.ErrCanceled) {
			t.Errorf("Reject after cancel: %v", err)
		}
	}

	// A cancel after Confirm ends the run: the other user saw another
	// string.
	va, vb = run(t, [][]byte{key(1)}, [][]byte{key(2)})
	if _, err := va.Confirm(); err != nil {
		t.Fatal(err)
	}
	c, _ = vb.Reject(trust.ReasonMismatch)
	if _, err := va.Receive(c); err != nil || va.State() != trust.StateCanceled {
		t.Fatalf("cancel after Confirm: %v, state %v", err, va.State())
	}
}

func TestInvalidKeySets(t *testing.T) {
	many := make([][]byte, trust.MaxKeys+1)
	for i := range many {
		many[i] = append(key(0)[:30], byte(i>>8), byte(i))
	}
	for name, keys := range map[string][][]byte{
		"none":      nil,
		"short":     {key(1)[:31]},
		"long":      {append(key(1), 0)},
		"duplicate": {key(1), key(2), key(1)},
		"too many":  many,
	} {
		if _, _, err := trust.Start(alice, bob, keys); !errors.Is(err, trust.ErrInvalidKey) {
			t.Errorf("Start with %s keys: %v, want ErrInvalidKey", name, err)
		}
		_, commit, _ := trust.Start(alice, bob, [][]byte{key(1)})
		if _, _, err := trust.Respond(bob, alice, keys, commit); !errors.Is(err, trust.ErrInvalidKey) {
			t.Errorf("Respond with %s keys: %v, want ErrInvalidKey", name, err)
		}
	}
	if _, _, err := trust.Start(alice, bob, many[:trust.MaxKeys]); err != nil {
		t.Errorf("Start with MaxKeys keys: %v", err)
	}
	_, commit, _ := trust.Start(alice, bob, [][]byte{key(1)})
	commit.Commitment = commit.Commitment[:5]
	if _, _, err := trust.Respond(bob, alice, [][]byte{key(2)}, commit); !errors.Is(err, trust.ErrMalformed) {
		t.Errorf("Respond to a short commitment: %v", err)
	}
	// The caller's slices are copied.
	own := [][]byte{key(1)}
	_, c, _ := trust.Start(alice, bob, own)
	own[0][0] = 0xff
	if c.Keys[0][0] != 1 || !slices.Equal(c.Keys[0], key(1)) {
		t.Error("Start kept the caller's key slice")
	}
}

func TestEqualSAS(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"MJ2D1M", "MJ2D1M", true},
		{"MJ2D1M", "mj2d1m", true},
		{"MJ2D1M", "mj2-d1m", true},
		{"MJ2D1M", "MJ2 D1M", true},
		{"M02D1M", "mo2dlm", true},
		{"M12D1M", "mI2DLM", true},
		{"MJ2D1M", "MJ2D1N", false},
		{"MJ2D1M", "MJ2D1", false},
		{"MJ2D1M", "MJ2D1MM", false},
		{"MJ2D1U", "MJ2D1U", false}, // U is not in the alphabet
		{"", "", false},
		{"MJ2D1M", "MJ2D1Ｍ", false},
	} {
		if got := trust.EqualSAS(tc.a, tc.b); got != tc.want {
			t.Errorf("EqualSAS(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestStrings(t *testing.T) {
	for v, want := range map[interface{ String() string }]string{
		trust.Initiator: "initiator", trust.Responder: "responder", trust.Role(0): "Role(0)",
		trust.StateCommitted: "committed", trust.StateAccepted: "accepted", trust.StateCompare: "compare",
		trust.StateVerified: "verified", trust.StateCanceled: "canceled", trust.StateFailed: "failed",
		trust.State(0): "State(0)",
	} {
		if v.String() != want {
			t.Errorf("String() = %q, want %q", v.String(), want)
		}
	}
}
