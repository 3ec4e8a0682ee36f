package sce

import (
	"encoding/xml"
	"strings"
	"unicode/utf8"
)

// isXMLChar reports whether r is a Char of XML 1.0 §2.2.
func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

// validText reports whether b is UTF-8 made only of XML 1.0 Chars.
func validText(b []byte) bool {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != 0x09 && c != 0x0A && c != 0x0D {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 || !isXMLChar(r) {
			return false
		}
		i += n
	}
	return true
}

// validString is validText for strings.
func validString(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != 0x09 && c != 0x0A && c != 0x0D {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || !isXMLChar(r) {
			return false
		}
		i += n
	}
	return true
}

// isWhitespace reports whether b is only XML white space (XML 1.0 §2.3 S).
func isWhitespace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// nameByte marks the ASCII bytes allowed in an XML NCName.
var nameByte = func() (t [utf8.RuneSelf]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['_'], t['-'], t['.'] = true, true, true
	return t
}()

// validName reports whether s can be written as a local name without
// changing the document's structure: an NCName in ASCII, and any XML Char
// beyond ASCII. Every name the decoder accepts passes.
func validName(s string) bool {
	if s == "" {
		return false
	}
	if c := s[0]; c < utf8.RuneSelf && (c == '-' || c == '.' || c >= '0' && c <= '9') {
		return false
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if !nameByte[c] {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || !isXMLChar(r) {
			return false
		}
		i += n
	}
	return true
}

// validNamespace reports whether s is usable as a namespace name: non-empty
// text without white space (namespace names are URI references, Namespaces
// in XML §2.2; legacy OMEMO's "eu.siacs.conversations.axolotl" has no
// scheme, so no stricter check).
func validNamespace(s string) bool {
	return s != "" && !strings.ContainsAny(s, " \t\r\n") && validString(s)
}

// isNSDecl reports whether an attribute declares a namespace.
func isNSDecl(n xml.Name) bool {
	return n.Space == "xmlns" || n.Space == "" && n.Local == "xmlns" ||
		n.Space == "http://www.w3.org/2000/xmlns/"
}

// checkAttrs validates attributes that are not namespace declarations:
// names, namespaces, values, and uniqueness (XML 1.0 §3.1 WFC: Unique Att
// Spec, after namespace resolution).
func checkAttrs(attrs []xml.Attr) bool {
	for i, a := range attrs {
		if isNSDecl(a.Name) || !validName(a.Name.Local) || !validString(a.Value) {
			return false
		}
		if a.Name.Space != "" && a.Name.Space != nsXML && !validNamespace(a.Name.Space) {
			return false
		}
		if len(attrs) <= 16 {
			for _, b := range attrs[:i] {
				if b.Name == a.Name {
					return false
				}
			}
		}
	}
	if len(attrs) > 16 {
		seen := make(map[xml.Name]struct{}, len(attrs))
		for _, a := range attrs {
			if _, dup := seen[a.Name]; dup {
				return false
			}
			seen[a.Name] = struct{}{}
		}
	}
	return true
}

// attrValue returns the value of the attribute with this name, and whether
// there is one.
func attrValue(attrs []xml.Attr, name xml.Name) (string, bool) {
	for _, a := range attrs {
		if a.Name == name {
			return a.Value, true
		}
	}
	return "", false
}
