package omemo

// Protocol names one of the two OMEMO versions a device may speak. One
// Manager speaks both with one identity key and one device id (DESIGN: one
// identity per device): the identity key travels in its Ed25519 form in
// OMEMO 2 and in its Curve25519 form in legacy OMEMO.
type Protocol uint8

// Protocols. The zero value means none (or not known).
const (
	// ProtocolOMEMO2 is OMEMO 2, XEP-0384 0.9.1, namespace
	// urn:xmpp:omemo:2: SCE envelopes, so every element of a stanza is
	// protected.
	ProtocolOMEMO2 Protocol = iota + 1
	// ProtocolLegacy is legacy OMEMO, XEP-0384 0.3, namespace
	// eu.siacs.conversations.axolotl (package omemo/legacy): the message
	// body alone is protected.
	ProtocolLegacy
)

var protocolText = [...]string{"none", "OMEMO 2", "legacy OMEMO"}

// String returns the protocol's name.
func (p Protocol) String() string {
	if int(p) < len(protocolText) {
		return protocolText[p]
	}
	return "unknown protocol"
}
