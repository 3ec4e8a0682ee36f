package ox

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"strings"
	"time"

	"hush.im/sce"
	"mellium.im/xmlstream"
)

// Namespaces, features and PEP nodes of XEP-0373 and XEP-0374.
const (
	// NS is the namespace of OpenPGP for XMPP, XEP-0373 §3.1.
	NS = "urn:xmpp:openpgp:0"

	// NSIM is the disco feature of the OX Instant Messaging profile, which
	// clients MUST advertise (XEP-0374 §2.1).
	NSIM = "urn:xmpp:openpgp:im:0"

	// NodePublicKeys is the PEP node announcing public keys, the "metadata
	// node" (XEP-0373 §4.2).
	NodePublicKeys = "urn:xmpp:openpgp:0:public-keys"

	// FeaturePublicKeysNotify asks for notifications of NodePublicKeys
	// (XEP-0373 §4.5, XEP-0163 §4).
	FeaturePublicKeysNotify = NodePublicKeys + "+notify"

	// NodeSecretKey is the private PEP node holding the secret-key backup
	// (XEP-0373 §5).
	NodeSecretKey = "urn:xmpp:openpgp:0:secret-key"

	// NSEME is the XEP-0380 namespace of the <encryption/> element.
	NSEME = "urn:xmpp:eme:0"
)

// PublicKeyNode returns the PEP data node of the key with fingerprint f:
// "urn:xmpp:openpgp:0:public-keys:" and the fingerprint (XEP-0373 §4.1).
func PublicKeyNode(f Fingerprint) string { return NodePublicKeys + ":" + f.String() }

// ItemID returns the PubSub item id XEP-0373 §4.1 recommends for a data node:
// the publication time as an XEP-0082 DateTime.
func ItemID(t time.Time) string { return sce.FormatDateTime(t) }

var (
	openpgpName  = xml.Name{Space: NS, Local: "openpgp"}
	listName     = xml.Name{Space: NS, Local: "public-keys-list"}
	metadataName = xml.Name{Space: NS, Local: "pubkey-metadata"}
	pubkeyName   = xml.Name{Space: NS, Local: "pubkey"}
	dataName     = xml.Name{Space: NS, Local: "data"}
	secretName   = xml.Name{Space: NS, Local: "secretkey"}
	encryptName  = xml.Name{Space: NSEME, Local: "encryption"}
)

// base64Limit returns the longest Base64 text, without white space, of n
// bytes.
func base64Limit(n int) int { return base64.StdEncoding.EncodedLen(n) }

// decodeBase64 decodes the Base64 (RFC 4648 §4, padded) text of an element.
// XML white space is allowed anywhere, as in XEP-0373's examples; anything
// else that is not canonical Base64 is rejected.
func decodeBase64(text string, max int, what string) ([]byte, error) {
	return decodeBase64Bytes([]byte(text), max, what)
}

// decodeBase64Bytes is decodeBase64 of text as bytes, which it does not
// modify.
func decodeBase64Bytes(text []byte, max int, what string) ([]byte, error) {
	clean := text
	if bytes.ContainsAny(text, " \t\r\n") {
		clean = make([]byte, 0, len(text))
		for _, c := range text {
			switch c {
			case ' ', '\t', '\r', '\n':
			default:
				clean = append(clean, c)
			}
		}
	}
	if len(clean) > base64Limit(max) {
		return nil, fmt.Errorf("%w: %s over %d bytes", ErrTooLarge, what, max)
	}
	enc := base64.StdEncoding.Strict()
	b := make([]byte, enc.DecodedLen(len(clean)))
	n, err := enc.Decode(b, clean)
	if err != nil || n == 0 {
		return nil, fmt.Errorf("%w: %s is not Base64", ErrInvalidElement, what)
	}
	return b[:n], nil
}

// childElements returns the direct child elements of el and whether el has
// non-white-space text of its own.
func childElements(el sce.Element) (children []sce.Element, text bool) {
	depth, begin := 0, 0
	for i, tok := range el.Tokens {
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 {
				begin = i
			}
		case xml.EndElement:
			if depth == 2 {
				children = append(children, sce.Element{Name: el.Tokens[begin].(xml.StartElement).Name, Tokens: el.Tokens[begin : i+1]})
			}
			depth--
		case xml.CharData:
			if depth == 1 && len(bytes.TrimLeft(t, " \t\r\n")) > 0 {
				text = true
			}
		}
	}
	return children, text
}

// textOnly returns the text of an element that must have no children.
func textOnly(el sce.Element) (string, error) {
	if len(el.Tokens) < 2 {
		return "", fmt.Errorf("%w: <%s/> is not a complete element", ErrInvalidElement, el.Name.Local)
	}
	if _, ok := el.Tokens[len(el.Tokens)-1].(xml.EndElement); !ok {
		return "", fmt.Errorf("%w: <%s/> is not a complete element", ErrInvalidElement, el.Name.Local)
	}
	for _, tok := range el.Tokens[1:] {
		if _, ok := tok.(xml.StartElement); ok {
			return "", fmt.Errorf("%w: <%s/> has child elements", ErrInvalidElement, el.Name.Local)
		}
	}
	return el.Text(), nil
}

// readElement reads one element with sce's limits and strictness, for the
// UnmarshalXML methods.
func readElement(d *xml.Decoder, start xml.StartElement, want xml.Name) (sce.Element, error) {
	var el sce.Element
	if err := el.UnmarshalXML(d, start); err != nil {
		return el, err
	}
	if el.Name != want {
		return el, fmt.Errorf("%w: <%s xmlns='%s'> is not <%s xmlns='%s'>", ErrInvalidElement,
			el.Name.Local, el.Name.Space, want.Local, want.Space)
	}
	return el, nil
}

// element builds an sce.Element from a start element, text and children.
func element(name xml.Name, attr []xml.Attr, text string, children ...sce.Element) sce.Element {
	toks := []xml.Token{xml.StartElement{Name: name, Attr: attr}}
	if text != "" {
		toks = append(toks, xml.CharData(text))
	}
	for _, c := range children {
		toks = append(toks, c.Tokens...)
	}
	toks = append(toks, xml.EndElement{Name: name})
	return sce.Element{Name: name, Tokens: toks}
}

// OpenPGP is the <openpgp xmlns='urn:xmpp:openpgp:0'/> element: the Base64
// of a binary OpenPGP message, without ASCII armor (XEP-0373 §3.1).
type OpenPGP struct {
	// Message is the binary OpenPGP message.
	Message []byte
}

// Element returns the element as an sce.Element, to append to a stanza.
func (o OpenPGP) Element() sce.Element {
	// Encode straight into the token's text: EncodeToString and the
	// conversion to xml.CharData would copy the Base64 twice more.
	if len(o.Message) == 0 {
		return element(openpgpName, nil, "")
	}
	text := make(xml.CharData, base64.StdEncoding.EncodedLen(len(o.Message)))
	base64.StdEncoding.Encode(text, o.Message)
	return sce.Element{Name: openpgpName, Tokens: []xml.Token{
		xml.StartElement{Name: openpgpName}, text, xml.EndElement{Name: openpgpName},
	}}
}

// TokenReader returns a reader of the element's tokens.
func (o OpenPGP) TokenReader() xml.TokenReader { return o.Element().TokenReader() }

// WriteXML implements xmlstream.WriterTo.
func (o OpenPGP) WriteXML(w xmlstream.TokenWriter) (int, error) { return o.Element().WriteXML(w) }

// MarshalXML implements xml.Marshaler.
func (o OpenPGP) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	_, err := o.WriteXML(e)
	return err
}

// UnmarshalXML implements xml.Unmarshaler: the element must hold only
// Base64 text (white space allowed) of at most MaxMessageSize bytes.
func (o *OpenPGP) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	el, err := readElement(d, start, openpgpName)
	if err != nil {
		return err
	}
	p, err := ParseOpenPGP(el)
	if err != nil {
		return err
	}
	*o = p
	return nil
}

// ParseOpenPGP reads an <openpgp/> element, for example a child of an
// sce.Stanza.
func ParseOpenPGP(el sce.Element) (OpenPGP, error) {
	if el.Name != openpgpName {
		return OpenPGP{}, fmt.Errorf("%w: not <openpgp xmlns='%s'/>", ErrInvalidElement, NS)
	}
	// The usual element is a start, one text and an end: decode the text
	// where it is.
	var b []byte
	var err error
	var cd xml.CharData
	simple := len(el.Tokens) == 3
	if simple {
		_, isEnd := el.Tokens[2].(xml.EndElement)
		cd, simple = el.Tokens[1].(xml.CharData)
		simple = simple && isEnd
	}
	if simple {
		b, err = decodeBase64Bytes(cd, MaxMessageSize, "<openpgp/>")
	} else {
		var text string
		if text, err = textOnly(el); err != nil {
			return OpenPGP{}, err
		}
		b, err = decodeBase64(text, MaxMessageSize, "<openpgp/>")
	}
	if err != nil {
		return OpenPGP{}, err
	}
	return OpenPGP{Message: b}, nil
}

// MaxAnnouncedKeys is the most <pubkey-metadata/> entries a
// <public-keys-list/> may have. XEP-0373 §4.2 sets no limit; like MaxKeys it
// is far above any real account.
const MaxAnnouncedKeys = 64

// PubkeyMetadata is one announced key: its fingerprint and when it was
// published or last updated (XEP-0373 §4.2).
type PubkeyMetadata struct {
	Fingerprint Fingerprint
	Date        time.Time
}

// PublicKeysList is the payload of the metadata node NodePublicKeys:
// <public-keys-list xmlns='urn:xmpp:openpgp:0'> with one <pubkey-metadata
// v4-fingerprint='…' date='…'/> per announced key (XEP-0373 §4.2). A
// fingerprint MUST NOT occur twice.
type PublicKeysList struct {
	Keys []PubkeyMetadata
}

// Element returns the element as an sce.Element. A duplicate fingerprint
// or a zero date makes the element's token reader fail.
func (l PublicKeysList) Element() sce.Element {
	children := make([]sce.Element, 0, len(l.Keys))
	for _, m := range l.Keys {
		children = append(children, element(metadataName, []xml.Attr{
			{Name: xml.Name{Local: "v4-fingerprint"}, Value: m.Fingerprint.String()},
			{Name: xml.Name{Local: "date"}, Value: sce.FormatDateTime(m.Date)},
		}, ""))
	}
	return element(listName, nil, "", children...)
}

func (l PublicKeysList) check() error {
	if len(l.Keys) > MaxAnnouncedKeys {
		return fmt.Errorf("%w: more than %d announced keys", ErrTooLarge, MaxAnnouncedKeys)
	}
	for i, m := range l.Keys {
		if u := m.Date.UTC(); u.IsZero() || u.Year() < 1 || u.Year() > 9999 {
			return fmt.Errorf("%w: <pubkey-metadata/> without a valid date", ErrInvalidElement)
		}
		for _, o := range l.Keys[:i] {
			if o.Fingerprint == m.Fingerprint {
				return fmt.Errorf("%w: fingerprint %s listed twice", ErrInvalidElement, m.Fingerprint)
			}
		}
	}
	return nil
}

// TokenReader returns a reader of the element's tokens; a list breaking
// XEP-0373 §4.2 makes its first Token call fail.
func (l PublicKeysList) TokenReader() xml.TokenReader {
	if err := l.check(); err != nil {
		return errReader{err}
	}
	return l.Element().TokenReader()
}

// WriteXML implements xmlstream.WriterTo.
func (l PublicKeysList) WriteXML(w xmlstream.TokenWriter) (int, error) {
	if err := l.check(); err != nil {
		return 0, err
	}
	return l.Element().WriteXML(w)
}

// MarshalXML implements xml.Marshaler.
func (l PublicKeysList) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	_, err := l.WriteXML(e)
	return err
}

// UnmarshalXML implements xml.Unmarshaler. Children in other namespaces are
// ignored (future extensions); malformed or duplicate <pubkey-metadata/>
// entries and text are errors.
func (l *PublicKeysList) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	el, err := readElement(d, start, listName)
	if err != nil {
		return err
	}
	children, text := childElements(el)
	if text {
		return fmt.Errorf("%w: text in <public-keys-list/>", ErrInvalidElement)
	}
	var out PublicKeysList
	for _, c := range children {
		if c.Name.Space != NS {
			continue
		}
		if c.Name != metadataName {
			return fmt.Errorf("%w: <%s/> in <public-keys-list/>", ErrInvalidElement, c.Name.Local)
		}
		if _, err := textOnly(c); err != nil {
			return err
		}
		if strings.TrimSpace(c.Text()) != "" {
			return fmt.Errorf("%w: text in <pubkey-metadata/>", ErrInvalidElement)
		}
		fpr, err := ParseFingerprint(c.AttrValue("v4-fingerprint"))
		if err != nil {
			return err
		}
		date, err := sce.ParseDateTime(c.AttrValue("date"))
		if err != nil {
			return fmt.Errorf("%w: <pubkey-metadata/> date is not an XEP-0082 DateTime", ErrInvalidElement)
		}
		out.Keys = append(out.Keys, PubkeyMetadata{Fingerprint: fpr, Date: date})
		if err := out.check(); err != nil {
			return err
		}
	}
	*l = out
	return nil
}

// Pubkey is the payload of a public-key data node (PublicKeyNode):
// <pubkey xmlns='urn:xmpp:openpgp:0'><data>BASE64</data></pubkey>, the
// binary public key in Base64 without armor (XEP-0373 §4.1).
type Pubkey struct {
	// Data is the binary transferable public key.
	Data []byte
}

// Element returns the element as an sce.Element.
func (p Pubkey) Element() sce.Element {
	return element(pubkeyName, nil, "", element(dataName, nil, base64.StdEncoding.EncodeToString(p.Data)))
}

// TokenReader returns a reader of the element's tokens.
func (p Pubkey) TokenReader() xml.TokenReader { return p.Element().TokenReader() }

// WriteXML implements xmlstream.WriterTo.
func (p Pubkey) WriteXML(w xmlstream.TokenWriter) (int, error) { return p.Element().WriteXML(w) }

// MarshalXML implements xml.Marshaler.
func (p Pubkey) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	_, err := p.WriteXML(e)
	return err
}

// UnmarshalXML implements xml.Unmarshaler: exactly one <data/> with Base64
// of at most MaxKeyDataSize bytes. Attributes (XEP-0373 before 0.5.0 had a
// 'date' here) and children in other namespaces are ignored.
func (p *Pubkey) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	el, err := readElement(d, start, pubkeyName)
	if err != nil {
		return err
	}
	children, text := childElements(el)
	if text {
		return fmt.Errorf("%w: text in <pubkey/>", ErrInvalidElement)
	}
	var data []byte
	for _, c := range children {
		if c.Name.Space != NS {
			continue
		}
		if c.Name != dataName || data != nil {
			return fmt.Errorf("%w: <pubkey/> must hold exactly one <data/>", ErrInvalidElement)
		}
		t, err := textOnly(c)
		if err != nil {
			return err
		}
		if data, err = decodeBase64(t, MaxKeyDataSize, "<data/>"); err != nil {
			return err
		}
	}
	if data == nil {
		return fmt.Errorf("%w: <pubkey/> must hold exactly one <data/>", ErrInvalidElement)
	}
	p.Data = data
	return nil
}

// Key parses the public key in p and checks that it is exactly one public
// key with fingerprint want, the fingerprint of the data node it was read
// from (XEP-0373 §4.1, §4.4).
func (p Pubkey) Key(want Fingerprint) (*Key, error) {
	keys, err := ParseKeys(p.Data)
	if err != nil {
		return nil, err
	}
	switch {
	case len(keys) != 1:
		return nil, fmt.Errorf("%w: data node holds %d keys", ErrInvalidKey, len(keys))
	case keys[0].IsSecret():
		return nil, fmt.Errorf("%w: data node holds a secret key", ErrInvalidKey)
	case keys[0].fpr != want:
		return nil, &KeyError{Fingerprint: keys[0].fpr, Err: fmt.Errorf("%w: not the key of node %s", ErrInvalidKey, PublicKeyNode(want))}
	}
	return keys[0], nil
}

// SecretKey is the payload of the secret-key node NodeSecretKey:
// <secretkey xmlns='urn:xmpp:openpgp:0'>BASE64</secretkey>, the Base64 of
// the backup OpenPGP message (XEP-0373 §5.3, §5.4). Backup makes one,
// Restore opens it.
type SecretKey struct {
	// Message is the binary, passphrase-encrypted OpenPGP message.
	Message []byte
}

// Element returns the element as an sce.Element.
func (s SecretKey) Element() sce.Element {
	return element(secretName, nil, base64.StdEncoding.EncodeToString(s.Message))
}

// TokenReader returns a reader of the element's tokens.
func (s SecretKey) TokenReader() xml.TokenReader { return s.Element().TokenReader() }

// WriteXML implements xmlstream.WriterTo.
func (s SecretKey) WriteXML(w xmlstream.TokenWriter) (int, error) { return s.Element().WriteXML(w) }

// MarshalXML implements xml.Marshaler.
func (s SecretKey) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	_, err := s.WriteXML(e)
	return err
}

// UnmarshalXML implements xml.Unmarshaler: Base64 text only, at most
// MaxKeyDataSize bytes plus the encryption overhead.
func (s *SecretKey) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	el, err := readElement(d, start, secretName)
	if err != nil {
		return err
	}
	t, err := textOnly(el)
	if err != nil {
		return err
	}
	b, err := decodeBase64(t, maxBackupSize, "<secretkey/>")
	if err != nil {
		return err
	}
	s.Message = b
	return nil
}

type errReader struct{ err error }

func (e errReader) Token() (xml.Token, error) { return nil, e.err }

func xmlName(space, local string) xml.Name { return xml.Name{Space: space, Local: local} }

func xmlAttr(local, value string) xml.Attr {
	return xml.Attr{Name: xml.Name{Local: local}, Value: value}
}
