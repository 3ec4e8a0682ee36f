package sce

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
)

// Limits on what the parsers accept. Each bounds memory and time on hostile
// input; all are far above what any deployed client sends.
const (
	// MaxEnvelopeSize is the largest serialized envelope or OX content
	// element, in bytes, that Parse accepts. XEP-0420 §4 says longer rpads
	// MUST NOT be rejected and sets no upper bound; 2 MiB takes a megabyte of
	// padding, is beyond every server's default stanza size limit (Prosody
	// 256 KiB, ejabberd 64 KiB–8 MiB) for ordinary messages, and bounds the
	// memory a hostile peer can make the parser use.
	MaxEnvelopeSize = 2 << 20

	// MaxStanzaSize is the largest serialized stanza, in bytes, that
	// ParseStanza and ReadStanza accept: an envelope of MaxEnvelopeSize in
	// Base64 plus key material.
	MaxStanzaSize = 4 << 20

	// MaxDepth is the deepest element nesting accepted, counting the envelope
	// or stanza element as 1. Real content (XHTML-IM, forwarded messages)
	// stays below 20.
	MaxDepth = 64

	// MaxNodes is the most elements, attributes and text nodes accepted in
	// one envelope or stanza. It bounds the parsed form's memory to a small
	// multiple of the input.
	MaxNodes = 10000
)

// treeReader reads tokens from an xml.TokenReader, enforces the limits,
// rejects what XMPP forbids, copies and normalises tokens:
//
//   - element names carry their resolved namespace in Name.Space;
//   - namespace declarations are removed from Attr (the writer declares what
//     is needed), so encoding/xml's encoder never emits duplicates;
//   - empty Attr slices are nil.
//
// Over a byte slice (newBytesReader) it reads its own decoder's raw tokens
// and resolves namespaces itself, in one pass: encoding/xml's Token would
// resolve them too, but it leaves unbound prefixes in Name.Space and
// accepts reserved and empty prefix declarations, which would need a
// second bookkeeping here to reject.
type treeReader struct {
	src xml.TokenReader
	dec *xml.Decoder
	// resolved means Name.Space of a token is already the element's resolved
	// namespace (tokens from an xml.Decoder). Otherwise an empty Name.Space
	// inherits the parent's, as when encoding/xml's encoder writes the token.
	resolved bool
	// owned means the source is our own decoder, read with RawToken: its
	// Attr slices may be reused, its errors are all syntax errors, and
	// namespaces are resolved here (Namespaces in XML 1.0 §5, §6).
	owned   bool
	base    int64
	maxSize int64
	size    int64
	nodes   int
	stack   []xml.Name
	eof     bool
	// For our own decoder: the prefix bindings in scope, innermost last;
	// for each open element, the length of bindings before its own
	// declarations and its name as written (prefix in Space), to match its
	// end tag.
	bindings []binding
	marks    []int
	raw      []xml.Name
	// Backing arrays for the stacks of ordinary documents, so that a parse
	// allocates them with the reader.
	stackArr [12]xml.Name
	rawArr   [12]xml.Name
	marksArr [12]int
	bindArr  [4]binding
}

// binding is a namespace declaration: prefix "" is the default namespace.
type binding struct{ prefix, space string }

// nsXMLNS is the namespace of namespace declarations, Namespaces in XML 1.0
// §3; no prefix may be bound to it.
const nsXMLNS = "http://www.w3.org/2000/xmlns/"

func newBytesReader(b []byte, maxSize int64) (*treeReader, error) {
	if int64(len(b)) > maxSize {
		return nil, &LimitError{Limit: "size", Max: maxSize}
	}
	// No separate pass over b for UTF-8 and XML Chars: encoding/xml checks
	// every name (isName) and every text and attribute value, CDATA included
	// (Decoder.text), against XML 1.0 §2.2; what it does not check, the
	// content of processing instructions, comments and directives, next
	// rejects or checks itself.
	d := xml.NewDecoder(bytes.NewReader(b))
	r := &treeReader{src: d, dec: d, resolved: true, owned: true, maxSize: maxSize}
	r.stack, r.raw, r.marks, r.bindings = r.stackArr[:0], r.rawArr[:0], r.marksArr[:0], r.bindArr[:0]
	return r, nil
}

func newTokenReader(r xml.TokenReader, maxSize int64) *treeReader {
	if d, ok := r.(*xml.Decoder); ok {
		return &treeReader{src: d, dec: d, resolved: true, base: d.InputOffset(), maxSize: maxSize}
	}
	return &treeReader{src: r, maxSize: maxSize}
}

func (r *treeReader) depth() int { return len(r.stack) }

// wrapErr turns a source error into one of ours. Decoder syntax errors
// become ErrInvalidXML with the byte offset only: the decoder's message can
// quote decrypted text.
func (r *treeReader) wrapErr(err error) error {
	var syn *xml.SyntaxError
	if r.owned || errors.As(err, &syn) {
		if r.dec != nil {
			return fmt.Errorf("%w near byte %d", ErrInvalidXML, r.dec.InputOffset()-r.base)
		}
		return ErrInvalidXML
	}
	return fmt.Errorf("sce: reading tokens: %w", err)
}

// tokKind says what a tok holds.
type tokKind uint8

const (
	tokStart tokKind = iota + 1
	tokEnd
	tokText
	tokProcInst
)

// tok is a normalised token, returned by value so that the tokens a caller
// only looks at are never boxed. text may be the decoder's buffer: it is
// valid only until the next call of next, and element copies what it keeps.
type tok struct {
	kind   tokKind
	start  xml.StartElement // tokStart
	end    xml.Name         // tokEnd, resolved
	text   []byte           // tokText; the instruction of a tokProcInst
	target string           // tokProcInst
}

// next returns the next normalised token, or io.EOF at the end of input.
// Processing instructions are returned only outside the root element (the
// caller allows one XML declaration); comments and directives are errors.
func (r *treeReader) next() (tok, error) {
	if r.eof {
		return tok{}, io.EOF
	}
	var t xml.Token
	var err error
	if r.owned {
		t, err = r.dec.RawToken()
	} else {
		t, err = r.src.Token()
	}
	switch {
	case err == io.EOF:
		r.eof = true
		if t == nil {
			return tok{}, io.EOF
		}
	case err != nil:
		return tok{}, r.wrapErr(err)
	case t == nil:
		r.eof = true
		return tok{}, io.EOF
	}
	if r.dec != nil {
		if r.dec.InputOffset()-r.base > r.maxSize {
			return tok{}, &LimitError{Limit: "size", Max: r.maxSize}
		}
	}
	switch t := t.(type) {
	case xml.StartElement:
		if len(r.stack) >= MaxDepth {
			return tok{}, &LimitError{Limit: "depth", Max: MaxDepth}
		}
		if err := r.count(1+len(t.Attr), len(t.Name.Local)+len(t.Name.Space)+2); err != nil {
			return tok{}, err
		}
		var start xml.StartElement
		if r.owned {
			start, err = r.resolveStart(t)
		} else {
			parent := ""
			if len(r.stack) > 0 {
				parent = r.stack[len(r.stack)-1].Space
			}
			start, err = r.normalizeStart(t, parent)
		}
		if err != nil {
			return tok{}, err
		}
		if r.dec == nil {
			for _, a := range start.Attr {
				r.size += int64(len(a.Name.Local) + len(a.Name.Space) + len(a.Value) + 4)
			}
		}
		r.stack = append(r.stack, start.Name)
		return tok{kind: tokStart, start: start}, nil
	case xml.EndElement:
		if len(r.stack) == 0 {
			return tok{}, fmt.Errorf("%w: unbalanced end element", ErrInvalidXML)
		}
		top := r.stack[len(r.stack)-1]
		if r.owned {
			// RawToken does not match end tags: the name as written must
			// be the start tag's (XML 1.0 §3 WFC: Element Type Match).
			n := len(r.raw) - 1
			if t.Name != r.raw[n] {
				return tok{}, fmt.Errorf("%w: mismatched end element", ErrInvalidXML)
			}
			r.bindings = r.bindings[:r.marks[n]]
			r.raw, r.marks = r.raw[:n], r.marks[:n]
		} else if t.Name.Local != top.Local || t.Name.Space != "" && t.Name.Space != top.Space {
			return tok{}, fmt.Errorf("%w: mismatched end element", ErrInvalidXML)
		}
		r.stack = r.stack[:len(r.stack)-1]
		return tok{kind: tokEnd, end: top}, nil
	case xml.CharData:
		if err := r.count(1, len(t)); err != nil {
			return tok{}, err
		}
		// Our own decoder has checked the text already (Decoder.text).
		if !r.owned && !validText(t) {
			return tok{}, fmt.Errorf("%w: invalid UTF-8 or character in text", ErrInvalidXML)
		}
		return tok{kind: tokText, text: t}, nil
	case xml.ProcInst:
		if len(r.stack) > 0 {
			return tok{}, fmt.Errorf("%w: processing instruction", ErrInvalidXML)
		}
		// The decoder checks the target's name but not the instruction.
		if !validText(t.Inst) {
			return tok{}, fmt.Errorf("%w: invalid UTF-8 or character in processing instruction", ErrInvalidXML)
		}
		return tok{kind: tokProcInst, target: t.Target, text: t.Inst}, nil
	case xml.Comment:
		return tok{}, fmt.Errorf("%w: comment", ErrInvalidXML)
	case xml.Directive:
		return tok{}, fmt.Errorf("%w: directive", ErrInvalidXML)
	}
	return tok{}, fmt.Errorf("%w: unknown token type %T", ErrInvalidXML, t)
}

// token returns the next token as an xml.Token, owning its data.
func (t *tok) token() xml.Token {
	switch t.kind {
	case tokStart:
		return t.start
	case tokEnd:
		return xml.EndElement{Name: t.end}
	case tokText:
		return xml.CharData(bytes.Clone(t.text))
	}
	return xml.ProcInst{Target: t.target, Inst: bytes.Clone(t.text)}
}

// count adds nodes and (for sources without byte offsets) an estimate of
// their serialized size, and checks both limits.
func (r *treeReader) count(nodes, size int) error {
	r.nodes += nodes
	if r.nodes > MaxNodes {
		return &LimitError{Limit: "nodes", Max: MaxNodes}
	}
	if r.dec == nil {
		r.size += int64(size)
		if r.size > r.maxSize {
			return &LimitError{Limit: "size", Max: r.maxSize}
		}
	}
	return nil
}

// lookup returns the namespace bound to prefix in scope ("" for the
// default namespace: none when undeclared).
func (r *treeReader) lookup(prefix string) (string, bool) {
	for i := len(r.bindings) - 1; i >= 0; i-- {
		if r.bindings[i].prefix == prefix {
			return r.bindings[i].space, true
		}
	}
	return "", prefix == ""
}

// resolveStart resolves the names of a raw start element of our own decoder
// and enters its scope (Namespaces in XML 1.0):
//
//   - §3: a prefixed declaration must not be empty, the prefix xmlns must
//     not be declared, the prefix xml only to its own namespace, and no
//     other prefix (nor the default) to that or to nsXMLNS; a prefix is
//     declared at most once per element (XML 1.0 §3.1 WFC: Unique Att Spec);
//   - §5 "Prefix Declared": every prefix used is declared in scope (xml
//     always is); element names do not use the prefix xmlns;
//   - §6.2, §6.3: unprefixed elements are in the default namespace,
//     unprefixed attributes in none.
func (r *treeReader) resolveStart(t xml.StartElement) (xml.StartElement, error) {
	mark := len(r.bindings)
	decls := 0
	for _, a := range t.Attr {
		var prefix string
		switch {
		case a.Name.Space == "xmlns":
			prefix = a.Name.Local
			if prefix == "xmlns" || a.Value == "" || (prefix == "xml") != (a.Value == nsXML) || !validName(prefix) {
				return xml.StartElement{}, fmt.Errorf("%w: invalid namespace declaration", ErrInvalidXML)
			}
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			if a.Value == nsXML {
				return xml.StartElement{}, fmt.Errorf("%w: invalid namespace declaration", ErrInvalidXML)
			}
		default:
			continue
		}
		if a.Value == nsXMLNS || a.Value != "" && !validNamespace(a.Value) {
			return xml.StartElement{}, fmt.Errorf("%w: invalid namespace declaration", ErrInvalidXML)
		}
		for _, b := range r.bindings[mark:] {
			if b.prefix == prefix {
				return xml.StartElement{}, fmt.Errorf("%w: invalid or duplicate attribute", ErrInvalidXML)
			}
		}
		r.bindings = append(r.bindings, binding{prefix: prefix, space: a.Value})
		decls++
	}
	r.marks = append(r.marks, mark)
	r.raw = append(r.raw, t.Name)

	name := t.Name
	var ok bool
	switch name.Space {
	case "xml":
		name.Space, ok = nsXML, true
	case "xmlns":
		ok = false
	default:
		name.Space, ok = r.lookup(name.Space)
	}
	if !ok {
		return xml.StartElement{}, fmt.Errorf("%w: undeclared namespace prefix", ErrInvalidXML)
	}
	if !validName(name.Local) || name.Space != "" && !validNamespace(name.Space) {
		return xml.StartElement{}, fmt.Errorf("%w: invalid element name or namespace", ErrInvalidXML)
	}
	if len(t.Attr) == decls {
		return xml.StartElement{Name: name}, nil
	}
	// RawToken's Attr slice is the token's own: filter it in place.
	attrs := t.Attr[:0]
	for _, a := range t.Attr {
		switch {
		case isNSDecl(a.Name):
			continue
		case a.Name.Space == "xml":
			a.Name.Space = nsXML
		case a.Name.Space != "":
			if a.Name.Space, ok = r.lookup(a.Name.Space); !ok || a.Name.Space == "" {
				return xml.StartElement{}, fmt.Errorf("%w: undeclared namespace prefix", ErrInvalidXML)
			}
		}
		attrs = append(attrs, a)
	}
	if !checkAttrs(attrs) {
		return xml.StartElement{}, fmt.Errorf("%w: invalid or duplicate attribute", ErrInvalidXML)
	}
	return xml.StartElement{Name: name, Attr: attrs}, nil
}

func (r *treeReader) normalizeStart(t xml.StartElement, parent string) (xml.StartElement, error) {
	name := t.Name
	decls := 0
	def, hasDef := "", false
	for _, a := range t.Attr {
		if isNSDecl(a.Name) {
			decls++
			if a.Name.Space == "" {
				def, hasDef = a.Value, true
			}
		}
	}
	if !r.resolved && name.Space == "" {
		if hasDef {
			name.Space = def
		} else {
			name.Space = parent
		}
	}
	if !validName(name.Local) || name.Space != "" && !validNamespace(name.Space) {
		return xml.StartElement{}, fmt.Errorf("%w: invalid element name or namespace", ErrInvalidXML)
	}
	var attrs []xml.Attr
	if n := len(t.Attr) - decls; n > 0 {
		attrs = make([]xml.Attr, 0, n)
		for _, a := range t.Attr {
			if !isNSDecl(a.Name) {
				attrs = append(attrs, a)
			}
		}
		if !checkAttrs(attrs) {
			return xml.StartElement{}, fmt.Errorf("%w: invalid or duplicate attribute", ErrInvalidXML)
		}
	}
	return xml.StartElement{Name: name, Attr: attrs}, nil
}

// root reads up to the root element's start: an optional XML declaration
// (which must come first) and white space.
func (r *treeReader) root() (xml.StartElement, error) {
	first := true
	for {
		t, err := r.next()
		if err == io.EOF {
			return xml.StartElement{}, fmt.Errorf("%w: no root element", ErrInvalidXML)
		}
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t.kind {
		case tokStart:
			return t.start, nil
		case tokProcInst:
			if !first || t.target != "xml" {
				return xml.StartElement{}, fmt.Errorf("%w: processing instruction", ErrInvalidXML)
			}
		case tokText:
			if !isWhitespace(t.text) {
				return xml.StartElement{}, fmt.Errorf("%w: text outside the root element", ErrInvalidXML)
			}
		default:
			return xml.StartElement{}, fmt.Errorf("%w: unexpected token before the root element", ErrInvalidXML)
		}
		first = false
	}
}

// end checks that nothing but white space follows the root element.
func (r *treeReader) end() error {
	for {
		t, err := r.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if t.kind != tokText || !isWhitespace(t.text) {
			return fmt.Errorf("%w: data after the root element", ErrInvalidXML)
		}
	}
}

// pushStart normalises a start element that was read by someone else (an
// UnmarshalXML caller) and makes it the reader's root.
func (r *treeReader) pushStart(start xml.StartElement) (xml.StartElement, error) {
	if err := r.count(1+len(start.Attr), len(start.Name.Local)+len(start.Name.Space)+2); err != nil {
		return xml.StartElement{}, err
	}
	s, err := r.normalizeStart(start, "")
	if err != nil {
		return xml.StartElement{}, err
	}
	r.stack = append(r.stack, s.Name)
	return s, nil
}

// element reads the rest of the element whose start was just returned by
// next, and returns all its tokens.
func (r *treeReader) element(start xml.StartElement) (Element, error) {
	d := r.depth()
	toks := make([]xml.Token, 1, 4)
	toks[0] = start
	for {
		t, err := r.next()
		if err == io.EOF {
			return Element{}, fmt.Errorf("%w: unexpected end of input", ErrInvalidXML)
		}
		if err != nil {
			return Element{}, err
		}
		// Adjacent text (text, CDATA sections) becomes one token and empty
		// text none, so that parsing what Marshal wrote gives the same tokens.
		if t.kind == tokText {
			if len(t.text) == 0 {
				continue
			}
			if prev, ok := toks[len(toks)-1].(xml.CharData); ok {
				toks[len(toks)-1] = append(prev, t.text...)
				continue
			}
		}
		toks = append(toks, t.token())
		if t.kind == tokEnd && r.depth() < d {
			return Element{Name: start.Name, Tokens: toks}, nil
		}
	}
}

// children calls f for every child element of the element whose start was
// just returned by next, until its end. Text between children must be
// white space.
func (r *treeReader) children(f func(start xml.StartElement) error) error {
	d := r.depth()
	for {
		t, err := r.next()
		if err == io.EOF {
			return fmt.Errorf("%w: unexpected end of input", ErrInvalidXML)
		}
		if err != nil {
			return err
		}
		switch t.kind {
		case tokEnd:
			if r.depth() < d {
				return nil
			}
		case tokText:
			if !isWhitespace(t.text) {
				return fmt.Errorf("%w: text where only elements are allowed", ErrInvalidXML)
			}
		case tokStart:
			if err := f(t.start); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: unexpected token", ErrInvalidXML)
		}
	}
}

// errHasChildren is returned by text for an element with child elements.
var errHasChildren = errors.New("element has children")

// text reads the character data of the element whose start was just
// returned by next, until its end. A child element is errHasChildren.
func (r *treeReader) text() (string, error) {
	var b []byte
	d := r.depth()
	for {
		t, err := r.next()
		if err == io.EOF {
			return "", fmt.Errorf("%w: unexpected end of input", ErrInvalidXML)
		}
		if err != nil {
			return "", err
		}
		switch t.kind {
		case tokEnd:
			if r.depth() < d {
				return string(b), nil
			}
		case tokText:
			b = append(b, t.text...)
		case tokStart:
			return "", errHasChildren
		}
	}
}

// sliceReader is an xml.TokenReader over a slice of tokens.
type sliceReader struct {
	toks []xml.Token
	i    int
}

func (s *sliceReader) Token() (xml.Token, error) {
	if s.i >= len(s.toks) {
		return nil, io.EOF
	}
	t := s.toks[s.i]
	s.i++
	return t, nil
}

// errReader is an xml.TokenReader that fails.
type errReader struct{ err error }

func (e errReader) Token() (xml.Token, error) { return nil, e.err }

// tokenSlice is a TokenWriter that collects tokens.
type tokenSlice []xml.Token

func (s *tokenSlice) EncodeToken(t xml.Token) error {
	*s = append(*s, t)
	return nil
}
