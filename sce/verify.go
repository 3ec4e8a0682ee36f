package sce

import (
	"fmt"
	"time"

	"mellium.im/xmpp/jid"
)

// DefaultWindow is how far a <time/> affix may be from the stanza's sending
// time when VerifyOptions.Window is zero. XEP-0420 §4 asks for "a reasonable
// margin" without a number; five minutes covers ordinary clock skew and
// delivery delay (like Kerberos' default skew), while stanzas delivered
// later carry a XEP-0203 delay that Verify uses instead of the clock.
const DefaultWindow = 5 * time.Minute

// VerifyOptions configures Verify. The zero value is ready to use for
// one-to-one chats.
type VerifyOptions struct {
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Window is the largest accepted distance between the <time/> affix and
	// the sending time; zero means DefaultWindow.
	Window time.Duration
	// GroupChat applies the profile's group-chat rules. It is implied for
	// messages of type 'groupchat'.
	GroupChat bool
	// Room is the group chat's bare JID, which <to/> must name in a group chat
	// (XEP-0384 §5.5.1). Zero means the bare 'from' of the stanza, which is
	// the room for messages a MUC service delivers.
	Room jid.JID
	// Sender is the sender's real JID, which <from/> must name. Zero means the
	// stanza's 'from'. Where 'from' is an occupant JID — in a group chat, and
	// in a private message through a room — it must be set (from the room's
	// occupant list) for <from/> to verify; in a group chat a <from/> without
	// Sender is ErrSenderMismatch.
	Sender jid.JID
}

// Verify checks an envelope's affixes against the profile and the stanza
// that carried it, outer (XEP-0420 §4, §8):
//
//   - the profile's required affixes are present (ErrMissingAffix), and no
//     affix it does not use (ErrAffixNotAllowed);
//   - <from/> names the bare JID of the sender (ErrSenderMismatch);
//   - <to/>, or one of the <to/>s of an OX element, names the bare JID of the
//     stanza's 'to', or in a group chat the room (ErrRecipientMismatch);
//   - <time/> is within the window of the sending time: the earliest XEP-0203
//     <delay/> outside the envelope when there is one, the clock otherwise
//     (ErrStale, ErrFuture; both are ErrTimeOutOfWindow).
//
// Failures are *AffixError values naming the affix. A stanza taken from a
// carbon or archive wrapper with Forwarded carries the archive's delay.
func Verify(env *Envelope, outer *Stanza, p Profile, opts VerifyOptions) error {
	if env == nil {
		return ErrNotEnvelope
	}
	if err := checkStanza(outer); err != nil {
		return err
	}
	if err := p.check(); err != nil {
		return err
	}
	if env.Kind != p.Kind {
		return fmt.Errorf("%w: <%s/> for a %s profile", ErrNotEnvelope, env.Kind, p.Kind)
	}
	group := opts.GroupChat || outer.isGroupChat()
	present := env.Affixes()
	need := p.Required
	if group {
		need |= p.GroupChat
	}
	if missing := need &^ present; missing != 0 {
		return &AffixError{Affix: missing.first(), Err: ErrMissingAffix}
	}
	if extra := present &^ p.permitted(); extra != 0 {
		return &AffixError{Affix: extra.first(), Err: ErrAffixNotAllowed}
	}
	if present&AffixFrom != 0 {
		want := opts.Sender
		if isZeroJID(want) && !group {
			want, _ = jid.Parse(outer.AttrValue("from"))
		}
		if isZeroJID(want) || !env.From.Bare().Equal(want.Bare()) {
			return &AffixError{Affix: AffixFrom, Err: ErrSenderMismatch,
				Got: env.From.Bare().String(), Want: bareString(want)}
		}
	}
	if present&AffixTo != 0 {
		var want jid.JID
		if group {
			want = opts.Room
			if isZeroJID(want) {
				want, _ = jid.Parse(outer.AttrValue("from"))
			}
		} else {
			want, _ = jid.Parse(outer.AttrValue("to"))
		}
		ok := false
		for _, j := range env.To {
			if !isZeroJID(want) && j.Bare().Equal(want.Bare()) {
				ok = true
				break
			}
		}
		if !ok {
			return &AffixError{Affix: AffixTo, Err: ErrRecipientMismatch,
				Got: env.To[0].Bare().String(), Want: bareString(want)}
		}
	}
	if present&AffixTime != 0 {
		ref, ok := delayStamp(outer)
		if !ok {
			now := time.Now
			if opts.Now != nil {
				now = opts.Now
			}
			ref = now()
		}
		window := opts.Window
		if window <= 0 {
			window = DefaultWindow
		}
		d := env.Time.Sub(ref)
		var err error
		switch {
		case d < -window:
			err = ErrStale
		case d > window:
			err = ErrFuture
		}
		if err != nil {
			return &AffixError{Affix: AffixTime, Err: err,
				Got: FormatDateTime(env.Time), Want: FormatDateTime(ref)}
		}
	}
	return nil
}

func bareString(j jid.JID) string {
	if isZeroJID(j) {
		return ""
	}
	return j.Bare().String()
}
