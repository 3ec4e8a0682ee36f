package trust

import (
	"bytes"
	"encoding/hex"
	"net/url"
	"strings"

	"mellium.im/xmpp/jid"
)

// MaxURILength bounds a Trust Message URI, in bytes: MaxOwnerKeys key
// identifiers of MaxKeyIDSize bytes in Base16 with their names, plus a JID
// and the encryption namespace, with room to spare.
const MaxURILength = MaxOwnerKeys*(len(";distrust=")+2*MaxKeyIDSize) + 4*MaxURISize

// URI returns the Trust Message URI of o (XEP-0434 §9.1.1, the
// "trust-message" query type of XEP-0147), for a QR code that another
// device scans for an initial authentication (XEP-0450 §4):
//
//	xmpp:bob@example.com?trust-message;encryption=urn:xmpp:omemo:2;trust=<hex>;distrust=<hex>
//
// Key identifiers are lowercase Base16.
func (o KeyOwner) URI(encryption string) string {
	var b strings.Builder
	b.WriteString("xmpp:")
	b.WriteString(url.PathEscape(o.JID.Bare().String()))
	b.WriteString("?trust-message;encryption=")
	b.WriteString(escapeValue(encryption))
	for _, k := range o.Keys {
		if k.Trust {
			b.WriteString(";trust=")
		} else {
			b.WriteString(";distrust=")
		}
		b.WriteString(hex.EncodeToString(k.Key))
	}
	return b.String()
}

// ParseTrustURI parses a Trust Message URI (XEP-0434 §9.1.1): the bare JID
// of the key owner as its path, "trust-message" as its query type, then
// encryption first and trust and distrust key identifiers in Base16. It is
// strict: no authority part, no other keys, 1 to MaxOwnerKeys key
// identifiers of 1 to MaxKeyIDSize bytes, none twice. Errors wrap
// ErrMalformed.
//
// XEP-0434 §9.1.1: only a URI from a trusted source (a QR code shown by
// the peer's device, scanned in person) should be used, and the user
// should confirm before its keys are marked verified or distrusted.
func ParseTrustURI(uri string) (encryption string, owner KeyOwner, err error) {
	if len(uri) > MaxURILength {
		return "", owner, malformed("trust message URI longer than %d bytes", MaxURILength)
	}
	rest, ok := strings.CutPrefix(uri, "xmpp:")
	if !ok || strings.HasPrefix(rest, "//") {
		return "", owner, malformed("not an xmpp: URI without authority")
	}
	path, query, ok := strings.Cut(rest, "?")
	if !ok {
		return "", owner, malformed("URI without query")
	}
	if strings.ContainsRune(query, '#') {
		return "", owner, malformed("URI with fragment")
	}
	p, err := url.PathUnescape(path)
	if err != nil {
		return "", owner, malformed("invalid URI path")
	}
	j, err := jid.Parse(p)
	if err != nil || j.Resourcepart() != "" {
		return "", owner, malformed("URI path is not a bare JID")
	}
	owner.JID = j
	pairs := strings.Split(query, ";")
	if pairs[0] != "trust-message" {
		return "", owner, malformed("query type is not trust-message")
	}
	if len(pairs) < 3 {
		return "", owner, malformed("trust message URI without encryption or keys")
	}
	enc, ok := strings.CutPrefix(pairs[1], "encryption=")
	if !ok {
		return "", owner, malformed("first key-value pair is not encryption")
	}
	if encryption, err = url.PathUnescape(enc); err != nil || encryption == "" || len(encryption) > MaxURISize {
		return "", owner, malformed("invalid encryption")
	}
	if len(pairs)-2 > MaxOwnerKeys {
		return "", owner, malformed("more than %d keys", MaxOwnerKeys)
	}
	for _, pair := range pairs[2:] {
		name, value, _ := strings.Cut(pair, "=")
		if name != "trust" && name != "distrust" {
			return "", owner, malformed("unexpected key %q", name)
		}
		if value == "" || len(value) > 2*MaxKeyIDSize {
			return "", owner, malformed("key identifier empty or longer than %d bytes", MaxKeyIDSize)
		}
		k, err := hex.DecodeString(value)
		if err != nil {
			return "", owner, malformed("key identifier is not Base16")
		}
		for _, d := range owner.Keys {
			if bytes.Equal(d.Key, k) {
				return "", owner, malformed("key listed twice")
			}
		}
		owner.Keys = append(owner.Keys, KeyDecision{Key: k, Trust: name == "trust"})
	}
	return encryption, owner, nil
}

// escapeValue percent-encodes a URI query value: RFC 5122 §2.2 allows
// unreserved characters only, but XEP-0434's example writes the ':' of
// namespaces as is, and so does this.
func escapeValue(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == ':':
			b.WriteByte(c)
		default:
			b.WriteString("%" + strings.ToUpper(hex.EncodeToString([]byte{c})))
		}
	}
	return b.String()
}
