package legacy

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"hush.im/internal/xmlx/xmlxtest"
)

func rep(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// k33 is the wire form of a raw key: base64(0x05 ‖ key).
func k33(key []byte) string { return b64(append([]byte{KeyType}, key...)) }

// decodeCase is XML that other implementations write and python-oldmemo
// accepts, which decodes to Value but re-encodes canonically.
type decodeCase struct {
	XML   string
	Value any
}

func runDecodeTests(t *testing.T, cases []decodeCase) {
	t.Helper()
	for i, tc := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			v := reflect.New(reflect.TypeOf(tc.Value))
			if err := xml.Unmarshal([]byte(tc.XML), v.Interface()); err != nil {
				t.Fatalf("unmarshal %s: %v", tc.XML, err)
			}
			if !reflect.DeepEqual(v.Elem().Interface(), tc.Value) {
				t.Fatalf("unmarshal %s:\nwant %#v\ngot  %#v", tc.XML, tc.Value, v.Elem().Interface())
			}
		})
	}
}

// runBadTests checks that every input fails with an error wrapping
// ErrMalformed.
func runBadTests[T any](t *testing.T, cases map[string]string) {
	t.Helper()
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			var v T
			err := xml.Unmarshal([]byte(in), &v)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("unmarshal %s: got %v, want ErrMalformed", in, err)
			}
		})
	}
}

var (
	testIK  = rep(1, 32)
	testSPK = rep(2, 32)
	testSig = rep(3, 64)
)

const nsAttr = `xmlns="eu.siacs.conversations.axolotl"`

func TestEncodingDeviceList(t *testing.T) {
	xmlxtest.RunEncodingTests(t, []xmlxtest.EncodingCase{
		{Value: DeviceList{}, XML: `<list ` + nsAttr + `></list>`},
		{Value: DeviceList{Devices: []uint32{12345, 4223, 31415}},
			XML: `<list ` + nsAttr + `><device id="12345"></device><device id="4223"></device><device id="31415"></device></list>`},
		{Value: DeviceList{Devices: []uint32{MinDeviceID, MaxDeviceID}},
			XML: `<list ` + nsAttr + `><device id="1"></device><device id="2147483647"></device></list>`},
	})
}

func TestDecodeDeviceListVariants(t *testing.T) {
	runDecodeTests(t, []decodeCase{
		// The XEP's own example, self-closing with whitespace.
		{"<list xmlns='eu.siacs.conversations.axolotl'>\n  <device id='12345' />\n  <device id='4223' />\n</list>",
			DeviceList{Devices: []uint32{12345, 4223}}},
		// ElementTree's prefixed serialization (python-oldmemo).
		{`<ns0:list xmlns:ns0="eu.siacs.conversations.axolotl"><ns0:device id="1" /></ns0:list>`,
			DeviceList{Devices: []uint32{1}}},
		// xs:unsignedInt lexical forms python-oldmemo's schema accepts.
		{`<list ` + nsAttr + `><device id=" 12 "/><device id="+13"/><device id="014"/></list>`,
			DeviceList{Devices: []uint32{12, 13, 14}}},
		// A repeated id is one device, as in python-oldmemo's dict.
		{`<list ` + nsAttr + `><device id="7"/><device id="8"/><device id="7"/></list>`,
			DeviceList{Devices: []uint32{7, 8}}},
		// Comments anywhere.
		{`<list ` + nsAttr + `><!-- c --><device id="7"><!-- c --></device></list>`,
			DeviceList{Devices: []uint32{7}}},
	})
}

func TestBadDeviceList(t *testing.T) {
	many := strings.Repeat(`<device id="1"/>`, 0)
	for i := 1; i <= MaxDevices+1; i++ {
		many += fmt.Sprintf(`<device id="%d"/>`, i)
	}
	runBadTests[DeviceList](t, map[string]string{
		"wrong namespace":    `<list xmlns="urn:xmpp:omemo:2"><device id="1"/></list>`,
		"wrong element":      `<devices ` + nsAttr + `><device id="1"/></devices>`,
		"id 0":               `<list ` + nsAttr + `><device id="0"/></list>`,
		"id 2^31":            `<list ` + nsAttr + `><device id="2147483648"/></list>`,
		"id 2^32":            `<list ` + nsAttr + `><device id="4294967296"/></list>`,
		"negative id":        `<list ` + nsAttr + `><device id="-1"/></list>`,
		"hex id":             `<list ` + nsAttr + `><device id="0x10"/></list>`,
		"empty id":           `<list ` + nsAttr + `><device id=""/></list>`,
		"missing id":         `<list ` + nsAttr + `><device/></list>`,
		"label (OMEMO 2)":    `<list ` + nsAttr + `><device id="1" label="phone"/></list>`,
		"attribute on list":  `<list ` + nsAttr + ` foo="1"><device id="1"/></list>`,
		"foreign child":      `<list ` + nsAttr + `><device id="1"/><x xmlns="urn:other"/></list>`,
		"child of device":    `<list ` + nsAttr + `><device id="1"><device id="2"/></device></list>`,
		"text in device":     `<list ` + nsAttr + `><device id="1">x</device></list>`,
		"text in list":       `<list ` + nsAttr + `>x<device id="1"/></list>`,
		"truncated":          `<list ` + nsAttr + `><device id="1"/>`,
		"too many devices":   `<list ` + nsAttr + `>` + many + `</list>`,
		"huge id text":       `<list ` + nsAttr + `><device id="` + strings.Repeat("0", 100) + `1"/></list>`,
		"qualified id":       `<list ` + nsAttr + ` xmlns:x="urn:x"><device x:id="1"/></list>`,
		"duplicate id attrs": `<list ` + nsAttr + ` xmlns:x="urn:x"><device id="1" x:id="2"/></list>`,
	})
}

func TestEncodingBundle(t *testing.T) {
	xmlxtest.RunEncodingTests(t, []xmlxtest.EncodingCase{
		{Value: Bundle{SignedPreKeyID: 1, SignedPreKey: testSPK, SignedPreKeySignature: testSig, IdentityKey: testIK,
			PreKeys: []PreKey{{ID: 1, Key: rep(10, 32)}, {ID: 100, Key: rep(11, 32)}}},
			XML: `<bundle ` + nsAttr + `><signedPreKeyPublic signedPreKeyId="1">` + k33(testSPK) + `</signedPreKeyPublic>` +
				`<signedPreKeySignature>` + b64(testSig) + `</signedPreKeySignature><identityKey>` + k33(testIK) +
				`</identityKey><prekeys><preKeyPublic preKeyId="1">` + k33(rep(10, 32)) + `</preKeyPublic>` +
				`<preKeyPublic preKeyId="100">` + k33(rep(11, 32)) + `</preKeyPublic></prekeys></bundle>`},
		// Prekey id 0 parses (Converse.js publishes it); it is never chosen.
		{Value: Bundle{SignedPreKeyID: 0, SignedPreKey: testSPK, SignedPreKeySignature: testSig, IdentityKey: testIK,
			PreKeys: []PreKey{{ID: 0, Key: rep(10, 32)}}},
			XML: `<bundle ` + nsAttr + `><signedPreKeyPublic signedPreKeyId="0">` + k33(testSPK) + `</signedPreKeyPublic>` +
				`<signedPreKeySignature>` + b64(testSig) + `</signedPreKeySignature><identityKey>` + k33(testIK) +
				`</identityKey><prekeys><preKeyPublic preKeyId="0">` + k33(rep(10, 32)) + `</preKeyPublic></prekeys></bundle>`},
	})
}

// wrapB64 formats base64 as the XEP's examples do: on its own indented
// lines, broken every 20 characters.
func wrapB64(s string) string {
	var b strings.Builder
	b.WriteString("\n            ")
	for len(s) > 20 {
		b.WriteString(s[:20] + "\n            ")
		s = s[20:]
	}
	b.WriteString(s + "\n          ")
	return b.String()
}

func TestDecodeBundleVariants(t *testing.T) {
	want := Bundle{SignedPreKeyID: 1, SignedPreKey: testSPK, SignedPreKeySignature: testSig, IdentityKey: testIK,
		PreKeys: []PreKey{{ID: 1, Key: rep(10, 32)}, {ID: 2, Key: rep(11, 32)}}}
	runDecodeTests(t, []decodeCase{
		// The XEP's layout: base64 on indented lines, broken inside.
		{"<bundle xmlns='eu.siacs.conversations.axolotl'>\n  <signedPreKeyPublic signedPreKeyId='1'>" + wrapB64(k33(testSPK)) +
			"</signedPreKeyPublic>\n  <signedPreKeySignature>" + wrapB64(b64(testSig)) + "</signedPreKeySignature>\n" +
			"  <identityKey>" + wrapB64(k33(testIK)) + "</identityKey>\n  <prekeys>\n" +
			"    <preKeyPublic preKeyId='1'>" + wrapB64(k33(rep(10, 32))) + "</preKeyPublic>\n" +
			"    <preKeyPublic preKeyId='2'>" + wrapB64(k33(rep(11, 32))) + "</preKeyPublic>\n  </prekeys>\n</bundle>", want},
		// Children out of the XEP's order, prefixed names, xs:unsignedInt forms.
		{`<b:bundle xmlns:b="eu.siacs.conversations.axolotl"><b:prekeys><b:preKeyPublic preKeyId="+1">` + k33(rep(10, 32)) +
			`</b:preKeyPublic><b:preKeyPublic preKeyId=" 02 ">` + k33(rep(11, 32)) + `</b:preKeyPublic></b:prekeys>` +
			`<b:identityKey>` + k33(testIK) + `</b:identityKey><b:signedPreKeySignature>` + b64(testSig) +
			`</b:signedPreKeySignature><b:signedPreKeyPublic signedPreKeyId="1">` + k33(testSPK) + `</b:signedPreKeyPublic></b:bundle>`, want},
	})
}

func TestBadBundle(t *testing.T) {
	spk := `<signedPreKeyPublic signedPreKeyId="1">` + k33(testSPK) + `</signedPreKeyPublic>`
	sig := `<signedPreKeySignature>` + b64(testSig) + `</signedPreKeySignature>`
	ik := `<identityKey>` + k33(testIK) + `</identityKey>`
	pk := func(id, key string) string { return `<preKeyPublic preKeyId="` + id + `">` + key + `</preKeyPublic>` }
	pks := `<prekeys>` + pk("1", k33(rep(10, 32))) + `</prekeys>`
	bundle := func(parts ...string) string { return `<bundle ` + nsAttr + `>` + strings.Join(parts, "") + `</bundle>` }
	var many strings.Builder
	for i := 0; i <= MaxBundlePreKeys; i++ {
		key := make([]byte, 32)
		key[0], key[1] = byte(i), byte(i>>8)
		many.WriteString(pk(fmt.Sprint(i), k33(key)))
	}
	runBadTests[Bundle](t, map[string]string{
		"missing signedPreKeyPublic":    bundle(sig, ik, pks),
		"missing signature":             bundle(spk, ik, pks),
		"missing identityKey":           bundle(spk, sig, pks),
		"missing prekeys":               bundle(spk, sig, ik),
		"no prekeys":                    bundle(spk, sig, ik, `<prekeys/>`),
		"duplicate identityKey":         bundle(spk, sig, ik, ik, pks),
		"missing signedPreKeyId":        bundle(`<signedPreKeyPublic>`+k33(testSPK)+`</signedPreKeyPublic>`, sig, ik, pks),
		"missing preKeyId":              bundle(spk, sig, ik, `<prekeys><preKeyPublic>`+k33(testSPK)+`</preKeyPublic></prekeys>`),
		"identity key without 0x05":     bundle(spk, sig, `<identityKey>`+b64(testIK)+`</identityKey>`, pks),
		"identity key with type 0x06":   bundle(spk, sig, `<identityKey>`+b64(append([]byte{6}, testIK...))+`</identityKey>`, pks),
		"34-byte signed prekey":         bundle(`<signedPreKeyPublic signedPreKeyId="1">`+k33(rep(2, 33))+`</signedPreKeyPublic>`, sig, ik, pks),
		"prekey without 0x05":           bundle(spk, sig, ik, `<prekeys>`+pk("1", b64(rep(10, 32)))+`</prekeys>`),
		"63-byte signature":             bundle(spk, `<signedPreKeySignature>`+b64(rep(3, 63))+`</signedPreKeySignature>`, ik, pks),
		"65-byte signature":             bundle(spk, `<signedPreKeySignature>`+b64(rep(3, 65))+`</signedPreKeySignature>`, ik, pks),
		"unpadded base64":               bundle(spk, `<signedPreKeySignature>`+strings.TrimRight(b64(testSig), "=")+`</signedPreKeySignature>`, ik, pks),
		"non-canonical base64 bits":     bundle(spk, `<signedPreKeySignature>`+b64(testSig)[:85]+`R==</signedPreKeySignature>`, ik, pks),
		"url-safe base64":               bundle(spk, sig, `<identityKey>`+strings.ReplaceAll(k33(rep(0xfb, 32)), "+", "-")+`</identityKey>`, pks),
		"duplicate prekey id":           bundle(spk, sig, ik, `<prekeys>`+pk("1", k33(rep(10, 32)))+pk("1", k33(rep(11, 32)))+`</prekeys>`),
		"duplicate prekey":              bundle(spk, sig, ik, `<prekeys>`+pk("1", k33(rep(10, 32)))+pk("2", k33(rep(10, 32)))+`</prekeys>`),
		"prekey id 2^32":                bundle(spk, sig, ik, `<prekeys>`+pk("4294967296", k33(rep(10, 32)))+`</prekeys>`),
		"OMEMO 2 child":                 bundle(spk, sig, ik, pks, `<spk id="1">`+b64(testSPK)+`</spk>`),
		"foreign child":                 bundle(spk, sig, ik, pks, `<x xmlns="urn:x"/>`),
		"extra attribute":               bundle(`<signedPreKeyPublic signedPreKeyId="1" id="1">`+k33(testSPK)+`</signedPreKeyPublic>`, sig, ik, pks),
		"element inside key":            bundle(spk, sig, `<identityKey><x/></identityKey>`, pks),
		"too many prekeys":              bundle(spk, sig, ik, `<prekeys>`+many.String()+`</prekeys>`),
		"oversized key text":            bundle(spk, sig, `<identityKey>`+strings.Repeat(" ", 4096)+k33(testIK)+`</identityKey>`, pks),
		"wrong element in prekeys":      bundle(spk, sig, ik, `<prekeys><pk id="1">`+b64(testSPK)+`</pk></prekeys>`),
		"OMEMO 2 namespace":             `<bundle xmlns="urn:xmpp:omemo:2">` + spk + sig + ik + pks + `</bundle>`,
		"truncated":                     `<bundle ` + nsAttr + `>` + spk,
		"signature serialized as a key": bundle(spk, `<signedPreKeySignature>`+k33(testSig)+`</signedPreKeySignature>`, ik, pks),
	})
}

func TestEncodingEncrypted(t *testing.T) {
	iv := rep(7, IVSize)
	xmlxtest.RunEncodingTests(t, []xmlxtest.EncodingCase{
		{Value: Encrypted{SID: 27183, Keys: []Key{{RID: 31415, Data: []byte("a")}, {RID: 12321, PreKey: true, Data: []byte("b")}},
			IV: iv, Payload: []byte("payload")},
			XML: `<encrypted ` + nsAttr + `><header sid="27183"><key rid="31415">YQ==</key><key rid="12321" prekey="true">Yg==</key>` +
				`<iv>` + b64(iv) + `</iv></header><payload>cGF5bG9hZA==</payload></encrypted>`},
		// KeyTransportElement: no payload, still an IV.
		{Value: Encrypted{SID: 1, Keys: []Key{{RID: 2, Data: []byte{0}}}, IV: iv},
			XML: `<encrypted ` + nsAttr + `><header sid="1"><key rid="2">AA==</key><iv>` + b64(iv) + `</iv></header></encrypted>`},
		// Two accounts' devices may share a rid.
		{Value: Encrypted{SID: 1, Keys: []Key{{RID: 5, Data: []byte{1}}, {RID: 5, PreKey: true, Data: []byte{2}}}, IV: rep(8, LegacyIVSize), Payload: []byte{}},
			XML: `<encrypted ` + nsAttr + `><header sid="1"><key rid="5">AQ==</key><key rid="5" prekey="true">Ag==</key>` +
				`<iv>` + b64(rep(8, LegacyIVSize)) + `</iv></header><payload></payload></encrypted>`},
		// No keys at all is schema-valid (and for nobody).
		{Value: Encrypted{SID: MaxDeviceID, IV: iv},
			XML: `<encrypted ` + nsAttr + `><header sid="2147483647"><iv>` + b64(iv) + `</iv></header></encrypted>`},
	})
}

func TestDecodeEncryptedVariants(t *testing.T) {
	iv := rep(7, IVSize)
	want := Encrypted{SID: 27183, Keys: []Key{{RID: 31415, Data: []byte("a")}, {RID: 12321, PreKey: true, Data: []byte("b")}},
		IV: iv, Payload: []byte("payload")}
	runDecodeTests(t, []decodeCase{
		// The XEP's example layout.
		{"<encrypted xmlns='eu.siacs.conversations.axolotl'>\n <header sid='27183'>\n  <key rid='31415'>YQ==</key>\n" +
			"  <key prekey=\"true\" rid='12321'>Yg==</key>\n  <iv>" + b64(iv) + "</iv>\n </header>\n <payload>cGF5bG9hZA==</payload>\n</encrypted>", want},
		// xs:all: <iv> first, <payload> first; prekey="1" and " true ".
		{`<encrypted ` + nsAttr + `><payload>cGF5bG9hZA==</payload><header sid="27183"><iv>` + b64(iv) + `</iv>` +
			`<key rid="31415">YQ==</key><key rid="12321" prekey="1">Yg==</key></header></encrypted>`, want},
		{`<encrypted ` + nsAttr + `><header sid="27183"><key rid="31415" prekey="false">YQ==</key><key rid="12321" prekey=" true ">Yg==</key>` +
			`<iv>` + b64(iv) + `</iv></header><payload>cGF5bG9h` + "\n" + `ZA==</payload></encrypted>`, want},
		{`<e:encrypted xmlns:e="eu.siacs.conversations.axolotl"><e:header sid="27183"><e:key rid="31415" prekey="0">YQ==</e:key>` +
			`<e:key rid="12321" prekey="true">Yg==</e:key><e:iv>` + b64(iv) + `</e:iv></e:header><e:payload>cGF5bG9hZA==</e:payload></e:encrypted>`, want},
	})
}

func TestBadEncrypted(t *testing.T) {
	iv := `<iv>` + b64(rep(7, IVSize)) + `</iv>`
	enc := func(header string, rest ...string) string {
		return `<encrypted ` + nsAttr + `>` + header + strings.Join(rest, "") + `</encrypted>`
	}
	hdr := func(parts ...string) string { return `<header sid="1">` + strings.Join(parts, "") + `</header>` }
	var many strings.Builder
	for i := 0; i <= MaxKeys; i++ {
		many.WriteString(`<key rid="1">AA==</key>`)
	}
	runBadTests[Encrypted](t, map[string]string{
		"no header":            enc(`<payload>AA==</payload>`),
		"two headers":          enc(hdr(iv), hdr(iv)),
		"two payloads":         enc(hdr(iv), `<payload>AA==</payload><payload>AA==</payload>`),
		"no sid":               enc(`<header>` + iv + `</header>`),
		"sid 0":                enc(`<header sid="0">` + iv + `</header>`),
		"sid 2^31":             enc(`<header sid="2147483648">` + iv + `</header>`),
		"no iv":                enc(hdr(`<key rid="2">AA==</key>`)),
		"two ivs":              enc(hdr(iv, iv)),
		"8-byte iv":            enc(hdr(`<iv>` + b64(rep(1, 8)) + `</iv>`)),
		"15-byte iv":           enc(hdr(`<iv>` + b64(rep(1, 15)) + `</iv>`)),
		"32-byte iv":           enc(hdr(`<iv>` + b64(rep(1, 32)) + `</iv>`)),
		"empty iv":             enc(hdr(`<iv></iv>`)),
		"key without rid":      enc(hdr(`<key>AA==</key>`, iv)),
		"rid 0":                enc(hdr(`<key rid="0">AA==</key>`, iv)),
		"prekey yes":           enc(hdr(`<key rid="2" prekey="yes">AA==</key>`, iv)),
		"prekey empty":         enc(hdr(`<key rid="2" prekey="">AA==</key>`, iv)),
		"OMEMO 2 kex":          enc(hdr(`<key rid="2" kex="true">AA==</key>`, iv)),
		"jid on key":           enc(hdr(`<key rid="2" jid="a@b">AA==</key>`, iv)),
		"OMEMO 2 keys":         enc(hdr(`<keys jid="a@b"><key rid="2">AA==</key></keys>`, iv)),
		"bad base64 key":       enc(hdr(`<key rid="2">A</key>`, iv)),
		"oversized key":        enc(hdr(`<key rid="2">`+b64(rep(1, MaxKeyDataSize+1))+`</key>`, iv)),
		"too many keys":        enc(hdr(many.String(), iv)),
		"bad base64 payload":   enc(hdr(iv), `<payload>!!</payload>`),
		"store hint inside":    enc(hdr(iv), `<store xmlns="urn:xmpp:hints"/>`),
		"unknown in header":    enc(hdr(iv, `<foo/>`)),
		"attribute on payload": enc(hdr(iv), `<payload x="1">AA==</payload>`),
		"OMEMO 2 namespace":    `<encrypted xmlns="urn:xmpp:omemo:2">` + hdr(iv) + `</encrypted>`,
		"text in header":       enc(hdr(iv, `x`)),
		"truncated":            `<encrypted ` + nsAttr + `><header sid="1">`,
	})
}

// TestPreKeyNeverFalse checks prekey='false' is never written:
// python-oldmemo reads any prekey value, even "false", as true.
func TestPreKeyNeverFalse(t *testing.T) {
	out, err := xml.Marshal(Encrypted{SID: 1, Keys: []Key{{RID: 2, Data: []byte{1}}}, IV: rep(1, IVSize)})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("prekey")) {
		t.Fatalf("prekey attribute written for PreKey=false: %s", out)
	}
}

func TestKeysFor(t *testing.T) {
	e := Encrypted{Keys: []Key{{RID: 1, Data: []byte{1}}, {RID: 2, Data: []byte{2}}, {RID: 1, PreKey: true, Data: []byte{3}}}}
	got := e.KeysFor(1)
	if len(got) != 2 || got[0].Data[0] != 1 || got[1].Data[0] != 3 {
		t.Fatalf("KeysFor(1) = %v", got)
	}
	if got := e.KeysFor(3); got != nil {
		t.Fatalf("KeysFor(3) = %v, want nil", got)
	}
}

func TestBundleNode(t *testing.T) {
	if got := BundleNode(31415); got != "eu.siacs.conversations.axolotl.bundles:31415" {
		t.Fatalf("BundleNode = %q", got)
	}
	if NodeDeviceList != "eu.siacs.conversations.axolotl.devicelist" {
		t.Fatalf("NodeDeviceList = %q", NodeDeviceList)
	}
	for node, want := range map[string]uint32{
		"eu.siacs.conversations.axolotl.bundles:31415":      31415,
		"eu.siacs.conversations.axolotl.bundles:1":          1,
		"eu.siacs.conversations.axolotl.bundles:2147483647": MaxDeviceID,
		"eu.siacs.conversations.axolotl.bundles:0":          0,
		"eu.siacs.conversations.axolotl.bundles:2147483648": 0,
		"eu.siacs.conversations.axolotl.bundles:031415":     0,
		"eu.siacs.conversations.axolotl.bundles:":           0,
		"eu.siacs.conversations.axolotl.bundles:+1":         0,
		"eu.siacs.conversations.axolotl.devicelist":         0,
		"urn:xmpp:omemo:2:bundles":                          0,
	} {
		got, ok := ParseBundleNode(node)
		if got != want || ok != (want != 0) {
			t.Errorf("ParseBundleNode(%q) = %d, %v; want %d", node, got, ok, want)
		}
	}
}

func TestStoreRoundTrip(t *testing.T) {
	l := &DeviceList{Devices: []uint32{3, 1, 2}}
	b, err := l.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var l2 DeviceList
	if err := l2.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(*l, l2) {
		t.Fatalf("device list round trip: %v %v", l2, err)
	}
	if err := l2.UnmarshalBinary(append(b, "<x/>"...)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing element: %v", err)
	}
	if err := l2.UnmarshalBinary([]byte("<list")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("syntax error: %v", err)
	}
	bu := &Bundle{SignedPreKeyID: 1, SignedPreKey: testSPK, SignedPreKeySignature: testSig, IdentityKey: testIK,
		PreKeys: []PreKey{{ID: 5, Key: rep(10, 32)}}}
	b, err = bu.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var bu2 Bundle
	if err := bu2.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(*bu, bu2) {
		t.Fatalf("bundle round trip: %v %v", bu2, err)
	}
}

func TestBundleSignBit(t *testing.T) {
	sig := rep(0, 64)
	b := Bundle{SignedPreKeySignature: sig}
	if b.SignBit() != 0 {
		t.Fatal("sign bit 1 for a clear bit")
	}
	sig[63] = 0x80
	if b.SignBit() != 1 {
		t.Fatal("sign bit 0 for a set bit")
	}
	if (&Bundle{}).SignBit() != 0 {
		t.Fatal("sign bit of a bundle without signature")
	}
}

// TestDeviceListStored: the stored form round-trips, lists stored as XML
// (before it) still decode, and bad stored lists are ErrMalformed.
func TestDeviceListStored(t *testing.T) {
	want := DeviceList{Devices: []uint32{MinDeviceID, 77, MaxDeviceID}}
	b, err := want.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got DeviceList
	if err := got.UnmarshalBinary(b); err != nil || !slices.Equal(got.Devices, want.Devices) {
		t.Fatalf("round trip: %v %v", got, err)
	}
	old, _ := xml.Marshal(want)
	if err := got.UnmarshalBinary(old); err != nil || !slices.Equal(got.Devices, want.Devices) {
		t.Fatalf("XML form: %v %v", got, err)
	}
	for name, data := range map[string][]byte{
		"empty":       {},
		"version":     {2, 0},
		"id 0":        {1, 1, 0},
		"id 2^31":     {1, 1, 0x80, 0x80, 0x80, 0x80, 0x08},
		"repeated":    {1, 2, 5, 5},
		"short":       {1, 2, 5},
		"trailing":    {1, 1, 5, 0},
		"non-minimal": {1, 1, 0x85, 0x00},
		"too many":    append([]byte{1}, binary.AppendUvarint(nil, MaxDevices+1)...),
	} {
		if err := got.UnmarshalBinary(data); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}
