package trust

import (
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"strings"

	"mellium.im/xmlstream"
)

// This file holds the strict token-level helpers shared by the XML types.
// They never call crypto (DESIGN: codecs never call crypto).

// checkName reports whether start is the element local in ns.
func checkName(start xml.StartElement, ns, local string) error {
	if start.Name.Space != ns || start.Name.Local != local {
		return malformed("expected <%s xmlns='%s'>, got <%s xmlns='%s'>", local, ns, start.Name.Local, start.Name.Space)
	}
	return nil
}

// isNSDecl reports whether a is a namespace declaration, which the decoder
// reports as an attribute.
func isNSDecl(a xml.Attr) bool {
	return a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns")
}

// attrs collects the attributes of start named in allowed; any other
// attribute (except namespace declarations) and any duplicate is an error.
// Every attribute in required must be present.
func attrs(start xml.StartElement, allowed []string, required ...string) (map[string]string, error) {
	m := make(map[string]string, len(allowed))
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
			return nil, malformed("unexpected attribute %q on <%s>", a.Name.Local, start.Name.Local)
		}
		if _, dup := m[a.Name.Local]; dup {
			return nil, malformed("duplicate attribute %q on <%s>", a.Name.Local, start.Name.Local)
		}
		m[a.Name.Local] = a.Value
	}
	for _, name := range required {
		if _, ok := m[name]; !ok {
			return nil, malformed("<%s> without %s", start.Name.Local, name)
		}
	}
	return m, nil
}

// nextChild returns the next child element of the element being read, or
// nil when its end element is reached. Whitespace and comments between
// children are skipped; other character data, processing instructions and
// directives are errors.
func nextChild(d xml.TokenReader) (*xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, malformed("unexpected end of input")
			}
			return nil, malformed("%v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return &t, nil
		case xml.EndElement:
			return nil, nil
		case xml.CharData:
			if len(strings.Trim(string(t), " \t\r\n")) != 0 {
				return nil, malformed("unexpected character data")
			}
		case xml.Comment:
		default:
			return nil, malformed("unexpected %T", tok)
		}
	}
}

// expectEnd reads up to the end of an element that must be empty.
func expectEnd(d xml.TokenReader, local string) error {
	child, err := nextChild(d)
	if err != nil {
		return err
	}
	if child != nil {
		return malformed("unexpected <%s> in <%s>", child.Name.Local, local)
	}
	return nil
}

// readText reads the character data of a text-only element up to and
// including its end element. Child elements are an error; limit bounds the
// text in bytes.
func readText(d xml.TokenReader, limit int, what string) (string, error) {
	var b strings.Builder
	for {
		tok, err := d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return "", malformed("unexpected end of input")
			}
			return "", malformed("%v", err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			if b.Len()+len(t) > limit {
				return "", malformed("%s longer than %d bytes", what, limit)
			}
			b.Write(t)
		case xml.EndElement:
			return b.String(), nil
		case xml.Comment:
		default:
			return "", malformed("unexpected %T in %s", tok, what)
		}
	}
}

var strictB64 = base64.StdEncoding.Strict()

// decodeBase64 decodes padded standard base64 (RFC 4648 §4) of 1 to limit
// bytes. It accepts no whitespace and rejects non-canonical trailing bits,
// so that decode→encode gives the same text.
func decodeBase64(s, what string, limit int) ([]byte, error) {
	if s == "" {
		return nil, malformed("empty %s", what)
	}
	if len(s) > base64.StdEncoding.EncodedLen(limit) {
		return nil, malformed("%s longer than %d bytes", what, limit)
	}
	b, err := strictB64.DecodeString(s)
	if err != nil || strings.ContainsAny(s, "\r\n") {
		return nil, malformed("%s is not canonical base64", what)
	}
	if len(b) > limit {
		return nil, malformed("%s longer than %d bytes", what, limit)
	}
	return b, nil
}

// decodeFixed decodes base64 of exactly size bytes.
func decodeFixed(s, what string, size int) ([]byte, error) {
	b, err := decodeBase64(s, what, size)
	if err != nil {
		return nil, err
	}
	if len(b) != size {
		return nil, malformed("%s is %d bytes, want %d", what, len(b), size)
	}
	return b, nil
}

// readBase64 reads a text-only element holding base64 of exactly size
// bytes (or 1 … -size bytes when size is negative).
func readBase64(d xml.TokenReader, what string, size int) ([]byte, error) {
	limit := size
	if limit < 0 {
		limit = -limit
	}
	text, err := readText(d, base64.StdEncoding.EncodedLen(limit), what)
	if err != nil {
		return nil, err
	}
	if size < 0 {
		return decodeBase64(text, what, limit)
	}
	return decodeFixed(text, what, size)
}

func encodeBase64(b []byte) string {
	return base64.StdEncoding.EncodeToString(b)
}

// textElement is <local a…>text</local> in the namespace inherited from
// its parent.
func textElement(local string, a []xml.Attr, text string) xml.TokenReader {
	return xmlstream.Wrap(xmlstream.Token(xml.CharData(text)), xml.StartElement{Name: xml.Name{Local: local}, Attr: a})
}
