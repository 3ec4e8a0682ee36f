// Package xmlx holds the strict, token-level XML helpers shared by the
// payload codecs of hush (OMEMO 2 and legacy OMEMO, XEP-0384; trust
// messages, XEP-0434 and XEP-0450). It reads encoding/xml tokens with
// explicit size limits, accepts no mixed content, and reports malformed
// input through a constructor supplied by the calling package, so that
// every error keeps wrapping that package's own ErrMalformed sentinel.
//
// Like every codec in hush it never calls crypto (DESIGN: codecs never call
// crypto). It imports only the standard library and mellium.im/xmlstream.
package xmlx

import (
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"

	"mellium.im/xmlstream"
)

// Space is the XML whitespace (XML 1.0 §2.3 S) that XML Schema's
// whiteSpace facet "collapse" removes and that xs:base64Binary allows
// between characters.
const Space = " \t\r\n"

// Malformed builds the error for malformed public input. The calling
// package passes its own constructor, which must wrap its ErrMalformed
// sentinel; the methods of Malformed are the strict parsing helpers.
type Malformed func(format string, args ...any) error

// CheckName checks that start is the element local in the namespace ns.
func (m Malformed) CheckName(start xml.StartElement, ns, local string) error {
	if start.Name.Space != ns || start.Name.Local != local {
		return m("expected <%s xmlns='%s'>, got <%s xmlns='%s'>", local, ns, start.Name.Local, start.Name.Space)
	}
	return nil
}

// isNSDecl reports whether a is a namespace declaration, which the decoder
// reports as an attribute.
func isNSDecl(a xml.Attr) bool {
	return a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns")
}

// Attrs collects the attributes of start, which must be unqualified and
// named in allowed. Any other attribute (namespace declarations aside) and
// any duplicate is an error: the schemas hush implements declare no
// xs:anyAttribute.
func (m Malformed) Attrs(start xml.StartElement, allowed ...string) (map[string]string, error) {
	out := make(map[string]string, len(allowed))
	for _, a := range start.Attr {
		if isNSDecl(a) {
			continue
		}
		ok := false
		if a.Name.Space == "" {
			for _, name := range allowed {
				if a.Name.Local == name {
					ok = true
					break
				}
			}
		}
		if !ok {
			return nil, m("unexpected attribute %q on <%s>", a.Name.Local, start.Name.Local)
		}
		if _, dup := out[a.Name.Local]; dup {
			return nil, m("duplicate attribute %q on <%s>", a.Name.Local, start.Name.Local)
		}
		out[a.Name.Local] = a.Value
	}
	return out, nil
}

// TokenError converts an error of the token reader: io.EOF, which means
// the input ended inside an element, or a syntax error.
func (m Malformed) TokenError(err error) error {
	if errors.Is(err, io.EOF) {
		return m("unexpected end of input")
	}
	return m("%v", err)
}

// NextChild returns the next child element of the element being read, or
// nil at its end element. Whitespace and comments between children are
// skipped; other character data, processing instructions and directives
// are errors (no schema hush implements has mixed content).
func (m Malformed) NextChild(d xml.TokenReader) (*xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, m.TokenError(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return &t, nil
		case xml.EndElement:
			return nil, nil
		case xml.CharData:
			if len(strings.Trim(string(t), Space)) != 0 {
				return nil, m("unexpected character data")
			}
		case xml.Comment:
		default:
			return nil, m("unexpected %T", tok)
		}
	}
}

// ReadText reads the character data of a text-only element up to and
// including its end element; child elements are errors. limit bounds the
// text in bytes; what names the element in errors.
func (m Malformed) ReadText(d xml.TokenReader, limit int, what string) (string, error) {
	var b strings.Builder
	for {
		tok, err := d.Token()
		if err != nil {
			return "", m.TokenError(err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			if b.Len()+len(t) > limit {
				return "", m("%s longer than %d bytes", what, limit)
			}
			b.Write(t)
		case xml.EndElement:
			return b.String(), nil
		case xml.Comment:
		default:
			return "", m("unexpected %T in <%s>", tok, what)
		}
	}
}

// StripSpace removes the XML whitespace that xs:base64Binary allows
// anywhere in its text (the XEP-0384 examples wrap keys in newlines and
// indentation).
func StripSpace(s string) string {
	if !strings.ContainsAny(s, Space) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(Space, rune(s[i])) {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// StrictBase64 is padded standard base64 (RFC 4648 §4) that rejects
// non-zero trailing bits, so that decoding and re-encoding give the same
// text.
var StrictBase64 = base64.StdEncoding.Strict()

// DecodeBase64 decodes xs:base64Binary text in the form python's
// base64.b64encode writes (padded standard base64, RFC 4648 §4), ignoring
// XML whitespace and rejecting non-zero trailing bits. limit bounds the
// decoded size; what names the value in errors.
func (m Malformed) DecodeBase64(s, what string, limit int) ([]byte, error) {
	s = StripSpace(s)
	if StrictBase64.DecodedLen(len(s)) > limit+2 {
		return nil, m("%s longer than %d bytes", what, limit)
	}
	b, err := StrictBase64.DecodeString(s)
	if err != nil {
		return nil, m("%s is not valid base64", what)
	}
	if len(b) > limit {
		return nil, m("%s longer than %d bytes", what, limit)
	}
	return b, nil
}

// EncodeBase64 returns the padded standard base64 of b (RFC 4648 §4), the
// only form hush writes.
func EncodeBase64(b []byte) string {
	return base64.StdEncoding.EncodeToString(b)
}

// TextElement returns <local a…>text</local> in the namespace inherited
// from its parent.
func TextElement(local string, a []xml.Attr, text string) xml.TokenReader {
	return xmlstream.Wrap(xmlstream.Token(xml.CharData(text)), xml.StartElement{Name: xml.Name{Local: local}, Attr: a})
}

// UintAttr returns the attribute name='v' in canonical decimal form (the
// form of xs:unsignedInt that every reader accepts).
func UintAttr(name string, v uint32) xml.Attr {
	return xml.Attr{Name: xml.Name{Local: name}, Value: strconv.FormatUint(uint64(v), 10)}
}
