package omemo

import (
	"encoding/xml"

	"hush.im/internal/xmlx"
	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
)

// Namespaces, PEP nodes and item ids of OMEMO 2 (XEP-0384 0.9.1 §5.3).
const (
	// NS is the OMEMO 2 namespace of <devices>, <bundle> and <encrypted>.
	NS = "urn:xmpp:omemo:2"
	// NodeDevices is the PEP node of the device list (XEP-0384 §5.3.1).
	NodeDevices = "urn:xmpp:omemo:2:devices"
	// NodeBundles is the PEP node of the bundles, one item per device whose
	// item id is the decimal device id (XEP-0384 §5.3.2).
	NodeBundles = "urn:xmpp:omemo:2:bundles"
	// DevicesItemID is the item id of the device list (XEP-0384 §5.3.1,
	// XEP-0060 §12.20 singleton node).
	DevicesItemID = "current"
)

// Limits applied when parsing the OMEMO 2 payloads. The XEP sets none of
// them except the device id range; they bound memory and work per stanza.
const (
	// MinDeviceID and MaxDeviceID bound device ids (XEP-0384 §5.1: a
	// random integer between 1 and 2^31−1; 0.9.1 forbids 0).
	MinDeviceID = 1
	MaxDeviceID = 1<<31 - 1

	// MaxDevices is the most devices accepted in one device list.
	MaxDevices = 256
	// MaxLabelSize is the largest device label accepted, in bytes. The XEP
	// recommends labels under 53 code points (§5.3.1); own labels are held
	// to MaxOwnLabelRunes.
	MaxLabelSize = 1024
	// MaxOwnLabelRunes is the longest label this package signs and
	// publishes: "under 53 Unicode code points" (XEP-0384 §5.3.1).
	MaxOwnLabelRunes = 52
	// MaxBundlePreKeys is the most prekeys accepted in one bundle; the XEP
	// recommends about 100 and requires at least 25 (§5.3.2).
	MaxBundlePreKeys = 1000
	// MaxKeyJIDs is the most <keys> elements accepted in one <encrypted>.
	MaxKeyJIDs = 1024
	// MaxKeys is the most <key> elements accepted in one <encrypted>.
	MaxKeys = 8192
	// MaxKeyDataSize is the largest decoded <key> content. An
	// OMEMOKeyExchange carrying 48 bytes of key material is under 250 bytes.
	MaxKeyDataSize = 1024
	// MaxPayloadSize is the largest decoded <payload> (an encrypted SCE
	// envelope) accepted.
	MaxPayloadSize = 1 << 20
)

// Key sizes on the wire (XEP-0384 §5.3.2, §4.2).
const (
	// PublicKeySize is the size of identity keys (Ed25519 form), signed
	// prekeys and prekeys (X25519 form).
	PublicKeySize = 32
	// SignatureSize is the size of the signed prekey signature and of a
	// label signature (Ed25519, RFC 8032).
	SignatureSize = 64
)

// A Device is one entry of a device list (XEP-0384 §5.3.1).
//
// Label is only meaningful once verified against the device's identity key
// with VerifyLabel: the XEP requires that an unsigned or badly signed label
// be ignored.
type Device struct {
	ID       uint32
	Label    string
	LabelSig []byte
}

// DeviceList is the <devices/> payload published at item "current" of
// NodeDevices (XEP-0384 §5.3.1). The list may be empty.
type DeviceList struct {
	Devices []Device
}

// IDs returns the device ids of l in order.
func (l *DeviceList) IDs() []uint32 {
	ids := make([]uint32, len(l.Devices))
	for i, d := range l.Devices {
		ids[i] = d.ID
	}
	return ids
}

// Contains reports whether the device id is on the list.
func (l *DeviceList) Contains(id uint32) bool {
	for _, d := range l.Devices {
		if d.ID == id {
			return true
		}
	}
	return false
}

// TokenReader implements xmlstream.Marshaler.
func (l DeviceList) TokenReader() xml.TokenReader {
	children := make([]xml.TokenReader, 0, len(l.Devices))
	for _, d := range l.Devices {
		a := []xml.Attr{xmlx.UintAttr("id", d.ID)}
		if d.Label != "" || d.LabelSig != nil {
			a = append(a, xml.Attr{Name: xml.Name{Local: "label"}, Value: d.Label})
		}
		if d.LabelSig != nil {
			a = append(a, xml.Attr{Name: xml.Name{Local: "labelsig"}, Value: xmlx.EncodeBase64(d.LabelSig)})
		}
		children = append(children, xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Local: "device"}, Attr: a}))
	}
	return xmlstream.Wrap(xmlstream.MultiReader(children...), xml.StartElement{Name: xml.Name{Space: NS, Local: "devices"}})
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

// UnmarshalXML implements xml.Unmarshaler. It is strict: unknown elements
// or attributes, device ids outside 1…2^31−1, duplicate ids, more than
// MaxDevices devices, labels over MaxLabelSize bytes and labelsig that is not
// base64 are errors wrapping ErrMalformed. A labelsig of the wrong length is
// kept; it simply never verifies.
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
	if err := checkName(start, "devices"); err != nil {
		return l, err
	}
	if _, err := strict.Attrs(start); err != nil {
		return l, err
	}
	seen := make(map[uint32]bool)
	for {
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
		if len(l.Devices) >= MaxDevices {
			return l, malformed("more than %d devices", MaxDevices)
		}
		m, err := strict.Attrs(*child, "id", "label", "labelsig")
		if err != nil {
			return l, err
		}
		idText, ok := m["id"]
		if !ok {
			return l, malformed("device without id")
		}
		dev := Device{}
		if dev.ID, err = parseDeviceID(idText, "device id"); err != nil {
			return l, err
		}
		if seen[dev.ID] {
			return l, malformed("duplicate device id %d", dev.ID)
		}
		seen[dev.ID] = true
		if label, ok := m["label"]; ok {
			if len(label) > MaxLabelSize || !validLabel(label) {
				return l, malformed("invalid label")
			}
			dev.Label = label
		}
		if sig, ok := m["labelsig"]; ok {
			if _, hasLabel := m["label"]; !hasLabel {
				return l, malformed("labelsig without label")
			}
			if dev.LabelSig, err = strict.DecodeBase64(sig, "labelsig", SignatureSize*2); err != nil {
				return l, err
			}
		}
		if end, err := strict.NextChild(d); err != nil {
			return l, err
		} else if end != nil {
			return l, malformed("unexpected <%s> in <device>", end.Name.Local)
		}
		l.Devices = append(l.Devices, dev)
	}
}

// PreKey is one public one-time prekey of a bundle (XEP-0384 §5.3.2): a raw
// 32-byte X25519 public key and its id.
type PreKey struct {
	ID  uint32
	Key []byte
}

// Bundle is the <bundle/> payload published at item id <device id> of
// NodeBundles (XEP-0384 §5.3.2).
//
// IdentityKey is the Ed25519 form (RFC 8032 encoding); SignedPreKey and the
// prekeys are raw X25519 public keys; SignedPreKeySignature is the Ed25519
// signature by the identity key over the raw 32-byte signed prekey. The
// parser checks sizes, not signatures.
//
// Prekey id 0 is accepted when parsing (Converse.js publishes it) but never
// chosen when building a session.
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

// TokenReader implements xmlstream.Marshaler.
func (b Bundle) TokenReader() xml.TokenReader {
	pks := make([]xml.TokenReader, 0, len(b.PreKeys))
	for _, pk := range b.PreKeys {
		pks = append(pks, xmlx.TextElement("pk", []xml.Attr{xmlx.UintAttr("id", pk.ID)}, xmlx.EncodeBase64(pk.Key)))
	}
	return xmlstream.Wrap(
		xmlstream.MultiReader(
			xmlx.TextElement("spk", []xml.Attr{xmlx.UintAttr("id", b.SignedPreKeyID)}, xmlx.EncodeBase64(b.SignedPreKey)),
			xmlx.TextElement("spks", nil, xmlx.EncodeBase64(b.SignedPreKeySignature)),
			xmlx.TextElement("ik", nil, xmlx.EncodeBase64(b.IdentityKey)),
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

// UnmarshalXML implements xml.Unmarshaler. It is strict: <spk>, <spks>,
// <ik> and <prekeys> exactly once each in any order (xs:all), 1 to
// MaxBundlePreKeys prekeys, exact key and signature sizes, no duplicate
// prekey ids or keys, canonical base64; errors wrap ErrMalformed.
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
	var haveSPK, haveSPKS, haveIK, havePKs bool
	keyText := base64TextLimit(PublicKeySize)
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
		case "spk":
			if haveSPK {
				return b, malformed("duplicate <spk>")
			}
			haveSPK = true
			m, err := strict.Attrs(*child, "id")
			if err != nil {
				return b, err
			}
			id, ok := m["id"]
			if !ok {
				return b, malformed("<spk> without id")
			}
			if b.SignedPreKeyID, err = parseUint32(id, "spk id"); err != nil {
				return b, err
			}
			text, err := strict.ReadText(d, keyText, "spk")
			if err != nil {
				return b, err
			}
			if b.SignedPreKey, err = decodeKey(text, "spk", PublicKeySize); err != nil {
				return b, err
			}
		case "spks":
			if haveSPKS {
				return b, malformed("duplicate <spks>")
			}
			haveSPKS = true
			if _, err := strict.Attrs(*child); err != nil {
				return b, err
			}
			text, err := strict.ReadText(d, base64TextLimit(SignatureSize), "spks")
			if err != nil {
				return b, err
			}
			if b.SignedPreKeySignature, err = decodeKey(text, "spks", SignatureSize); err != nil {
				return b, err
			}
		case "ik":
			if haveIK {
				return b, malformed("duplicate <ik>")
			}
			haveIK = true
			if _, err := strict.Attrs(*child); err != nil {
				return b, err
			}
			text, err := strict.ReadText(d, keyText, "ik")
			if err != nil {
				return b, err
			}
			if b.IdentityKey, err = decodeKey(text, "ik", PublicKeySize); err != nil {
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
	if !haveSPK || !haveSPKS || !haveIK || !havePKs {
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
		if err := checkName(*child, "pk"); err != nil {
			return nil, err
		}
		if len(pks) >= MaxBundlePreKeys {
			return nil, malformed("more than %d prekeys", MaxBundlePreKeys)
		}
		m, err := strict.Attrs(*child, "id")
		if err != nil {
			return nil, err
		}
		idText, ok := m["id"]
		if !ok {
			return nil, malformed("<pk> without id")
		}
		id, err := parseUint32(idText, "pk id")
		if err != nil {
			return nil, err
		}
		text, err := strict.ReadText(d, keyText, "pk")
		if err != nil {
			return nil, err
		}
		key, err := decodeKey(text, "pk", PublicKeySize)
		if err != nil {
			return nil, err
		}
		if ids[id] {
			return nil, malformed("duplicate pk id %d", id)
		}
		if keys[string(key)] {
			return nil, malformed("duplicate pk")
		}
		ids[id], keys[string(key)] = true, true
		pks = append(pks, PreKey{ID: id, Key: key})
	}
	if len(pks) == 0 {
		return nil, malformed("bundle without prekeys")
	}
	return pks, nil
}

// Key is one <key/> of an <encrypted/> header (XEP-0384 §5.5.3): the
// serialized OMEMOKeyExchange (KEX true) or OMEMOAuthenticatedMessage (KEX
// false) for the recipient device RID.
type Key struct {
	RID  uint32
	KEX  bool
	Data []byte
}

// Keys is one <keys jid=…/> of an <encrypted/> header: the keys for the
// devices of one bare JID.
type Keys struct {
	JID  jid.JID
	Keys []Key
}

// Encrypted is the <encrypted/> element (XEP-0384 §5.5.3): the sender device
// SID, the key for every recipient device grouped by bare JID, and the
// AES-256-CBC ciphertext of the SCE envelope. Payload is nil in an empty
// OMEMO message (key exchange completion, heartbeat).
//
// Marshalling writes kex='true' only when KEX is true and never
// kex='false': python-omemo reads any kex value, even "false", as true.
type Encrypted struct {
	SID     uint32
	Keys    []Keys
	Payload []byte
}

// Find returns the key for device rid of the bare JID j, or nil.
func (e *Encrypted) Find(j jid.JID, rid uint32) *Key {
	for i := range e.Keys {
		if !e.Keys[i].JID.Equal(j) {
			continue
		}
		for k := range e.Keys[i].Keys {
			if e.Keys[i].Keys[k].RID == rid {
				return &e.Keys[i].Keys[k]
			}
		}
	}
	return nil
}

// TokenReader implements xmlstream.Marshaler.
func (e Encrypted) TokenReader() xml.TokenReader {
	groups := make([]xml.TokenReader, 0, len(e.Keys))
	for _, ks := range e.Keys {
		keys := make([]xml.TokenReader, 0, len(ks.Keys))
		for _, k := range ks.Keys {
			a := []xml.Attr{xmlx.UintAttr("rid", k.RID)}
			if k.KEX {
				a = append(a, xml.Attr{Name: xml.Name{Local: "kex"}, Value: "true"})
			}
			keys = append(keys, xmlx.TextElement("key", a, xmlx.EncodeBase64(k.Data)))
		}
		groups = append(groups, xmlstream.Wrap(xmlstream.MultiReader(keys...), xml.StartElement{
			Name: xml.Name{Local: "keys"},
			Attr: []xml.Attr{{Name: xml.Name{Local: "jid"}, Value: ks.JID.String()}},
		}))
	}
	parts := []xml.TokenReader{
		xmlstream.Wrap(xmlstream.MultiReader(groups...), xml.StartElement{Name: xml.Name{Local: "header"}, Attr: []xml.Attr{xmlx.UintAttr("sid", e.SID)}}),
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

// UnmarshalXML implements xml.Unmarshaler. It is strict: exactly one
// <header> with a valid sid, at most one non-empty <payload> (xs:all, any
// order), at least one <keys> with a bare JID and at least one <key> each,
// no duplicate JID or rid, kex one of true/1/false/0, canonical base64,
// limits MaxKeyJIDs, MaxKeys, MaxKeyDataSize and MaxPayloadSize; errors wrap
// ErrMalformed. The contents of <key> are not parsed here.
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
			if len(e.Payload) == 0 {
				return e, malformed("empty <payload>")
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
	total := 0
	keyText := base64TextLimit(MaxKeyDataSize)
	jids := make(map[string]bool)
	for {
		child, err := strict.NextChild(d)
		if err != nil {
			return err
		}
		if child == nil {
			break
		}
		if err := checkName(*child, "keys"); err != nil {
			return err
		}
		if len(e.Keys) >= MaxKeyJIDs {
			return malformed("more than %d <keys>", MaxKeyJIDs)
		}
		m, err := strict.Attrs(*child, "jid")
		if err != nil {
			return err
		}
		js, ok := m["jid"]
		if !ok {
			return malformed("<keys> without jid")
		}
		j, err := jid.Parse(js)
		if err != nil || j.Resourcepart() != "" || j.Domainpart() == "" {
			return malformed("<keys> jid is not a bare JID")
		}
		if jids[j.String()] {
			return malformed("duplicate <keys> for one JID")
		}
		jids[j.String()] = true
		ks := Keys{JID: j}
		rids := make(map[uint32]bool)
		for {
			kc, err := strict.NextChild(d)
			if err != nil {
				return err
			}
			if kc == nil {
				break
			}
			if err := checkName(*kc, "key"); err != nil {
				return err
			}
			if total >= MaxKeys {
				return malformed("more than %d <key>", MaxKeys)
			}
			total++
			m, err := strict.Attrs(*kc, "rid", "kex")
			if err != nil {
				return err
			}
			rid, ok := m["rid"]
			if !ok {
				return malformed("<key> without rid")
			}
			k := Key{}
			if k.RID, err = parseDeviceID(rid, "rid"); err != nil {
				return err
			}
			if kex, ok := m["kex"]; ok {
				if k.KEX, err = parseBool(kex, "kex"); err != nil {
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
			if len(k.Data) == 0 {
				return malformed("empty <key>")
			}
			if rids[k.RID] {
				return malformed("duplicate rid %d", k.RID)
			}
			rids[k.RID] = true
			ks.Keys = append(ks.Keys, k)
		}
		if len(ks.Keys) == 0 {
			return malformed("<keys> without <key>")
		}
		e.Keys = append(e.Keys, ks)
	}
	if len(e.Keys) == 0 {
		return malformed("<header> without <keys>")
	}
	return nil
}
