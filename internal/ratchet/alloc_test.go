//go:build !race

// The race detector makes sync.Pool drop items at random, which changes
// allocation counts.

package ratchet

import "testing"

// TestAllocations pins the allocations of the hot paths: Encrypt (AES key
// schedule, ciphertext, message), Clone of a session without skipped keys
// (the Session) and UnmarshalBinary of one into an existing Session (none).
func TestAllocations(t *testing.T) {
	forProfiles(t, func(t *testing.T, p *Profile) {
		pr := newPair(t, p)
		pr.deliver(pr.alice, pr.send(pr.bob, "established"))
		st := mustMarshal(t, pr.alice)
		var loaded Session
		for _, c := range []struct {
			name string
			max  float64
			f    func()
		}{
			{"Encrypt", 3, func() {
				if _, err := pr.alice.Encrypt(payload); err != nil {
					t.Fatal(err)
				}
			}},
			{"Clone", 1, func() { pr.alice.Clone() }},
			{"UnmarshalBinary", 0, func() {
				if err := loaded.UnmarshalBinary(st); err != nil {
					t.Fatal(err)
				}
			}},
		} {
			if n := testing.AllocsPerRun(100, c.f); n > c.max {
				t.Errorf("%s: %v allocations, want at most %v", c.name, n, c.max)
			}
		}
	})
}
