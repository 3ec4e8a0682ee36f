//go:build interop

package profanitytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// Timeouts of the driver.
const (
	// LoginTimeout bounds Profanity's start and login.
	LoginTimeout = 30 * time.Second
	// tmuxTimeout bounds one tmux command.
	tmuxTimeout = 10 * time.Second
	// pollInterval is how often WaitFor looks at the pane.
	pollInterval = 100 * time.Millisecond
	// excerptLines is how much of Profanity's debug log a failing test
	// shows.
	excerptLines = 60
)

// sessionName is the tmux session (and window) running Profanity.
const sessionName = "profanity"

// Client is a Profanity running in a private tmux server, logged in to the
// account of its Options. Its methods fail the test on error.
type Client struct {
	t      testing.TB
	socket string
	env    []string
	jid    string

	// Home is the private HOME; ConfigDir and DataDir are Profanity's own
	// directories under the private XDG_CONFIG_HOME and XDG_DATA_HOME
	// (profrc; accounts, chatlogs/, omemo/, logs/profanity.log).
	Home, ConfigDir, DataDir string
}

// Start writes o's account and the profrc, starts Profanity in a new tmux
// server with its own socket and waits until it has logged in. The tmux
// server is killed in t.Cleanup; if the test failed, the pane and an
// excerpt of Profanity's debug log are written to the test log first. It
// fails the test (t.Fatal) when Profanity or tmux is not installed.
func Start(t testing.TB, o Options) *Client {
	t.Helper()
	Require(t)
	accounts, err := accountsFile(o)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := profrc(o.Settings)
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	c := &Client{
		t:         t,
		jid:       o.JID,
		Home:      home,
		ConfigDir: filepath.Join(home, "config", "profanity"),
		DataDir:   filepath.Join(home, "data", "profanity"),
	}
	for _, d := range []string{c.ConfigDir, c.DataDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(c.DataDir, "accounts"), accounts, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.ConfigDir, "profrc"), rc, 0o600); err != nil {
		t.Fatal(err)
	}
	// The tmux socket lives in a short private directory (a socket path
	// is limited to about 100 bytes, too little for t.TempDir()),
	// removed with the server.
	sockDir, err := os.MkdirTemp("", "hush-tmux-")
	if err != nil {
		t.Fatal(err)
	}
	var nonce [6]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		t.Fatal(err)
	}
	c.socket = "profanity-" + hex.EncodeToString(nonce[:])
	// A minimal environment: no DISPLAY or D-Bus (no desktop
	// notifications), the private directories, a UTF-8 locale, UTC for
	// the chat log file names.
	c.env = []string{
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + filepath.Join(home, "config"),
		"XDG_DATA_HOME=" + filepath.Join(home, "data"),
		"XDG_CACHE_HOME=" + filepath.Join(home, "cache"),
		"PATH=/usr/bin:/bin",
		"LANG=C.UTF-8",
		"TERM=xterm-256color",
		"TZ=UTC",
		"TMUX_TMPDIR=" + sockDir,
	}

	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("profanitytest: pane of %s:\n%s", c.jid, c.capture())
			if b, err := os.ReadFile(c.LogPath()); err == nil {
				t.Logf("profanitytest: OMEMO lines of %s:\n%s", c.LogPath(), LogExcerpt(b, excerptLines))
			}
		}
		// A server that is already gone (its start failed) is fine.
		if out, err := c.tmux("kill-server"); err != nil && !strings.Contains(out, "no server running") && !strings.Contains(out, "error connecting") {
			t.Errorf("profanitytest: tmux kill-server: %v\n%s", err, out)
		}
		if err := os.RemoveAll(sockDir); err != nil {
			t.Errorf("profanitytest: %v", err)
		}
	})
	// The pane stays after Profanity exits, for the failure dump.
	if out, err := c.tmux("new-session", "-d", "-x", fmt.Sprint(PaneWidth), "-y", fmt.Sprint(PaneHeight), "-s", sessionName,
		ProfanityPath, "-l", "DEBUG", "-a", o.JID,
		";", "set-option", "-w", "-t", sessionName, "remain-on-exit", "on"); err != nil {
		t.Fatalf("profanitytest: starting tmux: %v\n%s", err, out)
	}
	m := c.WaitFor(regexp.MustCompile(`logged in successfully|[Ll]ogin failed|[Cc]onnection failed`), LoginTimeout)
	if !strings.Contains(m[0], "logged in successfully") {
		t.Fatalf("profanitytest: %s did not log in: %s", o.JID, m[0])
	}
	return c
}

// Require fails the test (t.Fatal) unless Profanity and tmux are
// installed: interop tests never skip.
func Require(t testing.TB) {
	t.Helper()
	for _, p := range []struct{ path, pkg string }{{ProfanityPath, "profanity"}, {TmuxPath, "tmux"}} {
		if _, err := os.Stat(p.path); err != nil {
			t.Fatalf("profanitytest: %s not found (install the Debian package %s): %v", p.path, p.pkg, err)
		}
	}
}

// tmux runs a tmux command against the client's server.
func (c *Client) tmux(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), tmuxTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, TmuxPath, append([]string{"-L", c.socket, "-f", "/dev/null"}, args...)...)
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Type types line into Profanity and presses Enter: a command such as
// "/omemo start bob@example.org", or a message for the current chat
// window.
func (c *Client) Type(line string) {
	c.t.Helper()
	if strings.ContainsAny(line, "\r\n") {
		c.t.Fatalf("profanitytest: Type takes one line, got %q", line)
	}
	if out, err := c.tmux("send-keys", "-t", sessionName, "-l", tmuxLiteral(line)); err != nil {
		c.t.Fatalf("profanitytest: send-keys: %v\n%s", err, out)
	}
	if out, err := c.tmux("send-keys", "-t", sessionName, "Enter"); err != nil {
		c.t.Fatalf("profanitytest: send-keys Enter: %v\n%s", err, out)
	}
}

// capture returns the pane with its history, wrapped lines joined, or the
// error.
func (c *Client) capture() string {
	out, err := c.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", sessionName)
	if err != nil {
		return fmt.Sprintf("(capture-pane: %v: %s)", err, out)
	}
	return out
}

// Pane returns what the pane shows, with its history.
func (c *Client) Pane() string {
	c.t.Helper()
	out, err := c.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", sessionName)
	if err != nil {
		c.t.Fatalf("profanitytest: capture-pane: %v\n%s", err, out)
	}
	return out
}

// WaitFor waits until re matches the pane (history included) and returns
// the submatches of its last match. It fails the test after timeout.
func (c *Client) WaitFor(re *regexp.Regexp, timeout time.Duration) []string {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, err := c.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", sessionName)
		if err == nil {
			if ms := re.FindAllStringSubmatch(out, -1); len(ms) > 0 {
				return ms[len(ms)-1]
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("profanitytest: %s: no %q on the pane after %v (capture-pane: %v)", c.jid, re, timeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// LogPath is Profanity's debug log, with every stanza it sent and
// received.
func (c *Client) LogPath() string {
	return filepath.Join(c.DataDir, "logs", "profanity.log")
}

// ChatLog returns the entries of Profanity's chat logs with contact (a
// bare JID), oldest first.
func (c *Client) ChatLog(contact string) []LogEntry {
	c.t.Helper()
	files, err := filepath.Glob(filepath.Join(c.DataDir, "chatlogs", DirName(c.jid), DirName(contact), "*.log"))
	if err != nil {
		c.t.Fatal(err)
	}
	slices.Sort(files)
	var out []LogEntry
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			c.t.Fatal(err)
		}
		es, err := ParseChatLog(b)
		if err != nil {
			c.t.Fatalf("%s: %v", f, err)
		}
		out = append(out, es...)
	}
	return out
}

// WaitChatLog waits until the chat log with contact holds an entry from
// sender (a bare JID, or "me") with text, and returns it. It fails the
// test after timeout.
func (c *Client) WaitChatLog(contact, sender, text string, timeout time.Duration) LogEntry {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		es := c.ChatLog(contact)
		for _, e := range es {
			if e.From == sender && e.Text == text {
				return e
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("profanitytest: %s: no %q from %s in the chat log with %s after %v; it holds %+v", c.jid, text, sender, contact, timeout, es)
		}
		time.Sleep(pollInterval)
	}
}
