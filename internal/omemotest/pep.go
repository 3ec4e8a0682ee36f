package omemotest

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
)

// maxSettleRounds bounds how often [PEP.Sync] drains the peers before it
// gives up: each round can only be needed by a device re-announcing itself
// on its own device list (XEP-0384 §"Device list": a device missing from
// its own list publishes it again), which settles in two or three rounds.
const maxSettleRounds = 16

// PEP is an in-memory model of the PEP nodes (XEP-0163) OMEMO uses, shared
// by the peers attached with [WithPEP]: the latest device list per
// namespace and account, and the latest bundle per namespace, account and
// device. Publications of attached peers are applied in order and pushed to
// every other attached peer (device lists as notifications, bundles into
// their download view), as a PEP service with +notify subscriptions would.
// A hush device under test takes part through [PEP.PublishDeviceList],
// [PEP.PublishBundle], [PEP.DeviceList] and [PEP.Bundle].
//
// Access control, publish-options and item ids are not modelled.
type PEP struct {
	mu      sync.Mutex
	lists   map[listKey][]byte
	bundles map[bundleKey][]byte
	peers   []*Peer
}

type listKey struct{ ns, jid string }

type bundleKey struct {
	ns, jid string
	id      uint32
}

// NewPEP returns an empty PEP model.
func NewPEP() *PEP {
	return &PEP{lists: map[listKey][]byte{}, bundles: map[bundleKey][]byte{}}
}

// DeviceList returns the current device list payload of jid in namespace
// ns, or nil.
func (s *PEP) DeviceList(ns, jid string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lists[listKey{ns, jid}])
}

// Bundle returns the current bundle payload of jid's device in namespace
// ns, or nil.
func (s *PEP) Bundle(ns, jid string, deviceID uint32) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.bundles[bundleKey{ns, jid, deviceID}])
}

// PublishDeviceList publishes a device list payload for jid (as a device
// outside the python peers, e.g. hush, would) and notifies every attached
// peer; it returns once the peers' reactions have settled.
func (s *PEP) PublishDeviceList(ns, jid string, xml []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.apply(nil, Published{Kind: "device_list", Namespace: ns, JID: jid, XML: xml}); err != nil {
		return err
	}
	return s.settle()
}

// PublishBundle publishes the bundle payload of jid's device and makes it
// available to every attached peer.
func (s *PEP) PublishBundle(ns, jid string, deviceID uint32, xml []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.apply(nil, Published{Kind: "bundle", Namespace: ns, JID: jid, DeviceID: deviceID, XML: xml}); err != nil {
		return err
	}
	return s.settle()
}

// RetractBundle removes the bundle of jid's device.
func (s *PEP) RetractBundle(ns, jid string, deviceID uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.apply(nil, Published{Kind: "bundle_delete", Namespace: ns, JID: jid, DeviceID: deviceID}); err != nil {
		return err
	}
	return s.settle()
}

// Sync drains what the attached peers published and delivers it, until
// nothing is left. Peer methods call it on their own when needed.
func (s *PEP) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settle()
}

func (s *PEP) settle() error {
	for range maxSettleRounds {
		progressed := false
		for _, p := range slices.Clone(s.peers) {
			if !p.pending.Load() {
				continue
			}
			items, err := p.Published()
			if err != nil {
				return fmt.Errorf("omemotest: draining publications of %s: %w", p, err)
			}
			for _, it := range items {
				progressed = true
				if err := s.apply(p, it); err != nil {
					return err
				}
			}
		}
		if !progressed {
			return nil
		}
	}
	return fmt.Errorf("omemotest: PEP did not settle after %d rounds", maxSettleRounds)
}

// apply stores one publication and pushes it to every attached peer but
// its publisher (whose view already has it).
func (s *PEP) apply(from *Peer, it Published) error {
	var args map[string]any
	var cmd string
	switch it.Kind {
	case "device_list":
		s.lists[listKey{it.Namespace, it.JID}] = slices.Clone(it.XML)
		cmd, args = "add_device_list", map[string]any{"namespace": it.Namespace, "jid": it.JID, "xml": string(it.XML)}
	case "bundle":
		s.bundles[bundleKey{it.Namespace, it.JID, it.DeviceID}] = slices.Clone(it.XML)
		cmd, args = "add_bundle", map[string]any{"namespace": it.Namespace, "jid": it.JID, "device_id": it.DeviceID, "xml": string(it.XML)}
	case "bundle_delete":
		delete(s.bundles, bundleKey{it.Namespace, it.JID, it.DeviceID})
		cmd, args = "remove_bundle", map[string]any{"namespace": it.Namespace, "jid": it.JID, "device_id": it.DeviceID}
	default:
		return fmt.Errorf("omemotest: unknown publication kind %q", it.Kind)
	}
	for _, q := range s.peers {
		if q == from {
			continue
		}
		if err := q.callRaw(cmd, args, nil); err != nil {
			return fmt.Errorf("omemotest: delivering %s %s/%s to %s: %w", it.Kind, it.Namespace, it.JID, q, err)
		}
	}
	return nil
}

// preload gives a starting peer every current item, device lists first,
// in a stable order.
func (s *PEP) preload(p *Peer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	lists := make([]listKey, 0, len(s.lists))
	for k := range s.lists {
		lists = append(lists, k)
	}
	slices.SortFunc(lists, func(a, b listKey) int {
		return cmp.Or(cmp.Compare(a.ns, b.ns), cmp.Compare(a.jid, b.jid))
	})
	for _, k := range lists {
		args := map[string]any{"namespace": k.ns, "jid": k.jid, "xml": string(s.lists[k])}
		if err := p.callRaw("add_device_list", args, nil); err != nil {
			return err
		}
	}
	bundles := make([]bundleKey, 0, len(s.bundles))
	for k := range s.bundles {
		bundles = append(bundles, k)
	}
	slices.SortFunc(bundles, func(a, b bundleKey) int {
		return cmp.Or(cmp.Compare(a.ns, b.ns), cmp.Compare(a.jid, b.jid), cmp.Compare(a.id, b.id))
	})
	for _, k := range bundles {
		args := map[string]any{"namespace": k.ns, "jid": k.jid, "device_id": k.id, "xml": string(s.bundles[k])}
		if err := p.callRaw("add_bundle", args, nil); err != nil {
			return err
		}
	}
	return nil
}

func (s *PEP) attach(p *Peer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p.pep = s
	s.peers = append(s.peers, p)
	return s.settle()
}

func (s *PEP) detach(p *Peer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peers = slices.DeleteFunc(s.peers, func(q *Peer) bool { return q == p })
}
