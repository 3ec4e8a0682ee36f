// Package prosody starts a throwaway Prosody 0.12 XMPP server on loopback,
// for hush's demo: its own configuration, data directory and free
// 127.0.0.1 port under a directory the caller gives, accounts created with
// prosodyctl, and a stop that kills its process group (never by name).
//
// The server loads what hush needs (DESIGN.md, "Real peers"): roster,
// saslauth, disco, carbons (XEP-0280), pep (XEP-0163), mam (XEP-0313),
// register, smacks, groups and ping, with every user of Options.Users in one
// mod_groups group (mutual subscriptions, so PEP +notify events flow). It
// offers no TLS: plain TCP on 127.0.0.1 only, with
// c2s_require_encryption = false and allow_unencrypted_plain_auth = true.
//
// Tests use the sibling harness internal/prosodytest, which builds on the
// pieces exported here (Config, Launch, Process, Ctl and the helpers).
package prosody // import "hush.im/internal/prosody"

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Default paths of the Prosody binaries (Debian package prosody).
const (
	DefaultProsody    = "/usr/bin/prosody"
	DefaultProsodyctl = "/usr/bin/prosodyctl"
)

// Domain is the virtual host the server serves.
const Domain = "localhost"

// GroupName is the mod_groups group every Options.Users member is in.
const GroupName = "hush"

// Timeouts: Prosody 0.12 starts in well under a second on loopback; the
// limits only bound a broken start or stop.
const (
	startTimeout = 15 * time.Second
	stopTimeout  = 5 * time.Second
	ctlTimeout   = 15 * time.Second
	pollInterval = 10 * time.Millisecond
)

// ErrNotInstalled reports that the Prosody binaries are missing.
var ErrNotInstalled = errors.New("prosody: not installed")

// ErrPortTaken reports that a port chosen by FreePort was taken by another
// process before Prosody bound it; the caller may retry with new ports.
var ErrPortTaken = errors.New("port already in use")

// Options configures Start.
type Options struct {
	// Dir is an existing, empty directory for the configuration, data and
	// log; the caller removes it after Stop.
	Dir string
	// Users are the local parts of the accounts to create, each with a
	// random password (Server.Password), all in one mod_groups group.
	Users []string
	// Prosody and Prosodyctl are the binaries; empty means
	// DefaultProsody and DefaultProsodyctl.
	Prosody, Prosodyctl string
}

// Server is a running Prosody. Its fields are read-only.
type Server struct {
	// Addr is the c2s address, 127.0.0.1:port, plain TCP.
	Addr string
	// DataDir is Prosody's data_path: what the server stores (accounts,
	// offline messages, archives, PEP nodes), as files.
	DataDir string
	// LogPath is Prosody's log file.
	LogPath string

	dir, cfg, ctl string
	passwords     map[string]string
	proc          *Process
	stopOnce      sync.Once
	stopErr       error
}

// Start writes the configuration, creates the accounts and starts
// Prosody in the foreground (prosody -F) in a process group of its own,
// returning once its c2s port accepts connections.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Prosody == "" {
		opts.Prosody = DefaultProsody
	}
	if opts.Prosodyctl == "" {
		opts.Prosodyctl = DefaultProsodyctl
	}
	for _, p := range []string{opts.Prosody, opts.Prosodyctl} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%w: %s", ErrNotInstalled, p)
		}
	}
	s := &Server{
		DataDir:   filepath.Join(opts.Dir, "data"),
		LogPath:   filepath.Join(opts.Dir, "prosody.log"),
		dir:       opts.Dir,
		cfg:       filepath.Join(opts.Dir, "prosody.cfg.lua"),
		ctl:       opts.Prosodyctl,
		passwords: make(map[string]string),
	}
	if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
		return nil, err
	}
	for _, u := range opts.Users {
		if err := CheckLocalpart(u); err != nil {
			return nil, fmt.Errorf("prosody: %w", err)
		}
	}
	if err := WriteGroups(opts.Dir, Domain, opts.Users); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cfg, err := Config{
		Dir: opts.Dir, DataDir: s.DataDir, LogPath: s.LogPath, Domain: Domain,
		C2SPort: port, Root: os.Geteuid() == 0,
	}.Render()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(s.cfg, cfg, 0o600); err != nil {
		return nil, err
	}
	for _, u := range opts.Users {
		pw, err := RandomPassword()
		if err != nil {
			return nil, err
		}
		if _, err := Ctl(ctx, s.ctl, s.dir, s.cfg, "register", u, Domain, pw); err != nil {
			return nil, err
		}
		s.passwords[u] = pw
	}
	if s.proc, err = Launch(ctx, opts.Prosody, s.dir, s.cfg, s.LogPath, s.Addr); err != nil {
		return nil, err
	}
	return s, nil
}

// Password returns the password of the account user.
func (s *Server) Password(user string) string { return s.passwords[user] }

// JID returns the bare JID of the account user, as a string.
func (s *Server) JID(user string) string { return user + "@" + Domain }

// Stop sends SIGTERM to Prosody's process group, waits, then kills what is
// left of the group.
// It is safe to call more than once and from several goroutines.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() { s.stopErr = s.proc.Stop() })
	return s.stopErr
}

// FilesContaining returns the files under DataDir that contain needle.
func (s *Server) FilesContaining(needle []byte) ([]string, error) {
	return FilesContaining(s.DataDir, needle)
}

// Ctl runs prosodyctl (the binary ctl) with the configuration cfg, in and
// with HOME set to dir, and returns its combined output.
func Ctl(ctx context.Context, ctl, dir, cfg string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, ctlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, ctl, append([]string{"--config", cfg}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("prosodyctl %s: %w: %s", args[0], err, lastLine(out))
	}
	return out, nil
}

// A Process is a Prosody running in the foreground in a process group of
// its own.
type Process struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// Launch runs the binary prosody with the configuration cfg in the
// foreground (prosody -F), in and with HOME set to dir, and waits until
// its log logPath reports the c2s service on the port of c2sAddr and every
// address in c2sAddr and extra accepts connections. It returns ErrPortTaken
// (after stopping Prosody) when a port was taken.
func Launch(ctx context.Context, prosody, dir, cfg, logPath, c2sAddr string, extra ...string) (*Process, error) {
	// A previous attempt's log must not be mistaken for this one's.
	_ = os.Remove(logPath)
	outPath := filepath.Join(dir, "prosody.out")
	out, err := os.Create(outPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(prosody, "--config", cfg, "-F")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir)
	cmd.Stdout, cmd.Stderr = out, out
	// Own process group: Stop kills leftovers by group, never by name.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, err
	}
	p := &Process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		out.Close()
		close(p.exited)
	}()
	_, port, _ := net.SplitHostPort(c2sAddr)
	want := fmt.Sprintf("Activated service 'c2s' on [127.0.0.1]:%s", port)
	addrs := append([]string{c2sAddr}, extra...)
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case <-p.exited:
			b, _ := os.ReadFile(outPath)
			return nil, fmt.Errorf("prosody exited during start-up: %v; output: %s", p.waitErr, lastLine(b))
		default:
		}
		log, _ := os.ReadFile(logPath)
		if bytes.Contains(log, []byte("Failed to open server port")) {
			_ = p.Stop()
			return nil, ErrPortTaken
		}
		if bytes.Contains(log, []byte(want)) && dialable(addrs) {
			return p, nil
		}
		time.Sleep(pollInterval)
	}
	_ = p.Stop()
	return nil, fmt.Errorf("prosody did not open %s within %v", c2sAddr, startTimeout)
}

// Exited is closed once the Prosody process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

func dialable(addrs []string) bool {
	for _, a := range addrs {
		c, err := net.DialTimeout("tcp4", a, time.Second)
		if err != nil {
			return false
		}
		c.Close()
	}
	return true
}

// Stop sends SIGTERM to Prosody's process group, waits, then kills what is
// left of the group. Call it once.
func (p *Process) Stop() error {
	if p == nil {
		return nil
	}
	pgid := p.cmd.Process.Pid
	select {
	case <-p.exited:
		_ = syscall.Kill(-pgid, syscall.SIGKILL) // leftovers, if any
		return nil
	default:
	}
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.exited:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		return nil
	case <-time.After(stopTimeout):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.exited
	return fmt.Errorf("prosody did not stop within %v of SIGTERM; killed", stopTimeout)
}

// FilesContaining returns the files under dataDir (relative to it) whose
// content contains needle, which must not be empty.
func FilesContaining(dataDir string, needle []byte) ([]string, error) {
	if len(needle) == 0 {
		return nil, errors.New("prosody: empty needle")
	}
	// Prosody writes a file as name~ and renames it into place; a file that
	// vanishes under the walk means the directory changed while it was read,
	// so the walk starts again rather than skip what replaced it.
	const attempts = 5
	for i := 0; ; i++ {
		hits, err := filesContaining(dataDir, needle)
		if errors.Is(err, errVanished) && i < attempts {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		return hits, err
	}
}

// errVanished reports a file that disappeared while FilesContaining read the
// directory.
var errVanished = errors.New("prosody: a data file vanished during the walk")

func filesContaining(dataDir string, needle []byte) ([]string, error) {
	var hits []string
	err := filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path != dataDir && errors.Is(err, fs.ErrNotExist) {
				return errVanished
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return errVanished
		}
		if err != nil {
			return err
		}
		if bytes.Contains(b, needle) {
			rel, _ := filepath.Rel(dataDir, path)
			hits = append(hits, rel)
		}
		return nil
	})
	return hits, err
}

// FreePort returns a port that was free on 127.0.0.1 a moment ago. Prosody
// opens its own sockets, so the port is released before it starts; Launch
// detects the rare case that someone else took it meanwhile.
func FreePort() (int, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// RandomPassword returns a fresh random account password.
func RandomPassword() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

var localpartRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// CheckLocalpart checks that u is an account name the servers accept:
// lower-case letters, digits, '.', '_' and '-', at most 64 bytes.
func CheckLocalpart(u string) error {
	if !localpartRE.MatchString(u) {
		return fmt.Errorf("user name %q: want lower-case letters, digits, '.', '_' or '-'", u)
	}
	return nil
}

// WriteGroups writes dir/groups.txt, the mod_groups file that puts every
// user@domain of users in GroupName.
func WriteGroups(dir, domain string, users []string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s]\n", GroupName)
	for _, u := range users {
		fmt.Fprintf(&b, "%s@%s\n", u, domain)
	}
	return os.WriteFile(filepath.Join(dir, "groups.txt"), []byte(b.String()), 0o600)
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}
