package omemo

import (
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
)

var reasonText = [...]string{
	ReasonNone:          "ok",
	ReasonUntrusted:     "untrusted",
	ReasonNoBundle:      "no bundle",
	ReasonInvalidBundle: "invalid bundle",
	ReasonInactive:      "inactive",
	ReasonNoDeviceList:  "no device list",
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
	// Reason is ReasonNone when the device got a key.
	Reason Reason
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
