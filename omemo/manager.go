package omemo

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sync/atomic"
	"time"

	"hush.im/internal/ratchet"
	"hush.im/internal/wire"
	"hush.im/internal/x3dh"
	"hush.im/internal/xeddsa"
	"mellium.im/xmpp/jid"
)

// Options configures a Manager. The zero value (or nil) gives the XEP's
// recommendations and ManualTrust.
type Options struct {
	// Trust decides which devices are encrypted to; nil means ManualTrust.
	Trust TrustPolicy
	// Now is the clock for signed prekey rotation; nil means time.Now.
	Now func() time.Time
	// PreKeys is the number of one-time prekeys published; 0 means
	// DefaultPreKeys. At least MinPreKeys.
	PreKeys int
	// PreKeyRefillThreshold: when fewer unused prekeys than this remain,
	// new ones are generated up to PreKeys. 0 means PreKeys, i.e. every
	// used prekey is replaced at once. Between MinPreKeys and PreKeys.
	PreKeyRefillThreshold int
	// SignedPreKeyRotation is the signed prekey's lifetime; 0 means
	// DefaultSignedPreKeyRotation.
	SignedPreKeyRotation time.Duration
	// SignedPreKeyGrace is how long a replaced signed prekey is kept for
	// late key exchanges; 0 means one rotation period (XEP-0384 §4.2).
	SignedPreKeyGrace time.Duration
	// Label is the device label set when New creates a new identity.
	Label string
}

// Manager is the OMEMO 2 engine of one device of one account. It is safe
// for concurrent use: every method is one Store transaction.
type Manager struct {
	own      jid.JID
	store    Store
	deviceID uint32
	key      *xeddsa.PrivateKey // identity key, secret
	ik       []byte             // Ed25519 form of key

	trust    TrustPolicy
	now      func() time.Time
	preKeys  int
	refill   int
	rotation time.Duration
	grace    time.Duration

	catchUp atomic.Bool
}

// New returns the Manager of the device whose state is in store, for the
// account own (a bare JID). When the store holds no identity yet, New
// creates one in the same transaction: an identity key, a random device id
// that is not on the own device list stored so far (XEP-0384 §6: check
// before publishing), a signed prekey and opts.PreKeys prekeys. Callers
// that can fetch the own device list should store it with SetDeviceList
// first; see also Manager.AnnounceDevice.
func New(own jid.JID, store Store, opts *Options) (*Manager, error) {
	if opts == nil {
		opts = &Options{}
	}
	own = own.Bare()
	if own.Domainpart() == "" {
		return nil, errors.New("omemo: own JID has no domain")
	}
	m := &Manager{
		own: own, store: store, trust: opts.Trust, now: opts.Now,
		preKeys: opts.PreKeys, refill: opts.PreKeyRefillThreshold,
		rotation: opts.SignedPreKeyRotation, grace: opts.SignedPreKeyGrace,
	}
	if m.trust == nil {
		m.trust = ManualTrust{}
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.preKeys == 0 {
		m.preKeys = DefaultPreKeys
	}
	if m.refill == 0 {
		m.refill = m.preKeys
	}
	if m.preKeys < MinPreKeys || m.refill < MinPreKeys || m.refill > m.preKeys {
		return nil, fmt.Errorf("omemo: prekey count %d and refill threshold %d must satisfy %d ≤ threshold ≤ count", m.preKeys, m.refill, MinPreKeys)
	}
	if m.rotation == 0 {
		m.rotation = DefaultSignedPreKeyRotation
	}
	if m.grace == 0 {
		m.grace = m.rotation
	}
	if m.rotation < 0 || m.grace < 0 {
		return nil, errors.New("omemo: negative signed prekey period")
	}
	if err := checkOwnLabel(opts.Label); err != nil {
		return nil, err
	}
	err := store.Update(func(tx Tx) error {
		id, err := tx.Identity()
		if errors.Is(err, ErrNotFound) {
			taken, err := tx.DeviceList(own)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			if id, err = newIdentity(taken); err != nil {
				return err
			}
			if opts.Label != "" {
				id.label = opts.Label
				if id.labelSig, err = signLabel(id.key, opts.Label); err != nil {
					return err
				}
			}
			if _, err := m.maintain(tx, id, true); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		m.deviceID, m.key, m.ik = id.deviceID, id.key, id.key.Ed25519Public()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// JID returns the own bare JID.
func (m *Manager) JID() jid.JID { return m.own }

// DeviceID returns this device's id.
func (m *Manager) DeviceID() uint32 { return m.deviceID }

// Address returns this device's address.
func (m *Manager) Address() Address { return Address{JID: m.own, Device: m.deviceID} }

// IdentityKey returns this device's public identity key, Ed25519 form.
func (m *Manager) IdentityKey() []byte { return bytes.Clone(m.ik) }

// maintain rotates the signed prekey when it is due, deletes replaced
// signed prekeys past their grace period and refills the one-time prekeys.
// It stores id when a counter moved and reports whether the published
// bundle changed.
func (m *Manager) maintain(tx Tx, id *IdentityRecord, rotate bool) (bool, error) {
	now := m.now()
	changed := false
	before := [2]uint32{id.nextPreKey, id.nextSPK}
	spks, err := tx.SignedPreKeys()
	if err != nil || !rotate {
		spks = nil
	}
	if err != nil {
		return false, err
	}
	var current *SignedPreKeyRecord
	for _, s := range spks {
		if s.retired.IsZero() && (current == nil || s.id > current.id) {
			current = s
		}
	}
	if rotate && (current == nil || now.Sub(current.created) >= m.rotation) {
		s, err := newSignedPreKey(id, now)
		if err != nil {
			return false, err
		}
		if err := tx.PutSignedPreKey(s); err != nil {
			return false, err
		}
		if current != nil {
			current.retired = now.UTC().Truncate(time.Second)
			if err := tx.PutSignedPreKey(current); err != nil {
				return false, err
			}
		}
		changed = true
	}
	for _, s := range spks {
		// Every signed prekey other than the current one is retired: one
		// that is older than the grace period goes (XEP-0384 §4.2: keep
		// the old one "for another rotation period").
		if s != current && !s.retired.IsZero() && now.Sub(s.retired) >= m.grace {
			if err := tx.DeleteSignedPreKey(s.id); err != nil {
				return false, err
			}
		}
	}
	pks, err := tx.PreKeys()
	if err != nil {
		return false, err
	}
	visible := 0
	for _, pk := range pks {
		if !pk.hidden {
			visible++
		}
	}
	if visible < m.refill {
		if err := newPreKeys(tx, id, m.preKeys-visible); err != nil {
			return false, err
		}
		changed = true
	}
	if before != [2]uint32{id.nextPreKey, id.nextSPK} || changed {
		if err := tx.PutIdentity(id); err != nil {
			return false, err
		}
	}
	return changed, nil
}

// Refresh does the periodic prekey hygiene: it rotates the signed prekey
// when it is older than Options.SignedPreKeyRotation, deletes replaced
// signed prekeys after Options.SignedPreKeyGrace, and refills one-time
// prekeys. When it reports true the bundle changed and must be
// republished (Bundle). Call it at start-up and then, say, daily.
func (m *Manager) Refresh() (bundleChanged bool, err error) {
	err = m.store.Update(func(tx Tx) error {
		id, err := tx.Identity()
		if err != nil {
			return err
		}
		bundleChanged, err = m.maintain(tx, id, true)
		return err
	})
	return bundleChanged, err
}

// Bundle returns this device's bundle to publish at item id DeviceID of
// NodeBundles (XEP-0384 §5.3.2): the current signed prekey and every
// unused one-time prekey.
func (m *Manager) Bundle() (*Bundle, error) {
	var b *Bundle
	err := m.store.View(func(tx Tx) error {
		var err error
		b, err = m.bundle(tx)
		return err
	})
	return b, err
}

func (m *Manager) bundle(tx Tx) (*Bundle, error) {
	spks, err := tx.SignedPreKeys()
	if err != nil {
		return nil, err
	}
	var current *SignedPreKeyRecord
	for _, s := range spks {
		if s.retired.IsZero() && (current == nil || s.id > current.id) {
			current = s
		}
	}
	if current == nil {
		return nil, errors.New("omemo: no current signed prekey")
	}
	pks, err := tx.PreKeys()
	if err != nil {
		return nil, err
	}
	b := &Bundle{
		SignedPreKeyID:        current.id,
		SignedPreKey:          current.Public(),
		SignedPreKeySignature: current.Signature(),
		IdentityKey:           bytes.Clone(m.ik),
	}
	for _, pk := range pks {
		if !pk.hidden {
			b.PreKeys = append(b.PreKeys, PreKey{ID: pk.id, Key: pk.Public()})
		}
	}
	return b, nil
}

// SetLabel sets (or with "" removes) this device's label and signs it
// (XEP-0384 §5.3.1). The label must be at most MaxOwnLabelRunes code
// points. Publish the result of AnnounceDevice afterwards.
//
// Interop: python-twomemo 1.0.3 (the reference, used by Gajim and others)
// validates device lists against the 0.8 schema, which has no labelsig,
// and rejects the whole list when it meets one; with a label set, such
// peers can no longer see any device of the account. Labels are off by
// default.
func (m *Manager) SetLabel(label string) error {
	if err := checkOwnLabel(label); err != nil {
		return err
	}
	return m.store.Update(func(tx Tx) error {
		id, err := tx.Identity()
		if err != nil {
			return err
		}
		id.label, id.labelSig = label, nil
		if label != "" {
			if id.labelSig, err = signLabel(id.key, label); err != nil {
				return err
			}
		}
		return tx.PutIdentity(id)
	})
}

// AnnounceDevice returns the own device list to publish at item
// DevicesItemID of NodeDevices: current (the list last fetched, nil for
// none) with this device added, or its label updated. changed is false
// when current already announces this device exactly so (XEP-0384 §5.3.1:
// re-announce when missing).
func (m *Manager) AnnounceDevice(current *DeviceList) (l *DeviceList, changed bool, err error) {
	var self Device
	err = m.store.View(func(tx Tx) error {
		id, err := tx.Identity()
		if err != nil {
			return err
		}
		self = Device{ID: id.deviceID, Label: id.label, LabelSig: bytes.Clone(id.labelSig)}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	l = &DeviceList{}
	found := false
	if current != nil {
		for _, d := range current.Devices {
			if d.ID == self.ID {
				found = true
				changed = d.Label != self.Label || !bytes.Equal(d.LabelSig, self.LabelSig)
				d = self
			}
			l.Devices = append(l.Devices, d)
		}
	}
	if !found {
		if len(l.Devices) >= MaxDevices {
			return nil, false, fmt.Errorf("omemo: own device list already has %d devices", MaxDevices)
		}
		l.Devices = append(l.Devices, self)
		changed = true
	}
	return l, changed, nil
}

// SetDeviceList records the device list of a bare JID, received from PEP
// (XEP-0384 §5.3.1). Devices no longer listed become inactive: no message
// is encrypted to them, their sessions are kept. For the own JID,
// announce reports that this device is missing from the list, which the
// XEP says MUST be corrected (AnnounceDevice).
func (m *Manager) SetDeviceList(bare jid.JID, l *DeviceList) (announce bool, err error) {
	bare = bare.Bare()
	if l == nil {
		l = &DeviceList{}
	}
	err = m.store.Update(func(tx Tx) error {
		return tx.PutDeviceList(bare, l.Clone())
	})
	if err != nil {
		return false, err
	}
	return bare.Equal(m.own) && !l.Contains(m.deviceID), nil
}

// SetBundle records the bundle of a remote device, fetched from PEP
// (XEP-0384 §5.4), for building a session when one is needed. It is
// checked when used, not here, except that a bundle whose identity key
// differs from that of an existing session with the device is refused with
// ErrIdentityMismatch.
func (m *Manager) SetBundle(a Address, b *Bundle) error {
	a.JID = a.JID.Bare()
	if !ValidDeviceID(a.Device) || b == nil {
		return fmt.Errorf("omemo: %w: invalid bundle address", ErrMalformed)
	}
	if a.JID.Equal(m.own) && a.Device == m.deviceID {
		return errors.New("omemo: refusing to store a bundle for this device")
	}
	return m.store.Update(func(tx Tx) error {
		rec, err := tx.Session(a)
		if err == nil && !bytes.Equal(rec.identityKey, b.IdentityKey) {
			return ErrIdentityMismatch
		} else if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		return tx.PutBundle(a, b.Clone())
	})
}

// NeedBundles returns the devices of the recipients (and the other own
// devices) that have neither a session nor a stored bundle: fetch their
// bundles and give them to SetBundle before Encrypt, which otherwise
// reports ReasonNoBundle for them. It also returns the recipients whose
// device list is unknown.
func (m *Manager) NeedBundles(recipients ...jid.JID) (devices []Address, noList []jid.JID, err error) {
	err = m.store.View(func(tx Tx) error {
		for _, j := range m.recipientJIDs(recipients) {
			l, err := tx.DeviceList(j)
			if errors.Is(err, ErrNotFound) {
				if !j.Equal(m.own) {
					noList = append(noList, j)
				}
				continue
			} else if err != nil {
				return err
			}
			for _, d := range l.Devices {
				a := Address{JID: j, Device: d.ID}
				if j.Equal(m.own) && d.ID == m.deviceID {
					continue
				}
				if _, err := tx.Session(a); err == nil {
					continue
				} else if !errors.Is(err, ErrNotFound) {
					return err
				}
				if _, err := tx.Bundle(a); err == nil {
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

// SetTrust records the trust level of an identity key (Ed25519 form) of a
// bare JID.
func (m *Manager) SetTrust(bare jid.JID, identityKey []byte, level TrustLevel) error {
	if len(identityKey) != PublicKeySize || level > TrustDistrusted {
		return errors.New("omemo: invalid identity key or trust level")
	}
	return m.store.Update(func(tx Tx) error {
		return tx.PutTrust(bare.Bare(), identityKey, level)
	})
}

// Devices returns what is known about the devices of a bare JID: those on
// its device list and those with a session, in increasing id order. For
// the own JID this device is left out.
func (m *Manager) Devices(bare jid.JID) ([]DeviceInfo, error) {
	bare = bare.Bare()
	var out []DeviceInfo
	err := m.store.View(func(tx Tx) error {
		l, err := tx.DeviceList(bare)
		if errors.Is(err, ErrNotFound) {
			l = &DeviceList{}
		} else if err != nil {
			return err
		}
		ids, err := tx.SessionDevices(bare)
		if err != nil {
			return err
		}
		for _, d := range l.Devices {
			if !slices.Contains(ids, d.ID) {
				ids = append(ids, d.ID)
			}
		}
		slices.Sort(ids)
		for _, id := range ids {
			if bare.Equal(m.own) && id == m.deviceID {
				continue
			}
			info, err := m.deviceInfo(tx, Address{JID: bare, Device: id}, l)
			if err != nil {
				return err
			}
			out = append(out, info)
		}
		return nil
	})
	return out, err
}

func (m *Manager) deviceInfo(tx Tx, a Address, l *DeviceList) (DeviceInfo, error) {
	info := DeviceInfo{Address: a, Own: a.JID.Equal(m.own)}
	if rec, err := tx.Session(a); err == nil {
		info.Session, info.IdentityKey = true, rec.identityKey
	} else if !errors.Is(err, ErrNotFound) {
		return info, err
	} else if b, err := tx.Bundle(a); err == nil {
		info.IdentityKey = b.IdentityKey
	} else if !errors.Is(err, ErrNotFound) {
		return info, err
	}
	for _, d := range l.Devices {
		if d.ID == a.Device {
			info.Listed = true
			if VerifyLabel(info.IdentityKey, d) {
				info.Label = d.Label
			}
		}
	}
	if info.IdentityKey != nil {
		var err error
		if info.Trust, err = tx.Trust(a.JID, info.IdentityKey); err != nil {
			return info, err
		}
	}
	return info, nil
}

// ResetSession deletes the session with a device (XEP-0384 §6: clients
// MUST offer to replace broken sessions). The next message to it builds a
// new session from its bundle; fetch a fresh one first (SetBundle), then
// send EncryptEmpty to it so that it learns about the new session.
func (m *Manager) ResetSession(a Address) error {
	a.JID = a.JID.Bare()
	return m.store.Update(func(tx Tx) error {
		if _, err := tx.Session(a); err != nil {
			return err
		}
		return tx.DeleteSession(a)
	})
}

// ForgetDevice deletes everything known about a remote device: session,
// cached bundle and replay log. Use it when a device's identity key really
// changed (ErrIdentityMismatch) and the user accepted the new one.
func (m *Manager) ForgetDevice(a Address) error {
	a.JID = a.JID.Bare()
	return m.store.Update(func(tx Tx) error {
		if err := tx.DeleteSession(a); err != nil {
			return err
		}
		if err := tx.DeleteBundle(a); err != nil {
			return err
		}
		return tx.DeleteReplayLog(a)
	})
}

// BeginCatchUp enters archive catch-up mode (XEP-0384 §6, python-omemo
// history synchronization): prekeys used by key exchanges are kept, though
// no longer published, until EndCatchUp, in case two initiators picked the
// same one; and empty messages owed to devices are queued instead of asked
// for, one per device.
func (m *Manager) BeginCatchUp() { m.catchUp.Store(true) }

// EndCatchUp leaves catch-up mode: it deletes the prekeys used during it
// and returns the devices owed an empty message (send EncryptEmpty to
// each; the XEP requires one right after a key exchange completed during
// catch-up).
func (m *Manager) EndCatchUp() (pending []Address, err error) {
	m.catchUp.Store(false)
	err = m.store.Update(func(tx Tx) error {
		pks, err := tx.PreKeys()
		if err != nil {
			return err
		}
		for _, pk := range pks {
			if pk.hidden {
				if err := tx.DeletePreKey(pk.id); err != nil {
					return err
				}
			}
		}
		p, err := tx.Pending()
		if errors.Is(err, ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		pending = p.Devices
		return tx.PutPending(&PendingRecord{})
	})
	return pending, err
}

// recipientJIDs returns the bare recipients without duplicates, in order,
// with the own JID last.
func (m *Manager) recipientJIDs(recipients []jid.JID) []jid.JID {
	out := make([]jid.JID, 0, len(recipients)+1)
	seen := make(map[string]bool, len(recipients)+1)
	seen[m.own.String()] = true
	for _, r := range recipients {
		r = r.Bare()
		if !seen[r.String()] {
			seen[r.String()] = true
			out = append(out, r)
		}
	}
	return append(out, m.own)
}

// Encrypt encrypts an SCE envelope (the serialized <envelope/>, XEP-0420)
// for every device of every recipient bare JID and every other own device
// (XEP-0384 §4.4, §5.5): one payload key, wrapped through the session with
// each device, building sessions from stored bundles where needed (X3DH,
// with a random prekey other than id 0). Devices are those on each
// account's last device list that the TrustPolicy allows. A session whose
// key exchange was not answered yet carries it again (kex='true').
//
// The Report says for every device whether it got a key and why not. If a
// recipient other than the own JID has no device that got a key, Encrypt
// fails with *NoEligibleDevicesError and changes nothing; it fails with
// ErrNoRecipients when no device at all got a key. Most callers want
// SealStanza.
func (m *Manager) Encrypt(envelope []byte, recipients ...jid.JID) (*Encrypted, *Report, error) {
	if len(envelope) == 0 || len(envelope) > MaxPayloadSize-16 {
		return nil, nil, errors.New("omemo: envelope empty or too large")
	}
	ct, material, err := sealPayload(envelope)
	if err != nil {
		return nil, nil, err
	}
	var enc *Encrypted
	var rep *Report
	err = m.store.Update(func(tx Tx) error {
		var err error
		enc, rep, err = m.encryptTx(tx, material, recipients)
		return err
	})
	if err != nil {
		return nil, rep, err
	}
	enc.Payload = ct
	return enc, rep, nil
}

func (m *Manager) encryptTx(tx Tx, material []byte, recipients []jid.JID) (*Encrypted, *Report, error) {
	rep := &Report{}
	enc := &Encrypted{SID: m.deviceID, Keys: make([]Keys, 0, len(recipients)+1)}
	var none []jid.JID
	for _, j := range m.recipientJIDs(recipients) {
		own := j.Equal(m.own)
		l, err := tx.DeviceList(j)
		if errors.Is(err, ErrNotFound) {
			if !own {
				rep.Devices = append(rep.Devices, DeviceReport{JID: j, Reason: ReasonNoDeviceList})
				none = append(none, j)
			}
			continue
		} else if err != nil {
			return nil, rep, err
		}
		ks := Keys{JID: j, Keys: make([]Key, 0, len(l.Devices))}
		rep.Devices = slices.Grow(rep.Devices, len(l.Devices))
		for _, d := range l.Devices {
			if own && d.ID == m.deviceID {
				continue
			}
			dr, key, err := m.encryptDevice(tx, Address{JID: j, Device: d.ID}, material, own)
			if err != nil {
				return nil, rep, err
			}
			rep.Devices = append(rep.Devices, dr)
			if key != nil {
				ks.Keys = append(ks.Keys, *key)
			}
		}
		ids, err := tx.SessionDevices(j)
		if err != nil {
			return nil, rep, err
		}
		listed := make(map[uint32]bool, len(l.Devices))
		for _, d := range l.Devices {
			listed[d.ID] = true
		}
		for _, id := range ids {
			if !listed[id] && !(own && id == m.deviceID) {
				rep.Devices = append(rep.Devices, DeviceReport{JID: j, DeviceID: id, Reason: ReasonInactive})
			}
		}
		if len(ks.Keys) > 0 {
			enc.Keys = append(enc.Keys, ks)
		} else if !own {
			none = append(none, j)
		}
	}
	if len(none) > 0 {
		return nil, rep, &NoEligibleDevicesError{JIDs: none, Report: rep}
	}
	if len(enc.Keys) == 0 {
		return nil, rep, ErrNoRecipients
	}
	return enc, rep, nil
}

// encryptDevice wraps material for one device. A nil key with a nil error
// means the device was skipped for the reason in the report; an error is a
// store failure that aborts the transaction.
func (m *Manager) encryptDevice(tx Tx, a Address, material []byte, own bool) (DeviceReport, *Key, error) {
	dr := DeviceReport{JID: a.JID, DeviceID: a.Device}
	rec, err := tx.Session(a)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return dr, nil, err
	}
	var b *Bundle
	info := DeviceInfo{Address: a, Own: own, Listed: true, Session: rec != nil}
	if rec != nil {
		info.IdentityKey = rec.identityKey
	} else {
		b, err = tx.Bundle(a)
		if errors.Is(err, ErrNotFound) {
			dr.Reason = ReasonNoBundle
			return dr, nil, nil
		} else if err != nil {
			return dr, nil, err
		}
		info.IdentityKey = b.IdentityKey
	}
	if info.Trust, err = tx.Trust(a.JID, info.IdentityKey); err != nil {
		return dr, nil, err
	}
	if !m.trust.Allow(info) {
		dr.Reason = ReasonUntrusted
		return dr, nil, nil
	}
	if rec == nil {
		if rec, err = m.initiate(tx, a, b); err != nil {
			if errors.Is(err, errStore) {
				return dr, nil, err
			}
			dr.Reason, dr.Err = ReasonInvalidBundle, err
			return dr, nil, nil
		}
		dr.NewSession = true
	}
	key, err := m.seal(rec, material)
	if err != nil {
		return dr, nil, err
	}
	if err := tx.PutSession(rec); err != nil {
		return dr, nil, err
	}
	dr.KEX = key.KEX
	return dr, &key, nil
}

// errStore marks store failures inside initiate, which abort the
// transaction instead of marking the bundle invalid.
var errStore = errors.New("omemo: store")

var errNoPreKey = errors.New("omemo: bundle offers no usable prekey")

// initiate builds a session with a device from its bundle (XEP-0384 §5.4,
// X3DH as initiator) with a random prekey other than id 0, and removes that
// prekey from the stored bundle so that it is never picked again.
func (m *Manager) initiate(tx Tx, a Address, b *Bundle) (*SessionRecord, error) {
	var usable []PreKey
	for _, pk := range b.PreKeys {
		if pk.ID != 0 {
			usable = append(usable, pk)
		}
	}
	if len(usable) == 0 {
		return nil, errNoPreKey
	}
	i, err := rand.Int(rand.Reader, big.NewInt(int64(len(usable))))
	if err != nil {
		return nil, err
	}
	pk := usable[i.Int64()]
	in, err := x3dh.OMEMO2.Initiate(m.key, &x3dh.Bundle{
		IdentityKey:           b.IdentityKey,
		SignedPreKey:          b.SignedPreKey,
		SignedPreKeySignature: b.SignedPreKeySignature,
		SignedPreKeyID:        b.SignedPreKeyID,
		PreKey:                pk.Key,
		PreKeyID:              pk.ID,
	})
	if err != nil {
		return nil, err
	}
	r, err := ratchet.NewInitiator(ratchet.OMEMO2, in.SharedSecret, in.AssociatedData, b.SignedPreKey)
	if err != nil {
		return nil, err
	}
	rest := *b
	rest.PreKeys = slices.DeleteFunc(slices.Clone(b.PreKeys), func(p PreKey) bool { return p.ID == pk.ID })
	if len(rest.PreKeys) == 0 {
		err = tx.DeleteBundle(a)
	} else {
		err = tx.PutBundle(a, &rest)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errStore, err)
	}
	return &SessionRecord{addr: a, sessionState: sessionState{
		identityKey: bytes.Clone(b.IdentityKey),
		initiator:   true,
		pkID:        in.PreKeyID,
		spkID:       in.SignedPreKeyID,
		ek:          in.Ephemeral,
		ratchet:     r,
	}}, nil
}

// seal ratchet-encrypts material with rec and wraps the result in an
// OMEMOKeyExchange while the session is an unanswered initiator (XEP-0384
// §4.3: repeat the key exchange until the peer responds).
func (m *Manager) seal(rec *SessionRecord, material []byte) (Key, error) {
	msg, err := rec.ratchet.Encrypt(material)
	if err != nil {
		return Key{}, err
	}
	key := Key{RID: rec.addr.Device, Data: msg}
	if rec.initiator && !rec.confirmed {
		kex := wire.OMEMOKeyExchange{PKID: rec.pkID, SPKID: rec.spkID, IK: m.ik, EK: rec.ek}
		if err := kex.Message.Unmarshal(msg); err != nil {
			return Key{}, err
		}
		key.KEX, key.Data = true, kex.Marshal()
	}
	return key, nil
}

// EncryptEmpty returns an empty OMEMO message (XEP-0384 §5.5.3: 32 zero
// bytes through the session, no payload) for one device: the answer to a
// key exchange, a heartbeat, or the announcement of a new session. It
// uses the existing session or builds one from a stored bundle; the trust
// policy does not apply (§8). Send it to a.JID.
func (m *Manager) EncryptEmpty(a Address) (*Encrypted, error) {
	a.JID = a.JID.Bare()
	var key Key
	err := m.store.Update(func(tx Tx) error {
		rec, err := tx.Session(a)
		if errors.Is(err, ErrNotFound) {
			b, err := tx.Bundle(a)
			if errors.Is(err, ErrNotFound) {
				return ErrUnknownDevice
			} else if err != nil {
				return err
			}
			if rec, err = m.initiate(tx, a, b); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		if key, err = m.seal(rec, emptyMaterial[:]); err != nil {
			return err
		}
		return tx.PutSession(rec)
	})
	if err != nil {
		return nil, err
	}
	return &Encrypted{SID: m.deviceID, Keys: []Keys{{JID: a.JID, Keys: []Key{key}}}}, nil
}

// EmptyReason says why an empty OMEMO message is owed to a device.
type EmptyReason uint8

// Reasons for an empty OMEMO message.
const (
	// EmptyNone: nothing to send.
	EmptyNone EmptyReason = iota
	// EmptyKeyExchange: a key exchange was received; the answer tells the
	// sender to stop sending it (XEP-0384 §6).
	EmptyKeyExchange
	// EmptyHeartbeat: HeartbeatThreshold messages arrived on one ratchet
	// chain without an answer (XEP-0384 §6).
	EmptyHeartbeat
)

// HeartbeatThreshold is XEP-0384 §6's number: when the first message with
// a counter of 53 or higher arrives for a given ratchet key, a heartbeat
// (an empty message) MUST be sent.
const HeartbeatThreshold = ratchet.HeartbeatThreshold

// Decrypted is the outcome of a successful Decrypt.
type Decrypted struct {
	// Sender is the sending device.
	Sender Address
	// IdentityKey is the sender's identity key (Ed25519 form) and Trust
	// its recorded trust level. XEP-0384 §8: messages from untrusted
	// devices MAY be shown but SHOULD be marked.
	IdentityKey []byte
	Trust       TrustLevel
	// Envelope is the decrypted SCE envelope, nil for an empty OMEMO
	// message. It must be verified (package sce) before use.
	Envelope []byte
	// KeyExchange is true when the message carried an OMEMOKeyExchange;
	// NewSession when it built a new session (replacing any old one).
	KeyExchange bool
	NewSession  bool
	// Listed is false when the sender is not on the last device list seen
	// for its JID: XEP-0384 §6 says to refetch that list.
	Listed bool
	// SendEmpty, when not EmptyNone, asks the caller to send
	// EncryptEmpty(Sender) now. During catch-up it stays EmptyNone and the
	// device is queued for EndCatchUp instead.
	SendEmpty EmptyReason
	// BundleChanged is true when a prekey was used: republish Bundle()
	// (XEP-0384 §5.6).
	BundleChanged bool
}

// Decrypt decrypts an <encrypted/> element received from the bare JID
// from (XEP-0384 §5.6): it finds the key for this device, processes a key
// exchange (consuming and replacing the one-time prekey) or decrypts with
// the existing session, then decrypts and authenticates the payload. All
// of it happens in one Store transaction that commits only when
// everything succeeded.
//
// Errors: ErrNotForThisDevice, ErrDuplicate (drop quietly), ErrNoSession,
// ErrIdentityMismatch, ErrDecryption for everything cryptographic, and
// store errors. After any error the store is unchanged.
func (m *Manager) Decrypt(from jid.JID, e *Encrypted) (*Decrypted, error) {
	return m.DecryptWith(from, e, nil)
}

// DecryptWith is Decrypt with fn run inside the same transaction after a
// successful decryption, so that a caller can commit the decrypted message
// (for example to an inbox in the same Store) together with the ratchet
// step: if fn fails, nothing is committed (DESIGN: a decrypted message is
// never lost).
func (m *Manager) DecryptWith(from jid.JID, e *Encrypted, fn func(Tx, *Decrypted) error) (*Decrypted, error) {
	if e == nil || e.Find(m.own, m.deviceID) == nil {
		return nil, ErrNotForThisDevice
	}
	var out *Decrypted
	err := m.store.Update(func(tx Tx) error {
		d, err := m.decryptTx(tx, from.Bare(), e)
		if err != nil {
			return err
		}
		if fn != nil {
			if err := fn(tx, d); err != nil {
				return err
			}
		}
		out = d
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// errDecrypt marks failures that become ErrDecryption.
var errDecrypt = errors.New("omemo: decrypt")

func replayDigest(auth []byte) (d [replayDigestSize]byte) {
	h := sha256.Sum256(auth)
	copy(d[:], h[:])
	return d
}

func kexDigest(ik, ek []byte) []byte {
	h := sha256.New()
	h.Write(ik)
	h.Write(ek)
	return h.Sum(nil)
}

func (m *Manager) decryptTx(tx Tx, from jid.JID, e *Encrypted) (*Decrypted, error) {
	k := e.Find(m.own, m.deviceID)
	if k == nil {
		return nil, ErrNotForThisDevice
	}
	a := Address{JID: from, Device: e.SID}
	if from.Equal(m.own) && e.SID == m.deviceID {
		return nil, ErrDecryption
	}
	var kex wire.OMEMOKeyExchange
	auth := k.Data
	if k.KEX {
		if err := kex.Unmarshal(k.Data); err != nil {
			return nil, ErrDecryption
		}
		auth = kex.Message.Marshal()
	}
	digest := replayDigest(auth)
	log, err := tx.ReplayLog(a)
	if errors.Is(err, ErrNotFound) {
		log = &ReplayLog{addr: a}
	} else if err != nil {
		return nil, err
	}
	if log.contains(digest) {
		return nil, ErrDuplicate
	}
	rec, err := tx.Session(a)
	if errors.Is(err, ErrNotFound) {
		rec = nil
	} else if err != nil {
		return nil, err
	}

	d := &Decrypted{Sender: a, KeyExchange: k.KEX}
	var material []byte
	var used *PreKeyRecord
	// mismatch: the key exchange names an identity key other than the one
	// known for the device. Reported only if the message authenticates,
	// so that a forged key exchange is a plain decryption failure.
	mismatch := false
	switch {
	case k.KEX:
		mismatch = rec != nil && !bytes.Equal(rec.identityKey, kex.IK)
		if b, err := tx.Bundle(a); err == nil && !bytes.Equal(b.IdentityKey, kex.IK) {
			mismatch = true
		} else if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		if rec != nil {
			// The key exchange that built this session (or a previous
			// one), repeated until we answer (python-twomemo
			// builds_same_session).
			if i := rec.built(&kex); i >= 0 {
				st := &rec.sessionState
				if i > 0 {
					st = &rec.previous[i-1]
				}
				if material, err = st.ratchet.Decrypt(auth); err != nil {
					return nil, ErrDecryption
				}
				if i > 0 {
					rec.promote(i - 1)
				}
				break
			}
		}
		st, pk, m2, err := m.respond(tx, &kex, auth)
		if errors.Is(err, errDecrypt) {
			return nil, ErrDecryption
		} else if err != nil {
			return nil, err
		}
		if rec == nil {
			rec = &SessionRecord{addr: a, sessionState: st}
		} else {
			rec.replace(st)
		}
		used, material = pk, m2
		d.NewSession = true
	case rec == nil:
		return nil, ErrNoSession
	default:
		if material, err = rec.decrypt(auth); err != nil {
			return nil, ErrDecryption
		}
		rec.confirmed = true
	}

	if e.Payload != nil {
		if d.Envelope, err = openPayload(e.Payload, material); err != nil {
			return nil, ErrDecryption
		}
	} else if !bytes.Equal(material, emptyMaterial[:]) {
		// An empty message carries 32 zero bytes (XEP-0384 §5.5.3); key
		// material for a payload without the payload is a stripped
		// message, not an empty one.
		return nil, ErrDecryption
	}

	if mismatch {
		return nil, ErrIdentityMismatch
	}

	// Authenticated: from here on only commits.
	catchUp := m.catchUp.Load()
	if used != nil {
		if catchUp {
			used.hidden = true
			if len(used.usedBy) < maxPreKeyUses {
				used.usedBy = append(used.usedBy, kexDigest(kex.IK, kex.EK))
			}
			err = tx.PutPreKey(used)
		} else {
			err = tx.DeletePreKey(used.id)
		}
		if err != nil {
			return nil, err
		}
		id, err := tx.Identity()
		if err != nil {
			return nil, err
		}
		if _, err := m.maintain(tx, id, false); err != nil {
			return nil, err
		}
		d.BundleChanged = true
	}
	if k.KEX {
		d.SendEmpty = EmptyKeyExchange
	}
	if peer := rec.ratchet.PeerRatchetKey(); rec.ratchet.ReceivingChainLength() > HeartbeatThreshold && !bytes.Equal(rec.heartbeat, peer) {
		rec.heartbeat = peer
		if d.SendEmpty == EmptyNone {
			d.SendEmpty = EmptyHeartbeat
		}
	}
	if d.SendEmpty != EmptyNone && catchUp {
		p, err := tx.Pending()
		if errors.Is(err, ErrNotFound) {
			p = &PendingRecord{}
		} else if err != nil {
			return nil, err
		}
		p.add(a)
		if err := tx.PutPending(p); err != nil {
			return nil, err
		}
		d.SendEmpty = EmptyNone
	}
	if err := tx.PutSession(rec); err != nil {
		return nil, err
	}
	log.add(digest)
	if err := tx.PutReplayLog(log); err != nil {
		return nil, err
	}
	d.IdentityKey = bytes.Clone(rec.identityKey)
	if d.Trust, err = tx.Trust(from, rec.identityKey); err != nil {
		return nil, err
	}
	if l, err := tx.DeviceList(from); err == nil {
		d.Listed = l.Contains(a.Device)
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	return d, nil
}

// built returns 0 if the current state was built by the key exchange kex,
// i+1 if previous state i was, and -1 if none was.
func (r *SessionRecord) built(kex *wire.OMEMOKeyExchange) int {
	same := func(s *sessionState) bool {
		return !s.initiator && bytes.Equal(s.identityKey, kex.IK) && bytes.Equal(s.ek, kex.EK) &&
			s.pkID == kex.PKID && s.spkID == kex.SPKID
	}
	if same(&r.sessionState) {
		return 0
	}
	for i := range r.previous {
		if same(&r.previous[i]) {
			return i + 1
		}
	}
	return -1
}

// decrypt decrypts a Double Ratchet message with the current state or,
// failing that, with a previous one, which then becomes current (the
// peer kept it when both sides initiated at once).
func (r *SessionRecord) decrypt(auth []byte) ([]byte, error) {
	pt, err := r.ratchet.Decrypt(auth)
	if err == nil {
		return pt, nil
	}
	for i := range r.previous {
		if pt, perr := r.previous[i].ratchet.Decrypt(auth); perr == nil {
			r.promote(i)
			return pt, nil
		}
	}
	return nil, err
}

// respond builds a session from a received key exchange (X3DH as
// responder, XEP-0384 §5.6) and decrypts its message. Failures that depend
// on the message are errDecrypt; others are store errors.
func (m *Manager) respond(tx Tx, kex *wire.OMEMOKeyExchange, auth []byte) (sessionState, *PreKeyRecord, []byte, error) {
	var none sessionState
	if kex.PKID == 0 {
		return none, nil, nil, errDecrypt
	}
	pk, err := tx.PreKey(kex.PKID)
	if errors.Is(err, ErrNotFound) {
		return none, nil, nil, errDecrypt
	} else if err != nil {
		return none, nil, nil, err
	}
	if pk.hidden {
		// Used during this catch-up already: only by another initiator
		// (the race XEP-0384 §6 describes), never by the same exchange
		// again, which would rebuild a session already replaced.
		h := kexDigest(kex.IK, kex.EK)
		for _, u := range pk.usedBy {
			if bytes.Equal(u, h) {
				return none, nil, nil, errDecrypt
			}
		}
	}
	spk, err := tx.SignedPreKey(kex.SPKID)
	if errors.Is(err, ErrNotFound) {
		return none, nil, nil, errDecrypt
	} else if err != nil {
		return none, nil, nil, err
	}
	spkPriv, err := spk.ecdh()
	if err != nil {
		return none, nil, nil, fmt.Errorf("omemo: signed prekey %d: %w", spk.id, err)
	}
	pkPriv, err := pk.ecdh()
	if err != nil {
		return none, nil, nil, fmt.Errorf("omemo: prekey %d: %w", pk.id, err)
	}
	ss, ad, err := x3dh.OMEMO2.Respond(m.key, spkPriv, pkPriv, kex.IK, kex.EK)
	if err != nil {
		return none, nil, nil, errDecrypt
	}
	r, err := ratchet.NewResponder(ratchet.OMEMO2, ss, ad, spkPriv)
	if err != nil {
		return none, nil, nil, errDecrypt
	}
	material, err := r.Decrypt(auth)
	if err != nil {
		return none, nil, nil, errDecrypt
	}
	st := sessionState{
		identityKey: bytes.Clone(kex.IK),
		pkID:        kex.PKID,
		spkID:       kex.SPKID,
		ek:          bytes.Clone(kex.EK),
		ratchet:     r,
	}
	return st, pk, material, nil
}
