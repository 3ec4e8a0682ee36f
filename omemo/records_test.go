package omemo

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"hush.im/internal/ratchet"
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
	log.add([16]byte{1})
	log.add([16]byte{2})
	pending := &PendingRecord{}
	pending.add(a)
	pending.add(Address{JID: jid.MustParse("carol@example.com"), Device: 1})

	out := map[string][]byte{}
	for name, rec := range map[string]record{"identity": id, "prekey": pk, "spk": spk, "session": sess, "replay": log, "pending": pending} {
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
	case "pending":
		return new(PendingRecord)
	}
	panic(name)
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

func TestReplayLogBounded(t *testing.T) {
	l := &ReplayLog{addr: Address{JID: jid.MustParse("a@b"), Device: 1}}
	d := func(i int) [16]byte { return [16]byte{byte(i), byte(i >> 8)} }
	for i := range MaxReplayRecords + 10 {
		l.add(d(i))
	}
	if len(l.digests) != MaxReplayRecords || l.contains(d(9)) || !l.contains(d(10)) || !l.contains(d(MaxReplayRecords+9)) {
		t.Fatalf("log has %d entries", len(l.digests))
	}
}

func FuzzRecords(f *testing.F) {
	for name, b := range sampleRecords(f) {
		f.Add(name[0], b)
	}
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		var name string
		switch kind {
		case 'i':
			name = "identity"
		case 'p':
			name = "prekey"
		case 's':
			name = "spk"
		case 'r':
			name = "replay"
		default:
			name = "session"
		}
		if kind == 'P' {
			name = "pending"
		}
		rec := newRecord(name)
		if err := rec.UnmarshalBinary(data); err != nil {
			return
		}
		out, err := rec.MarshalBinary()
		if err != nil {
			t.Fatalf("%s: marshal of parsed record: %v", name, err)
		}
		if name != "session" && !bytes.Equal(out, data) {
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
