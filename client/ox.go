package client

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"hush.im/ox"
	"hush.im/sce"
)

// OXEncrypted is the name of the OX <openpgp/> element (XEP-0373 §3.1),
// the protocol name SendEncrypted takes for OpenPGP for XMPP.
var OXEncrypted = xml.Name{Space: ox.NS, Local: "openpgp"}

// oxMetadataItemID is the item id of the own public-keys-list. XEP-0373
// §4.2 leaves it open; the node keeps one item (PEP's default max_items),
// and a fixed id lets Publish read it back.
const oxMetadataItemID = "current"

// OXOptions configures NewOX.
type OXOptions struct {
	// Now is the clock for the <time/> affix, key validity and the dates
	// of published keys; nil means time.Now.
	Now func() time.Time
}

// OX is the OpenPGP for XMPP engine of a Client (XEP-0373 0.7,
// XEP-0374 0.2): an Engine around package ox that publishes the account's
// public key (a data node per key and the public-keys-list metadata node,
// XEP-0373 §4.1, §4.2, both with access model open), fetches and caches
// contacts' keys (metadata first, then each data node, checking that the
// key has the fingerprint of its node and a User ID naming the contact,
// §4.3, §8.5), and keeps the cache current through +notify events on the
// metadata node (§4.5). Messages are <signcrypt/> (XEP-0374 §4.1),
// encrypted to every announced key of the recipient and of the account.
type OX struct {
	c   *Client
	key *ox.Key // own secret key, unlocked
	now func() time.Time

	mu    sync.Mutex
	keys  map[string][]*ox.Key // bare JID → announced, usable public keys
	gen   map[string]uint64    // bumped by every metadata event
	skips map[string][]DeviceReport
	work  chan struct{}
}

// NewOX starts the OX engine of c with the account's secret key (unlocked,
// with the User ID "xmpp:<bare JID>", XEP-0373 §8.5) and adds it to c. It
// publishes the public key in its data node, then adds its fingerprint to
// the metadata node if missing (§4.1, §4.2: the data node first), and
// registers for metadata events. Call it before Online so that the initial
// presence advertises urn:xmpp:openpgp:im:0 and the +notify feature.
func NewOX(ctx context.Context, c *Client, key *ox.Key, opts *OXOptions) (*OX, error) {
	if opts == nil {
		opts = &OXOptions{}
	}
	if key == nil || !key.IsSecret() || key.Locked() {
		return nil, fmt.Errorf("client: ox: %w", ox.ErrNotSecret)
	}
	own := c.JID().Bare()
	if !key.HasJID(own) {
		return nil, fmt.Errorf("client: ox: %w", &ox.KeyError{Fingerprint: key.Fingerprint(), Err: ox.ErrSignerMismatch})
	}
	o := &OX{
		c:     c,
		key:   key,
		now:   opts.Now,
		keys:  make(map[string][]*ox.Key),
		gen:   make(map[string]uint64),
		skips: make(map[string][]DeviceReport),
		work:  make(chan struct{}, 1),
	}
	if o.now == nil {
		o.now = time.Now
	}
	if err := o.publishKey(ctx); err != nil {
		return nil, err
	}
	if err := o.announceKey(ctx); err != nil {
		return nil, err
	}
	// Registered only once published, so that a failed start leaves c
	// without a half-started engine.
	if err := c.HandleEvents(ox.NodePublicKeys, o.onKeys); err != nil {
		return nil, err
	}
	if err := c.AddEngine(o); err != nil {
		return nil, err
	}
	go o.loop()
	return o, nil
}

// Key returns the engine's secret key.
func (o *OX) Key() *ox.Key { return o.key }

// Encrypted implements Engine: {urn:xmpp:openpgp:0 openpgp}.
func (o *OX) Encrypted() xml.Name { return OXEncrypted }

// Features implements Engine: the OX IM profile (XEP-0374 §2.1), the
// metadata node's notifications (XEP-0373 §4.5), EME (XEP-0380) and hints
// (XEP-0334).
func (o *OX) Features() []string {
	return []string{ox.NSIM, ox.FeaturePublicKeysNotify, nsEME, nsHints}
}

// publishKey publishes the own public key in its data node (XEP-0373
// §4.1), item id the publication time.
func (o *OX) publishKey(ctx context.Context) error {
	data, err := o.key.MarshalPublic()
	if err != nil {
		return fmt.Errorf("client: ox: %w", err)
	}
	node := ox.PublicKeyNode(o.key.Fingerprint())
	item := Item{ID: ox.ItemID(o.now()), Payload: ox.Pubkey{Data: data}.Element()}
	if _, err := o.c.Publish(ctx, node, item, &PublishOptions{AccessModel: AccessOpen}); err != nil {
		return fmt.Errorf("client: ox: publishing the public key: %w", err)
	}
	return nil
}

// announceKey adds the own key to the metadata node (XEP-0373 §4.2) unless
// it is listed already: "an entity SHOULD check that its key is still
// listed, and SHOULD re-announce it if removed" (§4.5).
func (o *OX) announceKey(ctx context.Context) error {
	own := o.c.JID().Bare()
	list, err := o.fetchList(ctx, own)
	if err != nil {
		return fmt.Errorf("client: ox: fetching the own public-keys-list: %w", err)
	}
	fpr := o.key.Fingerprint()
	if slices.ContainsFunc(list.Keys, func(m ox.PubkeyMetadata) bool { return m.Fingerprint == fpr }) {
		return nil
	}
	if len(list.Keys) >= ox.MaxAnnouncedKeys {
		return fmt.Errorf("client: ox: %w: %d keys announced already", ox.ErrTooLarge, len(list.Keys))
	}
	list.Keys = append(list.Keys, ox.PubkeyMetadata{Fingerprint: fpr, Date: o.now().UTC().Truncate(time.Second)})
	item := Item{ID: oxMetadataItemID, Payload: list.Element()}
	if _, err := o.c.Publish(ctx, ox.NodePublicKeys, item, &PublishOptions{AccessModel: AccessOpen}); err != nil {
		return fmt.Errorf("client: ox: publishing the public-keys-list: %w", err)
	}
	return nil
}

// fetchList fetches the public-keys-list of bare; an empty list when there
// is none.
func (o *OX) fetchList(ctx context.Context, bare jid.JID) (*ox.PublicKeysList, error) {
	items, err := o.c.FetchItems(ctx, bare, ox.NodePublicKeys)
	if itemNotFound(err) {
		return &ox.PublicKeysList{}, nil
	}
	if err != nil {
		return nil, err
	}
	list := &ox.PublicKeysList{}
	if len(items) == 0 {
		return list, nil
	}
	// The most recent item (XEP-0373 §4.3); PEP nodes keep one by default.
	if err := decodeElement(items[len(items)-1].Payload, list); err != nil {
		return nil, err
	}
	return list, nil
}

// fetchKey fetches the public key announced with fingerprint fpr by bare
// from its data node and checks it (XEP-0373 §4.3, §4.4, §8.5).
func (o *OX) fetchKey(ctx context.Context, bare jid.JID, fpr ox.Fingerprint) (*ox.Key, error) {
	items, err := o.c.FetchItems(ctx, bare, ox.PublicKeyNode(fpr))
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%w: data node of %s is empty", ErrMalformed, fpr)
	}
	var p ox.Pubkey
	if err := decodeElement(items[len(items)-1].Payload, &p); err != nil {
		return nil, err
	}
	k, err := p.Key(fpr)
	if err != nil {
		return nil, err
	}
	if !k.HasJID(bare) {
		return nil, &ox.KeyError{Fingerprint: fpr, Err: ox.ErrSignerMismatch}
	}
	return k, nil
}

// Keys returns the announced public keys of a bare JID that could be
// fetched and checked, from the cache or, unless called from inside an IQ
// handler, from PEP.
func (o *OX) Keys(ctx context.Context, bare jid.JID) ([]*ox.Key, error) {
	bare = bare.Bare()
	k := bare.String()
	o.mu.Lock()
	keys, ok := o.keys[k]
	gen := o.gen[k]
	o.mu.Unlock()
	if ok {
		return keys, nil
	}
	if ctx.Value(inIQHandlerKey{}) != nil {
		return nil, ErrIQInHandler
	}
	list, err := o.fetchList(ctx, bare)
	if err != nil {
		return nil, err
	}
	var skipped []DeviceReport
	keys = nil
	for _, m := range list.Keys {
		key, err := o.fetchKey(ctx, bare, m.Fingerprint)
		if err != nil {
			skipped = append(skipped, DeviceReport{JID: bare, Device: m.Fingerprint.String(), Reason: "unusable key", Err: err})
			continue
		}
		keys = append(keys, key)
	}
	o.mu.Lock()
	if o.gen[k] == gen {
		// No metadata event since the fetch began.
		o.keys[k], o.skips[k] = keys, skipped
	}
	o.mu.Unlock()
	return keys, nil
}

// skipped returns the keys of bare that were announced but unusable.
func (o *OX) skipped(bare jid.JID) []DeviceReport {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.skips[bare.String()])
}

// forget drops the cached keys of bare.
func (o *OX) forget(bare jid.JID) {
	k := bare.String()
	o.mu.Lock()
	delete(o.keys, k)
	delete(o.skips, k)
	o.gen[k]++
	o.mu.Unlock()
}

// onKeys handles a metadata event (XEP-0373 §4.5): the contact's keys are
// fetched again on next use; for the own account, the own key is
// re-announced if it was removed.
func (o *OX) onKeys(_ context.Context, ev *Event) {
	bare := ev.From.Bare()
	o.forget(bare)
	if !bare.Equal(o.c.JID().Bare()) {
		return
	}
	fpr := o.key.Fingerprint()
	for _, it := range ev.Items {
		var list ox.PublicKeysList
		if it.Payload.Name.Local == "" || decodeElement(it.Payload, &list) != nil {
			break // without a usable payload: check by fetching
		}
		if slices.ContainsFunc(list.Keys, func(m ox.PubkeyMetadata) bool { return m.Fingerprint == fpr }) {
			return
		}
	}
	select {
	case o.work <- struct{}{}:
	default:
	}
}

// loop re-announces the own key when an event asks for it, off the
// receive path.
func (o *OX) loop() {
	for {
		select {
		case <-o.work:
		case <-o.c.Done():
			return
		}
		ctx, cancel := context.WithTimeout(o.c.ctx, followUpTimeout)
		if err := o.announceKey(ctx); err != nil {
			o.c.log.Warn("client: ox: re-announcing the own key", "err", err)
		}
		cancel()
	}
}

// Encrypt implements Engine with ox.Seal (<signcrypt/>, XEP-0374 §4.1): to
// every announced key of the bare 'to' and of the account ("all keys MUST
// be used for encryption", XEP-0374 §4.3.1). Keys come from the cache and,
// unless called from inside an IQ handler, from PEP.
func (o *OX) Encrypt(ctx context.Context, plain *sce.Stanza) (*sce.Stanza, *Report, error) {
	to, err := jid.Parse(plain.AttrValue("to"))
	if err != nil {
		return nil, nil, fmt.Errorf("client: ox: stanza without a valid 'to': %w", err)
	}
	own := o.c.JID().Bare()
	rcpt := to.Bare()
	rep := &Report{Protocol: OXEncrypted}
	owner := make(map[ox.Fingerprint]jid.JID)
	theirs, err := o.Keys(ctx, rcpt)
	if err != nil {
		rep.Devices = append(rep.Devices, DeviceReport{JID: rcpt, Reason: "no keys", Err: err})
	}
	for _, k := range theirs {
		owner[k.Fingerprint()] = rcpt
	}
	mine, err := o.Keys(ctx, own)
	if err != nil && !errors.Is(err, ErrIQInHandler) {
		o.c.log.Info("client: ox: own keys", "err", err)
	}
	for _, k := range mine {
		owner[k.Fingerprint()] = own
	}
	owner[o.key.Fingerprint()] = own
	rep.Devices = append(rep.Devices, o.skipped(rcpt)...)
	if len(theirs) == 0 {
		return nil, rep, fmt.Errorf("client: ox: %w for %s", ox.ErrNoRecipients, rcpt)
	}
	sealed, err := ox.Seal(plain, ox.SealOptions{Signer: o.key, From: own, Recipients: theirs, Own: mine, Now: o.now})
	if err != nil {
		return nil, rep, err
	}
	for _, f := range sealed.EncryptedTo {
		rep.Devices = append(rep.Devices, DeviceReport{JID: owner[f], Device: f.String(), Sent: true})
	}
	for _, ke := range sealed.Skipped {
		rep.Devices = append(rep.Devices, DeviceReport{JID: owner[ke.Fingerprint], Device: ke.Fingerprint.String(), Reason: "unusable key", Err: ke})
	}
	iqPayloadOnly(sealed.Stanza)
	return sealed.Stanza, rep, nil
}

// Decrypt implements Engine with ox.Open: the message must be a
// <signcrypt/> signed by an announced key of the sender (in.From, for
// carbons and archive results that of the forwarded stanza) that names it
// (XEP-0373 §3.2). When the signature does not verify with the cached
// keys, they are fetched again once (the sender may have a new key).
// Keys fetched from PEP are not verified: Security.Trust is TrustBlind.
func (o *OX) Decrypt(ctx context.Context, in *Incoming) (*sce.Stanza, *Security, error) {
	sender := in.From.Bare()
	open := func() (*ox.Opened, error) {
		keys, err := o.Keys(ctx, sender)
		if err != nil {
			return nil, fmt.Errorf("client: ox: keys of %s: %w", sender, err)
		}
		if sender.Equal(o.c.JID().Bare()) {
			keys = append(slices.Clone(keys), o.key.Public())
		}
		return ox.Open(in.Stanza, ox.OpenOptions{Keys: []*ox.Key{o.key}, SenderKeys: keys, Now: o.now})
	}
	opened, err := open()
	if errors.Is(err, ox.ErrBadSignature) && ctx.Value(inIQHandlerKey{}) == nil {
		o.forget(sender)
		opened, err = open()
	}
	if err != nil {
		return nil, nil, err
	}
	sec := &Security{Protocol: OXEncrypted, Sender: sender, Trust: TrustBlind}
	if opened.Signer != nil {
		sec.Device = opened.Signer.Fingerprint().String()
	}
	return opened.Stanza, sec, nil
}
