package client

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"slices"
	"strings"

	"mellium.im/xmpp/jid"

	"hush.im/sce"
)

// Limits on what DiscoInfo accepts from a peer.
const (
	// maxDiscoFeatures bounds the features read from one disco#info result;
	// large servers advertise about a hundred.
	maxDiscoFeatures = 1024
	// maxDiscoIdentities bounds the identities read.
	maxDiscoIdentities = 64
)

// identity is a XEP-0030 §3.1 identity.
type identity struct {
	Category, Type, Lang, Name string
}

// Identity is a XEP-0030 §3.1 identity of a queried entity.
type Identity struct {
	Category string
	Type     string
	Name     string
	Lang     string
}

// DiscoInfo is a XEP-0030 §3.1 disco#info result.
type DiscoInfo struct {
	Identities []Identity
	Features   []string
}

// Has reports whether the entity advertises feature.
func (d *DiscoInfo) Has(feature string) bool { return slices.Contains(d.Features, feature) }

// Features returns the XEP-0030 features the client advertises, sorted:
// service discovery, entity capabilities, ping, the namespaces of the IQ
// handlers, every engine's features, a "+notify" feature (XEP-0163 §4) for
// every node with an event handler, and Options.Features.
func (c *Client) Features() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.featuresLocked()
}

func (c *Client) featuresLocked() []string {
	fs := []string{nsDiscoInfo, nsCaps, nsPing}
	for n := range c.iqH {
		fs = append(fs, n.Space)
	}
	for _, e := range c.engines {
		fs = append(fs, e.Features()...)
	}
	for node := range c.eventH {
		fs = append(fs, node+"+notify")
	}
	fs = append(fs, c.extraFeat...)
	slices.Sort(fs)
	return slices.Compact(fs)
}

// capsVer computes the XEP-0115 §5.1 verification string (SHA-1) of one
// identity and a sorted feature list.
func capsVer(ids []identity, features []string) string {
	ids = slices.Clone(ids)
	slices.SortFunc(ids, func(a, b identity) int {
		// Sorted on the NUL-joined fields, as Prosody (util/caps.lua) and
		// XEP-0115 §5.1 step 2 (i;octet collation) do.
		return strings.Compare(a.Category+"\x00"+a.Type+"\x00"+a.Lang+"\x00"+a.Name, b.Category+"\x00"+b.Type+"\x00"+b.Lang+"\x00"+b.Name)
	})
	features = slices.Clone(features)
	slices.Sort(features)
	var s strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&s, "%s/%s/%s/%s<", id.Category, id.Type, id.Lang, id.Name)
	}
	for _, f := range features {
		s.WriteString(f)
		s.WriteString("<")
	}
	sum := sha1.Sum([]byte(s.String()))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// caps returns the XEP-0115 <c/> element for the current features.
func (c *Client) capsLocked() sce.Element {
	ver := capsVer([]identity{c.ident}, c.featuresLocked())
	return elem(name(nsCaps, "c"), []xml.Attr{attr("hash", "sha-1"), attr("node", c.capsNode), attr("ver", ver)})
}

// answerDisco answers a disco#info query for the client itself or for its
// caps node (XEP-0115 §6.2).
func (c *Client) answerDisco(w interface {
	EncodeToken(xml.Token) error
}, req *sce.Stanza, q sce.Element) error {
	c.mu.Lock()
	features := c.featuresLocked()
	ver := capsVer([]identity{c.ident}, features)
	ident := c.ident
	c.mu.Unlock()
	node := q.AttrValue("node")
	if node != "" && node != c.capsNode+"#"+ver {
		return c.writeError(w, req, &StanzaError{Type: "cancel", Condition: "item-not-found"})
	}
	kids := []sce.Element{elem(name(nsDiscoInfo, "identity"), []xml.Attr{
		attr("category", ident.Category), attr("type", ident.Type), attr("name", ident.Name),
	})}
	for _, f := range features {
		kids = append(kids, elem(name(nsDiscoInfo, "feature"), []xml.Attr{attr("var", f)}))
	}
	return c.writeResult(w, req, elem(name(nsDiscoInfo, "query"), []xml.Attr{attr("node", node)}, kids...))
}

// Online sends initial presence (RFC 6121 §4.2) with the XEP-0115
// capabilities of the current features, so that the server delivers
// offline messages and sends PEP +notify events (XEP-0163 §4). extra are
// more children for the presence (e.g. <priority/>, <status/>); they are
// sent again when the features change.
func (c *Client) Online(ctx context.Context, extra ...sce.Element) error {
	c.mu.Lock()
	c.online = true
	c.presence = slices.Clone(extra)
	c.mu.Unlock()
	return c.sendPresence(ctx)
}

func (c *Client) sendPresence(ctx context.Context) error {
	c.mu.Lock()
	if !c.online {
		c.mu.Unlock()
		return nil
	}
	kids := append(slices.Clone(c.presence), c.capsLocked())
	c.mu.Unlock()
	return c.Send(ctx, newStanza("presence", nil, kids...))
}

// featuresChanged re-announces the capabilities when the client is online
// (XEP-0115 §4: a changed feature set is sent as new presence).
func (c *Client) featuresChanged() error {
	select {
	case <-c.done:
		return nil
	default:
	}
	ctx, cancel := context.WithTimeout(c.ctx, IQReplyTimeout)
	defer cancel()
	return c.sendPresence(ctx)
}

// DiscoInfo queries the identities and features of to (optionally of one
// of its nodes). XEP-0030 §3.1.
func (c *Client) DiscoInfo(ctx context.Context, to jid.JID, node string) (*DiscoInfo, error) {
	resp, err := c.iq(ctx, "get", to, elem(name(nsDiscoInfo, "query"), []xml.Attr{attr("node", node)}))
	if err != nil {
		return nil, err
	}
	q, ok := stanzaChild(resp, name(nsDiscoInfo, "query"))
	if !ok {
		return nil, fmt.Errorf("%w: disco#info result without <query/>", ErrMalformed)
	}
	return parseDiscoInfo(q)
}

func parseDiscoInfo(q sce.Element) (*DiscoInfo, error) {
	info := &DiscoInfo{}
	for _, ch := range children(q) {
		switch ch.Name {
		case name(nsDiscoInfo, "identity"):
			if len(info.Identities) >= maxDiscoIdentities {
				return nil, fmt.Errorf("%w: more than %d identities", ErrMalformed, maxDiscoIdentities)
			}
			info.Identities = append(info.Identities, Identity{
				Category: ch.AttrValue("category"),
				Type:     ch.AttrValue("type"),
				Name:     ch.AttrValue("name"),
				Lang:     xmlLang(ch),
			})
		case name(nsDiscoInfo, "feature"):
			if len(info.Features) >= maxDiscoFeatures {
				return nil, fmt.Errorf("%w: more than %d features", ErrMalformed, maxDiscoFeatures)
			}
			if v := ch.AttrValue("var"); v != "" {
				info.Features = append(info.Features, v)
			}
		}
	}
	return info, nil
}

func xmlLang(e sce.Element) string {
	start, _ := e.Tokens[0].(xml.StartElement)
	for _, a := range start.Attr {
		if a.Name.Local == "lang" && (a.Name.Space == nsXML || a.Name.Space == "xml") {
			return a.Value
		}
	}
	return ""
}
