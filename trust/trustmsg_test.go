package trust_test

import (
	"encoding/base64"
	"encoding/xml"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"hush.im/omemo"
	"hush.im/trust"
	"mellium.im/xmpp/jid"
)

func unb64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parseTM(s string) (*trust.TrustMessage, error) {
	var tm trust.TrustMessage
	if err := xml.Unmarshal([]byte(s), &tm); err != nil {
		return nil, err
	}
	return &tm, nil
}

// TestTrustMessageXEPExample parses XEP-0434 §4's example.
func TestTrustMessageXEPExample(t *testing.T) {
	raw, err := os.ReadFile("testdata/xep-0434-example.xml")
	if err != nil {
		t.Fatal(err)
	}
	tm, err := parseTM(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	want := trust.NewATMMessage(
		trust.KeyOwner{JID: alice, Keys: []trust.KeyDecision{
			{Key: unb64(t, "aFABnX7Q/rbTgjBySYzrT2FsYCVYb49mbca5yB734KQ="), Trust: true},
			{Key: unb64(t, "IhpPjiKLchgrAG5cpSfTvdzPjZ5v6vTOluHEUehkgCA="), Trust: true},
		}},
		trust.KeyOwner{JID: bob, Keys: []trust.KeyDecision{
			{Key: unb64(t, "YjVI04NcbTPvXLaA95RO84HPcSvyOgEZ2r5cTyUs0C8="), Trust: true},
			{Key: unb64(t, "tCP1CI3pqSTVGzFYFyPYUMfMZ9Ck/msmfD0wH/VtJBM=")},
			{Key: unb64(t, "2fhJtrgoMJxfLI3084/YkYh9paqiSiLFDVL2m0qAgX4=")},
		}},
	)
	if !reflect.DeepEqual(tm, want) {
		t.Fatalf("parsed %#v\nwant %#v", tm, want)
	}
}

var tmTable = []struct {
	name string
	tm   *trust.TrustMessage
	xml  string
}{
	{"one trust", trust.NewATMMessage(trust.KeyOwner{JID: bob, Keys: []trust.KeyDecision{{Key: key(1), Trust: true}}}),
		`<trust-message xmlns="urn:xmpp:tm:1" usage="urn:xmpp:atm:1" encryption="urn:xmpp:omemo:2"><key-owner jid="bob@example.com"><trust>` + b64(key(1)) + `</trust></key-owner></trust-message>`},
	{"interleaved", trust.NewATMMessage(
		trust.KeyOwner{JID: alice, Keys: []trust.KeyDecision{{Key: key(1)}, {Key: key(2), Trust: true}, {Key: key(3)}}},
		trust.KeyOwner{JID: bob, Keys: []trust.KeyDecision{{Key: key(1), Trust: true}}}),
		`<trust-message xmlns="urn:xmpp:tm:1" usage="urn:xmpp:atm:1" encryption="urn:xmpp:omemo:2"><key-owner jid="alice@example.org"><distrust>` + b64(key(1)) + `</distrust><trust>` + b64(key(2)) + `</trust><distrust>` + b64(key(3)) + `</distrust></key-owner><key-owner jid="bob@example.com"><trust>` + b64(key(1)) + `</trust></key-owner></trust-message>`},
	{"other usage, short key id", &trust.TrustMessage{Usage: "urn:example:x", Encryption: "urn:xmpp:openpgp:0",
		Owners: []trust.KeyOwner{{JID: bob, Keys: []trust.KeyDecision{{Key: []byte{0xab, 0xcd}}}}}},
		`<trust-message xmlns="urn:xmpp:tm:1" usage="urn:example:x" encryption="urn:xmpp:openpgp:0"><key-owner jid="bob@example.com"><distrust>q80=</distrust></key-owner></trust-message>`},
}

func TestTrustMessageEncoding(t *testing.T) {
	for _, tc := range tmTable {
		t.Run(tc.name, func(t *testing.T) {
			if got := marshal(t, tc.tm); got != tc.xml {
				t.Fatalf("marshal:\n got %s\nwant %s", got, tc.xml)
			}
			if out, err := xml.Marshal(tc.tm); err != nil || string(out) != tc.xml {
				t.Fatalf("xml.Marshal = %s, %v", out, err)
			}
			tm, err := parseTM(tc.xml)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(tm, tc.tm) {
				t.Fatalf("parsed %#v, want %#v", tm, tc.tm)
			}
		})
	}
}

func TestTrustMessageParseErrors(t *testing.T) {
	open := `<trust-message xmlns="urn:xmpp:tm:1" usage="urn:xmpp:atm:1" encryption="urn:xmpp:omemo:2">`
	k := b64(key(1))
	owner := `<key-owner jid="bob@example.com"><trust>` + k + `</trust></key-owner>`
	long := b64(fill(1, trust.MaxKeyIDSize+1))
	for name, s := range map[string]string{
		"wrong namespace":    `<trust-message xmlns="urn:xmpp:tm:0" usage="u" encryption="e">` + owner + `</trust-message>`,
		"no usage":           `<trust-message xmlns="urn:xmpp:tm:1" encryption="e">` + owner + `</trust-message>`,
		"no encryption":      `<trust-message xmlns="urn:xmpp:tm:1" usage="u">` + owner + `</trust-message>`,
		"empty usage":        `<trust-message xmlns="urn:xmpp:tm:1" usage="" encryption="e">` + owner + `</trust-message>`,
		"extra attribute":    `<trust-message xmlns="urn:xmpp:tm:1" usage="u" encryption="e" x="y">` + owner + `</trust-message>`,
		"no owner":           open + `</trust-message>`,
		"owner without keys": open + `<key-owner jid="bob@example.com"/></trust-message>`,
		"owner without jid":  open + `<key-owner><trust>` + k + `</trust></key-owner></trust-message>`,
		"full jid":           open + `<key-owner jid="bob@example.com/phone"><trust>` + k + `</trust></key-owner></trust-message>`,
		"invalid jid":        open + `<key-owner jid="@"><trust>` + k + `</trust></key-owner></trust-message>`,
		"owner twice":        open + owner + owner + `</trust-message>`,
		"key twice":          open + `<key-owner jid="bob@example.com"><trust>` + k + `</trust><distrust>` + k + `</distrust></key-owner></trust-message>`,
		"empty key":          open + `<key-owner jid="bob@example.com"><trust></trust></key-owner></trust-message>`,
		"key not base64":     open + `<key-owner jid="bob@example.com"><trust>*</trust></key-owner></trust-message>`,
		"key too long":       open + `<key-owner jid="bob@example.com"><trust>` + long + `</trust></key-owner></trust-message>`,
		"unknown child":      open + `<key-owner jid="bob@example.com"><maybe>` + k + `</maybe></key-owner></trust-message>`,
		"foreign owner":      open + `<key-owner xmlns="urn:other" jid="bob@example.com"><trust>` + k + `</trust></key-owner></trust-message>`,
		"attribute on trust": open + `<key-owner jid="bob@example.com"><trust id="1">` + k + `</trust></key-owner></trust-message>`,
		"text":               open + `hello` + owner + `</trust-message>`,
		"truncated":          open + `<key-owner jid="bob@example.com"><trust>` + k,
	} {
		if _, err := parseTM(s); !errors.Is(err, trust.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	var b strings.Builder
	b.WriteString(open + `<key-owner jid="bob@example.com">`)
	for i := 0; i <= trust.MaxOwnerKeys; i++ {
		b.WriteString(`<trust>` + b64([]byte{byte(i >> 8), byte(i)}) + `</trust>`)
	}
	b.WriteString(`</key-owner></trust-message>`)
	if _, err := parseTM(b.String()); !errors.Is(err, trust.ErrMalformed) {
		t.Errorf("too many keys: %v", err)
	}
}

func TestEvaluateTrustMessage(t *testing.T) {
	carol := jid.MustParse("carol@example.net")
	msg := trust.NewATMMessage(
		trust.KeyOwner{JID: alice, Keys: []trust.KeyDecision{{Key: key(1), Trust: true}, {Key: key(2)}}},
		trust.KeyOwner{JID: bob, Keys: []trust.KeyDecision{{Key: key(3), Trust: true}, {Key: key(4)}, {Key: []byte{1, 2}, Trust: true}}},
		trust.KeyOwner{JID: carol, Keys: []trust.KeyDecision{{Key: key(5), Trust: true}}},
	)
	V, D := omemo.TrustVerified, omemo.TrustDistrusted
	dec := func(j jid.JID, k []byte, l omemo.TrustLevel) trust.Decision {
		return trust.Decision{JID: j, IdentityKey: k, Level: l}
	}
	all := []trust.Decision{dec(alice, key(1), V), dec(alice, key(2), D), dec(bob, key(3), V), dec(bob, key(4), D)}
	bobs := []trust.Decision{dec(bob, key(3), V), dec(bob, key(4), D)}
	short := dec(bob, []byte{1, 2}, V)
	for _, tc := range []struct {
		name    string
		from    trust.Sender
		tm      *trust.TrustMessage
		err     error
		apply   []trust.Decision
		ignored []trust.Decision
	}{
		{"own verified device: every owner", trust.Sender{JID: alice, IdentityKey: key(9), Trust: V}, msg, nil,
			append(all, dec(carol, key(5), V)), []trust.Decision{short}},
		{"contact's verified device: its own JID only", trust.Sender{JID: bob, IdentityKey: key(9), Trust: V}, msg, nil,
			bobs, []trust.Decision{dec(alice, key(1), V), dec(alice, key(2), D), short, dec(carol, key(5), V)}},
		{"third party's verified device", trust.Sender{JID: carol, Trust: V}, msg, nil,
			[]trust.Decision{dec(carol, key(5), V)}, []trust.Decision{dec(alice, key(1), V), dec(alice, key(2), D), dec(bob, key(3), V), dec(bob, key(4), D), short}},
		{"trusted but not verified", trust.Sender{JID: alice, Trust: omemo.TrustTrusted}, msg, trust.ErrUnauthenticatedSender, nil, nil},
		{"undecided", trust.Sender{JID: bob, Trust: omemo.TrustUndecided}, msg, trust.ErrUnauthenticatedSender, nil, nil},
		{"distrusted", trust.Sender{JID: alice, Trust: D}, msg, trust.ErrDistrustedSender, nil, nil},
		{"not ATM", trust.Sender{JID: alice, Trust: V}, &trust.TrustMessage{Usage: "urn:example", Encryption: omemo.NS, Owners: msg.Owners}, trust.ErrNotATM, nil, nil},
		{"not OMEMO 2", trust.Sender{JID: alice, Trust: V}, &trust.TrustMessage{Usage: trust.NSATM, Encryption: "eu.siacs.conversations.axolotl", Owners: msg.Owners}, trust.ErrNotATM, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := trust.EvaluateTrustMessage(jid.MustParse("alice@example.org/home"), tc.from, tc.tm)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if !reflect.DeepEqual(ev.Apply, tc.apply) {
				t.Errorf("Apply = %v\nwant %v", ev.Apply, tc.apply)
			}
			if !reflect.DeepEqual(ev.Ignored, tc.ignored) {
				t.Errorf("Ignored = %v\nwant %v", ev.Ignored, tc.ignored)
			}
		})
	}
	if !trust.MaySend(V) || trust.MaySend(omemo.TrustTrusted) || trust.MaySend(omemo.TrustUndecided) || trust.MaySend(D) {
		t.Error("MaySend: only verified devices get trust messages")
	}
}
