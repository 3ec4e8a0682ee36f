package kv

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"hush.im/omemo"
	"hush.im/store"
	"mellium.im/xmpp/jid"
)

// TestScanMerge checks the write buffer against a model: random puts and
// deletes over a random base, then every prefix scan must list exactly the
// model's keys in order with their values.
func TestScanMerge(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	keys := []string{"a", "ab", "abc", "b", "ba", "c", "\x00", "\xff", "ac", "bb"}
	for round := range 300 {
		m := NewMemory()
		model := map[string]string{}
		for _, k := range keys {
			if r.IntN(2) == 0 {
				v := fmt.Sprint("base", round, k)
				m.buckets["b"] = mapOr(m.buckets["b"])
				m.buckets["b"][k] = []byte(v)
				model[k] = v
			}
		}
		err := m.Update(func(otx omemo.Tx) error {
			tx := otx.(*Tx)
			for range r.IntN(12) {
				k := keys[r.IntN(len(keys))]
				if r.IntN(3) == 0 {
					delete(model, k)
					if err := tx.del("b", []byte(k)); err != nil {
						return err
					}
				} else {
					v := fmt.Sprint("tx", round, k, r.IntN(100))
					model[k] = v
					if err := tx.put("b", []byte(k), []byte(v)); err != nil {
						return err
					}
				}
			}
			for _, p := range []string{"", "a", "ab", "b", "c", "d", "\x00"} {
				var got []string
				err := tx.scan("b", []byte(p), func(k, v []byte) error {
					got = append(got, string(k)+"="+string(v))
					return nil
				})
				if err != nil {
					return err
				}
				var want []string
				for _, k := range slices.Sorted(maps.Keys(model)) {
					if len(k) >= len(p) && k[:len(p)] == p {
						want = append(want, k+"="+model[k])
					}
				}
				if !slices.Equal(got, want) {
					t.Fatalf("round %d prefix %q: scan %q, want %q", round, p, got, want)
				}
				if v, _ := tx.get("b", []byte(p)); p != "" && string(v) != model[p] {
					t.Fatalf("round %d: get %q = %q, want %q", round, p, v, model[p])
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for k, v := range m.buckets["b"] {
			got[k] = string(v)
		}
		if !maps.Equal(got, model) {
			t.Fatalf("round %d: committed %q, want %q", round, got, model)
		}
	}
}

func mapOr(m map[string][]byte) map[string][]byte {
	if m == nil {
		return map[string][]byte{}
	}
	return m
}

// TestSeenBound checks that the seen index keeps exactly the last maxSeen
// ids and forgets older ones.
func TestSeenBound(t *testing.T) {
	defer func(n uint64) { maxSeen = n }(maxSeen)
	maxSeen = 10
	m := NewMemory()
	j := jid.MustParse("a@b")
	id := func(i int) store.MessageID { return store.MessageID{Kind: store.StanzaID, Scope: j, ID: fmt.Sprint(i)} }
	for i := range 35 {
		err := m.Update(func(tx omemo.Tx) error {
			if i%2 == 0 {
				_, err := tx.(store.Inbox).PutInbox(&store.Message{IDs: []store.MessageID{id(i)}})
				return err
			}
			// Twice the same id in one call, and one already seen.
			return tx.(store.Inbox).MarkSeen(id(i), id(i), id(i-1))
		})
		if err != nil {
			t.Fatal(i, err)
		}
	}
	if n := len(m.buckets[bucketSeen]); n != 10 {
		t.Fatalf("%d seen entries, want 10", n)
	}
	if n := len(m.buckets[bucketSeenOrder]); n != 10 {
		t.Fatalf("%d seen-order entries, want 10", n)
	}
	m.View(func(tx omemo.Tx) error {
		for i := range 35 {
			seen, err := tx.(store.Inbox).Seen(id(i))
			if err != nil || seen != (i >= 25) {
				t.Errorf("id %d: seen %v %v", i, seen, err)
			}
		}
		return nil
	})
}

// TestLayout pins the key encodings: changing them needs a schema
// migration in every backend.
func TestLayout(t *testing.T) {
	j := jid.MustParse("juliet@capulet.lit")
	tests := []struct {
		got  []byte
		want string
	}{
		{idKey(0x01020304), "01020304"},
		{addrKey(j, 31415), "12" + hex.EncodeToString([]byte("juliet@capulet.lit")) + "00007ab7"},
		{jidPrefix(j, 0), "12" + hex.EncodeToString([]byte("juliet@capulet.lit"))},
		{trustKey(j, []byte{0xaa, 0xbb}), "12" + hex.EncodeToString([]byte("juliet@capulet.lit")) + "aabb"},
		{seqKey(258), "0000000000000102"},
		{seenDigest(store.MessageID{Kind: store.OriginID, Scope: j, ID: "x"}), "eeed6995ded4a072d93e4288fe113950"},
	}
	for i, tc := range tests {
		if hex.EncodeToString(tc.got) != tc.want {
			t.Errorf("%d: %x, want %s", i, tc.got, tc.want)
		}
	}
}

func messageSeeds() [][]byte {
	j := jid.MustParse("juliet@capulet.lit/balcony")
	msgs := []*store.Message{
		{},
		{From: j, Device: 1 << 31, Received: time.Unix(0, 0)},
		{From: j, Device: 7, Received: time.Date(1969, 7, 20, 20, 17, 40, 999999999, time.UTC),
			IDs: []store.MessageID{
				{Kind: store.StanzaID, Scope: j.Bare(), ID: "5e1c2d"},
				{Kind: store.OriginID, Scope: j.Bare(), ID: "de305d54-75b4-431b-adb2-eb6b9e546014"},
			},
			Payload: []byte("<message xmlns='jabber:client'><body>hi</body></message>")},
	}
	var out [][]byte
	for i, m := range msgs {
		b, err := marshalMessage(m, uint64(i+1))
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	return out
}

func TestMessageRoundTrip(t *testing.T) {
	for i, b := range messageSeeds() {
		m, err := unmarshalMessage(b)
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		again, _ := marshalMessage(m, m.Seq)
		if !bytes.Equal(again, b) {
			t.Fatalf("%d: re-encoding differs:\n%x\n%x", i, b, again)
		}
	}
	bad := [][]byte{
		nil,
		{2},
		{1, 0x80, 0x00},                // non-minimal varint
		append(messageSeeds()[0], 0),   // trailing byte
		{1, 1, 0, 0, 0, 2, 0x80, 0x94}, // time flag 2
	}
	for i, b := range bad {
		if _, err := unmarshalMessage(b); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("bad %d: %v, want ErrCorrupt", i, err)
		}
	}
}

func FuzzMessage(f *testing.F) {
	for _, b := range messageSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := unmarshalMessage(b)
		if err != nil {
			if !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again, err := marshalMessage(m, m.Seq)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := unmarshalMessage(again)
		if err != nil || m2.String() != m.String() || !bytes.Equal(m2.Payload, m.Payload) {
			t.Fatalf("re-decoding failed: %v", err)
		}
	})
}
