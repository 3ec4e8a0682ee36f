package legacy

import (
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"

	"hush.im/internal/xmlx"
	"mellium.im/xmlstream"
)

// Namespace, PEP nodes and item ids of legacy OMEMO (XEP-0384 0.3
// §Announcing support).
const (
	// NS is the namespace of <list>, <bundle> and <encrypted>.
	NS = "eu.siacs.conversations.axolotl"
	// NodeDeviceList is the PEP node of the device list.
	NodeDeviceList = NS + ".devicelist"
	// NodeBundlesPrefix starts the name of each device's bundle node; the
	// decimal device id follows (see BundleNode).
	NodeBundlesPrefix = NS + ".bundles:"
	// ItemID is the item id of the device list and of every bundle
	// (XEP-0384 0.3 §Announcing support, XEP-0060 §12.20 singleton node).
	// Converse.js publishes bundles without it: fetch bundles by node.
	ItemID = "current"
)

// BundleNode returns the PEP node of a device's bundle,
// "eu.siacs.conversations.axolotl.bundles:<id>".
func BundleNode(deviceID uint32) string {
	return NodeBundlesPrefix + strconv.FormatUint(uint64(deviceID), 10)
}

// ParseBundleNode returns the device id of a bundle node name, or false
// when node is not one (the id must be a valid device id in canonical
// decimal form).
func ParseBundleNode(node string) (uint32, bool) {
	s, ok := strings.CutPrefix(node, NodeBundlesPrefix)
	if !ok || s == "" || len(s) > 10 || s[0] == '0' {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || !ValidDeviceID(uint32(v)) {
		return 0, false
	}
	return uint32(v), true
}

// Limits applied when parsing. The XEP sets none but the device id range;
// they bound the memory and work one stanza or PEP item can cause.
const (
	// MinDeviceID and MaxDeviceID bound device ids: "a randomly generated
	// integer between 1 and 2^31 - 1" (XEP-0384 0.3 §Setup).
	MinDeviceID = 1
	MaxDeviceID = 1<<31 - 1

	// MaxDevices is the most devices accepted in one device list. Legacy
	// lists grow longer than OMEMO 2 ones: most deployed clients never
	// remove stale devices.
	MaxDevices = 1024
	// MaxBundlePreKeys is the most prekeys accepted in one bundle; the
	// XEP asks for 100 and at least 20 (§Announcing support).
	MaxBundlePreKeys = 1000
	// MaxKeys is the most <key> elements accepted in one <encrypted>.
	MaxKeys = 8192
	// MaxKeyDataSize is the largest decoded <key> content. A
	// PreKeySignalMessage carrying 32 bytes of key material is under 200
	// bytes.
	MaxKeyDataSize = 1024
	// MaxPayloadSize is the largest decoded <payload> (an encrypted body)
	// accepted.
	MaxPayloadSize = 1 << 20
)

// Key encodings (libsignal Curve.DJB_TYPE; DIGEST §5.1).
const (
	// PublicKeySize is the size of a raw Curve25519 public key, the form in
	// which this package's types hold every key.
	PublicKeySize = 32
	// KeyType is the type byte libsignal puts in front of every serialized
	// Curve25519 public key.
	KeyType = 0x05
	// SerializedKeySize is the size of a key as it travels in bundles and
	// messages: KeyType ‖ raw key.
	SerializedKeySize = 1 + PublicKeySize
	// SignatureSize is the size of the signed prekey signature.
	SignatureSize = 64
)

// DeviceList is the <list/> payload published at item "current" of
// NodeDeviceList (XEP-0384 0.3 §Announcing support): the ids of an
// account's devices. The list may be empty.
type DeviceList struct {
	Devices []uint32
}

// Contains reports whether the device id is on the list.
func (l *DeviceList) Contains(id uint32) bool {
	for _, d := range l.Devices {
		if d == id {
			return true
		}
	}
	return false
}

// TokenReader implements xmlstream.Marshaler.
func (l DeviceList) TokenReader() xml.TokenReader {
	children := make([]xml.TokenReader, 0, len(l.Devices))
	for _, id := range l.Devices {
		children = append(children, xmlstream.Wrap(nil, xml.StartElement{
			Name: xml.Name{Local: "device"},
			Attr: []xml.Attr{xmlx.UintAttr("id", id)},
		}))
	}
	return xmlstream.Wrap(xmlstream.MultiReader(children...), xml.StartElement{Name: xml.Name{Space: NS, Local: "list"}})
}

// WriteXML implements xmlstream.WriterTo.
func (l DeviceList) WriteXML(w xmlstream.TokenWriter) (int, error) {
	return xmlstream.Copy(w, l.TokenReader())
}

// MarshalXML implements xml.Marshaler.
func (l DeviceList) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	_, err := l.WriteXML(e)
	return err
}

// UnmarshalXML implements xml.Unmarshaler. It accepts what python-oldmemo's
// schema accepts — ids as xs:unsignedInt (surrounding whitespace, a "+",
// leading zeros) and repeated ids, which are kept once — and also an empty
// list (the schema wants one device; an empty list is how an account says it
// has none). Ids outside 1…2^31−1, attributes other than id, child elements
// and more than MaxDevices devices are errors wrapping ErrMalformed.
func (l *DeviceList) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	out, err := parseDeviceList(d, start)
	if err != nil {
		return err
	}
	*l = out
	return nil
}

func parseDeviceList(d xml.TokenReader, start xml.StartElement) (DeviceList, error) {
	var l DeviceList
	if err := checkName(start, "list"); err != nil {
		return l, err
	}
	if _, err := strict.Attrs(start); err != nil {
		return l, err
	}
	seen := make(map[uint32]bool)
	for n := 0; ; n++ {
		child, err := strict.NextChild(d)
		if err != nil {
			return l, err
		}
		if child == nil {
			return l, nil
		}
		if err := checkName(*child, "device"); err != nil {
			return l, err
		}
		if n >= MaxDevices {
			return l, malformed("more than %d devices", MaxDevices)
		}
		m, err := strict.Attrs(*child, "id")
		if err != nil {
			return l, err
		}
		text, ok := m["id"]
		if !ok {
			return l, malformed("<device> without id")
		}
		id, err := parseDeviceID(text, "device id")
		if err != nil {
			return l, err
		}
		if err := readEmpty(d, "device"); err != nil {
			return l, err
		}
		// python-oldmemo builds a dict: a repeated id is one device.
		if !seen[id] {
			seen[id] = true
			l.Devices = append(l.Devices, id)
		}
	}
}

// PreKey is one public one-time prekey of a bundle: its id and raw
// 32-byte Curve25519 key.
type PreKey struct {
	ID  uint32
	Key []byte
}

// Bundle is the <bundle/> payload published at item "current" of
// BundleNode(device id) (XEP-0384 0.3 §Announcing support).
//
// Keys are held raw (32-byte Curve25519); on the wire each is
// KeyType ‖ key, base64-encoded. IdentityKey is the Curve25519 form of
// the identity key. SignedPreKeySignature is libsignal's signature over
// the 33-byte serialized signed prekey, with the sign bit of the identity
// key's Ed25519 form in bit 7 of byte 63 (DIGEST §5.6; python-oldmemo
// serialize_bundle). The parser checks sizes and the type byte, not the
// signature: see VerifyBundle and Initiate.
//
// Prekey id 0 parses (Converse.js publishes it) but is never chosen.
type Bundle struct {
	SignedPreKeyID        uint32
	SignedPreKey          []byte
	SignedPreKeySignature []byte
	IdentityKey           []byte
	PreKeys               []PreKey
}

// PreKey returns the prekey with the given id, or nil.
func (b *Bundle) PreKey(id uint32) []byte {
	for _, pk := range b.PreKeys {
		if pk.ID == id {
			return pk.Key
		}
	}
	return nil
}

// SignBit returns the sign bit of the identity key's Ed25519 form, which
// libsignal stores in bit 7 of byte 63 of the signed prekey signature
// (python-oldmemo parse_bundle), or 0 if the signature is missing.
func (b *Bundle) SignBit() byte {
	if len(b.SignedPreKeySignature) != SignatureSize {
		return 0
	}
	return b.SignedPreKeySignature[SignatureSize-1] >> 7
}

// TokenReader implements xmlstream.Marshaler. The children come in the
// order of the XEP and of python-oldmemo's schema (an xs:sequence).
func (b Bundle) TokenReader() xml.TokenReader {
	pks := make([]xml.TokenReader, 0, len(b.PreKeys))
	for _, pk := range b.PreKeys {
		pks = append(pks, xmlx.TextElement("preKeyPublic", []xml.Attr{xmlx.UintAttr("preKeyId", pk.ID)}, encodeSerializedKey(pk.Key)))
	}
	return xmlstream.Wrap(
		xmlstream.MultiReader(
			xmlx.TextElement("signedPreKeyPublic", []xml.Attr{xmlx.UintAttr("signedPreKeyId", b.SignedPreKeyID)}, encodeSerializedKey(b.SignedPreKey)),
			xmlx.TextElement("signedPreKeySignature", nil, xmlx.EncodeBase64(b.SignedPreKeySignature)),
			xmlx.TextElement("identityKey", nil, encodeSerializedKey(b.IdentityKey)),
			xmlstream.Wrap(xmlstream.MultiReader(pks...), xml.StartElement{Name: xml.Name{Local: "prekeys"}}),
		),
		xml.StartElement{Name: xml.Name{Space: NS, Local: "bundle"}},
	)
}

// WriteXML implements xmlstream.WriterTo.
func (b Bundle) WriteXML(w xmlstream.TokenWriter) (int, error) {
	return xmlstream.Copy(w, b.TokenReader())
}

// MarshalXML implements xml.Marshaler.
func (b Bundle) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	_, err := b.WriteXML(e)
	return err
}

// UnmarshalXML implements xml.Unmarshaler. It is strict: <signedPreKeyPublic
// signedPreKeyId>, <signedPreKeySignature>, <identityKey> and <prekeys>
// exactly once each (in any order; python-oldmemo wants the XEP's order,
// which hush writes), 1 to MaxBundlePreKeys <preKeyPublic preKeyId>, every
// key 33 bytes starting with KeyType, a 64-byte signature, no repeated
// prekey id or key, padded base64 (XML whitespace anywhere allowed, as in
// the XEP's examples). Errors wrap ErrMalformed.
func (b *Bundle) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	out, err := parseBundle(d, start)
	if err != nil {
		return err
	}
	*b = out
	return nil
}

func parseBundle(d xml.TokenReader, start xml.StartElement) (Bundle, error) {
	var b Bundle
	if err := checkName(start, "bundle"); err != nil {
		return b, err
	}
	if _, err := strict.Attrs(start); err != nil {
		return b, err
	}
	var haveSPK, haveSig, haveIK, havePKs bool
	keyText := base64TextLimit(SerializedKeySize)
	for {
		child, err := strict.NextChild(d)
		if err != nil {
			return b, err
		}
		if child == nil {
			break
		}
		if child.Name.Space != NS {
			return b, malformed("unexpected <%s xmlns='%s'> in <bundle>", child.Name.Local, child.Name.Space)
		}
		switch child.Name.Local {
		case "signedPreKeyPublic":
			if haveSPK {
				return b, malformed("duplicate <signedPreKeyPublic>")
			}
			haveSPK = true
			m, err := strict.Attrs(*child, "signedPreKeyId")
			if err != nil {
				return b, err
			}
			id, ok := m["signedPreKeyId"]
			if !ok {
				return b, malformed("<signedPreKeyPublic> without signedPreKeyId")
			}
			if b.SignedPreKeyID, err = parseUint32(id, "signedPreKeyId"); err != nil {
				return b, err
			}
			text, err := strict.ReadText(d, keyText, "signedPreKeyPublic")
			if err != nil {
				return b, err
			}
			if b.SignedPreKey, err = decodeSerializedKey(text, "signedPreKeyPublic"); err != nil {
				return b, err
			}
		case "signedPreKeySignature":
			if haveSig {
				return b, malformed("duplicate <signedPreKeySignature>")
			}
			haveSig = true
			if _, err := strict.Attrs(*child); err != nil {
				return b, err
			}
			text, err := strict.ReadText(d, base64TextLimit(SignatureSize), "signedPreKeySignature")
			if err != nil {
				return b, err
			}
			if b.SignedPreKeySignature, err = strict.DecodeBase64(text, "signedPreKeySignature", SignatureSize); err != nil {
				return b, err
			}
			if len(b.SignedPreKeySignature) != SignatureSize {
				return b, malformed("signedPreKeySignature is %d bytes, want %d", len(b.SignedPreKeySignature), SignatureSize)
			}
		case "identityKey":
			if haveIK {
				return b, malformed("duplicate <identityKey>")
			}
			haveIK = true
			if _, err := strict.Attrs(*child); err != nil {
				return b, err
			}
			text, err := strict.ReadText(d, keyText, "identityKey")
			if err != nil {
				return b, err
			}
			if b.IdentityKey, err = decodeSerializedKey(text, "identityKey"); err != nil {
				return b, err
			}
		case "prekeys":
			if havePKs {
				return b, malformed("duplicate <prekeys>")
			}
			havePKs = true
			if _, err := strict.Attrs(*child); err != nil {
				return b, err
			}
			if b.PreKeys, err = parsePreKeys(d, keyText); err != nil {
				return b, err
			}
		default:
			return b, malformed("unexpected <%s> in <bundle>", child.Name.Local)
		}
	}
	if !haveSPK || !haveSig || !haveIK || !havePKs {
		return b, malformed("incomplete bundle")
	}
	return b, nil
}

func parsePreKeys(d xml.TokenReader, keyText int) ([]PreKey, error) {
	var pks []PreKey
	ids := make(map[uint32]bool)
	keys := make(map[string]bool)
	for {
		child, err := strict.NextChild(d)
		if err != nil {
			return nil, err
		}
		if child == nil {
			break
		}
		if err := checkName(*child, "preKeyPublic"); err != nil {
			return nil, err
		}
		if len(pks) >= MaxBundlePreKeys {
			return nil, malformed("more than %d prekeys", MaxBundlePreKeys)
		}
		m, err := strict.Attrs(*child, "preKeyId")
		if err != nil {
			return nil, err
		}
		idText, ok := m["preKeyId"]
		if !ok {
			return nil, malformed("<preKeyPublic> without preKeyId")
		}
		id, err := parseUint32(idText, "preKeyId")
		if err != nil {
			return nil, err
		}
		text, err := strict.ReadText(d, keyText, "preKeyPublic")
		if err != nil {
			return nil, err
		}
		key, err := decodeSerializedKey(text, "preKeyPublic")
		if err != nil {
			return nil, err
		}
		if ids[id] {
			return nil, malformed("duplicate preKeyId %d", id)
		}
		if keys[string(key)] {
			return nil, malformed("duplicate preKeyPublic")
		}
		ids[id], keys[string(key)] = true, true
		pks = append(pks, PreKey{ID: id, Key: key})
	}
	if len(pks) == 0 {
		return nil, malformed("bundle without prekeys")
	}
	return pks, nil
}

// Key is one <key/> of an <encrypted/> header (XEP-0384 0.3 §Sending a
// message): the libsignal message for the device RID, a
// PreKeySignalMessage when PreKey is true, a SignalMessage otherwise.
// Legacy keys carry no JID: a device is named by its id alone, so two
// accounts' devices may share a rid (see Encrypted.KeysFor).
type Key struct {
	RID    uint32
	PreKey bool
	Data   []byte
}

// Encrypted is the <encrypted/> element (XEP-0384 0.3 §Sending a message,
// §Sending a key): the sender device SID, one key per recipient device, the
// IV of the payload cipher, and the AES-128-GCM ciphertext of the body
// without its tag. Payload is nil in a KeyTransportElement (python-oldmemo:
// an empty OMEMO message), which still carries an IV.
//
// A present but empty <payload/> parses as an empty, non-nil Payload;
// python-oldmemo cannot read one and hush never writes one (see
// ErrEmptyBody).
//
// Marshalling writes prekey='true' only when PreKey is true and never
// prekey='false': python-oldmemo reads any prekey value, even "false", as
// true.
type Encrypted struct {
	SID     uint32
	Keys    []Key
	IV      []byte
	Payload []byte
}

// KeysFor returns the keys addressed to device rid, in document order.
// There may be more than one: device ids are only unique per account, and
// a message to several accounts can carry two keys with the same rid. A
// receiver tries each (XEP-0384 0.3 §Receiving a message).
func (e *Encrypted) KeysFor(rid uint32) []Key {
	var out []Key
	for _, k := range e.Keys {
		if k.RID == rid {
			out = append(out, k)
		}
	}
	return out
}

// TokenReader implements xmlstream.Marshaler.
func (e Encrypted) TokenReader() xml.TokenReader {
	children := make([]xml.TokenReader, 0, len(e.Keys)+1)
	for _, k := range e.Keys {
		a := []xml.Attr{xmlx.UintAttr("rid", k.RID)}
		if k.PreKey {
			a = append(a, xml.Attr{Name: xml.Name{Local: "prekey"}, Value: "true"})
		}
		children = append(children, xmlx.TextElement("key", a, xmlx.EncodeBase64(k.Data)))
	}
	children = append(children, xmlx.TextElement("iv", nil, xmlx.EncodeBase64(e.IV)))
	parts := []xml.TokenReader{
		xmlstream.Wrap(xmlstream.MultiReader(children...), xml.StartElement{Name: xml.Name{Local: "header"}, Attr: []xml.Attr{xmlx.UintAttr("sid", e.SID)}}),
	}
	if e.Payload != nil {
		parts = append(parts, xmlx.TextElement("payload", nil, xmlx.EncodeBase64(e.Payload)))
	}
	return xmlstream.Wrap(xmlstream.MultiReader(parts...), xml.StartElement{Name: xml.Name{Space: NS, Local: "encrypted"}})
}

// WriteXML implements xmlstream.WriterTo.
func (e Encrypted) WriteXML(w xmlstream.TokenWriter) (int, error) {
	return xmlstream.Copy(w, e.TokenReader())
}

// MarshalXML implements xml.Marshaler.
func (e Encrypted) MarshalXML(enc *xml.Encoder, _ xml.StartElement) error {
	_, err := e.WriteXML(enc)
	return err
}

// UnmarshalXML implements xml.Unmarshaler, following python-oldmemo's
// schema: exactly one <header> with a sid in 1…2^31−1 and at most one
// <payload> in any order; in the header any number of <key rid> (rid in
// 1…2^31−1, repeated rids allowed, prekey an xs:boolean) and exactly one
// <iv>, in any order; padded base64. In addition the IV must be IVSize or
// LegacyIVSize bytes and the limits MaxKeys, MaxKeyDataSize and
// MaxPayloadSize apply. Errors wrap ErrMalformed. The contents of <key>
// are not parsed here.
func (e *Encrypted) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	out, err := parseEncrypted(d, start)
	if err != nil {
		return err
	}
	*e = out
	return nil
}

func parseEncrypted(d xml.TokenReader, start xml.StartElement) (Encrypted, error) {
	var e Encrypted
	if err := checkName(start, "encrypted"); err != nil {
		return e, err
	}
	if _, err := strict.Attrs(start); err != nil {
		return e, err
	}
	var haveHeader, havePayload bool
	for {
		child, err := strict.NextChild(d)
		if err != nil {
			return e, err
		}
		if child == nil {
			break
		}
		if child.Name.Space != NS {
			return e, malformed("unexpected <%s xmlns='%s'> in <encrypted>", child.Name.Local, child.Name.Space)
		}
		switch child.Name.Local {
		case "header":
			if haveHeader {
				return e, malformed("duplicate <header>")
			}
			haveHeader = true
			if err := parseHeader(d, *child, &e); err != nil {
				return e, err
			}
		case "payload":
			if havePayload {
				return e, malformed("duplicate <payload>")
			}
			havePayload = true
			if _, err := strict.Attrs(*child); err != nil {
				return e, err
			}
			text, err := strict.ReadText(d, base64TextLimit(MaxPayloadSize), "payload")
			if err != nil {
				return e, err
			}
			if e.Payload, err = strict.DecodeBase64(text, "payload", MaxPayloadSize); err != nil {
				return e, err
			}
		default:
			return e, malformed("unexpected <%s> in <encrypted>", child.Name.Local)
		}
	}
	if !haveHeader {
		return e, malformed("<encrypted> without <header>")
	}
	return e, nil
}

func parseHeader(d xml.TokenReader, start xml.StartElement, e *Encrypted) error {
	m, err := strict.Attrs(start, "sid")
	if err != nil {
		return err
	}
	sid, ok := m["sid"]
	if !ok {
		return malformed("<header> without sid")
	}
	if e.SID, err = parseDeviceID(sid, "sid"); err != nil {
		return err
	}
	haveIV := false
	keyText := base64TextLimit(MaxKeyDataSize)
	for {
		child, err := strict.NextChild(d)
		if err != nil {
			return err
		}
		if child == nil {
			break
		}
		if child.Name.Space != NS {
			return malformed("unexpected <%s xmlns='%s'> in <header>", child.Name.Local, child.Name.Space)
		}
		switch child.Name.Local {
		case "key":
			if len(e.Keys) >= MaxKeys {
				return malformed("more than %d <key>", MaxKeys)
			}
			m, err := strict.Attrs(*child, "rid", "prekey")
			if err != nil {
				return err
			}
			rid, ok := m["rid"]
			if !ok {
				return malformed("<key> without rid")
			}
			var k Key
			if k.RID, err = parseDeviceID(rid, "rid"); err != nil {
				return err
			}
			if v, ok := m["prekey"]; ok {
				if k.PreKey, err = parseBool(v, "prekey"); err != nil {
					return err
				}
			}
			text, err := strict.ReadText(d, keyText, "key")
			if err != nil {
				return err
			}
			if k.Data, err = strict.DecodeBase64(text, "key", MaxKeyDataSize); err != nil {
				return err
			}
			e.Keys = append(e.Keys, k)
		case "iv":
			if haveIV {
				return malformed("duplicate <iv>")
			}
			haveIV = true
			if _, err := strict.Attrs(*child); err != nil {
				return err
			}
			text, err := strict.ReadText(d, base64TextLimit(LegacyIVSize), "iv")
			if err != nil {
				return err
			}
			if e.IV, err = strict.DecodeBase64(text, "iv", LegacyIVSize); err != nil {
				return err
			}
			if err := checkIV(e.IV); err != nil {
				return err
			}
		default:
			return malformed("unexpected <%s> in <header>", child.Name.Local)
		}
	}
	if !haveIV {
		return malformed("<header> without <iv>")
	}
	return nil
}

// MarshalBinary encodes the device list for a store (its XML form).
//
// The form is binary, as every message reads the lists of its recipients:
// the version byte deviceListVersion, the count, then each id, as
// unsigned varints. Lists written before it are their XML form, which
// UnmarshalBinary still reads (they start with '<').
func (l *DeviceList) MarshalBinary() ([]byte, error) {
	if len(l.Devices) > MaxDevices {
		return nil, malformed("more than %d devices", MaxDevices)
	}
	b := make([]byte, 1, 2+5*len(l.Devices))
	b[0] = deviceListVersion
	b = binary.AppendUvarint(b, uint64(len(l.Devices)))
	for _, id := range l.Devices {
		b = binary.AppendUvarint(b, uint64(id))
	}
	return b, nil
}

// deviceListVersion is the version byte of a stored device list.
const deviceListVersion = 1

// UnmarshalBinary decodes a device list written by MarshalBinary, checked
// as a published one is: ids in 1…2^31−1, each once, at most MaxDevices.
func (l *DeviceList) UnmarshalBinary(b []byte) error {
	if len(b) > 0 && b[0] == '<' {
		return unmarshalXML(b, l)
	}
	if len(b) == 0 || b[0] != deviceListVersion {
		return malformed("stored device list of unknown version")
	}
	b = b[1:]
	next := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 || n != len(binary.AppendUvarint(nil, v)) {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	count, ok := next()
	if !ok || count > MaxDevices {
		return malformed("stored device list: bad count")
	}
	var out DeviceList
	if count > 0 {
		out.Devices = make([]uint32, 0, count)
	}
	for range count {
		id, ok := next()
		if !ok || id < MinDeviceID || id > MaxDeviceID || slices.Contains(out.Devices, uint32(id)) {
			return malformed("stored device list: bad device id")
		}
		out.Devices = append(out.Devices, uint32(id))
	}
	if len(b) != 0 {
		return malformed("stored device list: %d trailing bytes", len(b))
	}
	*l = out
	return nil
}

// MarshalBinary encodes the bundle for a store (its XML form).
func (b *Bundle) MarshalBinary() ([]byte, error) { return xml.Marshal(b) }

// UnmarshalBinary decodes a bundle written by MarshalBinary.
func (b *Bundle) UnmarshalBinary(data []byte) error { return unmarshalXML(data, b) }

// unmarshalXML decodes exactly one element from b; anything after it but
// whitespace is an error.
func unmarshalXML(b []byte, v any) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(v); err != nil {
		if errors.Is(err, ErrMalformed) {
			return err
		}
		return malformed("%v", err)
	}
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return malformed("%v", err)
		}
		if cd, ok := tok.(xml.CharData); ok && strings.Trim(string(cd), xmlx.Space) == "" {
			continue
		}
		return malformed("trailing data after the element")
	}
}
