// Package storetest drives OMEMO 2 devices (omemo.Manager) through
// stores for the tests and benchmarks of the store packages: a fake PEP
// service, sending and receiving with the inbox (store.Inbox), as a client
// does.
package storetest

import (
	"errors"
	"fmt"
	"sync"

	"hush.im/omemo"
	"hush.im/store"
	"mellium.im/xmpp/jid"
)

// Directory is what a device publishes and fetches over PEP (XEP-0384
// §5.3): device lists and bundles.
type Directory interface {
	// DeviceList returns the device list of j, nil when none.
	DeviceList(j jid.JID) (*omemo.DeviceList, error)
	SetDeviceList(j jid.JID, l *omemo.DeviceList) error
	// Bundle returns the bundle of a device, nil when none.
	Bundle(a omemo.Address) (*omemo.Bundle, error)
	SetBundle(a omemo.Address, b *omemo.Bundle) error
}

// PEP is an in-memory Directory.
type PEP struct {
	mu      sync.Mutex
	lists   map[string]*omemo.DeviceList
	bundles map[string]*omemo.Bundle
}

// NewPEP returns an empty PEP service.
func NewPEP() *PEP {
	return &PEP{lists: map[string]*omemo.DeviceList{}, bundles: map[string]*omemo.Bundle{}}
}

// DeviceList implements Directory.
func (p *PEP) DeviceList(j jid.JID) (*omemo.DeviceList, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lists[j.String()], nil
}

// SetDeviceList implements Directory.
func (p *PEP) SetDeviceList(j jid.JID, l *omemo.DeviceList) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lists[j.String()] = l
	return nil
}

// Bundle implements Directory.
func (p *PEP) Bundle(a omemo.Address) (*omemo.Bundle, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bundles[a.String()], nil
}

// SetBundle implements Directory.
func (p *PEP) SetBundle(a omemo.Address, b *omemo.Bundle) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bundles[a.String()] = b
	return nil
}

// Device is one OMEMO device of an account with its store.
type Device struct {
	JID   jid.JID
	M     *omemo.Manager
	Store omemo.Store
	// HoldBundle stops Receive from publishing the bundle: set it while
	// a batch is open, whose changes must not leave the process before it
	// is committed, and Publish after the commit.
	HoldBundle bool
	dir        Directory
}

// Join opens (or creates) the device whose state is in st, announces it
// on its account's device list and publishes its bundle. opts nil means
// BlindTrust and the minimum number of prekeys (fast).
func Join(dir Directory, account string, st omemo.Store, opts *omemo.Options) (*Device, error) {
	if opts == nil {
		opts = &omemo.Options{Trust: omemo.BlindTrust{}, PreKeys: omemo.MinPreKeys}
	}
	j, err := jid.Parse(account)
	if err != nil {
		return nil, err
	}
	m, err := omemo.New(j, st, opts)
	if err != nil {
		return nil, err
	}
	d := &Device{JID: j, M: m, Store: st, dir: dir}
	cur, err := dir.DeviceList(j)
	if err != nil {
		return nil, err
	}
	l, changed, err := m.AnnounceDevice(cur)
	if err != nil {
		return nil, err
	}
	if changed {
		if err := dir.SetDeviceList(j, l); err != nil {
			return nil, err
		}
	}
	return d, d.Publish()
}

// Publish publishes the device's current bundle.
func (d *Device) Publish() error {
	b, err := d.M.Bundle()
	if err != nil {
		return err
	}
	return d.dir.SetBundle(d.M.Address(), b)
}

// Sync gives the device the current device lists of the recipients and
// of its own account and the bundles it lacks, as a client does before
// sending.
func (d *Device) Sync(to ...jid.JID) error {
	for _, j := range append([]jid.JID{d.JID}, to...) {
		l, err := d.dir.DeviceList(j)
		if err != nil {
			return err
		}
		if l == nil {
			continue
		}
		if _, err := d.M.SetDeviceList(j, l); err != nil {
			return err
		}
	}
	need, _, err := d.M.NeedBundles(to...)
	if err != nil {
		return err
	}
	for _, a := range need {
		b, err := d.dir.Bundle(a)
		if err != nil {
			return err
		}
		if b != nil {
			if err := d.M.SetBundle(a, b); err != nil {
				return err
			}
		}
	}
	return nil
}

// Send syncs and encrypts envelope for the recipients.
func (d *Device) Send(envelope []byte, to ...jid.JID) (*omemo.Encrypted, error) {
	if err := d.Sync(to...); err != nil {
		return nil, err
	}
	e, _, err := d.M.Encrypt(envelope, to...)
	return e, err
}

// Receive decrypts e from the bare JID from and puts the envelope in the
// inbox, with ids, in the same transaction (DESIGN: a decrypted message is
// never lost). An empty OMEMO message only marks its ids seen. It
// republishes the bundle when a prekey was used, unless HoldBundle is set.
// It returns the inbox
// sequence number (0 for an empty message).
func (d *Device) Receive(from jid.JID, e *omemo.Encrypted, ids ...store.MessageID) (*omemo.Decrypted, uint64, error) {
	var seq uint64
	got, err := d.M.DecryptWith(from, e, func(tx omemo.Tx, dec *omemo.Decrypted) error {
		ib, ok := tx.(store.Inbox)
		if !ok {
			return errors.New("storetest: store has no inbox")
		}
		if dec.Envelope == nil {
			return ib.MarkSeen(ids...)
		}
		var err error
		seq, err = ib.PutInbox(&store.Message{
			From:    from,
			Device:  dec.Sender.Device,
			IDs:     ids,
			Payload: dec.Envelope,
		})
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	if got.BundleChanged && !d.HoldBundle {
		if err := d.Publish(); err != nil {
			return nil, 0, fmt.Errorf("storetest: republishing bundle: %w", err)
		}
	}
	return got, seq, nil
}

// Seen reports whether any of ids was seen, in a View.
func Seen(st omemo.Store, ids ...store.MessageID) (bool, error) {
	var seen bool
	err := st.View(func(tx omemo.Tx) error {
		ib, ok := tx.(store.Inbox)
		if !ok {
			return errors.New("storetest: store has no inbox")
		}
		var err error
		seen, err = ib.Seen(ids...)
		return err
	})
	return seen, err
}

// Inbox returns the unacknowledged messages of st, in a View.
func Inbox(st omemo.Store) ([]*store.Message, error) {
	var msgs []*store.Message
	err := st.View(func(tx omemo.Tx) error {
		ib, ok := tx.(store.Inbox)
		if !ok {
			return errors.New("storetest: store has no inbox")
		}
		var err error
		msgs, err = ib.Inbox(0)
		return err
	})
	return msgs, err
}

// Ack acknowledges messages of st.
func Ack(st omemo.Store, seqs ...uint64) error {
	return st.Update(func(tx omemo.Tx) error {
		ib, ok := tx.(store.Inbox)
		if !ok {
			return errors.New("storetest: store has no inbox")
		}
		return ib.Ack(seqs...)
	})
}

// StanzaID returns the stanza-id id stamped by the archive of by.
func StanzaID(by jid.JID, id string) store.MessageID {
	return store.MessageID{Kind: store.StanzaID, Scope: by, ID: id}
}

// OriginID returns the origin-id id chosen by from.
func OriginID(from jid.JID, id string) store.MessageID {
	return store.MessageID{Kind: store.OriginID, Scope: from.Bare(), ID: id}
}
