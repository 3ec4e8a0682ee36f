package bolt

import (
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
	"hush.im/omemo"
	"hush.im/store/internal/storetest"
	"hush.im/store/kv"
	"mellium.im/xmpp/jid"
)

var genSchema1 = flag.Bool("gen-schema1", false, "regenerate testdata/schema1-* and exit (go test ./store/bolt -args -gen-schema1)")

// writeSchema1 writes the contents of a memory store as a schema 1 file:
// kv's buckets with unsealed values, the meta bucket with the sealed
// schema record and the magic and account unsealed.
func writeSchema1(path string, account jid.JID, contents map[string]map[string][]byte) error {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucket([]byte("hush"))
		if err != nil {
			return err
		}
		v := binary.BigEndian.AppendUint32(nil, 1)
		v = binary.BigEndian.AppendUint32(v, checksum("hush", []byte("schema"), v))
		for k, v := range map[string][]byte{"schema": v, "magic": []byte("hush.im/store/bolt"), "account": []byte(account.String())} {
			if err := meta.Put([]byte(k), v); err != nil {
				return err
			}
		}
		for name, kvs := range contents {
			b, err := tx.CreateBucket([]byte(name))
			if err != nil {
				return err
			}
			for k, v := range kvs {
				if err := b.Put([]byte(k), v); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}

// generateSchema1 writes testdata/schema1-{alice,bob}.hush: two devices
// that have exchanged messages, and testdata/schema1-pending.xml, a
// message from alice that bob has not decrypted yet.
func generateSchema1() error {
	pep := storetest.NewPEP()
	ma, mb := kv.NewMemory(), kv.NewMemory()
	da, err := storetest.Join(pep, alice.String(), ma, nil)
	if err != nil {
		return err
	}
	db, err := storetest.Join(pep, bob.String(), mb, nil)
	if err != nil {
		return err
	}
	for i := range 4 {
		from, to := da, db
		if i%2 == 1 {
			from, to = db, da
		}
		e, err := from.Send(fmt.Appendf(nil, "<envelope>%d</envelope>", i), to.JID)
		if err != nil {
			return err
		}
		if _, err := to.M.Decrypt(from.JID, e); err != nil {
			return err
		}
	}
	e, err := da.Send([]byte("<envelope>pending</envelope>"), bob)
	if err != nil {
		return err
	}
	x, err := xml.Marshal(e)
	if err != nil {
		return err
	}
	if err := os.WriteFile("testdata/schema1-pending.xml", x, 0o644); err != nil {
		return err
	}
	for _, d := range []struct {
		j jid.JID
		m *kv.Memory
	}{{alice, ma}, {bob, mb}} {
		contents := d.m.Snapshot()
		for name := range contents {
			if !slices.Contains([]string{"identity", "prekeys", "signed-prekeys", "sessions", "replay", "device-lists", "bundles", "trust", "pending"}, name) {
				return fmt.Errorf("bucket %s is not in schema 1", name)
			}
		}
		path := fmt.Sprintf("testdata/schema1-%s.hush", d.j.Localpart())
		os.Remove(path)
		if err := writeSchema1(path, d.j, contents); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSchema1 opens stores written in schema 1 (testdata, made by
// generateSchema1): they are migrated, and the sessions in them go on.
func TestSchema1(t *testing.T) {
	dir := t.TempDir()
	pa, pb := Path(dir, alice), Path(dir, bob)
	copyFile(t, "testdata/schema1-alice.hush", pa)
	copyFile(t, "testdata/schema1-bob.hush", pb)
	sa, sb := openT(t, pa, alice), openT(t, pb, bob)
	for _, s := range []*Store{sa, sb} {
		s.db.View(func(tx *bbolt.Tx) error {
			if v, err := readSchema(s.path, tx); err != nil || v != SchemaVersion {
				t.Fatalf("schema after migration: %d %v", v, err)
			}
			return nil
		})
	}
	pep := storetest.NewPEP()
	da, err := storetest.Join(pep, alice.String(), sa, nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := storetest.Join(pep, bob.String(), sb, nil)
	if err != nil {
		t.Fatal(err)
	}
	x, err := os.ReadFile("testdata/schema1-pending.xml")
	if err != nil {
		t.Fatal(err)
	}
	var e omemo.Encrypted
	if err := xml.Unmarshal(x, &e); err != nil {
		t.Fatal(err)
	}
	got, _, err := db.Receive(alice, &e, storetest.OriginID(alice, "pending"))
	if err != nil || string(got.Envelope) != "<envelope>pending</envelope>" || got.NewSession {
		t.Fatalf("message encrypted before the migration: %v %v", got, err)
	}
	for i := range 4 {
		from, to := db, da
		if i%2 == 1 {
			from, to = da, db
		}
		e, rep, err := from.M.Encrypt(fmt.Appendf(nil, "<envelope>after %d</envelope>", i), to.JID)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range rep.Devices {
			if d.NewSession {
				t.Fatalf("migrated session not used: %+v", d)
			}
		}
		if _, _, err := to.Receive(from.JID, e, storetest.OriginID(from.JID, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	// The migrated files verify on the next open (seals and sums).
	sa.Close()
	sb.Close()
	sb = openT(t, pb, bob)
	msgs, err := storetest.Inbox(sb)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("inbox after migration: %d messages, %v", len(msgs), err)
	}
}

// TestSchema1Damaged: a schema 1 file is verified structurally too.
func TestSchema1Damaged(t *testing.T) {
	data, err := os.ReadFile("testdata/schema1-bob.hush")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bob.hush")
	ps, pages := hwm(data)
	if err := os.WriteFile(path, data[:pages*ps-1], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, bob, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated schema 1 file: %v", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(after, data[:pages*ps-1]) {
		t.Fatal("damaged file was modified")
	}
}
