package memstore_test

import (
	"errors"
	"reflect"
	"testing"

	"hush.im/omemo"
	"hush.im/omemo/memstore"
	"mellium.im/xmpp/jid"
)

var (
	alice = jid.MustParse("alice@example.org")
	bob   = jid.MustParse("bob@example.net")
)

func list(ids ...uint32) *omemo.DeviceList {
	l := &omemo.DeviceList{}
	for _, id := range ids {
		l.Devices = append(l.Devices, omemo.Device{ID: id})
	}
	return l
}

func TestUpdateCommitsOrRollsBack(t *testing.T) {
	s := memstore.New()
	if err := s.Update(func(tx omemo.Tx) error {
		if err := tx.PutDeviceList(alice, list(1, 2)); err != nil {
			return err
		}
		return tx.PutTrust(alice, make([]byte, 32), omemo.TrustVerified)
	}); err != nil {
		t.Fatal(err)
	}
	before := s.Snapshot()

	boom := errors.New("boom")
	err := s.Update(func(tx omemo.Tx) error {
		tx.PutDeviceList(alice, list(3))
		tx.PutDeviceList(bob, list(4))
		tx.PutTrust(alice, make([]byte, 32), omemo.TrustDistrusted)
		// Reads inside the transaction see its own writes.
		l, err := tx.DeviceList(alice)
		if err != nil || !reflect.DeepEqual(l.IDs(), []uint32{3}) {
			t.Errorf("read own write: %v %v", l, err)
		}
		if lvl, _ := tx.Trust(alice, make([]byte, 32)); lvl != omemo.TrustDistrusted {
			t.Errorf("trust read own write: %v", lvl)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, s.Snapshot()) {
		t.Fatal("failed update changed the store")
	}

	func() {
		defer func() { recover() }()
		s.Update(func(tx omemo.Tx) error {
			tx.PutDeviceList(bob, list(5))
			panic("boom")
		})
	}()
	if !reflect.DeepEqual(before, s.Snapshot()) {
		t.Fatal("panicking update changed the store")
	}

	var leaked omemo.Tx
	s.Update(func(tx omemo.Tx) error {
		leaked = tx
		return tx.PutDeviceList(bob, list(6))
	})
	if _, err := leaked.DeviceList(bob); !errors.Is(err, memstore.ErrTxDone) {
		t.Fatalf("transaction usable after Update: %v", err)
	}
	s.View(func(tx omemo.Tx) error {
		l, err := tx.DeviceList(bob)
		if err != nil || l.IDs()[0] != 6 {
			t.Errorf("committed write: %v %v", l, err)
		}
		if err := tx.PutDeviceList(bob, list(7)); !errors.Is(err, memstore.ErrReadOnly) {
			t.Errorf("write in View: %v", err)
		}
		if _, err := tx.Session(omemo.Address{JID: bob, Device: 1}); !errors.Is(err, omemo.ErrNotFound) {
			t.Errorf("missing session: %v", err)
		}
		return nil
	})
}

// TestEmptiedBucketVanishes: deleting the last record of a bucket leaves
// the same snapshot as never writing it.
func TestEmptiedBucketVanishes(t *testing.T) {
	s := memstore.New()
	before := s.Snapshot()
	a := omemo.Address{JID: bob, Device: 9}
	b := &omemo.Bundle{SignedPreKeyID: 1, SignedPreKey: make([]byte, 32), SignedPreKeySignature: make([]byte, 64),
		IdentityKey: make([]byte, 32), PreKeys: []omemo.PreKey{{ID: 1, Key: make([]byte, 32)}}}
	if err := s.Update(func(tx omemo.Tx) error { return tx.PutBundle(a, b) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx omemo.Tx) error { return tx.DeleteBundle(a) }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, s.Snapshot()) {
		t.Fatal("store not back to empty")
	}
}

func TestManagerOnMemstore(t *testing.T) {
	s := memstore.New()
	m, err := omemo.New(alice, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.View(func(tx omemo.Tx) error {
		pks, err := tx.PreKeys()
		if err != nil || len(pks) != omemo.DefaultPreKeys {
			t.Fatalf("%d prekeys, %v", len(pks), err)
		}
		for i := 1; i < len(pks); i++ {
			if pks[i-1].ID() >= pks[i].ID() {
				t.Fatal("prekeys not ordered by id")
			}
		}
		id, err := tx.Identity()
		if err != nil || id.DeviceID() != m.DeviceID() {
			t.Fatal(err)
		}
		return nil
	})
}
