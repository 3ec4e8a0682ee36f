package profanitytest

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestKeyFileValue(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      bool
	}{
		{in: "plain", want: "plain"},
		{in: "", want: ""},
		{in: `a\b`, want: `a\\b`},
		{in: " lead", want: `\slead`},
		{in: "trail ", want: "trail "},
		{in: "x=y;z#", want: "x=y;z#"},
		{in: "line\nbreak", err: true},
		{in: "tab\t", err: true},
		{in: "del\x7f", err: true},
	} {
		got, err := keyFileValue(tc.in)
		if tc.err {
			if !errors.Is(err, ErrBadValue) {
				t.Errorf("keyFileValue(%q) = %q, %v; want ErrBadValue", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("keyFileValue(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestWriteKeyFile(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []Setting
		want string
		err  bool
	}{
		{"groups in order, later value wins", []Setting{{"b", "k", "1"}, {"a", "x", "2"}, {"b", "j", "3"}, {"b", "k", "4"}},
			"[b]\nk=4\nj=3\n\n[a]\nx=2\n", false},
		{"empty", nil, "", false},
		{"bracket in group", []Setting{{"a]", "k", "v"}}, "", true},
		{"equals in key", []Setting{{"a", "k=", "v"}}, "", true},
		{"empty key", []Setting{{"a", "", "v"}}, "", true},
		{"space around key", []Setting{{"a", " k", "v"}}, "", true},
		{"newline in key", []Setting{{"a", "k\nx", "v"}}, "", true},
		{"newline in value", []Setting{{"a", "k", "v\n[evil]"}}, "", true},
	} {
		got, err := writeKeyFile(tc.in)
		if tc.err {
			if !errors.Is(err, ErrBadValue) {
				t.Errorf("%s: got %q, %v; want ErrBadValue", tc.name, got, err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

func TestAccountsFile(t *testing.T) {
	ok := Options{JID: "alice@localhost", Password: `pa ss\word`, Host: "127.0.0.1", Port: 5222}
	got, err := accountsFile(ok)
	want := "[alice@localhost]\nenabled=true\njid=alice@localhost\nresource=profanity\nserver=127.0.0.1\nport=5222\ntls.policy=disable\npassword=pa ss\\\\word\n"
	if err != nil || string(got) != want {
		t.Fatalf("accountsFile = %q, %v; want %q", got, err, want)
	}
	withRes := ok
	withRes.Resource = "laptop"
	if got, err := accountsFile(withRes); err != nil || !strings.Contains(string(got), "\nresource=laptop\n") {
		t.Errorf("accountsFile with a resource = %q, %v", got, err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Options)
	}{
		{"no JID", func(o *Options) { o.JID = "" }},
		{"full JID", func(o *Options) { o.JID = "alice@localhost/res" }},
		{"bracket in JID", func(o *Options) { o.JID = "a]@localhost" }},
		{"no localpart", func(o *Options) { o.JID = "localhost" }},
		{"no password", func(o *Options) { o.Password = "" }},
		{"newline in password", func(o *Options) { o.Password = "a\nb" }},
		{"no host", func(o *Options) { o.Host = "" }},
		{"port 0", func(o *Options) { o.Port = 0 }},
		{"port too big", func(o *Options) { o.Port = 65536 }},
		{"newline in resource", func(o *Options) { o.Resource = "r\nx" }},
	} {
		o := ok
		tc.edit(&o)
		if got, err := accountsFile(o); !errors.Is(err, ErrBadValue) {
			t.Errorf("%s: accountsFile = %q, %v; want ErrBadValue", tc.name, got, err)
		}
	}
}

func TestProfrc(t *testing.T) {
	got, err := profrc([]Setting{{"omemo", "trustmode", "manual"}, {"otr", "policy", "manual"}})
	if err != nil {
		t.Fatal(err)
	}
	s := string(got)
	for _, want := range []string{"[notifications]\nmessage=false\n", "autoaway.mode=off\n", "chlog=true\n", "[omemo]\nlog=on\ntrustmode=manual\n", "\n[otr]\npolicy=manual\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("profrc lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "trustmode=blind") {
		t.Errorf("profrc kept the default trust mode:\n%s", s)
	}
	if _, err := profrc([]Setting{{"ui", "x", "a\nb"}}); !errors.Is(err, ErrBadValue) {
		t.Errorf("profrc with a newline: %v", err)
	}
}

func TestDirName(t *testing.T) {
	for in, want := range map[string]string{
		"alice@localhost": "alice_at_localhost",
		"localhost":       "localhost",
		"a@b@c":           "a_at_b_at_c",
	} {
		if got := DirName(in); got != want {
			t.Errorf("DirName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTmuxLiteral(t *testing.T) {
	for in, want := range map[string]string{
		"hello":      "hello",
		"a;b":        "a;b",
		"end;":       `end\;`,
		";":          `\;`,
		"/msg x y;;": `/msg x y;\;`,
		"":           "",
	} {
		if got := tmuxLiteral(in); got != want {
			t.Errorf("tmuxLiteral(%q) = %q, want %q", in, got, want)
		}
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// TestParseChatLogFiles reads chat logs Profanity 0.13.1 wrote in
// TestInteropProfanity (cmd/hush).
func TestParseChatLogFiles(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []LogEntry
	}{
		{"bob_at_localhost.log", []LogEntry{
			{mustTime(t, "2026-11-26T16:19:35.487700Z"), "me", "profanity to hush ff2809eb4a9cf460"},
			{mustTime(t, "2026-11-26T16:19:35.887389Z"), "bob@localhost", "hush to profanity dc9992abb81edf57"},
			{mustTime(t, "2026-11-26T16:19:36.127403Z"), "bob@localhost", "hush picks legacy 70bbc48e8863b48d"},
		}},
		{"carol_at_localhost.log", []LogEntry{
			{mustTime(t, "2026-11-26T16:19:36.397605Z"), "carol@localhost", "hush first 3cce9345af5a48dc"},
			{mustTime(t, "2026-11-26T16:19:36.689542Z"), "me", "profanity answers 00ef39672c54d341"},
		}},
	} {
		b, err := os.ReadFile(filepath.Join("testdata", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseChatLog(b)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, %v; want %+v", tc.file, got, err, tc.want)
		}
	}
}

func TestParseChatLog(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []LogEntry
		err  bool
	}{
		{"empty", "", nil, false},
		{"only a newline", "\n", nil, false},
		{"multi-line message", "2026-11-26T16:19:35.4877Z - bob@localhost: one\ntwo\n\nfour\n",
			[]LogEntry{{mustTime(t, "2026-11-26T16:19:35.4877Z"), "bob@localhost", "one\ntwo\n\nfour"}}, false},
		{"me action", "2026-11-26T16:19:35Z - *bob@localhost waves\n2026-11-26T16:19:36Z - *me nods\n",
			[]LogEntry{{mustTime(t, "2026-11-26T16:19:35Z"), "bob@localhost", "/me waves"}, {mustTime(t, "2026-11-26T16:19:36Z"), "me", "/me nods"}}, false},
		{"offset without colon", "2026-11-26T17:19:35.5+01 - me: hi\n",
			[]LogEntry{{mustTime(t, "2026-11-26T17:19:35.5+01:00"), "me", "hi"}}, false},
		{"offset hhmm", "2026-11-26T11:19:35-0530 - me: hi\n",
			[]LogEntry{{mustTime(t, "2026-11-26T11:19:35-05:30"), "me", "hi"}}, false},
		{"offset hh:mm", "2026-11-26T11:19:35-05:30 - me: hi\n",
			[]LogEntry{{mustTime(t, "2026-11-26T11:19:35-05:30"), "me", "hi"}}, false},
		{"colon in text", "2026-11-26T16:19:35Z - me: a: b - c\n",
			[]LogEntry{{mustTime(t, "2026-11-26T16:19:35Z"), "me", "a: b - c"}}, false},
		{"empty text", "2026-11-26T16:19:35Z - me: \n",
			[]LogEntry{{mustTime(t, "2026-11-26T16:19:35Z"), "me", ""}}, false},
		{"text before the first entry", "stray\n2026-11-26T16:19:35Z - me: hi\n", nil, true},
		{"impossible date", "2026-13-26T16:19:35Z - me: hi\n", nil, true},
		{"no sender", "2026-11-26T16:19:35Z - hi\n", nil, true},
	} {
		got, err := ParseChatLog([]byte(tc.in))
		if tc.err {
			if err == nil {
				t.Errorf("%s: got %+v, want an error", tc.name, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
}

func FuzzParseChatLog(f *testing.F) {
	for _, file := range []string{"bob_at_localhost.log", "carol_at_localhost.log"} {
		b, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("2026-11-26T16:19:35Z - *bob@localhost waves\nmore\n"))
	f.Add([]byte("2026-11-26T17:19:35.5+01 - me: hi\n"))
	f.Add([]byte("2026-11-26T17:19:35.5- - me: hi\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := ParseChatLog(b)
		if err != nil {
			return
		}
		for _, e := range es {
			if e.From == "" {
				t.Fatalf("entry %+v from %q", e, b)
			}
		}
	})
}

func TestLogExcerpt(t *testing.T) {
	log := strings.Join([]string{
		"t: conn: DBG: SENT: <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>c2VjcmV0</auth>",
		"t: xmpp: DBG: RECV: <challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>OMEMO</challenge>",
		"t: prof: DBG: [OMEMO] one",
		"t: prof: DBG: unrelated",
		"t: prof: ERR: IQ error received",
		"t: conn: DBG: SENT: <message><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>",
		"t: prof: WRN: [OMEMO] last",
	}, "\n")
	want := "t: prof: ERR: IQ error received\nt: conn: DBG: SENT: <message><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>\nt: prof: WRN: [OMEMO] last"
	if got := LogExcerpt([]byte(log), 3); got != want {
		t.Errorf("LogExcerpt(3) =\n%s\nwant\n%s", got, want)
	}
	if got := LogExcerpt([]byte(log), 10); strings.Contains(got, "c2VjcmV0") || strings.Contains(got, "challenge") || strings.Contains(got, "unrelated") || !strings.Contains(got, "[OMEMO] one") {
		t.Errorf("LogExcerpt(10) =\n%s", got)
	}
}
