package omemo

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"hush.im/internal/ratchet"
	"hush.im/omemo/legacy"
	"mellium.im/xmpp/jid"
)

type record interface {
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
}

// sampleRecords returns one populated record of every kind, serialized.
func sampleRecords(t testing.TB) map[string][]byte {
	id, err := newIdentity(nil)
	if err != nil {
		t.Fatal(err)
	}
	id.label = "phone"
	if id.labelSig, err = signLabel(id.key, id.label); err != nil {
		t.Fatal(err)
	}
	spk, err := newSignedPreKey(id, time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	spk.retired = time.Unix(1700600000, 0)
	priv, _ := ecdh.X25519().GenerateKey(rand.Reader)
	pk := &PreKeyRecord{id: 7, priv: priv.Bytes(), pub: priv.PublicKey().Bytes(), hidden: true, usedBy: [][]byte{bytes.Repeat([]byte{1}, 32)}}
	peer, _ := ecdh.X25519().GenerateKey(rand.Reader)
	r, err := ratchet.NewInitiator(ratchet.OMEMO2, bytes.Repeat([]byte{2}, 32), bytes.Repeat([]byte{3}, 64), peer.PublicKey().Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Encrypt([]byte("x")); err != nil {
		t.Fatal(err)
	}
	a := Address{JID: jid.MustParse("bob@example.net"), Device: 42}
	sess := &SessionRecord{addr: a, sessionState: sessionState{identityKey: id.IdentityKey(), initiator: true, pkID: 3, spkID: 1,
		ek: peer.PublicKey().Bytes(), ratchet: r, heartbeat: peer.PublicKey().Bytes()}}
	sess.replace(sessionState{identityKey: id.IdentityKey(), pkID: 9, spkID: 2, ek: peer.PublicKey().Bytes(), ratchet: r.Clone()})
	log := &ReplayLog{addr: a}
	log.add([16]byte{1}, time.Unix(1700000000, 0))
	log.add([16]byte{2}, time.Unix(1700000100, 0))
	pending := &PendingRecord{}
	pending.add(a, ProtocolOMEMO2)
	pending.add(Address{JID: jid.MustParse("carol@example.com"), Device: 1}, ProtocolOMEMO2)
	pending.add(Address{JID: jid.MustParse("dave@example.com"), Device: 2}, ProtocolLegacy)

	// Version 1 records, written before legacy OMEMO: a signed prekey
	// without its legacy signature, pending without legacy devices.
	spk1 := spk.Clone()
	spk1.legacySig = nil
	pending1 := &PendingRecord{Devices: pending.Devices}
	// A legacy session with a previous state.
	lsess := sampleLegacySession(t, id, a)

	// A device list: one device with a signed label, one bare.
	devices := &DeviceList{Devices: []Device{{ID: 42, Label: id.label, LabelSig: id.labelSig}, {ID: MaxDeviceID}}}

	out := map[string][]byte{}
	for name, rec := range map[string]record{"identity": id, "prekey": pk, "spk": spk, "session": sess, "replay": log, "pending": pending,
		"1spk": spk1, "1pending": pending1, "legacy session": lsess, "device list": devices} {
		b, err := rec.MarshalBinary()
		if err != nil {
			t.Fatal(name, err)
		}
		out[name] = b
	}
	return out
}

func newRecord(name string) record {
	switch name {
	case "identity":
		return new(IdentityRecord)
	case "prekey":
		return new(PreKeyRecord)
	case "spk":
		return new(SignedPreKeyRecord)
	case "session":
		return new(SessionRecord)
	case "replay":
		return new(ReplayLog)
	case "pending", "1pending":
		return new(PendingRecord)
	case "1spk":
		return new(SignedPreKeyRecord)
	case "legacy session":
		return new(LegacySessionRecord)
	case "device list":
		return new(DeviceList)
	}
	panic(name)
}

// sampleLegacySession returns a legacy session record with a device
// whose identity is id, with one previous state.
func sampleLegacySession(t testing.TB, id *IdentityRecord, a Address) *LegacySessionRecord {
	peer, err := newIdentity(nil)
	if err != nil {
		t.Fatal(err)
	}
	spk, err := newSignedPreKey(peer, time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := ecdh.X25519().GenerateKey(rand.Reader)
	b := &legacy.Bundle{SignedPreKeyID: spk.id, SignedPreKey: spk.pub, SignedPreKeySignature: spk.legacySig,
		IdentityKey: peer.key.Curve25519Public(), PreKeys: []legacy.PreKey{{ID: 5, Key: pk.PublicKey().Bytes()}}}
	var states []legacyState
	for range 2 {
		s, err := legacy.Initiate(id.key, b, 5)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Encrypt(make([]byte, legacy.KeyMaterialSize)); err != nil {
			t.Fatal(err)
		}
		states = append(states, legacyState{identityKey: peer.IdentityKey(), session: s, heartbeat: pk.PublicKey().Bytes()})
	}
	r := &LegacySessionRecord{addr: a, legacyState: states[0]}
	r.replace(states[1])
	return r
}

// TestRecordVersions: version 1 records (before legacy OMEMO) still
// decode, to the same values, and are upgraded by New.
func TestRecordVersions(t *testing.T) {
	recs := sampleRecords(t)
	if recs["1spk"][0] != 1 || recs["spk"][0] != 2 || recs["1pending"][0] != 1 || recs["pending"][0] != 2 {
		t.Fatal("versions")
	}
	var v1, v2 SignedPreKeyRecord
	if err := v1.UnmarshalBinary(recs["1spk"]); err != nil || v1.legacySig != nil {
		t.Fatal(err)
	}
	if err := v2.UnmarshalBinary(recs["spk"]); err != nil || v2.legacySig == nil {
		t.Fatal(err)
	}
	if v1.id != v2.id || !bytes.Equal(v1.priv, v2.priv) || !bytes.Equal(v1.sig, v2.sig) || !v1.created.Equal(v2.created) || !v1.retired.Equal(v2.retired) {
		t.Fatal("version 1 decodes to other values")
	}
	// Version 2 without legacy devices is not canonical.
	var p PendingRecord
	bad := append([]byte{2}, recs["1pending"][1:]...)
	if err := p.UnmarshalBinary(append(bad, 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("pending v2 with no legacy device: %v", err)
	}
	// A version 1 replay log (before the time of the last message).
	w := recWriter{b: []byte{1}}
	w.string("bob@example.net")
	w.uint(42)
	w.uint(2)
	w.b = append(w.b, bytes.Repeat([]byte{7}, 2*replayDigestSize)...)
	var rl ReplayLog
	if err := rl.UnmarshalBinary(w.b); err != nil || len(rl.digests) != 2 || !rl.Last().IsZero() || rl.addr.Device != 42 {
		t.Fatalf("replay log v1: %+v %v", rl, err)
	}
	if b, _ := rl.MarshalBinary(); b[0] != replayLogVersion {
		t.Fatal("replay log not written in its newest version")
	}
	// A time past year 9999 is out of range.
	w = recWriter{b: []byte{replayLogVersion}}
	w.string("bob@example.net")
	w.uint(42)
	w.uint(maxStoredUnix + 1)
	w.uint(0)
	if err := new(ReplayLog).UnmarshalBinary(w.b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("replay log time out of range: %v", err)
	}
	// A legacy session whose two identity key forms disagree.
	var ls LegacySessionRecord
	if err := ls.UnmarshalBinary(recs["legacy session"]); err != nil {
		t.Fatal(err)
	}
	ls.identityKey = bytes.Clone(ls.identityKey)
	ls.identityKey[0] ^= 1
	b, _ := ls.MarshalBinary()
	if err := new(LegacySessionRecord).UnmarshalBinary(b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("mismatched identity forms: %v", err)
	}
}

func TestRecordsRoundTrip(t *testing.T) {
	for name, b := range sampleRecords(t) {
		rec := newRecord(name)
		if err := rec.UnmarshalBinary(b); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		again, err := rec.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("%s: re-encoding differs (%v)", name, err)
		}
		// Every truncation and every trailing byte is an error, never a
		// panic.
		for i := range b {
			if err := newRecord(name).UnmarshalBinary(b[:i]); err == nil {
				t.Fatalf("%s: truncated to %d bytes accepted", name, i)
			}
		}
		if err := newRecord(name).UnmarshalBinary(append(bytes.Clone(b), 0)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: trailing byte: %v", name, err)
		}
		bad := bytes.Clone(b)
		bad[0] = 99
		if err := newRecord(name).UnmarshalBinary(bad); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: unknown version: %v", name, err)
		}
	}
}

// TestDeviceListRecord: lists stored in their XML form (before the binary
// one) still decode; the binary form is checked like a published list.
func TestDeviceListRecord(t *testing.T) {
	want := &DeviceList{Devices: []Device{{ID: 7, Label: "phone"}, {ID: 9}}}
	old := []byte(`<devices xmlns="urn:xmpp:omemo:2"><device id="7" label="phone"/><device id="9"/></devices>`)
	var got DeviceList
	if err := got.UnmarshalBinary(old); err != nil || !slices.EqualFunc(got.Devices, want.Devices, func(a, b Device) bool {
		return a.ID == b.ID && a.Label == b.Label && bytes.Equal(a.LabelSig, b.LabelSig)
	}) {
		t.Fatalf("XML form: %+v, %v", got, err)
	}
	for name, l := range map[string]*DeviceList{
		"device id 0":     {Devices: []Device{{ID: 0}}},
		"device id 2^31":  {Devices: []Device{{ID: MaxDeviceID + 1}}},
		"duplicate":       {Devices: []Device{{ID: 5}, {ID: 5}}},
		"label too long":  {Devices: []Device{{ID: 5, Label: strings.Repeat("x", MaxLabelSize+1)}}},
		"short labelsig":  {Devices: []Device{{ID: 5, Label: "x", LabelSig: []byte{1, 2}}}},
		"label not UTF-8": {Devices: []Device{{ID: 5, Label: "a\xffb"}}},
	} {
		b, err := l.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if err := new(DeviceList).UnmarshalBinary(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	tooMany := &DeviceList{Devices: make([]Device, MaxDevices+1)}
	if _, err := tooMany.MarshalBinary(); !errors.Is(err, ErrMalformed) {
		t.Errorf("more than MaxDevices: %v", err)
	}
}

func TestReplayLogBounded(t *testing.T) {
	l := &ReplayLog{addr: Address{JID: jid.MustParse("a@b"), Device: 1}}
	d := func(i int) [16]byte { return [16]byte{byte(i), byte(i >> 8)} }
	for i := range MaxReplayRecords + 10 {
		l.add(d(i), time.Unix(1700000000, 0))
	}
	if len(l.digests) != MaxReplayRecords || l.contains(d(9)) || !l.contains(d(10)) || !l.contains(d(MaxReplayRecords+9)) {
		t.Fatalf("log has %d entries", len(l.digests))
	}
}

// fuzzKinds maps record kinds to FuzzRecords' kind byte (the seeds in
// testdata/fuzz use i, p, s, r, P and anything else for a session).
var fuzzKinds = map[string]byte{"identity": 'i', "prekey": 'p', "spk": 's', "1spk": 's', "replay": 'r',
	"pending": 'P', "1pending": 'P', "session": 'S', "legacy session": 'l', "device list": 'd'}

func FuzzRecords(f *testing.F) {
	for name, b := range sampleRecords(f) {
		f.Add(fuzzKinds[name], b)
	}
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		name := "session"
		for n, k := range fuzzKinds {
			if k == kind && n[0] != '1' {
				name = n
			}
		}
		rec := newRecord(name)
		if err := rec.UnmarshalBinary(data); err != nil {
			return
		}
		out, err := rec.MarshalBinary()
		if err != nil {
			t.Fatalf("%s: marshal of parsed record: %v", name, err)
		}
		if name == "session" || name == "legacy session" {
			return
		}
		if out[0] != data[0] {
			// An older version is written in the newest one, which is
			// canonical in turn.
			again := newRecord(name)
			if err := again.UnmarshalBinary(out); err != nil {
				t.Fatalf("%s: upgraded record does not decode: %v", name, err)
			}
			if b, _ := again.MarshalBinary(); !bytes.Equal(b, out) {
				t.Fatalf("%s: upgraded record not canonical", name)
			}
			return
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("%s: not canonical", name)
		}
	})
}

func TestPayloadRoundTrip(t *testing.T) {
	for _, n := range []int{1, 15, 16, 17, 1000} {
		pt := bytes.Repeat([]byte{'x'}, n)
		ct, mat, err := sealPayload(pt)
		if err != nil || len(mat) != keyMaterialSize || len(ct)%16 != 0 || len(ct) <= n {
			t.Fatalf("seal: %v", err)
		}
		got, err := openPayload(ct, mat)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("open: %v", err)
		}
		for i := range mat {
			bad := bytes.Clone(mat)
			bad[i] ^= 1
			if _, err := openPayload(ct, bad); err == nil {
				t.Fatalf("flipped material byte %d accepted", i)
			}
		}
	}
}

func TestUnpad(t *testing.T) {
	for _, tc := range []struct {
		last []byte
		n    int
		ok   bool
	}{
		{[]byte{1}, 15, true},
		{bytes.Repeat([]byte{16}, 16), 0, true},
		{[]byte{0}, 0, false},
		{[]byte{17}, 0, false},
		{[]byte{3, 2, 3}, 0, false},
		{[]byte{3, 3, 3}, 13, true},
	} {
		b := make([]byte, 16)
		copy(b[16-len(tc.last):], tc.last)
		n, ok := unpad(b)
		if ok != tc.ok || (ok && n != tc.n) {
			t.Errorf("unpad(%x) = %d, %v", b, n, ok)
		}
	}
}
