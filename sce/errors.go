package sce

import (
	"errors"
	"fmt"
)

// Errors returned by this package. Callers branch on them with errors.Is;
// AffixError and LimitError add detail for errors.As. Error strings never
// contain decrypted content.
var (
	// ErrInvalidXML reports input that is not well-formed, namespace-well-formed
	// XML in UTF-8, that uses XML features XMPP forbids (comments, processing
	// instructions, DTDs; RFC 6120 §11.1), or that has text where only elements
	// are allowed. XEP-0420 §10: invalid XML MUST be rejected.
	ErrInvalidXML = errors.New("sce: invalid xml")

	// ErrNotEnvelope reports a root element that is not the expected
	// <envelope xmlns='urn:xmpp:sce:1'> (or OX content element), or an envelope
	// of a kind the profile does not use.
	ErrNotEnvelope = errors.New("sce: not the expected envelope element")

	// ErrMissingContent reports an envelope without its <content> (or OX
	// <payload>) element. XEP-0420 §14 schema: exactly one.
	ErrMissingContent = errors.New("sce: missing content element")

	// ErrDuplicate reports a second <content>, a second affix of a kind allowed
	// once (wrapped in an AffixError), or a second forwarding wrapper.
	ErrDuplicate = errors.New("sce: duplicate element")

	// ErrInvalidContent reports a child of <content> that is not qualified by a
	// namespace of its own. XEP-0420 §10: elements in <content> MUST be
	// identified by name and namespace.
	ErrInvalidContent = errors.New("sce: content element without a namespace of its own")

	// ErrMalformedAffix reports an affix with a missing required attribute, a
	// stamp that is not an XEP-0082 DateTime, a JID that is not valid, or
	// children where none are allowed. It comes wrapped in an AffixError.
	ErrMalformedAffix = errors.New("sce: malformed affix")

	// ErrLimit reports input beyond one of the package's limits. It comes
	// wrapped in a LimitError.
	ErrLimit = errors.New("sce: limit exceeded")

	// ErrMissingAffix reports an affix the profile requires. It comes wrapped in
	// an AffixError naming the affix.
	ErrMissingAffix = errors.New("sce: missing affix")

	// ErrAffixNotAllowed reports an affix the profile does not use.
	ErrAffixNotAllowed = errors.New("sce: affix not allowed by profile")

	// ErrSenderMismatch reports a <from> affix that does not name the sender of
	// the enclosing stanza (XEP-0420 §4), or a <from> that cannot be checked
	// because the sender's real JID is unknown (group chat without
	// VerifyOptions.Sender).
	ErrSenderMismatch = errors.New("sce: sender mismatch")

	// ErrRecipientMismatch reports a <to> affix that does not name the recipient
	// of the enclosing stanza, or in a group chat the room (XEP-0420 §4,
	// XEP-0384 §5.5.1, XEP-0373 §3.2).
	ErrRecipientMismatch = errors.New("sce: recipient mismatch")

	// ErrTimeOutOfWindow reports a <time> affix too far from the stanza's
	// sending time (XEP-0420 §4). ErrStale and ErrFuture wrap it.
	ErrTimeOutOfWindow = errors.New("sce: time outside window")

	// ErrStale reports a <time> affix older than the window allows.
	ErrStale = fmt.Errorf("%w: too old", ErrTimeOutOfWindow)

	// ErrFuture reports a <time> affix further in the future than the window
	// allows.
	ErrFuture = fmt.Errorf("%w: in the future", ErrTimeOutOfWindow)

	// ErrNotStanza reports a Stanza that is not a message, iq or presence in
	// jabber:client, jabber:server or jabber:component:accept.
	ErrNotStanza = errors.New("sce: not a message, iq or presence stanza")

	// ErrNoEncrypted reports an outer stanza without the encrypted element
	// passed to Open.
	ErrNoEncrypted = errors.New("sce: encrypted element not found")

	// ErrNoAddress reports that Seal cannot fill a required <to> or <from>
	// affix because the stanza has no such address (and SealOptions.From is not
	// set).
	ErrNoAddress = errors.New("sce: no address for affix")

	// ErrInvalidElement reports an Element whose tokens are not exactly one
	// well-formed element matching its Name, an extra affix that collides with
	// a standard one, or an unencrypted SCE envelope handed to Seal.
	ErrInvalidElement = errors.New("sce: invalid element")

	// ErrInvalidProfile reports a Profile without a name, with an unknown Kind,
	// or using an affix its Kind cannot carry.
	ErrInvalidProfile = errors.New("sce: invalid profile")

	// ErrNotForwarded reports a stanza without a XEP-0280 carbon or XEP-0313
	// result wrapper, or a wrapper without exactly one forwarded stanza.
	ErrNotForwarded = errors.New("sce: not a forwarded stanza")

	// ErrDateTime reports a string that ParseDateTime does not accept as an
	// XEP-0082 §3.2 DateTime. Inside an envelope it comes as an AffixError
	// with ErrMalformedAffix instead.
	ErrDateTime = errors.New("sce: not an XEP-0082 DateTime")
)

// AffixError reports a problem with one affix. Err is one of the sentinels
// ErrMissingAffix, ErrAffixNotAllowed, ErrDuplicate, ErrMalformedAffix,
// ErrNoAddress, ErrSenderMismatch, ErrRecipientMismatch, ErrStale or
// ErrFuture, and errors.Is sees through to it.
//
// Got and Want hold the compared values (bare JIDs or DateTime stamps) when
// there are any; they are not part of the error string, which may end up in
// logs, because Got comes from decrypted data.
type AffixError struct {
	Affix Affix
	Err   error
	Got   string
	Want  string
}

// Error implements error.
func (e *AffixError) Error() string {
	return fmt.Sprintf("%v (<%v/> affix)", e.Err, e.Affix)
}

// Unwrap returns the sentinel.
func (e *AffixError) Unwrap() error { return e.Err }

// LimitError reports input beyond one of the package's limits: Limit is
// "size", "depth" or "nodes", Max the limit (MaxEnvelopeSize, MaxStanzaSize,
// MaxDepth or MaxNodes). errors.Is(err, ErrLimit) reports true.
type LimitError struct {
	Limit string
	Max   int64
}

// Error implements error.
func (e *LimitError) Error() string {
	return fmt.Sprintf("sce: %s limit of %d exceeded", e.Limit, e.Max)
}

// Unwrap returns ErrLimit.
func (e *LimitError) Unwrap() error { return ErrLimit }
