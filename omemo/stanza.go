package omemo

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"time"

	"hush.im/sce"
	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
)

// encryptedName is the name of <encrypted xmlns='urn:xmpp:omemo:2'/>.
var encryptedName = xml.Name{Space: NS, Local: "encrypted"}

const (
	nsEME   = "urn:xmpp:eme:0"
	emeName = "OMEMO"
)

// encryptionElement is XEP-0380's <encryption
// xmlns='urn:xmpp:eme:0' namespace='urn:xmpp:omemo:2' name='OMEMO'/>.
func encryptionElement() sce.Element {
	name := xml.Name{Space: nsEME, Local: "encryption"}
	return sce.TextElement(name, "",
		xml.Attr{Name: xml.Name{Local: "namespace"}, Value: NS},
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
}

// SealStanza encrypts a plaintext stanza (XEP-0384 §5.5, XEP-0420 §7): its
// sensitive elements go into an SCE envelope with the OMEMO 2 profile
// (<rpad/>, <from/>, <to/> in group chats), the envelope is encrypted with
// Encrypt, and the outer stanza keeps only what servers need, plus
// <encrypted/>, the XEP-0380 <encryption/> and <store
// xmlns='urn:xmpp:hints'/>. The report is returned even when err is a
// *NoEligibleDevicesError.
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
	plaintext, err := env.Marshal()
	if err != nil {
		return nil, nil, err
	}
	recipients := opts.Recipients
	if len(recipients) == 0 {
		to, err := jid.Parse(st.AttrValue("to"))
		if err != nil {
			return nil, nil, fmt.Errorf("omemo: stanza without a valid 'to' and no recipients: %w", err)
		}
		recipients = []jid.JID{to.Bare()}
	}
	enc, rep, err := m.Encrypt(plaintext, recipients...)
	if err != nil {
		return nil, rep, err
	}
	el, err := sce.ReadElement(enc.TokenReader())
	if err != nil {
		return nil, rep, err
	}
	outer.Children = append(outer.Children, el, encryptionElement())
	return outer, rep, nil
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

// ErrNoEncrypted is returned by OpenStanza for a stanza without an OMEMO 2
// <encrypted/> element.
var ErrNoEncrypted = errors.New("omemo: no <encrypted xmlns='urn:xmpp:omemo:2'/> in the stanza")

// OpenStanza decrypts a stanza carrying <encrypted/> (XEP-0384 §5.6) and
// verifies its SCE envelope against the stanza under the OMEMO 2 profile
// (XEP-0420 §8) before anything is committed: a message whose affixes do
// not verify (wrong <from/>, stale <time/>, …) changes no state and fails
// with the sce error. Take carbons and archive results out of their
// wrappers first with sce.Forwarded, and check who sent the wrapper.
func (m *Manager) OpenStanza(outer *sce.Stanza, opts *OpenOptions) (*Opened, error) {
	if opts == nil {
		opts = &OpenOptions{}
	}
	var el *sce.Element
	for i := range outer.Children {
		if outer.Children[i].Name == encryptedName {
			el = &outer.Children[i]
			break
		}
	}
	if el == nil {
		return nil, ErrNoEncrypted
	}
	enc, err := readEncrypted(&tokenSlice{toks: el.Tokens})
	if err != nil {
		return nil, err
	}
	from := opts.Sender
	if from.Equal(jid.JID{}) {
		if from, err = jid.Parse(outer.AttrValue("from")); err != nil {
			return nil, fmt.Errorf("omemo: stanza without a valid 'from': %w", err)
		}
	}
	from = from.Bare()
	out := &Opened{}
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
