package omemo

import "time"

// DeviceInfo describes one device of a bare JID as this device knows it.
// It is what a TrustPolicy decides on.
type DeviceInfo struct {
	Address
	// IdentityKey is the device's identity key in Ed25519 form, from its
	// session or its bundle (a legacy one converted with the sign bit its
	// signature carries); nil when neither is known.
	IdentityKey []byte
	// Trust is the level recorded with Manager.SetTrust for IdentityKey.
	Trust TrustLevel
	// Own is true for the other devices of this account.
	Own bool
	// Listed is true when the device is on the last device list seen,
	// OMEMO 2 or legacy.
	Listed bool
	// Protocol is the protocol the device is encrypted to with: OMEMO 2
	// when it is on the OMEMO 2 device list, legacy OMEMO when only on the
	// legacy one; for a device on neither, that of its session.
	Protocol Protocol
	// Session is true when there is a session with the device (in
	// either protocol).
	Session bool
	// Label is the device label if its labelsig verifies under
	// IdentityKey, otherwise "" (XEP-0384 §5.3.1).
	Label string
	// LastMessage is when this device last decrypted a message from the
	// device (either protocol; to the second), zero when never or not
	// recorded. Set by Manager.Devices only.
	LastMessage time.Time
}

// TrustPolicy decides whether a device may be given the key of a message
// (XEP-0384 §8: "Clients MUST NOT use a newly built session (or any other
// session) to transmit data without ensuring trust first"). Empty OMEMO
// messages are exempt and never consult it.
type TrustPolicy interface {
	Allow(DeviceInfo) bool
}

// TrustFunc adapts a function to TrustPolicy.
type TrustFunc func(DeviceInfo) bool

// Allow implements TrustPolicy.
func (f TrustFunc) Allow(d DeviceInfo) bool { return f(d) }

// BlindTrust allows every device whose key is not explicitly distrusted:
// new keys are used before any verification (the "blind trust" half of
// BTBV, which XEP-0384 0.9 no longer forbids). Package trust layers the
// "…before verification" half on top.
type BlindTrust struct{}

// Allow implements TrustPolicy.
func (BlindTrust) Allow(d DeviceInfo) bool { return d.Trust != TrustDistrusted }

// ManualTrust allows only devices whose key was marked trusted or
// verified. It is the default policy.
type ManualTrust struct{}

// Allow implements TrustPolicy.
func (ManualTrust) Allow(d DeviceInfo) bool {
	return d.Trust == TrustTrusted || d.Trust == TrustVerified
}
