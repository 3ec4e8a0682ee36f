package omemo

import (
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file holds the strict token-level helpers shared by the XML payloads.
// They never call crypto (DESIGN: codecs never call crypto).

// malformed returns an error wrapping ErrMalformed with a description of
// what was wrong with public, unauthenticated XML.
func malformed(format string, args ...any) error {
	return fmt.Errorf("omemo: %w: "+format, append([]any{ErrMalformed}, args...)...)
}

// checkName reports whether start is the element local in NS.
func checkName(start xml.StartElement, local string) error {
	if start.Name.Space != NS || start.Name.Local != local {
		return malformed("expected <%s xmlns='%s'>, got <%s xmlns='%s'>", local, NS, start.Name.Local, start.Name.Space)
	}
	return nil
}

// isNSDecl reports whether a is a namespace declaration, which the decoder
// reports as an attribute.
func isNSDecl(a xml.Attr) bool {
	return a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns")
}

// attrs collects the attributes of start that are in allowed; any other
// attribute (except namespace declarations) and any duplicate is an error,
// as the XEP-0384 §11 schema allows no other attributes.
func attrs(start xml.StartElement, allowed ...string) (map[string]string, error) {
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
	return m, nil
}

// parseUint32 parses the canonical decimal form of an xs:unsignedInt: no
// sign, no leading zeros, no whitespace, so that re-encoding gives the same
// text.
func parseUint32(s, what string) (uint32, error) {
	if s == "" || len(s) > 10 || (len(s) > 1 && s[0] == '0') {
		return 0, malformed("invalid %s %q", what, s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, malformed("invalid %s %q", what, s)
		}
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, malformed("invalid %s %q", what, s)
	}
	return uint32(v), nil
}

// parseDeviceID parses a device id and checks it is in 1 … 2^31−1
// (XEP-0384 §5.1, 0.9.1).
func parseDeviceID(s, what string) (uint32, error) {
	v, err := parseUint32(s, what)
	if err != nil {
		return 0, err
	}
	if !ValidDeviceID(v) {
		return 0, malformed("%s %d out of range 1…2^31−1", what, v)
	}
	return v, nil
}

// ValidDeviceID reports whether id is a valid OMEMO 2 device id, an integer
// in 1 … 2^31−1 (XEP-0384 §5.1; 0.9.1 forbids 0).
func ValidDeviceID(id uint32) bool {
	return id >= MinDeviceID && id <= MaxDeviceID
}

// parseBool parses an xs:boolean ("true", "1", "false", "0").
func parseBool(s, what string) (bool, error) {
	switch s {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, malformed("invalid %s %q", what, s)
}

// stripXMLSpace removes the XML whitespace characters (space, tab, CR, LF)
// that xs:base64Binary allows between characters.
func stripXMLSpace(s string) string {
	if !strings.ContainsAny(s, " \t\r\n") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\r', '\n':
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

var strictB64 = base64.StdEncoding.Strict()

// decodeBase64 decodes padded standard base64 (RFC 4648 §4, as python's
// base64.b64encode writes it), ignoring XML whitespace and rejecting
// non-canonical trailing bits. limit bounds the decoded size.
func decodeBase64(s, what string, limit int) ([]byte, error) {
	s = stripXMLSpace(s)
	if strictB64.DecodedLen(len(s)) > limit+2 {
		return nil, malformed("%s longer than %d bytes", what, limit)
	}
	b, err := strictB64.DecodeString(s)
	if err != nil {
		return nil, malformed("%s is not valid base64", what)
	}
	if len(b) > limit {
		return nil, malformed("%s longer than %d bytes", what, limit)
	}
	return b, nil
}

// decodeKey decodes a base64 key of exactly size bytes.
func decodeKey(s, what string, size int) ([]byte, error) {
	b, err := decodeBase64(s, what, size)
	if err != nil {
		return nil, err
	}
	if len(b) != size {
		return nil, malformed("%s is %d bytes, want %d", what, len(b), size)
	}
	return b, nil
}

func encodeBase64(b []byte) string {
	return base64.StdEncoding.EncodeToString(b)
}

// nextChild returns the next child element of the element being read, or
// nil when its end element is reached. Whitespace and comments between
// children are skipped; any other character data, processing instruction or
// directive is an error.
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

// readText reads the character data of a text-only element up to and
// including its end element. Child elements are an error. limit bounds the
// size of the text in bytes.
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

// base64TextLimit is the largest amount of base64 text (with some room for
// whitespace) accepted for n decoded bytes.
func base64TextLimit(n int) int {
	return base64.StdEncoding.EncodedLen(n) + n/16 + 64
}

func validLabel(s string) bool {
	return utf8.ValidString(s)
}

func marshalXML(v any) ([]byte, error) {
	return xml.Marshal(v)
}

func unmarshalXML(b []byte, v any) error {
	return xml.Unmarshal(b, v)
}
