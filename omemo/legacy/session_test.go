package legacy

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"hush.im/internal/ratchet"
	"hush.im/internal/wire"
	"hush.im/internal/xeddsa"
)

func mustDecrypt(t *testing.T, d *device, msg []byte, wantBody string) *decrypted {
	t.Helper()
	out, err := d.decrypt(msg)
	if err != nil {
		t.Fatalf("device %d: decrypt: %v", d.id, err)
	}
	if string(out.body) != wantBody {
		t.Fatalf("device %d: body %q, want %q", d.id, out.body, wantBody)
	}
	return out
}

func preKeyFlag(t *testing.T, msg []byte, rid uint32) bool {
	t.Helper()
	var e Encrypted
	if err := xml.Unmarshal(msg, &e); err != nil {
		t.Fatal(err)
	}
	ks := e.KeysFor(rid)
	if len(ks) != 1 {
		t.Fatalf("%d keys for %d", len(ks), rid)
	}
	return ks[0].PreKey
}

// roundTrip replaces every session of d by its serialized copy.
func roundTrip(t *testing.T, d *device) {
	t.Helper()
	for id, s := range d.sessions {
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var c Session
		if err := c.UnmarshalBinary(b); err != nil {
			t.Fatalf("UnmarshalBinary: %v", err)
		}
		b2, err := c.MarshalBinary()
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("MarshalBinary after UnmarshalBinary differs (%v)", err)
		}
		d.sessions[id] = &c
	}
}

// TestConversation runs a Go↔Go conversation through the XML elements:
// the initiator repeats its key exchange until answered, messages arrive
// out of order, the ratchet turns, sessions are stored and loaded between
// steps.
func TestConversation(t *testing.T) {
	alice, bob := newDevice(t, 1001), newDevice(t, 2002)
	toBob := map[uint32]*Bundle{bob.id: bob.bundle()}
	toAlice := map[uint32]*Bundle{alice.id: nil}

	// Three messages before Bob answers: all key exchanges.
	var first [][]byte
	for i := range 3 {
		m := alice.encrypt(t, []byte("kex "+strconv.Itoa(i)), toBob)
		if !preKeyFlag(t, m, bob.id) {
			t.Fatalf("message %d of an unanswered session is not a PreKeySignalMessage", i)
		}
		first = append(first, m)
	}
	s := alice.sessions[bob.id]
	if !s.Initiator() || s.Confirmed() || s.PeerRatchetKey() != nil {
		t.Fatal("fresh initiator state")
	}
	if !bytes.Equal(s.PeerIdentityKey(), bob.ik.Curve25519Public()) || s.SignedPreKeyID() != bob.spkID || bob.pks[s.PreKeyID()] == nil {
		t.Fatal("initiator session names the wrong keys")
	}
	// The second arrives first and builds Bob's session; the others are
	// the same key exchange again and decrypt with it.
	if out := mustDecrypt(t, bob, first[1], "kex 1"); !out.newSession || !out.preKey {
		t.Fatalf("first key exchange: %+v", out)
	}
	if bob.pks[s.PreKeyID()] != nil {
		t.Fatal("used prekey kept")
	}
	roundTrip(t, bob)
	if out := mustDecrypt(t, bob, first[0], "kex 0"); out.newSession {
		t.Fatal("repeated key exchange built a new session")
	}
	mustDecrypt(t, bob, first[2], "kex 2")
	if _, err := bob.decrypt(first[2]); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("replayed key exchange: %v, want ErrDuplicate", err)
	}
	bs := bob.sessions[alice.id]
	if bs.Initiator() || !bs.Confirmed() || !bytes.Equal(bs.PeerIdentityKey(), alice.ik.Curve25519Public()) || bs.ReceivedSinceLastSend() != 3 {
		t.Fatal("responder state")
	}

	// Bob answers with a KeyTransportElement: a SignalMessage.
	ack := bob.encrypt(t, nil, toAlice)
	if preKeyFlag(t, ack, alice.id) {
		t.Fatal("responder sent a PreKeySignalMessage")
	}
	if out, err := alice.decrypt(ack); err != nil || out.body != nil {
		t.Fatalf("key transport: %+v %v", out, err)
	}
	if !alice.sessions[bob.id].Confirmed() {
		t.Fatal("initiator not confirmed by the answer")
	}

	// Turns of different lengths, some delivered late.
	var late [][]byte
	var lateBody []string
	n := 0
	for turn := range 12 {
		from, to, peers := alice, bob, toBob
		if turn%2 == 1 {
			from, to, peers = bob, alice, toAlice
		}
		for i := 0; i < 1+turn%4; i++ {
			body := fmt.Sprintf("turn %d message %d", turn, i)
			m := from.encrypt(t, []byte(body), peers)
			if preKeyFlag(t, m, to.id) {
				t.Fatalf("%s: PreKeySignalMessage after confirmation", body)
			}
			n++
			if n%5 == 0 {
				late, lateBody = append(late, m), append(lateBody, body)
				continue
			}
			mustDecrypt(t, to, m, body)
		}
		roundTrip(t, alice)
		roundTrip(t, bob)
	}
	for i, m := range late {
		var e Encrypted
		if err := xml.Unmarshal(m, &e); err != nil {
			t.Fatal(err)
		}
		to := bob
		if e.SID == bob.id {
			to = alice
		}
		mustDecrypt(t, to, m, lateBody[i])
	}
	if len(late) == 0 {
		t.Fatal("no late messages")
	}
}

// TestSimultaneousKeyExchange: a key exchange from the peer replaces an
// initiator's own session (XEP-0384 0.3 §Receiving a message: "it MUST
// replace this session"). When both key exchanges arrive, both sides
// replace and the answers fail: the race the XEP's business rules
// describe, which a new key exchange resolves.
func TestSimultaneousKeyExchange(t *testing.T) {
	alice, bob := newDevice(t, 1), newDevice(t, 2)
	ma := alice.encrypt(t, []byte("from alice"), map[uint32]*Bundle{bob.id: bob.bundle()})
	mb := bob.encrypt(t, []byte("from bob"), map[uint32]*Bundle{alice.id: alice.bundle()})
	if alice.sessions[bob.id].Matches(mustKex(t, mb, alice.id)) {
		t.Fatal("an initiator session matches the peer's key exchange")
	}
	mustDecrypt(t, alice, mb, "from bob")
	if alice.sessions[bob.id].Initiator() {
		t.Fatal("the peer's key exchange did not replace the initiator session")
	}
	reply := alice.encrypt(t, []byte("reply a"), map[uint32]*Bundle{bob.id: nil})
	if preKeyFlag(t, reply, bob.id) {
		t.Fatal("responder sent a key exchange")
	}

	// Bob also receives Alice's key exchange and replaces his session.
	raced := &device{id: bob.id, ik: bob.ik, spkID: bob.spkID, spk: bob.spk, pks: maps.Clone(bob.pks), sessions: maps.Clone(bob.sessions)}
	mustDecrypt(t, raced, ma, "from alice")
	if _, err := raced.decrypt(reply); err != ErrDecryption {
		t.Fatalf("answer on a replaced session: %v, want ErrDecryption", err)
	}
	// Without the race, Bob's session gets the answer and is confirmed.
	mustDecrypt(t, bob, reply, "reply a")
	if !bob.sessions[alice.id].Confirmed() {
		t.Fatal("initiator not confirmed")
	}
}

func mustKex(t *testing.T, msg []byte, rid uint32) *KeyExchange {
	t.Helper()
	var e Encrypted
	if err := xml.Unmarshal(msg, &e); err != nil {
		t.Fatal(err)
	}
	kex, err := ParseKeyExchange(e.KeysFor(rid)[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	return kex
}

// TestPythonVectors decrypts python-oldmemo's key exchange messages with
// the device keys it used, out of order, and reads its bundle and device
// list.
func TestPythonVectors(t *testing.T) {
	v := loadVectors(t)
	ik, err := xeddsa.NewPrivateKey(v.Bob.Identity)
	if err != nil {
		t.Fatal(err)
	}
	spk, err := ecdh.X25519().NewPrivateKey(v.Bob.SignedPreKey)
	if err != nil {
		t.Fatal(err)
	}
	bob := &device{id: v.Bob.DeviceID, ik: ik, spkID: v.Bob.SignedPreKeyID, spk: spk, pks: map[uint32]*ecdh.PrivateKey{}, sessions: map[uint32]*Session{}}
	for id, priv := range v.Bob.PreKeys {
		n, _ := strconv.ParseUint(id, 10, 32)
		if bob.pks[uint32(n)], err = ecdh.X25519().NewPrivateKey(priv); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("bundle", func(t *testing.T) {
		var b Bundle
		if err := xml.Unmarshal([]byte(v.Bob.BundleXML), &b); err != nil {
			t.Fatal(err)
		}
		want := bob.bundle()
		if b.SignedPreKeyID != want.SignedPreKeyID || !bytes.Equal(b.SignedPreKey, want.SignedPreKey) ||
			!bytes.Equal(b.IdentityKey, want.IdentityKey) || len(b.PreKeys) != len(want.PreKeys) {
			t.Fatalf("python bundle %+v, want keys of %+v", b, want)
		}
		for _, pk := range want.PreKeys {
			if !bytes.Equal(b.PreKey(pk.ID), pk.Key) {
				t.Fatalf("prekey %d differs", pk.ID)
			}
		}
		if err := VerifyBundle(&b); err != nil {
			t.Fatalf("VerifyBundle: %v", err)
		}
		if b.SignBit() != 1 {
			t.Fatal("python put sign bit 1 into the signature, read 0")
		}
		ed, err := Ed25519IdentityKey(b.IdentityKey, b.SignBit())
		if err != nil || !bytes.Equal(ed, v.Bob.IdentityEd25519) {
			t.Fatalf("Ed25519 identity %x %v, want %x", ed, err, v.Bob.IdentityEd25519)
		}
		// The same device's bundle as hush would sign it verifies too.
		own := bob.bundle()
		if own.SignedPreKeySignature, err = SignSignedPreKey(ik, own.SignedPreKey); err != nil {
			t.Fatal(err)
		}
		if err := VerifyBundle(own); err != nil {
			t.Fatalf("VerifyBundle(hush signature): %v", err)
		}
	})

	t.Run("device list", func(t *testing.T) {
		var l DeviceList
		if err := xml.Unmarshal([]byte(v.DeviceList.XML), &l); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(l.Devices) != fmt.Sprint(v.DeviceList.IDs) {
			t.Fatalf("devices %v, want %v", l.Devices, v.DeviceList.IDs)
		}
	})

	t.Run("messages", func(t *testing.T) {
		order := []int{0, 2, 1, 3}
		if len(order) != len(v.Messages) {
			t.Fatalf("%d messages in the vectors", len(v.Messages))
		}
		for _, i := range order {
			m := v.Messages[i]
			out, err := bob.decrypt([]byte(m.XML))
			if err != nil {
				t.Fatalf("message %d (%s): %v", i, m.Kind, err)
			}
			if !out.preKey {
				t.Fatalf("message %d: not a key exchange", i)
			}
			if out.newSession != (i == 0) {
				t.Fatalf("message %d: newSession %v", i, out.newSession)
			}
			switch m.Kind {
			case "empty":
				if out.body != nil || len(m.Material) != PayloadKeySize {
					t.Fatalf("message %d: empty message with body %q, material %d bytes", i, out.body, len(m.Material))
				}
			default:
				if !bytes.Equal(out.body, m.Body) {
					t.Fatalf("message %d: body %q, want %q", i, out.body, m.Body)
				}
			}
		}
		s := bob.sessions[v.Alice.DeviceID]
		if !bytes.Equal(s.PeerIdentityKey(), v.Alice.IdentityCurve25519) || s.PreKeyID() != 7 || s.SignedPreKeyID() != v.Bob.SignedPreKeyID {
			t.Fatal("session built from python's key exchange names the wrong keys")
		}
		if bob.pks[7] != nil || bob.pks[8] == nil {
			t.Fatal("wrong prekey consumed")
		}
		// 16-byte IV: the last message.
		var e Encrypted
		if err := xml.Unmarshal([]byte(v.Messages[3].XML), &e); err != nil || len(e.IV) != LegacyIVSize {
			t.Fatalf("vector 3 should carry a 16-byte IV: %d %v", len(e.IV), err)
		}
	})
}

// conversationPair returns two confirmed sessions a (initiator) and b
// (responder) and the last message b sent to a, undelivered.
func conversationPair(t testing.TB) (alice, bob *device, a, b *Session) {
	t.Helper()
	alice, bob = newDevice(t, 1), newDevice(t, 2)
	id, err := ChoosePreKey(bob.bundle())
	if err != nil {
		t.Fatal(err)
	}
	a, err = Initiate(alice.ik, bob.bundle(), id)
	if err != nil {
		t.Fatal(err)
	}
	data, pre, err := a.Encrypt(rep(1, KeyMaterialSize))
	if err != nil || !pre {
		t.Fatalf("Encrypt: %v %v", pre, err)
	}
	kex, err := ParseKeyExchange(data)
	if err != nil {
		t.Fatal(err)
	}
	b, m, err := Respond(bob.ik, kex, bob.spk, bob.pks[kex.PreKeyID])
	if err != nil || !bytes.Equal(m, rep(1, KeyMaterialSize)) {
		t.Fatalf("Respond: %x %v", m, err)
	}
	return alice, bob, a, b
}

func marshal(t testing.TB, s *Session) []byte {
	t.Helper()
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBadSignalMessage: malformed or forged SignalMessages fail with
// exactly ErrDecryption and leave the session unchanged.
func TestBadSignalMessage(t *testing.T) {
	_, _, a, b := conversationPair(t)
	good, pre, err := b.Encrypt(rep(2, KeyMaterialSize))
	if err != nil || pre {
		t.Fatal(err)
	}
	other, _, _ := b.Clone().Encrypt(rep(3, KeyMaterialSize)) // same counter, other content
	set := func(i int, v byte) []byte { c := bytes.Clone(good); c[i] = v; return c }
	flip := func(i int) []byte { c := bytes.Clone(good); c[i] ^= 1; return c }
	for _, tc := range []struct {
		name string
		msg  []byte
	}{
		{"wrong version byte 0x32", set(0, 0x32)},
		{"wrong version byte 0x43", set(0, 0x43)},
		{"wrong version byte 0x22 (v2)", set(0, 0x22)},
		{"short MAC (7 bytes)", good[:len(good)-1]},
		{"no MAC", good[:len(good)-wire.LegacyMACSize]},
		{"MAC changed", flip(len(good) - 1)},
		{"ciphertext changed", flip(len(good) - wire.LegacyMACSize - 1)},
		{"counter changed", flip(37)},
		{"MAC of another message", append(bytes.Clone(good[:len(good)-8]), other[len(other)-8:]...)},
		{"trailing byte", append(bytes.Clone(good), 0)},
		{"empty", nil},
		{"version byte only", []byte{wire.LegacyVersion}},
		{"a PreKeySignalMessage", mustEncryptKex(t)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := marshal(t, a)
			got, err := a.Decrypt(tc.msg)
			if err != ErrDecryption || got != nil {
				t.Fatalf("Decrypt: %x, %v; want exactly ErrDecryption", got, err)
			}
			if !bytes.Equal(before, marshal(t, a)) {
				t.Fatal("failed Decrypt changed the session")
			}
		})
	}
	if m, err := a.Decrypt(good); err != nil || !bytes.Equal(m, rep(2, KeyMaterialSize)) {
		t.Fatalf("good message after the bad ones: %v", err)
	}
	before := marshal(t, a)
	if _, err := a.Decrypt(good); !errors.Is(err, ErrDuplicate) || !errors.Is(err, ErrDecryption) {
		t.Fatalf("replay: %v, want ErrDuplicate", err)
	}
	if !bytes.Equal(before, marshal(t, a)) {
		t.Fatal("replay changed the session")
	}
}

func mustEncryptKex(t *testing.T) []byte {
	_, _, a, _ := conversationPair(t)
	data, _, err := a.Encrypt([]byte{1})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// kexFields is a PreKeySignalMessage built field by field, for inputs the
// wire package's encoder cannot produce.
type kexField struct {
	num protowire.Number
	v   any // uint32, uint64 or []byte
}

func buildKex(fields ...kexField) []byte {
	b := []byte{wire.LegacyVersion}
	for _, f := range fields {
		switch v := f.v.(type) {
		case uint32:
			b = protowire.AppendTag(b, f.num, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(v))
		case uint64:
			b = protowire.AppendTag(b, f.num, protowire.VarintType)
			b = protowire.AppendVarint(b, v)
		case []byte:
			b = protowire.AppendTag(b, f.num, protowire.BytesType)
			b = protowire.AppendBytes(b, v)
		}
	}
	return b
}

// TestBadKeyExchange covers PreKeySignalMessages that must not parse
// (ErrMalformed: public, unauthenticated header) and ones that parse but
// must not build a session (ErrDecryption).
func TestBadKeyExchange(t *testing.T) {
	alice, bob := newDevice(t, 1), newDevice(t, 2)
	a, err := Initiate(alice.ik, bob.bundle(), 5)
	if err != nil {
		t.Fatal(err)
	}
	data, _, err := a.Encrypt(rep(1, KeyMaterialSize))
	if err != nil {
		t.Fatal(err)
	}
	var m wire.PreKeySignalMessage
	if err := m.UnmarshalFramed(data); err != nil {
		t.Fatal(err)
	}
	k := func(key []byte) []byte { return append([]byte{KeyType}, key...) }
	base, ik := k(m.BaseKey), k(m.IdentityKey)
	f := func(num protowire.Number, v any) kexField { return kexField{num, v} }

	good := buildKex(f(1, m.PreKeyID), f(2, base), f(3, ik), f(4, m.Message), f(6, m.SignedPreKeyID))
	if !bytes.Equal(good, data) {
		t.Fatal("buildKex does not reproduce Encrypt's output")
	}
	// libsignal-protocol-javascript's field order, with a registrationId.
	js := buildKex(f(5, uint32(2)), f(1, m.PreKeyID), f(6, m.SignedPreKeyID), f(2, base), f(3, ik), f(4, m.Message))
	kex, err := ParseKeyExchange(js)
	if err != nil || !kex.HasRegistrationID || kex.RegistrationID != 2 {
		t.Fatalf("ProtoBuf.js order: %+v %v", kex, err)
	}
	if sm := kex.SignalMessage(); !bytes.Equal(sm, m.Message) {
		t.Fatal("SignalMessage() is not the embedded message")
	} else if sm[0]++; bytes.Equal(kex.SignalMessage(), sm) {
		t.Fatal("SignalMessage() aliases the key exchange")
	}
	if _, material, err := Respond(bob.ik, kex, bob.spk, bob.pks[5]); err != nil || !bytes.Equal(material, rep(1, KeyMaterialSize)) {
		t.Fatalf("Respond to ProtoBuf.js order: %v", err)
	}

	for name, in := range map[string][]byte{
		"wrong version byte":           append([]byte{0x32}, good[1:]...),
		"no version byte":              good[1:],
		"empty":                        nil,
		"without prekey id":            buildKex(f(2, base), f(3, ik), f(4, m.Message), f(6, m.SignedPreKeyID)),
		"without signed prekey id":     buildKex(f(1, m.PreKeyID), f(2, base), f(3, ik), f(4, m.Message)),
		"without base key":             buildKex(f(1, m.PreKeyID), f(3, ik), f(4, m.Message), f(6, m.SignedPreKeyID)),
		"without identity key":         buildKex(f(1, m.PreKeyID), f(2, base), f(4, m.Message), f(6, m.SignedPreKeyID)),
		"without message":              buildKex(f(1, m.PreKeyID), f(2, base), f(3, ik), f(6, m.SignedPreKeyID)),
		"base key without 0x05":        buildKex(f(1, m.PreKeyID), f(2, m.BaseKey), f(3, ik), f(4, m.Message), f(6, m.SignedPreKeyID)),
		"identity key with type 0x06":  buildKex(f(1, m.PreKeyID), f(2, base), f(3, append([]byte{6}, m.IdentityKey...)), f(4, m.Message), f(6, m.SignedPreKeyID)),
		"34-byte identity key":         buildKex(f(1, m.PreKeyID), f(2, base), f(3, append(bytes.Clone(ik), 0)), f(4, m.Message), f(6, m.SignedPreKeyID)),
		"repeated prekey id":           buildKex(f(1, m.PreKeyID), f(1, m.PreKeyID), f(2, base), f(3, ik), f(4, m.Message), f(6, m.SignedPreKeyID)),
		"unknown field":                buildKex(f(1, m.PreKeyID), f(2, base), f(3, ik), f(4, m.Message), f(6, m.SignedPreKeyID), f(7, uint32(1))),
		"trailing garbage":             append(bytes.Clone(good), 0xff),
		"prekey id wider than 32 bits": buildKex(f(1, uint64(1)<<32), f(2, base), f(3, ik), f(4, m.Message), f(6, m.SignedPreKeyID)),
		"version byte only":            {wire.LegacyVersion},
	} {
		t.Run(name, func(t *testing.T) {
			if kex, err := ParseKeyExchange(in); !errors.Is(err, ErrMalformed) || kex != nil {
				t.Fatalf("ParseKeyExchange: %+v, %v; want ErrMalformed", kex, err)
			}
		})
	}

	// Parses, but is not for these keys or was tampered with: ErrDecryption,
	// exactly.
	innerBadVersion := bytes.Clone(m.Message)
	innerBadVersion[0] = 0x32
	innerShortMAC := m.Message[:len(m.Message)-1]
	other := newDevice(t, 3)
	lowOrder := make([]byte, 32) // u = 0
	for name, tc := range map[string]struct {
		data     []byte
		spk, opk *ecdh.PrivateKey
	}{
		"wrong prekey":                {good, bob.spk, bob.pks[6]},
		"wrong signed prekey":         {good, other.spk, bob.pks[5]},
		"inner wrong version byte":    {buildKex(f(1, m.PreKeyID), f(2, base), f(3, ik), f(4, innerBadVersion), f(6, m.SignedPreKeyID)), bob.spk, bob.pks[5]},
		"inner short MAC":             {buildKex(f(1, m.PreKeyID), f(2, base), f(3, ik), f(4, innerShortMAC), f(6, m.SignedPreKeyID)), bob.spk, bob.pks[5]},
		"identity key of another":     {buildKex(f(1, m.PreKeyID), f(2, base), f(3, k(other.ik.Curve25519Public())), f(4, m.Message), f(6, m.SignedPreKeyID)), bob.spk, bob.pks[5]},
		"low-order base key":          {buildKex(f(1, m.PreKeyID), f(2, k(lowOrder)), f(3, ik), f(4, m.Message), f(6, m.SignedPreKeyID)), bob.spk, bob.pks[5]},
		"base key of another session": {buildKex(f(1, m.PreKeyID), f(2, k(other.spk.PublicKey().Bytes())), f(3, ik), f(4, m.Message), f(6, m.SignedPreKeyID)), bob.spk, bob.pks[5]},
	} {
		t.Run(name, func(t *testing.T) {
			kex, err := ParseKeyExchange(tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if s, material, err := Respond(bob.ik, kex, tc.spk, tc.opk); err != ErrDecryption || s != nil || material != nil {
				t.Fatalf("Respond: %v, want exactly ErrDecryption", err)
			}
		})
	}
	if _, _, err := Respond(bob.ik, kex, bob.spk, nil); err == nil {
		t.Fatal("Respond without a prekey succeeded")
	}
}

func TestMatches(t *testing.T) {
	_, bob, a, b := conversationPair(t)
	data, _, err := a.Encrypt([]byte("again"))
	if err != nil {
		t.Fatal(err)
	}
	kex, err := ParseKeyExchange(data)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Matches(kex) {
		t.Fatal("repeated key exchange does not match its session")
	}
	for name, change := range map[string]func(k *KeyExchange){
		"prekey id":        func(k *KeyExchange) { k.PreKeyID++ },
		"signed prekey id": func(k *KeyExchange) { k.SignedPreKeyID++ },
		"base key":         func(k *KeyExchange) { k.BaseKey = rep(9, 32) },
		"identity key":     func(k *KeyExchange) { k.IdentityKey = bob.ik.Curve25519Public() },
	} {
		c := *kex
		change(&c)
		if b.Matches(&c) {
			t.Errorf("key exchange with another %s matches", name)
		}
		if _, err := b.DecryptKeyExchange(&c); err != ErrDecryption {
			t.Errorf("DecryptKeyExchange with another %s: %v", name, err)
		}
	}
	if a.Matches(kex) {
		t.Fatal("the initiator's session matches its own key exchange")
	}
	if m, err := b.DecryptKeyExchange(kex); err != nil || string(m) != "again" {
		t.Fatalf("DecryptKeyExchange: %q %v", m, err)
	}
}

// TestInitiateBadBundle: bundles that must not yield a session, each with
// its typed error.
func TestInitiateBadBundle(t *testing.T) {
	alice, bob := newDevice(t, 1), newDevice(t, 2)
	other := newDevice(t, 3)
	cases := map[string]struct {
		change func(b *Bundle)
		pkID   uint32
		want   error
	}{
		"signature by another identity": {func(b *Bundle) {
			b.SignedPreKeySignature = other.spkSig
			b.SignedPreKey = other.spk.PublicKey().Bytes()
		}, 1, ErrBadSignature},
		"signature over another key": {func(b *Bundle) { b.SignedPreKey = other.spk.PublicKey().Bytes() }, 1, ErrBadSignature},
		"sign bit flipped":           {func(b *Bundle) { b.SignedPreKeySignature[63] ^= 0x80 }, 1, ErrBadSignature},
		"signature byte changed":     {func(b *Bundle) { b.SignedPreKeySignature[10] ^= 1 }, 1, ErrBadSignature},
		"OMEMO 2 signature (raw key)": {func(b *Bundle) {
			s, _ := bob.ik.SignEd25519(b.SignedPreKey)
			b.SignedPreKeySignature = s
		}, 1, ErrBadSignature},
		"short signature":           {func(b *Bundle) { b.SignedPreKeySignature = b.SignedPreKeySignature[:63] }, 1, ErrBadSignature},
		"31-byte identity key":      {func(b *Bundle) { b.IdentityKey = b.IdentityKey[:31] }, 1, ErrInvalidBundle},
		"33-byte signed prekey":     {func(b *Bundle) { b.SignedPreKey = append([]byte{KeyType}, b.SignedPreKey...) }, 1, ErrInvalidBundle},
		"31-byte prekey":            {func(b *Bundle) { b.PreKeys[0].Key = b.PreKeys[0].Key[:31] }, 1, ErrInvalidBundle},
		"low-order prekey":          {func(b *Bundle) { b.PreKeys[0].Key = make([]byte, 32) }, 1, ErrInvalidBundle},
		"non-canonical prekey":      {func(b *Bundle) { b.PreKeys[0].Key = bytes.Repeat([]byte{0xff}, 32) }, 1, ErrInvalidBundle},
		"unknown prekey id":         {func(b *Bundle) {}, 999, ErrInvalidBundle},
		"prekey id 0":               {func(b *Bundle) { b.PreKeys[0].ID = 0 }, 0, ErrNoPreKey},
		"identity key is low order": {func(b *Bundle) { b.IdentityKey = make([]byte, 32) }, 1, ErrInvalidBundle},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b := bob.bundle()
			b.SignedPreKeySignature = bytes.Clone(b.SignedPreKeySignature)
			tc.change(b)
			s, err := Initiate(alice.ik, b, tc.pkID)
			if !errors.Is(err, tc.want) || s != nil {
				t.Fatalf("Initiate: %v, want %v", err, tc.want)
			}
			if errors.Is(tc.want, ErrBadSignature) && err != ErrBadSignature {
				t.Fatalf("Initiate: %q, want exactly ErrBadSignature", err)
			}
			if tc.want == ErrBadSignature {
				if err := VerifyBundle(b); err != ErrBadSignature {
					t.Fatalf("VerifyBundle: %v", err)
				}
			}
		})
	}
	if err := VerifyBundle(bob.bundle()); err != nil {
		t.Fatalf("VerifyBundle(good): %v", err)
	}
}

func TestChoosePreKey(t *testing.T) {
	b := &Bundle{PreKeys: []PreKey{{ID: 0, Key: rep(1, 32)}, {ID: 5, Key: rep(2, 32)}, {ID: 6, Key: rep(3, 32)}}}
	seen := map[uint32]int{}
	for range 200 {
		id, err := ChoosePreKey(b)
		if err != nil {
			t.Fatal(err)
		}
		seen[id]++
	}
	if seen[0] != 0 || seen[5] == 0 || seen[6] == 0 {
		t.Fatalf("choices %v: id 0 must never be picked, the others must", seen)
	}
	for _, pks := range [][]PreKey{nil, {{ID: 0, Key: rep(1, 32)}}} {
		if _, err := ChoosePreKey(&Bundle{PreKeys: pks}); err != ErrNoPreKey {
			t.Fatalf("ChoosePreKey(%v): %v, want ErrNoPreKey", pks, err)
		}
	}
}

func TestEd25519IdentityKey(t *testing.T) {
	k, err := xeddsa.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ed, err := Ed25519IdentityKey(k.Curve25519Public(), 0)
	if err != nil || !bytes.Equal(ed, k.Ed25519Public()) {
		t.Fatalf("Ed25519IdentityKey: %x %v, want %x", ed, err, k.Ed25519Public())
	}
	if _, err := Ed25519IdentityKey(rep(0xff, 32), 0); !errors.Is(err, ErrMalformed) {
		t.Fatalf("non-canonical key: %v", err)
	}
	if _, err := Ed25519IdentityKey(rep(1, 31), 0); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short key: %v", err)
	}
}

func TestSessionUnmarshalBad(t *testing.T) {
	_, _, a, b := conversationPair(t)
	good := marshal(t, a)
	resp := marshal(t, b)
	set := func(src []byte, i int, v byte) []byte { c := bytes.Clone(src); c[i] = v; return c }
	omemo2, err := ratchet.NewInitiator(ratchet.OMEMO2, rep(1, 32), rep(2, 64), a.r.PeerRatchetKey())
	if err != nil {
		t.Fatal(err)
	}
	o2, err := omemo2.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string][]byte{
		"empty":                     nil,
		"header only":               good[:sessionHeaderSize],
		"truncated ratchet":         good[:len(good)-1],
		"trailing byte":             append(bytes.Clone(good), 0),
		"version 0":                 set(good, 0, 0),
		"version 2":                 set(good, 0, 2),
		"unknown flag":              set(good, 1, good[1]|4),
		"confirmed responder":       set(resp, 1, flagConfirmed),
		"initiator flag, responder": set(resp, 1, flagInitiator),
		"responder flag, initiator": set(good, 1, 0),
		"OMEMO 2 ratchet":           append(bytes.Clone(good[:sessionHeaderSize]), o2...),
	} {
		t.Run(name, func(t *testing.T) {
			s := *b
			if err := s.UnmarshalBinary(in); !errors.Is(err, ErrInvalidSession) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("UnmarshalBinary: %v, want ErrInvalidSession", err)
			}
			if !bytes.Equal(marshal(t, &s), resp) {
				t.Fatal("failed UnmarshalBinary changed the session")
			}
		})
	}
	var zero Session
	if _, err := zero.MarshalBinary(); err == nil {
		t.Fatal("MarshalBinary of the zero session")
	}
	if _, _, err := zero.Encrypt([]byte{1}); err == nil {
		t.Fatal("Encrypt on the zero session")
	}
	if _, err := zero.Decrypt([]byte{1}); err != ErrDecryption {
		t.Fatal("Decrypt on the zero session")
	}
	if zero.ReceivingChainLength() != 0 || zero.PeerRatchetKey() != nil || zero.Matches(&KeyExchange{}) {
		t.Fatal("zero session accessors")
	}
}

// TestKeyExchangeUntilAnswered: every message of an initiator is a
// PreKeySignalMessage until one from the peer decrypts, and that state
// survives MarshalBinary.
func TestKeyExchangeUntilAnswered(t *testing.T) {
	_, _, a, b := conversationPair(t)
	for i := range 3 {
		c := new(Session)
		if err := c.UnmarshalBinary(marshal(t, a)); err != nil {
			t.Fatal(err)
		}
		a = c
		data, pre, err := a.Encrypt([]byte{byte(i)})
		if err != nil || !pre {
			t.Fatalf("message %d: prekey=%v %v", i, pre, err)
		}
		kex, err := ParseKeyExchange(data)
		if err != nil || kex.HasRegistrationID {
			t.Fatalf("python-oldmemo sends no registrationId: %+v %v", kex, err)
		}
		if _, err := b.DecryptKeyExchange(kex); err != nil {
			t.Fatal(err)
		}
	}
	data, pre, err := b.Encrypt([]byte("answer"))
	if err != nil || pre {
		t.Fatal(err)
	}
	// The answer is late: one more key exchange crosses it and still
	// decrypts on Bob's session, whose ratchet has moved on.
	crossing, pre, err := a.Encrypt([]byte("crossing"))
	if err != nil || !pre {
		t.Fatal("unanswered initiator did not send a key exchange")
	}
	kex, err := ParseKeyExchange(crossing)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := b.DecryptKeyExchange(kex); err != nil || string(m) != "crossing" {
		t.Fatalf("crossing key exchange: %q %v", m, err)
	}
	// A failed decrypt does not confirm.
	if _, err := a.Decrypt(data[:len(data)-1]); err == nil || a.Confirmed() {
		t.Fatal("confirmed by a bad message")
	}
	if _, err := a.Decrypt(data); err != nil || !a.Confirmed() {
		t.Fatal("not confirmed by the answer")
	}
	c := new(Session)
	if err := c.UnmarshalBinary(marshal(t, a)); err != nil || !c.Confirmed() {
		t.Fatal("confirmation lost in MarshalBinary")
	}
	if _, pre, err := c.Encrypt([]byte("x")); err != nil || pre {
		t.Fatal("confirmed session sent a key exchange")
	}
	if len(c.PeerRatchetKey()) != 32 || c.ReceivingChainLength() != 1 || c.SendingChainLength() != 1 || c.ReceivedSinceLastSend() != 0 {
		t.Fatalf("chain accessors: %d %d %d", c.ReceivingChainLength(), c.SendingChainLength(), c.ReceivedSinceLastSend())
	}
}

// TestSignSignedPreKeyBad: only X25519 keys can be signed.
func TestSignSignedPreKeyBad(t *testing.T) {
	k, _ := xeddsa.GenerateKey()
	if _, err := SignSignedPreKey(k, rep(1, 31)); err == nil {
		t.Fatal("signed a 31-byte key")
	}
	pub, _ := ecdh.X25519().GenerateKey(rand.Reader)
	sig, err := SignSignedPreKey(k, pub.PublicKey().Bytes())
	if err != nil || len(sig) != SignatureSize || sig[63]&0x80 != 0 {
		t.Fatalf("signature of a hush key: %x %v (sign bit must be 0)", sig, err)
	}
}
