package kv

import (
	"hush.im/omemo"
	"hush.im/omemo/legacy"
	"mellium.im/xmpp/jid"
)

// Legacy OMEMO (XEP-0384 0.3, eu.siacs.conversations.axolotl) records,
// in buckets of their own, keyed like their OMEMO 2 counterparts.

// LegacySession implements omemo.Tx.
func (t *Tx) LegacySession(a omemo.Address) (*omemo.LegacySessionRecord, error) {
	r := new(omemo.LegacySessionRecord)
	if err := t.getRecord(bucketLegacySessions, addrKey(a.JID, a.Device), r); err != nil {
		return nil, err
	}
	return r, nil
}

// LegacySessionDevices implements omemo.Tx.
func (t *Tx) LegacySessionDevices(bare jid.JID) ([]uint32, error) {
	return t.devices(bucketLegacySessions, bare)
}

// PutLegacySession implements omemo.Tx.
func (t *Tx) PutLegacySession(r *omemo.LegacySessionRecord) error {
	a := r.Address()
	return t.putRecord(bucketLegacySessions, addrKey(a.JID, a.Device), r)
}

// DeleteLegacySession implements omemo.Tx.
func (t *Tx) DeleteLegacySession(a omemo.Address) error {
	return t.del(bucketLegacySessions, addrKey(a.JID, a.Device))
}

// LegacyDeviceList implements omemo.Tx.
func (t *Tx) LegacyDeviceList(bare jid.JID) (*legacy.DeviceList, error) {
	r := new(legacy.DeviceList)
	if err := t.getRecord(bucketLegacyDeviceLists, []byte(bare.String()), r); err != nil {
		return nil, err
	}
	return r, nil
}

// PutLegacyDeviceList implements omemo.Tx.
func (t *Tx) PutLegacyDeviceList(bare jid.JID, l *legacy.DeviceList) error {
	return t.putRecord(bucketLegacyDeviceLists, []byte(bare.String()), l)
}

// LegacyBundle implements omemo.Tx.
func (t *Tx) LegacyBundle(a omemo.Address) (*legacy.Bundle, error) {
	r := new(legacy.Bundle)
	if err := t.getRecord(bucketLegacyBundles, addrKey(a.JID, a.Device), r); err != nil {
		return nil, err
	}
	return r, nil
}

// PutLegacyBundle implements omemo.Tx.
func (t *Tx) PutLegacyBundle(a omemo.Address, b *legacy.Bundle) error {
	return t.putRecord(bucketLegacyBundles, addrKey(a.JID, a.Device), b)
}

// DeleteLegacyBundle implements omemo.Tx.
func (t *Tx) DeleteLegacyBundle(a omemo.Address) error {
	return t.del(bucketLegacyBundles, addrKey(a.JID, a.Device))
}
