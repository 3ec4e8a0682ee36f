package trust_test

import (
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"

	"hush.im/omemo"
	"hush.im/trust"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// xepURI is XEP-0434 §9.1.1's example.
const xepURI = "xmpp:bob@example.com?trust-message;encryption=urn:xmpp:omemo:2;trust=623548d3835c6d33ef5cb680f7944ef381cf712bf23a0119dabe5c4f252cd02f;distrust=b423f5088de9a924d51b31581723d850c7cc67d0a4fe6b267c3d301ff56d2413;distrust=d9f849b6b828309c5f2c8df4f38fd891887da5aaa24a22c50d52f69b4a80817e"

func TestTrustURI(t *testing.T) {
	enc, o, err := trust.ParseTrustURI(xepURI)
	if err != nil {
		t.Fatal(err)
	}
	want := trust.KeyOwner{JID: bob, Keys: []trust.KeyDecision{
		{Key: unhex(t, "623548d3835c6d33ef5cb680f7944ef381cf712bf23a0119dabe5c4f252cd02f"), Trust: true},
		{Key: unhex(t, "b423f5088de9a924d51b31581723d850c7cc67d0a4fe6b267c3d301ff56d2413")},
		{Key: unhex(t, "d9f849b6b828309c5f2c8df4f38fd891887da5aaa24a22c50d52f69b4a80817e")},
	}}
	if enc != omemo.NS || !reflect.DeepEqual(o, want) {
		t.Fatalf("ParseTrustURI = %q, %+v", enc, o)
	}
	if got := want.URI(omemo.NS); got != xepURI {
		t.Fatalf("URI:\n got %s\nwant %s", got, xepURI)
	}
	// The key identifiers are the same as XEP-0434 §4's example's (base64
	// there): the two examples describe the same keys.
	if b64(o.Keys[0].Key) != "YjVI04NcbTPvXLaA95RO84HPcSvyOgEZ2r5cTyUs0C8=" {
		t.Errorf("Base16 and base64 examples disagree")
	}
	// Upper-case Base16 is accepted.
	if _, o2, err := trust.ParseTrustURI(strings.ToUpper(xepURI[:5]) + xepURI[5:]); err == nil {
		t.Errorf("upper-case scheme accepted: %+v", o2)
	}
	up := strings.Replace(xepURI, "623548d3", "623548D3", 1)
	if _, o2, err := trust.ParseTrustURI(up); err != nil || !reflect.DeepEqual(o2, want) {
		t.Errorf("upper-case Base16: %v", err)
	}
}

func TestTrustURIErrors(t *testing.T) {
	k := hex.EncodeToString(key(1))
	for name, s := range map[string]string{
		"other scheme":    "https://bob@example.com?trust-message;encryption=e;trust=" + k,
		"authority":       "xmpp://alice@example.org/bob@example.com?trust-message;encryption=e;trust=" + k,
		"no query":        "xmpp:bob@example.com",
		"other query":     "xmpp:bob@example.com?message;body=hi",
		"no keys":         "xmpp:bob@example.com?trust-message;encryption=e",
		"no encryption":   "xmpp:bob@example.com?trust-message;trust=" + k,
		"encryption late": "xmpp:bob@example.com?trust-message;trust=" + k + ";encryption=e",
		"empty enc":       "xmpp:bob@example.com?trust-message;encryption=;trust=" + k,
		"full JID":        "xmpp:bob@example.com/phone?trust-message;encryption=e;trust=" + k,
		"bad JID":         "xmpp:@?trust-message;encryption=e;trust=" + k,
		"bad escape":      "xmpp:bob%zz@example.com?trust-message;encryption=e;trust=" + k,
		"unknown key":     "xmpp:bob@example.com?trust-message;encryption=e;maybe=" + k,
		"empty key":       "xmpp:bob@example.com?trust-message;encryption=e;trust=",
		"odd hex":         "xmpp:bob@example.com?trust-message;encryption=e;trust=abc",
		"not hex":         "xmpp:bob@example.com?trust-message;encryption=e;trust=zz",
		"key too long":    "xmpp:bob@example.com?trust-message;encryption=e;trust=" + strings.Repeat("ab", trust.MaxKeyIDSize+1),
		"key twice":       "xmpp:bob@example.com?trust-message;encryption=e;trust=" + k + ";distrust=" + k,
		"fragment":        "xmpp:bob@example.com?trust-message;encryption=e;trust=" + k + "#x",
		"too many keys":   "xmpp:bob@example.com?trust-message;encryption=e" + strings.Repeat(";trust=00", trust.MaxOwnerKeys+1),
		"too long":        "xmpp:bob@example.com?trust-message;encryption=" + strings.Repeat("e", trust.MaxURILength),
	} {
		if _, _, err := trust.ParseTrustURI(s); !errors.Is(err, trust.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// FuzzTrustURI: the URI parser never panics, fails only with
// ErrMalformed, and what it accepts re-encodes to a URI that parses to the
// same owner.
func FuzzTrustURI(f *testing.F) {
	f.Add(xepURI)
	f.Add("xmpp:bob@example.com?trust-message;encryption=e;trust=00")
	f.Fuzz(func(t *testing.T, s string) {
		enc, o, err := trust.ParseTrustURI(s)
		if err != nil {
			if !errors.Is(err, trust.ErrMalformed) {
				t.Fatalf("error not wrapping ErrMalformed: %v", err)
			}
			return
		}
		u := o.URI(enc)
		enc2, o2, err := trust.ParseTrustURI(u)
		if err != nil {
			t.Fatalf("re-parsing %s: %v", u, err)
		}
		if enc2 != enc || !reflect.DeepEqual(o, o2) {
			t.Fatalf("round trip changed %q %+v into %q %+v", enc, o, enc2, o2)
		}
	})
}
