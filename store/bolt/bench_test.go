package bolt

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	bbolt "go.etcd.io/bbolt"
	"hush.im/omemo"
	"hush.im/store"
	"hush.im/store/internal/storetest"
	"hush.im/store/kv"
	"mellium.im/xmpp/jid"
)

// Benchmarks report rates (…/s) so that they read as ratios to the floor,
// BenchmarkFsync: the bare write+fsync rate of the same disk (the
// benchmark's temporary directory), measured in the same run.

func perSecond(b *testing.B, unit string) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
}

// BenchmarkFsync is the floor: one 4 KiB page written and synced.
func BenchmarkFsync(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "floor"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	page := make([]byte, 4096)
	for b.Loop() {
		if _, err := f.WriteAt(page, 0); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	perSecond(b, "fsyncs/s")
}

// BenchmarkUpdate: durable single Updates, each putting one small message
// in the inbox.
func BenchmarkUpdate(b *testing.B) {
	s := openT(b, filepath.Join(b.TempDir(), "a.hush"), alice)
	i := 0
	for b.Loop() {
		i++
		err := s.Update(func(tx omemo.Tx) error {
			_, err := tx.(store.Inbox).PutInbox(&store.Message{IDs: []store.MessageID{mamID(i)}, Payload: []byte("x")})
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	perSecond(b, "updates/s")
}

// decryptBench decrypts b.N messages from alice (encrypted beforehand),
// each with its inbox entry, in a store made by open; batch > 0 groups
// that many decrypts per commit.
func decryptBench(b *testing.B, st omemo.Store, batch int) {
	pep := storetest.NewPEP()
	da, err := storetest.Join(pep, alice.String(), kv.NewMemory(), nil)
	if err != nil {
		b.Fatal(err)
	}
	db, err := storetest.Join(pep, bob.String(), st, nil)
	if err != nil {
		b.Fatal(err)
	}
	// Open the session, so that the loop measures ordinary messages.
	e, err := da.Send([]byte("<envelope>hi</envelope>"), bob)
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := db.Receive(alice, e); err != nil {
		b.Fatal(err)
	}
	e, err = db.Send([]byte("<envelope>hi</envelope>"), alice)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := da.M.Decrypt(bob, e); err != nil {
		b.Fatal(err)
	}
	msgs := make([]*omemo.Encrypted, b.N)
	for i := range msgs {
		if msgs[i], _, err = da.M.Encrypt(fmt.Appendf(nil, "<envelope>message %d</envelope>", i), bob); err != nil {
			b.Fatal(err)
		}
	}
	bs, _ := st.(*Store)
	var open *Batch
	b.ResetTimer()
	for i, e := range msgs {
		if batch > 0 && open == nil {
			if open, err = bs.BeginBatch(); err != nil {
				b.Fatal(err)
			}
		}
		if _, _, err := db.Receive(alice, e, mamID(i)); err != nil {
			b.Fatal(err)
		}
		if open != nil && (open.n == batch || i == len(msgs)-1) {
			if err := open.Commit(); err != nil {
				b.Fatal(err)
			}
			open = nil
		}
	}
	b.StopTimer()
	perSecond(b, "decrypts/s")
}

// BenchmarkDecryptMemory is the floor of the decrypt benchmarks: the
// same decrypts with the in-memory store (crypto and encoding only).
func BenchmarkDecryptMemory(b *testing.B) { decryptBench(b, kv.NewMemory(), 0) }

// BenchmarkDecrypt: durable decrypts one at a time.
func BenchmarkDecrypt(b *testing.B) {
	decryptBench(b, openT(b, filepath.Join(b.TempDir(), "b.hush"), bob), 0)
}

// BenchmarkDecryptBatch: durable decrypts in batches of 500 (archive
// catch-up, one commit per page of results).
func BenchmarkDecryptBatch(b *testing.B) {
	decryptBench(b, openT(b, filepath.Join(b.TempDir(), "b.hush"), bob), 500)
}

// withAddress rewrites the address at the start of a serialized session
// record (version, JID, device: see omemo.SessionRecord.MarshalBinary).
func withAddress(rec []byte, j jid.JID, device uint32) []byte {
	n, l := binary.Uvarint(rec[1:])
	rest := rec[1+l+int(n):]
	_, l = binary.Uvarint(rest)
	rest = rest[l:]
	out := []byte{rec[0]}
	out = binary.AppendUvarint(out, uint64(len(j.String())))
	out = append(out, j.String()...)
	out = binary.AppendUvarint(out, uint64(device))
	return append(out, rest...)
}

// sessionsStore writes a store holding n sessions (copies of a real one
// under n addresses) and returns its path.
func sessionsStore(b *testing.B, n int) string { return sessionsStoreT(b, n) }

func sessionsStoreT(b testing.TB, n int) string {
	dir := b.TempDir()
	pep := storetest.NewPEP()
	da, err := storetest.Join(pep, alice.String(), kv.NewMemory(), nil)
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, "b.hush")
	s := openT(b, path, bob)
	db, err := storetest.Join(pep, bob.String(), s, nil)
	if err != nil {
		b.Fatal(err)
	}
	e, err := da.Send([]byte("<envelope>hi</envelope>"), bob)
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := db.Receive(alice, e); err != nil {
		b.Fatal(err)
	}
	var rec []byte
	s.View(func(tx omemo.Tx) error {
		r, err := tx.Session(omemo.Address{JID: alice, Device: da.M.DeviceID()})
		if err != nil {
			b.Fatal(err)
		}
		rec, err = r.MarshalBinary()
		return err
	})
	const perTx = 1000
	for start := 0; start < n; start += perTx {
		err := s.db.Update(func(btx *bbolt.Tx) error {
			w := txn{tx: btx, path: path, sums: sums{}}
			for i := start; i < min(n, start+perTx); i++ {
				j := jid.MustParse(fmt.Sprintf("contact%d@example.com", i))
				v := withAddress(rec, j, uint32(i+1))
				key := binary.AppendUvarint(nil, uint64(len(j.String())))
				key = binary.BigEndian.AppendUint32(append(key, j.String()...), uint32(i+1))
				if err := w.Put("sessions", key, v); err != nil {
					return err
				}
			}
			return w.sums.flush(path, btx)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	// Check that the copies are real records.
	s.View(func(tx omemo.Tx) error {
		r, err := tx.Session(omemo.Address{JID: jid.MustParse("contact7@example.com"), Device: 8})
		if err != nil || r.Address().Device != 8 {
			b.Fatalf("copied session: %v", err)
		}
		return nil
	})
	s.Close()
	return path
}

// BenchmarkOpen10kSessions: Open (with full verification) and Close of a
// store holding 10,000 sessions. Target: under 100 ms.
func BenchmarkOpen10kSessions(b *testing.B) {
	path := sessionsStore(b, 10000)
	fi, _ := os.Stat(path)
	b.ResetTimer()
	for b.Loop() {
		s, err := Open(path, bob, nil)
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
	b.ReportMetric(float64(fi.Size())/(1<<20), "MiB")
}
