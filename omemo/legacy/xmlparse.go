package legacy

import (
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"

	"mellium.im/xmlstream"
)

// Token-level helpers shared by the XML payloads. They follow the XML
// schemas of XEP-0384 0.3 as python-oldmemo's oldmemo.etree validates them
// (xmlschema), accepting what that schema's types accept and nothing else.
// They never call crypto (DESIGN: codecs never call crypto).

// maxNumberText bounds the text of a numeric attribute before parsing
// (xs:unsignedInt allows leading zeros and surrounding whitespace).
const maxNumberText = 64

// xmlSpace is the XML whitespace that XML Schema's whiteSpace facets
// "collapse" (numbers, booleans) and xs:base64Binary's lexical space
// allow.
const xmlSpace = " \t\r\n"

// checkName checks that start is the element local in NS.
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

// attrs collects the attributes of start, which must be unqualified and in
// allowed; any other attribute (namespace declarations aside) is an error,
// as in python-oldmemo's schemas, which declare no xs:anyAttribute.
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

// parseUint32 parses an xs:unsignedInt: after whitespace collapsing, an
// optional "+" and decimal digits (leading zeros allowed), at most
// 2^32−1. This is the lexical space python-oldmemo's schemas accept; hush
// writes the canonical form only.
func parseUint32(s, what string) (uint32, error) {
	if len(s) > maxNumberText {
		return 0, malformed("%s too long", what)
	}
	t := strings.Trim(s, xmlSpace)
	t = strings.TrimPrefix(t, "+")
	if t == "" {
		return 0, malformed("invalid %s %q", what, s)
	}
	for i := 0; i < len(t); i++ {
		if t[i] < '0' || t[i] > '9' {
			return 0, malformed("invalid %s %q", what, s)
		}
	}
	v, err := strconv.ParseUint(t, 10, 32)
	if err != nil {
		return 0, malformed("%s %q out of range", what, s)
	}
	return uint32(v), nil
}

// parseDeviceID parses a device id and checks that it lies in
// MinDeviceID … MaxDeviceID (XEP-0384 0.3 §Setup).
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

// ValidDeviceID reports whether id is a valid device id: "a randomly
// generated integer between 1 and 2^31 - 1" (XEP-0384 0.3 §Setup).
func ValidDeviceID(id uint32) bool {
	return id >= MinDeviceID && id <= MaxDeviceID
}

// parseBool parses an xs:boolean ("true", "1", "false", "0" after
// whitespace collapsing).
func parseBool(s, what string) (bool, error) {
	switch strings.Trim(s, xmlSpace) {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, malformed("invalid %s %q", what, s)
}

// stripXMLSpace removes the XML whitespace that may appear anywhere in
// xs:base64Binary text (the XEP's examples wrap keys in newlines and
// indentation).
func stripXMLSpace(s string) string {
	if !strings.ContainsAny(s, xmlSpace) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(xmlSpace, rune(s[i])) {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

var strictB64 = base64.StdEncoding.Strict()

// decodeBase64 decodes padded standard base64 (RFC 4648 §4, as python's
// base64.b64encode writes it and xmlschema's xs:base64Binary demands),
// ignoring XML whitespace and rejecting non-zero trailing bits. limit
// bounds the decoded size.
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

// decodeSerializedKey decodes a libsignal public key: base64 of
// KeyType ‖ 32-byte Curve25519 key (python-oldmemo StateImpl.parse_public_key).
// It returns the raw 32 bytes.
func decodeSerializedKey(s, what string) ([]byte, error) {
	b, err := decodeBase64(s, what, SerializedKeySize)
	if err != nil {
		return nil, err
	}
	if len(b) != SerializedKeySize || b[0] != KeyType {
		return nil, malformed("%s is not a %d-byte 0x%02x-prefixed key", what, SerializedKeySize, KeyType)
	}
	return b[1:], nil
}

func encodeBase64(b []byte) string {
	return base64.StdEncoding.EncodeToString(b)
}

// encodeSerializedKey returns base64(KeyType ‖ key).
func encodeSerializedKey(key []byte) string {
	return encodeBase64(append([]byte{KeyType}, key...))
}

// nextChild returns the next child element of the element being read, or
// nil at its end element. Whitespace and comments between children are
// skipped; other character data, processing instructions and directives
// are errors (the schemas have no mixed content).
func nextChild(d xml.TokenReader) (*xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, tokenError(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return &t, nil
		case xml.EndElement:
			return nil, nil
		case xml.CharData:
			if len(strings.Trim(string(t), xmlSpace)) != 0 {
				return nil, malformed("unexpected character data")
			}
		case xml.Comment:
		default:
			return nil, malformed("unexpected %T", tok)
		}
	}
}

// readText reads the character data of a text-only element up to and
// including its end element; child elements are errors. limit bounds the
// text in bytes.
func readText(d xml.TokenReader, limit int, what string) (string, error) {
	var b strings.Builder
	for {
		tok, err := d.Token()
		if err != nil {
			return "", tokenError(err)
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
			return "", malformed("unexpected %T in <%s>", tok, what)
		}
	}
}

// readEmpty reads up to the end of an element that must have no content
// but whitespace (XML Schema: an empty complex type).
func readEmpty(d xml.TokenReader, what string) error {
	text, err := readText(d, maxNumberText, what)
	if err != nil {
		return err
	}
	if strings.Trim(text, xmlSpace) != "" {
		return malformed("<%s> must be empty", what)
	}
	return nil
}

func tokenError(err error) error {
	if errors.Is(err, io.EOF) {
		return malformed("unexpected end of input")
	}
	return malformed("%v", err)
}

// base64TextLimit is the most base64 text accepted for n decoded bytes,
// with room for the whitespace the XEP's examples use.
func base64TextLimit(n int) int {
	return base64.StdEncoding.EncodedLen(n)*2 + 256
}

// textElement returns <local attr…>text</local> in the parent's namespace.
func textElement(local string, a []xml.Attr, text string) xml.TokenReader {
	return xmlstream.Wrap(xmlstream.Token(xml.CharData(text)), xml.StartElement{Name: xml.Name{Local: local}, Attr: a})
}

func uintAttr(name string, v uint32) xml.Attr {
	return xml.Attr{Name: xml.Name{Local: name}, Value: strconv.FormatUint(uint64(v), 10)}
}
