//go:build interop

package main

// Interop through a real Prosody between the hush command and go-sendxmpp
// (Debian package go-sendxmpp 0.5.6), a deployed OpenPGP for XMPP client
// (XEP-0373, XEP-0374), in both directions. Run with
//
//	go test -tags interop,integration -run TestSendxmpp -v ./cmd/hush
//
// go-sendxmpp refuses to authenticate without TLS, so the server offers
// STARTTLS (prosodytest.Options.TLS) and go-sendxmpp connects with -n (no
// certificate verification) to -j 127.0.0.1:PORT. It keeps its OX secret
// key under $HOME/.local/share/go-sendxmpp/oxprivkeys/: each peer gets a
// private HOME and XDG directories. It exits 0 even when a send fails, so
// every send is checked by what the receiver got.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"hush.im/internal/prosodytest"
)

// sendxmppTimeout bounds each one-shot go-sendxmpp run.
const sendxmppTimeout = 30 * time.Second

// sendxmppPeer is a go-sendxmpp account with its private home.
type sendxmppPeer struct {
	path string // the go-sendxmpp binary
	jid  string
	pw   string
	addr string
	home string
	env  []string
}

// newSendxmppPeer prepares go-sendxmpp for user on srv; it fails the test
// when go-sendxmpp is not installed.
func newSendxmppPeer(t *testing.T, srv *prosodytest.Server, user string) *sendxmppPeer {
	t.Helper()
	path, err := exec.LookPath("go-sendxmpp")
	if err != nil {
		t.Fatalf("go-sendxmpp is required for this interop test (install the Debian package go-sendxmpp): %v", err)
	}
	home := t.TempDir()
	env := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8"}
	for _, d := range []struct{ name, dir string }{
		{"XDG_CONFIG_HOME", ".config"}, {"XDG_DATA_HOME", ".local/share"},
		{"XDG_CACHE_HOME", ".cache"}, {"XDG_STATE_HOME", ".local/state"}, {"XDG_RUNTIME_DIR", "run"},
	} {
		dir := filepath.Join(home, d.dir)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		env = append(env, d.name+"="+dir)
	}
	return &sendxmppPeer{path: path, jid: srv.JID(user).String(), pw: srv.Password(user), addr: srv.Addr, home: home, env: env}
}

// command returns a go-sendxmpp command logged in as the peer.
func (p *sendxmppPeer) command(ctx context.Context, args ...string) *exec.Cmd {
	args = append([]string{"-u", p.jid, "-p", p.pw, "-j", p.addr, "-n"}, args...)
	cmd := exec.CommandContext(ctx, p.path, args...)
	cmd.Env = p.env
	cmd.Dir = p.home
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// run runs go-sendxmpp to completion with stdin and returns its output;
// it fails the test on a non-zero exit.
func (p *sendxmppPeer) run(t *testing.T, stdin string, args ...string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sendxmppTimeout)
	defer cancel()
	cmd := p.command(ctx, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("go-sendxmpp %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

// sendxmppListener is a running "go-sendxmpp -l --ox".
type sendxmppListener struct {
	cmd    *exec.Cmd
	cancel context.CancelFunc
	lines  chan string // stdout, line by line; closed at EOF
	stderr *sendxmppBuffer
	waited chan struct{}
	err    error // of cmd.Wait, once waited is closed
}

// sendxmppBuffer is an io.Writer safe for concurrent use.
type sendxmppBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *sendxmppBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *sendxmppBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// listen starts go-sendxmpp listening with OX in the background, with
// debugging output (the XML stream, on stderr) to tell when it is online.
// The process is killed at the end of the test.
func (p *sendxmppPeer) listen(t *testing.T) *sendxmppListener {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &sendxmppListener{
		cmd:    p.command(ctx, "-d", "-l", "--ox"),
		cancel: cancel,
		lines:  make(chan string, 16),
		stderr: new(sendxmppBuffer),
		waited: make(chan struct{}),
	}
	l.cmd.Stderr = l.stderr
	stdout, err := l.cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := l.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting go-sendxmpp -l --ox: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case l.lines <- sc.Text():
			case <-ctx.Done(): // stopped: drop what nobody reads
			}
		}
		close(l.lines)
		io.Copy(io.Discard, stdout)
		l.err = l.cmd.Wait()
		close(l.waited)
	}()
	t.Cleanup(l.stop)
	return l
}

// stop kills the listener and waits for it.
func (l *sendxmppListener) stop() {
	l.cancel()
	<-l.waited
}

// waitOnline waits until the server has echoed the listener's own
// available presence (XMPP IM §4.2.2), so that a message to the bare JID is
// delivered live rather than stored offline.
func (l *sendxmppListener) waitOnline(t *testing.T, bare string) {
	t.Helper()
	own := regexp.MustCompile(`<presence[^>]*from=['"]` + regexp.QuoteMeta(bare) + `/go-sendxmpp\.`)
	deadline := time.Now().Add(sendxmppTimeout)
	for !own.MatchString(l.stderr.String()) {
		select {
		case <-l.waited:
			t.Fatalf("go-sendxmpp -l --ox exited before it was online: %v\n%s", l.err, l.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("go-sendxmpp -l --ox not online after %v:\n%s", sendxmppTimeout, l.stderr.String())
		}
	}
}

// next returns the next line go-sendxmpp printed, failing the test after
// timeout.
func (l *sendxmppListener) next(t *testing.T, timeout time.Duration) string {
	t.Helper()
	select {
	case line, ok := <-l.lines:
		if !ok {
			<-l.waited
			t.Fatalf("go-sendxmpp -l --ox exited (%v) without printing a message:\n%s", l.err, l.stderr.String())
		}
		return line
	case <-time.After(timeout):
		t.Fatalf("go-sendxmpp -l --ox printed nothing in %v:\n%s", timeout, l.stderr.String())
	}
	return ""
}

// sendxmppNonce returns a fresh random word.
func sendxmppNonce() string {
	return "nonce" + rand.Text()
}

// sendxmppFingerprint returns the one OX key jid announces, from hush ox keys.
func sendxmppFingerprint(t *testing.T, a *hushAccount, jid string) string {
	t.Helper()
	code, stdout, stderr := runHush(t, "", "ox", "keys", "--store", a.dir, jid)
	m := regexp.MustCompile(`(?m)^([0-9A-F]{40})\s`).FindAllStringSubmatch(stdout, -1)
	if code != 0 || len(m) != 1 {
		t.Fatalf("hush ox keys %s: exit %d, want one key in\n%s%s", jid, code, stdout, stderr)
	}
	return m[0][1]
}

// TestSendxmppOX exchanges OX messages between hush and go-sendxmpp both
// ways, once for each kind of key go-sendxmpp generates.
func TestSendxmppOX(t *testing.T) {
	start := time.Now()
	peers := []struct{ user, keygen string }{
		{"bob", "x25519"}, // --ox-genprivkey-x25519: Ed25519 + Curve25519
		{"carol", "rsa"},  // --ox-genprivkey-rsa: RSA 4096
	}
	path, err := exec.LookPath("go-sendxmpp")
	if err != nil {
		t.Fatalf("go-sendxmpp is required for this interop test (install the Debian package go-sendxmpp): %v", err)
	}
	out, err := exec.Command(path, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("go-sendxmpp --version: %v\n%s", err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
	srv := prosodytest.Start(t, prosodytest.Options{Users: []string{"alice", "bob", "carol"}, TLS: true})
	alice := addAccount(t, srv, "alice")
	aliceJID := srv.JID("alice").String()

	// alice (hush) makes and publishes her OX key.
	if code, stdout, stderr := alice.hush(t, "", "listen", "--ox", "--timeout", "1s"); code != 0 || stdout != "" {
		t.Fatalf("hush listen --ox: exit %d\n%s%s", code, stdout, stderr)
	}
	aliceFPR := sendxmppFingerprint(t, alice, aliceJID)

	var nonces []string
	for _, tc := range peers {
		t.Run(tc.keygen, func(t *testing.T) {
			peer := newSendxmppPeer(t, srv, tc.user)
			peerJID := srv.JID(tc.user).String()

			// go-sendxmpp generates its key and publishes it.
			peer.run(t, "", "--ox-genprivkey-"+tc.keygen)
			privKey := filepath.Join(peer.home, ".local/share/go-sendxmpp/oxprivkeys", base64.StdEncoding.EncodeToString([]byte(peerJID)))
			if _, err := os.Stat(privKey); err != nil {
				t.Fatalf("go-sendxmpp kept its OX key outside its private home: %v", err)
			}
			peerFPR := sendxmppFingerprint(t, alice, peerJID)

			// Each text holds a nonce, looked for on the wire and on the
			// server's disk, where XML escaping would hide the whole text.
			nonceHush, nonceSendxmpp := sendxmppNonce(), sendxmppNonce()
			nonces = append(nonces, nonceHush, nonceSendxmpp)

			// 1. go-sendxmpp → hush: go-sendxmpp reads the message on stdin;
			// hush, which listened before, reads it from the archive.
			toHush := "Grüße from go-sendxmpp <b>&amp; \"quotes\" 'n' " + nonceHush
			peer.run(t, toHush, "--ox", aliceJID)
			code, stdout, stderr := alice.hush(t, "", "listen", "--ox", "--json", "--count", "1", "--timeout", "30s")
			if code != 0 {
				t.Fatalf("hush listen --ox: exit %d (did go-sendxmpp send? it exits 0 on failure)\n%s%s", code, stdout, stderr)
			}
			var got listened
			if err := json.Unmarshal([]byte(stdout), &got); err != nil {
				t.Fatalf("listen --json output %q: %v", stdout, err)
			}
			want := listened{From: peerJID, Device: peerFPR, Protocol: "ox", Trust: "blind", Via: "archive", Text: toHush}
			if got != want {
				t.Errorf("hush listen: got %+v, want %+v", got, want)
			}

			// 2. hush → go-sendxmpp: go-sendxmpp listens, hush sends live.
			l := peer.listen(t)
			l.waitOnline(t, peerJID)
			toSendxmpp := "Grüße from hush <i>&amp; \"quotes\" 'n' " + nonceSendxmpp
			code, _, stderr = alice.hush(t, "", "send", "--ox", peerJID, toSendxmpp)
			if code != 0 || !strings.Contains(stderr, "hush: sent to "+peerJID+" device "+peerFPR+"\n") ||
				!strings.Contains(stderr, "hush: sent to "+aliceJID+" device "+aliceFPR+"\n") {
				t.Fatalf("hush send --ox: exit %d\n%s", code, stderr)
			}
			// go-sendxmpp prints "<XEP-0082 time> [OX] <bare from>: <body>".
			line := l.next(t, 30*time.Second)
			m := regexp.MustCompile(`^(\S+) \[OX\] (\S+): (.*)$`).FindStringSubmatch(line)
			if m == nil || m[2] != aliceJID || m[3] != toSendxmpp {
				t.Fatalf("go-sendxmpp -l --ox printed %q, want \"<time> [OX] %s: %s\"\n%s", line, aliceJID, toSendxmpp, l.stderr.String())
			}
			if at, err := time.Parse(time.RFC3339, m[1]); err != nil || time.Since(at) > time.Minute || time.Until(at) > time.Minute {
				t.Errorf("go-sendxmpp printed the time %q (%v), want about now", m[1], err)
			}
			l.stop()
			// Only ciphertext reached go-sendxmpp: its XML stream (the
			// debugging output) never holds the text.
			if strings.Contains(l.stderr.String(), nonceSendxmpp) {
				t.Errorf("the plaintext crossed the wire:\n%s", l.stderr.String())
			}
		})
	}

	// The server never held a plaintext.
	for _, s := range nonces {
		files, err := srv.FilesContaining([]byte(s))
		if err != nil || len(files) > 0 {
			t.Errorf("plaintext %q stored by the server in %v (%v)", s, files, err)
		}
	}
	t.Logf("wall time %v", time.Since(start).Round(time.Millisecond))
}
