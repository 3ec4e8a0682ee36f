package trust

import (
	"encoding/xml"
	"fmt"

	"hush.im/internal/xmlx"
	"mellium.im/xmlstream"
)

// Message is one of the SAS messages: *Commit, *Accept, *Reveal or
// *Cancel. Every Message must travel inside an encrypted SCE envelope
// (XEP-0420) and must only be accepted from one.
type Message interface {
	xmlstream.Marshaler
	xmlstream.WriterTo
	sessionID() []byte
}

// Commit is the initiator's first message: the run's SID, the identity
// keys it vouches for (Ed25519 form, sorted) and its commitment.
//
//	<commit xmlns='urn:hush:sas:0' sid='base64'>
//	  <key>base64</key>…
//	  <commitment>base64</commitment>
//	</commit>
type Commit struct {
	SID        []byte
	Keys       [][]byte
	Commitment []byte
}

// Accept is the responder's answer: the SID, the identity keys it vouches
// for and its nonce.
//
//	<accept xmlns='urn:hush:sas:0' sid='base64'>
//	  <key>base64</key>…
//	  <nonce>base64</nonce>
//	</accept>
type Accept struct {
	SID   []byte
	Keys  [][]byte
	Nonce []byte
}

// Reveal is the initiator's last message: the nonce its commitment hid.
//
//	<reveal xmlns='urn:hush:sas:0' sid='base64'><nonce>base64</nonce></reveal>
type Reveal struct {
	SID   []byte
	Nonce []byte
}

// CancelReason says why a run was canceled.
type CancelReason string

// Cancel reasons.
const (
	// ReasonMismatch: the user saw different strings.
	ReasonMismatch CancelReason = "mismatch"
	// ReasonUser: the user gave up.
	ReasonUser CancelReason = "user"
	// ReasonError: a protocol error (e.g. ErrCommitment).
	ReasonError CancelReason = "error"
)

func (r CancelReason) valid() bool {
	return r == ReasonMismatch || r == ReasonUser || r == ReasonError
}

// Cancel ends a run.
//
//	<cancel xmlns='urn:hush:sas:0' sid='base64' reason='mismatch'/>
type Cancel struct {
	SID    []byte
	Reason CancelReason
}

// sessionID returns the message's SID; a nil message has none and never
// matches a run.
func (c *Commit) sessionID() []byte {
	if c == nil {
		return nil
	}
	return c.SID
}

func (a *Accept) sessionID() []byte {
	if a == nil {
		return nil
	}
	return a.SID
}

func (r *Reveal) sessionID() []byte {
	if r == nil {
		return nil
	}
	return r.SID
}

func (c *Cancel) sessionID() []byte {
	if c == nil {
		return nil
	}
	return c.SID
}

func (c *Commit) check() error {
	if len(c.SID) != SIDSize || len(c.Commitment) != CommitmentSize {
		return malformed("commit with sid of %d bytes or commitment of %d bytes", len(c.SID), len(c.Commitment))
	}
	return checkSorted(c.Keys)
}

func (a *Accept) check() error {
	if len(a.SID) != SIDSize || len(a.Nonce) != NonceSize {
		return malformed("accept with sid of %d bytes or nonce of %d bytes", len(a.SID), len(a.Nonce))
	}
	return checkSorted(a.Keys)
}

func (r *Reveal) check() error {
	if len(r.SID) != SIDSize || len(r.Nonce) != NonceSize {
		return malformed("reveal with sid of %d bytes or nonce of %d bytes", len(r.SID), len(r.Nonce))
	}
	return nil
}

func sasStart(local string, sid []byte, extra ...xml.Attr) xml.StartElement {
	a := append([]xml.Attr{{Name: xml.Name{Local: "sid"}, Value: xmlx.EncodeBase64(sid)}}, extra...)
	return xml.StartElement{Name: xml.Name{Space: NSSAS, Local: local}, Attr: a}
}

func keyElements(keys [][]byte) []xml.TokenReader {
	out := make([]xml.TokenReader, 0, len(keys)+1)
	for _, k := range keys {
		out = append(out, xmlx.TextElement("key", nil, xmlx.EncodeBase64(k)))
	}
	return out
}

// TokenReader implements xmlstream.Marshaler.
func (c *Commit) TokenReader() xml.TokenReader {
	children := append(keyElements(c.Keys), xmlx.TextElement("commitment", nil, xmlx.EncodeBase64(c.Commitment)))
	return xmlstream.Wrap(xmlstream.MultiReader(children...), sasStart("commit", c.SID))
}

// WriteXML implements xmlstream.WriterTo.
func (c *Commit) WriteXML(w xmlstream.TokenWriter) (int, error) {
	return xmlstream.Copy(w, c.TokenReader())
}

// MarshalXML implements xml.Marshaler.
func (c *Commit) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	_, err := c.WriteXML(e)
	return err
}

// UnmarshalXML implements xml.Unmarshaler. It is strict: the sid, 1 to
// MaxKeys keys in increasing order and exactly one commitment, exact
// sizes, canonical base64, nothing else; errors wrap ErrMalformed.
func (c *Commit) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	sid, keys, last, err := parseSAS(d, start, "commit", "commitment", CommitmentSize)
	if err != nil {
		return err
	}
	*c = Commit{SID: sid, Keys: keys, Commitment: last}
	return nil
}

// TokenReader implements xmlstream.Marshaler.
func (a *Accept) TokenReader() xml.TokenReader {
	children := append(keyElements(a.Keys), xmlx.TextElement("nonce", nil, xmlx.EncodeBase64(a.Nonce)))
	return xmlstream.Wrap(xmlstream.MultiReader(children...), sasStart("accept", a.SID))
}

// WriteXML implements xmlstream.WriterTo.
func (a *Accept) WriteXML(w xmlstream.TokenWriter) (int, error) {
	return xmlstream.Copy(w, a.TokenReader())
}

// MarshalXML implements xml.Marshaler.
func (a *Accept) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	_, err := a.WriteXML(e)
	return err
}

// UnmarshalXML implements xml.Unmarshaler, as strictly as Commit's.
func (a *Accept) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	sid, keys, last, err := parseSAS(d, start, "accept", "nonce", NonceSize)
	if err != nil {
		return err
	}
	*a = Accept{SID: sid, Keys: keys, Nonce: last}
	return nil
}

// TokenReader implements xmlstream.Marshaler.
func (r *Reveal) TokenReader() xml.TokenReader {
	return xmlstream.Wrap(xmlx.TextElement("nonce", nil, xmlx.EncodeBase64(r.Nonce)), sasStart("reveal", r.SID))
}

// WriteXML implements xmlstream.WriterTo.
func (r *Reveal) WriteXML(w xmlstream.TokenWriter) (int, error) {
	return xmlstream.Copy(w, r.TokenReader())
}

// MarshalXML implements xml.Marshaler.
func (r *Reveal) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	_, err := r.WriteXML(e)
	return err
}

// UnmarshalXML implements xml.Unmarshaler: the sid and exactly one nonce.
func (r *Reveal) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	sid, _, last, err := parseSAS(d, start, "reveal", "nonce", NonceSize)
	if err != nil {
		return err
	}
	*r = Reveal{SID: sid, Nonce: last}
	return nil
}

// TokenReader implements xmlstream.Marshaler.
func (c *Cancel) TokenReader() xml.TokenReader {
	return xmlstream.Wrap(nil, sasStart("cancel", c.SID, xml.Attr{Name: xml.Name{Local: "reason"}, Value: string(c.Reason)}))
}

// WriteXML implements xmlstream.WriterTo.
func (c *Cancel) WriteXML(w xmlstream.TokenWriter) (int, error) {
	return xmlstream.Copy(w, c.TokenReader())
}

// MarshalXML implements xml.Marshaler.
func (c *Cancel) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	_, err := c.WriteXML(e)
	return err
}

// UnmarshalXML implements xml.Unmarshaler: the sid, a known reason and no
// content.
func (c *Cancel) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	out, err := parseCancel(d, start)
	if err != nil {
		return err
	}
	*c = out
	return nil
}

func parseCancel(d xml.TokenReader, start xml.StartElement) (Cancel, error) {
	if err := strict.CheckName(start, NSSAS, "cancel"); err != nil {
		return Cancel{}, err
	}
	m, err := attrs(start, []string{"sid", "reason"}, "sid", "reason")
	if err != nil {
		return Cancel{}, err
	}
	sid, err := decodeFixed(m["sid"], "sid", SIDSize)
	if err != nil {
		return Cancel{}, err
	}
	reason := CancelReason(m["reason"])
	if !reason.valid() {
		return Cancel{}, malformed("unknown cancel reason %q", m["reason"])
	}
	if err := expectEnd(d, "cancel"); err != nil {
		return Cancel{}, err
	}
	return Cancel{SID: sid, Reason: reason}, nil
}

// parseSAS parses <local sid=…> with <key/> children (none allowed for
// reveal) followed by exactly one <lastName/> of lastSize bytes.
func parseSAS(d xml.TokenReader, start xml.StartElement, local, lastName string, lastSize int) (sid []byte, keys [][]byte, last []byte, err error) {
	if err := strict.CheckName(start, NSSAS, local); err != nil {
		return nil, nil, nil, err
	}
	m, err := attrs(start, []string{"sid"}, "sid")
	if err != nil {
		return nil, nil, nil, err
	}
	if sid, err = decodeFixed(m["sid"], "sid", SIDSize); err != nil {
		return nil, nil, nil, err
	}
	for {
		child, err := strict.NextChild(d)
		if err != nil {
			return nil, nil, nil, err
		}
		if child == nil {
			break
		}
		if _, err := attrs(*child, nil); err != nil {
			return nil, nil, nil, err
		}
		switch {
		case child.Name.Space == NSSAS && child.Name.Local == "key" && local != "reveal" && last == nil:
			if len(keys) >= MaxKeys {
				return nil, nil, nil, malformed("more than %d keys", MaxKeys)
			}
			k, err := readBase64(d, "key", KeySize)
			if err != nil {
				return nil, nil, nil, err
			}
			keys = append(keys, k)
		case child.Name.Space == NSSAS && child.Name.Local == lastName && last == nil:
			if last, err = readBase64(d, lastName, lastSize); err != nil {
				return nil, nil, nil, err
			}
		default:
			return nil, nil, nil, malformed("unexpected <%s xmlns='%s'> in <%s>", child.Name.Local, child.Name.Space, local)
		}
	}
	if last == nil {
		return nil, nil, nil, malformed("<%s> without <%s>", local, lastName)
	}
	if local != "reveal" {
		if err := checkSorted(keys); err != nil {
			return nil, nil, nil, fmt.Errorf("trust: %w: %w", ErrMalformed, err)
		}
	}
	return sid, keys, last, nil
}

// ParseMessage reads one SAS message whose start element was just read
// from d, by its name: <commit/>, <accept/>, <reveal/> or <cancel/> in
// NSSAS. Errors wrap ErrMalformed. Call it only on elements taken from a
// verified, encrypted SCE envelope.
func ParseMessage(d xml.TokenReader, start xml.StartElement) (Message, error) {
	if start.Name.Space != NSSAS {
		return nil, malformed("element <%s xmlns='%s'> is not a SAS message", start.Name.Local, start.Name.Space)
	}
	switch start.Name.Local {
	case "commit":
		sid, keys, last, err := parseSAS(d, start, "commit", "commitment", CommitmentSize)
		if err != nil {
			return nil, err
		}
		return &Commit{SID: sid, Keys: keys, Commitment: last}, nil
	case "accept":
		sid, keys, last, err := parseSAS(d, start, "accept", "nonce", NonceSize)
		if err != nil {
			return nil, err
		}
		return &Accept{SID: sid, Keys: keys, Nonce: last}, nil
	case "reveal":
		sid, _, last, err := parseSAS(d, start, "reveal", "nonce", NonceSize)
		if err != nil {
			return nil, err
		}
		return &Reveal{SID: sid, Nonce: last}, nil
	case "cancel":
		c, err := parseCancel(d, start)
		if err != nil {
			return nil, err
		}
		return &c, nil
	}
	return nil, malformed("element <%s xmlns='%s'> is not a SAS message", start.Name.Local, start.Name.Space)
}
