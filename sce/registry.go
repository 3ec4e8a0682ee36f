package sce

import "encoding/xml"

// Class says where an element belongs in an SCE-encrypted stanza.
// XEP-0420 §7 (Sending), §9 (Server-processed Elements), §10 (Business
// Rules).
type Class uint8

const (
	// Sensitive elements go inside the envelope. Found unencrypted outside an
	// envelope they are dropped by Open (XEP-0420 §10: "MUST ignore any
	// extension elements considered as sensitive which are found outside").
	// Every element not in the registry is sensitive (XEP-0420 §7).
	Sensitive Class = iota

	// ServerProcessed elements stay outside, where servers can read them.
	// Found inside an envelope they are dropped by Open (XEP-0420 §9: "MUST
	// discard elements in that list if found inside"); found outside they are
	// kept, marked Encrypted: false.
	ServerProcessed

	// Mirrored elements (XEP-0359 <origin-id/>) stay outside, so that a
	// duplicate can be recognised before decrypting, and Seal also copies them
	// inside (XEP-0420 0.3.0 allows origin-id inside). On Open the encrypted
	// copy wins; without one the outer element is kept, marked Encrypted:
	// false.
	Mirrored

	// Forbidden elements are dropped wherever they appear: an unencrypted
	// <envelope/> beside the encrypted one (XEP-0420 §10: "NOT ALLOWED … MUST
	// be dropped"), or anything in the SCE namespace inside <content>.
	Forbidden
)

// String returns the class name.
func (c Class) String() string {
	switch c {
	case Sensitive:
		return "sensitive"
	case ServerProcessed:
		return "server-processed"
	case Mirrored:
		return "mirrored"
	case Forbidden:
		return "forbidden"
	}
	return "unknown"
}

// rule is one row of the registry: the elements named by space and local
// ("*" for every element of the namespace) belong to class. unique elements
// are kept at most once per xml:lang by Open; the first encrypted copy wins
// over any unencrypted one.
type rule struct {
	space  string
	local  string
	class  Class
	unique bool
	ref    string
}

const (
	nsClient    = "jabber:client"
	nsServer    = "jabber:server"
	nsComponent = "jabber:component:accept"
	nsHints     = "urn:xmpp:hints"
	nsSID       = "urn:xmpp:sid:0"
	nsDelay     = "urn:xmpp:delay"
	nsCarbons   = "urn:xmpp:carbons:2"
	nsMAM       = "urn:xmpp:mam:2"
	nsForward   = "urn:xmpp:forward:0"
	nsXML       = "http://www.w3.org/XML/1998/namespace"
)

// registry is the list of elements that are not simply sensitive: XEP-0420
// §9's table, completed with what servers and group-chat services add or
// process themselves. Everything else is Sensitive.
var registry = [...]rule{
	// XEP-0420 §9 table.
	{nsHints, "*", ServerProcessed, true, "XEP-0334 §3; XEP-0420 §9"},
	{nsSID, "stanza-id", ServerProcessed, false, "XEP-0359 §2.1; XEP-0420 §9"},
	{"http://jabber.org/protocol/address", "*", ServerProcessed, false, "XEP-0033; XEP-0420 §9"},
	{"urn:xmpp:eme:0", "encryption", ServerProcessed, true, "XEP-0380 §3; XEP-0420 §9"},
	// Duplicate detection before decryption; may also be inside.
	{nsSID, "origin-id", Mirrored, true, "XEP-0359 §2.2; XEP-0420 0.3.0 changelog"},
	// Added by servers; Verify reads it as the sending time.
	{nsDelay, "delay", ServerProcessed, false, "XEP-0203; XEP-0420 §4 (time)"},
	// Wrappers and control elements read by the server.
	{nsCarbons, "*", ServerProcessed, false, "XEP-0280 §7, §8, §9"},
	{nsMAM, "*", ServerProcessed, false, "XEP-0313 §4.2"},
	{nsClient, "error", ServerProcessed, true, "RFC 6120 §8.3"},
	{nsClient, "priority", ServerProcessed, true, "RFC 6121 §4.7.2.3"},
	{"http://jabber.org/protocol/caps", "c", ServerProcessed, true, "XEP-0115; XEP-0163 (filtered notifications)"},
	// Group chat services read or add these.
	{"http://jabber.org/protocol/muc", "x", ServerProcessed, false, "XEP-0045 §7.2"},
	{"http://jabber.org/protocol/muc#user", "*", ServerProcessed, false, "XEP-0045 §7.2, §7.8"},
	{"urn:xmpp:occupant-id:0", "occupant-id", ServerProcessed, true, "XEP-0421"},
	{"urn:xmpp:mix:core:1", "mix", ServerProcessed, true, "XEP-0369"},
	// Sensitive, but at most one per language.
	{nsClient, "body", Sensitive, true, "RFC 6121 §5.2.3"},
	{nsClient, "subject", Sensitive, true, "RFC 6121 §5.2.4"},
	{nsClient, "thread", Sensitive, true, "RFC 6121 §5.2.5"},
	// Unencrypted envelopes, and SCE elements inside content.
	{NS, "*", Forbidden, false, "XEP-0420 §10"},
}

// registryIndex maps element names to registry rows; wildcard rows are
// stored under Local "*".
var registryIndex = func() map[xml.Name]*rule {
	m := make(map[xml.Name]*rule, len(registry))
	for i := range registry {
		r := &registry[i]
		m[xml.Name{Space: r.space, Local: r.local}] = r
	}
	return m
}()

// canonicalSpace maps the server-to-server and component stanza namespaces
// onto jabber:client so that one registry row covers all three.
func canonicalSpace(space string) string {
	if space == nsServer || space == nsComponent {
		return nsClient
	}
	return space
}

func lookup(name xml.Name) *rule {
	name.Space = canonicalSpace(name.Space)
	if r, ok := registryIndex[name]; ok {
		return r
	}
	name.Local = "*"
	return registryIndex[name]
}

// Classify returns the class of elements with this name. Elements not in
// the package's registry are Sensitive (XEP-0420 §7).
func Classify(name xml.Name) Class {
	if r := lookup(name); r != nil {
		return r.class
	}
	return Sensitive
}
