package sce

import (
	"errors"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
)

const (
	now0 = "2024-03-01T10:15:30Z"
	chat = `<message xmlns='jabber:client' type='chat' from='romeo@montague.lit/orchard' to='juliet@capulet.lit/balcony'>` +
		`<encrypted xmlns='urn:xmpp:omemo:2'/></message>`
	groupchat = `<message xmlns='jabber:client' type='groupchat' from='room@muc.capulet.lit/Romeo' to='juliet@capulet.lit/balcony'>` +
		`<encrypted xmlns='urn:xmpp:omemo:2'/></message>`
)

func mustParse(t testing.TB, s string) *Envelope {
	t.Helper()
	env, err := Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return env
}

func TestVerify(t *testing.T) {
	for _, tc := range []struct {
		name   string
		env    string
		outer  string
		opts   VerifyOptions
		p      Profile
		want   error
		affix  Affix
		reject bool
	}{
		{name: "converse shape: rpad and from only", env: sce(content + `<rpad>x</rpad><from jid='romeo@montague.lit'/>`), outer: chat},
		{name: "all affixes", env: sce(content + `<rpad/><from jid='romeo@montague.lit'/><to jid='juliet@capulet.lit'/><time stamp='2024-03-01T10:14:00Z'/>`), outer: chat},
		{name: "full JID affixes compare bare", env: sce(content + `<rpad/><from jid='romeo@montague.lit/other'/><to jid='juliet@capulet.lit/x'/>`), outer: chat},
		{name: "JIDs compare normalised", env: sce(content + `<rpad/><from jid='Romeo@Montague.LIT'/>`), outer: chat},
		{name: "rpad only", env: sce(content + `<rpad/>`), outer: chat},
		{name: "missing rpad", env: sce(content + `<from jid='romeo@montague.lit'/>`), outer: chat, want: ErrMissingAffix, affix: AffixRpad},
		{name: "forged from", env: sce(content + `<rpad/><from jid='mallory@evil.example'/>`), outer: chat, want: ErrSenderMismatch, affix: AffixFrom},
		{name: "from naming the recipient", env: sce(content + `<rpad/><from jid='juliet@capulet.lit'/>`), outer: chat, want: ErrSenderMismatch, affix: AffixFrom},
		{name: "to naming someone else", env: sce(content + `<rpad/><to jid='nurse@capulet.lit'/>`), outer: chat, want: ErrRecipientMismatch, affix: AffixTo},
		{name: "stale time", env: sce(content + `<rpad/><time stamp='2024-03-01T10:09:00Z'/>`), outer: chat, want: ErrStale, affix: AffixTime},
		{name: "future time", env: sce(content + `<rpad/><time stamp='2024-03-01T10:21:00Z'/>`), outer: chat, want: ErrFuture, affix: AffixTime},
		{name: "time at the window's edge", env: sce(content + `<rpad/><time stamp='2024-03-01T10:10:30Z'/>`), outer: chat},
		{name: "custom window", env: sce(content + `<rpad/><time stamp='2024-03-01T10:09:00Z'/>`), outer: chat, opts: VerifyOptions{Window: time.Hour}},
		{name: "custom window too small", env: sce(content + `<rpad/><time stamp='2024-03-01T10:15:00Z'/>`), outer: chat, opts: VerifyOptions{Window: time.Second}, want: ErrTimeOutOfWindow, affix: AffixTime},
		{name: "stanza without from", env: sce(content + `<rpad/><from jid='romeo@montague.lit'/>`),
			outer: `<message xmlns='jabber:client' to='juliet@capulet.lit'/>`, want: ErrSenderMismatch, affix: AffixFrom},
		{name: "sender option", env: sce(content + `<rpad/><from jid='romeo@montague.lit'/>`),
			outer: `<message xmlns='jabber:client' to='juliet@capulet.lit'/>`, opts: VerifyOptions{Sender: jid.MustParse("romeo@montague.lit/x")}},
		// Delayed delivery: the delay stamp is the sending time.
		{name: "offline copy checked against delay", env: sce(content + `<rpad/><time stamp='2024-02-01T08:00:00Z'/>`),
			outer: `<message xmlns='jabber:client' from='romeo@montague.lit/o' to='juliet@capulet.lit'><delay xmlns='urn:xmpp:delay' from='capulet.lit' stamp='2024-02-01T08:00:02Z'/></message>`},
		{name: "offline copy older than its delay", env: sce(content + `<rpad/><time stamp='2024-01-01T08:00:00Z'/>`),
			outer: `<message xmlns='jabber:client' from='romeo@montague.lit/o' to='juliet@capulet.lit'><delay xmlns='urn:xmpp:delay' stamp='2024-02-01T08:00:02Z'/></message>`,
			want:  ErrStale, affix: AffixTime},
		{name: "earliest delay wins", env: sce(content + `<rpad/><time stamp='2024-02-01T08:00:00Z'/>`),
			outer: `<message xmlns='jabber:client' from='romeo@montague.lit/o' to='juliet@capulet.lit'><delay xmlns='urn:xmpp:delay' stamp='2024-02-03T08:00:00Z'/><delay xmlns='urn:xmpp:delay' stamp='2024-02-01T08:01:00Z'/><delay xmlns='urn:xmpp:delay' stamp='garbage'/></message>`},
		// Group chat: <to/> is the room, <from/> the real JID.
		{name: "group chat", env: sce(content + `<rpad/><to jid='room@muc.capulet.lit'/>`), outer: groupchat},
		{name: "group chat without to", env: sce(content + `<rpad/>`), outer: groupchat, want: ErrMissingAffix, affix: AffixTo},
		{name: "group chat flag without to", env: sce(content + `<rpad/>`), outer: chat, opts: VerifyOptions{GroupChat: true}, want: ErrMissingAffix, affix: AffixTo},
		{name: "private message turned into group chat", env: sce(content + `<rpad/><to jid='juliet@capulet.lit'/>`), outer: groupchat, want: ErrRecipientMismatch, affix: AffixTo},
		{name: "group message turned into private", env: sce(content + `<rpad/><to jid='room@muc.capulet.lit'/>`), outer: chat, want: ErrRecipientMismatch, affix: AffixTo},
		{name: "group chat room option", env: sce(content + `<rpad/><to jid='other@muc.capulet.lit'/>`), outer: groupchat, opts: VerifyOptions{Room: jid.MustParse("other@muc.capulet.lit")}},
		{name: "group chat from without sender", env: sce(content + `<rpad/><to jid='room@muc.capulet.lit'/><from jid='romeo@montague.lit'/>`), outer: groupchat, want: ErrSenderMismatch, affix: AffixFrom},
		{name: "group chat from with sender", env: sce(content + `<rpad/><to jid='room@muc.capulet.lit'/><from jid='romeo@montague.lit'/>`), outer: groupchat,
			opts: VerifyOptions{Sender: jid.MustParse("romeo@montague.lit")}},
		{name: "group chat forged from", env: sce(content + `<rpad/><to jid='room@muc.capulet.lit'/><from jid='mallory@evil.example'/>`), outer: groupchat,
			opts: VerifyOptions{Sender: jid.MustParse("romeo@montague.lit")}, want: ErrSenderMismatch, affix: AffixFrom},
		// OX profiles.
		{name: "OX signcrypt against SCE", env: sce(content + `<rpad/>`), outer: chat, p: OX(KindSigncrypt), want: ErrNotEnvelope},
		{name: "invalid profile", env: sce(content + `<rpad/>`), outer: chat, p: Profile{Required: AffixRpad}, want: ErrInvalidProfile},
		{name: "profile without from", env: sce(content + `<rpad/><from jid='romeo@montague.lit'/>`), outer: chat,
			p: Profile{Name: "test", Required: AffixRpad}, want: ErrAffixNotAllowed, affix: AffixFrom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			if p.Name == "" && p.Kind == 0 && p.Required == 0 {
				p = OMEMO2()
			}
			if tc.opts.Now == nil {
				tc.opts.Now = fixed(now0)
			}
			err := Verify(mustParse(t, tc.env), mustStanza(t, tc.outer), p, tc.opts)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
			var ae *AffixError
			if tc.affix != 0 && (!errors.As(err, &ae) || ae.Affix != tc.affix) {
				t.Fatalf("Verify: %v, want an AffixError for %v", err, tc.affix)
			}
			if strings.Contains(err.Error(), "mallory") {
				t.Fatalf("error string %q quotes decrypted data", err)
			}
		})
	}
}

func TestVerifyOX(t *testing.T) {
	outer := mustStanza(t, `<message xmlns='jabber:client' from='romeo@example.net/a' to='juliet@example.org/b'><openpgp xmlns='urn:xmpp:openpgp:0'>x</openpgp></message>`)
	opts := VerifyOptions{Now: fixed("2014-07-10T15:06:00Z")}
	for _, tc := range []struct {
		kind Kind
		xml  string
		want error
	}{
		{KindSigncrypt, `<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='juliet@example.org'/><time stamp='2014-07-10T15:06:00Z'/><rpad/><payload/></signcrypt>`, nil},
		{KindSigncrypt, `<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='nurse@example.org'/><to jid='juliet@example.org'/><time stamp='2014-07-10T15:06:00Z'/><payload/></signcrypt>`, nil},
		{KindSigncrypt, `<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='nurse@example.org'/><time stamp='2014-07-10T15:06:00Z'/><payload/></signcrypt>`, ErrRecipientMismatch},
		{KindSigncrypt, `<signcrypt xmlns='urn:xmpp:openpgp:0'><time stamp='2014-07-10T15:06:00Z'/><payload/></signcrypt>`, ErrMissingAffix},
		{KindSigncrypt, `<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='juliet@example.org'/><payload/></signcrypt>`, ErrMissingAffix},
		{KindSign, `<sign xmlns='urn:xmpp:openpgp:0'><to jid='juliet@example.org'/><time stamp='2014-07-10T15:06:00Z'/><payload/></sign>`, nil},
		{KindSign, `<sign xmlns='urn:xmpp:openpgp:0'><time stamp='2014-07-10T15:06:00Z'/><payload/></sign>`, ErrMissingAffix},
		{KindCrypt, `<crypt xmlns='urn:xmpp:openpgp:0'><time stamp='2014-07-10T15:06:00Z'/><rpad>x</rpad><payload/></crypt>`, nil},
		{KindCrypt, `<crypt xmlns='urn:xmpp:openpgp:0'><time stamp='2014-07-10T12:06:00Z'/><payload/></crypt>`, ErrStale},
		// <from/> is not an OX affix: it is kept as an extra element.
		{KindCrypt, `<crypt xmlns='urn:xmpp:openpgp:0'><from jid='mallory@evil.example'/><time stamp='2014-07-10T15:06:00Z'/><payload/></crypt>`, nil},
	} {
		env, err := ParseKind([]byte(tc.xml), tc.kind)
		if err != nil {
			t.Fatalf("%s: %v", tc.xml, err)
		}
		if err := Verify(env, outer, OX(tc.kind), opts); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.xml, err, tc.want)
		}
	}
	if p := OX(KindSCE); p.check() == nil {
		t.Error("OX(KindSCE) is a valid profile")
	}
}

func TestAffixString(t *testing.T) {
	for a, want := range map[Affix]string{0: "none", AffixRpad: "rpad", AffixTo | AffixFrom: "to|from", AffixTime | 0x80: "time|0x80"} {
		if got := a.String(); got != want {
			t.Errorf("%d: %q, want %q", a, got, want)
		}
	}
}
