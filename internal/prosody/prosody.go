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
// Tests use the sibling harness internal/prosodytest.
package prosody // import "hush.im/internal/prosody"

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"
)

// Default paths of the Prosody binaries (Debian package prosody).
const (
	DefaultProsody    = "/usr/bin/prosody"
	DefaultProsodyctl = "/usr/bin/prosodyctl"
)

// Domain is the virtual host the server serves.
const Domain = "localhost"

// Timeouts: Prosody 0.12 starts in well under a second on loopback; the
// limits only bound a broken start or stop.
const (
	startTimeout = 15 * time.Second
	stopTimeout  = 5 * time.Second
	ctlTimeout   = 15 * time.Second
	pollInterval = 20 * time.Millisecond
)

// ErrNotInstalled reports that the Prosody binaries are missing.
var ErrNotInstalled = errors.New("prosody: not installed")

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
	cmd           *exec.Cmd
	exited        chan struct{}
	waitErr       error
	stopOnce      sync.Once
	stopErr       error
}

var localpartRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

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
	var groups strings.Builder
	groups.WriteString("[hush]\n")
	for _, u := range opts.Users {
		if !localpartRE.MatchString(u) {
			return nil, fmt.Errorf("prosody: user name %q: want lower-case letters, digits, '.', '_' or '-'", u)
		}
		fmt.Fprintf(&groups, "%s@%s\n", u, Domain)
	}
	if err := os.WriteFile(filepath.Join(opts.Dir, "groups.txt"), []byte(groups.String()), 0o600); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var cfg bytes.Buffer
	if err := cfgTmpl.Execute(&cfg, map[string]any{
		"Dir": opts.Dir, "DataDir": s.DataDir, "LogPath": s.LogPath, "Domain": Domain,
		"Port": port, "Root": os.Geteuid() == 0,
	}); err != nil {
		return nil, err
	}
	if err := os.WriteFile(s.cfg, cfg.Bytes(), 0o600); err != nil {
		return nil, err
	}
	for _, u := range opts.Users {
		var b [12]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		pw := hex.EncodeToString(b[:])
		if err := s.run(ctx, "register", u, Domain, pw); err != nil {
			return nil, err
		}
		s.passwords[u] = pw
	}
	if err := s.start(ctx, opts.Prosody); err != nil {
		return nil, err
	}
	return s, nil
}

// Password returns the password of the account user.
func (s *Server) Password(user string) string { return s.passwords[user] }

// JID returns the bare JID of the account user, as a string.
func (s *Server) JID(user string) string { return user + "@" + Domain }

func (s *Server) run(ctx context.Context, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, ctlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.ctl, append([]string{"--config", s.cfg}, args...)...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "HOME="+s.dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("prosodyctl %s: %v: %s", args[0], err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (s *Server) start(ctx context.Context, prosody string) error {
	out, err := os.Create(filepath.Join(s.dir, "prosody.out"))
	if err != nil {
		return err
	}
	cmd := exec.Command(prosody, "--config", s.cfg, "-F")
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "HOME="+s.dir)
	cmd.Stdout, cmd.Stderr = out, out
	// Own process group: Stop kills leftovers by group, never by name.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return err
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func() {
		s.waitErr = cmd.Wait()
		out.Close()
		close(s.exited)
	}()
	_, port, _ := net.SplitHostPort(s.Addr)
	want := fmt.Sprintf("Activated service 'c2s' on [127.0.0.1]:%s", port)
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case <-s.exited:
			b, _ := os.ReadFile(filepath.Join(s.dir, "prosody.out"))
			return fmt.Errorf("prosody exited during start-up: %v: %s", s.waitErr, strings.TrimSpace(string(b)))
		default:
		}
		log, _ := os.ReadFile(s.LogPath)
		if bytes.Contains(log, []byte(want)) {
			if c, err := net.DialTimeout("tcp4", s.Addr, time.Second); err == nil {
				c.Close()
				return nil
			}
		}
		time.Sleep(pollInterval)
	}
	s.stop()
	return fmt.Errorf("prosody did not open %s within %v", s.Addr, startTimeout)
}

// Stop sends SIGTERM to Prosody's process group, waits, then kills what is
// left of the group.
// It is safe to call more than once and from several goroutines.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() { s.stopErr = s.stop() })
	return s.stopErr
}

func (s *Server) stop() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	pgid := s.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-s.exited:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		return nil
	case <-time.After(stopTimeout):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-s.exited
	return fmt.Errorf("prosody did not stop within %v of SIGTERM; killed", stopTimeout)
}

// FilesContaining returns the files under DataDir that contain needle.
func (s *Server) FilesContaining(needle []byte) ([]string, error) {
	var hits []string
	err := filepath.WalkDir(s.DataDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, needle) {
			rel, _ := filepath.Rel(s.DataDir, path)
			hits = append(hits, rel)
		}
		return nil
	})
	return hits, err
}

// freePort returns a port that was free on 127.0.0.1 a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// luaString quotes s as a Lua string literal; it refuses control
// characters.
func luaString(s string) (string, error) {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("prosody: control character in %q", s)
		}
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`, nil
}

var cfgTmpl = template.Must(template.New("cfg").Funcs(template.FuncMap{
	"lua":  luaString,
	"join": func(a, b string) string { return a + "/" + b },
}).Parse(`-- Written by hush.im/internal/prosody. Throwaway loopback server.
{{if .Root}}run_as_root = true
{{end}}pidfile = {{lua (join .Dir "prosody.pid")}}
data_path = {{lua .DataDir}}
plugin_paths = { }
use_ipv6 = false
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { {{.Port}} }
c2s_direct_tls_ports = { }
legacy_ssl_ports = { }
s2s_ports = { }
component_ports = { }
http_ports = { }
https_ports = { }

modules_enabled = { "roster"; "saslauth"; "disco"; "carbons"; "pep"; "mam"; "register"; "smacks"; "groups"; "ping" }
modules_disabled = { "s2s" }

-- Loopback only: plaintext c2s.
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_hashed"
storage = "internal"
allow_registration = false

groups_file = {{lua (join .Dir "groups.txt")}}
default_archive_policy = true
archive_expires_after = "never"

log = {
	{ levels = { min = "info" }, to = "file", filename = {{lua .LogPath}} };
}

VirtualHost {{lua .Domain}}
`))
