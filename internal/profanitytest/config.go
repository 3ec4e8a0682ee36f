// Package profanitytest drives Profanity 0.13 (https://profanity-im.github.io,
// the Debian package profanity), a deployed console XMPP client with legacy
// OMEMO (XEP-0384 0.3, eu.siacs.conversations.axolotl), for interop tests:
// it runs Profanity in a private tmux server, with a private HOME,
// XDG_CONFIG_HOME and XDG_DATA_HOME, types commands into it and waits for
// what it prints, and reads its chat logs.
//
// The account is written to Profanity's accounts file before it starts
// (with the password, server, port and tls.policy=disable), so Profanity
// connects with -a ACCOUNT and never prompts for a password. The profrc
// written next to it turns off everything that could block or distract a
// driven client: desktop notifications, the tray, autoaway, the version
// check, the splash screen and the roster panel, and turns on chat logs
// (including decrypted OMEMO messages, [omemo] log=on).
//
// This file holds the logic that needs neither tmux nor Profanity; the
// driver itself (Start, *Client) is built with the build tag interop.
package profanitytest // import "hush.im/internal/profanitytest"

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Paths of the binaries the driver runs (Debian packages profanity and
// tmux).
const (
	ProfanityPath = "/usr/bin/profanity"
	TmuxPath      = "/usr/bin/tmux"
)

// Pane geometry of the tmux session: wide enough that test messages are
// never wrapped by Profanity, tall enough that the console window keeps
// its first-run text, login and OMEMO lines on screen (a curses window
// scrolls inside the pane, not into tmux's history).
const (
	PaneWidth  = 200
	PaneHeight = 80
)

// ErrBadValue reports a value that cannot be written to Profanity's
// GLib key files (accounts, profrc) without changing their meaning.
var ErrBadValue = errors.New("profanitytest: value not allowed in a key file")

// Options configures the Profanity account of a Client.
type Options struct {
	// JID is the account's bare JID; Profanity's account is named after it.
	JID string
	// Password is the account's password, written to the accounts file.
	Password string
	// Host and Port are the server's c2s address (Profanity's "server" and
	// "port" account settings). The connection is plain TCP
	// (tls.policy=disable): loopback test servers only.
	Host string
	Port int
	// Resource is the resource Profanity binds; empty means "profanity".
	Resource string
	// Settings are profrc settings applied over DefaultSettings.
	Settings []Setting
}

// Setting is one profrc key: Key in [Group].
type Setting struct {
	Group, Key, Value string
}

// DefaultSettings are the profrc settings of every Client: nothing that
// blocks, beeps, notifies or goes away on its own; chat logs on, decrypted
// OMEMO messages in them; OMEMO keys of contacts trusted blindly (the
// test's peers have no other way to verify them), OMEMO sessions started by
// the test (/omemo start).
var DefaultSettings = []Setting{
	{"ui", "splash", "false"},
	{"ui", "vercheck", "false"},
	{"ui", "wintitle.show", "false"},
	{"ui", "flash", "false"},
	{"ui", "beep", "false"},
	{"ui", "roster", "false"},
	{"ui", "occupants", "false"},
	{"notifications", "message", "false"},
	{"notifications", "typing", "false"},
	{"notifications", "room", "false"},
	{"notifications", "invite", "false"},
	{"notifications", "sub", "false"},
	{"notifications", "tray", "false"},
	{"presence", "autoaway.mode", "off"},
	{"presence", "autoaway.check", "false"},
	{"logging", "chlog", "true"},
	{"omemo", "log", "on"},
	{"omemo", "trustmode", "blind"},
	{"omemo", "policy", "manual"},
}

// keyFileValue checks that v can be written as a GLib key file value and
// escapes it (GLib "Basic Format", escape sequences \\ \s \n \t \r).
func keyFileValue(v string) (string, error) {
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("%w: control character in a value", ErrBadValue)
		}
	}
	v = strings.ReplaceAll(v, `\`, `\\`)
	if strings.HasPrefix(v, " ") {
		v = `\s` + v[1:]
	}
	return v, nil
}

// keyFileName checks a group or key name: printable, without the
// characters that end or delimit one.
func keyFileName(n string) error {
	if n == "" || strings.ContainsAny(n, "[]=#") || strings.TrimSpace(n) != n {
		return fmt.Errorf("%w: name %q", ErrBadValue, n)
	}
	for _, r := range n {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: control character in a name", ErrBadValue)
		}
	}
	return nil
}

// writeKeyFile renders settings as a GLib key file, groups in their order
// of first appearance; a later setting of the same key replaces an earlier
// one.
func writeKeyFile(settings []Setting) ([]byte, error) {
	var groups []string
	keys := map[string][]string{}
	vals := map[[2]string]string{}
	for _, s := range settings {
		if err := keyFileName(s.Group); err != nil {
			return nil, err
		}
		if err := keyFileName(s.Key); err != nil {
			return nil, err
		}
		v, err := keyFileValue(s.Value)
		if err != nil {
			return nil, fmt.Errorf("[%s] %s: %w", s.Group, s.Key, err)
		}
		if _, ok := keys[s.Group]; !ok {
			groups = append(groups, s.Group)
		}
		k := [2]string{s.Group, s.Key}
		if _, ok := vals[k]; !ok {
			keys[s.Group] = append(keys[s.Group], s.Key)
		}
		vals[k] = v
	}
	var b bytes.Buffer
	for i, g := range groups {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "[%s]\n", g)
		for _, k := range keys[g] {
			fmt.Fprintf(&b, "%s=%s\n", k, vals[[2]string{g, k}])
		}
	}
	return b.Bytes(), nil
}

// jidPattern is what the driver accepts as a bare JID: it ends up in file
// names and tmux arguments.
var jidPattern = regexp.MustCompile(`^[a-z0-9._-]+@[a-z0-9.-]+$`)

// accountsFile renders Profanity's accounts file (its data directory,
// "accounts") for o: one enabled account named after the JID.
func accountsFile(o Options) ([]byte, error) {
	if !jidPattern.MatchString(o.JID) {
		return nil, fmt.Errorf("%w: JID %q", ErrBadValue, o.JID)
	}
	if o.Password == "" {
		return nil, fmt.Errorf("%w: empty password", ErrBadValue)
	}
	if o.Host == "" || o.Port <= 0 || o.Port > 65535 {
		return nil, fmt.Errorf("%w: server %q port %d", ErrBadValue, o.Host, o.Port)
	}
	res := o.Resource
	if res == "" {
		res = "profanity"
	}
	g := o.JID
	return writeKeyFile([]Setting{
		{g, "enabled", "true"},
		{g, "jid", o.JID},
		{g, "resource", res},
		{g, "server", o.Host},
		{g, "port", strconv.Itoa(o.Port)},
		{g, "tls.policy", "disable"},
		{g, "password", o.Password},
	})
}

// profrc renders Profanity's profrc: DefaultSettings, then extra.
func profrc(extra []Setting) ([]byte, error) {
	return writeKeyFile(append(append([]Setting(nil), DefaultSettings...), extra...))
}

// DirName is how Profanity names the directory of an account or contact
// in its data directory (chatlogs/, omemo/, database/): "@" becomes "_at_".
func DirName(jid string) string {
	return strings.ReplaceAll(jid, "@", "_at_")
}

// tmuxLiteral protects a literal send-keys argument from tmux's command
// parser, which takes an argument ending in ";" for a command separator:
// the final ";" is escaped.
func tmuxLiteral(s string) string {
	if strings.HasSuffix(s, ";") {
		return s[:len(s)-1] + `\;`
	}
	return s
}

// LogEntry is one message in a Profanity chat log.
type LogEntry struct {
	// Time is when Profanity logged it (or the message's delay stamp).
	Time time.Time
	// From is the sender's bare JID, or "me" for an outgoing message.
	From string
	// Text is the message as Profanity displayed it: the decrypted body
	// for an OMEMO message.
	Text string
}

// logLine is the start of a chat log entry: an ISO 8601 time, " - ", then
// "SENDER: " (or "*SENDER " for a /me message).
var logLine = regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d(?::?\d\d)?)) - (?:([^ :*][^ :]*): |\*([^ ]+) )(.*)$`)

// ParseChatLog parses a Profanity chat log file
// (chatlogs/ACCOUNT/CONTACT/YYYY_MM_DD.log): one entry per line
// "TIME - SENDER: TEXT", where a message's further lines follow as they are.
// A /me message ("TIME - *SENDER TEXT") keeps its "/me " prefix. Lines
// before the first entry are an error.
func ParseChatLog(b []byte) ([]LogEntry, error) {
	var out []LogEntry
	text := strings.TrimSuffix(string(b), "\n")
	if text == "" {
		return nil, nil
	}
	for i, line := range strings.Split(text, "\n") {
		m := logLine.FindStringSubmatch(line)
		if m == nil {
			if len(out) == 0 {
				return nil, fmt.Errorf("profanitytest: chat log line %d: not an entry: %q", i+1, line)
			}
			out[len(out)-1].Text += "\n" + line
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, normalizeOffset(m[1]))
		if err != nil {
			return nil, fmt.Errorf("profanitytest: chat log line %d: %w", i+1, err)
		}
		e := LogEntry{Time: ts, From: m[2], Text: m[4]}
		if m[3] != "" {
			e.From, e.Text = m[3], "/me "+m[4]
		}
		out = append(out, e)
	}
	return out, nil
}

// normalizeOffset turns GLib's ISO 8601 offsets (+01, +0100) into RFC 3339
// ones (+01:00).
func normalizeOffset(s string) string {
	if strings.HasSuffix(s, "Z") {
		return s
	}
	i := strings.LastIndexAny(s, "+-")
	off := strings.ReplaceAll(s[i+1:], ":", "")
	if len(off) == 2 {
		off += "00"
	}
	return s[:i+1] + off[:2] + ":" + off[2:]
}

// saslLine matches debug log lines that carry SASL exchanges, which hold
// the account's credentials.
var saslLine = regexp.MustCompile(`<(?:auth|response|challenge|success)\b`)

// LogExcerpt returns the last n lines of a Profanity debug log (profanity
// -l DEBUG) that mention OMEMO, errors or warnings, or stanzas carrying
// <encrypted/>, without the SASL exchange: what a failing test shows.
func LogExcerpt(log []byte, n int) string {
	var keep []string
	for _, line := range strings.Split(string(log), "\n") {
		if saslLine.MatchString(line) {
			continue
		}
		if strings.Contains(line, "OMEMO") || strings.Contains(line, ": ERR: ") || strings.Contains(line, ": WRN: ") ||
			strings.Contains(line, "<encrypted") || strings.Contains(line, "axolotl") {
			keep = append(keep, line)
		}
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return strings.Join(keep, "\n")
}
