package bolt

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	bbolt "go.etcd.io/bbolt"
	"hush.im/omemo"
	"hush.im/store"
	"hush.im/store/internal/storetest"
)

// catchUp makes n messages from alice to bob and returns bob's device
// and store (on disk) and the messages, not yet decrypted.
func catchUp(t testing.TB, n int) (*storetest.Device, *Store, []*omemo.Encrypted) {
	t.Helper()
	pep := storetest.NewPEP()
	da, err := storetest.Join(pep, alice.String(), openT(t, filepath.Join(t.TempDir(), "a.hush"), alice), nil)
	if err != nil {
		t.Fatal(err)
	}
	sb := openT(t, filepath.Join(t.TempDir(), "b.hush"), bob)
	db, err := storetest.Join(pep, bob.String(), sb, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := da.Sync(bob); err != nil {
		t.Fatal(err)
	}
	msgs := make([]*omemo.Encrypted, n)
	for i := range msgs {
		if msgs[i], _, err = da.M.Encrypt(fmt.Appendf(nil, "<envelope>%d</envelope>", i), bob); err != nil {
			t.Fatal(err)
		}
	}
	return db, sb, msgs
}

func mamID(i int) store.MessageID { return storetest.StanzaID(bob, fmt.Sprint("mam-", i)) }

func TestBatch(t *testing.T) {
	db, sb, msgs := catchUp(t, 30)
	before := dump(t, sb)

	// A rolled back batch leaves nothing.
	b, err := sb.BeginBatch()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sb.BeginBatch(); !errors.Is(err, ErrBatchOpen) {
		t.Fatalf("second BeginBatch: %v", err)
	}
	for i, e := range msgs[:10] {
		if _, _, err := db.Receive(alice, e, mamID(i)); err != nil {
			t.Fatal(err)
		}
	}
	if b.Len() != 10 {
		t.Fatalf("Len %d", b.Len())
	}
	// Views inside the batch see it.
	if inbox, err := storetest.Inbox(sb); err != nil || len(inbox) != 10 {
		t.Fatalf("inbox inside the batch: %d %v", len(inbox), err)
	}
	b.Rollback()
	b.Rollback()
	if err := b.Commit(); !errors.Is(err, ErrBatchDone) {
		t.Fatalf("Commit after Rollback: %v", err)
	}
	if !reflect.DeepEqual(before, dump(t, sb)) {
		t.Fatal("rolled back batch changed the store")
	}

	// A committed batch keeps everything, and an Update that fails inside
	// it (a duplicate) changes nothing of the batch.
	b, err = sb.BeginBatch()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Rollback()
	for i, e := range msgs[:20] {
		if _, _, err := db.Receive(alice, e, mamID(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := db.Receive(alice, msgs[20], mamID(3)); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("duplicate in a batch: %v", err)
	}
	func() {
		defer func() { recover() }()
		sb.Update(func(tx omemo.Tx) error {
			tx.(store.Inbox).Ack(1, 2, 3)
			panic("boom")
		})
	}()
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	inbox, err := storetest.Inbox(sb)
	if err != nil || len(inbox) != 20 {
		t.Fatalf("inbox after commit: %d %v", len(inbox), err)
	}
	for i, m := range inbox {
		if string(m.Payload) != fmt.Sprintf("<envelope>%d</envelope>", i) {
			t.Fatalf("message %d: %q", i, m.Payload)
		}
	}
	// Durable: reopen and go on outside a batch.
	path := sb.File()
	sb.Close()
	sb = openT(t, path, bob)
	pep := storetest.NewPEP()
	if db, err = storetest.Join(pep, bob.String(), sb, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.Receive(alice, msgs[20], mamID(20)); err != nil {
		t.Fatal(err)
	}
	if inbox, _ := storetest.Inbox(sb); len(inbox) != 21 {
		t.Fatalf("inbox after reopening: %d", len(inbox))
	}
}

// TestBatchConcurrent: Updates from several goroutines join the batch.
func TestBatchConcurrent(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "a.hush"), alice)
	b, err := s.BeginBatch()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 25 {
				err := s.Update(func(tx omemo.Tx) error {
					_, err := tx.(store.Inbox).PutInbox(&store.Message{IDs: []store.MessageID{mamID(g*100 + i)}})
					return err
				})
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if inbox, _ := storetest.Inbox(s); len(inbox) != 100 {
		t.Fatalf("inbox: %d", len(inbox))
	}
}

// TestBatchCommitFails: a failed batch commit loses the whole batch and
// leaves the store as before it.
func TestBatchCommitFails(t *testing.T) {
	db, sb, msgs := catchUp(t, 5)
	before := dump(t, sb)
	b, err := sb.BeginBatch()
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range msgs {
		if _, _, err := db.Receive(alice, e, mamID(i)); err != nil {
			t.Fatal(err)
		}
	}
	injected := errors.New("injected")
	commit := sb.commit
	sb.commit = func(tx *bbolt.Tx) error { tx.Rollback(); return injected }
	if err := b.Commit(); !errors.Is(err, injected) {
		t.Fatalf("Commit: %v", err)
	}
	sb.commit = commit
	path := sb.File()
	sb.Close()
	sb = openT(t, path, bob)
	if !reflect.DeepEqual(before, dump(t, sb)) {
		t.Fatal("failed batch changed the store")
	}
}

func TestCloseRollsBackBatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.hush")
	s := openT(t, path, alice)
	b, err := s.BeginBatch()
	if err != nil {
		t.Fatal(err)
	}
	s.Update(func(tx omemo.Tx) error {
		_, err := tx.(store.Inbox).PutInbox(&store.Message{})
		return err
	})
	s.Close()
	if err := b.Commit(); !errors.Is(err, ErrBatchDone) {
		t.Fatalf("Commit after Close: %v", err)
	}
	s = openT(t, path, alice)
	if inbox, _ := storetest.Inbox(s); len(inbox) != 0 {
		t.Fatalf("inbox: %d", len(inbox))
	}
}
