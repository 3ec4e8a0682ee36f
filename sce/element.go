package sce

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"sync"

	"mellium.im/xmlstream"
)

// Element is one XML element, kept exactly as tokens so that any extension
// element survives a round trip with its namespace.
//
// Tokens holds the complete element: its xml.StartElement, the tokens of its
// content (xml.StartElement, xml.EndElement and xml.CharData only) and its
// xml.EndElement. Every start and end element carries its resolved namespace
// in Name.Space, and namespace declarations are not attributes; the
// functions of this package build Elements that way (ReadElement,
// TextElement, the parsers). Name must be the name of the first token.
//
// Encrypted says where the element came from: true for elements that were
// inside an encrypted envelope, false for elements that travelled in the
// clear. Open sets it; an application must only trust Encrypted elements.
type Element struct {
	Name      xml.Name
	Tokens    []xml.Token
	Encrypted bool
}

// ReadElement reads one complete element from r, for example from a mellium
// type's TokenReader(). Leading white space is skipped; r is not read beyond
// the element's end. Tokens whose Name.Space is empty inherit the parent's
// namespace, as when encoding/xml's encoder writes them, unless r is an
// *xml.Decoder, whose tokens are already resolved.
func ReadElement(r xml.TokenReader) (Element, error) {
	tr := newTokenReader(r, MaxStanzaSize)
	start, err := tr.root()
	if err != nil {
		return Element{}, err
	}
	return tr.element(start)
}

// TextElement returns an element holding only text, like
// TextElement(xml.Name{Space: "jabber:client", Local: "body"}, "Hi").
func TextElement(name xml.Name, text string, attr ...xml.Attr) Element {
	toks := make([]xml.Token, 0, 3)
	toks = append(toks, xml.StartElement{Name: name, Attr: attr})
	if text != "" {
		toks = append(toks, xml.CharData(text))
	}
	toks = append(toks, xml.EndElement{Name: name})
	return Element{Name: name, Tokens: toks}
}

// Text returns the character data directly inside the element (not that of
// its children).
func (e Element) Text() string {
	var b strings.Builder
	depth := 0
	for _, tok := range e.Tokens {
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 1 {
				b.Write(t)
			}
		}
	}
	return b.String()
}

// AttrValue returns the value of the element's unqualified attribute named
// local, or "".
func (e Element) AttrValue(local string) string {
	if len(e.Tokens) == 0 {
		return ""
	}
	start, _ := e.Tokens[0].(xml.StartElement)
	v, _ := attrValue(start.Attr, xml.Name{Local: local})
	return v
}

// lang returns the element's xml:lang attribute.
func (e *Element) lang() string {
	if len(e.Tokens) == 0 {
		return ""
	}
	start, _ := e.Tokens[0].(xml.StartElement)
	v, _ := attrValue(start.Attr, xml.Name{Space: nsXML, Local: "lang"})
	return v
}

// TokenReader returns a reader of the element's tokens, validated, with
// namespaces declared only where they change.
func (e Element) TokenReader() xml.TokenReader {
	var s tokenSlice
	w := writer{w: &s}
	if err := w.element(&e, unknownParent); err != nil {
		return errReader{err}
	}
	return &sliceReader{toks: s}
}

// WriteXML writes the element's tokens to w and returns how many it wrote.
// It implements xmlstream.WriterTo.
func (e Element) WriteXML(w xmlstream.TokenWriter) (int, error) {
	wr := writer{w: w}
	err := wr.element(&e, unknownParent)
	return wr.n, err
}

// MarshalXML implements xml.Marshaler. start is ignored.
func (e Element) MarshalXML(enc *xml.Encoder, start xml.StartElement) error {
	_, err := e.WriteXML(enc)
	return err
}

// UnmarshalXML implements xml.Unmarshaler with the package's limits.
func (e *Element) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	tr := newTokenReader(d, MaxStanzaSize)
	s, err := tr.pushStart(start)
	if err != nil {
		return err
	}
	el, err := tr.element(s)
	if err != nil {
		return err
	}
	*e = el
	return nil
}

// unknownParent is a namespace no element has: an element written with it
// as parent always declares its namespace.
const unknownParent = "\x00"

type frame struct {
	name    xml.Name // resolved
	emitted xml.Name // as written
}

// writer validates and writes tokens, counting them.
type writer struct {
	w     xmlstream.TokenWriter
	n     int
	stack []frame
	// open is the current element depth, deepest the largest seen, nodes
	// the elements, attributes and text nodes written: Seal checks them
	// against the limits the receiver's parser applies.
	open, deepest, nodes int
	// rpadMark, when set, is called right after the <rpad> start element
	// of an envelope is written (SealBytes splices the padding in there).
	rpadMark func() error
}

func (w *writer) emit(t xml.Token) error {
	if err := w.w.EncodeToken(t); err != nil {
		return err
	}
	w.n++
	switch t := t.(type) {
	case xml.StartElement:
		w.open++
		w.deepest = max(w.deepest, w.open)
		w.nodes += 1 + len(t.Attr)
	case xml.EndElement:
		w.open--
	case xml.CharData:
		w.nodes++
	}
	return nil
}

// encoderBufs recycles the 4 KiB buffers of xml.Encoder, which writes
// through a bufio.Writer and reuses one that is passed to it.
var encoderBufs = sync.Pool{New: func() any { return bufio.NewWriter(nil) }}

// newEncoder returns an xml.Encoder writing to w, and the function to call
// once the encoder has been flushed and is no longer used.
func newEncoder(w io.Writer) (*xml.Encoder, func()) {
	bw := encoderBufs.Get().(*bufio.Writer)
	bw.Reset(w)
	return xml.NewEncoder(bw), func() {
		bw.Reset(nil)
		encoderBufs.Put(bw)
	}
}

func invalidElement(reason string) error {
	return fmt.Errorf("%w: %s", ErrInvalidElement, reason)
}

// element validates el and writes it. parent is the default namespace in
// scope where it is written. A start element in its parent's namespace is
// written without a namespace (encoding/xml then writes no xmlns and it
// inherits); one without a namespace gets xmlns="".
func (w *writer) element(el *Element, parent string) error {
	if len(el.Tokens) < 2 {
		return invalidElement("fewer than two tokens")
	}
	if start, ok := el.Tokens[0].(xml.StartElement); !ok || start.Name != el.Name {
		return invalidElement("first token is not a start element named Name")
	}
	base := len(w.stack)
	for i, tok := range el.Tokens {
		if i > 0 && len(w.stack) == base {
			return invalidElement("tokens after the end of the element")
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if !validName(t.Name.Local) || t.Name.Space != "" && !validNamespace(t.Name.Space) {
				return invalidElement("invalid element name or namespace")
			}
			if !checkAttrs(t.Attr) {
				return invalidElement("invalid, duplicate or namespace-declaring attribute")
			}
			cur := parent
			if len(w.stack) > base {
				cur = w.stack[len(w.stack)-1].name.Space
			}
			out := xml.StartElement{Name: xml.Name{Local: t.Name.Local}, Attr: t.Attr}
			switch {
			case t.Name.Space == cur:
			case t.Name.Space == "":
				out.Attr = append(append(make([]xml.Attr, 0, len(t.Attr)+1),
					xml.Attr{Name: xml.Name{Local: "xmlns"}}), t.Attr...)
			default:
				out.Name.Space = t.Name.Space
			}
			w.stack = append(w.stack, frame{name: t.Name, emitted: out.Name})
			if err := w.emit(out); err != nil {
				return err
			}
		case xml.EndElement:
			if len(w.stack) == base {
				return invalidElement("unbalanced end element")
			}
			f := w.stack[len(w.stack)-1]
			if t.Name != f.name {
				return invalidElement("mismatched end element")
			}
			w.stack = w.stack[:len(w.stack)-1]
			if err := w.emit(xml.EndElement{Name: f.emitted}); err != nil {
				return err
			}
		case xml.CharData:
			if !validText(t) {
				return invalidElement("invalid UTF-8 or character in text")
			}
			// tok, not t: the token is passed on as it is, not boxed again.
			if err := w.emit(tok); err != nil {
				return err
			}
		default:
			return invalidElement(fmt.Sprintf("token type %T not allowed", tok))
		}
	}
	if len(w.stack) != base {
		w.stack = w.stack[:base]
		return invalidElement("unclosed element")
	}
	return nil
}

// start writes a start element of the package's own (root or structural
// element), validating its attributes.
func (w *writer) start(name xml.Name, attr ...xml.Attr) error {
	if !checkAttrs(attr) {
		return invalidElement("invalid, duplicate or namespace-declaring attribute")
	}
	return w.emit(xml.StartElement{Name: name, Attr: attr})
}

func (w *writer) end(name xml.Name) error {
	return w.emit(xml.EndElement{Name: name})
}

// simple writes <name attr…>text</name>.
func (w *writer) simple(name xml.Name, text string, attr ...xml.Attr) error {
	if err := w.start(name, attr...); err != nil {
		return err
	}
	if err := w.text(text); err != nil {
		return err
	}
	return w.end(name)
}

// text writes text, if any, validating it.
func (w *writer) text(text string) error {
	if text == "" {
		return nil
	}
	if !validString(text) {
		return invalidElement("invalid UTF-8 or character in text")
	}
	return w.emit(xml.CharData(text))
}
