package sce

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
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
type treeReader struct {
	src xml.TokenReader
	dec *xml.Decoder
	// resolved means Name.Space of a token is already the element's resolved
	// namespace (tokens from an xml.Decoder). Otherwise an empty Name.Space
	// inherits the parent's, as when encoding/xml's encoder writes the token.
	resolved bool
	// owned means the source is our own decoder: its Attr slices may be
	// reused and its errors are all syntax errors.
	owned   bool
	base    int64
	maxSize int64
	size    int64
	nodes   int
	stack   []xml.Name
	eof     bool
	// For our own decoder, which sees the whole document: the namespace
	// names declared in scope (with counts) and the declarations of each
	// open element, to reject unbound prefixes, which encoding/xml leaves
	// in Name.Space (Namespaces in XML §5, "Namespace constraint: Prefix
	// Declared").
	declared map[string]int
	decls    [][]string
}

func newBytesReader(b []byte, maxSize int64) (*treeReader, error) {
	if int64(len(b)) > maxSize {
		return nil, &LimitError{Limit: "size", Max: maxSize}
	}
	if !validText(b) {
		return nil, fmt.Errorf("%w: invalid UTF-8 or character", ErrInvalidXML)
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	return &treeReader{src: d, dec: d, resolved: true, owned: true, maxSize: maxSize}, nil
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

// token returns the next normalised token, or io.EOF at the end of input.
// Processing instructions are returned only outside the root element (the
// caller allows one XML declaration); comments and directives are errors.
func (r *treeReader) token() (xml.Token, error) {
	if r.eof {
		return nil, io.EOF
	}
	tok, err := r.src.Token()
	switch {
	case err == io.EOF:
		r.eof = true
		if tok == nil {
			return nil, io.EOF
		}
	case err != nil:
		return nil, r.wrapErr(err)
	case tok == nil:
		r.eof = true
		return nil, io.EOF
	}
	if r.dec != nil {
		if r.dec.InputOffset()-r.base > r.maxSize {
			return nil, &LimitError{Limit: "size", Max: r.maxSize}
		}
	}
	switch t := tok.(type) {
	case xml.StartElement:
		if len(r.stack) >= MaxDepth {
			return nil, &LimitError{Limit: "depth", Max: MaxDepth}
		}
		if err := r.count(1+len(t.Attr), len(t.Name.Local)+len(t.Name.Space)+2); err != nil {
			return nil, err
		}
		parent := ""
		if len(r.stack) > 0 {
			parent = r.stack[len(r.stack)-1].Space
		}
		if r.owned {
			if err := r.checkBound(t); err != nil {
				return nil, err
			}
		}
		start, err := r.normalizeStart(t, parent)
		if err != nil {
			return nil, err
		}
		for _, a := range start.Attr {
			r.size += int64(len(a.Name.Local) + len(a.Name.Space) + len(a.Value) + 4)
		}
		r.stack = append(r.stack, start.Name)
		return start, nil
	case xml.EndElement:
		if len(r.stack) == 0 {
			return nil, fmt.Errorf("%w: unbalanced end element", ErrInvalidXML)
		}
		top := r.stack[len(r.stack)-1]
		if t.Name.Local != top.Local || t.Name.Space != "" && t.Name.Space != top.Space {
			return nil, fmt.Errorf("%w: mismatched end element", ErrInvalidXML)
		}
		r.stack = r.stack[:len(r.stack)-1]
		if r.owned {
			for _, ns := range r.decls[len(r.decls)-1] {
				r.declared[ns]--
			}
			r.decls = r.decls[:len(r.decls)-1]
		}
		return xml.EndElement{Name: top}, nil
	case xml.CharData:
		if err := r.count(1, len(t)); err != nil {
			return nil, err
		}
		if !validText(t) {
			return nil, fmt.Errorf("%w: invalid UTF-8 or character in text", ErrInvalidXML)
		}
		return xml.CharData(bytes.Clone(t)), nil
	case xml.ProcInst:
		if len(r.stack) > 0 {
			return nil, fmt.Errorf("%w: processing instruction", ErrInvalidXML)
		}
		return t.Copy(), nil
	case xml.Comment:
		return nil, fmt.Errorf("%w: comment", ErrInvalidXML)
	case xml.Directive:
		return nil, fmt.Errorf("%w: directive", ErrInvalidXML)
	}
	return nil, fmt.Errorf("%w: unknown token type %T", ErrInvalidXML, tok)
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

// checkBound records the namespace declarations of the decoder's token
// start and checks that its names use declared namespaces. Tokens of our
// own decoder are already resolved, so this runs before normalizeStart.
func (r *treeReader) checkBound(start xml.StartElement) error {
	var decls []string
	for _, a := range start.Attr {
		if isNSDecl(a.Name) && a.Value != "" {
			if r.declared == nil {
				r.declared = make(map[string]int)
			}
			r.declared[a.Value]++
			decls = append(decls, a.Value)
		}
	}
	r.decls = append(r.decls, decls)
	bound := func(space string) bool {
		return space == "" || space == nsXML || r.declared[space] > 0
	}
	if !bound(start.Name.Space) {
		return fmt.Errorf("%w: undeclared namespace prefix", ErrInvalidXML)
	}
	for _, a := range start.Attr {
		if !isNSDecl(a.Name) && !bound(a.Name.Space) {
			return fmt.Errorf("%w: undeclared namespace prefix", ErrInvalidXML)
		}
	}
	return nil
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
		if r.owned {
			attrs = t.Attr[:0]
		} else {
			attrs = make([]xml.Attr, 0, n)
		}
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
		tok, err := r.token()
		if err == io.EOF {
			return xml.StartElement{}, fmt.Errorf("%w: no root element", ErrInvalidXML)
		}
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, nil
		case xml.ProcInst:
			if !first || t.Target != "xml" {
				return xml.StartElement{}, fmt.Errorf("%w: processing instruction", ErrInvalidXML)
			}
		case xml.CharData:
			if !isWhitespace(t) {
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
		tok, err := r.token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if cd, ok := tok.(xml.CharData); !ok || !isWhitespace(cd) {
			return fmt.Errorf("%w: data after the root element", ErrInvalidXML)
		}
	}
}

// pushStart normalises a start element that was read by someone else (an
// UnmarshalXML caller) and makes it the reader's root.
func (r *treeReader) pushStart(start xml.StartElement) (xml.StartElement, error) {
	start.Attr = slices.Clone(start.Attr)
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
// token, and returns all its tokens.
func (r *treeReader) element(start xml.StartElement) (Element, error) {
	d := r.depth()
	toks := []xml.Token{start}
	for {
		tok, err := r.token()
		if err == io.EOF {
			return Element{}, fmt.Errorf("%w: unexpected end of input", ErrInvalidXML)
		}
		if err != nil {
			return Element{}, err
		}
		// Adjacent text (text, CDATA sections) becomes one token and empty
		// text none, so that parsing what Marshal wrote gives the same tokens.
		if cd, ok := tok.(xml.CharData); ok {
			if len(cd) == 0 {
				continue
			}
			if prev, ok := toks[len(toks)-1].(xml.CharData); ok {
				toks[len(toks)-1] = append(prev, cd...)
				continue
			}
		}
		toks = append(toks, tok)
		if _, ok := tok.(xml.EndElement); ok && r.depth() < d {
			return Element{Name: start.Name, Tokens: toks}, nil
		}
	}
}

// children calls f for every child element of the element whose start was
// just returned by token, until its end. Text between children must be
// white space.
func (r *treeReader) children(f func(start xml.StartElement) error) error {
	d := r.depth()
	for {
		tok, err := r.token()
		if err == io.EOF {
			return fmt.Errorf("%w: unexpected end of input", ErrInvalidXML)
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if r.depth() < d {
				return nil
			}
		case xml.CharData:
			if !isWhitespace(t) {
				return fmt.Errorf("%w: text where only elements are allowed", ErrInvalidXML)
			}
		case xml.StartElement:
			if err := f(t); err != nil {
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
// returned by token, until its end. A child element is errHasChildren.
func (r *treeReader) text() (string, error) {
	var b []byte
	d := r.depth()
	for {
		tok, err := r.token()
		if err == io.EOF {
			return "", fmt.Errorf("%w: unexpected end of input", ErrInvalidXML)
		}
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if r.depth() < d {
				return string(b), nil
			}
		case xml.CharData:
			b = append(b, t...)
		case xml.StartElement:
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
