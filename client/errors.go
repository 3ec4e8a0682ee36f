package client

import (
	"encoding/xml"
	"errors"
	"fmt"
	"mellium.im/xmpp/jid"
	"regexp"
	"strings"

	"hush.im/sce"
)

// Errors returned by the package. Callers branch on them with errors.Is;
// StanzaError, AuthError and PublishOptionError add detail for errors.As.
// No error string contains a password or decrypted content.
var (
	// ErrClosed reports a call on a Client whose session has ended.
	ErrClosed = errors.New("client: session closed")

	// ErrInsecureRemote reports Options.PlainLoopback with an address that is
	// not a loopback address: plain TCP is for tests on 127.0.0.1 only.
	ErrInsecureRemote = errors.New("client: plain TCP is only allowed to a loopback address")

	// ErrAuth reports that the server refused the credentials (RFC 6120
	// §6.5). It comes wrapped in an AuthError.
	ErrAuth = errors.New("client: authentication failed")

	// ErrNotIQRequest reports SendIQ with a stanza that is not an iq of type
	// get or set.
	ErrNotIQRequest = errors.New("client: not an iq request (type get or set)")

	// ErrUnexpectedResponder reports an IQ response whose sender is not the
	// entity the request was addressed to (RFC 6120 §8.2.3): a possible
	// spoof, never handed to the caller.
	ErrUnexpectedResponder = errors.New("client: iq response from an unexpected sender")

	// ErrIQInHandler reports an IQ round trip attempted from inside an
	// IQHandler (or an Engine decrypting an IQ request). mellium's Session
	// reads no further stanza until the request is answered, so the
	// response could never arrive; the call fails at once instead of
	// deadlocking.
	ErrIQInHandler = errors.New("client: iq round trip from inside an iq handler")

	// ErrMalformed reports a server reply that does not follow the
	// protocol's schema.
	ErrMalformed = errors.New("client: malformed reply")
	// ErrNoDeviceList reports a contact without an OMEMO device list of the
	// protocol asked for (XEP-0384 §5.3.1, item-not-found): its clients do
	// not speak it, or the node is not visible to this account. The error
	// returned is a *NoDeviceListError.
	ErrNoDeviceList = errors.New("client: no OMEMO device list announced")

	// ErrEncryptionRequired reports a message or presence with content
	// (XEP-0420 §7: an element that is not server-processed) for a contact
	// that requires encryption, given to Send unencrypted. Nothing was
	// sent (DESIGN: fail closed).
	ErrEncryptionRequired = errors.New("client: the contact requires encryption; nothing was sent")

	// ErrReadBack reports a published item that could not be read back as
	// published, or a node whose access model is not the one requested, so
	// that contacts may not be able to fetch it (DESIGN: "read back after
	// publishing and report a bundle that contacts cannot fetch").
	ErrReadBack = errors.New("client: published item not readable as published")

	// ErrPublishOptionUnsupported reports a service that refuses a
	// publish-option instead of checking it as a precondition. It comes
	// wrapped in a PublishOptionError.
	ErrPublishOptionUnsupported = errors.New("client: publish option not supported by the service")

	// ErrNoEngine reports a protocol for which no Engine was added.
	ErrNoEngine = errors.New("client: no engine for this protocol")

	// ErrNoRecipientDevice reports an encrypted send that would reach no
	// device: nothing was sent (DESIGN: fail closed).
	ErrNoRecipientDevice = errors.New("client: no recipient device could be encrypted for")

	// ErrPlaintextLeak reports an Engine whose output still carries a
	// sensitive element of the plaintext, or lacks its encrypted element:
	// nothing was sent (DESIGN: fail closed).
	ErrPlaintextLeak = errors.New("client: engine output would leak plaintext")

	// ErrArchiveOverflow reports an archive page with more results than
	// were asked for.
	ErrArchiveOverflow = errors.New("client: archive sent more results than requested")

	// ErrNoContent is wrapped by an Engine's Decrypt error for a stanza that
	// carries protocol data only, nothing for the application: an empty
	// OMEMO message (XEP-0384 §5.5.3: key exchange completion, heartbeat),
	// or one addressed to another device. Handlers and CatchUp never see
	// such stanzas.
	ErrNoContent = errors.New("client: encrypted stanza without content for the application")

	// ErrDuplicate is wrapped by an Engine's Decrypt error for a message
	// already decrypted once (XEP-0384 §6: a duplicate MUST be ignored
	// without an error, e.g. one seen live and again in the archive).
	// Handlers and CatchUp never see such stanzas.
	ErrDuplicate = errors.New("client: duplicate encrypted stanza")
)

// quiet reports whether err is a decryption outcome that is dropped
// without telling the application (ErrNoContent, ErrDuplicate).
func quiet(err error) bool {
	return err != nil && (errors.Is(err, ErrNoContent) || errors.Is(err, ErrDuplicate))
}

// maxErrorText bounds the server-provided text kept in a StanzaError.
const maxErrorText = 256

// StanzaError is an error reply (RFC 6120 §8.3) to a stanza the client
// sent.
type StanzaError struct {
	// Type is the error type: cancel, continue, modify, auth or wait.
	Type string
	// Condition is the defined condition (RFC 6120 §8.3.3), e.g.
	// "conflict"; "undefined-condition" when the reply has none.
	Condition string
	// App is the application-specific condition, e.g.
	// {http://jabber.org/protocol/pubsub#errors precondition-not-met}
	// (XEP-0060 §7.1.3.6), or the zero Name.
	App xml.Name
	// Text is the server's human-readable description, shortened to 256
	// bytes.
	Text string
}

// Error implements error.
func (e *StanzaError) Error() string {
	var b strings.Builder
	b.WriteString("client: stanza error: ")
	b.WriteString(e.Type)
	b.WriteString(" ")
	b.WriteString(e.Condition)
	if e.App.Local != "" {
		b.WriteString(" (")
		b.WriteString(e.App.Local)
		b.WriteString(")")
	}
	if e.Text != "" {
		fmt.Fprintf(&b, ": %q", e.Text)
	}
	return b.String()
}

// PreconditionNotMet reports the XEP-0060 §7.1.5 publish-options
// precondition failure.
func (e *StanzaError) PreconditionNotMet() bool {
	return e.App == name(nsPubSubErrors, "precondition-not-met")
}

// parseStanzaError reads the <error/> child of an error stanza. A stanza
// without one yields undefined-condition.
func parseStanzaError(st *sce.Stanza) *StanzaError {
	se := &StanzaError{Condition: "undefined-condition"}
	el, ok := stanzaChild(st, name(st.Name.Space, "error"))
	if !ok {
		return se
	}
	se.Type = el.AttrValue("type")
	defined := false
	for _, c := range children(el) {
		switch {
		case c.Name.Space == nsStanzas && c.Name.Local == "text":
			se.Text = truncate(c.Text(), maxErrorText)
		case c.Name.Space == nsStanzas && !defined:
			se.Condition = c.Name.Local
			defined = true
		case c.Name.Space != nsStanzas && se.App.Local == "":
			se.App = c.Name
		}
	}
	return se
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut at a rune boundary.
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}

// NoDeviceListError reports the contact JID without an OMEMO device list
// of one protocol; it matches ErrNoDeviceList.
type NoDeviceListError struct {
	JID jid.JID
	// Legacy is set for the legacy OMEMO list (XEP-0384 0.3), unset for
	// OMEMO 2.
	Legacy bool
}

// Error implements error.
func (e *NoDeviceListError) Error() string {
	p := "OMEMO 2"
	if e.Legacy {
		p = "legacy OMEMO"
	}
	return "client: " + e.JID.String() + " announces no " + p + " device list"
}

// Is reports whether target is ErrNoDeviceList.
func (e *NoDeviceListError) Is(target error) bool { return target == ErrNoDeviceList }

// AuthError reports that SASL authentication failed. Err is the server's
// failure condition (e.g. not-authorized); errors.Is(err, ErrAuth) holds.
type AuthError struct {
	Err error
}

// Error implements error.
func (e *AuthError) Error() string { return ErrAuth.Error() + ": " + e.Err.Error() }

// Unwrap returns ErrAuth and the server's failure.
func (e *AuthError) Unwrap() []error { return []error{ErrAuth, e.Err} }

// PublishOptionError reports a publish refused because the service does
// not support one of the publish-options (XEP-0060 §7.1.5), rather than
// because the node's configuration differs from it (which is
// precondition-not-met and handled by Publish). ejabberd 23.01 answers a
// pubsub#max_items publish-option this way: resource-constraint, "Unknown
// field 'pubsub#max_items' of type
// 'http://jabber.org/protocol/pubsub#publish-options'". A caller can publish
// again without that option and configure the node instead.
type PublishOptionError struct {
	// Node is the node published to.
	Node string
	// Field is the refused option, e.g. "pubsub#max_items", or "" if the
	// reply does not say which.
	Field string
	// Err is the server's reply.
	Err *StanzaError
}

// Error implements error.
func (e *PublishOptionError) Error() string {
	f := e.Field
	if f == "" {
		f = "(unnamed)"
	}
	return fmt.Sprintf("%v %s on node %q: %v", ErrPublishOptionUnsupported, f, e.Node, e.Err)
}

// Unwrap returns ErrPublishOptionUnsupported and the server's reply.
func (e *PublishOptionError) Unwrap() []error {
	return []error{ErrPublishOptionUnsupported, e.Err}
}

// unknownFieldRE matches ejabberd's (processone/xmpp xdata codec) text for
// an unsupported form field.
var unknownFieldRE = regexp.MustCompile(`Unknown field '([^']{1,128})' of type '` + regexp.QuoteMeta(formPublishOpts) + `'`)

// publishOptionError classifies a publish error reply: a refused option
// becomes a PublishOptionError, anything else stays as it is.
// precondition-not-met is never a PublishOptionError (XEP-0060 §7.1.5: it
// means the node exists with another configuration).
func publishOptionError(node string, sent []string, se *StanzaError) error {
	if se.PreconditionNotMet() {
		return se
	}
	if m := unknownFieldRE.FindStringSubmatch(se.Text); m != nil {
		return &PublishOptionError{Node: node, Field: m[1], Err: se}
	}
	switch se.Condition {
	case "resource-constraint", "bad-request", "not-acceptable", "feature-not-implemented":
	default:
		return se
	}
	// A refusal that names one of the options sent, or that mentions
	// publish-options at all.
	for _, f := range sent {
		if strings.Contains(se.Text, f) {
			return &PublishOptionError{Node: node, Field: f, Err: se}
		}
	}
	if strings.Contains(se.Text, "publish-options") || se.App == name(nsPubSubErrors, "unsupported") {
		return &PublishOptionError{Node: node, Err: se}
	}
	return se
}
