package omemo

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"strconv"
	"unicode/utf8"

	"hush.im/internal/xmlx"
)

// This file holds the strict token-level helpers shared by the XML payloads.
// They never call crypto (DESIGN: codecs never call crypto).

// malformed returns an error wrapping ErrMalformed with a description of
// what was wrong with public, unauthenticated XML.
func malformed(format string, args ...any) error {
	return fmt.Errorf("omemo: %w: "+format, append([]any{ErrMalformed}, args...)...)
}

// strict holds the strict token-level helpers shared with the other codecs
// (internal/xmlx); its errors wrap ErrMalformed.
var strict = xmlx.Malformed(malformed)

// checkName reports whether start is the element local in NS.
func checkName(start xml.StartElement, local string) error {
	return strict.CheckName(start, NS, local)
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

// decodeKey decodes a base64 key of exactly size bytes.
func decodeKey(s, what string, size int) ([]byte, error) {
	b, err := strict.DecodeBase64(s, what, size)
	if err != nil {
		return nil, err
	}
	if len(b) != size {
		return nil, malformed("%s is %d bytes, want %d", what, len(b), size)
	}
	return b, nil
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
