package client

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"hush.im/omemo"
	"hush.im/omemo/legacy"
	"hush.im/sce"
)

// Namespaces of the hints and EME elements the engines add (XEP-0334,
// XEP-0380).
const (
	nsHints = "urn:xmpp:hints"
	nsEME   = "urn:xmpp:eme:0"
)

// OMEMO adapter limits and defaults.
const (
	// DefaultRepairInterval is the shortest time between two repairs of
	// the session with one device (XEP-0384 §6: a message from a device
	// without a session is answered with a fresh key exchange; the rate
	// limit keeps a peer, or a forger, from making the client publish
	// key exchanges without end).
	DefaultRepairInterval = time.Minute

	// maxRateRecords bounds the devices and JIDs whose last repair or
	// refetch is remembered for rate limiting; older entries are dropped
	// first.
	maxRateRecords = 1024

	// maxBundleFetches bounds the bundle fetches one Encrypt runs at once.
	maxBundleFetches = 8

	// followUpTimeout bounds one round of follow-up work (publishing,
	// refreshing device lists, sending empty messages).
	followUpTimeout = 30 * time.Second
)

// OMEMOEncrypted is the name of the OMEMO 2 <encrypted/> element
// (XEP-0384 §5.5.3), the protocol name SendEncrypted takes for OMEMO 2.
var OMEMOEncrypted = xml.Name{Space: omemo.NS, Local: "encrypted"}

// OMEMOLegacyEncrypted is the name of the legacy OMEMO <encrypted/>
// element (XEP-0384 0.3 §Sending a message), which Security.Protocol
// reports for a message that arrived with legacy OMEMO. SendEncrypted
// takes it as a synonym of OMEMOEncrypted when the engine speaks legacy
// OMEMO: the engine picks the protocol per device either way.
var OMEMOLegacyEncrypted = xml.Name{Space: legacy.NS, Local: "encrypted"}

// OMEMOOptions configures NewOMEMO.
type OMEMOOptions struct {
	// Trust decides which devices are given the key of a message
	// (XEP-0384 §8); nil means omemo.BlindTrust (blind trust before
	// verification). It is also what Security.Trust reports as
	// TrustBlind for undecided devices.
	Trust omemo.TrustPolicy
	// Manager are the options for omemo.New; its Trust field is replaced
	// by Trust.
	Manager omemo.Options
	// RepairInterval is the shortest time between two repairs of the
	// session with one device; zero means DefaultRepairInterval.
	RepairInterval time.Duration
	// Legacy makes the device speak legacy OMEMO (XEP-0384 0.3,
	// eu.siacs.conversations.axolotl) beside OMEMO 2, with the same
	// identity and device id: it also publishes the legacy device list and
	// bundle (open), follows the contacts' legacy device lists, and
	// encrypts to each device with OMEMO 2 when the device announces
	// OMEMO 2 and with legacy OMEMO otherwise (legacy devices get the body
	// alone; the report lists the rest as Withheld). Off by default: the
	// device then speaks OMEMO 2 alone.
	Legacy bool
	// LegacyOnly makes the device speak legacy OMEMO alone, as clients
	// without OMEMO 2 do: it publishes and follows the legacy nodes only.
	// It implies Legacy.
	LegacyOnly bool
}

// OMEMO is the OMEMO 2 engine of a Client (XEP-0384 0.9.1,
// urn:xmpp:omemo:2): an Engine and CatchUpEngine around an omemo.Manager
// that keeps the account's device list and this device's bundle published
// in PEP (XEP-0384 §5.3), follows the device lists of contacts through
// +notify events (XEP-0163 §4), fetches what is missing before each send
// (§5.4), and does the network work that decryption asks for: republishing
// the bundle after a prekey was used, answering key exchanges and
// heartbeats with empty messages, refetching the device list of a sender
// that was not on it (§6). That work runs on a goroutine of its own, never
// on the receive path or inside an IQ handler.
//
// With OMEMOOptions.Legacy it also speaks legacy OMEMO (XEP-0384 0.3,
// eu.siacs.conversations.axolotl) with the same identity and device id:
// it publishes the legacy device list and bundle, follows the legacy
// device lists, fetches legacy bundles by node, encrypts to each device
// with the newest protocol it announces, decrypts legacy messages (it is
// a MultiEngine: OMEMOLegacyEncrypted routes to it too) and answers legacy
// key exchanges with empty legacy messages.
type OMEMO struct {
	c      *Client
	m      *omemo.Manager
	trust  omemo.TrustPolicy
	repair time.Duration
	// legacy: legacy OMEMO is spoken too; v2 is false for a legacy-only
	// device.
	legacy, v2 bool

	work chan struct{} // wakes the follow-up goroutine
	run  sync.Mutex    // held while follow-up work runs

	mu         sync.Mutex
	catchingUp bool
	bundle     bool                     // bundle to republish
	announce   bool                     // own device missing from the own list
	refresh    map[string]jid.JID       // device lists to refetch
	empties    map[string]omemo.Address // devices owed an empty message
	repairs    map[string]omemo.Address // devices to build a new session with
	// The same for legacy OMEMO.
	legacyBundle   bool
	legacyAnnounce bool
	legacyRefresh  map[string]jid.JID
	legacyEmpties  map[string]omemo.Address
	legacyRepairs  map[string]omemo.Address
	repaired       map[string]time.Time // last repair per device
	refreshed      map[string]time.Time // last refetch asked by a message, per JID
}

// NewOMEMO starts the OMEMO 2 engine of c with the device state in store
// (created on first use) and adds it to c. It fetches the account's device
// list, so that a new device id is not one already listed (XEP-0384 §5.1),
// publishes this device's bundle (node urn:xmpp:omemo:2:bundles, item id
// the device id, access model open, max_items max; §5.3.2) and then the
// device list with this device on it (§5.3.1), reading both back, and
// registers for device list events. Call it before Online so that the
// initial presence advertises urn:xmpp:omemo:2:devices+notify and the
// server sends the contacts' device lists.
func NewOMEMO(ctx context.Context, c *Client, store omemo.Store, opts *OMEMOOptions) (*OMEMO, error) {
	if opts == nil {
		opts = &OMEMOOptions{}
	}
	o := newOMEMO(c, nil, opts.Trust, opts.RepairInterval)
	o.legacy = opts.Legacy || opts.LegacyOnly
	o.v2 = !opts.LegacyOnly
	own := c.JID().Bare()
	var current *omemo.DeviceList
	var currentLegacy *legacy.DeviceList
	var err error
	if o.v2 {
		if current, err = o.fetchDeviceList(ctx, own); err != nil {
			return nil, fmt.Errorf("client: omemo: fetching the own device list: %w", err)
		}
	}
	if o.legacy {
		if currentLegacy, err = o.fetchLegacyDeviceList(ctx, own); err != nil {
			return nil, fmt.Errorf("client: omemo: fetching the own legacy device list: %w", err)
		}
	}
	// Before omemo.New, so that a new identity avoids listed ids.
	err = store.Update(func(tx omemo.Tx) error {
		if current != nil {
			if err := tx.PutDeviceList(own, current.Clone()); err != nil {
				return err
			}
		}
		if currentLegacy != nil {
			return tx.PutLegacyDeviceList(own, &legacy.DeviceList{Devices: slices.Clone(currentLegacy.Devices)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("client: omemo: %w", err)
	}
	mopts := opts.Manager
	mopts.Trust = o.trust
	if o.m, err = omemo.New(own, store, &mopts); err != nil {
		return nil, fmt.Errorf("client: omemo: %w", err)
	}
	if _, err := o.m.Refresh(); err != nil {
		return nil, fmt.Errorf("client: omemo: %w", err)
	}
	// The bundle first: contacts that see the device on the list fetch it.
	if err := o.publishBundle(ctx); err != nil {
		return nil, err
	}
	if o.v2 {
		if err := o.announceDevice(ctx, current); err != nil {
			return nil, err
		}
	}
	if o.legacy {
		if err := o.announceLegacyDevice(ctx, currentLegacy); err != nil {
			return nil, err
		}
	}
	// Registered only once published, so that a failed start leaves c
	// without a half-started engine.
	if o.v2 {
		if err := c.HandleEvents(omemo.NodeDevices, o.onDevices); err != nil {
			return nil, err
		}
	}
	if o.legacy {
		if err := c.HandleEvents(legacy.NodeDeviceList, o.onLegacyDevices); err != nil {
			return nil, err
		}
	}
	if err := c.AddEngine(o); err != nil {
		return nil, err
	}
	go o.loop()
	return o, nil
}

// newOMEMO returns the engine's state around m (set later by NewOMEMO)
// with the defaults applied; it starts nothing.
func newOMEMO(c *Client, m *omemo.Manager, trust omemo.TrustPolicy, repair time.Duration) *OMEMO {
	if trust == nil {
		trust = omemo.BlindTrust{}
	}
	if repair <= 0 {
		repair = DefaultRepairInterval
	}
	return &OMEMO{
		c:             c,
		m:             m,
		trust:         trust,
		repair:        repair,
		v2:            true,
		legacyRefresh: make(map[string]jid.JID),
		legacyEmpties: make(map[string]omemo.Address),
		legacyRepairs: make(map[string]omemo.Address),
		work:          make(chan struct{}, 1),
		refresh:       make(map[string]jid.JID),
		empties:       make(map[string]omemo.Address),
		repairs:       make(map[string]omemo.Address),
		repaired:      make(map[string]time.Time),
		refreshed:     make(map[string]time.Time),
	}
}

// Manager returns the engine's omemo.Manager, for trust decisions,
// fingerprints and device information.
func (o *OMEMO) Manager() *omemo.Manager { return o.m }

// Encrypted implements Engine: {urn:xmpp:omemo:2 encrypted}, also for a
// legacy-only device, so that SendEncrypted(OMEMOEncrypted, …) works
// whatever the mode.
func (o *OMEMO) Encrypted() xml.Name { return OMEMOEncrypted }

// EncryptedNames implements MultiEngine: with legacy OMEMO enabled,
// {eu.siacs.conversations.axolotl encrypted} (XEP-0384 0.3), so that
// legacy messages reach Decrypt too.
func (o *OMEMO) EncryptedNames() []xml.Name {
	if o.legacy {
		return []xml.Name{OMEMOLegacyEncrypted}
	}
	return nil
}

// Features implements Engine: OMEMO 2 (XEP-0384 §5.2) with its device
// list notifications, SCE (XEP-0420), EME (XEP-0380) and hints (XEP-0334);
// with legacy OMEMO, its namespace and device list notifications
// (XEP-0384 0.3 §Announcing support); a legacy-only device advertises no
// OMEMO 2 or SCE feature.
func (o *OMEMO) Features() []string {
	fs := []string{nsEME, nsHints}
	if o.v2 {
		fs = append(fs, omemo.NS, omemo.NodeDevices+"+notify", sce.NS)
	}
	if o.legacy {
		fs = append(fs, legacy.NS, legacy.NodeDeviceList+"+notify")
	}
	return fs
}

// Encrypt implements Engine: it fetches the device lists and bundles the
// recipients' devices (and the account's other devices) need (XEP-0384
// §5.4), unless called from inside an IQ handler, and seals plain with
// omemo.Manager.SealStanza: for OMEMO 2 devices only, or with legacy
// OMEMO enabled for each device with the newest protocol it announces (a
// stanza for both kinds carries both <encrypted/> elements; legacy devices
// get the body alone), or for legacy devices only on a legacy-only
// device. The recipient is the bare JID of plain's 'to'.
//
// Asked for through SendEncrypted with OMEMOLegacyEncrypted as the
// protocol, it encrypts with legacy OMEMO alone (EncryptOnly).
func (o *OMEMO) Encrypt(ctx context.Context, plain *sce.Stanza) (*sce.Stanza, *Report, error) {
	var only omemo.Protocol
	if p, _ := ctx.Value(requestedProtocolKey{}).(xml.Name); p == OMEMOLegacyEncrypted {
		only = omemo.ProtocolLegacy
	}
	return o.EncryptOnly(ctx, plain, only)
}

// EncryptOnly is Encrypt restricted to one protocol: with
// omemo.ProtocolOMEMO2 only devices that announce OMEMO 2 get a key, with
// omemo.ProtocolLegacy only devices that announce legacy OMEMO (XEP-0384
// 0.3: they get the body alone). Zero is Encrypt: each device with the
// newest protocol it announces. A protocol the engine does not speak is
// ErrNoEngine.
func (o *OMEMO) EncryptOnly(ctx context.Context, plain *sce.Stanza, only omemo.Protocol) (*sce.Stanza, *Report, error) {
	switch {
	case only == 0:
		only = o.only()
	case only == omemo.ProtocolLegacy && !o.legacy:
		return nil, nil, fmt.Errorf("%w: legacy OMEMO is not enabled", ErrNoEngine)
	case only == omemo.ProtocolOMEMO2 && !o.v2:
		return nil, nil, fmt.Errorf("%w: OMEMO 2 is not enabled", ErrNoEngine)
	case only != omemo.ProtocolLegacy && only != omemo.ProtocolOMEMO2:
		return nil, nil, fmt.Errorf("%w: protocol %d", ErrNoEngine, only)
	}
	to, err := jid.Parse(plain.AttrValue("to"))
	if err != nil {
		return nil, nil, fmt.Errorf("client: omemo: stanza without a valid 'to': %w", err)
	}
	recipients := []jid.JID{to.Bare()}
	o.prepare(ctx, recipients, only)
	out, rep, err := o.m.SealStanza(plain, &omemo.SealOptions{Recipients: recipients, Only: only})
	if err == nil {
		iqPayloadOnly(out)
	}
	return out, convertOMEMOReport(rep), err
}

// only is the protocol the engine restricts messages to; zero for both.
func (o *OMEMO) only() omemo.Protocol {
	switch {
	case !o.legacy:
		return omemo.ProtocolOMEMO2
	case !o.v2:
		return omemo.ProtocolLegacy
	}
	return 0
}

// iqPayloadOnly leaves an encrypted iq request or response with the
// encrypted element as its only child: RFC 6120 §8.2.3 allows exactly one
// payload in a get or set (Prosody refuses more), and the XEP-0380 and
// XEP-0334 elements an engine adds mean nothing in an iq.
func iqPayloadOnly(st *sce.Stanza) {
	if st == nil || st.Name.Local != "iq" {
		return
	}
	st.Children = slices.DeleteFunc(st.Children, func(e sce.Element) bool {
		return e.Name.Space == nsEME || e.Name.Space == nsHints
	})
}

// prepare fetches the device lists and bundles that recipients' devices
// lack. Failures are left for the report (ReasonNoDeviceList,
// ReasonNoBundle).
func (o *OMEMO) prepare(ctx context.Context, recipients []jid.JID, only omemo.Protocol) {
	if ctx.Value(inIQHandlerKey{}) != nil {
		// No round trips while an IQ request waits: use what is known.
		return
	}
	if o.v2 && only != omemo.ProtocolLegacy {
		o.prepareV2(ctx, recipients)
	}
	if o.legacy && only != omemo.ProtocolOMEMO2 {
		o.prepareLegacy(ctx, recipients, only)
	}
}

// prepareV2 fetches the OMEMO 2 device lists and bundles recipients lack.
func (o *OMEMO) prepareV2(ctx context.Context, recipients []jid.JID) {
	devices, noList, err := o.m.NeedBundles(recipients...)
	if err != nil {
		o.c.log.Warn("client: omemo: NeedBundles", "err", err)
		return
	}
	if len(noList) > 0 {
		for _, j := range noList {
			if err := o.RefreshDevices(ctx, j); err != nil {
				o.c.log.Info("client: omemo: no device list", "jid", j, "err", err)
			}
		}
		if devices, _, err = o.m.NeedBundles(recipients...); err != nil {
			o.c.log.Warn("client: omemo: NeedBundles", "err", err)
			return
		}
	}
	o.fetchBundles(ctx, devices)
}

// fetchBundles fetches and records the OMEMO 2 bundles of devices, a few
// at once.
func (o *OMEMO) fetchBundles(ctx context.Context, devices []omemo.Address) {
	fetchAll(ctx, o, devices, o.fetchBundle)
}

// fetchAll runs fetch for every device, a few at once.
func fetchAll(ctx context.Context, o *OMEMO, devices []omemo.Address, fetch func(context.Context, omemo.Address) error) {
	sem := make(chan struct{}, maxBundleFetches)
	var wg sync.WaitGroup
	for _, a := range devices {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fetch(ctx, a); err != nil {
				o.c.log.Info("client: omemo: no bundle", "device", a.String(), "err", err)
			}
		}()
	}
	wg.Wait()
}

// fetchBundle fetches the bundle of one device (XEP-0384 §5.4: item id
// the device id) and gives it to the Manager.
func (o *OMEMO) fetchBundle(ctx context.Context, a omemo.Address) error {
	id := strconv.FormatUint(uint64(a.Device), 10)
	items, err := o.c.FetchItems(ctx, a.JID, omemo.NodeBundles, id)
	if err != nil {
		return err
	}
	for _, it := range items {
		if it.ID != id {
			continue
		}
		var b omemo.Bundle
		if err := decodeElement(it.Payload, &b); err != nil {
			return err
		}
		return o.m.SetBundle(a, &b)
	}
	return fmt.Errorf("%w: no bundle item %s of %s", ErrMalformed, id, a.JID)
}

// Prepare fetches what encrypting to bare needs, as a send does before it
// seals: its device lists (OMEMO 2, and legacy OMEMO when enabled) and
// the bundles of its devices that have neither a session nor a stored
// bundle (XEP-0384 §5.3.1, §5.4; legacy bundles by node). It fails only
// when none of the device lists could be fetched, with the errors of
// each; a missing bundle is left for the report of the next send.
func (o *OMEMO) Prepare(ctx context.Context, bare jid.JID) error {
	bare = bare.Bare()
	var errs []error
	if o.v2 {
		errs = append(errs, o.RefreshDevices(ctx, bare))
	}
	if o.legacy {
		errs = append(errs, o.RefreshLegacyDevices(ctx, bare))
	}
	if !slices.Contains(errs, nil) {
		return errors.Join(errs...)
	}
	// The lists were just fetched: only the bundles are left (prepare
	// would fetch a missing list once more).
	if o.v2 {
		devices, _, err := o.m.NeedBundles(bare)
		if err != nil {
			return err
		}
		o.fetchBundles(ctx, devices)
	}
	if o.legacy {
		devices, _, err := o.m.NeedLegacyBundles(bare)
		if err != nil {
			return err
		}
		fetchAll(ctx, o, devices, o.fetchLegacyBundle)
	}
	return nil
}

// RefreshDevices fetches the device list of a bare JID (XEP-0384 §5.3.1)
// and gives it to the Manager; for the own JID it re-announces this device
// if it is missing.
func (o *OMEMO) RefreshDevices(ctx context.Context, bare jid.JID) error {
	bare = bare.Bare()
	l, err := o.fetchDeviceList(ctx, bare)
	if err != nil {
		return err
	}
	if l == nil {
		if !bare.Equal(o.m.JID()) {
			return &NoDeviceListError{JID: bare}
		}
		l = &omemo.DeviceList{}
	}
	announce, err := o.m.SetDeviceList(bare, l)
	if err != nil {
		return err
	}
	if announce {
		return o.announceDevice(ctx, l)
	}
	return nil
}

// fetchDeviceList fetches the device list of bare; nil when there is none
// (item-not-found).
func (o *OMEMO) fetchDeviceList(ctx context.Context, bare jid.JID) (*omemo.DeviceList, error) {
	return fetchCurrent[omemo.DeviceList](ctx, o.c, bare, omemo.NodeDevices, omemo.DevicesItemID)
}

// fetchCurrent fetches items of node at bare (those with the given ids,
// or all) and decodes the current one (currentItem) into a new T; nil when
// the node has none (item-not-found, or no item).
func fetchCurrent[T any](ctx context.Context, c *Client, bare jid.JID, node string, ids ...string) (*T, error) {
	items, err := c.FetchItems(ctx, bare, node, ids...)
	if itemNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	it, ok := currentItem(items)
	if !ok {
		return nil, nil
	}
	v := new(T)
	if err := decodeElement(it.Payload, v); err != nil {
		return nil, err
	}
	return v, nil
}

// itemNotFound reports whether err is a pubsub item-not-found: no such
// node or item (XEP-0060 §6.5.9.11).
func itemNotFound(err error) bool {
	var se *StanzaError
	return errors.As(err, &se) && se.Condition == "item-not-found"
}

// currentItem picks the payload among the items of an OMEMO node: the one
// with item id "current" (omemo.DevicesItemID, XEP-0384 §5.3.1; the same
// legacy.ItemID of XEP-0384 0.3), else the last (some clients publish under
// other ids).
func currentItem(items []Item) (Item, bool) {
	for _, it := range items {
		if it.ID == omemo.DevicesItemID {
			return it, true
		}
	}
	if len(items) == 0 {
		return Item{}, false
	}
	return items[len(items)-1], true
}

// publishBundle publishes this device's bundle (XEP-0384 §5.3.2) and, with
// legacy OMEMO, its legacy bundle (XEP-0384 0.3 §Announcing support), and
// reads them back.
func (o *OMEMO) publishBundle(ctx context.Context) error {
	if o.v2 {
		if err := o.publishBundleV2(ctx); err != nil {
			return err
		}
	}
	if o.legacy {
		return o.publishLegacyBundle(ctx)
	}
	return nil
}

// publishBundleV2 publishes the OMEMO 2 bundle.
func (o *OMEMO) publishBundleV2(ctx context.Context) error {
	b, err := o.m.Bundle()
	if err != nil {
		return fmt.Errorf("client: omemo: %w", err)
	}
	el, err := sce.ReadElement(b.TokenReader())
	if err != nil {
		return fmt.Errorf("client: omemo: bundle: %w", err)
	}
	id := strconv.FormatUint(uint64(o.m.DeviceID()), 10)
	if _, err := o.c.Publish(ctx, omemo.NodeBundles, Item{ID: id, Payload: el}, &PublishOptions{AccessModel: AccessOpen, MaxItems: MaxItemsMax}); err != nil {
		return fmt.Errorf("client: omemo: publishing the bundle: %w", err)
	}
	return nil
}

// announceDevice publishes current with this device added, if it is not
// on it yet (XEP-0384 §5.3.1).
func (o *OMEMO) announceDevice(ctx context.Context, current *omemo.DeviceList) error {
	l, changed, err := o.m.AnnounceDevice(current)
	if err != nil {
		return fmt.Errorf("client: omemo: %w", err)
	}
	if !changed {
		return nil
	}
	el, err := sce.ReadElement(l.TokenReader())
	if err != nil {
		return fmt.Errorf("client: omemo: device list: %w", err)
	}
	if _, err := o.c.Publish(ctx, omemo.NodeDevices, Item{ID: omemo.DevicesItemID, Payload: el}, &PublishOptions{AccessModel: AccessOpen}); err != nil {
		return fmt.Errorf("client: omemo: publishing the device list: %w", err)
	}
	if _, err := o.m.SetDeviceList(o.m.JID(), l); err != nil {
		return fmt.Errorf("client: omemo: %w", err)
	}
	return nil
}

// onDevices handles a device list event (XEP-0384 §5.3.1, XEP-0163 §4).
func (o *OMEMO) onDevices(_ context.Context, ev *Event) {
	var l omemo.DeviceList
	if !o.listFromEvent(ev, &l, false) {
		return
	}
	announce, err := o.m.SetDeviceList(ev.From.Bare(), &l)
	o.recordedList(ev, announce, err, &o.announce, "device list")
}

// listFromEvent decodes into l the device list that a +notify event
// carries, the current item (XEP-0163 §4). A purge or deletion
// leaves l empty. It reports false when there is nothing to record: the
// event named no list (a notification without payload, or a retraction),
// so a refetch was queued, or the list was malformed and is dropped.
func (o *OMEMO) listFromEvent(ev *Event, l any, legacyList bool) bool {
	bare := ev.From.Bare()
	switch {
	case ev.Purged || ev.Deleted:
		return true
	case len(ev.Items) > 0:
		it, _ := currentItem(ev.Items)
		if it.Payload.Name.Local == "" {
			o.queueRefresh(bare, legacyList)
			return false
		}
		if err := decodeElement(it.Payload, l); err != nil {
			o.c.log.Warn("client: omemo: dropping malformed device list", "jid", bare, "legacy", legacyList, "err", err)
			return false
		}
		return true
	default:
		// Retractions: the list is gone unless another item remains.
		o.queueRefresh(bare, legacyList)
		return false
	}
}

// recordedList finishes a device list event once the Manager recorded the
// list: it logs a failure, or sets *flag and wakes the follow-up worker
// when this device must re-announce itself (XEP-0384 §5.3.1).
func (o *OMEMO) recordedList(ev *Event, announce bool, err error, flag *bool, what string) {
	if err != nil {
		o.c.log.Warn("client: omemo: recording a "+what, "jid", ev.From.Bare(), "err", err)
		return
	}
	if announce {
		o.mu.Lock()
		*flag = true
		o.mu.Unlock()
		o.wake()
	}
}

// Decrypt implements Engine with omemo.Manager.OpenStanza. The sender is
// the bare JID in.From (for carbons and archive results that of the
// forwarded stanza). Empty OMEMO messages, and messages that carry no key
// for this device and no payload (empty messages for another device), are
// ErrNoContent; duplicates are ErrDuplicate. After a successful decryption
// the follow-up work is queued: republishing the bundle when a prekey was
// used, an empty message when one is owed, a device list refetch when the
// sender was not listed (XEP-0384 §5.6, §6).
func (o *OMEMO) Decrypt(ctx context.Context, in *Incoming) (*sce.Stanza, *Security, error) {
	sender := in.From.Bare()
	opened, err := o.m.OpenStanza(in.Stanza, &omemo.OpenOptions{Sender: sender})
	if err != nil && errors.Is(err, omemo.ErrUnknownDevice) && o.legacy && ctx.Value(inIQHandlerKey{}) == nil {
		// A legacy key exchange from a device of which nothing is known:
		// its bundle tells the sign bit of its identity key (XEP-0384 0.3
		// has none on the wire). Fetch it and try once more.
		if enc, perr := o.legacyEncryptedOf(in.Stanza); perr == nil && legacy.ValidDeviceID(enc.SID) {
			fctx, cancel := context.WithTimeout(ctx, followUpTimeout)
			ferr := o.fetchLegacyBundle(fctx, omemo.Address{JID: sender, Device: enc.SID})
			cancel()
			if ferr == nil {
				opened, err = o.m.OpenStanza(in.Stanza, &omemo.OpenOptions{Sender: sender})
			} else {
				o.c.log.Info("client: omemo: no legacy bundle", "jid", sender, "device", enc.SID, "err", ferr)
			}
		}
	}
	if err != nil {
		return nil, nil, o.decryptError(in.Stanza, sender, err)
	}
	o.followUp(opened.Decrypted)
	if opened.Stanza == nil {
		return nil, nil, fmt.Errorf("%w: empty OMEMO message from %s", ErrNoContent, opened.Sender.String())
	}
	protocol := OMEMOEncrypted
	if opened.Protocol == omemo.ProtocolLegacy {
		protocol = OMEMOLegacyEncrypted
	}
	sec := &Security{
		Protocol: protocol,
		Sender:   opened.Sender.JID,
		Device:   strconv.FormatUint(uint64(opened.Sender.Device), 10),
		Trust:    o.trustOf(opened.Decrypted),
	}
	return opened.Stanza, sec, nil
}

// decryptError classifies a failed decryption and queues a session repair
// for a message from a device without a session.
func (o *OMEMO) decryptError(st *sce.Stanza, sender jid.JID, err error) error {
	switch {
	case errors.Is(err, omemo.ErrDuplicate):
		return fmt.Errorf("%w: %w", ErrDuplicate, err)
	case errors.Is(err, omemo.ErrNotForThisDevice):
		// Empty when every <encrypted/> element parses and none has a
		// payload.
		enc, perr := o.encryptedOf(st)
		lenc, lerr := o.legacyEncryptedOf(st)
		parsed := perr == nil || lerr == nil
		content := (perr == nil && enc.Payload != nil) || (lerr == nil && lenc.Payload != nil)
		if parsed && !content {
			return fmt.Errorf("%w: empty OMEMO message for another device", ErrNoContent)
		}
	case errors.Is(err, omemo.ErrNoSession):
		if enc, perr := o.encryptedOf(st); perr == nil && omemo.ValidDeviceID(enc.SID) && enc.Find(o.m.JID(), o.m.DeviceID()) != nil {
			o.queueRepair(omemo.Address{JID: sender, Device: enc.SID}, false)
		} else if lenc, lerr := o.legacyEncryptedOf(st); o.legacy && lerr == nil && legacy.ValidDeviceID(lenc.SID) {
			o.queueRepair(omemo.Address{JID: sender, Device: lenc.SID}, true)
		}
	}
	return err
}

// legacyEncryptedOf parses the legacy <encrypted/> element of st.
func (o *OMEMO) legacyEncryptedOf(st *sce.Stanza) (*legacy.Encrypted, error) {
	el, ok := stanzaChild(st, OMEMOLegacyEncrypted)
	if !ok {
		return nil, omemo.ErrNoEncrypted
	}
	var enc legacy.Encrypted
	if err := decodeElement(el, &enc); err != nil {
		return nil, err
	}
	return &enc, nil
}

// encryptedOf parses the <encrypted/> element of st.
func (o *OMEMO) encryptedOf(st *sce.Stanza) (*omemo.Encrypted, error) {
	el, ok := stanzaChild(st, OMEMOEncrypted)
	if !ok {
		return nil, omemo.ErrNoEncrypted
	}
	var enc omemo.Encrypted
	if err := decodeElement(el, &enc); err != nil {
		return nil, err
	}
	return &enc, nil
}

// trustOf maps the Manager's trust level of the sender onto Trust: an
// undecided device that the trust policy allows is blindly trusted.
func (o *OMEMO) trustOf(d *omemo.Decrypted) Trust {
	switch d.Trust {
	case omemo.TrustVerified:
		return TrustVerified
	case omemo.TrustTrusted:
		return TrustBlind
	case omemo.TrustDistrusted:
		return TrustUntrusted
	}
	info := omemo.DeviceInfo{
		Address:     d.Sender,
		IdentityKey: d.IdentityKey,
		Trust:       d.Trust,
		Own:         d.Sender.JID.Equal(o.m.JID()),
		Listed:      d.Listed,
		Protocol:    d.Protocol,
		Session:     true,
	}
	if o.trust.Allow(info) {
		return TrustBlind
	}
	return TrustUndecided
}

// followUp queues the network work a decryption asks for.
func (o *OMEMO) followUp(d *omemo.Decrypted) {
	o.mu.Lock()
	if d.BundleChanged {
		o.bundle = true
	}
	isLegacy := d.Protocol == omemo.ProtocolLegacy
	if d.BundleChanged && o.legacy {
		o.legacyBundle = true
	}
	if d.SendEmpty != omemo.EmptyNone {
		if isLegacy {
			o.legacyEmpties[d.Sender.String()] = d.Sender
		} else {
			o.empties[d.Sender.String()] = d.Sender
		}
	}
	if !d.Listed && o.allowLocked(o.refreshed, d.Sender.JID.String()) {
		// XEP-0384 §6: a sender not on its device list asks for a refetch,
		// at most once per RepairInterval and JID.
		if isLegacy {
			o.legacyRefresh[d.Sender.JID.String()] = d.Sender.JID
		} else {
			o.refresh[d.Sender.JID.String()] = d.Sender.JID
		}
	}
	o.mu.Unlock()
	o.wake()
}

func (o *OMEMO) queueRefresh(bare jid.JID, isLegacy bool) {
	o.mu.Lock()
	if isLegacy {
		o.legacyRefresh[bare.String()] = bare
	} else {
		o.refresh[bare.String()] = bare
	}
	o.mu.Unlock()
	o.wake()
}

// queueRepair asks for a new session with a device from which a message
// arrived that no session can decrypt (XEP-0384 §6), at most once per
// RepairInterval.
func (o *OMEMO) queueRepair(a omemo.Address, isLegacy bool) {
	o.mu.Lock()
	k := a.String()
	if !o.allowLocked(o.repaired, k) {
		o.mu.Unlock()
		return
	}
	if isLegacy {
		o.legacyRepairs[k] = a
	} else {
		o.repairs[k] = a
	}
	o.mu.Unlock()
	o.wake()
}

// allowLocked reports whether the action keyed k may run now, at most once
// per RepairInterval, and records it. The record is bounded by
// maxRateRecords: the oldest entries go first. o.mu must be held.
func (o *OMEMO) allowLocked(last map[string]time.Time, k string) bool {
	now := time.Now()
	if t, ok := last[k]; ok && now.Sub(t) < o.repair {
		return false
	}
	if len(last) >= maxRateRecords {
		for key, t := range last {
			if now.Sub(t) >= o.repair {
				delete(last, key)
			}
		}
		for key := range last {
			if len(last) < maxRateRecords {
				break
			}
			delete(last, key) // all recent: drop arbitrary ones
		}
	}
	last[k] = now
	return true
}

func (o *OMEMO) wake() {
	select {
	case o.work <- struct{}{}:
	default:
	}
}

// loop runs the follow-up work until the client closes.
func (o *OMEMO) loop() {
	for {
		select {
		case <-o.work:
		case <-o.c.Done():
			return
		}
		ctx, cancel := context.WithTimeout(o.c.ctx, followUpTimeout)
		if err := o.Flush(ctx); err != nil {
			o.c.log.Warn("client: omemo: follow-up", "err", err)
		}
		cancel()
	}
}

// Flush does the queued follow-up work now and returns when it is done:
// republishing the bundle, re-announcing this device, refetching device
// lists, repairing sessions and sending the empty messages owed. During
// catch-up the bundle, repairs and empty messages wait for EndCatchUp.
func (o *OMEMO) Flush(ctx context.Context) error {
	o.run.Lock()
	defer o.run.Unlock()
	o.mu.Lock()
	catchingUp := o.catchingUp
	bundle := (o.bundle || o.legacyBundle) && !catchingUp
	if bundle {
		o.bundle, o.legacyBundle = false, false
	}
	announce, legacyAnnounce := o.announce, o.legacyAnnounce
	o.announce, o.legacyAnnounce = false, false
	refresh, legacyRefresh := o.refresh, o.legacyRefresh
	o.refresh, o.legacyRefresh = make(map[string]jid.JID), make(map[string]jid.JID)
	empties, repairs := map[string]omemo.Address{}, map[string]omemo.Address{}
	legacyEmpties, legacyRepairs := map[string]omemo.Address{}, map[string]omemo.Address{}
	if !catchingUp {
		empties, repairs = o.empties, o.repairs
		o.empties, o.repairs = make(map[string]omemo.Address), make(map[string]omemo.Address)
		legacyEmpties, legacyRepairs = o.legacyEmpties, o.legacyRepairs
		o.legacyEmpties, o.legacyRepairs = make(map[string]omemo.Address), make(map[string]omemo.Address)
	}
	o.mu.Unlock()

	var errs []error
	if bundle {
		if err := o.publishBundle(ctx); err != nil {
			o.mu.Lock()
			o.bundle = true // retried on the next wake
			o.mu.Unlock()
			errs = append(errs, err)
		}
	}
	if announce && o.v2 {
		if err := o.RefreshDevices(ctx, o.m.JID()); err != nil {
			errs = append(errs, err)
		}
	}
	if legacyAnnounce && o.legacy {
		if err := o.RefreshLegacyDevices(ctx, o.m.JID()); err != nil {
			errs = append(errs, err)
		}
	}
	for _, j := range legacyRefresh {
		if err := o.RefreshLegacyDevices(ctx, j); err != nil {
			errs = append(errs, err)
		}
	}
	for _, j := range refresh {
		if err := o.RefreshDevices(ctx, j); err != nil {
			errs = append(errs, err)
		}
	}
	for _, a := range repairs {
		if err := o.fetchBundle(ctx, a); err != nil {
			errs = append(errs, err)
			continue
		}
		empties[a.String()] = a
	}
	for _, a := range empties {
		if err := o.sendEmpty(ctx, a); err != nil {
			errs = append(errs, err)
		}
	}
	for _, a := range legacyRepairs {
		if err := o.fetchLegacyBundle(ctx, a); err != nil {
			errs = append(errs, err)
			continue
		}
		legacyEmpties[a.String()] = a
	}
	for _, a := range legacyEmpties {
		if err := o.sendEmptyLegacy(ctx, a); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sendEmpty sends an empty OMEMO message to one device (XEP-0384 §5.5.3):
// the answer to a key exchange, a heartbeat, or a new session's
// announcement. It carries the <store/> hint so that an offline device
// gets it from the archive.
func (o *OMEMO) sendEmpty(ctx context.Context, a omemo.Address) error {
	enc, err := o.m.EncryptEmpty(a)
	if err != nil {
		return fmt.Errorf("client: omemo: empty message to %s: %w", a.String(), err)
	}
	el, err := sce.ReadElement(enc.TokenReader())
	if err != nil {
		return fmt.Errorf("client: omemo: empty message: %w", err)
	}
	st := newStanza("message", []xml.Attr{attr("to", a.JID.String()), attr("type", "chat")},
		el, emeElement(omemo.NS, "OMEMO"), elem(name(nsHints, "store"), nil))
	return o.c.Send(ctx, st)
}

// BeginCatchUp implements CatchUpEngine (XEP-0384 §6): the Manager keeps
// prekeys used during catch-up and defers empty messages; the bundle is
// republished at the end.
func (o *OMEMO) BeginCatchUp() {
	o.mu.Lock()
	o.catchingUp = true
	o.mu.Unlock()
	o.m.BeginCatchUp()
}

// EndCatchUp implements CatchUpEngine: it leaves catch-up mode, sends the
// empty messages owed to devices whose key exchanges or heartbeats arrived
// during it, and republishes the bundle if a prekey was used.
func (o *OMEMO) EndCatchUp(ctx context.Context) error {
	pending, legacyPending, err := o.m.EndCatchUp()
	o.mu.Lock()
	o.catchingUp = false
	for _, a := range pending {
		o.empties[a.String()] = a
	}
	for _, a := range legacyPending {
		o.legacyEmpties[a.String()] = a
	}
	o.mu.Unlock()
	return errors.Join(err, o.Flush(ctx))
}

// convertOMEMOReport converts the Manager's report into a Report.
func convertOMEMOReport(r *omemo.Report) *Report {
	if r == nil {
		return nil
	}
	out := &Report{Protocol: OMEMOEncrypted, Devices: make([]DeviceReport, 0, len(r.Devices))}
	for _, d := range r.Devices {
		dr := DeviceReport{JID: d.JID, Sent: d.OK(), Err: d.Err, Withheld: d.Withheld}
		switch d.Protocol {
		case omemo.ProtocolOMEMO2:
			dr.Protocol = OMEMOEncrypted
		case omemo.ProtocolLegacy:
			dr.Protocol = OMEMOLegacyEncrypted
		}
		if d.DeviceID != 0 {
			dr.Device = strconv.FormatUint(uint64(d.DeviceID), 10)
		}
		if !dr.Sent {
			dr.Reason = d.Reason.String()
		}
		out.Devices = append(out.Devices, dr)
	}
	return out
}

// emeElement is XEP-0380's <encryption namespace='…' name='…'/>.
func emeElement(ns, label string) sce.Element {
	return elem(name(nsEME, "encryption"), []xml.Attr{attr("namespace", ns), attr("name", label)})
}

// decodeElement decodes el into v with encoding/xml (v's UnmarshalXML
// does the strict checks).
func decodeElement(el sce.Element, v any) error {
	if el.Name.Local == "" {
		return fmt.Errorf("%w: item without payload", ErrMalformed)
	}
	// el.Tokens carry resolved namespaces on every element, which is what
	// the strict decoders check; el.TokenReader would leave inherited
	// namespaces implicit.
	return xml.NewTokenDecoder(&tokenSlice{toks: el.Tokens}).Decode(v)
}

// tokenSlice reads tokens from a slice.
type tokenSlice struct{ toks []xml.Token }

func (s *tokenSlice) Token() (xml.Token, error) {
	if len(s.toks) == 0 {
		return nil, io.EOF
	}
	t := s.toks[0]
	s.toks = s.toks[1:]
	return t, nil
}
