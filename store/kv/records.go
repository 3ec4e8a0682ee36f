package kv

import (
	"encoding"
	"encoding/binary"
	"fmt"

	"hush.im/omemo"
	"hush.im/store"
	"mellium.im/xmpp/jid"
)

// The omemo.Tx methods. Records are opaque: their MarshalBinary output is
// stored as is and UnmarshalBinary (which copies, as encoding.
// BinaryUnmarshaler requires) decodes it.

func (t *Tx) getRecord(bucket string, key []byte, r encoding.BinaryUnmarshaler) error {
	v, err := t.get(bucket, key)
	if err != nil {
		return err
	}
	if v == nil {
		return omemo.ErrNotFound
	}
	if err := r.UnmarshalBinary(v); err != nil {
		return fmt.Errorf("kv: %w: %s: %w", store.ErrCorrupt, bucket, err)
	}
	return nil
}

func (t *Tx) putRecord(bucket string, key []byte, r encoding.BinaryMarshaler) error {
	if err := t.check(true); err != nil {
		return err
	}
	v, err := r.MarshalBinary()
	if err != nil {
		return err
	}
	return t.put(bucket, key, v)
}

// Identity implements omemo.Tx.
func (t *Tx) Identity() (*omemo.IdentityRecord, error) {
	r := new(omemo.IdentityRecord)
	if err := t.getRecord(bucketIdentity, keySelf, r); err != nil {
		return nil, err
	}
	return r, nil
}

// PutIdentity implements omemo.Tx.
func (t *Tx) PutIdentity(r *omemo.IdentityRecord) error {
	return t.putRecord(bucketIdentity, keySelf, r)
}

// PreKey implements omemo.Tx.
func (t *Tx) PreKey(id uint32) (*omemo.PreKeyRecord, error) {
	r := new(omemo.PreKeyRecord)
	if err := t.getRecord(bucketPreKeys, idKey(id), r); err != nil {
		return nil, err
	}
	return r, nil
}

// PreKeys implements omemo.Tx.
func (t *Tx) PreKeys() ([]*omemo.PreKeyRecord, error) {
	var out []*omemo.PreKeyRecord
	err := t.scan(bucketPreKeys, nil, func(k, v []byte) error {
		r := new(omemo.PreKeyRecord)
		if err := r.UnmarshalBinary(v); err != nil {
			return fmt.Errorf("kv: %w: %s: %w", store.ErrCorrupt, bucketPreKeys, err)
		}
		if len(k) != 4 || binary.BigEndian.Uint32(k) != r.ID() {
			return corrupt(bucketPreKeys, "key does not match record")
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// PutPreKey implements omemo.Tx.
func (t *Tx) PutPreKey(r *omemo.PreKeyRecord) error {
	return t.putRecord(bucketPreKeys, idKey(r.ID()), r)
}

// DeletePreKey implements omemo.Tx.
func (t *Tx) DeletePreKey(id uint32) error { return t.del(bucketPreKeys, idKey(id)) }

// SignedPreKey implements omemo.Tx.
func (t *Tx) SignedPreKey(id uint32) (*omemo.SignedPreKeyRecord, error) {
	r := new(omemo.SignedPreKeyRecord)
	if err := t.getRecord(bucketSignedPKs, idKey(id), r); err != nil {
		return nil, err
	}
	return r, nil
}

// SignedPreKeys implements omemo.Tx.
func (t *Tx) SignedPreKeys() ([]*omemo.SignedPreKeyRecord, error) {
	var out []*omemo.SignedPreKeyRecord
	err := t.scan(bucketSignedPKs, nil, func(k, v []byte) error {
		r := new(omemo.SignedPreKeyRecord)
		if err := r.UnmarshalBinary(v); err != nil {
			return fmt.Errorf("kv: %w: %s: %w", store.ErrCorrupt, bucketSignedPKs, err)
		}
		if len(k) != 4 || binary.BigEndian.Uint32(k) != r.ID() {
			return corrupt(bucketSignedPKs, "key does not match record")
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// PutSignedPreKey implements omemo.Tx.
func (t *Tx) PutSignedPreKey(r *omemo.SignedPreKeyRecord) error {
	return t.putRecord(bucketSignedPKs, idKey(r.ID()), r)
}

// DeleteSignedPreKey implements omemo.Tx.
func (t *Tx) DeleteSignedPreKey(id uint32) error { return t.del(bucketSignedPKs, idKey(id)) }

// Session implements omemo.Tx.
func (t *Tx) Session(a omemo.Address) (*omemo.SessionRecord, error) {
	r := new(omemo.SessionRecord)
	if err := t.getRecord(bucketSessions, addrKey(a.JID, a.Device), r); err != nil {
		return nil, err
	}
	return r, nil
}

// SessionDevices implements omemo.Tx.
func (t *Tx) SessionDevices(bare jid.JID) ([]uint32, error) {
	return t.devices(bucketSessions, bare)
}

// devices lists the device ids of bare in a bucket keyed by address.
func (t *Tx) devices(bucket string, bare jid.JID) ([]uint32, error) {
	prefix := jidPrefix(bare, 0)
	var out []uint32
	err := t.scan(bucket, prefix, func(k, _ []byte) error {
		if len(k) != len(prefix)+4 {
			return corrupt(bucket, "key of %d bytes", len(k))
		}
		out = append(out, binary.BigEndian.Uint32(k[len(prefix):]))
		return nil
	})
	return out, err
}

// PutSession implements omemo.Tx.
func (t *Tx) PutSession(r *omemo.SessionRecord) error {
	a := r.Address()
	return t.putRecord(bucketSessions, addrKey(a.JID, a.Device), r)
}

// DeleteSession implements omemo.Tx.
func (t *Tx) DeleteSession(a omemo.Address) error {
	return t.del(bucketSessions, addrKey(a.JID, a.Device))
}

// ReplayLog implements omemo.Tx.
func (t *Tx) ReplayLog(a omemo.Address) (*omemo.ReplayLog, error) {
	r := new(omemo.ReplayLog)
	if err := t.getRecord(bucketReplay, addrKey(a.JID, a.Device), r); err != nil {
		return nil, err
	}
	return r, nil
}

// PutReplayLog implements omemo.Tx.
func (t *Tx) PutReplayLog(r *omemo.ReplayLog) error {
	a := r.Address()
	return t.putRecord(bucketReplay, addrKey(a.JID, a.Device), r)
}

// DeleteReplayLog implements omemo.Tx.
func (t *Tx) DeleteReplayLog(a omemo.Address) error {
	return t.del(bucketReplay, addrKey(a.JID, a.Device))
}

// DeviceList implements omemo.Tx.
func (t *Tx) DeviceList(bare jid.JID) (*omemo.DeviceList, error) {
	r := new(omemo.DeviceList)
	if err := t.getRecord(bucketDeviceLists, []byte(bare.String()), r); err != nil {
		return nil, err
	}
	return r, nil
}

// PutDeviceList implements omemo.Tx.
func (t *Tx) PutDeviceList(bare jid.JID, l *omemo.DeviceList) error {
	return t.putRecord(bucketDeviceLists, []byte(bare.String()), l)
}

// Bundle implements omemo.Tx.
func (t *Tx) Bundle(a omemo.Address) (*omemo.Bundle, error) {
	r := new(omemo.Bundle)
	if err := t.getRecord(bucketBundles, addrKey(a.JID, a.Device), r); err != nil {
		return nil, err
	}
	return r, nil
}

// PutBundle implements omemo.Tx.
func (t *Tx) PutBundle(a omemo.Address, b *omemo.Bundle) error {
	return t.putRecord(bucketBundles, addrKey(a.JID, a.Device), b)
}

// DeleteBundle implements omemo.Tx.
func (t *Tx) DeleteBundle(a omemo.Address) error {
	return t.del(bucketBundles, addrKey(a.JID, a.Device))
}

// trustVersion is the version byte of a trust value: version ‖ level.
const trustVersion = 1

// Trust implements omemo.Tx.
func (t *Tx) Trust(bare jid.JID, identityKey []byte) (omemo.TrustLevel, error) {
	v, err := t.get(bucketTrust, trustKey(bare, identityKey))
	if err != nil {
		return 0, err
	}
	if v == nil {
		return omemo.TrustUndecided, nil
	}
	if len(v) != 2 || v[0] != trustVersion || v[1] > byte(omemo.TrustDistrusted) {
		return 0, corrupt(bucketTrust, "bad trust value")
	}
	return omemo.TrustLevel(v[1]), nil
}

// PutTrust implements omemo.Tx.
func (t *Tx) PutTrust(bare jid.JID, identityKey []byte, level omemo.TrustLevel) error {
	if level > omemo.TrustDistrusted {
		return fmt.Errorf("kv: invalid trust level %d", level)
	}
	return t.put(bucketTrust, trustKey(bare, identityKey), []byte{trustVersion, byte(level)})
}

// Pending implements omemo.Tx.
func (t *Tx) Pending() (*omemo.PendingRecord, error) {
	r := new(omemo.PendingRecord)
	if err := t.getRecord(bucketPending, keySelf, r); err != nil {
		return nil, err
	}
	return r, nil
}

// PutPending implements omemo.Tx. An empty record deletes the stored one.
func (t *Tx) PutPending(r *omemo.PendingRecord) error {
	if r.Empty() {
		return t.del(bucketPending, keySelf)
	}
	return t.putRecord(bucketPending, keySelf, r)
}
