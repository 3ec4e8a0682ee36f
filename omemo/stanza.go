package omemo

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"hush.im/omemo/legacy"
	"hush.im/sce"
	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
)

// encryptedName is the name of <encrypted xmlns='urn:xmpp:omemo:2'/>,
// legacyEncryptedName that of <encrypted
// xmlns='eu.siacs.conversations.axolotl'/>.
var (
	encryptedName       = xml.Name{Space: NS, Local: "encrypted"}
	legacyEncryptedName = xml.Name{Space: legacy.NS, Local: "encrypted"}
)

const (
	nsEME   = "urn:xmpp:eme:0"
	emeName = "OMEMO"
)

// encryptionElement is XEP-0380's <encryption xmlns='urn:xmpp:eme:0'
// namespace='…' name='OMEMO'/> for the protocol namespace ns.
func encryptionElement(ns string) sce.Element {
	name := xml.Name{Space: nsEME, Local: "encryption"}
	return sce.TextElement(name, "",
		xml.Attr{Name: xml.Name{Local: "namespace"}, Value: ns},
		xml.Attr{Name: xml.Name{Local: "name"}, Value: emeName},
	)
}

// SealOptions configures SealStanza. The zero value is right for a
// one-to-one chat message.
type SealOptions struct {
	// Recipients are the bare JIDs to encrypt for. Empty means the bare
	// 'to' of the stanza. In a group chat they are the real JIDs of the
	// members (XEP-0384 §5.8); the own JID is always added.
	Recipients []jid.JID
	// GroupChat applies the SCE profile's group-chat rules (a <to/> affix
	// naming the room); implied for type='groupchat'.
	GroupChat bool
	// Now is the clock for the <time/> affix, when one is added; nil means
	// time.Now.
	Now func() time.Time
	// Only, when not zero, restricts the message to one protocol (see
	// Plaintext.Only).
	Only Protocol
}

// SealStanza encrypts a plaintext stanza (XEP-0384 §5.5, XEP-0420 §7) for
// the recipients' devices, each with the newest protocol it announces
// (EncryptMessage): its sensitive elements go into an SCE envelope with the
// OMEMO 2 profile (<rpad/>, <from/>, <to/> in group chats) for OMEMO 2
// devices, its <body/> text alone to devices that speak only legacy OMEMO
// (their reports list every other sensitive element as Withheld), and the
// outer stanza keeps only what servers need, plus the <encrypted/>
// element of each protocol used, an XEP-0380 <encryption/> for each, and
// <store xmlns='urn:xmpp:hints'/>. The report is returned even when err
// is a *NoEligibleDevicesError.
func (m *Manager) SealStanza(st *sce.Stanza, opts *SealOptions) (*sce.Stanza, *Report, error) {
	if opts == nil {
		opts = &SealOptions{}
	}
	outer, env, err := sce.Seal(st, sce.SealOptions{
		Profile:   sce.OMEMO2(),
		From:      m.own,
		GroupChat: opts.GroupChat,
		Now:       opts.Now,
	})
	if err != nil {
		return nil, nil, err
	}
	p := &Plaintext{Only: opts.Only}
	if p.Only != ProtocolLegacy {
		if p.Envelope, err = env.Marshal(); err != nil {
			return nil, nil, err
		}
	}
	if p.Only != ProtocolOMEMO2 {
		p.Body, p.Withheld = legacyBody(st)
	}
	recipients := opts.Recipients
	if len(recipients) == 0 {
		to, err := jid.Parse(st.AttrValue("to"))
		if err != nil {
			return nil, nil, fmt.Errorf("omemo: stanza without a valid 'to' and no recipients: %w", err)
		}
		recipients = []jid.JID{to.Bare()}
	}
	msg, rep, err := m.EncryptMessage(p, recipients...)
	if err != nil {
		return nil, rep, err
	}
	add := func(r xml.TokenReader, ns string) error {
		el, err := sce.ReadElement(r)
		if err != nil {
			return err
		}
		outer.Children = append(outer.Children, el, encryptionElement(ns))
		return nil
	}
	if msg.OMEMO2 != nil {
		if err := add(msg.OMEMO2.TokenReader(), NS); err != nil {
			return nil, rep, err
		}
	}
	if msg.Legacy != nil {
		if err := add(msg.Legacy.TokenReader(), legacy.NS); err != nil {
			return nil, rep, err
		}
	}
	return outer, rep, nil
}

// nsClient is the client stanza namespace, in which sce builds stanzas.
const nsClient = "jabber:client"

func isBody(st *sce.Stanza, name xml.Name) bool {
	return name.Local == "body" && (name.Space == st.Name.Space || name.Space == nsClient)
}

// legacyBody returns what legacy OMEMO can carry of a plaintext stanza —
// the text of its <body/>, the one without xml:lang if there are several
// — and the names of the sensitive elements it leaves out (XEP-0384 0.3:
// body only).
func legacyBody(st *sce.Stanza) (body string, withheld []xml.Name) {
	at := -1
	for i, el := range st.Children {
		if !isBody(st, el.Name) {
			continue
		}
		if at < 0 || (hasLang(st.Children[at]) && !hasLang(el)) {
			at = i
		}
	}
	for i, el := range st.Children {
		if i == at {
			body = el.Text()
		} else if sce.Classify(el.Name) == sce.Sensitive {
			withheld = append(withheld, el.Name)
		}
	}
	return body, withheld
}

func hasLang(el sce.Element) bool {
	if len(el.Tokens) == 0 {
		return false
	}
	start, _ := el.Tokens[0].(xml.StartElement)
	for _, a := range start.Attr {
		if a.Name.Local == "lang" {
			return true
		}
	}
	return false
}

// OpenOptions configures OpenStanza. The zero value is right for a
// one-to-one chat message.
type OpenOptions struct {
	// Sender is the sender's real bare JID. Zero means the bare 'from' of
	// the stanza; in a group chat, where 'from' is an occupant JID, it must
	// be set from the room's occupant list.
	Sender jid.JID
	// GroupChat and Room are passed to sce.Verify: in a group chat the
	// <to/> affix must name the room (zero Room: the bare 'from').
	GroupChat bool
	Room      jid.JID
	// Now is the clock for checking the <time/> affix; nil means time.Now.
	Now func() time.Time
	// Window is the accepted distance of the <time/> affix (zero:
	// sce.DefaultWindow).
	Window time.Duration
	// Commit, if set, runs in the decrypting transaction after the
	// envelope verified; an error rolls everything back (see DecryptWith).
	Commit func(tx Tx, d *Decrypted, st *sce.Stanza) error
}

// Opened is the outcome of OpenStanza.
type Opened struct {
	*Decrypted
	// Stanza is the application stanza: the envelope's content in place
	// of <encrypted/>, every child marked Encrypted or not (sce.Open). It
	// is nil for an empty OMEMO message.
	Stanza *sce.Stanza
}

// ErrNoEncrypted is returned by OpenStanza for a stanza without an
// <encrypted/> element of either protocol.
var ErrNoEncrypted = errors.New("omemo: no OMEMO <encrypted/> element in the stanza")

// OpenStanza decrypts a stanza carrying <encrypted/> of either protocol:
// the OMEMO 2 element when it holds a key for this device, else the legacy
// one when it holds a key for this device id (a stanza sent to a mix of
// devices carries both).
//
// OMEMO 2 (XEP-0384 §5.6): the SCE envelope is verified against the stanza
// under the OMEMO 2 profile (XEP-0420 §8) before anything is committed: a
// message whose affixes do not verify (wrong <from/>, stale <time/>, …)
// changes no state and fails with the sce error.
//
// Legacy OMEMO (XEP-0384 0.3 §Receiving a message): the decrypted text
// becomes the stanza's <body/>, marked Encrypted; it must be UTF-8 without
// characters XML forbids. Every other sensitive element of the stanza
// travelled in the clear and is dropped, as sce.Open drops them; legacy
// OMEMO has no affixes to verify.
//
// Take carbons and archive results out of their wrappers first with
// sce.Forwarded, and check who sent the wrapper.
func (m *Manager) OpenStanza(outer *sce.Stanza, opts *OpenOptions) (*Opened, error) {
	if opts == nil {
		opts = &OpenOptions{}
	}
	var el, lel *sce.Element
	for i := range outer.Children {
		switch outer.Children[i].Name {
		case encryptedName:
			if el == nil {
				el = &outer.Children[i]
			}
		case legacyEncryptedName:
			if lel == nil {
				lel = &outer.Children[i]
			}
		}
	}
	if el == nil && lel == nil {
		return nil, ErrNoEncrypted
	}
	from := opts.Sender
	if from.Equal(jid.JID{}) {
		var err error
		if from, err = jid.Parse(outer.AttrValue("from")); err != nil {
			return nil, fmt.Errorf("omemo: stanza without a valid 'from': %w", err)
		}
	}
	from = from.Bare()
	var enc *Encrypted
	if el != nil {
		var err error
		if enc, err = readEncrypted(&tokenSlice{toks: el.Tokens}); err != nil {
			return nil, err
		}
	}
	if enc == nil || enc.Find(m.own, m.deviceID) == nil {
		if lel == nil {
			return nil, ErrNotForThisDevice
		}
		var lenc legacy.Encrypted
		if err := xml.NewTokenDecoder(&tokenSlice{toks: lel.Tokens}).Decode(&lenc); err != nil {
			return nil, err
		}
		if len(lenc.KeysFor(m.deviceID)) > 0 || enc == nil {
			return m.openLegacyStanza(outer, from, &lenc, opts)
		}
	}
	out := &Opened{}
	var err error
	out.Decrypted, err = m.DecryptWith(from, enc, func(tx Tx, d *Decrypted) error {
		if d.Envelope != nil {
			env, err := sce.Parse(d.Envelope)
			if err != nil {
				return err
			}
			vo := sce.VerifyOptions{Now: opts.Now, Window: opts.Window, GroupChat: opts.GroupChat, Room: opts.Room, Sender: from}
			if err := sce.Verify(env, outer, sce.OMEMO2(), vo); err != nil {
				return err
			}
			if out.Stanza, err = sce.Open(outer, env, encryptedName); err != nil {
				return err
			}
		}
		if opts.Commit != nil {
			return opts.Commit(tx, d, out.Stanza)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ErrInvalidBody is returned by OpenStanza for a legacy message whose
// decrypted body is not UTF-8 text that XML allows. Nothing is committed.
var ErrInvalidBody = fmt.Errorf("omemo: %w: legacy body is not valid XML text", ErrMalformed)

func (m *Manager) openLegacyStanza(outer *sce.Stanza, from jid.JID, enc *legacy.Encrypted, opts *OpenOptions) (*Opened, error) {
	out := &Opened{}
	var err error
	out.Decrypted, err = m.DecryptLegacyWith(from, enc, func(tx Tx, d *Decrypted) error {
		if d.Body != nil {
			if !validXMLText(d.Body) {
				return ErrInvalidBody
			}
			out.Stanza = openLegacy(outer, string(d.Body))
		}
		if opts.Commit != nil {
			return opts.Commit(tx, d, out.Stanza)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// openLegacy returns the application stanza of a legacy message: the
// decrypted body, marked Encrypted, where the legacy <encrypted/> was;
// the server-processed and mirrored elements of outer, marked not
// Encrypted; every other element (a plaintext fallback body, the OMEMO 2
// element, anything sensitive sent in the clear) dropped.
func openLegacy(outer *sce.Stanza, body string) *sce.Stanza {
	res := &sce.Stanza{Name: outer.Name, Attr: outer.Attr, Children: make([]sce.Element, 0, len(outer.Children))}
	placed := false
	for _, el := range outer.Children {
		if el.Name == legacyEncryptedName {
			if !placed {
				b := sce.TextElement(xml.Name{Space: outer.Name.Space, Local: "body"}, body)
				b.Encrypted = true
				res.Children = append(res.Children, b)
				placed = true
			}
			continue
		}
		if c := sce.Classify(el.Name); c != sce.ServerProcessed && c != sce.Mirrored {
			continue
		}
		el.Encrypted = false
		res.Children = append(res.Children, el)
	}
	return res
}

// validXMLText reports whether b is UTF-8 made of characters XML 1.0
// allows (§2.2 Char).
func validXMLText(b []byte) bool {
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 {
			return false
		}
		if !(r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF) {
			return false
		}
		b = b[n:]
	}
	return true
}

// tokenSlice reads tokens from a slice (sce.Element.Tokens, whose names are
// all resolved, unlike those of its TokenReader).
type tokenSlice struct{ toks []xml.Token }

func (r *tokenSlice) Token() (xml.Token, error) {
	if len(r.toks) == 0 {
		return nil, io.EOF
	}
	t := r.toks[0]
	r.toks = r.toks[1:]
	return t, nil
}

// readEncrypted parses an <encrypted/> element from a token stream whose
// names are resolved (as sce.Element tokens are).
func readEncrypted(r xml.TokenReader) (*Encrypted, error) {
	d := xml.NewTokenDecoder(r)
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, malformed("no <encrypted> element")
		}
		if start, ok := tok.(xml.StartElement); ok {
			e, err := parseEncrypted(d, start)
			if err != nil {
				return nil, err
			}
			return &e, nil
		}
	}
}

var _ xmlstream.Marshaler = Encrypted{}
