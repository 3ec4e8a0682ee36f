package sce

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"slices"
	"time"

	"mellium.im/xmlstream"
)

// Stanza is a message, iq or presence stanza as a list of child elements:
// what Seal splits and Open puts back together.
//
// Name is the stanza's name, e.g. {jabber:client message}. Attr holds its
// attributes (to, from, id, type, xml:lang…) without namespace declarations.
// Children are its child elements in order; see Element.
type Stanza struct {
	Name     xml.Name
	Attr     []xml.Attr
	Children []Element
}

// ParseStanza parses a serialized stanza. Limits: MaxStanzaSize, MaxDepth,
// MaxNodes.
func ParseStanza(b []byte) (*Stanza, error) {
	r, err := newBytesReader(b, MaxStanzaSize)
	if err != nil {
		return nil, err
	}
	st, err := r.stanza()
	if err != nil {
		return nil, err
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return st, nil
}

// ReadStanza reads one stanza from r, for example the tokens a mellium
// handler receives (if the stanza's start element was already consumed,
// put it back with xmlstream.MultiReader(xmlstream.Token(start), r)).
// Leading white space is skipped; r is not read beyond the stanza's end.
// Tokens whose Name.Space is empty inherit their parent's namespace, as when
// encoding/xml's encoder writes them, unless r is an *xml.Decoder.
func ReadStanza(r xml.TokenReader) (*Stanza, error) {
	return newTokenReader(r, MaxStanzaSize).stanza()
}

func (r *treeReader) stanza() (*Stanza, error) {
	start, err := r.root()
	if err != nil {
		return nil, err
	}
	return r.stanzaFrom(start)
}

func (r *treeReader) stanzaFrom(start xml.StartElement) (*Stanza, error) {
	if !isStanzaName(start.Name) {
		return nil, ErrNotStanza
	}
	st := &Stanza{Name: start.Name, Attr: start.Attr}
	err := r.children(func(child xml.StartElement) error {
		el, err := r.element(child)
		if err != nil {
			return err
		}
		st.Children = append(st.Children, el)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

func isStanzaName(n xml.Name) bool {
	switch n.Space {
	case nsClient, nsServer, nsComponent:
	default:
		return false
	}
	return n.Local == "message" || n.Local == "iq" || n.Local == "presence"
}

func checkStanza(st *Stanza) error {
	if st == nil || !isStanzaName(st.Name) {
		return ErrNotStanza
	}
	return nil
}

// AttrValue returns the value of the stanza's unqualified attribute named
// local (e.g. "to", "type"), or "".
func (s *Stanza) AttrValue(local string) string {
	v, _ := attrValue(s.Attr, xml.Name{Local: local})
	return v
}

func (s *Stanza) isMessage() bool { return s.Name.Local == "message" }

func (s *Stanza) isGroupChat() bool {
	return s.isMessage() && s.AttrValue("type") == "groupchat"
}

// WriteXML writes the stanza's tokens to w and returns how many it wrote.
// It implements xmlstream.WriterTo.
func (s *Stanza) WriteXML(w xmlstream.TokenWriter) (int, error) {
	wr := writer{w: w}
	err := s.write(&wr)
	return wr.n, err
}

func (s *Stanza) write(w *writer) error {
	if err := checkStanza(s); err != nil {
		return err
	}
	if err := w.start(s.Name, s.Attr...); err != nil {
		return err
	}
	for i := range s.Children {
		if err := w.element(&s.Children[i], s.Name.Space); err != nil {
			return err
		}
	}
	return w.end(s.Name)
}

// TokenReader returns a reader of the stanza's tokens. A validation error is
// returned by the reader's first Token call.
func (s *Stanza) TokenReader() xml.TokenReader {
	var t tokenSlice
	if err := s.write(&writer{w: &t}); err != nil {
		return errReader{err}
	}
	return &sliceReader{toks: t}
}

// MarshalXML implements xml.Marshaler. start is ignored.
func (s *Stanza) MarshalXML(enc *xml.Encoder, start xml.StartElement) error {
	_, err := s.WriteXML(enc)
	return err
}

// UnmarshalXML implements xml.Unmarshaler with the package's limits.
func (s *Stanza) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	r := newTokenReader(d, MaxStanzaSize)
	st, err := r.pushStart(start)
	if err != nil {
		return err
	}
	parsed, err := r.stanzaFrom(st)
	if err != nil {
		return err
	}
	*s = *parsed
	return nil
}

// Marshal returns the stanza serialized as XML.
func (s *Stanza) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc, release := newEncoder(&buf)
	defer release()
	if _, err := s.WriteXML(enc); err != nil {
		return nil, err
	}
	if err := enc.Flush(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// clone returns a copy of the stanza's name and attributes without children.
func (s *Stanza) cloneHead(children int) *Stanza {
	return &Stanza{Name: s.Name, Attr: slices.Clone(s.Attr), Children: make([]Element, 0, children)}
}

var (
	delayName     = xml.Name{Space: nsDelay, Local: "delay"}
	forwardedName = xml.Name{Space: nsForward, Local: "forwarded"}
	wrapperNames  = [...]xml.Name{
		{Space: nsCarbons, Local: "received"}, // XEP-0280 §7
		{Space: nsCarbons, Local: "sent"},     // XEP-0280 §8
		{Space: nsMAM, Local: "result"},       // XEP-0313 §4.2
	}
)

// Forwarded takes a stanza out of its XEP-0280 carbon (<received/>,
// <sent/>) or XEP-0313 archive <result/> wrapper. It returns the forwarded
// stanza and the wrapper's name. If the XEP-0297 <forwarded/> carries a
// XEP-0203 <delay/> and the inner stanza has none, the delay is appended to
// the inner stanza's children (Encrypted: false), so that Verify checks the
// time affix against the archive's time and the application sees it.
//
// Forwarded does not check who sent the wrapper: a carbon MUST come from
// the account's own bare JID (XEP-0280 §11) and an archive result from the
// archive queried; that is the caller's job. A stanza with no wrapper, or
// with a wrapper that does not hold exactly one forwarded stanza, is
// ErrNotForwarded; a stanza with two wrappers is ErrDuplicate.
func Forwarded(st *Stanza) (*Stanza, xml.Name, error) {
	if err := checkStanza(st); err != nil {
		return nil, xml.Name{}, err
	}
	var wrapper *Element
	for i := range st.Children {
		if slices.Contains(wrapperNames[:], st.Children[i].Name) {
			if wrapper != nil {
				return nil, xml.Name{}, fmt.Errorf("%w: two forwarding wrappers", ErrDuplicate)
			}
			wrapper = &st.Children[i]
		}
	}
	if wrapper == nil {
		return nil, xml.Name{}, ErrNotForwarded
	}
	fwd, err := onlyChild(wrapper.Tokens, forwardedName)
	if err != nil {
		return nil, xml.Name{}, err
	}
	var inner []xml.Token
	var delay *Element
	for _, c := range childRanges(fwd) {
		toks := fwd[c[0]:c[1]]
		name := toks[0].(xml.StartElement).Name
		switch {
		case name == delayName:
			if delay != nil {
				return nil, xml.Name{}, fmt.Errorf("%w: two delays in <forwarded/>", ErrNotForwarded)
			}
			delay = &Element{Name: name, Tokens: toks}
		case isStanzaName(name):
			if inner != nil {
				return nil, xml.Name{}, fmt.Errorf("%w: two stanzas in <forwarded/>", ErrNotForwarded)
			}
			inner = toks
		}
	}
	if inner == nil {
		return nil, xml.Name{}, ErrNotForwarded
	}
	r := &treeReader{src: &sliceReader{toks: inner}, resolved: true, maxSize: MaxStanzaSize}
	in, err := r.stanza()
	if err != nil {
		return nil, xml.Name{}, err
	}
	if delay != nil && !slices.ContainsFunc(in.Children, func(e Element) bool { return e.Name == delayName }) {
		in.Children = append(in.Children, *delay)
	}
	return in, wrapper.Name, nil
}

// childRanges returns the token ranges [start, end) of the direct children
// of the element in toks.
func childRanges(toks []xml.Token) [][2]int {
	var out [][2]int
	depth, begin := 0, 0
	for i, tok := range toks {
		switch tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 {
				begin = i
			}
		case xml.EndElement:
			if depth == 2 {
				out = append(out, [2]int{begin, i + 1})
			}
			depth--
		}
	}
	return out
}

// onlyChild returns the tokens of the single direct child named name.
func onlyChild(toks []xml.Token, name xml.Name) ([]xml.Token, error) {
	var found []xml.Token
	for _, c := range childRanges(toks) {
		if toks[c[0]].(xml.StartElement).Name == name {
			if found != nil {
				return nil, fmt.Errorf("%w: two <%s/>", ErrNotForwarded, name.Local)
			}
			found = toks[c[0]:c[1]]
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w: no <%s/>", ErrNotForwarded, name.Local)
	}
	return found, nil
}

// delayStamp returns the earliest valid XEP-0203 delay stamp among the
// stanza's unencrypted children: the closest a receiver can get to the
// sending time.
func delayStamp(st *Stanza) (time.Time, bool) {
	var best time.Time
	for i := range st.Children {
		c := &st.Children[i]
		if c.Encrypted || c.Name != delayName {
			continue
		}
		t, err := ParseDateTime(c.AttrValue("stamp"))
		if err != nil {
			continue
		}
		if best.IsZero() || t.Before(best) {
			best = t
		}
	}
	return best, !best.IsZero()
}
