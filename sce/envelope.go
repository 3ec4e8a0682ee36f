package sce

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
)

// NS is the namespace of Stanza Content Encryption, XEP-0420 0.5.0.
const NS = "urn:xmpp:sce:1"

// nsOX is the namespace of the OpenPGP for XMPP content elements, XEP-0373.
const nsOX = "urn:xmpp:openpgp:0"

// Kind names the container an Envelope is serialized as.
type Kind uint8

const (
	// KindSCE is <envelope xmlns='urn:xmpp:sce:1'> with <content> (XEP-0420
	// §3): affixes rpad, time, to (at most one) and from.
	KindSCE Kind = iota
	// KindSigncrypt is <signcrypt xmlns='urn:xmpp:openpgp:0'> with <payload>
	// (XEP-0373 §3.1): affixes to (one or more), time and rpad.
	KindSigncrypt
	// KindSign is XEP-0373's <sign/>, shaped like KindSigncrypt.
	KindSign
	// KindCrypt is XEP-0373's <crypt/>, shaped like KindSigncrypt.
	KindCrypt
)

func (k Kind) valid() bool { return k <= KindCrypt }

func (k Kind) ox() bool { return k >= KindSigncrypt && k <= KindCrypt }

// String returns the local name of the container's root element.
func (k Kind) String() string {
	switch k {
	case KindSCE:
		return "envelope"
	case KindSigncrypt:
		return "signcrypt"
	case KindSign:
		return "sign"
	case KindCrypt:
		return "crypt"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

func (k Kind) space() string {
	if k.ox() {
		return nsOX
	}
	return NS
}

func (k Kind) root() xml.Name { return xml.Name{Space: k.space(), Local: k.String()} }

// content returns the local name of the element holding the stanza's
// elements.
func (k Kind) content() string {
	if k.ox() {
		return "payload"
	}
	return "content"
}

// affixes returns the affixes the kind can carry.
func (k Kind) affixes() Affix {
	if k.ox() {
		return AffixRpad | AffixTime | AffixTo
	}
	return AffixRpad | AffixTime | AffixTo | AffixFrom
}

func kindOf(name xml.Name) (Kind, bool) {
	for k := KindSCE; k <= KindCrypt; k++ {
		if k.root() == name {
			return k, true
		}
	}
	return 0, false
}

// Affix is a set of affix elements (XEP-0420 §4, XEP-0373 §3.1). A single
// affix is a set with one member.
type Affix uint8

const (
	// AffixRpad is <rpad/>: random-length random-content padding.
	AffixRpad Affix = 1 << iota
	// AffixTime is <time stamp='…'/>: when the sender encrypted.
	AffixTime
	// AffixTo is <to jid='…'/>: the recipient's bare JID.
	AffixTo
	// AffixFrom is <from jid='…'/>: the sender's bare JID (SCE only).
	AffixFrom
)

var affixNames = [...]string{"rpad", "time", "to", "from"}

// String returns the affixes' element names joined by "|".
func (a Affix) String() string {
	if a == 0 {
		return "none"
	}
	var parts []string
	for i, n := range affixNames {
		if a&(1<<i) != 0 {
			parts = append(parts, n)
		}
	}
	if rest := a &^ (1<<len(affixNames) - 1); rest != 0 {
		parts = append(parts, fmt.Sprintf("0x%x", uint8(rest)))
	}
	return strings.Join(parts, "|")
}

// first returns the lowest affix in the set.
func (a Affix) first() Affix { return a & -a }

func affixByName(k Kind, local string) (Affix, bool) {
	for i, n := range affixNames {
		if n == local && k.affixes()&(1<<i) != 0 {
			return 1 << i, true
		}
	}
	return 0, false
}

// Envelope is the plaintext that an encryption protocol encrypts: the
// elements of the stanza's <content> and the affixes. Its zero value is an
// empty SCE envelope without affixes.
//
// Kind selects the XML form: KindSCE (XEP-0420) or one of the OpenPGP for
// XMPP content elements (XEP-0373 §3.1), which hold the elements in
// <payload> and may have several <to/> but no <from/>.
type Envelope struct {
	// Kind is the container: KindSCE for SCE envelopes.
	Kind Kind
	// Content holds the elements of <content> (or <payload>), in order.
	// Parsed elements have Encrypted set. Each must be in a namespace of its
	// own (not empty, not the container's).
	Content []Element
	// Rpad is the text of <rpad/>. HasRpad reports an <rpad/> even when its
	// text is empty; a non-empty Rpad is written whatever HasRpad says.
	Rpad    string
	HasRpad bool
	// Time is the instant in <time stamp='…'/> in UTC; the zero time means
	// no <time/>.
	Time time.Time
	// To holds the JIDs of the <to/> affixes. SCE allows at most one, OX
	// requires at least one for signcrypt and sign.
	To []jid.JID
	// From is the JID of the <from/> affix; the zero JID means none. OX
	// content elements have no <from/>.
	From jid.JID
	// Extra holds protocol-specific affix elements (XEP-0420 §4: "They MAY
	// also define and add their own specific affix elements"), in order.
	Extra []Element
}

// Affixes returns the set of affixes present.
func (e *Envelope) Affixes() Affix {
	var a Affix
	if e.HasRpad || e.Rpad != "" {
		a |= AffixRpad
	}
	if !e.Time.IsZero() {
		a |= AffixTime
	}
	if len(e.To) > 0 {
		a |= AffixTo
	}
	if !isZeroJID(e.From) {
		a |= AffixFrom
	}
	return a
}

func isZeroJID(j jid.JID) bool { return j.Equal(jid.JID{}) }

// Parse parses a serialized SCE envelope, for example the plaintext of an
// OMEMO 2 payload. It is ParseKind(b, KindSCE).
func Parse(b []byte) (*Envelope, error) {
	return ParseKind(b, KindSCE)
}

// ParseKind parses a serialized container of kind k: an SCE envelope or one
// of the OX content elements (the decrypted or verified literal data of an
// OX <openpgp/>, XEP-0373 §3.1). The root element must be of kind k.
//
// Parsing is strict: wrong root, missing or second <content>, a second affix
// (except OX <to/>), malformed stamps and JIDs, affixes without their
// required attribute, content children without a namespace of their own,
// invalid XML or UTF-8, comments, processing instructions and DTDs, and
// input beyond MaxEnvelopeSize, MaxDepth or MaxNodes are errors. Unknown
// children of the root are kept in Extra. Affixes are not checked against a
// profile: that is Verify's job.
func ParseKind(b []byte, k Kind) (*Envelope, error) {
	if !k.valid() {
		return nil, fmt.Errorf("%w: unknown kind %d", ErrNotEnvelope, k)
	}
	return parseContainer(b, func(got Kind) error {
		if got != k {
			return fmt.Errorf("%w: want <%s xmlns='%s'>", ErrNotEnvelope, k, k.space())
		}
		return nil
	})
}

// ParseOX parses the decrypted or verified literal data of an OX <openpgp/>
// element (XEP-0373 §3.1) whatever its content element: <signcrypt/>,
// <sign/> or <crypt/> in urn:xmpp:openpgp:0. Envelope.Kind says which it
// was; whether its protection matches (signed and encrypted, signed only,
// encrypted only) is the caller's to check. An SCE envelope or any other
// root is ErrNotEnvelope. Parsing is as strict as ParseKind's.
func ParseOX(b []byte) (*Envelope, error) {
	return parseContainer(b, func(got Kind) error {
		if !got.ox() {
			return fmt.Errorf("%w: want <signcrypt/>, <sign/> or <crypt/> in '%s'", ErrNotEnvelope, nsOX)
		}
		return nil
	})
}

// parseContainer parses a serialized container whose kind accept approves.
func parseContainer(b []byte, accept func(Kind) error) (*Envelope, error) {
	r, err := newBytesReader(b, MaxEnvelopeSize)
	if err != nil {
		return nil, err
	}
	start, err := r.root()
	if err != nil {
		return nil, err
	}
	k, ok := kindOf(start.Name)
	if !ok {
		k = Kind(255) // not valid: accept rejects it
	}
	if err := accept(k); err != nil {
		return nil, err
	}
	env, err := r.container(start, k)
	if err != nil {
		return nil, err
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return env, nil
}

// container parses the children of a container root whose start was just
// read.
func (r *treeReader) container(start xml.StartElement, k Kind) (*Envelope, error) {
	env := &Envelope{Kind: k}
	space := k.space()
	haveContent := false
	var seen Affix
	err := r.children(func(child xml.StartElement) error {
		if child.Name.Space == space && child.Name.Local == k.content() {
			if haveContent {
				return fmt.Errorf("%w: second <%s/>", ErrDuplicate, k.content())
			}
			haveContent = true
			return r.children(func(el xml.StartElement) error {
				if el.Name.Space == "" || el.Name.Space == space {
					return ErrInvalidContent
				}
				e, err := r.element(el)
				if err != nil {
					return err
				}
				e.Encrypted = true
				env.Content = append(env.Content, e)
				return nil
			})
		}
		a, isAffix := affixByName(k, child.Name.Local)
		if child.Name.Space != space || !isAffix {
			e, err := r.element(child)
			if err != nil {
				return err
			}
			e.Encrypted = true
			env.Extra = append(env.Extra, e)
			return nil
		}
		if seen&a != 0 && !(a == AffixTo && k.ox()) {
			return &AffixError{Affix: a, Err: ErrDuplicate}
		}
		seen |= a
		return r.affix(env, a, child)
	})
	if err != nil {
		return nil, err
	}
	if !haveContent {
		return nil, ErrMissingContent
	}
	return env, nil
}

// affix parses one affix element whose start was just read.
func (r *treeReader) affix(env *Envelope, a Affix, start xml.StartElement) error {
	malformed := func() error { return &AffixError{Affix: a, Err: ErrMalformedAffix} }
	text, err := r.text()
	if errors.Is(err, errHasChildren) {
		return malformed()
	}
	if err != nil {
		return err
	}
	if a == AffixRpad {
		env.Rpad, env.HasRpad = text, true
		return nil
	}
	if !isWhitespace([]byte(text)) {
		return malformed()
	}
	attr := "jid"
	if a == AffixTime {
		attr = "stamp"
	}
	v, ok := attrValue(start.Attr, xml.Name{Local: attr})
	if !ok {
		return malformed()
	}
	if a == AffixTime {
		t, err := ParseDateTime(v)
		if err != nil {
			return malformed()
		}
		env.Time = t
		return nil
	}
	j, err := jid.Parse(v)
	if err != nil {
		return malformed()
	}
	if a == AffixTo {
		env.To = append(env.To, j)
	} else {
		env.From = j
	}
	return nil
}

// check validates the envelope before it is written.
func (e *Envelope) check() error {
	k := e.Kind
	if !k.valid() {
		return fmt.Errorf("%w: unknown kind %d", ErrNotEnvelope, k)
	}
	if !k.ox() && len(e.To) > 1 {
		return &AffixError{Affix: AffixTo, Err: ErrDuplicate}
	}
	if k.ox() && !isZeroJID(e.From) {
		return &AffixError{Affix: AffixFrom, Err: ErrAffixNotAllowed}
	}
	for _, j := range e.To {
		if isZeroJID(j) {
			return &AffixError{Affix: AffixTo, Err: ErrMalformedAffix}
		}
	}
	if !e.Time.IsZero() && !validStampTime(e.Time) {
		return &AffixError{Affix: AffixTime, Err: ErrMalformedAffix}
	}
	if !validString(e.Rpad) {
		return &AffixError{Affix: AffixRpad, Err: ErrMalformedAffix}
	}
	space := k.space()
	for i := range e.Content {
		if s := e.Content[i].Name.Space; s == "" || s == space {
			return ErrInvalidContent
		}
	}
	for i := range e.Extra {
		n := e.Extra[i].Name
		if _, isAffix := affixByName(k, n.Local); n.Space == space && (isAffix || n.Local == k.content()) {
			return invalidElement("extra affix named like a standard one")
		}
	}
	return nil
}

// WriteXML writes the envelope's tokens to w and returns how many it wrote.
// It implements xmlstream.WriterTo.
func (e *Envelope) WriteXML(w xmlstream.TokenWriter) (int, error) {
	wr := writer{w: w}
	err := e.write(&wr)
	return wr.n, err
}

func (e *Envelope) write(w *writer) error {
	if err := e.check(); err != nil {
		return err
	}
	k := e.Kind
	root := k.root()
	if err := w.start(root); err != nil {
		return err
	}
	// Structural children are written without a namespace: they inherit the
	// root's default namespace.
	content := func() error {
		name := xml.Name{Local: k.content()}
		if err := w.start(name); err != nil {
			return err
		}
		for i := range e.Content {
			if err := w.element(&e.Content[i], root.Space); err != nil {
				return err
			}
		}
		return w.end(name)
	}
	rpad := func() error {
		if e.Affixes()&AffixRpad == 0 {
			return nil
		}
		name := xml.Name{Local: "rpad"}
		if err := w.start(name); err != nil {
			return err
		}
		if w.rpadMark != nil {
			if err := w.rpadMark(); err != nil {
				return err
			}
		}
		if err := w.text(e.Rpad); err != nil {
			return err
		}
		return w.end(name)
	}
	tm := func() error {
		if e.Time.IsZero() {
			return nil
		}
		return w.simple(xml.Name{Local: "time"}, "", xml.Attr{Name: xml.Name{Local: "stamp"}, Value: FormatDateTime(e.Time)})
	}
	to := func() error {
		for _, j := range e.To {
			if err := w.simple(xml.Name{Local: "to"}, "", xml.Attr{Name: xml.Name{Local: "jid"}, Value: j.String()}); err != nil {
				return err
			}
		}
		return nil
	}
	from := func() error {
		if isZeroJID(e.From) {
			return nil
		}
		return w.simple(xml.Name{Local: "from"}, "", xml.Attr{Name: xml.Name{Local: "jid"}, Value: e.From.String()})
	}
	// SCE in the order of XEP-0420's examples, OX in the order of XEP-0373's.
	order := []func() error{content, rpad, tm, to, from}
	if k.ox() {
		order = []func() error{to, tm, rpad, content}
	}
	for _, f := range order {
		if err := f(); err != nil {
			return err
		}
	}
	for i := range e.Extra {
		if err := w.element(&e.Extra[i], root.Space); err != nil {
			return err
		}
	}
	return w.end(root)
}

// TokenReader returns a reader of the envelope's tokens. A validation error
// is returned by the reader's first Token call.
func (e *Envelope) TokenReader() xml.TokenReader {
	var s tokenSlice
	if err := e.write(&writer{w: &s}); err != nil {
		return errReader{err}
	}
	return &sliceReader{toks: s}
}

// MarshalXML implements xml.Marshaler. start is ignored: the root element is
// determined by Kind.
func (e *Envelope) MarshalXML(enc *xml.Encoder, start xml.StartElement) error {
	_, err := e.WriteXML(enc)
	return err
}

// UnmarshalXML implements xml.Unmarshaler for any Kind, selected by the root
// element, with the package's limits.
func (e *Envelope) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	r := newTokenReader(d, MaxEnvelopeSize)
	s, err := r.pushStart(start)
	if err != nil {
		return err
	}
	k, ok := kindOf(s.Name)
	if !ok {
		return ErrNotEnvelope
	}
	env, err := r.container(s, k)
	if err != nil {
		return err
	}
	*e = *env
	return nil
}

// Marshal returns the envelope serialized as XML, the plaintext to encrypt.
func (e *Envelope) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(e.sizeHint())
	if _, err := serialize(e, &buf, nil, false); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// sizeHint estimates the serialized size, to size buffers.
func (e *Envelope) sizeHint() int {
	n := 256 + len(e.Rpad) + MaxRandomPad
	for i := range e.Content {
		n += tokensSize(e.Content[i].Tokens)
	}
	for i := range e.Extra {
		n += tokensSize(e.Extra[i].Tokens)
	}
	return n
}

func tokensSize(toks []xml.Token) int {
	n := 0
	for _, tok := range toks {
		switch t := tok.(type) {
		case xml.StartElement:
			n += 2*len(t.Name.Local) + 5
			for _, a := range t.Attr {
				n += len(a.Name.Local) + len(a.Value) + 4
			}
		case xml.CharData:
			n += len(t) + len(t)/8
		}
	}
	return n
}
