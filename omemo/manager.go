package omemo

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/xml"
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
	"hush.im/omemo/legacy"
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
	// DeviceID, when not zero, is the device id New gives a new identity
	// instead of a random one (XEP-0384 §5.1: 1 … 2^31−1); it must not be
	// on the own device list stored so far. It is ignored when the store
	// holds an identity already.
	DeviceID uint32
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
			if opts.DeviceID != 0 {
				if !ValidDeviceID(opts.DeviceID) || (taken != nil && taken.Contains(opts.DeviceID)) {
					return fmt.Errorf("omemo: device id %d is invalid or taken", opts.DeviceID)
				}
				id.deviceID = opts.DeviceID
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
		} else if err := upgradeSignedPreKeys(tx, id); err != nil {
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

// DeviceList returns the OMEMO 2 device list last recorded for a bare JID
// (SetDeviceList), or ErrNotFound.
func (m *Manager) DeviceList(bare jid.JID) (*DeviceList, error) {
	var l *DeviceList
	err := m.store.View(func(tx Tx) error {
		var err error
		l, err = tx.DeviceList(bare.Bare())
		return err
	})
	return l, err
}

// LegacyDeviceList returns the legacy device list last recorded for a
// bare JID (SetLegacyDeviceList), or ErrNotFound.
func (m *Manager) LegacyDeviceList(bare jid.JID) (*legacy.DeviceList, error) {
	var l *legacy.DeviceList
	err := m.store.View(func(tx Tx) error {
		var err error
		l, err = tx.LegacyDeviceList(bare.Bare())
		return err
	})
	return l, err
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
// bare JID. Verifying a key also records that the JID was authenticated
// (Authenticated), for good.
func (m *Manager) SetTrust(bare jid.JID, identityKey []byte, level TrustLevel) error {
	if len(identityKey) != PublicKeySize || level > TrustDistrusted {
		return errors.New("omemo: invalid identity key or trust level")
	}
	return m.store.Update(func(tx Tx) error {
		if level == TrustVerified {
			if err := tx.PutTrust(bare.Bare(), nil, TrustVerified); err != nil {
				return err
			}
		}
		return tx.PutTrust(bare.Bare(), identityKey, level)
	})
}

// Authenticated reports whether a key of bare was ever verified
// (SetTrust with TrustVerified), even if none is verified now: XEP-0450
// §6.2 (TOAKAFA) trusts new keys automatically only until the first
// authentication, and distrusting the authenticated key later does not
// bring blind trust back. The mark is kept in the store as the trust of
// an empty identity key.
func (m *Manager) Authenticated(bare jid.JID) (bool, error) {
	var ok bool
	err := m.store.View(func(tx Tx) error {
		l, err := tx.Trust(bare.Bare(), nil)
		ok = l == TrustVerified
		return err
	})
	return ok, err
}

// Devices returns what is known about the devices of a bare JID: those on
// its device lists (OMEMO 2 and legacy) and those with a session of either
// protocol, in increasing id order, with when a message from each was last
// decrypted. For the own JID this device is left out.
func (m *Manager) Devices(bare jid.JID) ([]DeviceInfo, error) {
	bare = bare.Bare()
	var out []DeviceInfo
	err := m.store.View(func(tx Tx) error {
		lists, err := m.lists(tx, bare)
		if err != nil {
			return err
		}
		ids, err := tx.SessionDevices(bare)
		if err != nil {
			return err
		}
		lids, err := tx.LegacySessionDevices(bare)
		if err != nil {
			return err
		}
		ids = append(ids, lids...)
		if lists.omemo2 != nil {
			ids = append(ids, lists.omemo2.IDs()...)
		}
		if lists.legacy != nil {
			ids = append(ids, lists.legacy.Devices...)
		}
		slices.Sort(ids)
		for _, id := range slices.Compact(ids) {
			if bare.Equal(m.own) && id == m.deviceID {
				continue
			}
			a := Address{JID: bare, Device: id}
			info, err := m.deviceInfo(tx, a, lists)
			if err != nil {
				return err
			}
			log, err := optional(tx.ReplayLog(a))
			if err != nil {
				return err
			}
			if log != nil {
				info.LastMessage = log.Last()
			}
			out = append(out, info)
		}
		return nil
	})
	return out, err
}

// deviceLists are the two device lists of one account, each nil when
// unknown.
type deviceLists struct {
	omemo2 *DeviceList
	legacy *legacy.DeviceList
}

func (m *Manager) lists(tx Tx, bare jid.JID) (deviceLists, error) {
	var l deviceLists
	var err error
	if l.omemo2, err = optional(tx.DeviceList(bare)); err != nil {
		return l, err
	}
	l.legacy, err = optional(tx.LegacyDeviceList(bare))
	return l, err
}

// protocol returns the protocol a listed device is encrypted to with
// (XEP-0384 0.9 beside 0.3: the newest one it announces), or zero when it
// is on neither list.
func (l deviceLists) protocol(id uint32) Protocol {
	switch {
	case l.omemo2 != nil && l.omemo2.Contains(id):
		return ProtocolOMEMO2
	case l.legacy != nil && l.legacy.Contains(id):
		return ProtocolLegacy
	}
	return 0
}

func (m *Manager) deviceInfo(tx Tx, a Address, l deviceLists) (DeviceInfo, error) {
	info := DeviceInfo{Address: a, Own: a.JID.Equal(m.own), Protocol: l.protocol(a.Device)}
	info.Listed = info.Protocol != 0
	rec, err := optional(tx.Session(a))
	if err != nil {
		return info, err
	}
	lrec, err := optional(tx.LegacySession(a))
	if err != nil {
		return info, err
	}
	info.Session = rec != nil || lrec != nil
	if info.Protocol == 0 {
		switch {
		case rec != nil:
			info.Protocol = ProtocolOMEMO2
		case lrec != nil:
			info.Protocol = ProtocolLegacy
		}
	}
	// The identity key from the chosen protocol's session or bundle
	// first, then from the other's.
	omemo2Key := func() ([]byte, error) {
		if rec != nil {
			return rec.identityKey, nil
		}
		b, err := optional(tx.Bundle(a))
		if b == nil || err != nil {
			return nil, err
		}
		return b.IdentityKey, nil
	}
	legacyKey := func() ([]byte, error) {
		if lrec != nil {
			return lrec.identityKey, nil
		}
		b, err := optional(tx.LegacyBundle(a))
		if b == nil || err != nil {
			return nil, err
		}
		ik, err := legacyBundleIdentity(b)
		if err != nil {
			return nil, nil // an unusable bundle tells nothing
		}
		return ik, nil
	}
	sources := []func() ([]byte, error){omemo2Key, legacyKey}
	if info.Protocol == ProtocolLegacy {
		sources[0], sources[1] = legacyKey, omemo2Key
	}
	for _, f := range sources {
		if info.IdentityKey, err = f(); err != nil {
			return info, err
		}
		if info.IdentityKey != nil {
			info.IdentityKey = bytes.Clone(info.IdentityKey)
			break
		}
	}
	if l.omemo2 != nil {
		for _, d := range l.omemo2.Devices {
			if d.ID == a.Device && VerifyLabel(info.IdentityKey, d) {
				info.Label = d.Label
			}
		}
	}
	if info.IdentityKey != nil {
		if info.Trust, err = tx.Trust(a.JID, info.IdentityKey); err != nil {
			return info, err
		}
	}
	return info, nil
}

// ResetSession deletes the sessions with a device, OMEMO 2 and legacy
// (XEP-0384 §6: clients MUST offer to replace broken sessions); it fails
// with ErrNotFound when there is neither. The next message to it builds a
// new session from its bundle; fetch a fresh one first (SetBundle or
// SetLegacyBundle), then send EncryptEmpty (EncryptEmptyLegacy) to it so
// that it learns about the new session.
func (m *Manager) ResetSession(a Address) error {
	a.JID = a.JID.Bare()
	return m.store.Update(func(tx Tx) error {
		rec, err := optional(tx.Session(a))
		if err != nil {
			return err
		}
		lrec, err := optional(tx.LegacySession(a))
		if err != nil {
			return err
		}
		if rec == nil && lrec == nil {
			return ErrNotFound
		}
		if err := tx.DeleteSession(a); err != nil {
			return err
		}
		return tx.DeleteLegacySession(a)
	})
}

// ForgetDevice deletes everything known about a remote device: sessions
// and cached bundles of both protocols and the replay log. Use it when a
// device's identity key really changed (ErrIdentityMismatch) and the user
// accepted the new one.
func (m *Manager) ForgetDevice(a Address) error {
	a.JID = a.JID.Bare()
	return m.store.Update(func(tx Tx) error {
		for _, del := range []func(Address) error{tx.DeleteSession, tx.DeleteBundle, tx.DeleteLegacySession, tx.DeleteLegacyBundle, tx.DeleteReplayLog} {
			if err := del(a); err != nil {
				return err
			}
		}
		return nil
	})
}

// BeginCatchUp enters archive catch-up mode (XEP-0384 §6, python-omemo
// history synchronization): prekeys used by key exchanges are kept, though
// no longer published, until EndCatchUp, in case two initiators picked the
// same one; and empty messages owed to devices are queued instead of asked
// for, one per device and protocol.
func (m *Manager) BeginCatchUp() { m.catchUp.Store(true) }

// EndCatchUp leaves catch-up mode: it deletes the prekeys used during it
// and returns the devices owed an empty message: send EncryptEmpty to each
// of pending and EncryptEmptyLegacy to each of legacyPending (the XEP
// requires one right after a key exchange completed during catch-up).
func (m *Manager) EndCatchUp() (pending, legacyPending []Address, err error) {
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
		p, err := optional(tx.Pending())
		if err != nil || p == nil {
			return err
		}
		pending, legacyPending = p.Devices, p.Legacy
		return tx.PutPending(&PendingRecord{})
	})
	return pending, legacyPending, err
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

// Plaintext is one message in the forms the two protocols carry, for
// EncryptMessage.
type Plaintext struct {
	// Envelope is the serialized SCE envelope (XEP-0420) for OMEMO 2
	// devices. It is required unless Only is ProtocolLegacy.
	Envelope []byte
	// Body is the body text for legacy OMEMO devices, the only thing
	// legacy OMEMO protects (XEP-0384 0.3 §Sending a message). Empty
	// means legacy devices get nothing (ReasonNoBody).
	Body string
	// Withheld names the elements of the envelope that legacy devices do
	// not get (everything but the body); each legacy device's
	// DeviceReport lists them.
	Withheld []xml.Name
	// Only, when not zero, restricts the message to one protocol: devices
	// are chosen from that protocol's device lists alone.
	Only Protocol
}

// Message is an encrypted message in the formats of its recipient
// devices: an OMEMO 2 <encrypted/> for those that announce OMEMO 2, a
// legacy one for those that announce only legacy OMEMO; nil where no
// device of that protocol got a key. A stanza to a mix of devices carries
// both elements (SealStanza).
type Message struct {
	OMEMO2 *Encrypted
	Legacy *legacy.Encrypted
}

// Encrypt encrypts an SCE envelope (the serialized <envelope/>, XEP-0420)
// for every OMEMO 2 device of every recipient bare JID and every other own
// OMEMO 2 device (XEP-0384 §4.4, §5.5). It is EncryptMessage without a
// body: devices that speak only legacy OMEMO, which cannot carry an
// envelope, are reported with ReasonNoBody. Most callers want SealStanza.
func (m *Manager) Encrypt(envelope []byte, recipients ...jid.JID) (*Encrypted, *Report, error) {
	msg, rep, err := m.EncryptMessage(&Plaintext{Envelope: envelope}, recipients...)
	if err != nil {
		return nil, rep, err
	}
	return msg.OMEMO2, rep, nil
}

// EncryptMessage encrypts one message for every device of every recipient
// bare JID and every other own device, each with the newest protocol it
// announces (DESIGN: per-device choice): a device on the account's OMEMO 2
// device list gets the SCE envelope through OMEMO 2 (one payload key,
// XEP-0384 §4.4, §5.5); a device only on its legacy device list gets the
// body through legacy OMEMO (one AES-128-GCM key, XEP-0384 0.3 §Sending a
// message) and its report lists what it does not get (Withheld). Sessions
// are built from stored bundles where needed (X3DH with a random prekey
// other than id 0); a session whose key exchange was not answered yet
// carries it again. Devices are those the TrustPolicy allows, with the
// identity key in Ed25519 form for both protocols.
//
// The Report says for every device whether it got a key and why not. If a
// recipient other than the own JID has no device that got a key,
// EncryptMessage fails with *NoEligibleDevicesError and changes nothing;
// it fails with ErrNoRecipients when no device at all got a key.
func (m *Manager) EncryptMessage(p *Plaintext, recipients ...jid.JID) (*Message, *Report, error) {
	if p == nil {
		return nil, nil, errors.New("omemo: nil plaintext")
	}
	var omemo2, legacyMaterial []byte
	msg := &Message{}
	if p.Only != ProtocolLegacy {
		if len(p.Envelope) == 0 || len(p.Envelope) > MaxPayloadSize-16 {
			return nil, nil, errors.New("omemo: envelope empty or too large")
		}
		ct, material, err := sealPayload(p.Envelope)
		if err != nil {
			return nil, nil, err
		}
		msg.OMEMO2, omemo2 = &Encrypted{SID: m.deviceID, Payload: ct}, material
	}
	if p.Only != ProtocolOMEMO2 && p.Body != "" {
		if len(p.Body) > legacy.MaxPayloadSize {
			return nil, nil, errors.New("omemo: body too large")
		}
		payload, iv, material, err := legacy.EncryptPayload([]byte(p.Body))
		if err != nil {
			return nil, nil, err
		}
		msg.Legacy, legacyMaterial = &legacy.Encrypted{SID: m.deviceID, IV: iv, Payload: payload}, material
	}
	if p.Only == ProtocolLegacy && legacyMaterial == nil {
		return nil, nil, errors.New("omemo: legacy OMEMO needs a body")
	}
	var rep *Report
	err := m.store.Update(func(tx Tx) error {
		var err error
		rep, err = m.encryptTx(tx, msg, omemo2, legacyMaterial, p, recipients)
		return err
	})
	if err != nil {
		return nil, rep, err
	}
	if msg.OMEMO2 != nil && len(msg.OMEMO2.Keys) == 0 {
		msg.OMEMO2 = nil
	}
	if msg.Legacy != nil && len(msg.Legacy.Keys) == 0 {
		msg.Legacy = nil
	}
	return msg, rep, nil
}

func (m *Manager) encryptTx(tx Tx, msg *Message, omemo2, legacyMaterial []byte, p *Plaintext, recipients []jid.JID) (*Report, error) {
	rep := &Report{}
	if msg.OMEMO2 != nil {
		msg.OMEMO2.Keys = make([]Keys, 0, len(recipients)+1)
	}
	var none []jid.JID
	for _, j := range m.recipientJIDs(recipients) {
		own := j.Equal(m.own)
		all, err := m.lists(tx, j)
		if err != nil {
			return rep, err
		}
		use := all
		switch p.Only {
		case ProtocolOMEMO2:
			use.legacy = nil
		case ProtocolLegacy:
			use.omemo2 = nil
		}
		if use.omemo2 == nil && use.legacy == nil {
			if !own {
				rep.Devices = append(rep.Devices, DeviceReport{JID: j, Protocol: p.Only, Reason: ReasonNoDeviceList})
				none = append(none, j)
			}
			continue
		}
		got := 0
		if l := use.omemo2; l != nil {
			ks := Keys{JID: j, Keys: make([]Key, 0, len(l.Devices))}
			rep.Devices = slices.Grow(rep.Devices, len(l.Devices))
			for _, d := range l.Devices {
				if own && d.ID == m.deviceID {
					continue
				}
				dr, key, err := m.encryptDevice(tx, Address{JID: j, Device: d.ID}, omemo2, own)
				if err != nil {
					return rep, err
				}
				rep.Devices = append(rep.Devices, dr)
				if key != nil {
					ks.Keys = append(ks.Keys, *key)
				}
			}
			if len(ks.Keys) > 0 {
				msg.OMEMO2.Keys = append(msg.OMEMO2.Keys, ks)
				got += len(ks.Keys)
			}
		}
		if l := use.legacy; l != nil {
			for _, id := range l.Devices {
				if (own && id == m.deviceID) || (use.omemo2 != nil && use.omemo2.Contains(id)) {
					continue
				}
				dr, key, err := m.encryptLegacyDevice(tx, Address{JID: j, Device: id}, legacyMaterial, own, p.Withheld)
				if err != nil {
					return rep, err
				}
				rep.Devices = append(rep.Devices, dr)
				if key != nil {
					msg.Legacy.Keys = append(msg.Legacy.Keys, *key)
					got++
				}
			}
		}
		// Sessions with devices on neither list are inactive (XEP-0384
		// §5.5.2: only devices on the list).
		ids, err := tx.SessionDevices(j)
		if err != nil {
			return rep, err
		}
		lids, err := tx.LegacySessionDevices(j)
		if err != nil {
			return rep, err
		}
		ids = append(ids, lids...)
		slices.Sort(ids)
		for _, id := range slices.Compact(ids) {
			if all.protocol(id) == 0 && !(own && id == m.deviceID) {
				rep.Devices = append(rep.Devices, DeviceReport{JID: j, DeviceID: id, Reason: ReasonInactive})
			}
		}
		if got == 0 && !own {
			none = append(none, j)
		}
	}
	if len(none) > 0 {
		return rep, &NoEligibleDevicesError{JIDs: none, Report: rep}
	}
	if (msg.OMEMO2 == nil || len(msg.OMEMO2.Keys) == 0) && (msg.Legacy == nil || len(msg.Legacy.Keys) == 0) {
		return rep, ErrNoRecipients
	}
	return rep, nil
}

// encryptDevice wraps material for one device. A nil key with a nil error
// means the device was skipped for the reason in the report; an error is a
// store failure that aborts the transaction.
func (m *Manager) encryptDevice(tx Tx, a Address, material []byte, own bool) (DeviceReport, *Key, error) {
	dr := DeviceReport{JID: a.JID, DeviceID: a.Device, Protocol: ProtocolOMEMO2}
	rec, err := tx.Session(a)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return dr, nil, err
	}
	var b *Bundle
	info := DeviceInfo{Address: a, Own: own, Listed: true, Session: rec != nil, Protocol: ProtocolOMEMO2}
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

// Decrypted is the outcome of a successful Decrypt or DecryptLegacy.
type Decrypted struct {
	// Sender is the sending device and Protocol the protocol the message
	// used.
	Sender   Address
	Protocol Protocol
	// IdentityKey is the sender's identity key (Ed25519 form) and Trust
	// its recorded trust level. XEP-0384 §8: messages from untrusted
	// devices MAY be shown but SHOULD be marked.
	IdentityKey []byte
	Trust       TrustLevel
	// Envelope is the decrypted SCE envelope of an OMEMO 2 message, nil
	// for an empty OMEMO message. It must be verified (package sce) before
	// use.
	Envelope []byte
	// Body is the decrypted body text of a legacy OMEMO message (XEP-0384
	// 0.3 protects nothing else), nil for a KeyTransportElement (an empty
	// message). It is the sender's bytes: check that it is UTF-8 before
	// use (OpenStanza does).
	Body []byte
	// KeyExchange is true when the message carried an OMEMOKeyExchange;
	// NewSession when it built a new session (replacing any old one).
	KeyExchange bool
	NewSession  bool
	// Listed is false when the sender is not on the last device list seen
	// for its JID: XEP-0384 §6 says to refetch that list.
	Listed bool
	// SendEmpty, when not EmptyNone, asks the caller to send
	// EncryptEmpty(Sender) now (EncryptEmptyLegacy for a legacy message).
	// During catch-up it stays EmptyNone and the device is queued for
	// EndCatchUp instead.
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
	return m.decryptCommitted(func(tx Tx) (*Decrypted, error) { return m.decryptTx(tx, from.Bare(), e) }, fn)
}

// decryptCommitted runs decrypt and then fn in one store transaction and
// returns what decrypt returned; any failure commits nothing.
func (m *Manager) decryptCommitted(decrypt func(Tx) (*Decrypted, error), fn func(Tx, *Decrypted) error) (*Decrypted, error) {
	var out *Decrypted
	err := m.store.Update(func(tx Tx) error {
		d, err := decrypt(tx)
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

	d := &Decrypted{Sender: a, Protocol: ProtocolOMEMO2, KeyExchange: k.KEX}
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
		if err := m.consumePreKey(tx, used, kexDigest(kex.IK, kex.EK), catchUp); err != nil {
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
	if err := m.deferEmpty(tx, d, catchUp); err != nil {
		return nil, err
	}
	if err := tx.PutSession(rec); err != nil {
		return nil, err
	}
	log.add(digest, m.now())
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
	// A prekey used during this catch-up already may be used again only
	// by another initiator (the race XEP-0384 §6 describes), never by the
	// same exchange, which would rebuild a session already replaced.
	pk, spk, err := m.exchangeKeys(tx, kex.PKID, kex.SPKID, kexDigest(kex.IK, kex.EK))
	if errors.Is(err, ErrDecryption) {
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

// consumePreKey deletes a prekey a key exchange used, or during catch-up
// hides it and records the exchange, and refills the prekeys.
func (m *Manager) consumePreKey(tx Tx, used *PreKeyRecord, usedBy []byte, catchUp bool) error {
	var err error
	if catchUp {
		used.hidden = true
		if len(used.usedBy) < maxPreKeyUses {
			used.usedBy = append(used.usedBy, usedBy)
		}
		err = tx.PutPreKey(used)
	} else {
		err = tx.DeletePreKey(used.id)
	}
	if err != nil {
		return err
	}
	id, err := tx.Identity()
	if err != nil {
		return err
	}
	_, err = m.maintain(tx, id, false)
	return err
}

// deferEmpty queues the empty message d asks for during catch-up.
func (m *Manager) deferEmpty(tx Tx, d *Decrypted, catchUp bool) error {
	if d.SendEmpty == EmptyNone || !catchUp {
		return nil
	}
	p, err := optional(tx.Pending())
	if err != nil {
		return err
	}
	if p == nil {
		p = &PendingRecord{}
	}
	p.add(d.Sender, d.Protocol)
	if err := tx.PutPending(p); err != nil {
		return err
	}
	d.SendEmpty = EmptyNone
	return nil
}
