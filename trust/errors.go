package trust

import (
	"errors"
	"fmt"
)

// Errors returned by this package. Callers branch on them with errors.Is.
var (
	// ErrMalformed is wrapped by every error about XML or a Trust Message
	// URI that does not conform to its schema or this package's limits.
	// Such errors say what was wrong: the input is not secret.
	ErrMalformed = errors.New("malformed trust element")

	// ErrUnknownJID is returned by an Index for a bare JID whose devices
	// were never observed. BTBV treats it as "maybe verified" and refuses
	// undecided keys (fail closed).
	ErrUnknownJID = errors.New("trust: trust levels of JID unknown")

	// ErrInvalidKey is returned for an identity key that is not 32 bytes
	// (Ed25519 form, XEP-0384 §5.3.2), for an empty or oversized key set
	// and for a key listed twice.
	ErrInvalidKey = errors.New("trust: invalid identity key set")

	// ErrUnexpected is returned by Verification.Receive for a message
	// that is not valid in the current state (out of order, or one a party
	// in this role never receives). The state is unchanged.
	ErrUnexpected = errors.New("trust: unexpected SAS message")

	// ErrDuplicate is returned by Verification.Receive for a message of a
	// kind already received in this run (a replay, or a second answer).
	// The first one stands; the state is unchanged.
	ErrDuplicate = errors.New("trust: duplicate SAS message")

	// ErrSessionMismatch is returned by Verification.Receive for a
	// message of another verification run (its sid differs). The state is
	// unchanged.
	ErrSessionMismatch = errors.New("trust: SAS message of another verification")

	// ErrCommitment is returned by Verification.Receive when the revealed
	// nonce does not open the commitment: a man in the middle, or a broken
	// peer. The verification fails for good.
	ErrCommitment = errors.New("trust: SAS commitment does not match")

	// ErrCanceled is returned once the peer canceled or the user
	// rejected the strings; the verification is over.
	ErrCanceled = errors.New("trust: verification canceled")

	// ErrNotReady is returned by Verification.SAS and Confirm before both
	// nonces are known.
	ErrNotReady = errors.New("trust: short authentication string not available yet")

	// ErrFailed is returned for any call on a Verification that failed
	// earlier (commitment mismatch).
	ErrFailed = errors.New("trust: verification failed")

	// ErrUnauthenticatedSender is returned by EvaluateTrustMessage when
	// the sending device's key is not verified. XEP-0450 §5.1: the message
	// MUST be stored and evaluated again once it is.
	ErrUnauthenticatedSender = errors.New("trust: trust message from a device whose key is not authenticated")

	// ErrDistrustedSender is returned by EvaluateTrustMessage when the
	// sending device's key is distrusted; the message is dropped.
	ErrDistrustedSender = errors.New("trust: trust message from a distrusted device")

	// ErrNotATM is returned by EvaluateTrustMessage for a trust message
	// whose usage is not ATM or whose encryption is not OMEMO 2.
	ErrNotATM = errors.New("trust: trust message is not ATM for OMEMO 2")
)

// malformed returns an error wrapping ErrMalformed.
func malformed(format string, args ...any) error {
	return fmt.Errorf("trust: %w: "+format, append([]any{ErrMalformed}, args...)...)
}
