package legacy

import (
	"errors"
	"fmt"
)

// Errors returned by this package. Callers branch on them with errors.Is.
var (
	// ErrMalformed is wrapped by every error about public data that does
	// not conform to XEP-0384 0.3 (its XML schema as python-oldmemo
	// applies it), to libsignal's wire format, or to this package's
	// limits: PEP payloads, <encrypted> elements, the unauthenticated
	// header of a PreKeySignalMessage, IV sizes, serialized sessions. Such
	// errors say what was wrong: the data is not secret.
	ErrMalformed = errors.New("legacy: malformed data")

	// ErrDecryption is the error of every failure to decrypt something
	// addressed to this device: a SignalMessage with a wrong version byte,
	// truncated MAC, bad MAC or bad padding, a ratchet key that is not
	// usable, key material of the wrong size, or a GCM tag that does not
	// verify. It never says which check failed (no oracle). XEP-0384 0.3
	// §Receiving a message: such elements MUST be silently discarded.
	ErrDecryption = errors.New("legacy: decryption failed")

	// ErrDuplicate is returned by Session.Decrypt for a message whose key
	// was already used (a replay, or a message seen both live and in the
	// archive). errors.Is(err, ErrDecryption) holds; callers drop it
	// quietly.
	ErrDuplicate = fmt.Errorf("%w: message key already used", ErrDecryption)

	// ErrInvalidBundle is wrapped by the errors of Initiate and
	// VerifyBundle for a bundle that cannot be used to build a session:
	// unusable keys, no usable prekey, a bad signature.
	ErrInvalidBundle = errors.New("legacy: unusable bundle")

	// ErrBadSignature is returned when a bundle's signedPreKeySignature
	// does not verify under its identity key (libsignal's curve25519
	// signature over the 33-byte signed prekey, DIGEST §5.6). It wraps
	// ErrInvalidBundle.
	ErrBadSignature = fmt.Errorf("%w: invalid signed prekey signature", ErrInvalidBundle)

	// ErrNoPreKey is returned when a bundle offers no prekey that may be
	// used: none at all, or only id 0, which Converse.js publishes and
	// mishandles (DESIGN: never pick a peer's prekey 0). It wraps
	// ErrInvalidBundle.
	ErrNoPreKey = fmt.Errorf("%w: no usable prekey", ErrInvalidBundle)
)

// malformed returns an error wrapping ErrMalformed that describes what was
// wrong with public, unauthenticated data.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}
