package omemo

import (
	"errors"
	"strings"

	"mellium.im/xmpp/jid"
)

// Errors returned by this package. Callers branch on them with errors.Is.
var (
	// ErrMalformed is wrapped by every error about public XML or store
	// records that do not conform to XEP-0384 §11 or to this package's
	// limits. Such errors say what was wrong: the data is not secret.
	ErrMalformed = errors.New("malformed OMEMO element")

	// ErrNotForThisDevice is returned by Decrypt when the <encrypted>
	// element holds no <key> for this device under the own bare JID
	// (XEP-0384 §5.6: a warning SHOULD be displayed). It is not a decryption
	// failure and changes no state.
	ErrNotForThisDevice = errors.New("omemo: message not encrypted for this device")

	// ErrDecryption is returned for every failure to decrypt a message
	// that was addressed to this device: malformed key data, unknown
	// prekey or signed prekey, invalid or low-order keys, a bad MAC,
	// skipped too far, bad padding. It deliberately does not say which
	// check failed. The store is unchanged.
	ErrDecryption = errors.New("omemo: decryption failed")

	// ErrDuplicate is returned when a <key> already decrypted by this
	// device arrives again (a replay, or a message seen both live and in
	// the archive). XEP-0384 §6: a duplicate MUST NOT be shown as an
	// error; callers drop it quietly. The store is unchanged.
	ErrDuplicate = errors.New("omemo: duplicate message")

	// ErrNoSession is returned by Decrypt for a message that is not a key
	// exchange from a device with which there is no session. XEP-0384 §6
	// suggests building one and announcing it with an empty message:
	// fetch the device's bundle (SetBundle), then EncryptEmpty.
	ErrNoSession = errors.New("omemo: no session with the sending device")

	// ErrNotFound is returned by store getters when a record does not
	// exist.
	ErrNotFound = errors.New("omemo: not found")

	// ErrNoRecipients is returned by Encrypt when not a single device
	// (recipient or other own device) could be given a key.
	ErrNoRecipients = errors.New("omemo: no recipient device")

	// ErrUnknownDevice is returned when an operation names a device of
	// which nothing (no session, no bundle) is known; and by
	// DecryptLegacy for a legacy key exchange from a device whose identity
	// key's Ed25519 sign bit it cannot tell (legacy OMEMO does not carry
	// it in messages): fetch the device's legacy bundle, give it to
	// SetLegacyBundle and decrypt again. Nothing changed.
	ErrUnknownDevice = errors.New("omemo: unknown device")

	// ErrIdentityMismatch is returned when a bundle, or a key exchange
	// that authenticates, carries an identity key other than the one
	// already recorded for that device (its session or cached bundle).
	// Nothing changes; replacing a device's identity needs
	// Manager.ForgetDevice first.
	ErrIdentityMismatch = errors.New("omemo: identity key changed for a known device")
)

// NoEligibleDevicesError is returned by Encrypt when a recipient bare JID
// has no device that could be given a key (none announced, none trusted,
// no usable bundle). Nothing was encrypted and no state changed; Report
// says why each device was left out.
type NoEligibleDevicesError struct {
	JIDs   []jid.JID
	Report *Report
}

// Error lists the recipients without an eligible device.
func (e *NoEligibleDevicesError) Error() string {
	s := make([]string, len(e.JIDs))
	for i, j := range e.JIDs {
		s[i] = j.String()
	}
	return "omemo: no eligible device for " + strings.Join(s, ", ")
}
