package bolt

import (
	"fmt"

	bbolt "go.etcd.io/bbolt"
	"hush.im/omemo"
	"hush.im/store/kv"
)

// Batch is an open group commit: between BeginBatch and Commit every
// Update of the Store (from any goroutine) runs inside one bbolt
// transaction, and Commit makes all of them durable with one sync. Each
// Update still succeeds or fails on its own: a failed Update leaves the
// batch as it was.
//
// Until Commit returns nil nothing done in the batch is durable: a crash
// or a failed Commit loses all of it, as if none of those Updates had
// happened. So while a batch is open, nothing those Updates produced may
// leave the process — no message encrypted in the batch may be sent, no
// decrypted message shown or acknowledged to the server, no archive
// position advanced except in the same batch, and no bundle published:
// Views (omemo.Manager.Bundle) see the batch, whose new prekeys would be
// generated again, with other keys, after a crash. This fits archive
// catch-up (XEP-0313): decrypt a page of results (and record the page's
// position) in a batch, Commit, then show the messages and fetch the next
// page; after a crash the page is fetched and decrypted again.
type Batch struct {
	s    *Store
	tx   *bbolt.Tx
	sums sums
	n    int
	err  error // set when applying an Update failed half-way
	done bool
}

// BeginBatch opens a batch. It fails with ErrBatchOpen while another one
// is open.
func (s *Store) BeginBatch() (*Batch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return nil, err
	}
	if s.batch != nil {
		return nil, ErrBatchOpen
	}
	tx, err := s.db.Begin(true)
	if err != nil {
		return nil, fmt.Errorf("bolt: %w", err)
	}
	s.batch = &Batch{s: s, tx: tx, sums: sums{}}
	return s.batch, nil
}

// update runs one Update inside the batch, with s.mu held.
func (b *Batch) update(fn func(omemo.Tx) error) error {
	if b.err != nil {
		return b.err
	}
	t := kv.NewTx(txn{tx: b.tx, path: b.s.path, sums: b.sums}, true)
	defer t.Close()
	if err := fn(t); err != nil {
		return err
	}
	if err := t.Commit(); err != nil {
		// Part of this Update may be in the bbolt transaction: the
		// whole batch is lost.
		b.err = fmt.Errorf("bolt: batch failed, roll it back: %w", err)
		return b.err
	}
	b.n++
	return nil
}

// Len returns the number of Updates in the batch so far.
func (b *Batch) Len() int {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	return b.n
}

// Commit ends the batch and commits it durably. If it fails, nothing of
// the batch is stored.
func (b *Batch) Commit() error {
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.done {
		return ErrBatchDone
	}
	b.done = true
	s.batch = nil
	if b.err == nil {
		b.err = b.sums.flush(s.path, b.tx)
	}
	if b.err != nil {
		b.tx.Rollback()
		return b.err
	}
	if err := s.commit(b.tx); err != nil {
		return s.commitFailed(err)
	}
	return nil
}

// Rollback ends the batch, discarding everything done in it. After Commit
// it does nothing, so it can be deferred.
func (b *Batch) Rollback() {
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.done {
		return
	}
	b.done = true
	s.batch = nil
	b.tx.Rollback()
}
