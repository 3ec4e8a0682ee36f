package omemo_test

import (
	"sync"
	"testing"

	"hush.im/omemo"
)

func TestConversationMultiDevice(t *testing.T) {
	w := newWorld(t)
	a1 := w.newDevice("alice@example.org", nil)
	a2 := w.newDevice("alice@example.org", nil)
	b1 := w.newDevice("bob@example.net", nil)
	b2 := w.newDevice("bob@example.net", nil)

	e, rep := a1.send("hello", b1.jid)
	if len(rep.Sent()) != 3 || len(rep.Skipped()) != 0 {
		t.Fatalf("report: %+v", rep)
	}
	for _, dr := range rep.Devices {
		if !dr.KEX || !dr.NewSession {
			t.Fatalf("first message to %v: KEX %v new %v", dr.DeviceID, dr.KEX, dr.NewSession)
		}
	}
	for _, d := range []*device{b1, b2, a2} {
		got := d.mustRecv(a1, e, "hello")
		if !got.KeyExchange || !got.NewSession || !got.BundleChanged || got.SendEmpty != omemo.EmptyKeyExchange || !got.Listed {
			t.Fatalf("%v: %+v", d, got)
		}
	}
	// Bob answers from b1 without sending the empty message first.
	e, rep = b1.send("hi", a1.jid)
	for _, dr := range rep.Devices {
		if dr.JID.Equal(a1.jid) && dr.DeviceID == a1.m.DeviceID() {
			if dr.KEX || dr.NewSession {
				t.Fatalf("answer through the passive session carries a key exchange: %+v", dr)
			}
		} else if !dr.KEX {
			t.Fatalf("new session without key exchange: %+v", dr)
		}
	}
	a1.mustRecv(b1, e, "hi")
	a2.mustRecv(b1, e, "hi")
	b2.mustRecv(b1, e, "hi")

	// Now a1 ↔ b1 is confirmed: no more key exchange to b1, still to b2
	// until b2 answers.
	e, rep = a1.send("again", b1.jid)
	for _, dr := range rep.Devices {
		wantKEX := dr.DeviceID != b1.m.DeviceID()
		if dr.KEX != wantKEX {
			t.Fatalf("%v: KEX %v, want %v", dr.DeviceID, dr.KEX, wantKEX)
		}
	}
	for _, d := range []*device{b1, b2, a2} {
		got := d.mustRecv(a1, e, "again")
		if got.NewSession {
			t.Fatalf("%v: repeated key exchange built a new session", d)
		}
	}
}

// TestConcurrent uses one Manager from several goroutines (run with
// -race): every message still decrypts exactly once.
func TestConcurrent(t *testing.T) {
	_, a, b := pair(t)
	got := b.mustRecv(a, mustSend(a, "x", b.jid), "x")
	b.answer(got, a)
	a.sync(b.jid)
	const workers, each = 4, 10
	msgs := make(chan *omemo.Encrypted, workers*each)
	errs := make(chan error, 2*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				e, _, err := a.m.Encrypt([]byte("<envelope/>"), b.jid)
				if err != nil {
					errs <- err
					return
				}
				msgs <- e
			}
		}()
	}
	wg.Wait()
	close(msgs)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range msgs {
				if _, err := b.m.Decrypt(a.jid, e); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestSimultaneousInitiation: both devices build a session from the
// other's bundle and send before receiving anything. Each key exchange
// replaces the receiver's session (python-omemo's rule); the replaced
// state kept as a previous state lets both converge.
func TestSimultaneousInitiation(t *testing.T) {
	for _, answerFirst := range []bool{true, false} {
		_, a, b := pair(t)
		ea := mustSend(a, "from a", b.jid)
		eb := mustSend(b, "from b", a.jid)
		ga := a.mustRecv(b, eb, "from b")
		gb := b.mustRecv(a, ea, "from a")
		if !ga.NewSession || !gb.NewSession {
			t.Fatal("key exchanges did not build sessions")
		}
		if answerFirst {
			a.answer(ga, b)
			b.answer(gb, a)
		}
		for i := range 6 {
			from, to := a, b
			if i%2 == 1 {
				from, to = b, a
			}
			e := mustSend(from, body(i), to.jid)
			got, err := to.recv(from, e)
			if err != nil || string(got.Envelope) != body(i) {
				t.Fatalf("answerFirst=%v: message %d %v→%v: %v", answerFirst, i, from, to, err)
			}
		}
	}
}
