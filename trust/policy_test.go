package trust_test

import (
	"bytes"
	"errors"
	"testing"

	"hush.im/omemo"
	"hush.im/omemo/memstore"
	"hush.im/trust"
	"mellium.im/xmpp/jid"
)

var (
	alice = jid.MustParse("alice@example.org")
	bob   = jid.MustParse("bob@example.com")
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, trust.KeySize) }

func levels(l ...omemo.TrustLevel) trust.Levels {
	return trust.LevelsFunc(func(jid.JID) ([]omemo.TrustLevel, error) { return l, nil })
}

func TestPolicies(t *testing.T) {
	const (
		U = omemo.TrustUndecided
		T = omemo.TrustTrusted
		V = omemo.TrustVerified
		D = omemo.TrustDistrusted
	)
	failing := trust.LevelsFunc(func(jid.JID) ([]omemo.TrustLevel, error) { return nil, trust.ErrUnknownJID })
	for _, tc := range []struct {
		name       string
		level      omemo.TrustLevel
		others     trust.Levels
		btbv, tofu bool // BTBV, BTBV{Strict}
		manual     bool
	}{
		{"undecided, nothing verified", U, levels(U, T), true, true, false},
		{"undecided, no keys yet", U, levels(), true, true, false},
		{"undecided, one verified", U, levels(U, V), false, false, false},
		{"undecided, verified and distrusted", U, levels(D, V), false, false, false},
		{"undecided, only distrusted", U, levels(D), true, true, false},
		{"undecided, levels unknown", U, failing, false, false, false},
		{"undecided, no Levels", U, nil, false, false, false},
		{"trusted, nothing verified", T, levels(T), true, true, true},
		{"trusted, one verified", T, levels(T, V), true, false, true},
		{"trusted, levels unknown", T, failing, true, false, true},
		{"verified", V, levels(V), true, true, true},
		{"verified, levels unknown", V, failing, true, true, true},
		{"distrusted, nothing verified", D, levels(), false, false, false},
		{"distrusted, one verified", D, levels(V), false, false, false},
		{"unknown level", omemo.TrustLevel(9), levels(), false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := omemo.DeviceInfo{Address: omemo.Address{JID: bob, Device: 7}, IdentityKey: key(1), Trust: tc.level}
			if got := (trust.BTBV{Levels: tc.others}).Allow(d); got != tc.btbv {
				t.Errorf("BTBV.Allow = %v, want %v", got, tc.btbv)
			}
			if got := (trust.BTBV{Levels: tc.others, Strict: true}).Allow(d); got != tc.tofu {
				t.Errorf("BTBV{Strict}.Allow = %v, want %v", got, tc.tofu)
			}
			if got := (trust.Manual{}).Allow(d); got != tc.manual {
				t.Errorf("Manual.Allow = %v, want %v", got, tc.manual)
			}
			if got := (omemo.ManualTrust{}).Allow(d); got != tc.manual {
				t.Errorf("omemo.ManualTrust disagrees with Manual: %v", got)
			}
		})
	}
}

func TestBTBVAsksForTheDevicesJID(t *testing.T) {
	var asked jid.JID
	p := trust.BTBV{Levels: trust.LevelsFunc(func(j jid.JID) ([]omemo.TrustLevel, error) {
		asked = j
		return nil, nil
	})}
	p.Allow(omemo.DeviceInfo{Address: omemo.Address{JID: jid.MustParse("bob@example.com/phone"), Device: 1}})
	if !asked.Equal(bob) {
		t.Fatalf("BTBV asked for %v, want the bare %v", asked, bob)
	}
}

func TestIndex(t *testing.T) {
	ix := trust.NewIndex()
	if _, err := ix.Levels(bob); !errors.Is(err, trust.ErrUnknownJID) {
		t.Fatalf("Levels of an unseen JID: %v, want ErrUnknownJID", err)
	}
	ix.Observe(bob, nil)
	if l, err := ix.Levels(bob); err != nil || len(l) != 0 {
		t.Fatalf("Levels after an empty Observe = %v, %v", l, err)
	}
	ix.Observe(bob, []omemo.DeviceInfo{
		{Address: omemo.Address{JID: bob, Device: 1}, IdentityKey: key(1)},
		{Address: omemo.Address{JID: bob, Device: 2}, IdentityKey: key(2), Trust: omemo.TrustTrusted},
		{Address: omemo.Address{JID: bob, Device: 3}},                                                    // no key: skipped
		{Address: omemo.Address{JID: alice, Device: 4}, IdentityKey: key(4), Trust: omemo.TrustVerified}, // other JID: skipped
	})
	p := trust.BTBV{Levels: ix}
	undecided := omemo.DeviceInfo{Address: omemo.Address{JID: bob, Device: 5}, IdentityKey: key(5)}
	if !p.Allow(undecided) {
		t.Fatal("BTBV refused an undecided key before any verification")
	}
	ix.Record(jid.MustParse("bob@example.com/laptop"), key(1), omemo.TrustVerified)
	if p.Allow(undecided) {
		t.Fatal("BTBV allowed an undecided key after a verification")
	}
	// A later Observe that no longer lists the verified device keeps it.
	ix.Observe(bob, []omemo.DeviceInfo{{Address: omemo.Address{JID: bob, Device: 2}, IdentityKey: key(2)}})
	if p.Allow(undecided) {
		t.Fatal("BTBV forgot the verification when the device left the list")
	}
	if l, _ := ix.Levels(bob); len(l) != 2 {
		t.Fatalf("Levels = %v, want two keys", l)
	}
	ix.Forget(bob)
	if p.Allow(undecided) {
		t.Fatal("BTBV allowed an undecided key of a forgotten JID")
	}
	// Authenticated once, the verified key distrusted since: no blind
	// trust (XEP-0450 §6.2).
	ix.Observe(bob, []omemo.DeviceInfo{{Address: omemo.Address{JID: bob, Device: 1}, IdentityKey: key(1), Trust: omemo.TrustDistrusted}})
	if !p.Allow(undecided) {
		t.Fatal("BTBV refused an undecided key of a JID never authenticated")
	}
	ix.MarkAuthenticated(bob)
	if p.Allow(undecided) {
		t.Fatal("BTBV trusted blindly again after the authenticated key was distrusted")
	}
}

// TestBTBVWithManager runs the policy inside a real omemo.Manager: the
// Index is read from within the engine's store transaction, so this also
// shows that it does not deadlock.
func TestBTBVWithManager(t *testing.T) {
	ix := trust.NewIndex()
	a, err := omemo.New(alice, memstore.New(), &omemo.Options{Trust: trust.BTBV{Levels: ix}})
	if err != nil {
		t.Fatal(err)
	}
	var bobList *omemo.DeviceList
	var bobs []*omemo.Manager
	addBob := func() *omemo.Manager {
		m, err := omemo.New(bob, memstore.New(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if bobList, _, err = m.AnnounceDevice(bobList); err != nil {
			t.Fatal(err)
		}
		if _, err := a.SetDeviceList(bob, bobList); err != nil {
			t.Fatal(err)
		}
		b, err := m.Bundle()
		if err != nil {
			t.Fatal(err)
		}
		if err := a.SetBundle(m.Address(), b); err != nil {
			t.Fatal(err)
		}
		bobs = append(bobs, m)
		return m
	}
	observe := func() {
		for _, j := range []jid.JID{alice, bob} {
			devs, err := a.Devices(j)
			if err != nil {
				t.Fatal(err)
			}
			ix.Observe(j, devs)
		}
	}
	sent := func() map[uint32]omemo.Reason {
		_, rep, err := a.Encrypt([]byte("<envelope xmlns='urn:xmpp:sce:1'><content/></envelope>"), bob)
		var none *omemo.NoEligibleDevicesError
		if errors.As(err, &none) {
			rep = none.Report
		} else if err != nil {
			t.Fatal(err)
		}
		out := map[uint32]omemo.Reason{}
		for _, d := range rep.Devices {
			if d.JID.Equal(bob) {
				out[d.DeviceID] = d.Reason
			}
		}
		return out
	}

	b1, b2 := addBob(), addBob()
	observe()
	got := sent()
	if got[b1.DeviceID()] != omemo.ReasonNone || got[b2.DeviceID()] != omemo.ReasonNone {
		t.Fatalf("before verification: %v, want both devices blindly trusted", got)
	}

	if err := a.SetTrust(bob, b1.IdentityKey(), omemo.TrustVerified); err != nil {
		t.Fatal(err)
	}
	ix.Record(bob, b1.IdentityKey(), omemo.TrustVerified)
	b3 := addBob()
	observe()
	got = sent()
	if got[b1.DeviceID()] != omemo.ReasonNone {
		t.Errorf("verified device: %v, want sent", got[b1.DeviceID()])
	}
	for _, m := range []*omemo.Manager{b2, b3} {
		if got[m.DeviceID()] != omemo.ReasonUntrusted {
			t.Errorf("device %d after verification: reason %v, want ReasonUntrusted", m.DeviceID(), got[m.DeviceID()])
		}
	}
}
