package trust

import (
	"bytes"
	"encoding/xml"
	"fmt"

	"hush.im/internal/xmlx"
	"hush.im/omemo"
	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
)

// Namespaces of XEP-0434 Trust Messages 0.6.0 and XEP-0450 Automatic
// Trust Management 0.4.0.
//
// mellium.im/xmpp/crypto encodes trust messages too, but it is not a leaf
// package (it imports mellium's session and mux layers), which DESIGN.md
// forbids in core packages, and its parser accepts unknown children, any
// base64 and unbounded input. TrustMessage is this package's strict
// equivalent.
const (
	// NSTM is the namespace of <trust-message/> (XEP-0434 §4).
	NSTM = "urn:xmpp:tm:1"
	// NSATM is ATM's namespace, the usage attribute of its trust
	// messages (XEP-0450 §8.1).
	NSATM = "urn:xmpp:atm:1"
)

// Limits applied when parsing trust messages. XEP-0434 sets none; they
// bound memory and work per message.
const (
	// MaxKeyOwners is the most <key-owner/> elements in one message.
	MaxKeyOwners = 1024
	// MaxOwnerKeys is the most <trust/> and <distrust/> elements under
	// one <key-owner/>: omemo.MaxDevices.
	MaxOwnerKeys = omemo.MaxDevices
	// MaxKeyIDSize is the largest key identifier accepted, in bytes. An
	// OMEMO 2 key identifier is an identity key, 32 bytes; other
	// encryption protocols may use other identifiers.
	MaxKeyIDSize = 64
	// MaxURISize bounds the usage and encryption attributes and the
	// key-owner jid, in bytes (a JID is at most 3071 bytes, RFC 7622 §3.1;
	// a bare one at most 2047).
	MaxURISize = 2047
)

// KeyDecision is one <trust/> (Trust true) or <distrust/> (Trust false)
// element of a trust message: a key identifier, for OMEMO 2 the identity
// key in Ed25519 form, as in the bundle's <ik/> (XEP-0434 §4 leaves the
// form to the encryption protocol; see DIGEST §8.1).
type KeyDecision struct {
	Key   []byte
	Trust bool
}

// KeyOwner is a <key-owner/> element: the decisions about the keys of one
// bare JID, in document order.
type KeyOwner struct {
	JID  jid.JID
	Keys []KeyDecision
}

// TrustMessage is XEP-0434's <trust-message/> (§4): decisions about the
// keys of one or more bare JIDs, for a usage (ATM: NSATM) and an
// encryption protocol (OMEMO 2: omemo.NS).
//
//	<trust-message xmlns='urn:xmpp:tm:1' usage='urn:xmpp:atm:1' encryption='urn:xmpp:omemo:2'>
//	  <key-owner jid='alice@example.org'>
//	    <trust>base64</trust>
//	    <distrust>base64</distrust>
//	  </key-owner>
//	</trust-message>
//
// XEP-0434 §4 and §5.2, XEP-0450 §1: it travels as a direct child of the
// <content/> of an SCE envelope whose profile includes <rpad/> and <time/>,
// encrypted to authenticated devices only, in a message of type chat with
// a <store/> hint; accept it only from such an envelope.
type TrustMessage struct {
	Usage      string
	Encryption string
	Owners     []KeyOwner
}

// NewATMMessage returns a trust message for ATM over OMEMO 2 with the
// given owners.
func NewATMMessage(owners ...KeyOwner) *TrustMessage {
	return &TrustMessage{Usage: NSATM, Encryption: omemo.NS, Owners: owners}
}

// TokenReader implements xmlstream.Marshaler.
func (tm *TrustMessage) TokenReader() xml.TokenReader {
	owners := make([]xml.TokenReader, 0, len(tm.Owners))
	for _, o := range tm.Owners {
		keys := make([]xml.TokenReader, 0, len(o.Keys))
		for _, k := range o.Keys {
			local := "distrust"
			if k.Trust {
				local = "trust"
			}
			keys = append(keys, xmlx.TextElement(local, nil, xmlx.EncodeBase64(k.Key)))
		}
		owners = append(owners, xmlstream.Wrap(xmlstream.MultiReader(keys...), xml.StartElement{
			Name: xml.Name{Local: "key-owner"},
			Attr: []xml.Attr{{Name: xml.Name{Local: "jid"}, Value: o.JID.String()}},
		}))
	}
	return xmlstream.Wrap(xmlstream.MultiReader(owners...), xml.StartElement{
		Name: xml.Name{Space: NSTM, Local: "trust-message"},
		Attr: []xml.Attr{
			{Name: xml.Name{Local: "usage"}, Value: tm.Usage},
			{Name: xml.Name{Local: "encryption"}, Value: tm.Encryption},
		},
	})
}

// WriteXML implements xmlstream.WriterTo.
func (tm *TrustMessage) WriteXML(w xmlstream.TokenWriter) (int, error) {
	return xmlstream.Copy(w, tm.TokenReader())
}

// MarshalXML implements xml.Marshaler.
func (tm *TrustMessage) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	_, err := tm.WriteXML(e)
	return err
}

// UnmarshalXML implements xml.Unmarshaler. It is strict (XEP-0434 §4):
// usage and encryption present and non-empty, 1 to MaxKeyOwners
// <key-owner/> with distinct bare JIDs, each with 1 to MaxOwnerKeys
// <trust/> or <distrust/> holding canonical base64 of 1 to MaxKeyIDSize
// bytes, no key twice under one owner, nothing else. Errors wrap
// ErrMalformed.
func (tm *TrustMessage) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	out, err := parseTrustMessage(d, start)
	if err != nil {
		return err
	}
	*tm = out
	return nil
}

func parseTrustMessage(d xml.TokenReader, start xml.StartElement) (TrustMessage, error) {
	var tm TrustMessage
	if err := strict.CheckName(start, NSTM, "trust-message"); err != nil {
		return tm, err
	}
	m, err := attrs(start, []string{"usage", "encryption"}, "usage", "encryption")
	if err != nil {
		return tm, err
	}
	tm.Usage, tm.Encryption = m["usage"], m["encryption"]
	for _, v := range []string{tm.Usage, tm.Encryption} {
		if v == "" || len(v) > MaxURISize {
			return tm, malformed("usage or encryption empty or longer than %d bytes", MaxURISize)
		}
	}
	seen := make(map[string]bool)
	for {
		child, err := strict.NextChild(d)
		if err != nil {
			return tm, err
		}
		if child == nil {
			break
		}
		if err := strict.CheckName(*child, NSTM, "key-owner"); err != nil {
			return tm, err
		}
		if len(tm.Owners) >= MaxKeyOwners {
			return tm, malformed("more than %d key owners", MaxKeyOwners)
		}
		o, err := parseKeyOwner(d, *child)
		if err != nil {
			return tm, err
		}
		if seen[o.JID.String()] {
			return tm, malformed("key owner %s listed twice", o.JID)
		}
		seen[o.JID.String()] = true
		tm.Owners = append(tm.Owners, o)
	}
	if len(tm.Owners) == 0 {
		return tm, malformed("trust message without key owner")
	}
	return tm, nil
}

func parseKeyOwner(d xml.TokenReader, start xml.StartElement) (KeyOwner, error) {
	var o KeyOwner
	m, err := attrs(start, []string{"jid"}, "jid")
	if err != nil {
		return o, err
	}
	if len(m["jid"]) > MaxURISize {
		return o, malformed("key owner jid longer than %d bytes", MaxURISize)
	}
	j, err := jid.Parse(m["jid"])
	if err != nil {
		return o, malformed("invalid key owner jid")
	}
	if j.Resourcepart() != "" {
		return o, malformed("key owner jid is not bare")
	}
	o.JID = j
	seen := make(map[string]bool)
	for {
		child, err := strict.NextChild(d)
		if err != nil {
			return o, err
		}
		if child == nil {
			break
		}
		if child.Name.Space != NSTM || (child.Name.Local != "trust" && child.Name.Local != "distrust") {
			return o, malformed("unexpected <%s xmlns='%s'> in <key-owner>", child.Name.Local, child.Name.Space)
		}
		if _, err := attrs(*child, nil); err != nil {
			return o, err
		}
		if len(o.Keys) >= MaxOwnerKeys {
			return o, malformed("more than %d keys for one owner", MaxOwnerKeys)
		}
		k, err := readBase64(d, "key identifier", -MaxKeyIDSize)
		if err != nil {
			return o, err
		}
		if seen[string(k)] {
			return o, malformed("key listed twice for %s", o.JID)
		}
		seen[string(k)] = true
		o.Keys = append(o.Keys, KeyDecision{Key: k, Trust: child.Name.Local == "trust"})
	}
	if len(o.Keys) == 0 {
		return o, malformed("key owner without keys")
	}
	return o, nil
}

// Sender is the device a trust message came from, as the OMEMO layer
// authenticated it: omemo.Decrypted's Sender.JID, IdentityKey and Trust.
type Sender struct {
	JID         jid.JID
	IdentityKey []byte
	Trust       omemo.TrustLevel
}

// Decision is a trust level to record for one key of one bare JID
// (omemo.Manager.SetTrust): omemo.TrustVerified for an authentication,
// omemo.TrustDistrusted for a distrust.
type Decision struct {
	JID         jid.JID
	IdentityKey []byte
	Level       omemo.TrustLevel
}

// Evaluation is what XEP-0450 makes of one trust message.
type Evaluation struct {
	// Apply are the decisions to record now.
	Apply []Decision
	// Ignored are decisions the sender may not make: about keys of a JID
	// other than its own when it is a contact's device, or with a key
	// identifier that is not an OMEMO 2 identity key.
	Ignored []Decision
}

// EvaluateTrustMessage applies XEP-0450's receiving rules (§4.1.2, §4.2.2, §4.3.2, §4.4.2) to a trust
// message that arrived, inside an authenticated OMEMO 2 SCE envelope, at
// an account whose bare JID is own, from the device from.
//
//   - It must be for ATM over OMEMO 2, else ErrNotATM.
//   - The sender's key must be authenticated (omemo.TrustVerified). Until
//     it is, the result is ErrUnauthenticatedSender and XEP-0450 §5.1 says
//     the caller MUST store the message and evaluate it again once the
//     sender's key is verified. A distrusted sender gives
//     ErrDistrustedSender: drop the message.
//   - An own device (from.JID is own) may authenticate or distrust the
//     keys of any JID: own devices' and contacts' (§4.1.2, §4.2.2, §4.3.2,
//     §4.4.2). A contact's device may do so only for the keys of its own
//     JID (§4.1.2, §4.4.2); decisions about other JIDs are Ignored.
//
// Keys not fetched yet need no waiting (§5.2): trust is recorded per
// identity key, so SetTrust applies to a device whose bundle comes later.
// The caller skips a decision about this device's own key.
func EvaluateTrustMessage(own jid.JID, from Sender, tm *TrustMessage) (Evaluation, error) {
	var ev Evaluation
	if tm == nil || tm.Usage != NSATM || tm.Encryption != omemo.NS {
		return ev, ErrNotATM
	}
	switch from.Trust {
	case omemo.TrustVerified:
	case omemo.TrustDistrusted:
		return ev, ErrDistrustedSender
	default:
		return ev, ErrUnauthenticatedSender
	}
	fromOwn := from.JID.Bare().Equal(own.Bare())
	for _, o := range tm.Owners {
		owner := o.JID.Bare()
		allowed := fromOwn || owner.Equal(from.JID.Bare())
		for _, k := range o.Keys {
			d := Decision{JID: owner, IdentityKey: bytes.Clone(k.Key), Level: omemo.TrustDistrusted}
			if k.Trust {
				d.Level = omemo.TrustVerified
			}
			if allowed && len(k.Key) == KeySize {
				ev.Apply = append(ev.Apply, d)
			} else {
				ev.Ignored = append(ev.Ignored, d)
			}
		}
	}
	return ev, nil
}

// MaySend reports whether a trust message may be encrypted to a device
// whose key has the given level: XEP-0450 §1 sends trust messages only to
// endpoints with authenticated keys.
func MaySend(level omemo.TrustLevel) bool { return level == omemo.TrustVerified }

// String returns a short description for logs.
func (d Decision) String() string {
	return fmt.Sprintf("%s %x… %s", d.JID, d.IdentityKey[:min(4, len(d.IdentityKey))], d.Level)
}
