package client

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"maps"
	"slices"

	"mellium.im/xmpp/jid"

	"hush.im/sce"
)

// PubSub access models and item counts (XEP-0060 §4.5, §16.4.4).
const (
	// AccessOpen lets anyone fetch the node's items (XEP-0060 §4.5); what
	// OMEMO device lists and bundles and OX public keys need
	// (XEP-0384 §5.3, XEP-0373 §4).
	AccessOpen = "open"
	// AccessPresence, the PEP default (XEP-0163 §3), limits the node to
	// contacts with a presence subscription.
	AccessPresence = "presence"
	// MaxItemsMax asks the service for its largest item count
	// (XEP-0060 §16.4.4, "max").
	MaxItemsMax = "max"
)

// maxItems bounds the items read from one fetch or event.
const maxItems = 4096

// Item is a PubSub item (XEP-0060 §2).
type Item struct {
	// ID is the item id.
	ID string
	// Payload is the item's single payload element; the zero Element (Name
	// empty) for an item without payload.
	Payload sce.Element
}

// PublishOptions are the XEP-0060 §7.1.5 publish-options sent with an
// item: preconditions the node's configuration must meet, or that a new
// node is created with.
type PublishOptions struct {
	// AccessModel is pubsub#access_model; empty means AccessOpen.
	AccessModel string
	// MaxItems is pubsub#max_items: empty (not sent), MaxItemsMax or a
	// decimal count.
	MaxItems string
	// SkipReadBack skips reading the item and the node's configuration back
	// after publishing.
	SkipReadBack bool
}

func (o *PublishOptions) fields() [][2]string {
	am := o.AccessModel
	if am == "" {
		am = AccessOpen
	}
	f := [][2]string{{"pubsub#access_model", am}}
	if o.MaxItems != "" {
		f = append(f, [2]string{"pubsub#max_items", o.MaxItems})
	}
	return f
}

// Publish publishes item to node of the account's PEP service
// (XEP-0163 §3) with publish-options (XEP-0060 §7.1.5) and returns the
// item id the service stored. If the node exists with another
// configuration (precondition-not-met), Publish reconfigures it
// (XEP-0060 §8.2) and publishes again. Unless opts.SkipReadBack, it then
// reads the item and the node's access model back and returns ErrReadBack
// when either is not as published. A service that refuses an option
// returns a *PublishOptionError. nil opts means access model open.
func (c *Client) Publish(ctx context.Context, node string, item Item, opts *PublishOptions) (string, error) {
	if node == "" {
		return "", errors.New("client: publish: empty node")
	}
	if opts == nil {
		opts = &PublishOptions{}
	}
	fields := opts.fields()
	id, err := c.publish(ctx, node, item, fields)
	var se *StanzaError
	if errors.As(err, &se) && se.PreconditionNotMet() {
		if cerr := c.configureNode(ctx, node, fields); cerr != nil {
			return "", fmt.Errorf("client: reconfiguring node %q after precondition-not-met: %w", node, cerr)
		}
		id, err = c.publish(ctx, node, item, fields)
	}
	if err != nil {
		return "", err
	}
	if opts.SkipReadBack {
		return id, nil
	}
	return id, c.readBack(ctx, node, Item{ID: id, Payload: item.Payload}, fields)
}

func (c *Client) publish(ctx context.Context, node string, item Item, fields [][2]string) (string, error) {
	var payload []sce.Element
	if item.Payload.Name.Local != "" {
		payload = append(payload, item.Payload)
	}
	ps := elem(name(nsPubSub, "pubsub"), nil,
		elem(name(nsPubSub, "publish"), []xml.Attr{attr("node", node)},
			elem(name(nsPubSub, "item"), []xml.Attr{attr("id", item.ID)}, payload...)),
		elem(name(nsPubSub, "publish-options"), nil, submitForm(formPublishOpts, fields)),
	)
	resp, err := c.iq(ctx, "set", jid.JID{}, ps)
	if err != nil {
		var se *StanzaError
		if errors.As(err, &se) {
			sent := make([]string, len(fields))
			for i, f := range fields {
				sent[i] = f[0]
			}
			return "", publishOptionError(node, sent, se)
		}
		return "", err
	}
	// XEP-0060 §7.1.2: the result may carry the id the service assigned.
	if p, ok := stanzaChild(resp, name(nsPubSub, "pubsub")); ok {
		if pub, ok := child(p, name(nsPubSub, "publish")); ok {
			if it, ok := child(pub, name(nsPubSub, "item")); ok && it.AttrValue("id") != "" {
				return it.AttrValue("id"), nil
			}
		}
	}
	if item.ID == "" {
		return "", fmt.Errorf("%w: publish result without the assigned item id", ErrMalformed)
	}
	return item.ID, nil
}

// readBack fetches the published item and the node's configuration.
func (c *Client) readBack(ctx context.Context, node string, want Item, fields [][2]string) error {
	items, err := c.FetchItems(ctx, c.own.Bare(), node, want.ID)
	if err != nil {
		return fmt.Errorf("%w: fetching %q item %q: %v", ErrReadBack, node, want.ID, err)
	}
	if len(items) != 1 || items[0].ID != want.ID {
		return fmt.Errorf("%w: node %q item %q not found", ErrReadBack, node, want.ID)
	}
	if want.Payload.Name.Local != "" {
		a, err1 := marshalElement(want.Payload)
		b, err2 := marshalElement(items[0].Payload)
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			return fmt.Errorf("%w: node %q item %q differs from what was published", ErrReadBack, node, want.ID)
		}
	}
	cfg, err := c.NodeConfig(ctx, node)
	if err != nil {
		return fmt.Errorf("%w: node %q configuration: %v", ErrReadBack, node, err)
	}
	for _, f := range fields {
		if got := cfg[f[0]]; len(got) != 1 || got[0] != f[1] {
			return fmt.Errorf("%w: node %q has %s %q, want %q", ErrReadBack, node, f[0], got, f[1])
		}
	}
	return nil
}

// ConfigureNode sets fields of the configuration of one of the account's
// PEP nodes (XEP-0060 §8.2.4), e.g. {"pubsub#access_model": "open"}; fields
// not given keep their value (Prosody) or their default.
func (c *Client) ConfigureNode(ctx context.Context, node string, fields map[string]string) error {
	keys := slices.Sorted(maps.Keys(fields))
	f := make([][2]string, 0, len(keys))
	for _, k := range keys {
		f = append(f, [2]string{k, fields[k]})
	}
	return c.configureNode(ctx, node, f)
}

func (c *Client) configureNode(ctx context.Context, node string, fields [][2]string) error {
	ps := elem(name(nsPubSubOwner, "pubsub"), nil,
		elem(name(nsPubSubOwner, "configure"), []xml.Attr{attr("node", node)},
			submitForm(formNodeConfig, fields)))
	_, err := c.iq(ctx, "set", jid.JID{}, ps)
	return err
}

// NodeConfig returns the configuration form of one of the account's PEP
// nodes (XEP-0060 §8.2.1): variable → values.
func (c *Client) NodeConfig(ctx context.Context, node string) (map[string][]string, error) {
	ps := elem(name(nsPubSubOwner, "pubsub"), nil,
		elem(name(nsPubSubOwner, "configure"), []xml.Attr{attr("node", node)}))
	resp, err := c.iq(ctx, "get", jid.JID{}, ps)
	if err != nil {
		return nil, err
	}
	p, ok := stanzaChild(resp, name(nsPubSubOwner, "pubsub"))
	if !ok {
		return nil, fmt.Errorf("%w: configure result without <pubsub/>", ErrMalformed)
	}
	conf, ok := child(p, name(nsPubSubOwner, "configure"))
	if !ok {
		return nil, fmt.Errorf("%w: configure result without <configure/>", ErrMalformed)
	}
	x, ok := child(conf, name(nsDataForms, "x"))
	if !ok {
		return nil, fmt.Errorf("%w: configure result without a form", ErrMalformed)
	}
	return parseForm(x), nil
}

// FetchItems fetches items of node from owner's PEP service (a bare JID;
// the account's own for its own nodes): those with the given ids, or all
// the service returns when none are given (XEP-0060 §6.5.2, §6.5.8).
func (c *Client) FetchItems(ctx context.Context, owner jid.JID, node string, ids ...string) ([]Item, error) {
	var want []sce.Element
	for _, id := range ids {
		want = append(want, elem(name(nsPubSub, "item"), []xml.Attr{attr("id", id)}))
	}
	ps := elem(name(nsPubSub, "pubsub"), nil, elem(name(nsPubSub, "items"), []xml.Attr{attr("node", node)}, want...))
	to := owner
	if to.Equal(c.own.Bare()) {
		to = jid.JID{}
	}
	resp, err := c.iq(ctx, "get", to, ps)
	if err != nil {
		return nil, err
	}
	p, ok := stanzaChild(resp, name(nsPubSub, "pubsub"))
	if !ok {
		return nil, fmt.Errorf("%w: items result without <pubsub/>", ErrMalformed)
	}
	its, ok := child(p, name(nsPubSub, "items"))
	if !ok {
		return nil, fmt.Errorf("%w: items result without <items/>", ErrMalformed)
	}
	return parseItems(its, name(nsPubSub, "item"))
}

// parseItems reads the <item/> children of an <items/> element.
func parseItems(its sce.Element, itemName xml.Name) ([]Item, error) {
	var out []Item
	for _, it := range children(its) {
		if it.Name != itemName {
			continue
		}
		if len(out) >= maxItems {
			return nil, fmt.Errorf("%w: more than %d items", ErrMalformed, maxItems)
		}
		kids := children(it)
		if len(kids) > 1 {
			// XEP-0060 §7.1.3.5: an item carries a single payload.
			return nil, fmt.Errorf("%w: item with %d payloads", ErrMalformed, len(kids))
		}
		item := Item{ID: it.AttrValue("id")}
		if len(kids) == 1 {
			item.Payload = kids[0]
		}
		out = append(out, item)
	}
	return out, nil
}

// Retract removes item id from one of the account's PEP nodes and notifies
// subscribers (XEP-0060 §7.2).
func (c *Client) Retract(ctx context.Context, node, id string) error {
	ps := elem(name(nsPubSub, "pubsub"), nil,
		elem(name(nsPubSub, "retract"), []xml.Attr{attr("node", node), attr("notify", "true")},
			elem(name(nsPubSub, "item"), []xml.Attr{attr("id", id)})))
	_, err := c.iq(ctx, "set", jid.JID{}, ps)
	return err
}

// Event is a PubSub event notification (XEP-0060 §7.1.2.1, §7.2.2.1,
// §8.4.3.1, §8.5.3.1), as PEP sends it to contacts that advertise
// node+"+notify" (XEP-0163 §4).
type Event struct {
	// From is the publishing entity: a contact's (or the account's own)
	// bare JID for PEP.
	From jid.JID
	// Node is the node the event is about.
	Node string
	// Items are published items, with payload when the node delivers
	// payloads.
	Items []Item
	// Retracted are ids of retracted items.
	Retracted []string
	// Purged reports that all items were removed.
	Purged bool
	// Deleted reports that the node was deleted.
	Deleted bool
}

// EventHandler receives PubSub events for one node. It runs on the
// client's receive goroutine and may call any method of the Client.
type EventHandler func(ctx context.Context, ev *Event)

// HandleEvents registers h for events of node and advertises
// node+"+notify" (XEP-0163 §4) from the next presence on (and at once if
// the client is online), so that the server sends them.
func (c *Client) HandleEvents(node string, h EventHandler) error {
	if node == "" {
		return errors.New("client: HandleEvents: empty node")
	}
	c.mu.Lock()
	c.eventH[node] = append(c.eventH[node], h)
	c.mu.Unlock()
	return c.featuresChanged()
}

// parseEvent reads the <event/> of a message.
func parseEvent(from jid.JID, ev sce.Element) (*Event, error) {
	kids := children(ev)
	if len(kids) != 1 {
		return nil, fmt.Errorf("%w: <event/> with %d children", ErrMalformed, len(kids))
	}
	k := kids[0]
	e := &Event{From: from, Node: k.AttrValue("node")}
	if e.Node == "" {
		return nil, fmt.Errorf("%w: event without node", ErrMalformed)
	}
	switch k.Name {
	case name(nsPubSubEvent, "items"):
		items, err := parseItems(k, name(nsPubSubEvent, "item"))
		if err != nil {
			return nil, err
		}
		e.Items = items
		for _, r := range children(k) {
			if r.Name == name(nsPubSubEvent, "retract") {
				if len(e.Retracted) >= maxItems {
					return nil, fmt.Errorf("%w: more than %d retractions", ErrMalformed, maxItems)
				}
				e.Retracted = append(e.Retracted, r.AttrValue("id"))
			}
		}
	case name(nsPubSubEvent, "purge"):
		e.Purged = true
	case name(nsPubSubEvent, "delete"):
		e.Deleted = true
	default:
		// configuration and subscription notifications: not used here.
		return nil, nil
	}
	return e, nil
}

// eventDedupWindow is how many recent event notifications (sender and
// stanza id) are remembered to drop duplicates. Prosody 0.12's mod_pep
// sends each notification both to the account's bare JID (registered from
// the account's own caps) and to the full JID (from the contact's
// presence), with the same id.
const eventDedupWindow = 128

// seenEvent reports whether a notification with this sender and id was
// handled recently, and remembers it.
func (c *Client) seenEvent(from jid.JID, id string) bool {
	if id == "" {
		return false
	}
	key := from.Bare().String() + "\x00" + id
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.eventSeen[key]; ok {
		return true
	}
	if len(c.eventRing) == eventDedupWindow {
		delete(c.eventSeen, c.eventRing[0])
		c.eventRing = c.eventRing[1:]
	}
	c.eventRing = append(c.eventRing, key)
	c.eventSeen[key] = struct{}{}
	return false
}

func (c *Client) dispatchEvent(st *sce.Stanza) {
	el, _ := stanzaChild(st, name(nsPubSubEvent, "event"))
	from := senderOf(st, c.own)
	if c.seenEvent(from, st.AttrValue("id")) {
		return
	}
	ev, err := parseEvent(from, el)
	if err != nil {
		c.log.Warn("client: dropping malformed pubsub event", "from", st.AttrValue("from"), "err", err)
		return
	}
	if ev == nil {
		return
	}
	c.mu.Lock()
	hs := append([]EventHandler(nil), c.eventH[ev.Node]...)
	c.mu.Unlock()
	for _, h := range hs {
		h(c.ctx, ev)
	}
}
