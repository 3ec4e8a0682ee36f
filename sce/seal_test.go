package sce

import (
	"bytes"
	"encoding/xml"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
)

func names(els []Element) []string {
	var out []string
	for _, e := range els {
		n := e.Name.Local
		if e.Encrypted {
			n += "+"
		}
		out = append(out, n)
	}
	return out
}

// roundTrip seals st, serializes and parses the envelope, appends an
// encrypted element to the outer stanza, reparses the outer stanza as a
// receiver would, verifies and opens.
func roundTrip(t *testing.T, st *Stanza, so SealOptions, vo VerifyOptions) (outer *Stanza, opened *Stanza) {
	t.Helper()
	outer, env, pt, err := SealBytes(st, so)
	if err != nil {
		t.Fatalf("SealBytes: %v", err)
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	if !bytes.Equal(pt, b) {
		t.Fatalf("SealBytes gave\n%s\nMarshal gives\n%s", pt, b)
	}
	got, err := ParseKind(b, so.Profile.Kind)
	if err != nil {
		t.Fatalf("Parse(%s): %v", b, err)
	}
	if !reflect.DeepEqual(got, env) {
		t.Fatalf("envelope changed in transit:\n%#v\n%#v", got, env)
	}
	outer.Children = append(outer.Children, TextElement(encName, "BASE64"))
	ob, err := outer.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	received := mustStanza(t, string(ob))
	if err := Verify(got, received, so.Profile, vo); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	opened, err = Open(received, got, encName)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return outer, opened
}

const fullMessage = `<message xmlns='jabber:client' to='juliet@capulet.lit/balcony' from='romeo@montague.lit/orchard' type='chat' id='m1' xml:lang='en'>` +
	`<body>But soft, what light</body>` +
	`<body xml:lang='it'>Ma piano</body>` +
	`<x xmlns='jabber:x:oob'><url>https://example.org/balcony.jpg</url></x>` +
	`<active xmlns='http://jabber.org/protocol/chatstates'/>` +
	`<request xmlns='urn:xmpp:receipts'/>` +
	`<origin-id xmlns='urn:xmpp:sid:0' id='o1'/>` +
	`<stanza-id xmlns='urn:xmpp:sid:0' id='s1' by='juliet@capulet.lit'/>` +
	`<no-copy xmlns='urn:xmpp:hints'/>` +
	`<private xmlns='urn:xmpp:carbons:2'/>` +
	`<addresses xmlns='http://jabber.org/protocol/address'><address type='to' jid='nurse@capulet.lit'/></addresses>` +
	`<delay xmlns='urn:xmpp:delay' stamp='2024-03-01T10:15:00Z'/>` +
	`<encryption xmlns='urn:xmpp:eme:0' namespace='urn:xmpp:omemo:2'/>` +
	`<result xmlns='urn:xmpp:mam:2' id='r1'/>` +
	`</message>`

func TestSealSplit(t *testing.T) {
	st := mustStanza(t, fullMessage)
	outer, env, err := Seal(st, SealOptions{Profile: OMEMO2(), Now: fixed(now0)})
	if err != nil {
		t.Fatal(err)
	}
	wantOuter := []string{"origin-id", "stanza-id", "no-copy", "private", "addresses", "delay", "encryption", "result", "store"}
	if got := names(outer.Children); !reflect.DeepEqual(got, wantOuter) {
		t.Errorf("outside: %v, want %v", got, wantOuter)
	}
	wantInside := []string{"body+", "body+", "x+", "active+", "request+", "origin-id+"}
	if got := names(env.Content); !reflect.DeepEqual(got, wantInside) {
		t.Errorf("inside: %v, want %v", got, wantInside)
	}
	if !reflect.DeepEqual(outer.Attr, st.Attr) {
		t.Errorf("outer attributes %v, want %v", outer.Attr, st.Attr)
	}
	if got := env.Affixes(); got != AffixRpad|AffixFrom {
		t.Errorf("affixes %v, want rpad|from", got)
	}
	if env.From.String() != "romeo@montague.lit" {
		t.Errorf("from %v, want the bare sender", env.From)
	}
	for _, c := range outer.Children {
		if c.Encrypted {
			t.Errorf("outer %v marked encrypted", c.Name)
		}
		if Classify(c.Name) == Sensitive {
			t.Errorf("sensitive %v outside", c.Name)
		}
	}
	// The input is not modified.
	if again := mustStanza(t, fullMessage); !reflect.DeepEqual(again, st) {
		t.Error("Seal modified its input")
	}
}

func TestSealOpenMessage(t *testing.T) {
	st := mustStanza(t, fullMessage)
	_, opened := roundTrip(t, st, SealOptions{Profile: OMEMO2(), Add: AffixTime | AffixTo, Now: fixed(now0)},
		VerifyOptions{Now: fixed("2024-03-01T10:17:00Z")})
	want := []string{"stanza-id", "no-copy", "private", "addresses", "delay", "encryption", "result", "store",
		"body+", "body+", "x+", "active+", "request+", "origin-id+"}
	if got := names(opened.Children); !reflect.DeepEqual(got, want) {
		t.Fatalf("opened: %v, want %v", got, want)
	}
	// Every sensitive element comes back exactly.
	for _, c := range st.Children {
		if Classify(c.Name) != Sensitive {
			continue
		}
		found := false
		for _, o := range opened.Children {
			if o.Encrypted && reflect.DeepEqual(o.Tokens, c.Tokens) {
				found = true
			}
		}
		if !found {
			t.Errorf("%v did not survive", c.Name)
		}
	}
	if !reflect.DeepEqual(opened.Attr, st.Attr) {
		t.Errorf("attributes %v, want %v", opened.Attr, st.Attr)
	}
}

func TestSealOpenIQ(t *testing.T) {
	st := mustStanza(t, `<iq xmlns='jabber:client' from='doctor@shakespeare.lit/pda' id='get-data-1' to='ladymacbeth@shakespeare.lit/castle' type='get'>`+
		`<data xmlns='urn:xmpp:bob' cid='sha1+8f35fef110ffc5df08d579a50083ff9308fb6242@bob.xmpp.org'/></iq>`)
	outer, opened := roundTrip(t, st, SealOptions{Profile: OMEMO2(), Add: AffixTo}, VerifyOptions{})
	if got := names(outer.Children); !reflect.DeepEqual(got, []string{"encrypted"}) {
		t.Fatalf("outer iq children %v: no <store/> for iqs", got)
	}
	if got := names(opened.Children); !reflect.DeepEqual(got, []string{"data+"}) {
		t.Fatalf("opened %v", got)
	}
	if opened.Children[0].AttrValue("cid") != "sha1+8f35fef110ffc5df08d579a50083ff9308fb6242@bob.xmpp.org" {
		t.Fatal("cid lost")
	}
}

func TestSealOpenPresence(t *testing.T) {
	st := mustStanza(t, `<presence xmlns='jabber:client' from='romeo@montague.lit/orchard' to='juliet@capulet.lit'>`+
		`<show>away</show><status>Climbing the wall</status><priority>5</priority>`+
		`<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://hush.im' ver='x'/></presence>`)
	outer, env, err := Seal(st, SealOptions{Profile: OMEMO2()})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(outer.Children); !reflect.DeepEqual(got, []string{"priority", "c"}) {
		t.Fatalf("outside %v", got)
	}
	if got := names(env.Content); !reflect.DeepEqual(got, []string{"show+", "status+"}) {
		t.Fatalf("inside %v", got)
	}
	_, opened := roundTrip(t, st, SealOptions{Profile: OMEMO2()}, VerifyOptions{})
	if got := names(opened.Children); !reflect.DeepEqual(got, []string{"priority", "c", "show+", "status+"}) {
		t.Fatalf("opened %v", got)
	}
}

func TestSealGroupChat(t *testing.T) {
	st := mustStanza(t, `<message xmlns='jabber:client' to='room@muc.capulet.lit' type='groupchat'><body>hi all</body></message>`)
	me := jid.MustParse("juliet@capulet.lit/balcony")
	_, env, err := Seal(st, SealOptions{Profile: OMEMO2(), From: me})
	if err != nil {
		t.Fatal(err)
	}
	if len(env.To) != 1 || env.To[0].String() != "room@muc.capulet.lit" || env.From.String() != "juliet@capulet.lit" {
		t.Fatalf("to %v from %v", env.To, env.From)
	}
	// As the room reflects it to Romeo.
	b, _ := env.Marshal()
	received := mustStanza(t, `<message xmlns='jabber:client' from='room@muc.capulet.lit/Juliet' to='romeo@montague.lit/orchard' type='groupchat'>`+
		`<encrypted xmlns='urn:xmpp:omemo:2'/><store xmlns='urn:xmpp:hints'/></message>`)
	got, _ := Parse(b)
	if err := Verify(got, received, OMEMO2(), VerifyOptions{Sender: jid.MustParse("juliet@capulet.lit")}); err != nil {
		t.Fatal(err)
	}
	// Without a 'to', a group chat message cannot be sealed.
	st = mustStanza(t, `<message xmlns='jabber:client' type='groupchat'><body>hi</body></message>`)
	if _, _, err := Seal(st, SealOptions{Profile: OMEMO2()}); !errors.Is(err, ErrNoAddress) {
		t.Fatalf("Seal: %v, want ErrNoAddress", err)
	}
}

func TestSealAffixes(t *testing.T) {
	noFrom := mustStanza(t, `<message xmlns='jabber:client' to='juliet@example.org/b'><body>x</body></message>`)
	for _, tc := range []struct {
		name string
		st   *Stanza
		opts SealOptions
		want Affix
		err  error
	}{
		{"OMEMO 2 without a sender", noFrom, SealOptions{Profile: OMEMO2()}, AffixRpad, nil},
		{"OMEMO 2 with From", noFrom, SealOptions{Profile: OMEMO2(), From: jid.MustParse("romeo@example.net/x")}, AffixRpad | AffixFrom, nil},
		{"OMEMO 2 plus time", noFrom, SealOptions{Profile: OMEMO2(), Add: AffixTime}, AffixRpad | AffixTime, nil},
		{"signcrypt", noFrom, SealOptions{Profile: OX(KindSigncrypt)}, AffixTo | AffixTime | AffixRpad, nil},
		{"sign", noFrom, SealOptions{Profile: OX(KindSign)}, AffixTo | AffixTime, nil},
		{"crypt", noFrom, SealOptions{Profile: OX(KindCrypt)}, AffixTime | AffixRpad, nil},
		{"crypt plus to", noFrom, SealOptions{Profile: OX(KindCrypt), Add: AffixTo}, AffixTime | AffixRpad | AffixTo, nil},
		{"from not allowed in OX", noFrom, SealOptions{Profile: OX(KindSigncrypt), Add: AffixFrom}, 0, ErrAffixNotAllowed},
		{"no profile", noFrom, SealOptions{}, 0, ErrInvalidProfile},
		{"signcrypt without to", mustStanza(t, `<message xmlns='jabber:client'><body>x</body></message>`), SealOptions{Profile: OX(KindSigncrypt)}, 0, ErrNoAddress},
		{"malformed to", mustStanza(t, `<message xmlns='jabber:client' to='@bad'><body>x</body></message>`), SealOptions{Profile: OX(KindSigncrypt)}, 0, ErrMalformedAffix},
		{"not a stanza", &Stanza{Name: xml.Name{Space: "jabber:client", Local: "mess"}}, SealOptions{Profile: OMEMO2()}, 0, ErrNotStanza},
		{"nil stanza", nil, SealOptions{Profile: OMEMO2()}, 0, ErrNotStanza},
		{"unencrypted envelope in input", mustStanza(t, `<message xmlns='jabber:client'>`+sce(content)+`</message>`), SealOptions{Profile: OMEMO2()}, 0, ErrInvalidElement},
		{"broken element", &Stanza{Name: xml.Name{Space: "jabber:client", Local: "message"}, Children: []Element{{Name: bodyName}}}, SealOptions{Profile: OMEMO2()}, 0, ErrInvalidElement},
		{"too deep for the receiver", deepStanza(MaxDepth - 1), SealOptions{Profile: OMEMO2()}, 0, ErrLimit},
		{"deep but within limits", deepStanza(MaxDepth - 2), SealOptions{Profile: OMEMO2()}, AffixRpad, nil},
		{"too many nodes for the receiver", manyChildren(MaxNodes / 2), SealOptions{Profile: OMEMO2()}, 0, ErrLimit},
		{"too large", &Stanza{Name: xml.Name{Space: "jabber:client", Local: "message"}, Children: []Element{TextElement(bodyName, strings.Repeat("x", MaxEnvelopeSize))}},
			SealOptions{Profile: OMEMO2()}, 0, ErrLimit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, env, err := Seal(tc.st, tc.opts)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Seal: %v, want %v", err, tc.err)
			}
			if err == nil && env.Affixes() != tc.want {
				t.Fatalf("affixes %v, want %v", env.Affixes(), tc.want)
			}
		})
	}
}

// deepStanza returns a message whose one child nests n elements deep.
func deepStanza(n int) *Stanza {
	var toks []xml.Token
	for range n {
		toks = append(toks, start("urn:a", "a"))
	}
	for range n {
		toks = append(toks, end("urn:a", "a"))
	}
	return &Stanza{Name: xml.Name{Space: "jabber:client", Local: "message"}, Children: []Element{elem(toks...)}}
}

func manyChildren(n int) *Stanza {
	st := &Stanza{Name: xml.Name{Space: "jabber:client", Local: "message"}}
	for range n {
		st.Children = append(st.Children, TextElement(xml.Name{Space: "urn:a", Local: "a"}, "x"))
	}
	return st
}

func TestSealStoreHint(t *testing.T) {
	for _, tc := range []struct {
		in     string
		stores int
	}{
		{`<message xmlns='jabber:client' to='a@b.c'><body>x</body></message>`, 1},
		{`<message xmlns='jabber:client' to='a@b.c'><store xmlns='urn:xmpp:hints'/><body>x</body><store xmlns='urn:xmpp:hints'/></message>`, 1},
		{`<message xmlns='jabber:client' to='a@b.c' type='error'><body>x</body></message>`, 0},
		{`<iq xmlns='jabber:client' to='a@b.c' type='get' id='1'><q xmlns='urn:q'/></iq>`, 0},
		{`<presence xmlns='jabber:client'/>`, 0},
	} {
		outer, _, err := Seal(mustStanza(t, tc.in), SealOptions{Profile: OMEMO2()})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, c := range outer.Children {
			if c.Name == storeName {
				n++
			}
		}
		if n != tc.stores {
			t.Errorf("%s: %d <store/>, want %d", tc.in, n, tc.stores)
		}
	}
}

func TestPadding(t *testing.T) {
	short := mustStanza(t, `<message xmlns='jabber:client' to='a@b.c'><body>ok</body></message>`)
	long := mustStanza(t, `<message xmlns='jabber:client' to='a@b.c'><body>`+strings.Repeat("long ", 200)+`</body></message>`)
	minLen, maxLen := MaxRandomPad, 0
	for range 300 {
		_, env, err := Seal(short, SealOptions{Profile: OMEMO2()})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := env.Marshal()
		if len(b) < PadTarget || len(b) > PadTarget+MaxRandomPad {
			t.Fatalf("short message padded to %d bytes, want %d…%d", len(b), PadTarget, PadTarget+MaxRandomPad)
		}
		for _, c := range []byte(env.Rpad) {
			if !strings.ContainsRune(padAlphabet, rune(c)) {
				t.Fatalf("padding character %q", c)
			}
		}
		_, env, err = Seal(long, SealOptions{Profile: OMEMO2()})
		if err != nil {
			t.Fatal(err)
		}
		n := len(env.Rpad)
		if n > MaxRandomPad {
			t.Fatalf("long message got %d characters of padding, want at most %d", n, MaxRandomPad)
		}
		minLen, maxLen = min(minLen, n), max(maxLen, n)
	}
	// 300 uniform draws from 0…200 miss both ends by 40 with probability
	// below 1e-30.
	if minLen > 40 || maxLen < MaxRandomPad-40 {
		t.Fatalf("random padding lengths span %d…%d, not uniform over 0…%d", minLen, maxLen, MaxRandomPad)
	}
	_, env, err := Seal(short, SealOptions{Profile: OMEMO2(), PadTo: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(env.Rpad) > MaxRandomPad {
		t.Fatalf("PadTo -1: %d characters", len(env.Rpad))
	}
	_, env, err = Seal(short, SealOptions{Profile: OMEMO2(), PadTo: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := env.Marshal(); len(b) < 4096 {
		t.Fatalf("PadTo 4096: %d bytes", len(b))
	}
}

// TestSealBytes checks that SealBytes returns exactly what Marshal writes
// for the envelope it returns, with and without padding, for every kind,
// and that Seal returns the same envelope shape.
func TestSealBytes(t *testing.T) {
	short := `<message xmlns='jabber:client' to='a@b.c/r' from='d@e.f/g'><body>ok</body></message>`
	long := `<message xmlns='jabber:client' to='a@b.c' from='d@e.f'><body>` + strings.Repeat("l&amp;ng &lt;é&#xD;", 300) + `</body>` +
		`<x xmlns='urn:x' a='&quot;'><y xmlns='urn:y'>z</y></x></message>`
	iq := `<iq xmlns='jabber:client' type='set' id='1' to='a@b.c'><q xmlns='urn:q'/></iq>`
	noPad := OMEMO2()
	noPad.Required = 0
	for _, tc := range []struct {
		name  string
		st    string
		opts  SealOptions
		rpad  bool
		exact int // serialized size when the padding fills to it exactly, or 0
	}{
		{"omemo2 short", short, SealOptions{Profile: OMEMO2()}, true, 0},
		{"omemo2 long", long, SealOptions{Profile: OMEMO2(), Add: AffixTime | AffixTo}, true, 0},
		{"omemo2 iq", iq, SealOptions{Profile: OMEMO2(), From: jid.MustParse("d@e.f")}, true, 0},
		{"omemo2 pad 4096", short, SealOptions{Profile: OMEMO2(), PadTo: 4096}, true, 0},
		{"omemo2 pad none", short, SealOptions{Profile: OMEMO2(), PadTo: -1}, true, 0},
		{"no rpad", short, SealOptions{Profile: noPad}, false, 0},
		{"signcrypt", short, SealOptions{Profile: OX(KindSigncrypt)}, true, 0},
		{"sign", long, SealOptions{Profile: OX(KindSign)}, false, 0},
		{"sign rpad", short, SealOptions{Profile: OX(KindSign), Add: AffixRpad}, true, 0},
		{"crypt", short, SealOptions{Profile: OX(KindCrypt), Extra: []Element{TextElement(xml.Name{Space: "urn:x", Local: "x"}, "1")}}, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := mustStanza(t, tc.st)
			for range 20 {
				_, env, pt, err := SealBytes(st, tc.opts)
				if err != nil {
					t.Fatal(err)
				}
				b, err := env.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(pt, b) {
					t.Fatalf("SealBytes gave\n%s\nMarshal gives\n%s", pt, b)
				}
				if env.HasRpad != tc.rpad {
					t.Fatalf("HasRpad = %t, want %t", env.HasRpad, tc.rpad)
				}
				target := tc.opts.PadTo
				if target == 0 {
					target = PadTarget
				}
				if tc.rpad && len(pt)-len(env.Rpad) < target && len(pt) < target {
					t.Fatalf("padded to %d bytes, below %d", len(pt), target)
				}
				got, err := ParseKind(pt, tc.opts.Profile.Kind)
				if err != nil {
					t.Fatalf("ParseKind: %v", err)
				}
				if !reflect.DeepEqual(got, env) {
					t.Fatalf("envelope changed in transit:\n%#v\n%#v", got, env)
				}
			}
		})
	}
}

func TestSealTime(t *testing.T) {
	st := mustStanza(t, `<message xmlns='jabber:client' to='a@b.c'><body>x</body></message>`)
	_, env, err := Seal(st, SealOptions{Profile: OX(KindSigncrypt), Now: func() time.Time {
		return time.Date(2024, 3, 1, 11, 15, 30, 123456789, time.FixedZone("CET", 3600))
	}})
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2024, 3, 1, 10, 15, 30, 123000000, time.UTC); env.Time != want {
		t.Fatalf("time %v, want %v", env.Time, want)
	}
	b, _ := env.Marshal()
	if !strings.Contains(string(b), `<time stamp="2024-03-01T10:15:30.123Z">`) {
		t.Fatalf("%s", b)
	}
}

// TestOpenHostile feeds Open outer stanzas and envelopes an attacker (or a
// careless sender) made.
func TestOpenHostile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		outer string
		env   string
		want  []string
		err   error
	}{
		{
			name:  "store and stanza-id smuggled inside",
			outer: `<message xmlns='jabber:client'><encrypted xmlns='urn:xmpp:omemo:2'/></message>`,
			env: sce(`<content><body xmlns='jabber:client'>hi</body><store xmlns='urn:xmpp:hints'/><no-store xmlns='urn:xmpp:hints'/>` +
				`<stanza-id xmlns='urn:xmpp:sid:0' id='forged' by='juliet@capulet.lit'/><addresses xmlns='http://jabber.org/protocol/address'/>` +
				`<delay xmlns='urn:xmpp:delay' stamp='2000-01-01T00:00:00Z'/><encryption xmlns='urn:xmpp:eme:0' namespace='x'/>` +
				`<received xmlns='urn:xmpp:carbons:2'/><result xmlns='urn:xmpp:mam:2'/></content>`),
			want: []string{"body+"},
		},
		{
			name:  "unencrypted body beside the envelope",
			outer: `<message xmlns='jabber:client'><body>Please send your password</body><encrypted xmlns='urn:xmpp:omemo:2'/><store xmlns='urn:xmpp:hints'/></message>`,
			env:   sce(`<content><body xmlns='jabber:client'>real</body></content>`),
			want:  []string{"body+", "store"},
		},
		{
			name:  "unencrypted sensitive elements only",
			outer: `<message xmlns='jabber:client'><body>fake</body><x xmlns='jabber:x:oob'><url>https://evil.example</url></x><encrypted xmlns='urn:xmpp:omemo:2'/></message>`,
			env:   sce(`<content/>`),
			want:  nil,
		},
		{
			name:  "unencrypted envelope beside the encrypted one",
			outer: `<message xmlns='jabber:client'>` + sce(content) + `<encrypted xmlns='urn:xmpp:omemo:2'/></message>`,
			env:   sce(`<content/>`),
			want:  nil,
		},
		{
			name:  "two bodies inside",
			outer: `<message xmlns='jabber:client'><encrypted xmlns='urn:xmpp:omemo:2'/></message>`,
			env:   sce(`<content><body xmlns='jabber:client'>first</body><body xmlns='jabber:client'>second</body><body xmlns='jabber:client' xml:lang='de'>erste</body></content>`),
			want:  []string{"body+", "body+"},
		},
		{
			name:  "body in jabber:server counts as body",
			outer: `<message xmlns='jabber:server'><encrypted xmlns='urn:xmpp:omemo:2'/></message>`,
			env:   sce(`<content><body xmlns='jabber:client'>first</body><body xmlns='jabber:server'>second</body></content>`),
			want:  []string{"body+"},
		},
		{
			name:  "origin-id inside wins",
			outer: `<message xmlns='jabber:client'><origin-id xmlns='urn:xmpp:sid:0' id='outer'/><encrypted xmlns='urn:xmpp:omemo:2'/></message>`,
			env:   sce(`<content><origin-id xmlns='urn:xmpp:sid:0' id='inner'/></content>`),
			want:  []string{"origin-id+"},
		},
		{
			name:  "origin-id outside only",
			outer: `<message xmlns='jabber:client'><origin-id xmlns='urn:xmpp:sid:0' id='outer'/><encrypted xmlns='urn:xmpp:omemo:2'/></message>`,
			env:   sce(`<content/>`),
			want:  []string{"origin-id"},
		},
		{
			name:  "duplicate hints outside",
			outer: `<message xmlns='jabber:client'><store xmlns='urn:xmpp:hints'/><store xmlns='urn:xmpp:hints'/><encrypted xmlns='urn:xmpp:omemo:2'/></message>`,
			env:   sce(`<content/>`),
			want:  []string{"store"},
		},
		{
			name:  "second encrypted element",
			outer: `<message xmlns='jabber:client'><encrypted xmlns='urn:xmpp:omemo:2'/><encrypted xmlns='urn:xmpp:omemo:2'/></message>`,
			env:   sce(content),
			want:  []string{"body+"},
		},
		{
			name:  "other protocol's encrypted element",
			outer: `<message xmlns='jabber:client'><encrypted xmlns='eu.siacs.conversations.axolotl'/><encrypted xmlns='urn:xmpp:omemo:2'/></message>`,
			env:   sce(content),
			want:  []string{"body+"},
		},
		{
			name:  "no encrypted element",
			outer: `<message xmlns='jabber:client'><body>x</body></message>`,
			env:   sce(content),
			err:   ErrNoEncrypted,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outer := mustStanza(t, tc.outer)
			opened, err := Open(outer, mustParse(t, tc.env), encName)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Open: %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if got := names(opened.Children); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("opened %v, want %v", got, tc.want)
			}
			if tc.name == "two bodies inside" && opened.Children[0].Text() != "first" {
				t.Fatalf("kept %q, want the first body", opened.Children[0].Text())
			}
			if tc.name == "origin-id inside wins" && opened.Children[0].AttrValue("id") != "inner" {
				t.Fatal("outer origin-id kept")
			}
		})
	}
	if _, err := Open(nil, &Envelope{}, encName); !errors.Is(err, ErrNotStanza) {
		t.Fatalf("Open(nil): %v", err)
	}
	if _, err := Open(mustStanza(t, chat), nil, encName); !errors.Is(err, ErrNotEnvelope) {
		t.Fatalf("Open(nil env): %v", err)
	}
}

func TestForwarded(t *testing.T) {
	const inner = `<message xmlns='jabber:client' from='romeo@montague.lit/orchard' to='juliet@capulet.lit/balcony' type='chat'>` +
		`<encrypted xmlns='urn:xmpp:omemo:2'/><store xmlns='urn:xmpp:hints'/></message>`
	env := mustParse(t, sce(content+`<rpad/><time stamp='2024-01-05T12:00:00Z'/><from jid='romeo@montague.lit'/>`))

	t.Run("archive copy verified against its delay", func(t *testing.T) {
		st := mustStanza(t, `<message xmlns='jabber:client' to='juliet@capulet.lit/balcony' id='q1'>`+
			`<result xmlns='urn:xmpp:mam:2' queryid='f27' id='28482-98726-73623'><forwarded xmlns='urn:xmpp:forward:0'>`+
			`<delay xmlns='urn:xmpp:delay' stamp='2024-01-05T12:00:01Z'/>`+inner+`</forwarded></result></message>`)
		in, wrapper, err := Forwarded(st)
		if err != nil {
			t.Fatal(err)
		}
		if wrapper != (xml.Name{Space: nsMAM, Local: "result"}) {
			t.Fatalf("wrapper %v", wrapper)
		}
		if got := names(in.Children); !reflect.DeepEqual(got, []string{"encrypted", "store", "delay"}) {
			t.Fatalf("inner children %v", got)
		}
		if err := Verify(env, in, OMEMO2(), VerifyOptions{Now: fixed(now0)}); err != nil {
			t.Fatalf("Verify: %v", err)
		}
		// Without the wrapper's delay the same copy is stale.
		plain := mustStanza(t, inner)
		if err := Verify(env, plain, OMEMO2(), VerifyOptions{Now: fixed(now0)}); !errors.Is(err, ErrStale) {
			t.Fatalf("Verify without delay: %v, want ErrStale", err)
		}
		opened, err := Open(in, env, encName)
		if err != nil {
			t.Fatal(err)
		}
		if got := names(opened.Children); !reflect.DeepEqual(got, []string{"body+", "store", "delay"}) {
			t.Fatalf("opened %v", got)
		}
	})
	t.Run("carbon", func(t *testing.T) {
		st := mustStanza(t, `<message xmlns='jabber:client' from='juliet@capulet.lit' to='juliet@capulet.lit/balcony'>`+
			`<received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>`+inner+`</forwarded></received></message>`)
		in, wrapper, err := Forwarded(st)
		if err != nil {
			t.Fatal(err)
		}
		if wrapper.Local != "received" || in.AttrValue("from") != "romeo@montague.lit/orchard" {
			t.Fatalf("wrapper %v, from %q", wrapper, in.AttrValue("from"))
		}
	})
	for name, s := range map[string]string{
		"no wrapper":       inner,
		"no forwarded":     `<message xmlns='jabber:client'><sent xmlns='urn:xmpp:carbons:2'/></message>`,
		"empty forwarded":  `<message xmlns='jabber:client'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'/></sent></message>`,
		"two stanzas":      `<message xmlns='jabber:client'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>` + inner + inner + `</forwarded></sent></message>`,
		"two forwarded":    `<message xmlns='jabber:client'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>` + inner + `</forwarded><forwarded xmlns='urn:xmpp:forward:0'>` + inner + `</forwarded></sent></message>`,
		"two delays":       `<message xmlns='jabber:client'><result xmlns='urn:xmpp:mam:2'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2024-01-05T12:00:01Z'/><delay xmlns='urn:xmpp:delay' stamp='2024-01-05T12:00:01Z'/>` + inner + `</forwarded></result></message>`,
		"stanza elsewhere": `<message xmlns='jabber:client'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><x xmlns='urn:x'>` + inner + `</x></forwarded></sent></message>`,
	} {
		if _, _, err := Forwarded(mustStanza(t, s)); !errors.Is(err, ErrNotForwarded) {
			t.Errorf("%s: %v, want ErrNotForwarded", name, err)
		}
	}
	two := `<message xmlns='jabber:client'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>` + inner +
		`</forwarded></sent><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>` + inner + `</forwarded></received></message>`
	if _, _, err := Forwarded(mustStanza(t, two)); !errors.Is(err, ErrDuplicate) {
		t.Errorf("two wrappers: %v, want ErrDuplicate", err)
	}
}

func TestConverseAndLibervia(t *testing.T) {
	outer := mustStanza(t, `<message xmlns='jabber:client' from='romeo@montague.lit/converse' to='juliet@capulet.lit/hush' type='chat'>`+
		`<encrypted xmlns='urn:xmpp:omemo:2'/><encryption xmlns='urn:xmpp:eme:0' namespace='urn:xmpp:omemo:2'/><store xmlns='urn:xmpp:hints'/></message>`)
	for _, file := range []string{"converse.xml", "libervia.xml", "xep0384-omemo2.xml"} {
		env, err := Parse(readVector(t, file))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if err := Verify(env, outer, OMEMO2(), VerifyOptions{Now: fixed(now0)}); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		opened, err := Open(outer, env, encName)
		if err != nil {
			t.Fatal(err)
		}
		if opened.Children[0].Name != bodyName || !opened.Children[0].Encrypted {
			t.Fatalf("%s: opened %v", file, names(opened.Children))
		}
	}
}

func TestRegistry(t *testing.T) {
	seen := map[xml.Name]bool{}
	for _, r := range registry {
		n := xml.Name{Space: r.space, Local: r.local}
		if seen[n] {
			t.Errorf("%v listed twice", n)
		}
		seen[n] = true
		if r.ref == "" || !validNamespace(r.space) || r.local != "*" && !validName(r.local) {
			t.Errorf("bad row %+v", r)
		}
	}
	for n, want := range map[xml.Name]Class{
		{Space: "urn:xmpp:hints", Local: "store"}:                         ServerProcessed,
		{Space: "urn:xmpp:hints", Local: "anything-new"}:                  ServerProcessed,
		{Space: "urn:xmpp:sid:0", Local: "stanza-id"}:                     ServerProcessed,
		{Space: "urn:xmpp:sid:0", Local: "origin-id"}:                     Mirrored,
		{Space: "urn:xmpp:eme:0", Local: "encryption"}:                    ServerProcessed,
		{Space: "http://jabber.org/protocol/address", Local: "addresses"}: ServerProcessed,
		{Space: "jabber:client", Local: "body"}:                           Sensitive,
		{Space: "jabber:server", Local: "body"}:                           Sensitive,
		{Space: "jabber:server", Local: "priority"}:                       ServerProcessed,
		{Space: "jabber:x:oob", Local: "x"}:                               Sensitive,
		{Space: NS, Local: "envelope"}:                                    Forbidden,
		{Space: "urn:xmpp:omemo:2", Local: "encrypted"}:                   Sensitive,
	} {
		if got := Classify(n); got != want {
			t.Errorf("Classify(%v) = %v, want %v", n, got, want)
		}
	}
}
