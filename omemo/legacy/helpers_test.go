package legacy

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"testing"

	"hush.im/internal/xeddsa"
)

// device is one side of a test conversation: its keys, and its sessions
// keyed by the peer's device id, handled the way the omemo manager will.
type device struct {
	id       uint32
	ik       *xeddsa.PrivateKey
	spkID    uint32
	spk      *ecdh.PrivateKey
	spkSig   []byte
	pks      map[uint32]*ecdh.PrivateKey
	sessions map[uint32]*Session
}

func newDevice(t testing.TB, id uint32) *device {
	t.Helper()
	ik, err := xeddsa.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	d := &device{id: id, ik: ik, spkID: 1, pks: map[uint32]*ecdh.PrivateKey{}, sessions: map[uint32]*Session{}}
	if d.spk, err = ecdh.X25519().GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	if d.spkSig, err = SignSignedPreKey(ik, d.spk.PublicKey().Bytes()); err != nil {
		t.Fatal(err)
	}
	for i := uint32(1); i <= 25; i++ {
		if d.pks[i], err = ecdh.X25519().GenerateKey(rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func (d *device) bundle() *Bundle {
	b := &Bundle{
		SignedPreKeyID:        d.spkID,
		SignedPreKey:          d.spk.PublicKey().Bytes(),
		SignedPreKeySignature: d.spkSig,
		IdentityKey:           d.ik.Curve25519Public(),
	}
	ids := make([]uint32, 0, len(d.pks))
	for id := range d.pks {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		b.PreKeys = append(b.PreKeys, PreKey{ID: id, Key: d.pks[id].PublicKey().Bytes()})
	}
	return b
}

// encrypt builds the <encrypted/> element of a message (body != nil) or a
// KeyTransportElement (body == nil) to the peer devices, building sessions
// from their bundles where there are none, and returns it serialized.
func (d *device) encrypt(t testing.TB, body []byte, peers map[uint32]*Bundle) []byte {
	t.Helper()
	var e Encrypted
	var material []byte
	var err error
	if body != nil {
		e.Payload, e.IV, material, err = EncryptPayload(body)
	} else {
		e.IV, material, err = KeyTransport()
	}
	if err != nil {
		t.Fatal(err)
	}
	e.SID = d.id
	for rid, b := range peers {
		s := d.sessions[rid]
		if s == nil {
			id, err := ChoosePreKey(b)
			if err != nil {
				t.Fatal(err)
			}
			if s, err = Initiate(d.ik, b, id); err != nil {
				t.Fatal(err)
			}
		}
		s = s.Clone() // commit only once the whole element is built
		data, pre, err := s.Encrypt(material)
		if err != nil {
			t.Fatal(err)
		}
		d.sessions[rid] = s
		e.Keys = append(e.Keys, Key{RID: rid, PreKey: pre, Data: data})
	}
	out, err := xml.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// decrypted is what receiving one element gave.
type decrypted struct {
	body       []byte // nil for a KeyTransportElement
	preKey     bool
	newSession bool
}

// decrypt receives a serialized <encrypted/> element: it tries each key
// for this device, builds or reuses the session, checks the payload, and
// commits the session (and consumes the prekey) only when everything
// authenticated.
func (d *device) decrypt(data []byte) (*decrypted, error) {
	var e Encrypted
	if err := xml.Unmarshal(data, &e); err != nil {
		return nil, err
	}
	keys := e.KeysFor(d.id)
	if len(keys) == 0 {
		return nil, errors.New("not for this device")
	}
	var last error
	for _, k := range keys {
		out, s, used, err := d.decryptKey(&e, k)
		if err != nil {
			last = err
			continue
		}
		d.sessions[e.SID] = s
		if used != 0 {
			delete(d.pks, used)
		}
		return out, nil
	}
	return nil, last
}

func (d *device) decryptKey(e *Encrypted, k Key) (*decrypted, *Session, uint32, error) {
	out := &decrypted{preKey: k.PreKey}
	var material []byte
	var used uint32
	old := d.sessions[e.SID]
	var s *Session
	if k.PreKey {
		kex, err := ParseKeyExchange(k.Data)
		if err != nil {
			return nil, nil, 0, err
		}
		if old != nil && old.Matches(kex) {
			s = old.Clone()
			if material, err = s.DecryptKeyExchange(kex); err != nil {
				return nil, nil, 0, err
			}
		} else {
			pk := d.pks[kex.PreKeyID]
			if pk == nil || kex.SignedPreKeyID != d.spkID {
				return nil, nil, 0, ErrDecryption
			}
			if s, material, err = Respond(d.ik, kex, d.spk, pk); err != nil {
				return nil, nil, 0, err
			}
			used, out.newSession = kex.PreKeyID, true
		}
	} else {
		if old == nil {
			return nil, nil, 0, fmt.Errorf("no session with %d", e.SID)
		}
		s = old.Clone()
		var err error
		if material, err = s.Decrypt(k.Data); err != nil {
			return nil, nil, 0, err
		}
	}
	if e.Payload != nil {
		body, err := DecryptPayload(e.Payload, e.IV, material)
		if err != nil {
			return nil, nil, 0, err
		}
		out.body = body
		if out.body == nil {
			out.body = []byte{}
		}
	} else if _, err := TransportedKey(material); err != nil {
		return nil, nil, 0, err
	}
	return out, s, used, nil
}
