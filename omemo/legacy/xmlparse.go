package legacy

import (
	"encoding/base64"
	"encoding/xml"
	"strconv"
	"strings"

	"hush.im/internal/xmlx"
)

// Token-level helpers shared by the XML payloads. They follow the XML
// schemas of XEP-0384 0.3 as python-oldmemo's oldmemo.etree validates them
// (xmlschema), accepting what that schema's types accept and nothing else.
// They never call crypto (DESIGN: codecs never call crypto).

// maxNumberText bounds the text of a numeric attribute before parsing
// (xs:unsignedInt allows leading zeros and surrounding whitespace).
const maxNumberText = 64

// strict holds the strict token-level helpers shared with the other codecs
// (internal/xmlx); its errors wrap ErrMalformed.
var strict = xmlx.Malformed(malformed)

// checkName checks that start is the element local in NS.
func checkName(start xml.StartElement, local string) error {
	return strict.CheckName(start, NS, local)
}

// parseUint32 parses an xs:unsignedInt: after whitespace collapsing, an
// optional "+" and decimal digits (leading zeros allowed), at most
// 2^32−1. This is the lexical space python-oldmemo's schemas accept; hush
// writes the canonical form only.
func parseUint32(s, what string) (uint32, error) {
	if len(s) > maxNumberText {
		return 0, malformed("%s too long", what)
	}
	t := strings.Trim(s, xmlx.Space)
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
	switch strings.Trim(s, xmlx.Space) {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, malformed("invalid %s %q", what, s)
}

// decodeSerializedKey decodes a libsignal public key: base64 of
// KeyType ‖ 32-byte Curve25519 key (python-oldmemo StateImpl.parse_public_key).
// It returns the raw 32 bytes.
func decodeSerializedKey(s, what string) ([]byte, error) {
	b, err := strict.DecodeBase64(s, what, SerializedKeySize)
	if err != nil {
		return nil, err
	}
	if len(b) != SerializedKeySize || b[0] != KeyType {
		return nil, malformed("%s is not a %d-byte 0x%02x-prefixed key", what, SerializedKeySize, KeyType)
	}
	return b[1:], nil
}

// encodeSerializedKey returns base64(KeyType ‖ key).
func encodeSerializedKey(key []byte) string {
	return xmlx.EncodeBase64(append([]byte{KeyType}, key...))
}

// readEmpty reads up to the end of an element that must have no content
// but whitespace (XML Schema: an empty complex type).
func readEmpty(d xml.TokenReader, what string) error {
	text, err := strict.ReadText(d, maxNumberText, what)
	if err != nil {
		return err
	}
	if strings.Trim(text, xmlx.Space) != "" {
		return malformed("<%s> must be empty", what)
	}
	return nil
}

// base64TextLimit is the most base64 text accepted for n decoded bytes,
// with room for the whitespace the XEP's examples use.
func base64TextLimit(n int) int {
	return base64.StdEncoding.EncodedLen(n)*2 + 256
}
