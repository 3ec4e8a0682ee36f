package trust

import (
	"encoding/base64"
	"encoding/xml"
	"strings"

	"hush.im/internal/xmlx"
)

// This file holds the strict token-level helpers shared by the XML types.
// They never call crypto (DESIGN: codecs never call crypto).

// strict holds the strict token-level helpers shared with the other codecs
// (internal/xmlx); its errors wrap ErrMalformed.
var strict = xmlx.Malformed(malformed)

// attrs collects the attributes of start named in allowed; any other
// attribute (except namespace declarations) and any duplicate is an error.
// Every attribute in required must be present.
func attrs(start xml.StartElement, allowed []string, required ...string) (map[string]string, error) {
	m, err := strict.Attrs(start, allowed...)
	if err != nil {
		return nil, err
	}
	for _, name := range required {
		if _, ok := m[name]; !ok {
			return nil, malformed("<%s> without %s", start.Name.Local, name)
		}
	}
	return m, nil
}

// expectEnd reads up to the end of an element that must be empty.
func expectEnd(d xml.TokenReader, local string) error {
	child, err := strict.NextChild(d)
	if err != nil {
		return err
	}
	if child != nil {
		return malformed("unexpected <%s> in <%s>", child.Name.Local, local)
	}
	return nil
}

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
	b, err := xmlx.StrictBase64.DecodeString(s)
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
	text, err := strict.ReadText(d, base64.StdEncoding.EncodedLen(limit), what)
	if err != nil {
		return nil, err
	}
	if size < 0 {
		return decodeBase64(text, what, limit)
	}
	return decodeFixed(text, what, size)
}
