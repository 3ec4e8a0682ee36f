package omemo

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"

	"hush.im/internal/xeddsa"
	"hush.im/omemo/legacy"
	"mellium.im/xmpp/jid"
)

// Legacy OMEMO (XEP-0384 0.3, eu.siacs.conversations.axolotl) beside
// OMEMO 2: the same identity key (its Curve25519 form on the legacy wire),
// the same device id, the same signed prekey (with a second, libsignal
// signature) and the same one-time prekeys, published in both bundles. A
// prekey used by a key exchange of either protocol is gone from both.

// LegacyBundle returns this device's legacy bundle, to publish at item
// legacy.ItemID of node legacy.BundleNode(DeviceID()) (XEP-0384 0.3
// §Announcing support): the identity key in Curve25519 form, the current
// signed prekey with its libsignal signature and every unused one-time
// prekey, the same ones as in Bundle. Republish it whenever Bundle
// changes.
func (m *Manager) LegacyBundle() (*legacy.Bundle, error) {
	var b *legacy.Bundle
	err := m.store.View(func(tx Tx) error {
		cur, err := m.bundle(tx)
		if err != nil {
			return err
		}
		spk, err := tx.SignedPreKey(cur.SignedPreKeyID)
		if err != nil {
			return err
		}
		if spk.legacySig == nil {
			return errors.New("omemo: signed prekey without a legacy signature")
		}
		b = &legacy.Bundle{
			SignedPreKeyID:        cur.SignedPreKeyID,
			SignedPreKey:          cur.SignedPreKey,
			SignedPreKeySignature: spk.LegacySignature(),
			IdentityKey:           m.key.Curve25519Public(),
			PreKeys:               make([]legacy.PreKey, len(cur.PreKeys)),
		}
		for i, pk := range cur.PreKeys {
			b.PreKeys[i] = legacy.PreKey{ID: pk.ID, Key: pk.Key}
		}
		return nil
	})
	return b, err
}

// AnnounceLegacyDevice returns the own legacy device list to publish at
// item legacy.ItemID of legacy.NodeDeviceList: current (the list last
// fetched, nil for none) with this device added. changed is false when
// current already lists it (XEP-0384 0.3 §Announcing support: add the own
// id when it is missing).
func (m *Manager) AnnounceLegacyDevice(current *legacy.DeviceList) (l *legacy.DeviceList, changed bool, err error) {
	l = &legacy.DeviceList{}
	if current != nil {
		l.Devices = slices.Clone(current.Devices)
	}
	if l.Contains(m.deviceID) {
		return l, false, nil
	}
	if len(l.Devices) >= legacy.MaxDevices {
		return nil, false, fmt.Errorf("omemo: own legacy device list already has %d devices", legacy.MaxDevices)
	}
	l.Devices = append(l.Devices, m.deviceID)
	return l, true, nil
}

// SetLegacyDeviceList records the legacy device list of a bare JID,
// received from PEP. A device on it that is not on the JID's OMEMO 2
// device list is encrypted to with legacy OMEMO. For the own JID, announce
// reports that this device is missing from the list (AnnounceLegacyDevice).
func (m *Manager) SetLegacyDeviceList(bare jid.JID, l *legacy.DeviceList) (announce bool, err error) {
	bare = bare.Bare()
	c := &legacy.DeviceList{}
	if l != nil {
		c.Devices = slices.Clone(l.Devices)
	}
	err = m.store.Update(func(tx Tx) error {
		return tx.PutLegacyDeviceList(bare, c)
	})
	if err != nil {
		return false, err
	}
	return bare.Equal(m.own) && !c.Contains(m.deviceID), nil
}

// SetLegacyBundle records the legacy bundle of a remote device, fetched
// from PEP, for building a legacy session when one is needed. It is
// checked when used, except that a bundle whose identity key differs from
// that of an existing legacy session with the device is refused with
// ErrIdentityMismatch. The bundle also tells the sign bit of the device's
// identity key (legacy.Bundle.SignBit), which an incoming key exchange
// lacks: DecryptLegacy fails with ErrUnknownDevice for a key exchange from
// a device of which nothing else is known.
func (m *Manager) SetLegacyBundle(a Address, b *legacy.Bundle) error {
	a.JID = a.JID.Bare()
	if !ValidDeviceID(a.Device) || b == nil || len(b.IdentityKey) != legacy.PublicKeySize {
		return fmt.Errorf("omemo: %w: invalid legacy bundle address or identity key", ErrMalformed)
	}
	if a.JID.Equal(m.own) && a.Device == m.deviceID {
		return errors.New("omemo: refusing to store a bundle for this device")
	}
	return m.store.Update(func(tx Tx) error {
		rec, err := tx.LegacySession(a)
		if err == nil && !bytes.Equal(rec.session.PeerIdentityKey(), b.IdentityKey) {
			return ErrIdentityMismatch
		} else if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		return tx.PutLegacyBundle(a, cloneLegacyBundle(b))
	})
}

// NeedLegacyBundles returns the devices of the recipients (and the other
// own devices) that would be encrypted to with legacy OMEMO — on the legacy
// device list, not on the OMEMO 2 one — and have neither a legacy session
// nor a stored legacy bundle: fetch their bundles (node
// legacy.BundleNode(id)) and give them to SetLegacyBundle. It also returns
// the recipients whose legacy device list is unknown.
func (m *Manager) NeedLegacyBundles(recipients ...jid.JID) (devices []Address, noList []jid.JID, err error) {
	return m.needLegacyBundles(false, recipients)
}

// NeedAllLegacyBundles is NeedLegacyBundles for a message restricted to
// legacy OMEMO (Plaintext.Only, SealOptions.Only): every device on the
// legacy device lists, those that also announce OMEMO 2 included.
func (m *Manager) NeedAllLegacyBundles(recipients ...jid.JID) (devices []Address, noList []jid.JID, err error) {
	return m.needLegacyBundles(true, recipients)
}

func (m *Manager) needLegacyBundles(all bool, recipients []jid.JID) (devices []Address, noList []jid.JID, err error) {
	err = m.store.View(func(tx Tx) error {
		for _, j := range m.recipientJIDs(recipients) {
			ll, err := tx.LegacyDeviceList(j)
			if errors.Is(err, ErrNotFound) {
				if !j.Equal(m.own) {
					noList = append(noList, j)
				}
				continue
			} else if err != nil {
				return err
			}
			var l2 *DeviceList
			if !all {
				if l2, err = optional(tx.DeviceList(j)); err != nil {
					return err
				}
			}
			for _, id := range ll.Devices {
				a := Address{JID: j, Device: id}
				if (j.Equal(m.own) && id == m.deviceID) || (l2 != nil && l2.Contains(id)) {
					continue
				}
				if _, err := tx.LegacySession(a); err == nil {
					continue
				} else if !errors.Is(err, ErrNotFound) {
					return err
				}
				if _, err := tx.LegacyBundle(a); err == nil {
					continue
				} else if !errors.Is(err, ErrNotFound) {
					return err
				}
				devices = append(devices, a)
			}
		}
		return nil
	})
	return devices, noList, err
}

// optional turns ErrNotFound into a nil record.
func optional[T any](v *T, err error) (*T, error) {
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return v, err
}

// legacyBundleIdentity returns the Ed25519 form of a legacy bundle's
// identity key, with the sign bit its signature carries.
func legacyBundleIdentity(b *legacy.Bundle) ([]byte, error) {
	return legacy.Ed25519IdentityKey(b.IdentityKey, b.SignBit())
}

// encryptLegacyDevice wraps legacy key material for one device, as
// encryptDevice does for OMEMO 2.
func (m *Manager) encryptLegacyDevice(tx Tx, a Address, material []byte, own bool, withheld []xml.Name) (DeviceReport, *legacy.Key, error) {
	dr := DeviceReport{JID: a.JID, DeviceID: a.Device, Protocol: ProtocolLegacy}
	rec, err := optional(tx.LegacySession(a))
	if err != nil {
		return dr, nil, err
	}
	if material == nil {
		dr.Reason, dr.Withheld = ReasonNoBody, withheld
		return dr, nil, nil
	}
	var b *legacy.Bundle
	info := DeviceInfo{Address: a, Own: own, Listed: true, Session: rec != nil, Protocol: ProtocolLegacy}
	if rec != nil {
		info.IdentityKey = rec.identityKey
	} else {
		if b, err = optional(tx.LegacyBundle(a)); err != nil {
			return dr, nil, err
		} else if b == nil {
			dr.Reason = ReasonNoBundle
			return dr, nil, nil
		}
		if info.IdentityKey, err = legacyBundleIdentity(b); err != nil {
			dr.Reason, dr.Err = ReasonInvalidBundle, err
			return dr, nil, nil
		}
	}
	if info.Trust, err = tx.Trust(a.JID, info.IdentityKey); err != nil {
		return dr, nil, err
	}
	if !m.trust.Allow(info) {
		dr.Reason = ReasonUntrusted
		return dr, nil, nil
	}
	if rec == nil {
		if rec, err = m.initiateLegacy(tx, a, b, info.IdentityKey); err != nil {
			if errors.Is(err, errStore) {
				return dr, nil, err
			}
			dr.Reason, dr.Err = ReasonInvalidBundle, err
			return dr, nil, nil
		}
		dr.NewSession = true
	}
	data, pre, err := rec.session.Encrypt(material)
	if err != nil {
		return dr, nil, err
	}
	if err := tx.PutLegacySession(rec); err != nil {
		return dr, nil, err
	}
	dr.KEX, dr.Withheld = pre, withheld
	return dr, &legacy.Key{RID: a.Device, PreKey: pre, Data: data}, nil
}

// initiateLegacy builds a legacy session with a device from its bundle
// (XEP-0384 0.3 §Building a session) with a random prekey other than id 0,
// and removes that prekey from the stored bundle, deleting the bundle once
// its last prekey is used.
func (m *Manager) initiateLegacy(tx Tx, a Address, b *legacy.Bundle, ik []byte) (*LegacySessionRecord, error) {
	id, err := legacy.ChoosePreKey(b)
	if err != nil {
		return nil, err
	}
	s, err := legacy.Initiate(m.key, b, id)
	if err != nil {
		return nil, err
	}
	rest := cloneLegacyBundle(b)
	rest.PreKeys = slices.DeleteFunc(rest.PreKeys, func(p legacy.PreKey) bool { return p.ID == id })
	if len(rest.PreKeys) == 0 {
		err = tx.DeleteLegacyBundle(a)
	} else {
		err = tx.PutLegacyBundle(a, rest)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errStore, err)
	}
	return &LegacySessionRecord{addr: a, legacyState: legacyState{identityKey: bytes.Clone(ik), session: s}}, nil
}

// EncryptEmptyLegacy returns a legacy KeyTransportElement for one device
// (XEP-0384 0.3 §Sending a key; python-oldmemo's empty OMEMO message): a
// fresh key through the session, no payload. It answers a legacy key
// exchange, carries a heartbeat, or announces a new session. It uses the
// existing legacy session or builds one from a stored legacy bundle; the
// trust policy does not apply. Send it to a.JID.
func (m *Manager) EncryptEmptyLegacy(a Address) (*legacy.Encrypted, error) {
	a.JID = a.JID.Bare()
	iv, material, err := legacy.KeyTransport()
	if err != nil {
		return nil, err
	}
	var key legacy.Key
	err = m.store.Update(func(tx Tx) error {
		rec, err := optional(tx.LegacySession(a))
		if err != nil {
			return err
		}
		if rec == nil {
			b, err := optional(tx.LegacyBundle(a))
			if err != nil {
				return err
			} else if b == nil {
				return ErrUnknownDevice
			}
			ik, err := legacyBundleIdentity(b)
			if err != nil {
				return err
			}
			if rec, err = m.initiateLegacy(tx, a, b, ik); err != nil {
				return err
			}
		}
		data, pre, err := rec.session.Encrypt(material)
		if err != nil {
			return err
		}
		key = legacy.Key{RID: a.Device, PreKey: pre, Data: data}
		return tx.PutLegacySession(rec)
	})
	if err != nil {
		return nil, err
	}
	return &legacy.Encrypted{SID: m.deviceID, Keys: []legacy.Key{key}, IV: iv}, nil
}

// DecryptLegacy decrypts a legacy <encrypted/> element received from the
// bare JID from (XEP-0384 0.3 §Receiving a message), as Decrypt does an
// OMEMO 2 one: it tries every <key> for this device id (legacy keys carry
// no JID, so another account's device may share the id), processes a
// key exchange (consuming and replacing the one-time prekey; a repeated
// one is decrypted with the session it built) or decrypts with the
// existing session, then decrypts and authenticates the payload (the
// body, in Decrypted.Body) or checks the key of a KeyTransportElement. All
// of it is one Store transaction that commits only when everything
// succeeded.
//
// The Decrypted identity key is in Ed25519 form; for a key exchange from a
// device without a legacy session its sign bit comes from the device's
// legacy bundle (SetLegacyBundle), its OMEMO 2 session or bundle, or a
// trust decision about one of the two forms; when none is known
// DecryptLegacy fails with ErrUnknownDevice: fetch the bundle and retry.
//
// Errors as for Decrypt, plus ErrUnknownDevice. After any error the store
// is unchanged.
func (m *Manager) DecryptLegacy(from jid.JID, e *legacy.Encrypted) (*Decrypted, error) {
	return m.DecryptLegacyWith(from, e, nil)
}

// DecryptLegacyWith is DecryptLegacy with fn run inside the same
// transaction after a successful decryption (see DecryptWith).
func (m *Manager) DecryptLegacyWith(from jid.JID, e *legacy.Encrypted, fn func(Tx, *Decrypted) error) (*Decrypted, error) {
	if e == nil || len(e.KeysFor(m.deviceID)) == 0 {
		return nil, ErrNotForThisDevice
	}
	return m.decryptCommitted(func(tx Tx) (*Decrypted, error) { return m.decryptLegacyTx(tx, from.Bare(), e) }, fn)
}

// legacyOpened is the outcome of one <key> that decrypted: nothing of it
// is stored yet.
type legacyOpened struct {
	d        *Decrypted
	rec      *LegacySessionRecord
	used     *PreKeyRecord
	usedBy   []byte // kexDigest of the key exchange that used it
	digest   [replayDigestSize]byte
	mismatch bool
}

// errRank orders the failures of the keys of one element: the most
// telling one is reported.
func errRank(err error) int {
	switch {
	case errors.Is(err, ErrIdentityMismatch):
		return 5
	case errors.Is(err, ErrDuplicate):
		return 4
	case errors.Is(err, ErrUnknownDevice):
		return 3
	case errors.Is(err, ErrNoSession):
		return 2
	case errors.Is(err, ErrDecryption):
		return 1
	}
	return 0
}

func (m *Manager) decryptLegacyTx(tx Tx, from jid.JID, e *legacy.Encrypted) (*Decrypted, error) {
	keys := e.KeysFor(m.deviceID)
	if len(keys) == 0 {
		return nil, ErrNotForThisDevice
	}
	a := Address{JID: from, Device: e.SID}
	if from.Equal(m.own) && e.SID == m.deviceID {
		return nil, ErrDecryption
	}
	log, err := optional(tx.ReplayLog(a))
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = &ReplayLog{addr: a}
	}
	rec, err := optional(tx.LegacySession(a))
	if err != nil {
		return nil, err
	}
	var res *legacyOpened
	var failure error = ErrDecryption
	for _, k := range keys {
		r, err := m.openLegacyKey(tx, a, e, k, log, rec)
		if err == nil && r.mismatch {
			err = ErrIdentityMismatch
		}
		if err == nil {
			res = r
			break
		}
		if errRank(err) == 0 {
			return nil, err // a store failure
		}
		if errRank(err) > errRank(failure) {
			failure = err
		}
	}
	if res == nil {
		return nil, failure
	}

	// Authenticated: from here on only commits.
	d, rec := res.d, res.rec
	catchUp := m.catchUp.Load()
	if res.used != nil {
		if err := m.consumePreKey(tx, res.used, res.usedBy, catchUp); err != nil {
			return nil, err
		}
		d.BundleChanged = true
	}
	if d.KeyExchange {
		d.SendEmpty = EmptyKeyExchange
	}
	s := rec.session
	if peer := s.PeerRatchetKey(); peer != nil && s.ReceivingChainLength() > HeartbeatThreshold && !bytes.Equal(rec.heartbeat, peer) {
		rec.heartbeat = peer
		if d.SendEmpty == EmptyNone {
			d.SendEmpty = EmptyHeartbeat
		}
	}
	if err := m.deferEmpty(tx, d, catchUp); err != nil {
		return nil, err
	}
	if err := tx.PutLegacySession(rec); err != nil {
		return nil, err
	}
	log.add(res.digest, m.now())
	if err := tx.PutReplayLog(log); err != nil {
		return nil, err
	}
	d.IdentityKey = bytes.Clone(rec.identityKey)
	if d.Trust, err = tx.Trust(from, rec.identityKey); err != nil {
		return nil, err
	}
	if l, err := optional(tx.LegacyDeviceList(from)); err != nil {
		return nil, err
	} else if l != nil {
		d.Listed = l.Contains(a.Device)
	}
	return d, nil
}

// openLegacyKey decrypts one <key> and the payload without storing
// anything. rec (possibly nil) is not modified. Failures caused by the
// message are ErrDecryption, ErrDuplicate, ErrNoSession or
// ErrUnknownDevice; others are store errors.
func (m *Manager) openLegacyKey(tx Tx, a Address, e *legacy.Encrypted, k legacy.Key, log *ReplayLog, rec *LegacySessionRecord) (*legacyOpened, error) {
	out := &legacyOpened{d: &Decrypted{Sender: a, Protocol: ProtocolLegacy, KeyExchange: k.PreKey}}
	if rec != nil {
		rec = rec.Clone()
	}
	var material []byte
	var err error
	if k.PreKey {
		kex, err := legacy.ParseKeyExchange(k.Data)
		if err != nil {
			return nil, ErrDecryption
		}
		out.digest = replayDigest(kex.SignalMessage())
		if log.contains(out.digest) {
			return nil, ErrDuplicate
		}
		// The key exchange that built one of the states, repeated until
		// this device answers (python-oldmemo builds_same_session).
		if rec != nil {
			for i := range rec.states() {
				st := rec.state(i)
				if !st.session.Matches(kex) {
					continue
				}
				if material, err = st.session.DecryptKeyExchange(kex); err != nil {
					return nil, legacyDecryptError(err)
				}
				rec.use(i)
				break
			}
		}
		if material == nil {
			if b, err := optional(tx.LegacyBundle(a)); err != nil {
				return nil, err
			} else if b != nil && !bytes.Equal(b.IdentityKey, kex.IdentityKey) {
				out.mismatch = true
			}
			if rec != nil && !bytes.Equal(rec.session.PeerIdentityKey(), kex.IdentityKey) {
				out.mismatch = true
			}
			ik, err := m.legacyIdentity(tx, a, kex.IdentityKey, rec)
			if errors.Is(err, ErrUnknownDevice) && out.mismatch {
				// Reported as a mismatch once the message authenticates;
				// the sign bit does not matter then.
				ik, err = legacy.Ed25519IdentityKey(kex.IdentityKey, 0)
				if err != nil {
					return nil, ErrDecryption
				}
			} else if err != nil {
				return nil, err
			}
			s, pk, m2, err := m.respondLegacy(tx, kex)
			if err != nil {
				return nil, err
			}
			st := legacyState{identityKey: ik, session: s}
			if rec == nil {
				rec = &LegacySessionRecord{addr: a, legacyState: st}
			} else {
				rec.replace(st)
			}
			out.used, out.usedBy, material = pk, kexDigest(kex.IdentityKey, kex.BaseKey), m2
			out.d.NewSession = true
		}
	} else {
		out.digest = replayDigest(k.Data)
		if log.contains(out.digest) {
			return nil, ErrDuplicate
		}
		if rec == nil {
			return nil, ErrNoSession
		}
		if material, err = rec.decrypt(k.Data); err != nil {
			return nil, err
		}
	}
	if e.Payload != nil {
		if out.d.Body, err = legacy.DecryptPayload(e.Payload, e.IV, material); err != nil {
			return nil, ErrDecryption
		}
		if out.d.Body == nil {
			out.d.Body = []byte{}
		}
	} else if _, err := legacy.TransportedKey(material); err != nil {
		return nil, ErrDecryption
	}
	out.rec = rec
	return out, nil
}

// decrypt decrypts a SignalMessage with the current state or, failing
// that, a previous one, which then becomes current.
func (r *LegacySessionRecord) decrypt(data []byte) ([]byte, error) {
	var first error
	for i := range r.states() {
		// legacy.Session.Decrypt changes the session only on success.
		material, err := r.state(i).session.Decrypt(data)
		if err == nil {
			r.use(i)
			return material, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, legacyDecryptError(first)
}

// legacyDecryptError maps the errors of package legacy to this package's.
func legacyDecryptError(err error) error {
	switch {
	case errors.Is(err, legacy.ErrDuplicate):
		return ErrDuplicate
	case errors.Is(err, legacy.ErrDecryption), errors.Is(err, legacy.ErrMalformed):
		return ErrDecryption
	}
	return err
}

// respondLegacy builds a legacy session from a received key exchange and
// decrypts its message (XEP-0384 0.3 §Receiving a message).
func (m *Manager) respondLegacy(tx Tx, kex *legacy.KeyExchange) (*legacy.Session, *PreKeyRecord, []byte, error) {
	pk, spk, err := m.exchangeKeys(tx, kex.PreKeyID, kex.SignedPreKeyID, kexDigest(kex.IdentityKey, kex.BaseKey))
	if err != nil {
		return nil, nil, nil, err
	}
	spkPriv, err := spk.ecdh()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("omemo: signed prekey %d: %w", spk.id, err)
	}
	pkPriv, err := pk.ecdh()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("omemo: prekey %d: %w", pk.id, err)
	}
	s, material, err := legacy.Respond(m.key, kex, spkPriv, pkPriv)
	if err != nil {
		return nil, nil, nil, legacyDecryptError(err)
	}
	return s, pk, material, nil
}

// exchangeKeys looks up the own prekey and signed prekey a key exchange
// names. A missing one (or prekey id 0, or a prekey already used by the
// same key exchange during catch-up) is ErrDecryption.
func (m *Manager) exchangeKeys(tx Tx, pkID, spkID uint32, usedBy []byte) (*PreKeyRecord, *SignedPreKeyRecord, error) {
	if pkID == 0 {
		return nil, nil, ErrDecryption
	}
	pk, err := tx.PreKey(pkID)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, ErrDecryption
	} else if err != nil {
		return nil, nil, err
	}
	if pk.hidden {
		// Used during this catch-up already: only by another initiator,
		// never by the same exchange again.
		for _, u := range pk.usedBy {
			if bytes.Equal(u, usedBy) {
				return nil, nil, ErrDecryption
			}
		}
	}
	spk, err := tx.SignedPreKey(spkID)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, ErrDecryption
	} else if err != nil {
		return nil, nil, err
	}
	return pk, spk, nil
}

// legacyIdentity returns the Ed25519 form of a legacy identity key (raw
// Curve25519) of device a, whose sign bit the key exchange does not carry
// (python-oldmemo parse_message takes it from the device's known identity).
// Sources, in order: a state of the legacy session with the device, its
// cached legacy bundle, its OMEMO 2 session or bundle, and a trust
// decision recorded for exactly one of the two forms. With none of them
// it is ErrUnknownDevice.
func (m *Manager) legacyIdentity(tx Tx, a Address, curve []byte, rec *LegacySessionRecord) ([]byte, error) {
	if rec != nil {
		for i := range rec.states() {
			if st := rec.state(i); bytes.Equal(st.session.PeerIdentityKey(), curve) {
				return bytes.Clone(st.identityKey), nil
			}
		}
	}
	if b, err := optional(tx.LegacyBundle(a)); err != nil {
		return nil, err
	} else if b != nil && bytes.Equal(b.IdentityKey, curve) {
		if ik, err := legacyBundleIdentity(b); err == nil {
			return ik, nil
		}
	}
	sameKey := func(ed []byte) bool {
		u, err := xeddsa.Ed25519PublicToCurve25519(ed)
		return err == nil && bytes.Equal(u, curve)
	}
	if r, err := optional(tx.Session(a)); err != nil {
		return nil, err
	} else if r != nil && sameKey(r.identityKey) {
		return bytes.Clone(r.identityKey), nil
	}
	if b, err := optional(tx.Bundle(a)); err != nil {
		return nil, err
	} else if b != nil && sameKey(b.IdentityKey) {
		return bytes.Clone(b.IdentityKey), nil
	}
	var found []byte
	for bit := range byte(2) {
		ed, err := legacy.Ed25519IdentityKey(curve, bit)
		if err != nil {
			return nil, ErrDecryption
		}
		level, err := tx.Trust(a.JID, ed)
		if err != nil {
			return nil, err
		}
		if level != TrustUndecided {
			if found != nil {
				return nil, ErrUnknownDevice
			}
			found = ed
		}
	}
	if found == nil {
		return nil, ErrUnknownDevice
	}
	return found, nil
}
