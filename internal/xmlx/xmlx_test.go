package xmlx_test

import (
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"testing"

	"hush.im/internal/xmlx"
)

var errTest = errors.New("test: malformed")

var strict = xmlx.Malformed(func(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errTest}, args...)...)
})

// open returns a decoder positioned after the start element of doc.
func open(t testing.TB, doc string) (*xml.Decoder, xml.StartElement) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(doc))
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("no start element in %q: %v", doc, err)
		}
		if s, ok := tok.(xml.StartElement); ok {
			return d, s
		}
	}
}

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		doc string
		ok  bool
	}{
		{`<a xmlns='urn:x'/>`, true},
		{`<a xmlns='urn:y'/>`, false},
		{`<b xmlns='urn:x'/>`, false},
		{`<a/>`, false},
	} {
		_, start := open(t, tc.doc)
		err := strict.CheckName(start, "urn:x", "a")
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, errTest)) {
			t.Errorf("%s: got %v, want ok=%v", tc.doc, err, tc.ok)
		}
	}
}

func TestAttrs(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want map[string]string
	}{
		{`<a id='1' xmlns='urn:x'/>`, map[string]string{"id": "1"}},
		{`<a id='1' kex='true' xmlns:p='urn:p'/>`, map[string]string{"id": "1", "kex": "true"}},
		{`<a/>`, map[string]string{}},
		{`<a other='1'/>`, nil},
		{`<a xmlns:p='urn:p' p:id='1'/>`, nil},
	} {
		_, start := open(t, tc.doc)
		got, err := strict.Attrs(start, "id", "kex")
		if tc.want == nil {
			if !errors.Is(err, errTest) {
				t.Errorf("%s: got %v, %v; want error", tc.doc, got, err)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: got %v, %v; want %v", tc.doc, got, err, tc.want)
		}
	}
	// encoding/xml rejects duplicate attributes itself; a hand-made start
	// element checks that Attrs does too.
	dup := xml.StartElement{Name: xml.Name{Local: "a"}, Attr: []xml.Attr{xmlx.UintAttr("id", 1), xmlx.UintAttr("id", 2)}}
	if _, err := strict.Attrs(dup, "id"); !errors.Is(err, errTest) {
		t.Errorf("duplicate attribute: got %v", err)
	}
}

func TestNextChild(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want []string // local names of the children; nil for an error
	}{
		{`<r> <a/> <!-- c --> <b>x</b> </r>`, []string{"a", "b"}},
		{`<r/>`, []string{}},
		{`<r>text<a/></r>`, nil},
		{`<r><?pi x?></r>`, nil},
		{`<r><a/>`, nil},
		{`<r></b>`, nil},
	} {
		d, _ := open(t, tc.doc)
		got := []string{}
		var err error
		for {
			var c *xml.StartElement
			if c, err = strict.NextChild(d); err != nil || c == nil {
				break
			}
			got = append(got, c.Name.Local)
			if err = d.Skip(); err != nil {
				break
			}
		}
		if tc.want == nil {
			if !errors.Is(err, errTest) {
				t.Errorf("%s: got %v, %v; want error", tc.doc, got, err)
			}
			continue
		}
		if err != nil || strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: got %v, %v; want %v", tc.doc, got, err, tc.want)
		}
	}
}

func TestReadText(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want string
		ok   bool
	}{
		{`<r>abc</r>`, "abc", true},
		{`<r>a<!-- c -->bc</r>`, "abc", true},
		{`<r/>`, "", true},
		{`<r>abcdefghi</r>`, "abcdefghi", true},
		{`<r>abcdefghij</r>`, "", false},
		{`<r>a<b/></r>`, "", false},
		{`<r>abc`, "", false},
	} {
		d, _ := open(t, tc.doc)
		got, err := strict.ReadText(d, 9, "r")
		if !tc.ok {
			if !errors.Is(err, errTest) {
				t.Errorf("%s: got %q, %v; want error", tc.doc, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.doc, got, err, tc.want)
		}
	}
}

func TestDecodeBase64(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"AAEC", "\x00\x01\x02", true},
		{" AA\n\tEC\r\n", "\x00\x01\x02", true},
		{"", "", true},
		{"AAE=", "\x00\x01", true},
		{"AAF=", "", false}, // non-zero trailing bits
		{"AAE", "", false},  // missing padding
		{"AA-_", "", false}, // URL alphabet
		{"AAECAw==", "", false},
		{"AAECAwQFBgcI", "", false},
	} {
		got, err := strict.DecodeBase64(tc.in, "key", 3)
		if !tc.ok {
			if !errors.Is(err, errTest) {
				t.Errorf("%q: got %x, %v; want error", tc.in, got, err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("%q: got %x, %v; want %x", tc.in, got, err, tc.want)
		}
	}
}

func TestEncode(t *testing.T) {
	if got := xmlx.EncodeBase64([]byte{0, 1}); got != "AAE=" {
		t.Errorf("EncodeBase64: got %q", got)
	}
	var b strings.Builder
	e := xml.NewEncoder(&b)
	tr := xmlx.TextElement("k", []xml.Attr{xmlx.UintAttr("id", 4294967295)}, "a<b")
	for {
		tok, err := tr.Token()
		if tok != nil {
			if err := e.EncodeToken(tok); err != nil {
				t.Fatal(err)
			}
		}
		if err != nil {
			break
		}
	}
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	if want := `<k id="4294967295">a&lt;b</k>`; b.String() != want {
		t.Errorf("TextElement: got %s, want %s", b.String(), want)
	}
}

// FuzzReader checks that the helpers never panic and that every error
// wraps the caller's sentinel.
func FuzzReader(f *testing.F) {
	for _, s := range []string{`<r> <a id='1'/>AAEC<!-- c --></r>`, `<r>text<b/></r>`, `<r><?pi?></r>`, `<r id='1' id='2'>`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		d := xml.NewDecoder(strings.NewReader(doc))
		for range 64 {
			c, err := strict.NextChild(d)
			if err != nil {
				if !errors.Is(err, errTest) {
					t.Fatalf("NextChild: %v does not wrap the sentinel", err)
				}
				return
			}
			if c == nil {
				continue
			}
			if _, err := strict.Attrs(*c, "id"); err != nil && !errors.Is(err, errTest) {
				t.Fatalf("Attrs: %v does not wrap the sentinel", err)
			}
			text, err := strict.ReadText(d, 64, c.Name.Local)
			if err != nil {
				if !errors.Is(err, errTest) {
					t.Fatalf("ReadText: %v does not wrap the sentinel", err)
				}
				return
			}
			if b, err := strict.DecodeBase64(text, "text", 32); err != nil && !errors.Is(err, errTest) {
				t.Fatalf("DecodeBase64: %v does not wrap the sentinel", err)
			} else if err == nil && xmlx.EncodeBase64(b) != xmlx.StripSpace(text) {
				t.Fatalf("DecodeBase64(%q) does not round-trip", text)
			}
		}
	})
}
