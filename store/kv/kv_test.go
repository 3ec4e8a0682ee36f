package kv_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"hush.im/omemo"
	"hush.im/omemo/legacy"
	"hush.im/store"
	"hush.im/store/internal/storetest"
	"hush.im/store/kv"
	"mellium.im/xmpp/jid"
)

func pair(t *testing.T) (alice, bob *storetest.Device) {
	t.Helper()
	pep := storetest.NewPEP()
	var err error
	if alice, err = storetest.Join(pep, "alice@example.org", kv.NewMemory(), nil); err != nil {
		t.Fatal(err)
	}
	if bob, err = storetest.Join(pep, "bob@example.net", kv.NewMemory(), nil); err != nil {
		t.Fatal(err)
	}
	return alice, bob
}

func TestConversation(t *testing.T) {
	alice, bob := pair(t)
	for i := range 20 {
		from, to := alice, bob
		if i%3 == 2 {
			from, to = bob, alice
		}
		body := fmt.Appendf(nil, "<envelope>%d</envelope>", i)
		e, err := from.Send(body, to.JID)
		if err != nil {
			t.Fatalf("%d: send: %v", i, err)
		}
		id := storetest.OriginID(from.JID, fmt.Sprint("o", i))
		_, seq, err := to.Receive(from.JID, e, id)
		if err != nil {
			t.Fatalf("%d: receive: %v", i, err)
		}
		msgs, err := storetest.Inbox(to.Store)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 1 || msgs[0].Seq != seq || string(msgs[0].Payload) != string(body) || !msgs[0].From.Equal(from.JID) {
			t.Fatalf("%d: inbox %v, want one message %d", i, msgs, seq)
		}
		if err := storetest.Ack(to.Store, seq); err != nil {
			t.Fatal(err)
		}
	}
}

// TestArchiveCopy: the archive copy of a message received live carries
// the same origin-id (and a stanza-id of the archive): it is recognised
// before decryption, and PutInbox refuses it inside the transaction, which
// then commits nothing.
func TestArchiveCopy(t *testing.T) {
	alice, bob := pair(t)
	e, err := alice.Send([]byte("<envelope>live</envelope>"), bob.JID)
	if err != nil {
		t.Fatal(err)
	}
	origin := storetest.OriginID(alice.JID, "origin-1")
	live := storetest.StanzaID(bob.JID, "server-1")
	if _, _, err := bob.Receive(alice.JID, e, origin, live); err != nil {
		t.Fatal(err)
	}
	archive := storetest.StanzaID(bob.JID, "mam-7")
	seen, err := storetest.Seen(bob.Store, origin, archive)
	if err != nil || !seen {
		t.Fatalf("archive copy not recognised: %v %v", seen, err)
	}
	seen, err = storetest.Seen(bob.Store, archive)
	if err != nil || seen {
		t.Fatalf("unrelated id seen: %v %v", seen, err)
	}
	// Another sender reusing the origin-id is not a duplicate: origin-ids
	// are unique per sender only.
	seen, err = storetest.Seen(bob.Store, storetest.OriginID(jid.MustParse("mallory@example.com"), "origin-1"))
	if err != nil || seen {
		t.Fatalf("origin-id of another sender seen: %v %v", seen, err)
	}

	// A second message re-using the live message's stanza-id is refused
	// by PutInbox inside the decrypt transaction: nothing is committed, so
	// the message can still be decrypted once the caller decides.
	e2, err := alice.Send([]byte("<envelope>2</envelope>"), bob.JID)
	if err != nil {
		t.Fatal(err)
	}
	before := bob.Store.(*kv.Memory).Snapshot()
	_, _, err = bob.Receive(alice.JID, e2, live)
	if !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("error %v, want ErrDuplicate", err)
	}
	if after := bob.Store.(*kv.Memory).Snapshot(); !reflect.DeepEqual(before, after) {
		t.Fatal("refused duplicate changed the store")
	}
	if _, _, err := bob.Receive(alice.JID, e2, storetest.StanzaID(bob.JID, "server-2")); err != nil {
		t.Fatal(err)
	}
	// The same <encrypted> again, with fresh ids: the ratchet's replay
	// log catches it.
	_, _, err = bob.Receive(alice.JID, e2, storetest.StanzaID(bob.JID, "server-3"))
	if !errors.Is(err, omemo.ErrDuplicate) {
		t.Fatalf("error %v, want omemo.ErrDuplicate", err)
	}
}

func TestFailedUpdateChangesNothing(t *testing.T) {
	m := kv.NewMemory()
	pep := storetest.NewPEP()
	if _, err := storetest.Join(pep, "alice@example.org", m, nil); err != nil {
		t.Fatal(err)
	}
	before := m.Snapshot()
	boom := errors.New("boom")
	writeAll := func(tx omemo.Tx) {
		pks, err := tx.PreKeys()
		if err != nil || len(pks) == 0 {
			t.Fatalf("prekeys: %v %v", len(pks), err)
		}
		for _, pk := range pks {
			if err := tx.DeletePreKey(pk.ID()); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.PutTrust(jid.MustParse("x@y"), make([]byte, 32), omemo.TrustVerified); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.(store.Inbox).PutInbox(&store.Message{Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		if pks, err := tx.PreKeys(); err != nil || len(pks) != 0 {
			t.Fatalf("prekeys after deleting all in the transaction: %d %v", len(pks), err)
		}
	}
	if err := m.Update(func(tx omemo.Tx) error { writeAll(tx); return boom }); err != boom {
		t.Fatalf("error %v, want the function's", err)
	}
	if !reflect.DeepEqual(before, m.Snapshot()) {
		t.Fatal("failed Update changed the store")
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic swallowed")
			}
		}()
		m.Update(func(tx omemo.Tx) error { writeAll(tx); panic("boom") })
	}()
	if !reflect.DeepEqual(before, m.Snapshot()) {
		t.Fatal("panicking Update changed the store")
	}
}

func TestTransactionMisuse(t *testing.T) {
	m := kv.NewMemory()
	var kept omemo.Tx
	err := m.View(func(tx omemo.Tx) error {
		kept = tx
		tests := []struct {
			name string
			err  error
		}{
			{"PutTrust", tx.PutTrust(jid.MustParse("a@b"), make([]byte, 32), omemo.TrustTrusted)},
			{"DeletePreKey", tx.DeletePreKey(1)},
			{"PutPending", tx.PutPending(&omemo.PendingRecord{})},
			{"Ack", tx.(store.Inbox).Ack(1)},
			{"MarkSeen", tx.(store.Inbox).MarkSeen(storetest.OriginID(jid.MustParse("a@b"), "x"))},
		}
		for _, tc := range tests {
			if !errors.Is(tc.err, kv.ErrReadOnly) {
				t.Errorf("%s in a View: %v, want ErrReadOnly", tc.name, tc.err)
			}
		}
		if _, err := tx.(store.Inbox).PutInbox(&store.Message{}); !errors.Is(err, kv.ErrReadOnly) {
			t.Errorf("PutInbox in a View: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kept.Identity(); !errors.Is(err, kv.ErrTxDone) {
		t.Fatalf("use after View: %v", err)
	}
	m.Update(func(tx omemo.Tx) error { kept = tx; return nil })
	if err := kept.DeletePreKey(1); !errors.Is(err, kv.ErrTxDone) {
		t.Fatalf("use after Update: %v", err)
	}
	if _, err := kept.PreKeys(); !errors.Is(err, kv.ErrTxDone) {
		t.Fatalf("use after Update: %v", err)
	}
}

func TestNotFound(t *testing.T) {
	m := kv.NewMemory()
	a := omemo.Address{JID: jid.MustParse("a@b"), Device: 7}
	m.View(func(tx omemo.Tx) error {
		for name, f := range map[string]func() error{
			"Identity":     func() error { _, err := tx.Identity(); return err },
			"PreKey":       func() error { _, err := tx.PreKey(1); return err },
			"SignedPreKey": func() error { _, err := tx.SignedPreKey(1); return err },
			"Session":      func() error { _, err := tx.Session(a); return err },
			"ReplayLog":    func() error { _, err := tx.ReplayLog(a); return err },
			"DeviceList":   func() error { _, err := tx.DeviceList(a.JID); return err },
			"Bundle":       func() error { _, err := tx.Bundle(a); return err },
			"Pending":      func() error { _, err := tx.Pending(); return err },
		} {
			if err := f(); !errors.Is(err, omemo.ErrNotFound) {
				t.Errorf("%s: %v, want ErrNotFound", name, err)
			}
		}
		if l, err := tx.Trust(a.JID, make([]byte, 32)); err != nil || l != omemo.TrustUndecided {
			t.Errorf("Trust: %v %v", l, err)
		}
		if ids, err := tx.SessionDevices(a.JID); err != nil || len(ids) != 0 {
			t.Errorf("SessionDevices: %v %v", ids, err)
		}
		return nil
	})
}

func TestInbox(t *testing.T) {
	m := kv.NewMemory()
	sender := jid.MustParse("juliet@capulet.lit/balcony")
	when := time.Date(2025, 11, 26, 13, 0, 0, 123456789, time.UTC)
	var seqs []uint64
	for i := range 5 {
		err := m.Update(func(tx omemo.Tx) error {
			s, err := tx.(store.Inbox).PutInbox(&store.Message{
				From: sender, Device: 42, Received: when,
				IDs:     []store.MessageID{storetest.OriginID(sender, fmt.Sprint(i))},
				Payload: fmt.Appendf(nil, "m%d", i),
			})
			seqs = append(seqs, s)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(seqs, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("seqs %v", seqs)
	}
	m.View(func(tx omemo.Tx) error {
		ib := tx.(store.Inbox)
		msgs, err := ib.Inbox(2)
		if err != nil || len(msgs) != 2 || msgs[0].Seq != 1 || msgs[1].Seq != 2 {
			t.Fatalf("Inbox(2): %v %v", msgs, err)
		}
		got := msgs[1]
		want := &store.Message{Seq: 2, From: sender, Device: 42, Received: when,
			IDs: []store.MessageID{storetest.OriginID(sender, "1")}, Payload: []byte("m1")}
		if got.String() != want.String() || string(got.Payload) != "m1" || !got.IDs[0].Scope.Equal(want.IDs[0].Scope) ||
			got.IDs[0].ID != "1" || !got.Received.Equal(when) {
			t.Fatalf("message %v, want %v", got, want)
		}
		return nil
	})
	// Ack everything, twice for some: the sequence goes on, never reused.
	if err := m.Update(func(tx omemo.Tx) error { return tx.(store.Inbox).Ack(1, 2, 3, 4, 5, 3, 99) }); err != nil {
		t.Fatal(err)
	}
	m.Update(func(tx omemo.Tx) error {
		ib := tx.(store.Inbox)
		if msgs, err := ib.Inbox(0); err != nil || len(msgs) != 0 {
			t.Fatalf("inbox after ack: %v %v", msgs, err)
		}
		if _, err := ib.PutInbox(&store.Message{IDs: []store.MessageID{storetest.OriginID(sender, "3")}}); !errors.Is(err, store.ErrDuplicate) {
			t.Fatalf("acked id not remembered: %v", err)
		}
		s, err := ib.PutInbox(&store.Message{})
		if err != nil || s != 6 {
			t.Fatalf("seq after ack: %d %v", s, err)
		}
		return nil
	})
}

func TestInvalidMessages(t *testing.T) {
	j := jid.MustParse("a@b")
	long := make([]byte, store.MaxIDLength+1)
	for i := range long {
		long[i] = 'x'
	}
	tests := []struct {
		name string
		m    store.Message
	}{
		{"empty id", store.Message{IDs: []store.MessageID{{Kind: store.StanzaID, Scope: j}}}},
		{"long id", store.Message{IDs: []store.MessageID{{Kind: store.StanzaID, Scope: j, ID: string(long)}}}},
		{"no scope", store.Message{IDs: []store.MessageID{{Kind: store.OriginID, ID: "x"}}}},
		{"bad kind", store.Message{IDs: []store.MessageID{{Kind: 9, Scope: j, ID: "x"}}}},
		{"too many ids", store.Message{IDs: make([]store.MessageID, store.MaxMessageIDs+1)}},
		{"large payload", store.Message{Payload: make([]byte, store.MaxPayloadSize+1)}},
	}
	m := kv.NewMemory()
	for _, tc := range tests {
		err := m.Update(func(tx omemo.Tx) error {
			_, err := tx.(store.Inbox).PutInbox(&tc.m)
			return err
		})
		if !errors.Is(err, store.ErrInvalidMessage) {
			t.Errorf("%s: %v, want ErrInvalidMessage", tc.name, err)
		}
	}
	if len(m.Snapshot()) != 0 {
		t.Fatal("invalid messages changed the store")
	}
}

func TestMessageStringHidesPayload(t *testing.T) {
	m := &store.Message{Seq: 3, Payload: []byte("attack at dawn")}
	for _, s := range []string{fmt.Sprint(m), fmt.Sprintf("%v %+v %#v %s", m, m, m, m), fmt.Sprintf("%v %+v %#v", *m, *m, *m)} {
		if strings.Contains(s, "attack") {
			t.Fatalf("payload printed: %s", s)
		}
	}
}

func TestLegacyRecordsAndPending(t *testing.T) {
	m := kv.NewMemory()
	j := jid.MustParse("juliet@capulet.lit")
	a := omemo.Address{JID: j, Device: 7}
	err := m.Update(func(tx omemo.Tx) error {
		if err := tx.PutLegacyDeviceList(j, &legacy.DeviceList{Devices: []uint32{7, 9}}); err != nil {
			return err
		}
		// A pending record with only legacy devices is not empty.
		return tx.PutPending(&omemo.PendingRecord{Legacy: []omemo.Address{a}})
	})
	if err != nil {
		t.Fatal(err)
	}
	m.View(func(tx omemo.Tx) error {
		l, err := tx.LegacyDeviceList(j)
		if err != nil || !reflect.DeepEqual(l.Devices, []uint32{7, 9}) {
			t.Fatalf("legacy device list: %v %v", l, err)
		}
		if _, err := tx.LegacyBundle(a); !errors.Is(err, omemo.ErrNotFound) {
			t.Fatalf("legacy bundle: %v", err)
		}
		if _, err := tx.LegacySession(a); !errors.Is(err, omemo.ErrNotFound) {
			t.Fatalf("legacy session: %v", err)
		}
		if ids, err := tx.LegacySessionDevices(j); err != nil || len(ids) != 0 {
			t.Fatalf("legacy session devices: %v %v", ids, err)
		}
		p, err := tx.Pending()
		if err != nil || len(p.Legacy) != 1 || !p.Legacy[0].Equal(a) {
			t.Fatalf("pending: %v %v", p, err)
		}
		return nil
	})
	m.Update(func(tx omemo.Tx) error { return tx.PutPending(&omemo.PendingRecord{}) })
	m.View(func(tx omemo.Tx) error {
		if _, err := tx.Pending(); !errors.Is(err, omemo.ErrNotFound) {
			t.Fatalf("empty pending record kept: %v", err)
		}
		return nil
	})
}

// TestArchiveCursor: the cursor is empty until set, survives, is replaced,
// and an invalid one changes nothing.
func TestArchiveCursor(t *testing.T) {
	m := kv.NewMemory()
	get := func() string {
		t.Helper()
		var c string
		if err := m.View(func(tx omemo.Tx) error {
			var err error
			c, err = tx.(store.ArchiveCursor).ArchiveCursor()
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return c
	}
	set := func(c string) error {
		return m.Update(func(tx omemo.Tx) error { return tx.(store.ArchiveCursor).SetArchiveCursor(c) })
	}
	if c := get(); c != "" {
		t.Fatalf("new store: cursor %q", c)
	}
	for _, c := range []string{"id:5f2a-1", "since:2026-11-26T16:00:00Z", strings.Repeat("x", store.MaxArchiveCursor)} {
		if err := set(c); err != nil || get() != c {
			t.Fatalf("set %q: %v, got %q", c, err, get())
		}
	}
	for _, bad := range []string{strings.Repeat("x", store.MaxArchiveCursor+1), "id:\xff"} {
		if err := set(bad); !errors.Is(err, store.ErrInvalidMessage) {
			t.Fatalf("set invalid %q: %v", bad[:5], err)
		}
	}
	if get() != strings.Repeat("x", store.MaxArchiveCursor) {
		t.Fatal("an invalid cursor changed the stored one")
	}
}
