package client

import (
	"context"
	"encoding/xml"
	"fmt"

	"mellium.im/xmpp/jid"

	"hush.im/omemo"
	"hush.im/omemo/legacy"
	"hush.im/sce"
)

// This file holds the legacy OMEMO half of the OMEMO engine (XEP-0384
// 0.3, eu.siacs.conversations.axolotl): the PEP nodes legacy.NodeDeviceList
// and legacy.BundleNode(id), both with item id legacy.ItemID.

// RefreshLegacyDevices fetches the legacy device list of a bare JID
// (XEP-0384 0.3 §Announcing support) and gives it to the Manager; for the
// own JID it re-announces this device if it is missing. It fails with
// ErrNoEngine when the engine does not speak legacy OMEMO.
func (o *OMEMO) RefreshLegacyDevices(ctx context.Context, bare jid.JID) error {
	if !o.legacy {
		return fmt.Errorf("%w: legacy OMEMO is not enabled", ErrNoEngine)
	}
	bare = bare.Bare()
	l, err := o.fetchLegacyDeviceList(ctx, bare)
	if err != nil {
		return err
	}
	if l == nil {
		if !bare.Equal(o.m.JID()) {
			return &NoDeviceListError{JID: bare, Legacy: true}
		}
		l = &legacy.DeviceList{}
	}
	announce, err := o.m.SetLegacyDeviceList(bare, l)
	if err != nil {
		return err
	}
	if announce {
		return o.announceLegacyDevice(ctx, l)
	}
	return nil
}

// fetchLegacyDeviceList fetches the legacy device list of bare; nil when
// there is none (item-not-found). It fetches the node's items rather than
// item "current", as some clients publish the list under another id.
func (o *OMEMO) fetchLegacyDeviceList(ctx context.Context, bare jid.JID) (*legacy.DeviceList, error) {
	return fetchCurrent[legacy.DeviceList](ctx, o.c, bare, legacy.NodeDeviceList)
}

// announceLegacyDevice publishes current with this device added, if it is
// not on it yet (XEP-0384 0.3 §Announcing support), open to everyone.
func (o *OMEMO) announceLegacyDevice(ctx context.Context, current *legacy.DeviceList) error {
	l, changed, err := o.m.AnnounceLegacyDevice(current)
	if err != nil {
		return fmt.Errorf("client: omemo: %w", err)
	}
	if !changed {
		return nil
	}
	el, err := sce.ReadElement(l.TokenReader())
	if err != nil {
		return fmt.Errorf("client: omemo: legacy device list: %w", err)
	}
	if _, err := o.c.Publish(ctx, legacy.NodeDeviceList, Item{ID: legacy.ItemID, Payload: el}, &PublishOptions{AccessModel: AccessOpen}); err != nil {
		return fmt.Errorf("client: omemo: publishing the legacy device list: %w", err)
	}
	if _, err := o.m.SetLegacyDeviceList(o.m.JID(), l); err != nil {
		return fmt.Errorf("client: omemo: %w", err)
	}
	return nil
}

// publishLegacyBundle publishes this device's legacy bundle at item
// "current" of its own node (XEP-0384 0.3 §Announcing support), open to
// everyone, and reads it back.
func (o *OMEMO) publishLegacyBundle(ctx context.Context) error {
	b, err := o.m.LegacyBundle()
	if err != nil {
		return fmt.Errorf("client: omemo: %w", err)
	}
	el, err := sce.ReadElement(b.TokenReader())
	if err != nil {
		return fmt.Errorf("client: omemo: legacy bundle: %w", err)
	}
	if _, err := o.c.Publish(ctx, legacy.BundleNode(o.m.DeviceID()), Item{ID: legacy.ItemID, Payload: el}, &PublishOptions{AccessModel: AccessOpen}); err != nil {
		return fmt.Errorf("client: omemo: publishing the legacy bundle: %w", err)
	}
	return nil
}

// onLegacyDevices handles a legacy device list event (XEP-0384 0.3
// §Announcing support, XEP-0163 §4).
func (o *OMEMO) onLegacyDevices(_ context.Context, ev *Event) {
	var l legacy.DeviceList
	if !o.listFromEvent(ev, &l, true) {
		return
	}
	announce, err := o.m.SetLegacyDeviceList(ev.From.Bare(), &l)
	o.recordedList(ev, announce, err, &o.legacyAnnounce, "legacy device list")
}

// prepareLegacy fetches the legacy device lists and bundles that
// recipients' legacy-only devices lack, or with only set to
// omemo.ProtocolLegacy, that all their legacy devices lack.
func (o *OMEMO) prepareLegacy(ctx context.Context, recipients []jid.JID, only omemo.Protocol) {
	need := o.m.NeedLegacyBundles
	if only == omemo.ProtocolLegacy {
		need = o.m.NeedAllLegacyBundles
	}
	devices, noList, err := need(recipients...)
	if err != nil {
		o.c.log.Warn("client: omemo: NeedLegacyBundles", "err", err)
		return
	}
	if len(noList) > 0 {
		for _, j := range noList {
			if err := o.RefreshLegacyDevices(ctx, j); err != nil {
				o.c.log.Info("client: omemo: no legacy device list", "jid", j, "err", err)
			}
		}
		if devices, _, err = need(recipients...); err != nil {
			o.c.log.Warn("client: omemo: NeedLegacyBundles", "err", err)
			return
		}
	}
	fetchAll(ctx, o, devices, o.fetchLegacyBundle)
}

// fetchLegacyBundle fetches the legacy bundle of one device and gives it
// to the Manager. It fetches the items of node legacy.BundleNode(id), not
// item "current": Converse.js publishes its bundle without that item id
// (DESIGN.md, peers).
func (o *OMEMO) fetchLegacyBundle(ctx context.Context, a omemo.Address) error {
	b, err := fetchCurrent[legacy.Bundle](ctx, o.c, a.JID, legacy.BundleNode(a.Device))
	if err != nil {
		return err
	}
	if b == nil {
		return fmt.Errorf("%w: no legacy bundle of %s", ErrMalformed, a.String())
	}
	return o.m.SetLegacyBundle(a, b)
}

// sendEmptyLegacy sends an empty legacy OMEMO message (a
// KeyTransportElement, XEP-0384 0.3 §Sending a key) to one device: the
// answer to a key exchange or a repaired session's announcement, with the
// <store/> hint.
func (o *OMEMO) sendEmptyLegacy(ctx context.Context, a omemo.Address) error {
	enc, err := o.m.EncryptEmptyLegacy(a)
	if err != nil {
		return fmt.Errorf("client: omemo: empty legacy message to %s: %w", a.String(), err)
	}
	el, err := sce.ReadElement(enc.TokenReader())
	if err != nil {
		return fmt.Errorf("client: omemo: empty legacy message: %w", err)
	}
	st := newStanza("message", []xml.Attr{attr("to", a.JID.String()), attr("type", "chat")},
		el, emeElement(legacy.NS, "OMEMO"), elem(name(nsHints, "store"), nil))
	return o.c.Send(ctx, st)
}
