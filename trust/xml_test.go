package trust_test

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"hush.im/trust"
	"mellium.im/xmlstream"
)

func marshal(t testing.TB, v xmlstream.WriterTo) string {
	t.Helper()
	var b bytes.Buffer
	e := xml.NewEncoder(&b)
	if _, err := v.WriteXML(e); err != nil {
		t.Fatal(err)
	}
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// firstStart returns a decoder positioned after the first start element.
func firstStart(s string) (*xml.Decoder, xml.StartElement, error) {
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, xml.StartElement{}, err
		}
		if start, ok := tok.(xml.StartElement); ok {
			return d, start, nil
		}
	}
}

func parseMessage(s string) (trust.Message, error) {
	d, start, err := firstStart(s)
	if err != nil {
		return nil, err
	}
	m, err := trust.ParseMessage(d, start)
	if err != nil {
		return nil, err
	}
	if tok, err := d.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the element: " + toString(tok))
	}
	return m, nil
}

func toString(tok xml.Token) string {
	if c, ok := tok.(xml.CharData); ok {
		return string(c)
	}
	return "token"
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func fill(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

var (
	sid   = fill(0x55, trust.SIDSize)
	sidB  = b64(sid)
	nonce = fill(0x66, trust.NonceSize)
	cmt   = fill(0x77, trust.CommitmentSize)
)

var sasTable = []struct {
	name string
	msg  trust.Message
	xml  string
}{
	{"commit", &trust.Commit{SID: sid, Keys: [][]byte{key(1), key(2)}, Commitment: cmt},
		`<commit xmlns="urn:hush:sas:0" sid="` + sidB + `"><key>` + b64(key(1)) + `</key><key>` + b64(key(2)) + `</key><commitment>` + b64(cmt) + `</commitment></commit>`},
	{"accept", &trust.Accept{SID: sid, Keys: [][]byte{key(9)}, Nonce: nonce},
		`<accept xmlns="urn:hush:sas:0" sid="` + sidB + `"><key>` + b64(key(9)) + `</key><nonce>` + b64(nonce) + `</nonce></accept>`},
	{"reveal", &trust.Reveal{SID: sid, Nonce: nonce},
		`<reveal xmlns="urn:hush:sas:0" sid="` + sidB + `"><nonce>` + b64(nonce) + `</nonce></reveal>`},
	{"cancel mismatch", &trust.Cancel{SID: sid, Reason: trust.ReasonMismatch},
		`<cancel xmlns="urn:hush:sas:0" sid="` + sidB + `" reason="mismatch"></cancel>`},
	{"cancel user", &trust.Cancel{SID: sid, Reason: trust.ReasonUser},
		`<cancel xmlns="urn:hush:sas:0" sid="` + sidB + `" reason="user"></cancel>`},
	{"cancel error", &trust.Cancel{SID: sid, Reason: trust.ReasonError},
		`<cancel xmlns="urn:hush:sas:0" sid="` + sidB + `" reason="error"></cancel>`},
}

func TestSASEncoding(t *testing.T) {
	for _, tc := range sasTable {
		t.Run(tc.name, func(t *testing.T) {
			if got := marshal(t, tc.msg); got != tc.xml {
				t.Fatalf("marshal:\n got %s\nwant %s", got, tc.xml)
			}
			m, err := parseMessage(tc.xml)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, tc.msg) {
				t.Fatalf("ParseMessage = %#v, want %#v", m, tc.msg)
			}
			// xml.Unmarshal through the type's UnmarshalXML, and
			// xml.Marshal through MarshalXML.
			fresh := reflect.New(reflect.TypeOf(tc.msg).Elem()).Interface()
			if err := xml.Unmarshal([]byte(tc.xml), fresh); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(fresh, tc.msg) {
				t.Fatalf("xml.Unmarshal = %#v", fresh)
			}
			out, err := xml.Marshal(tc.msg)
			if err != nil || string(out) != tc.xml {
				t.Fatalf("xml.Marshal = %s, %v", out, err)
			}
		})
	}
}

func TestSASParseErrors(t *testing.T) {
	k1, k2 := b64(key(1)), b64(key(2))
	n, c := b64(nonce), b64(cmt)
	open := `<commit xmlns="urn:hush:sas:0" sid="` + sidB + `">`
	for name, s := range map[string]string{
		"wrong namespace":      `<commit xmlns="urn:hush:sas:1" sid="` + sidB + `"><key>` + k1 + `</key><commitment>` + c + `</commitment></commit>`,
		"unknown element":      `<verify xmlns="urn:hush:sas:0" sid="` + sidB + `"/>`,
		"no sid":               `<reveal xmlns="urn:hush:sas:0"><nonce>` + n + `</nonce></reveal>`,
		"short sid":            `<reveal xmlns="urn:hush:sas:0" sid="AAAA"><nonce>` + n + `</nonce></reveal>`,
		"sid not base64":       `<reveal xmlns="urn:hush:sas:0" sid="!!!!"><nonce>` + n + `</nonce></reveal>`,
		"extra attribute":      `<reveal xmlns="urn:hush:sas:0" sid="` + sidB + `" x="1"><nonce>` + n + `</nonce></reveal>`,
		"duplicate attribute":  `<reveal xmlns="urn:hush:sas:0" sid="` + sidB + `" sid="` + sidB + `"><nonce>` + n + `</nonce></reveal>`,
		"no nonce":             `<reveal xmlns="urn:hush:sas:0" sid="` + sidB + `"></reveal>`,
		"two nonces":           `<reveal xmlns="urn:hush:sas:0" sid="` + sidB + `"><nonce>` + n + `</nonce><nonce>` + n + `</nonce></reveal>`,
		"key in reveal":        `<reveal xmlns="urn:hush:sas:0" sid="` + sidB + `"><key>` + k1 + `</key><nonce>` + n + `</nonce></reveal>`,
		"short nonce":          `<reveal xmlns="urn:hush:sas:0" sid="` + sidB + `"><nonce>AAAA</nonce></reveal>`,
		"nonce with space":     `<reveal xmlns="urn:hush:sas:0" sid="` + sidB + `"><nonce> ` + n + `</nonce></reveal>`,
		"non-canonical base64": `<reveal xmlns="urn:hush:sas:0" sid="` + sidB + `"><nonce>` + n[:42] + `B=</nonce></reveal>`,
		"text":                 `<reveal xmlns="urn:hush:sas:0" sid="` + sidB + `">x<nonce>` + n + `</nonce></reveal>`,
		"child in nonce":       `<reveal xmlns="urn:hush:sas:0" sid="` + sidB + `"><nonce><b/></nonce></reveal>`,
		"attribute on nonce":   `<reveal xmlns="urn:hush:sas:0" sid="` + sidB + `"><nonce a="b">` + n + `</nonce></reveal>`,
		"foreign child":        `<reveal xmlns="urn:hush:sas:0" sid="` + sidB + `"><nonce xmlns="urn:other">` + n + `</nonce></reveal>`,
		"truncated":            `<reveal xmlns="urn:hush:sas:0" sid="` + sidB + `"><nonce>` + n,
		"commit without keys":  open + `<commitment>` + c + `</commitment></commit>`,
		"keys unsorted":        open + `<key>` + k2 + `</key><key>` + k1 + `</key><commitment>` + c + `</commitment></commit>`,
		"key twice":            open + `<key>` + k1 + `</key><key>` + k1 + `</key><commitment>` + c + `</commitment></commit>`,
		"key after commitment": open + `<commitment>` + c + `</commitment><key>` + k1 + `</key></commit>`,
		"short key":            open + `<key>AAAA</key><commitment>` + c + `</commitment></commit>`,
		"nonce in commit":      open + `<key>` + k1 + `</key><nonce>` + n + `</nonce></commit>`,
		"commitment in accept": `<accept xmlns="urn:hush:sas:0" sid="` + sidB + `"><key>` + k1 + `</key><commitment>` + c + `</commitment></accept>`,
		"cancel no reason":     `<cancel xmlns="urn:hush:sas:0" sid="` + sidB + `"/>`,
		"cancel bad reason":    `<cancel xmlns="urn:hush:sas:0" sid="` + sidB + `" reason="bored"/>`,
		"cancel with child":    `<cancel xmlns="urn:hush:sas:0" sid="` + sidB + `" reason="user"><x/></cancel>`,
		"cancel with text":     `<cancel xmlns="urn:hush:sas:0" sid="` + sidB + `" reason="user">x</cancel>`,
		"processing inst":      `<reveal xmlns="urn:hush:sas:0" sid="` + sidB + `"><?x?><nonce>` + n + `</nonce></reveal>`,
	} {
		if _, err := parseMessage(s); !errors.Is(err, trust.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	// Too many keys.
	var b strings.Builder
	b.WriteString(open)
	for i := 0; i <= trust.MaxKeys; i++ {
		k := key(0)
		k[30], k[31] = byte(i>>8), byte(i)
		b.WriteString(`<key>` + b64(k) + `</key>`)
	}
	b.WriteString(`<commitment>` + c + `</commitment></commit>`)
	if _, err := parseMessage(b.String()); !errors.Is(err, trust.ErrMalformed) {
		t.Errorf("too many keys: %v", err)
	}
	// Whitespace and comments between children are fine.
	ok := "<reveal xmlns='urn:hush:sas:0' sid='" + sidB + "'>\n  <!-- c --><nonce>" + n + "</nonce>\n</reveal>"
	if _, err := parseMessage(ok); err != nil {
		t.Errorf("whitespace between children: %v", err)
	}
	// The types' UnmarshalXML refuse the other messages.
	for _, tc := range sasTable {
		for _, v := range []any{&trust.Commit{}, &trust.Accept{}, &trust.Reveal{}, &trust.Cancel{}} {
			if reflect.TypeOf(v) == reflect.TypeOf(tc.msg) {
				continue
			}
			if err := xml.Unmarshal([]byte(tc.xml), v); !errors.Is(err, trust.ErrMalformed) {
				t.Errorf("%T.UnmarshalXML(%s): %v, want ErrMalformed", v, tc.name, err)
			}
		}
	}
}
