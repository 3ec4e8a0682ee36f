package client

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/xml"
	"slices"

	"hush.im/sce"
)

// Namespaces used by the package.
const (
	nsClient        = "jabber:client"
	nsStanzas       = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsDataForms     = "jabber:x:data"
	nsDiscoInfo     = "http://jabber.org/protocol/disco#info"
	nsCaps          = "http://jabber.org/protocol/caps"
	nsPing          = "urn:xmpp:ping"
	nsRoster        = "jabber:iq:roster"
	nsCarbons       = "urn:xmpp:carbons:2"
	nsMAM           = "urn:xmpp:mam:2"
	nsRSM           = "http://jabber.org/protocol/rsm"
	nsDelay         = "urn:xmpp:delay"
	nsXML           = "http://www.w3.org/XML/1998/namespace"
	nsPubSub        = "http://jabber.org/protocol/pubsub"
	nsPubSubOwner   = "http://jabber.org/protocol/pubsub#owner"
	nsPubSubEvent   = "http://jabber.org/protocol/pubsub#event"
	nsPubSubErrors  = "http://jabber.org/protocol/pubsub#errors"
	formPublishOpts = "http://jabber.org/protocol/pubsub#publish-options"
	formNodeConfig  = "http://jabber.org/protocol/pubsub#node_config"
)

func name(space, local string) xml.Name { return xml.Name{Space: space, Local: local} }

func attr(local, value string) xml.Attr { return xml.Attr{Name: xml.Name{Local: local}, Value: value} }

// elem builds an element from its name, attributes and children. Attributes
// with an empty value are left out.
func elem(n xml.Name, attrs []xml.Attr, children ...sce.Element) sce.Element {
	var a []xml.Attr
	for _, at := range attrs {
		if at.Value != "" {
			a = append(a, at)
		}
	}
	size := 2
	for _, c := range children {
		size += len(c.Tokens)
	}
	toks := make([]xml.Token, 0, size)
	toks = append(toks, xml.StartElement{Name: n, Attr: a})
	for _, c := range children {
		toks = append(toks, c.Tokens...)
	}
	toks = append(toks, xml.EndElement{Name: n})
	return sce.Element{Name: n, Tokens: toks}
}

// children returns the direct child elements of e, sharing e's tokens.
func children(e sce.Element) []sce.Element {
	var out []sce.Element
	depth, begin := 0, 0
	for i, tok := range e.Tokens {
		switch tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 {
				begin = i
			}
		case xml.EndElement:
			if depth == 2 {
				start := e.Tokens[begin].(xml.StartElement)
				out = append(out, sce.Element{Name: start.Name, Tokens: e.Tokens[begin : i+1 : i+1], Encrypted: e.Encrypted})
			}
			depth--
		}
	}
	return out
}

// child returns the first direct child of e named n.
func child(e sce.Element, n xml.Name) (sce.Element, bool) {
	for _, c := range children(e) {
		if c.Name == n {
			return c, true
		}
	}
	return sce.Element{}, false
}

// stanzaChild returns the first child of st named n.
func stanzaChild(st *sce.Stanza, n xml.Name) (sce.Element, bool) {
	i := slices.IndexFunc(st.Children, func(e sce.Element) bool { return e.Name == n })
	if i < 0 {
		return sce.Element{}, false
	}
	return st.Children[i], true
}

// newStanza returns a stanza in jabber:client with the given attributes
// (empty values left out).
func newStanza(local string, attrs []xml.Attr, children ...sce.Element) *sce.Stanza {
	st := &sce.Stanza{Name: name(nsClient, local), Children: children}
	for _, a := range attrs {
		if a.Value != "" {
			st.Attr = append(st.Attr, a)
		}
	}
	return st
}

// setAttr sets (or adds) the unqualified attribute local of st.
func setAttr(st *sce.Stanza, local, value string) {
	for i, a := range st.Attr {
		if a.Name.Space == "" && a.Name.Local == local {
			st.Attr[i].Value = value
			return
		}
	}
	st.Attr = append(st.Attr, attr(local, value))
}

// idLen is the number of random bytes in a stanza id: 96 bits, so that ids
// cannot be guessed by other entities spoofing a response (RFC 6120 §8.1.3
// leaves the format to the client).
const idLen = 12

// newID returns a random stanza id.
func newID() string {
	b := make([]byte, idLen)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error
	return base64.RawURLEncoding.EncodeToString(b)
}

// formField builds a data form field (XEP-0004 §3.2) with one value per
// entry of values.
func formField(v, typ string, values ...string) sce.Element {
	var vals []sce.Element
	for _, s := range values {
		vals = append(vals, sce.TextElement(name(nsDataForms, "value"), s))
	}
	return elem(name(nsDataForms, "field"), []xml.Attr{attr("var", v), attr("type", typ)}, vals...)
}

// submitForm builds a submitted data form of formType with the fields in
// order.
func submitForm(formType string, fields [][2]string) sce.Element {
	fs := []sce.Element{formField("FORM_TYPE", "hidden", formType)}
	for _, f := range fields {
		fs = append(fs, formField(f[0], "", f[1]))
	}
	return elem(name(nsDataForms, "x"), []xml.Attr{attr("type", "submit")}, fs...)
}

// maxFormFields bounds the fields read from one data form.
const maxFormFields = 256

// parseForm returns the fields of a data form: var → values. Fields
// without a var (fixed fields) are skipped.
func parseForm(x sce.Element) map[string][]string {
	out := make(map[string][]string)
	for _, f := range children(x) {
		if f.Name != name(nsDataForms, "field") {
			continue
		}
		v := f.AttrValue("var")
		if v == "" {
			continue
		}
		if len(out) >= maxFormFields {
			break
		}
		var vals []string
		for _, val := range children(f) {
			if val.Name == name(nsDataForms, "value") {
				vals = append(vals, val.Text())
			}
		}
		out[v] = vals
	}
	return out
}
