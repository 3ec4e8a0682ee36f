package omemo

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"hush.im/internal/xmlx/xmlxtest"
	"mellium.im/xmpp/jid"
)

func rep(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

var (
	testIK   = rep(1, 32)
	testSPK  = rep(2, 32)
	testSPKS = rep(3, 64)
)

func TestEncodingDeviceList(t *testing.T) {
	xmlxtest.RunEncodingTests(t, []xmlxtest.EncodingCase{
		{Value: DeviceList{}, XML: `<devices xmlns="urn:xmpp:omemo:2"></devices>`},
		{Value: DeviceList{Devices: []Device{{ID: 1}, {ID: MaxDeviceID}}},
			XML: `<devices xmlns="urn:xmpp:omemo:2"><device id="1"></device><device id="2147483647"></device></devices>`},
		{Value: DeviceList{Devices: []Device{{ID: 12345, Label: "Dino on Lenovo Thinkpad T495", LabelSig: rep(9, 64)}}},
			XML: `<devices xmlns="urn:xmpp:omemo:2"><device id="12345" label="Dino on Lenovo Thinkpad T495" labelsig="` + b64(rep(9, 64)) + `"></device></devices>`},
		{Value: DeviceList{Devices: []Device{{ID: 7, Label: "<&'\">"}}},
			XML: `<devices xmlns="urn:xmpp:omemo:2"><device id="7" label="&lt;&amp;&#39;&#34;&gt;"></device></devices>`},
	})
}

func TestEncodingBundle(t *testing.T) {
	xmlxtest.RunEncodingTests(t, []xmlxtest.EncodingCase{
		{Value: Bundle{SignedPreKeyID: 1, SignedPreKey: testSPK, SignedPreKeySignature: testSPKS, IdentityKey: testIK,
			PreKeys: []PreKey{{ID: 1, Key: rep(10, 32)}, {ID: 100, Key: rep(11, 32)}}},
			XML: `<bundle xmlns="urn:xmpp:omemo:2"><spk id="1">` + b64(testSPK) + `</spk><spks>` + b64(testSPKS) +
				`</spks><ik>` + b64(testIK) + `</ik><prekeys><pk id="1">` + b64(rep(10, 32)) + `</pk><pk id="100">` +
				b64(rep(11, 32)) + `</pk></prekeys></bundle>`},
		// Prekey id 0 parses (Converse.js publishes it); it is never chosen.
		{Value: Bundle{SignedPreKeyID: 0, SignedPreKey: testSPK, SignedPreKeySignature: testSPKS, IdentityKey: testIK,
			PreKeys: []PreKey{{ID: 0, Key: rep(10, 32)}}},
			XML: `<bundle xmlns="urn:xmpp:omemo:2"><spk id="0">` + b64(testSPK) + `</spk><spks>` + b64(testSPKS) +
				`</spks><ik>` + b64(testIK) + `</ik><prekeys><pk id="0">` + b64(rep(10, 32)) + `</pk></prekeys></bundle>`},
	})
}

func TestEncodingEncrypted(t *testing.T) {
	juliet := jid.MustParse("juliet@capulet.lit")
	romeo := jid.MustParse("romeo@montague.lit")
	xmlxtest.RunEncodingTests(t, []xmlxtest.EncodingCase{
		{Value: Encrypted{SID: 27183, Keys: []Keys{
			{JID: juliet, Keys: []Key{{RID: 31415, Data: []byte("a")}}},
			{JID: romeo, Keys: []Key{{RID: 1337, Data: []byte("b")}, {RID: 12321, KEX: true, Data: []byte("c")}}},
		}, Payload: []byte("payload")},
			XML: `<encrypted xmlns="urn:xmpp:omemo:2"><header sid="27183"><keys jid="juliet@capulet.lit"><key rid="31415">YQ==</key></keys>` +
				`<keys jid="romeo@montague.lit"><key rid="1337">Yg==</key><key rid="12321" kex="true">Yw==</key></keys></header>` +
				`<payload>cGF5bG9hZA==</payload></encrypted>`},
		// Empty OMEMO message: no payload.
		{Value: Encrypted{SID: 1, Keys: []Keys{{JID: juliet, Keys: []Key{{RID: 2, Data: []byte{0}}}}}},
			XML: `<encrypted xmlns="urn:xmpp:omemo:2"><header sid="1"><keys jid="juliet@capulet.lit"><key rid="2">AA==</key></keys></header></encrypted>`},
	})
}

// TestKEXNeverFalse checks kex='false' is never written: python-omemo
// reads any kex attribute as true.
func TestKEXNeverFalse(t *testing.T) {
	e := Encrypted{SID: 1, Keys: []Keys{{JID: jid.MustParse("a@b"), Keys: []Key{{RID: 2, KEX: false, Data: []byte{1}}}}}}
	out, err := xml.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("kex")) {
		t.Fatalf("kex attribute written for KEX=false: %s", out)
	}
}

func TestKEXValues(t *testing.T) {
	for _, tc := range []struct {
		attr string
		want bool
		ok   bool
	}{
		{``, false, true},
		{` kex="true"`, true, true},
		{` kex="1"`, true, true},
		{` kex="false"`, false, true},
		{` kex="0"`, false, true},
		{` kex="yes"`, false, false},
		{` kex=""`, false, false},
		{` kex="TRUE"`, false, false},
	} {
		x := `<encrypted xmlns="urn:xmpp:omemo:2"><header sid="1"><keys jid="a@b"><key rid="2"` + tc.attr + `>AQ==</key></keys></header></encrypted>`
		var e Encrypted
		err := xml.Unmarshal([]byte(x), &e)
		if (err == nil) != tc.ok {
			t.Errorf("kex%s: err = %v", tc.attr, err)
			continue
		}
		if err == nil && e.Keys[0].Keys[0].KEX != tc.want {
			t.Errorf("kex%s: KEX = %v, want %v", tc.attr, e.Keys[0].Keys[0].KEX, tc.want)
		}
	}
}

// TestPythonVectors parses XML written by python-twomemo's etree helpers
// (testdata/gen_python_xml.py).
func TestPythonVectors(t *testing.T) {
	read := func(name string, v any) {
		t.Helper()
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if err := xml.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	var dl DeviceList
	read("python-devices.xml", &dl)
	want := DeviceList{Devices: []Device{{ID: 1}, {ID: MaxDeviceID, Label: "Gajim on Debian"}, {ID: 42}}}
	if !reflect.DeepEqual(dl, want) {
		t.Errorf("devices: got %#v", dl)
	}

	var b Bundle
	read("python-bundle.xml", &b)
	if b.SignedPreKeyID != 7 || !bytes.Equal(b.SignedPreKey, rep(2, 32)) || !bytes.Equal(b.SignedPreKeySignature, rep(3, 64)) ||
		!bytes.Equal(b.IdentityKey, rep(1, 32)) || len(b.PreKeys) != 3 {
		t.Errorf("bundle: got %#v", b)
	}
	for id, k := range map[uint32]byte{1: 10, 2: 11, 100: 12} {
		if !bytes.Equal(b.PreKey(id), rep(k, 32)) {
			t.Errorf("bundle: pk %d = %x", id, b.PreKey(id))
		}
	}

	var e Encrypted
	read("python-encrypted.xml", &e)
	if e.SID != 27183 || len(e.Keys) != 2 || !bytes.Equal(e.Payload, []byte(string(rangeBytes(32)))) {
		t.Errorf("encrypted: got %#v", e)
	}
	if k := e.Find(jid.MustParse("romeo@montague.lit"), 1337); k == nil || !k.KEX {
		t.Errorf("encrypted: romeo/1337 = %#v", k)
	}
	if k := e.Find(jid.MustParse("juliet@capulet.lit"), 31415); k == nil || k.KEX || len(k.Data) != 58 {
		t.Errorf("encrypted: juliet/31415 = %#v", k)
	}

	var empty Encrypted
	read("python-encrypted-empty.xml", &empty)
	if empty.Payload != nil || len(empty.Keys) != 1 {
		t.Errorf("empty: got %#v", empty)
	}
}

func rangeBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func bundleXML(spk, spks, ik, prekeys string) string {
	return `<bundle xmlns="urn:xmpp:omemo:2">` + spk + spks + ik + prekeys + `</bundle>`
}

var (
	okSPK  = `<spk id="1">` + b64(testSPK) + `</spk>`
	okSPKS = `<spks>` + b64(testSPKS) + `</spks>`
	okIK   = `<ik>` + b64(testIK) + `</ik>`
	okPKs  = `<prekeys><pk id="1">` + b64(rep(10, 32)) + `</pk></prekeys>`
)

func manyDevices(n int) string {
	var b strings.Builder
	b.WriteString(`<devices xmlns="urn:xmpp:omemo:2">`)
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, `<device id="%d"/>`, i)
	}
	return b.String() + `</devices>`
}

func manyPreKeys(n int) string {
	var b strings.Builder
	b.WriteString(`<prekeys>`)
	for i := 1; i <= n; i++ {
		k := make([]byte, 32)
		k[0], k[1] = byte(i), byte(i>>8)
		fmt.Fprintf(&b, `<pk id="%d">%s</pk>`, i, b64(k))
	}
	return b.String() + `</prekeys>`
}

func encXML(inner string) string {
	return `<encrypted xmlns="urn:xmpp:omemo:2">` + inner + `</encrypted>`
}

const okKeys = `<keys jid="a@b"><key rid="2">AQ==</key></keys>`

func TestParseErrors(t *testing.T) {
	type tc struct {
		name string
		xml  string
	}
	devices := []tc{
		{"wrong ns", `<devices xmlns="urn:xmpp:omemo:1"></devices>`},
		{"wrong name", `<device xmlns="urn:xmpp:omemo:2"></device>`},
		{"id 0", `<devices xmlns="urn:xmpp:omemo:2"><device id="0"/></devices>`},
		{"id 2^31", `<devices xmlns="urn:xmpp:omemo:2"><device id="2147483648"/></devices>`},
		{"id 2^32", `<devices xmlns="urn:xmpp:omemo:2"><device id="4294967296"/></devices>`},
		{"id negative", `<devices xmlns="urn:xmpp:omemo:2"><device id="-1"/></devices>`},
		{"id plus", `<devices xmlns="urn:xmpp:omemo:2"><device id="+1"/></devices>`},
		{"id leading zero", `<devices xmlns="urn:xmpp:omemo:2"><device id="01"/></devices>`},
		{"id space", `<devices xmlns="urn:xmpp:omemo:2"><device id=" 1"/></devices>`},
		{"id missing", `<devices xmlns="urn:xmpp:omemo:2"><device/></devices>`},
		{"duplicate id", `<devices xmlns="urn:xmpp:omemo:2"><device id="5"/><device id="5"/></devices>`},
		{"unknown attr", `<devices xmlns="urn:xmpp:omemo:2"><device id="5" foo="x"/></devices>`},
		{"ns attr", `<devices xmlns="urn:xmpp:omemo:2" xmlns:x="urn:x"><device id="5" x:label="x"/></devices>`},
		{"unknown child", `<devices xmlns="urn:xmpp:omemo:2"><device id="5"/><foo/></devices>`},
		{"child of device", `<devices xmlns="urn:xmpp:omemo:2"><device id="5"><x/></device></devices>`},
		{"text", `<devices xmlns="urn:xmpp:omemo:2">x<device id="5"/></devices>`},
		{"foreign child", `<devices xmlns="urn:xmpp:omemo:2"><device xmlns="urn:x" id="5"/></devices>`},
		{"too many", manyDevices(MaxDevices + 1)},
		{"labelsig not base64", `<devices xmlns="urn:xmpp:omemo:2"><device id="5" label="x" labelsig="!!"/></devices>`},
		{"labelsig without label", `<devices xmlns="urn:xmpp:omemo:2"><device id="5" labelsig="AA=="/></devices>`},
		{"label too long", `<devices xmlns="urn:xmpp:omemo:2"><device id="5" label="` + strings.Repeat("a", MaxLabelSize+1) + `"/></devices>`},
		{"truncated", `<devices xmlns="urn:xmpp:omemo:2"><device id="5"/>`},
	}
	bundles := []tc{
		{"no spk", bundleXML("", okSPKS, okIK, okPKs)},
		{"no spks", bundleXML(okSPK, "", okIK, okPKs)},
		{"no ik", bundleXML(okSPK, okSPKS, "", okPKs)},
		{"no prekeys", bundleXML(okSPK, okSPKS, okIK, "")},
		{"empty prekeys", bundleXML(okSPK, okSPKS, okIK, `<prekeys></prekeys>`)},
		{"dup spk", bundleXML(okSPK+okSPK, okSPKS, okIK, okPKs)},
		{"dup ik", bundleXML(okSPK, okSPKS, okIK+okIK, okPKs)},
		{"dup prekeys", bundleXML(okSPK, okSPKS, okIK, okPKs+okPKs)},
		{"spk 31 bytes", bundleXML(`<spk id="1">`+b64(rep(2, 31))+`</spk>`, okSPKS, okIK, okPKs)},
		{"spk 33 bytes", bundleXML(`<spk id="1">`+b64(rep(2, 33))+`</spk>`, okSPKS, okIK, okPKs)},
		{"spk 0x05 prefix", bundleXML(`<spk id="1">`+b64(append([]byte{5}, testSPK...))+`</spk>`, okSPKS, okIK, okPKs)},
		{"spk no id", bundleXML(`<spk>`+b64(testSPK)+`</spk>`, okSPKS, okIK, okPKs)},
		{"spks 63 bytes", bundleXML(okSPK, `<spks>`+b64(rep(3, 63))+`</spks>`, okIK, okPKs)},
		{"ik 31 bytes", bundleXML(okSPK, okSPKS, `<ik>`+b64(rep(1, 31))+`</ik>`, okPKs)},
		{"ik bad base64", bundleXML(okSPK, okSPKS, `<ik>AQEB*</ik>`, okPKs)},
		{"ik unpadded", bundleXML(okSPK, okSPKS, `<ik>`+strings.TrimRight(b64(testIK), "=")+`</ik>`, okPKs)},
		{"ik non-canonical bits", bundleXML(okSPK, okSPKS, `<ik>`+b64(testIK)[:42]+`F=</ik>`, okPKs)},
		{"ik url base64", bundleXML(okSPK, okSPKS, `<ik>`+base64.URLEncoding.EncodeToString(rep(0xfb, 32))+`</ik>`, okPKs)},
		{"pk wrong size", bundleXML(okSPK, okSPKS, okIK, `<prekeys><pk id="1">AQ==</pk></prekeys>`)},
		{"pk no id", bundleXML(okSPK, okSPKS, okIK, `<prekeys><pk>`+b64(rep(10, 32))+`</pk></prekeys>`)},
		{"pk dup id", bundleXML(okSPK, okSPKS, okIK, `<prekeys><pk id="1">`+b64(rep(10, 32))+`</pk><pk id="1">`+b64(rep(11, 32))+`</pk></prekeys>`)},
		{"pk dup key", bundleXML(okSPK, okSPKS, okIK, `<prekeys><pk id="1">`+b64(rep(10, 32))+`</pk><pk id="2">`+b64(rep(10, 32))+`</pk></prekeys>`)},
		{"pk child element", bundleXML(okSPK, okSPKS, okIK, `<prekeys><pk id="1"><x/></pk></prekeys>`)},
		{"too many prekeys", bundleXML(okSPK, okSPKS, okIK, manyPreKeys(MaxBundlePreKeys+1))},
		{"unknown child", bundleXML(okSPK, okSPKS, okIK, okPKs+`<x/>`)},
		{"huge text", bundleXML(`<spk id="1">`+strings.Repeat("A", 1<<12)+`</spk>`, okSPKS, okIK, okPKs)},
	}
	encrypted := []tc{
		{"no header", encXML(`<payload>AQ==</payload>`)},
		{"two headers", encXML(`<header sid="1">` + okKeys + `</header><header sid="1">` + okKeys + `</header>`)},
		{"no sid", encXML(`<header>` + okKeys + `</header>`)},
		{"sid 0", encXML(`<header sid="0">` + okKeys + `</header>`)},
		{"sid big", encXML(`<header sid="2147483648">` + okKeys + `</header>`)},
		{"no keys", encXML(`<header sid="1"></header>`)},
		{"empty keys", encXML(`<header sid="1"><keys jid="a@b"></keys></header>`)},
		{"keys no jid", encXML(`<header sid="1"><keys><key rid="2">AQ==</key></keys></header>`)},
		{"keys full jid", encXML(`<header sid="1"><keys jid="a@b/c"><key rid="2">AQ==</key></keys></header>`)},
		{"keys bad jid", encXML(`<header sid="1"><keys jid="@"><key rid="2">AQ==</key></keys></header>`)},
		{"dup jid", encXML(`<header sid="1">` + okKeys + okKeys + `</header>`)},
		{"dup rid", encXML(`<header sid="1"><keys jid="a@b"><key rid="2">AQ==</key><key rid="2">AQ==</key></keys></header>`)},
		{"rid 0", encXML(`<header sid="1"><keys jid="a@b"><key rid="0">AQ==</key></keys></header>`)},
		{"no rid", encXML(`<header sid="1"><keys jid="a@b"><key>AQ==</key></keys></header>`)},
		{"empty key", encXML(`<header sid="1"><keys jid="a@b"><key rid="2"></key></keys></header>`)},
		{"key bad base64", encXML(`<header sid="1"><keys jid="a@b"><key rid="2">A</key></keys></header>`)},
		{"key too big", encXML(`<header sid="1"><keys jid="a@b"><key rid="2">` + b64(make([]byte, MaxKeyDataSize+1)) + `</key></keys></header>`)},
		{"empty payload", encXML(`<header sid="1">` + okKeys + `</header><payload></payload>`)},
		{"two payloads", encXML(`<header sid="1">` + okKeys + `</header><payload>AQ==</payload><payload>AQ==</payload>`)},
		{"payload bad base64", encXML(`<header sid="1">` + okKeys + `</header><payload>AQ=</payload>`)},
		{"unknown child", encXML(`<header sid="1">` + okKeys + `</header><foo/>`)},
		{"foreign child", encXML(`<header sid="1">` + okKeys + `</header><payload xmlns="urn:x">AQ==</payload>`)},
		{"unknown attr", `<encrypted xmlns="urn:xmpp:omemo:2" v="1"><header sid="1">` + okKeys + `</header></encrypted>`},
		{"unknown key attr", encXML(`<header sid="1"><keys jid="a@b"><key rid="2" prekey="true">AQ==</key></keys></header>`)},
		{"old namespace", `<encrypted xmlns="eu.siacs.conversations.axolotl"><header sid="1">` + okKeys + `</header></encrypted>`},
	}
	run := func(kind string, cases []tc, v func() any) {
		for _, c := range cases {
			err := xml.Unmarshal([]byte(c.xml), v())
			if err == nil {
				t.Errorf("%s/%s: no error", kind, c.name)
				continue
			}
			if c.name != "truncated" && !errors.Is(err, ErrMalformed) {
				t.Errorf("%s/%s: error %v does not wrap ErrMalformed", kind, c.name, err)
			}
		}
	}
	run("devices", devices, func() any { return new(DeviceList) })
	run("bundle", bundles, func() any { return new(Bundle) })
	run("encrypted", encrypted, func() any { return new(Encrypted) })
}

// TestParseLenient covers inputs that are valid by the schema and must be
// accepted even though they are not what this package writes.
func TestParseLenient(t *testing.T) {
	for _, x := range []string{
		// xs:all: any order.
		bundleXML(okPKs, okIK, okSPKS, okSPK),
		// Whitespace in base64 and between elements, a prefix, comments.
		`<o:bundle xmlns:o="urn:xmpp:omemo:2">
		  <o:spk id="1">` + b64(testSPK)[:20] + "\n  " + b64(testSPK)[20:] + `</o:spk>
		  <!-- c --><o:spks>` + b64(testSPKS) + `</o:spks>
		  <o:ik> ` + b64(testIK) + ` </o:ik>
		  <o:prekeys> <o:pk id="4294967295">` + b64(rep(10, 32)) + `</o:pk> </o:prekeys>
		</o:bundle>`,
		bundleXML(okSPK, okSPKS, okIK, manyPreKeys(MaxBundlePreKeys)),
	} {
		var b Bundle
		if err := xml.Unmarshal([]byte(x), &b); err != nil {
			t.Errorf("%.80s…: %v", x, err)
		}
	}
	var l DeviceList
	if err := xml.Unmarshal([]byte(manyDevices(MaxDevices)), &l); err != nil || len(l.Devices) != MaxDevices {
		t.Errorf("MaxDevices: %v", err)
	}
	var e Encrypted
	if err := xml.Unmarshal([]byte(encXML(`<payload>AQ==</payload><header sid="1">`+okKeys+`</header>`)), &e); err != nil {
		t.Errorf("payload first: %v", err)
	}
}

// roundTrip checks that a value that parsed marshals to XML that parses to
// the same value and marshals to the same bytes again.
func roundTrip[T any](t *testing.T, data []byte) {
	var v T
	if err := xml.Unmarshal(data, &v); err != nil {
		return
	}
	out, err := xml.Marshal(v)
	if err != nil {
		t.Fatalf("marshal of parsed value: %v", err)
	}
	var v2 T
	if err := xml.Unmarshal(out, &v2); err != nil {
		t.Fatalf("reparse of %s: %v", out, err)
	}
	if !reflect.DeepEqual(v, v2) {
		t.Fatalf("round trip changed value:\n%#v\n%#v", v, v2)
	}
	out2, _ := xml.Marshal(v2)
	if !bytes.Equal(out, out2) {
		t.Fatalf("marshal not stable:\n%s\n%s", out, out2)
	}
}

func seedFiles(f *testing.F) {
	for _, name := range []string{"python-devices.xml", "python-bundle.xml", "python-encrypted.xml", "python-encrypted-empty.xml"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzDeviceList(f *testing.F) {
	seedFiles(f)
	f.Add([]byte(manyDevices(3)))
	f.Add([]byte(`<devices xmlns="urn:xmpp:omemo:2"><device id="12345" label="x" labelsig="` + b64(rep(9, 64)) + `"/></devices>`))
	f.Fuzz(func(t *testing.T, data []byte) { roundTrip[DeviceList](t, data) })
}

func FuzzBundle(f *testing.F) {
	seedFiles(f)
	f.Add([]byte(bundleXML(okSPK, okSPKS, okIK, okPKs)))
	f.Fuzz(func(t *testing.T, data []byte) { roundTrip[Bundle](t, data) })
}

func FuzzEncrypted(f *testing.F) {
	seedFiles(f)
	f.Add([]byte(encXML(`<header sid="1">` + okKeys + `</header><payload>AQ==</payload>`)))
	f.Fuzz(func(t *testing.T, data []byte) { roundTrip[Encrypted](t, data) })
}
