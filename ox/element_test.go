package ox

import (
	"encoding/xml"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"hush.im/sce"
)

var (
	fpr1 = Fingerprint{0x13, 0x57, 0xB0, 0x18, 0x65, 0xB2, 0x50, 0x3C, 0x18, 0x45, 0x3D, 0x20, 0x8C, 0xAC, 0x2A, 0x96, 0x78, 0x54, 0x8E, 0x35}
	fpr2 = Fingerprint{0x67, 0x81, 0x9B, 0x34, 0x3B, 0x2A, 0xB7, 0x0D, 0xED, 0x93, 0x20, 0x87, 0x2C, 0x64, 0x64, 0xAF, 0x2A, 0x8E, 0x4C, 0x02}
)

// encodingTests are {value, XML} pairs: the value marshals to exactly the
// XML, and the XML unmarshals to the value (XEP-0373 §3.1, §4.1, §4.2, §5.3;
// the metadata example is the XEP's).
var encodingTests = []struct {
	name  string
	value any
	xml   string
}{
	{"openpgp", &OpenPGP{Message: []byte("\x85\x01\x0cOpenPGP")}, `<openpgp xmlns="urn:xmpp:openpgp:0">hQEMT3BlblBHUA==</openpgp>`},
	{"public-keys-list", &PublicKeysList{Keys: []PubkeyMetadata{
		{Fingerprint: fpr1, Date: time.Date(2018, 3, 1, 15, 26, 12, 0, time.UTC)},
		{Fingerprint: fpr2, Date: time.Date(1953, 5, 16, 12, 0, 0, 0, time.UTC)},
	}}, `<public-keys-list xmlns="urn:xmpp:openpgp:0">` +
		`<pubkey-metadata v4-fingerprint="1357B01865B2503C18453D208CAC2A9678548E35" date="2018-03-01T15:26:12Z"></pubkey-metadata>` +
		`<pubkey-metadata v4-fingerprint="67819B343B2AB70DED9320872C6464AF2A8E4C02" date="1953-05-16T12:00:00Z"></pubkey-metadata>` +
		`</public-keys-list>`},
	{"empty public-keys-list", &PublicKeysList{}, `<public-keys-list xmlns="urn:xmpp:openpgp:0"></public-keys-list>`},
	{"pubkey", &Pubkey{Data: []byte{0x99, 0x01, 0x0d, 0x04}}, `<pubkey xmlns="urn:xmpp:openpgp:0"><data>mQENBA==</data></pubkey>`},
	{"secretkey", &SecretKey{Message: []byte{0xc3, 0x2e, 0x04, 0x09}}, `<secretkey xmlns="urn:xmpp:openpgp:0">wy4ECQ==</secretkey>`},
}

func TestEncoding(t *testing.T) {
	for _, tc := range encodingTests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := xml.Marshal(tc.value)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.xml {
				t.Errorf("marshal:\n got %s\nwant %s", b, tc.xml)
			}
			got := reflect.New(reflect.TypeOf(tc.value).Elem()).Interface()
			if err := xml.Unmarshal([]byte(tc.xml), got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.value) {
				t.Errorf("unmarshal: got %+v, want %+v", got, tc.value)
			}
			again, _ := xml.Marshal(got)
			if string(again) != tc.xml {
				t.Errorf("decode then encode changed the bytes:\n%s", again)
			}
		})
	}
}

// TestDecodeLenient covers what the XEPs' examples do that the encoder does
// not: white space around Base64, single quotes, offsets in dates, unknown
// extension children and the pre-0.5.0 date attribute on <pubkey/>.
func TestDecodeLenient(t *testing.T) {
	var o OpenPGP
	if err := xml.Unmarshal([]byte("<openpgp xmlns='urn:xmpp:openpgp:0'>\n  hQEM\n  T3BlblBHUA==\n</openpgp>"), &o); err != nil || string(o.Message) != "\x85\x01\x0cOpenPGP" {
		t.Errorf("openpgp with white space: %v %q", err, o.Message)
	}
	var l PublicKeysList
	err := xml.Unmarshal([]byte(`<public-keys-list xmlns='urn:xmpp:openpgp:0'>
  <pubkey-metadata v4-fingerprint='1357B01865B2503C18453D208CAC2A9678548E35' date='2018-03-01T16:26:12.5+01:00'/>
  <future xmlns='urn:example:future'/>
</public-keys-list>`), &l)
	if err != nil || len(l.Keys) != 1 || !l.Keys[0].Date.Equal(time.Date(2018, 3, 1, 15, 26, 12, 5e8, time.UTC)) {
		t.Errorf("metadata: %v %+v", err, l)
	}
	var p Pubkey
	if err := xml.Unmarshal([]byte("<pubkey xmlns='urn:xmpp:openpgp:0' date='2018-03-01T15:26:12Z'>\n <data>\n  mQENBA==\n </data>\n</pubkey>"), &p); err != nil || len(p.Data) != 4 {
		t.Errorf("pubkey: %v %x", err, p.Data)
	}
}

func TestDecodeBad(t *testing.T) {
	const (
		f1 = "1357B01865B2503C18453D208CAC2A9678548E35"
		ns = " xmlns='urn:xmpp:openpgp:0'"
	)
	for _, tc := range []struct {
		name string
		into any
		xml  string
		want error
	}{
		{"openpgp not base64", &OpenPGP{}, "<openpgp" + ns + ">not base64!</openpgp>", ErrInvalidElement},
		{"openpgp empty", &OpenPGP{}, "<openpgp" + ns + "/>", ErrInvalidElement},
		{"openpgp unpadded", &OpenPGP{}, "<openpgp" + ns + ">hQEMT3BlblBHUA</openpgp>", ErrInvalidElement},
		{"openpgp non-canonical", &OpenPGP{}, "<openpgp" + ns + ">hQEMT3BlblBHUB==</openpgp>", ErrInvalidElement},
		{"openpgp child", &OpenPGP{}, "<openpgp" + ns + ">hQEM<b/>T3BlblBHUA==</openpgp>", ErrInvalidElement},
		{"openpgp armored", &OpenPGP{}, "<openpgp" + ns + ">-----BEGIN PGP MESSAGE-----</openpgp>", ErrInvalidElement},
		{"openpgp wrong namespace", &OpenPGP{}, "<openpgp xmlns='urn:xmpp:openpgp:1'>hQEMT3BlblBHUA==</openpgp>", ErrInvalidElement},
		{"openpgp too large", &OpenPGP{}, "<openpgp" + ns + ">" + strings.Repeat("AAAA", MaxMessageSize/3+2) + "</openpgp>", ErrTooLarge},
		{"metadata lower-case fingerprint", &PublicKeysList{}, "<public-keys-list" + ns + "><pubkey-metadata v4-fingerprint='" + strings.ToLower(f1) + "' date='2018-03-01T15:26:12Z'/></public-keys-list>", ErrInvalidElement},
		{"metadata no fingerprint", &PublicKeysList{}, "<public-keys-list" + ns + "><pubkey-metadata date='2018-03-01T15:26:12Z'/></public-keys-list>", ErrInvalidElement},
		{"metadata no date", &PublicKeysList{}, "<public-keys-list" + ns + "><pubkey-metadata v4-fingerprint='" + f1 + "'/></public-keys-list>", ErrInvalidElement},
		{"metadata bad date", &PublicKeysList{}, "<public-keys-list" + ns + "><pubkey-metadata v4-fingerprint='" + f1 + "' date='2018-03-01'/></public-keys-list>", ErrInvalidElement},
		{"metadata date without zone", &PublicKeysList{}, "<public-keys-list" + ns + "><pubkey-metadata v4-fingerprint='" + f1 + "' date='2018-03-01T15:26:12'/></public-keys-list>", ErrInvalidElement},
		{"metadata twice", &PublicKeysList{}, "<public-keys-list" + ns + "><pubkey-metadata v4-fingerprint='" + f1 + "' date='2018-03-01T15:26:12Z'/><pubkey-metadata v4-fingerprint='" + f1 + "' date='2019-03-01T15:26:12Z'/></public-keys-list>", ErrInvalidElement},
		{"metadata unknown child", &PublicKeysList{}, "<public-keys-list" + ns + "><pubkey v4-fingerprint='" + f1 + "'/></public-keys-list>", ErrInvalidElement},
		{"metadata text", &PublicKeysList{}, "<public-keys-list" + ns + ">hello</public-keys-list>", ErrInvalidElement},
		{"metadata too many", &PublicKeysList{}, manyMetadata(MaxAnnouncedKeys + 1), ErrTooLarge},
		{"pubkey no data", &Pubkey{}, "<pubkey" + ns + "/>", ErrInvalidElement},
		{"pubkey two data", &Pubkey{}, "<pubkey" + ns + "><data>mQENBA==</data><data>mQENBA==</data></pubkey>", ErrInvalidElement},
		{"pubkey text", &Pubkey{}, "<pubkey" + ns + ">mQENBA==</pubkey>", ErrInvalidElement},
		{"pubkey bad base64", &Pubkey{}, "<pubkey" + ns + "><data>mQENBA</data></pubkey>", ErrInvalidElement},
		{"secretkey bad base64", &SecretKey{}, "<secretkey" + ns + ">%%%</secretkey>", ErrInvalidElement},
		{"secretkey wrong element", &SecretKey{}, "<pubkey" + ns + ">wy4ECQ==</pubkey>", ErrInvalidElement},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := xml.Unmarshal([]byte(tc.xml), tc.into); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	// Invalid values are not written.
	for name, l := range map[string]PublicKeysList{
		"duplicate": {Keys: []PubkeyMetadata{{fpr1, time.Now()}, {fpr1, time.Now()}}},
		"zero date": {Keys: []PubkeyMetadata{{Fingerprint: fpr1}}},
	} {
		if _, err := xml.Marshal(l); !errors.Is(err, ErrInvalidElement) {
			t.Errorf("marshal %s: %v", name, err)
		}
	}
}

func manyMetadata(n int) string {
	var b strings.Builder
	b.WriteString("<public-keys-list xmlns='urn:xmpp:openpgp:0'>")
	for i := range n {
		f := fpr1
		f[0], f[1] = byte(i), byte(i>>8)
		b.WriteString("<pubkey-metadata v4-fingerprint='" + f.String() + "' date='2018-03-01T15:26:12Z'/>")
	}
	b.WriteString("</public-keys-list>")
	return b.String()
}

// TestPubkeyVector reads the data node payload made with gpg
// --export-options export-minimal (testdata/bob-pubkey.xml).
func TestPubkeyVector(t *testing.T) {
	var p Pubkey
	if err := xml.Unmarshal(readTestdata(t, "bob-pubkey.xml"), &p); err != nil {
		t.Fatal(err)
	}
	want, err := ParseFingerprint(strings.TrimSpace(string(readTestdata(t, "bob.fpr"))))
	if err != nil {
		t.Fatal(err)
	}
	k, err := p.Key(want)
	if err != nil || !k.HasJID(mustJID("bob@example.org")) {
		t.Fatalf("Key: %v", err)
	}
	if _, err := p.Key(fpr1); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Key with the wrong node fingerprint: %v", err)
	}
	// A data node must not carry secret keys, nor several keys.
	sec, _ := vectorKey(t, "bob.sec").MarshalSecret()
	if _, err := (Pubkey{Data: sec}).Key(want); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("secret key in a data node: %v", err)
	}
	a, _ := vectorKey(t, "alice.pub").MarshalPublic()
	if _, err := (Pubkey{Data: append(p.Data, a...)}).Key(want); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("two keys in a data node: %v", err)
	}
	// What hush publishes is what it reads.
	pub, _ := k.MarshalPublic()
	b, _ := xml.Marshal(Pubkey{Data: pub})
	var back Pubkey
	if err := xml.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if k2, err := back.Key(want); err != nil || k2.Fingerprint() != want {
		t.Errorf("round trip: %v", err)
	}
	if got := ItemID(time.Date(2020, 1, 21, 10, 46, 21, 0, time.FixedZone("", 3600))); got != "2020-01-21T09:46:21Z" {
		t.Errorf("ItemID: %s", got)
	}
}

// TestParseOpenPGPTokens feeds ParseOpenPGP elements as tokens, the way
// they come out of an sce.Stanza, including split text and malformed token
// lists that no parser makes.
func TestParseOpenPGPTokens(t *testing.T) {
	start := xml.StartElement{Name: openpgpName}
	end := xml.EndElement{Name: openpgpName}
	child := xml.Name{Space: NS, Local: "b"}
	const want = "\x85\x01\x0cOpenPGP"
	for _, tc := range []struct {
		name string
		toks []xml.Token
		err  error
	}{
		{"one text", []xml.Token{start, xml.CharData("hQEMT3BlblBHUA=="), end}, nil},
		{"white space", []xml.Token{start, xml.CharData("\n hQEM\r\n\tT3BlblBHUA== \n"), end}, nil},
		{"split text", []xml.Token{start, xml.CharData("hQEM"), xml.CharData("T3BlblBHUA=="), end}, nil},
		{"empty", []xml.Token{start, end}, ErrInvalidElement},
		{"only white space", []xml.Token{start, xml.CharData(" \n"), end}, ErrInvalidElement},
		{"child", []xml.Token{start, xml.CharData("hQEM"), xml.StartElement{Name: child}, xml.EndElement{Name: child}, end}, ErrInvalidElement},
		{"text then no end", []xml.Token{start, xml.CharData("hQEMT3BlblBHUA=="), xml.StartElement{Name: child}}, ErrInvalidElement},
		{"no tokens", nil, ErrInvalidElement},
		{"start only", []xml.Token{start}, ErrInvalidElement},
		{"not canonical", []xml.Token{start, xml.CharData("hQEMT3BlblBHUB=="), end}, ErrInvalidElement},
		{"non-ASCII", []xml.Token{start, xml.CharData("hQEMT3Bl\u00a0blBHUA=="), end}, ErrInvalidElement},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseOpenPGP(sce.Element{Name: openpgpName, Tokens: tc.toks})
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("ParseOpenPGP: %q, %v; want %v", p.Message, err, tc.err)
				}
				return
			}
			if err != nil || string(p.Message) != want {
				t.Fatalf("ParseOpenPGP: %q, %v; want %q", p.Message, err, want)
			}
		})
	}
}
