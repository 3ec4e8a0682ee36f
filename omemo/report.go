package omemo

import (
	"encoding/xml"

	"mellium.im/xmpp/jid"
)

// Reason says why a device was not given a key by Encrypt.
type Reason uint8

// Reasons for leaving a device out of a message.
const (
	// ReasonNone: the device got a key.
	ReasonNone Reason = iota
	// ReasonUntrusted: the TrustPolicy refused the device's identity key
	// (XEP-0384 §8: never send data through an untrusted session).
	ReasonUntrusted
	// ReasonNoBundle: there is no session with the device and no bundle
	// for it was given with SetBundle; fetch it and encrypt again.
	ReasonNoBundle
	// ReasonInvalidBundle: the bundle's signed prekey signature did not
	// verify, it offered no usable prekey, or its keys were invalid
	// (low-order points); Err says which.
	ReasonInvalidBundle
	// ReasonInactive: a session exists but the device is no longer on the
	// owner's device list (XEP-0384 §5.5.2: only devices on the list).
	ReasonInactive
	// ReasonNoDeviceList: no device list is known for the bare JID; the
	// DeviceReport has DeviceID 0.
	ReasonNoDeviceList
	// ReasonNoBody: the device speaks only legacy OMEMO, which carries
	// nothing but a message body (XEP-0384 0.3 §Sending a message), and
	// the message has none (a reaction, a receipt, a chat state…) or was
	// given none for legacy devices (Manager.Encrypt). Withheld lists what
	// the device would have missed.
	ReasonNoBody
)

var reasonText = [...]string{
	ReasonNone:          "ok",
	ReasonUntrusted:     "untrusted",
	ReasonNoBundle:      "no bundle",
	ReasonInvalidBundle: "invalid bundle",
	ReasonInactive:      "inactive",
	ReasonNoDeviceList:  "no device list",
	ReasonNoBody:        "legacy OMEMO carries only a body",
}

// String returns a short description of r.
func (r Reason) String() string {
	if int(r) < len(reasonText) {
		return reasonText[r]
	}
	return "unknown reason"
}

// DeviceReport is the outcome of one message for one device.
type DeviceReport struct {
	JID      jid.JID
	DeviceID uint32
	// Protocol is the protocol chosen for the device: OMEMO 2 when it is
	// on the account's OMEMO 2 device list, legacy OMEMO when it is only
	// on the legacy one (zero with ReasonNoDeviceList and for inactive
	// devices).
	Protocol Protocol
	// Reason is ReasonNone when the device got a key.
	Reason Reason
	// Withheld names the elements of the message that the device does
	// not get although it got a key (legacy OMEMO protects the body
	// alone: replies, reactions, other languages' bodies and every other
	// element that only an SCE envelope could protect are not sent to
	// it), or, with ReasonNoBody, would not have got.
	Withheld []xml.Name
	// KEX is true when the key carried a key exchange (a new session or
	// one the device has not answered yet).
	KEX bool
	// NewSession is true when the session was built for this message.
	NewSession bool
	// Err gives detail for ReasonInvalidBundle.
	Err error
}

// OK reports whether the device got a key.
func (d DeviceReport) OK() bool { return d.Reason == ReasonNone }

// Report lists, for every device considered by Encrypt, whether it got a
// key and if not, why (DESIGN: every send reports which devices got a key
// and why others did not).
type Report struct {
	Devices []DeviceReport
}

// Sent returns the reports of the devices that got a key.
func (r *Report) Sent() []DeviceReport {
	var out []DeviceReport
	for _, d := range r.Devices {
		if d.OK() {
			out = append(out, d)
		}
	}
	return out
}

// Skipped returns the reports of the devices that did not get a key.
func (r *Report) Skipped() []DeviceReport {
	var out []DeviceReport
	for _, d := range r.Devices {
		if !d.OK() {
			out = append(out, d)
		}
	}
	return out
}
