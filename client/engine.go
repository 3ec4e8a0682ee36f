package client

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"slices"
	"strings"

	"mellium.im/xmpp/jid"

	"hush.im/sce"
)

// Engine is the seam between the transport and an end-to-end encryption
// protocol (OMEMO 2, legacy OMEMO, OX). The client calls it to encrypt
// outgoing stanzas and to decrypt incoming ones; the engine owns no socket
// (DESIGN.md, Layers). An engine that needs the network (PEP device lists,
// bundles, keys) is built with the *Client and uses its PEP methods
// (Publish, FetchItems, HandleEvents).
//
// An Engine must be safe for concurrent use: Decrypt runs on the client's
// receive goroutine for live stanzas, on the caller's goroutine for archive
// pages, and on a separate goroutine for IQ requests. While an IQ request
// is being decrypted or answered, ctx carries a mark that makes the
// client's IQ round trips fail with ErrIQInHandler (the session reads
// nothing until the request is answered); an engine that needs a refresh
// then should answer from what it has and refresh afterwards.
type Engine interface {
	// Encrypted names the element the protocol puts in stanzas, e.g.
	// {urn:xmpp:omemo:2 encrypted} (XEP-0384 §5.5) or
	// {urn:xmpp:openpgp:0 openpgp} (XEP-0373 §3). Incoming stanzas with a
	// child of this name go to Decrypt. It must not change.
	Encrypted() xml.Name

	// Features returns the XEP-0030 features the protocol advertises, with
	// its PEP "+notify" features (XEP-0163 §4), e.g. "urn:xmpp:omemo:2",
	// "urn:xmpp:omemo:2:devices+notify". They are read when the client
	// sends presence.
	Features() []string

	// Encrypt returns the stanza to send instead of plain (a message, an iq
	// or a presence): plain's attributes, its server-processed elements,
	// the engine's encrypted element and, for messages, the XEP-0380
	// <encryption/> and XEP-0334 <store/> hints. The report says which
	// devices got a key. An error means nothing may be sent.
	Encrypt(ctx context.Context, plain *sce.Stanza) (*sce.Stanza, *Report, error)

	// Decrypt returns the plaintext stanza for in.Stanza, which carries the
	// engine's encrypted element (already out of any carbon or archive
	// wrapper; in.Via says where it came from), with every child marked
	// Encrypted or not as sce.Open does, and the security record. State
	// changes only when it succeeds (DESIGN: state advances only on
	// success). An error wrapping ErrNoContent (protocol data only) or
	// ErrDuplicate (a replay) makes the client drop the stanza quietly.
	Decrypt(ctx context.Context, in *Incoming) (*sce.Stanza, *Security, error)
}

// MultiEngine is implemented by an Engine whose protocol has more than one
// encrypted element, e.g. an OMEMO engine that speaks OMEMO 2
// ({urn:xmpp:omemo:2 encrypted}, XEP-0384 §5.5.3) and legacy OMEMO
// ({eu.siacs.conversations.axolotl encrypted}, XEP-0384 0.3). Incoming
// stanzas with a child of any of these names go to Decrypt, SendEncrypted
// accepts any of them as the protocol, and the engine's output must carry
// at least one of them. Encrypted is the primary name and need not be
// repeated.
type MultiEngine interface {
	Engine
	// EncryptedNames returns the further element names. They must not
	// change.
	EncryptedNames() []xml.Name
}

// engineNames returns every encrypted element name of e, Encrypted first,
// without duplicates.
func engineNames(e Engine) []xml.Name {
	names := []xml.Name{e.Encrypted()}
	if m, ok := e.(MultiEngine); ok {
		for _, n := range m.EncryptedNames() {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	return names
}

// CatchUpEngine is implemented by an Engine that batches its work while
// the client pages through an archive (XEP-0384 §5.6.1: defer replies to
// key exchanges until catch-up is done). CatchUp calls BeginCatchUp before
// the first page and EndCatchUp after the last.
type CatchUpEngine interface {
	Engine
	BeginCatchUp()
	EndCatchUp(ctx context.Context) error
}

// Via says how a stanza reached the client.
type Via uint8

// Ways a stanza reaches the client.
const (
	// ViaLive: sent to this session and delivered at once.
	ViaLive Via = iota
	// ViaOffline: stored by the server while the account was offline and
	// delivered with initial presence; it carries a XEP-0203 <delay/> from
	// the server (XEP-0160).
	ViaOffline
	// ViaCarbonReceived: a copy of a message another resource of the
	// account received (XEP-0280 §7).
	ViaCarbonReceived
	// ViaCarbonSent: a copy of a message another resource of the account
	// sent (XEP-0280 §8).
	ViaCarbonSent
	// ViaArchive: a result of a XEP-0313 archive query.
	ViaArchive
)

var viaNames = [...]string{"live", "offline", "carbon-received", "carbon-sent", "archive"}

// String returns the name of v.
func (v Via) String() string {
	if int(v) < len(viaNames) {
		return viaNames[v]
	}
	return "unknown"
}

// Incoming is a stanza handed to the application.
type Incoming struct {
	// Stanza is what the application reads: for carbons and archive results
	// the forwarded stanza out of its wrapper (with the archive's <delay/>,
	// see sce.Forwarded); if an engine decrypted it, the plaintext stanza,
	// whose children say whether they were Encrypted. Only Encrypted
	// children are protected; the rest travelled in the clear.
	Stanza *sce.Stanza
	// Received is the stanza as it came off the stream, wrapper included.
	Received *sce.Stanza
	// From is the sender of Stanza as the stream says: its from attribute,
	// or the account's bare JID when it has none (RFC 6120 §8.1.2.1). For
	// carbons and archive results, the forwarded stanza's sender. Only
	// Security.Sender is authenticated end to end.
	From jid.JID
	// Via says how the stanza arrived.
	Via Via
	// ArchiveID is the archive's id for the message (XEP-0313 §4.2), for
	// Via == ViaArchive.
	ArchiveID string
	// Security is the security record of a decrypted stanza, nil when
	// nothing was decrypted.
	Security *Security
	// Err is the engine's error when the stanza carried an encrypted
	// element that could not be decrypted; Stanza is then the stanza as
	// received (still encrypted).
	Err error
}

// Security is the security record of a decrypted stanza.
type Security struct {
	// Protocol is the engine's encrypted element name.
	Protocol xml.Name
	// Sender is the bare JID the protocol authenticated.
	Sender jid.JID
	// Device identifies the sending device: the OMEMO device id in decimal,
	// or the OpenPGP key fingerprint in upper-case hexadecimal.
	Device string
	// Trust is the sender device's trust level when it was decrypted.
	Trust Trust
}

// Trust is a device's trust level as an engine reports it (XEP-0450 §2
// levels, with blind trust before verification).
type Trust uint8

// Trust levels.
const (
	TrustUnknown   Trust = iota // not reported
	TrustUntrusted              // explicitly distrusted
	TrustUndecided              // neither trusted nor distrusted
	TrustBlind                  // trusted without verification
	TrustVerified               // verified (fingerprint, SAS or trust message)
)

var trustNames = [...]string{"unknown", "untrusted", "undecided", "blind", "verified"}

// String returns the name of t.
func (t Trust) String() string {
	if int(t) < len(trustNames) {
		return trustNames[t]
	}
	return "invalid"
}

// Report lists, for every device an encrypted send considered, whether it
// got a key and if not, why (DESIGN: every send reports which devices got a
// key and why others did not).
type Report struct {
	// Protocol is the engine's encrypted element name.
	Protocol xml.Name
	Devices  []DeviceReport
}

// DeviceReport is the outcome of one send for one device.
type DeviceReport struct {
	JID    jid.JID
	Device string
	// Sent is true when the device got a key.
	Sent bool
	// Protocol is the element the device's key travelled in, for an
	// engine that speaks several protocols (MultiEngine): for OMEMO,
	// OMEMOEncrypted or OMEMOLegacyEncrypted. Zero when not known.
	Protocol xml.Name
	// Withheld names the elements of the stanza the device does not get
	// although it got a key: legacy OMEMO protects the body alone, so
	// every other element only an SCE envelope could protect is withheld
	// from legacy devices (XEP-0384 0.3 §Sending a message).
	Withheld []xml.Name
	// Reason says why the device got no key, e.g. "untrusted", "no bundle".
	Reason string
	// Err gives detail, if any.
	Err error
}

// Sent returns the reports of the devices that got a key.
func (r *Report) Sent() []DeviceReport {
	var out []DeviceReport
	if r == nil {
		return nil
	}
	for _, d := range r.Devices {
		if d.Sent {
			out = append(out, d)
		}
	}
	return out
}

// Skipped returns the reports of the devices that got no key.
func (r *Report) Skipped() []DeviceReport {
	var out []DeviceReport
	if r == nil {
		return nil
	}
	for _, d := range r.Devices {
		if !d.Sent {
			out = append(out, d)
		}
	}
	return out
}

// AddEngine adds an encryption protocol. Its features are advertised from
// the next presence on (and at once if the client is online). Adding a
// second engine with the same Encrypted name replaces the first; an engine
// that implements MultiEngine is added under each of its names, replacing
// whatever engine had that name.
func (c *Client) AddEngine(e Engine) error {
	names := engineNames(e)
	for _, n := range names {
		if n.Space == "" || n.Local == "" {
			return fmt.Errorf("client: engine without an encrypted element name")
		}
	}
	c.mu.Lock()
	for _, n := range names {
		c.engines[n] = e
	}
	c.mu.Unlock()
	return c.featuresChanged()
}

func (c *Client) engine(n xml.Name) (Engine, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.engines[n]
	return e, ok
}

// engineFor returns the engine whose encrypted element st carries.
func (c *Client) engineFor(st *sce.Stanza) (Engine, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range st.Children {
		if e, ok := c.engines[ch.Name]; ok {
			return e, true
		}
	}
	return nil, false
}

// open decrypts in.Stanza if it carries the encrypted element of an added
// engine. It never fails: a decryption error goes into in.Err.
func (c *Client) open(ctx context.Context, in *Incoming) {
	e, ok := c.engineFor(in.Stanza)
	if !ok {
		return
	}
	plain, sec, err := e.Decrypt(ctx, in)
	if err != nil {
		in.Err = err
		return
	}
	if plain == nil || sec == nil {
		in.Err = fmt.Errorf("client: engine %s returned no stanza or security record", e.Encrypted().Space)
		return
	}
	in.Stanza, in.Security = plain, sec
}

// requestedProtocolKey is the context key under which seal tells an
// engine which of its encrypted element names (MultiEngine) the caller
// asked for.
type requestedProtocolKey struct{}

// seal encrypts plain with the engine for protocol and checks the result
// before anything is sent (DESIGN: fail closed).
func (c *Client) seal(ctx context.Context, protocol xml.Name, plain *sce.Stanza) (*sce.Stanza, *Report, error) {
	e, ok := c.engine(protocol)
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s", ErrNoEngine, protocol.Space)
	}
	out, rep, err := e.Encrypt(context.WithValue(ctx, requestedProtocolKey{}, protocol), plain)
	if err != nil {
		return nil, rep, err
	}
	if rep == nil || len(rep.Sent()) == 0 {
		return nil, rep, ErrNoRecipientDevice
	}
	if err := checkNoLeak(plain, out, engineNames(e)...); err != nil {
		return nil, rep, err
	}
	return out, rep, nil
}

// checkNoLeak verifies that out carries one of the encrypted elements
// protocols (at least one) and none of plain's sensitive children
// (XEP-0420 §7: everything but the server-processed elements goes into the
// envelope) unchanged in the clear.
func checkNoLeak(plain, out *sce.Stanza, protocols ...xml.Name) error {
	if out == nil {
		return fmt.Errorf("%w: no stanza", ErrPlaintextLeak)
	}
	if len(protocols) == 0 {
		return fmt.Errorf("%w: no encrypted element name", ErrPlaintextLeak)
	}
	if !slices.ContainsFunc(out.Children, func(ch sce.Element) bool { return slices.Contains(protocols, ch.Name) }) {
		return fmt.Errorf("%w: no <%s/> element", ErrPlaintextLeak, protocols[0].Local)
	}
	var sensitive [][]byte
	for _, ch := range plain.Children {
		if sce.Classify(ch.Name) != sce.Sensitive {
			continue
		}
		b, err := marshalElement(ch)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrPlaintextLeak, err)
		}
		sensitive = append(sensitive, b)
	}
	for _, ch := range out.Children {
		if slices.Contains(protocols, ch.Name) {
			continue
		}
		b, err := marshalElement(ch)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrPlaintextLeak, err)
		}
		for _, s := range sensitive {
			if bytes.Equal(b, s) {
				return fmt.Errorf("%w: <%s/> in the clear", ErrPlaintextLeak, ch.Name.Local)
			}
		}
	}
	return nil
}

// marshalElement serializes e canonically: the attributes of every start
// element sorted by namespace and name, so that two copies of an element
// compare equal whatever order a server kept their attributes in.
func marshalElement(e sce.Element) ([]byte, error) {
	toks := make([]xml.Token, len(e.Tokens))
	for i, t := range e.Tokens {
		if s, ok := t.(xml.StartElement); ok && len(s.Attr) > 1 {
			s.Attr = slices.Clone(s.Attr)
			slices.SortFunc(s.Attr, func(a, b xml.Attr) int {
				if c := strings.Compare(a.Name.Space, b.Name.Space); c != 0 {
					return c
				}
				return strings.Compare(a.Name.Local, b.Name.Local)
			})
			t = s
		}
		toks[i] = t
	}
	e.Tokens = toks
	var b bytes.Buffer
	enc := xml.NewEncoder(&b)
	if _, err := e.WriteXML(enc); err != nil {
		return nil, err
	}
	if err := enc.Flush(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// SendEncrypted encrypts plain (a message or presence; see SendEncryptedIQ
// for iq requests) with the engine for protocol and sends it. Nothing is
// sent when the engine fails, reaches no device, or its output would leak
// a sensitive element (DESIGN: fail closed). The report says which devices
// got a key.
func (c *Client) SendEncrypted(ctx context.Context, protocol xml.Name, plain *sce.Stanza) (*Report, error) {
	out, rep, err := c.seal(ctx, protocol, plain)
	if err != nil {
		return rep, err
	}
	// seal checked out (checkNoLeak): an explanatory body beside the
	// encrypted element (XEP-0374 §2.1) is not content in the clear.
	return rep, c.send(ctx, out)
}

// SendEncryptedIQ encrypts an iq request with the engine for protocol,
// sends it and returns the response, decrypted if it carries the engine's
// encrypted element (XEP-0420 §3: IQ payloads in the envelope).
func (c *Client) SendEncryptedIQ(ctx context.Context, protocol xml.Name, plain *sce.Stanza) (*Incoming, *Report, error) {
	out, rep, err := c.seal(ctx, protocol, plain)
	if err != nil {
		return nil, rep, err
	}
	resp, err := c.SendIQ(ctx, out)
	if resp == nil {
		return nil, rep, err
	}
	in := &Incoming{Stanza: resp, Received: resp, From: senderOf(resp, c.own), Via: ViaLive}
	c.open(ctx, in)
	return in, rep, err
}
