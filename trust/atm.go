package trust

import (
	"bytes"
	"slices"
	"strings"

	"hush.im/omemo"
	"mellium.im/xmpp/jid"
)

// Endpoint is a device as this device knows it (XEP-0450 §2): its bare
// JID, its identity key (Ed25519 form) and the level recorded for that
// key. omemo.DeviceInfo gives all three.
type Endpoint struct {
	JID         jid.JID
	IdentityKey []byte
	Trust       omemo.TrustLevel
}

// EndpointOf returns the Endpoint of a device that omemo.Manager.Devices
// returned.
func EndpointOf(d omemo.DeviceInfo) Endpoint {
	return Endpoint{JID: d.JID.Bare(), IdentityKey: bytes.Clone(d.IdentityKey), Trust: d.Trust}
}

// Delivery is one trust message to send, encrypted only to the devices in
// To, which all have verified keys (XEP-0450 §1: "Trust messages are sent
// encrypted only to endpoints with authenticated keys").
type Delivery struct {
	To      []Endpoint
	Message *TrustMessage
}

// PlanAuthentication lists the trust messages XEP-0450 asks a device of
// the account own to send after the user authenticated (verified) the key
// of target by hand, e.g. with a Verification: known are the other
// devices this device knows, own and contacts', with their levels. The
// deliveries are:
//
//   - a contact's key (§4.1.1): an authentication message for it to each
//     own device with a verified key, and one for all verified own keys to
//     target;
//   - an own device's key (§4.2.1): an authentication message for it to
//     every other device with a verified key, own and contacts', and one
//     for all verified keys, own and contacts', to target.
//
// Deliveries with no recipient or no key are left out.
func PlanAuthentication(own jid.JID, target Endpoint, known []Endpoint) []Delivery {
	own, target.JID = own.Bare(), target.JID.Bare()
	// §4.1.1 and §4.2.1 send to the same devices the same keys: the own
	// verified ones for a contact's key, all verified ones for an own key.
	ownTarget := target.JID.Equal(own)
	to := verified(without(known, target), func(e Endpoint) bool { return ownTarget || e.JID.Equal(own) })
	var out []Delivery
	if len(to) > 0 {
		out = append(out,
			Delivery{To: to, Message: message([]Endpoint{target}, true)},
			Delivery{To: []Endpoint{target}, Message: message(to, true)})
	}
	return out
}

// PlanDistrust lists the trust messages XEP-0450 asks a device of the
// account own to send after the user distrusted the key of target:
// a distrust message for it to every other device with a verified key
// when target is an own device (§4.3.1), to the own devices with verified
// keys when it is a contact's (§4.4.1).
func PlanDistrust(own jid.JID, target Endpoint, known []Endpoint) []Delivery {
	own, target.JID = own.Bare(), target.JID.Bare()
	ownTarget := target.JID.Equal(own)
	to := verified(without(known, target), func(e Endpoint) bool { return ownTarget || e.JID.Equal(own) })
	if len(to) == 0 {
		return nil
	}
	return []Delivery{{To: to, Message: message([]Endpoint{target}, false)}}
}

// without returns known without target's key.
func without(known []Endpoint, target Endpoint) []Endpoint {
	var out []Endpoint
	for _, e := range known {
		if !bytes.Equal(e.IdentityKey, target.IdentityKey) || !e.JID.Bare().Equal(target.JID) {
			out = append(out, Endpoint{JID: e.JID.Bare(), IdentityKey: e.IdentityKey, Trust: e.Trust})
		}
	}
	return out
}

// verified returns the endpoints with a verified key of KeySize bytes
// for which keep is true.
func verified(es []Endpoint, keep func(Endpoint) bool) []Endpoint {
	var out []Endpoint
	for _, e := range es {
		if MaySend(e.Trust) && len(e.IdentityKey) == KeySize && keep(e) {
			out = append(out, e)
		}
	}
	return out
}

// message builds an ATM trust message about the keys of es, one
// <key-owner/> per JID in JID order, keys in the order given, each key
// once.
func message(es []Endpoint, trust bool) *TrustMessage {
	byOwner := map[string]*KeyOwner{}
	var owners []string
	for _, e := range es {
		k := e.JID.String()
		o, ok := byOwner[k]
		if !ok {
			o = &KeyOwner{JID: e.JID}
			byOwner[k] = o
			owners = append(owners, k)
		}
		if !slices.ContainsFunc(o.Keys, func(d KeyDecision) bool { return bytes.Equal(d.Key, e.IdentityKey) }) {
			o.Keys = append(o.Keys, KeyDecision{Key: bytes.Clone(e.IdentityKey), Trust: trust})
		}
	}
	slices.SortFunc(owners, strings.Compare)
	tm := NewATMMessage()
	for _, k := range owners {
		tm.Owners = append(tm.Owners, *byOwner[k])
	}
	return tm
}
