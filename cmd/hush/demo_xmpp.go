package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"

	"hush.im/internal/prosody"
)

// demoXMPPUsage is the synopsis of "hush demo xmpp".
const demoXMPPSynopsis = "xmpp [--prosody PATH]"

// demoPeer is one account of the XMPP demo: its store and password file.
type demoPeer struct {
	name, store, pwFile string
}

// xmppDemo runs hush commands in-process as alice and bob against a
// throwaway Prosody and prints them as a terminal session.
type xmppDemo struct {
	w           io.Writer
	srv         *prosody.Server
	interrupted atomic.Bool
}

// exitInterrupted is the exit code of a demo stopped by SIGINT or SIGTERM
// (128 + SIGINT, as shells report it).
const exitInterrupted = 130

// runDemoXMPP implements "hush demo xmpp": a throwaway Prosody on
// loopback, two accounts, and alice and bob exchanging OMEMO 2, legacy
// OMEMO and OX messages and an encrypted ping (an IQ)
// with the hush command, then what the server stored beside what
// bob read. It installs nothing; it cleans up after itself.
func runDemoXMPP(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", demoXMPPSynopsis, stderr)
	bin := fs.String("prosody", prosody.DefaultProsody, "the prosody binary (prosodyctl is looked for beside it)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{msg: "demo xmpp takes no arguments"}
	}
	dir, err := os.MkdirTemp("", "hush-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	srvDir := filepath.Join(dir, "prosody")
	if err := os.Mkdir(srvDir, 0o700); err != nil {
		return err
	}
	srv, err := prosody.Start(ctx, prosody.Options{
		Dir: srvDir, Users: []string{"alice", "bob"},
		Prosody: *bin, Prosodyctl: filepath.Join(filepath.Dir(*bin), "prosodyctl"),
	})
	if errors.Is(err, prosody.ErrNotInstalled) {
		return &hintError{err: fmt.Errorf("demo xmpp: %w", err),
			hint: `install the Debian package prosody (sudo apt-get install prosody, or run .ci/run, which installs the test peers), or run the in-process "hush demo"`}
	}
	if err != nil {
		return fmt.Errorf("demo xmpp: starting prosody: %w", err)
	}
	defer srv.Stop()
	// Prosody runs in a process group of its own, out of reach of the
	// terminal's ^C: stop it and clean up on an interrupt.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	done := make(chan struct{})
	defer close(done)
	d := &xmppDemo{w: stdout, srv: srv}
	go func() {
		select {
		case <-sig:
			d.interrupted.Store(true)
			srv.Stop()
		case <-done:
		}
	}()
	err = d.run(dir)
	if d.interrupted.Load() {
		return &exitError{code: exitInterrupted, err: errors.New("demo xmpp: interrupted; Prosody stopped")}
	}
	return err
}

func (d *xmppDemo) section(format string, args ...any) {
	fmt.Fprintf(d.w, "\n== "+format+"\n", args...)
}

// hush runs one hush command as peer p, printing it and its output.
func (d *xmppDemo) hush(p *demoPeer, stdin string, args ...string) (string, error) {
	return d.hushTo(d.w, p, stdin, args...)
}

// hushTo is hush printing to w.
func (d *xmppDemo) hushTo(w io.Writer, p *demoPeer, stdin string, args ...string) (string, error) {
	if d.interrupted.Load() {
		return "", errors.New("demo xmpp: interrupted")
	}
	shown := make([]string, len(args))
	for i, a := range args {
		shown[i] = quoteShell(a)
	}
	pipe := ""
	if stdin != "" {
		pipe = "echo " + quoteShell(strings.TrimSuffix(stdin, "\n")) + " | "
	}
	fmt.Fprintf(w, "%s$ %shush %s\n", p.name, pipe, strings.Join(shown, " "))
	var out, errb bytes.Buffer
	n := 1 // the command words before the flags
	if args[0] == "account" {
		n = 2
	}
	full := append(append(append([]string{}, args[:n]...), "--store", p.store), args[n:]...)
	code := run(full, strings.NewReader(stdin), &out, &errb)
	for _, s := range []string{out.String(), errb.String()} {
		for _, line := range strings.SplitAfter(s, "\n") {
			if line != "" && !strings.HasSuffix(line, "\n") {
				line += "\n" // a prompt
			}
			if line != "" {
				fmt.Fprintf(w, "    %s", line)
			}
		}
	}
	if code != 0 {
		return out.String(), fmt.Errorf("demo xmpp: hush %s exited %d", args[0], code)
	}
	return out.String(), nil
}

// background starts one hush command as peer p, as "hush … &" in a
// shell; wait returns its result and prints its output after it ended.
func (d *xmppDemo) background(p *demoPeer, args ...string) (wait func() error) {
	return d.backgroundIn(p, "", args...)
}

// backgroundIn is background with stdin as the command's standard input.
func (d *xmppDemo) backgroundIn(p *demoPeer, stdin string, args ...string) (wait func() error) {
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		_, err := d.hushTo(&out, p, stdin, args...)
		done <- err
	}()
	// Give it the time to connect before the next command.
	time.Sleep(500 * time.Millisecond)
	pipe := ""
	if stdin != "" {
		pipe = "echo " + quoteShell(strings.TrimSuffix(stdin, "\n")) + " | "
	}
	fmt.Fprintf(d.w, "%s$ %shush %s &   (its output below, when it ends)\n", p.name, pipe, strings.Join(args, " "))
	return func() error {
		err := <-done
		_, line, _ := strings.Cut(out.String(), "\n")
		fmt.Fprint(d.w, line)
		return err
	}
}

// quoteShell quotes a for display in a shell command line.
func quoteShell(a string) string {
	if a == "" || strings.ContainsAny(a, " '\"$|;&<>*?") {
		return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return a
}

func (d *xmppDemo) run(dir string) error {
	srv := d.srv
	fmt.Fprintf(d.w, "== a throwaway Prosody on %s (domain %s), accounts alice and bob\n", srv.Addr, prosody.Domain)
	peers := map[string]*demoPeer{}
	for _, name := range []string{"alice", "bob"} {
		p := &demoPeer{name: name, store: filepath.Join(dir, name), pwFile: filepath.Join(dir, name+".pass")}
		if err := os.WriteFile(p.pwFile, []byte(srv.Password(name)+"\n"), 0o600); err != nil {
			return err
		}
		peers[name] = p
	}
	alice, bob := peers["alice"], peers["bob"]
	aliceJID, bobJID := srv.JID("alice"), srv.JID("bob")

	d.section("each saves the account once (the password file's path, never the password)")
	for _, p := range []*demoPeer{alice, bob} {
		if _, err := d.hush(p, "", "account", "add", "--jid", srv.JID(p.name), "--password-file", p.pwFile, "--server", srv.Addr, "--insecure"); err != nil {
			return err
		}
	}

	d.section("bob's device publishes its OMEMO 2 keys (device list and bundle in PEP, XEP-0384 §5.3)")
	if _, err := d.hush(bob, "", "fingerprints"); err != nil {
		return err
	}
	d.section("alice fetches bob's keys: blind trust before verification")
	if _, err := d.hush(alice, "", "fingerprints", bobJID); err != nil {
		return err
	}

	secret := "Meet me at the lighthouse at nine. Come alone."
	d.section("alice sends while bob is offline; the report says which devices got a key")
	if _, err := d.hush(alice, "", "send", bobJID, secret); err != nil {
		return err
	}
	d.section("bob comes online and reads it (the server kept it offline)")
	if _, err := d.hush(bob, "", "listen", "--count", "1", "--timeout", "30s"); err != nil {
		return err
	}
	reply := "I'll be there."
	d.section("bob answers; alice reads it as JSON")
	if _, err := d.hush(bob, reply+"\n", "send", aliceJID); err != nil {
		return err
	}
	if _, err := d.hush(alice, "", "listen", "--json", "--count", "1", "--timeout", "30s"); err != nil {
		return err
	}

	legacySecret := "Bring the old map."
	d.section("legacy OMEMO (eu.siacs.conversations.axolotl: Conversations, Dino, Gajim, Profanity), same keys")
	if _, err := d.hush(alice, "", "send", "--legacy", bobJID, legacySecret); err != nil {
		return err
	}
	if _, err := d.hush(bob, "", "listen", "--count", "1", "--timeout", "30s"); err != nil {
		return err
	}

	d.section("an encrypted IQ: bob is online; alice pings his client end to end (the server sees an <iq/>, not what it asks)")
	wait := d.background(bob, "listen", "--timeout", "8s")
	_, perr := d.hush(alice, "", "ping", bobJID)
	if err := wait(); err != nil {
		return err
	}
	if perr != nil {
		return perr
	}

	d.section("verification: both run hush verify, compare the 6 characters each sees, and answer y (XEP-0210 §4.3)")
	wait = d.backgroundIn(bob, "y\n", "verify", aliceJID)
	_, verr := d.hush(alice, "y\n", "verify", bobJID)
	if err := wait(); err != nil {
		return err
	}
	if verr != nil {
		return verr
	}

	oxSecret := "The boat leaves at dawn."
	d.section("OpenPGP for XMPP (XEP-0373/0374): bob makes and publishes a key, alice signcrypts")
	if _, err := d.hush(bob, "", "listen", "--ox", "--timeout", "1s"); err != nil {
		return err
	}
	if _, err := d.hush(alice, "", "send", "--ox", bobJID, oxSecret); err != nil {
		return err
	}
	if _, err := d.hush(bob, "", "listen", "--count", "1", "--timeout", "30s"); err != nil {
		return err
	}

	d.section("fail closed: bob distrusts alice's key, then has nothing to send to")
	out, err := d.hush(bob, "", "devices", aliceJID)
	if err != nil {
		return err
	}
	id, _, _ := strings.Cut(strings.TrimSpace(out), " ")
	if _, err := d.hush(bob, "", "distrust", aliceJID, id); err != nil {
		return err
	}
	if _, err := d.hush(bob, "", "send", aliceJID, "this must never leave"); err == nil {
		return errors.New("demo xmpp: a send to a distrusted device succeeded")
	}

	d.section("what the server stored, beside what bob read")
	for _, s := range []string{secret, reply, legacySecret, oxSecret, "this must never leave"} {
		files, err := srv.FilesContaining([]byte(s))
		if err != nil {
			return err
		}
		where := "nowhere"
		if len(files) > 0 {
			where = "IN " + strings.Join(files, ", ")
		}
		fmt.Fprintf(d.w, "    %q in the server's files: %s\n", s, where)
		if len(files) > 0 {
			return errors.New("demo xmpp: the server stored a plaintext")
		}
	}
	for _, ns := range []string{"urn:xmpp:omemo:2", "eu.siacs.conversations.axolotl", "urn:xmpp:openpgp:0"} {
		files, err := srv.FilesContaining([]byte(ns))
		if err != nil {
			return err
		}
		fmt.Fprintf(d.w, "    files holding %s elements: %s\n", ns, strings.Join(files, ", "))
	}
	if excerpt := d.storedExcerpt(); excerpt != "" {
		fmt.Fprintf(d.w, "    an excerpt of bob's archive: …%s\n", excerpt)
	}
	d.section("done: Prosody stopped, its directory and the stores removed")
	return nil
}

// storedExcerpt returns a short printable excerpt of the archive of bob
// around a stored <payload/>, to show what the server holds.
func (d *xmppDemo) storedExcerpt() string {
	files, err := d.srv.FilesContaining([]byte(`"payload"`))
	if err != nil {
		return ""
	}
	for _, f := range files {
		if !strings.HasSuffix(f, "archive/bob.list") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d.srv.DataDir, f))
		if err != nil {
			continue
		}
		// Prosody stores a stanza as a Lua table: an element's text
		// comes before its name.
		i := bytes.Index(b, []byte(`"payload"`))
		start := max(0, i-120)
		s := strings.Map(func(r rune) rune {
			if unicode.IsPrint(r) {
				return r
			}
			return ' '
		}, string(b[start:i+len(`"payload"`)]))
		return strings.Join(strings.Fields(s), " ")
	}
	return ""
}
