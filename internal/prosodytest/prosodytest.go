// Package prosodytest starts a private Prosody 0.12 XMPP server for
// integration tests: its own configuration, data directory and free
// 127.0.0.1 ports under t.TempDir(), accounts created with prosodyctl, and a
// clean stop in t.Cleanup.
//
// The server loads what hush needs (DESIGN.md, "Real peers"): roster,
// saslauth, disco, carbons (XEP-0280), pep (XEP-0163), mam (XEP-0313),
// register, smacks and groups. mod_groups gives every user named in
// Options.Users a mutual ("both") subscription with every other, so that
// presence and PEP +notify events flow between them. mod_limits is not
// loaded. Encryption is optional on the c2s port
// (c2s_require_encryption = false, allow_unencrypted_plain_auth = true);
// with Options.TLS the harness also generates a private CA and a certificate
// for the domain, offers STARTTLS on the c2s port and listens for direct TLS
// (XEP-0368) on a second port.
//
// Typical use, in a file with the build tag integration:
//
//	srv := prosodytest.Start(t, prosodytest.Options{Users: []string{"alice", "bob"}})
//	conn, err := client.Dial(ctx, srv.JID("alice"), srv.Password("alice"), &client.Options{Addr: srv.Addr, PlainLoopback: true})
//
// Start fails the test (t.Fatal) when Prosody is not installed: integration
// tests never skip.
package prosodytest // import "hush.im/internal/prosodytest"

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
)

// Paths of the Prosody binaries (Debian package prosody).
const (
	ProsodyPath    = "/usr/bin/prosody"
	ProsodyctlPath = "/usr/bin/prosodyctl"
)

// Domain is the virtual host every server serves.
const Domain = "localhost"

// Timeouts of the harness. Prosody 0.12 starts in well under a second on
// loopback; the limits only bound a broken start or stop.
const (
	startTimeout = 15 * time.Second
	stopTimeout  = 5 * time.Second
	ctlTimeout   = 15 * time.Second
	pollInterval = 10 * time.Millisecond
	// startAttempts bounds retries when the free port chosen for Prosody was
	// taken by another process between choosing and binding.
	startAttempts = 3
)

// LogDirEnv names an environment variable: when set to a directory, the
// harness copies each server's log there (named after the test) before the
// temporary directory is removed.
const LogDirEnv = "PROSODYTEST_LOG_DIR"

// groupName is the mod_groups group every Options.Users member is in.
const groupName = "hush"

// Options configures a server.
type Options struct {
	// Users are the local parts of accounts created before the server starts,
	// each with a random password (Server.Password). All of them are in one
	// mod_groups group: each has every other in its roster with subscription
	// "both".
	Users []string
	// TLS generates a private CA and a certificate for Domain (and
	// 127.0.0.1), offers STARTTLS on the c2s port (not required) and opens a
	// direct TLS port (Server.DirectTLSAddr).
	TLS bool
	// PasswordHash is the SCRAM hash of mod_auth_internal_hashed: "SHA-1"
	// (the default, SCRAM-SHA-1) or "SHA-256" (SCRAM-SHA-256). PLAIN works
	// with either.
	PasswordHash string
	// MaxArchiveResults is Prosody's max_archive_query_results, the largest
	// MAM page it returns; zero means 250.
	MaxArchiveResults int
	// Debug logs at debug level instead of info.
	Debug bool
}

// Server is a running Prosody. Its fields are read-only.
type Server struct {
	// Domain is the virtual host, Domain.
	Domain string
	// Addr is the c2s address, 127.0.0.1:port: plain TCP, with STARTTLS
	// offered when the server was started with Options.TLS.
	Addr string
	// DirectTLSAddr is the XEP-0368 direct TLS address, or "" without
	// Options.TLS.
	DirectTLSAddr string
	// Dir holds the configuration, log, certificates and DataDir.
	Dir string
	// DataDir is Prosody's data_path: accounts, rosters, offline messages,
	// archives and PEP nodes, as files. Tests grep it for plaintext (see
	// FilesContaining).
	DataDir string
	// ConfigPath is the configuration file, for prosodyctl --config.
	ConfigPath string
	// LogPath is Prosody's log file.
	LogPath string
	// CA holds the private CA's certificate, or nil without Options.TLS.
	CA *x509.CertPool

	opts      Options
	mu        sync.Mutex
	passwords map[string]string
	cmd       *exec.Cmd
	exited    chan struct{}
	waitErr   error
}

// Start starts a Prosody for t and registers its stop with t.Cleanup. It
// fails the test if Prosody is missing or does not start.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	for _, p := range []string{ProsodyPath, ProsodyctlPath} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("prosodytest: %s not found (install the Debian package prosody): %v", p, err)
		}
	}
	if opts.PasswordHash == "" {
		opts.PasswordHash = "SHA-1"
	}
	if opts.PasswordHash != "SHA-1" && opts.PasswordHash != "SHA-256" {
		t.Fatalf("prosodytest: unsupported PasswordHash %q", opts.PasswordHash)
	}
	if opts.MaxArchiveResults == 0 {
		opts.MaxArchiveResults = 250
	}
	for _, u := range opts.Users {
		if err := checkLocalpart(u); err != nil {
			t.Fatalf("prosodytest: %v", err)
		}
	}
	dir := t.TempDir()
	s := &Server{
		Domain:     Domain,
		Dir:        dir,
		DataDir:    filepath.Join(dir, "data"),
		ConfigPath: filepath.Join(dir, "prosody.cfg.lua"),
		LogPath:    filepath.Join(dir, "prosody.log"),
		opts:       opts,
		passwords:  make(map[string]string),
	}
	for _, d := range []string{s.DataDir, filepath.Join(dir, "certs")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatalf("prosodytest: %v", err)
		}
	}
	if opts.TLS {
		pool, err := writeCerts(filepath.Join(dir, "certs"), Domain)
		if err != nil {
			t.Fatalf("prosodytest: generating certificates: %v", err)
		}
		s.CA = pool
	}
	if err := s.writeGroups(); err != nil {
		t.Fatalf("prosodytest: %v", err)
	}

	var lastErr error
	for attempt := 0; attempt < startAttempts; attempt++ {
		if err := s.writeConfig(); err != nil {
			t.Fatalf("prosodytest: %v", err)
		}
		if attempt == 0 {
			// Accounts are files in DataDir: create them once, before the
			// first start, so that mod_groups and the rosters see them.
			if err := s.registerAll(opts.Users); err != nil {
				t.Fatalf("prosodytest: %v", err)
			}
		}
		err := s.start()
		if err == nil {
			t.Cleanup(func() {
				if err := s.stop(); err != nil {
					t.Errorf("prosodytest: stopping prosody: %v", err)
				}
				if t.Failed() {
					t.Logf("prosodytest: last lines of %s:\n%s", s.LogPath, tail(s.LogPath, 40))
				}
				if d := os.Getenv(LogDirEnv); d != "" {
					keepLog(t, s.LogPath, d)
				}
			})
			return s
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	t.Fatalf("prosodytest: starting prosody: %v\n%s", lastErr, tail(s.LogPath, 40))
	return nil
}

var errPortTaken = errors.New("port already in use")

// JID returns the bare JID of the account user.
func (s *Server) JID(user string) jid.JID {
	return jid.MustParse(user + "@" + s.Domain)
}

// Password returns the password of the account user, or "" if the harness
// did not create it.
func (s *Server) Password(user string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.passwords[user]
}

// TLSConfig returns a client configuration that trusts only the server's
// private CA and expects the certificate of Domain. Without Options.TLS it
// returns nil.
func (s *Server) TLSConfig() *tls.Config {
	if s.CA == nil {
		return nil
	}
	return &tls.Config{RootCAs: s.CA, ServerName: s.Domain, MinVersion: tls.VersionTLS12}
}

// Register creates one more account, outside the mod_groups group, with a
// random password, and returns its JID. It works while the server runs.
func (s *Server) Register(t testing.TB, user string) jid.JID {
	t.Helper()
	if err := checkLocalpart(user); err != nil {
		t.Fatalf("prosodytest: %v", err)
	}
	if err := s.registerAll([]string{user}); err != nil {
		t.Fatalf("prosodytest: %v", err)
	}
	return s.JID(user)
}

// Ctl runs prosodyctl with the server's configuration and returns its
// combined output.
func (s *Server) Ctl(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ctlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, ProsodyctlPath, append([]string{"--config", s.ConfigPath}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+s.Dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("prosodyctl %s: %w: %s", args[0], err, lastLine(out))
	}
	return out, nil
}

// FilesContaining returns the files under DataDir (relative to it) whose
// content contains needle: what a test asserts is empty for plaintext that
// must never reach the server in the clear.
func (s *Server) FilesContaining(needle []byte) ([]string, error) {
	if len(needle) == 0 {
		return nil, errors.New("prosodytest: empty needle")
	}
	var hits []string
	err := filepath.WalkDir(s.DataDir, func(path string, d fs.DirEntry, err error) error {
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

// registerAll creates the accounts with prosodyctl, in parallel.
func (s *Server) registerAll(users []string) error {
	var wg sync.WaitGroup
	errs := make([]error, len(users))
	for i, u := range users {
		pw, err := randomPassword()
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Ctl("register", u, s.Domain, pw); err != nil {
				errs[i] = err
				return
			}
			s.mu.Lock()
			s.passwords[u] = pw
			s.mu.Unlock()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func randomPassword() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

var localpartRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

func checkLocalpart(u string) error {
	if !localpartRE.MatchString(u) {
		return fmt.Errorf("user name %q: want lower-case letters, digits, '.', '_' or '-'", u)
	}
	return nil
}

func (s *Server) writeGroups() error {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s]\n", groupName)
	for _, u := range s.opts.Users {
		fmt.Fprintf(&b, "%s@%s\n", u, s.Domain)
	}
	return os.WriteFile(filepath.Join(s.Dir, "groups.txt"), []byte(b.String()), 0o600)
}

// freePort returns a port that was free on 127.0.0.1 a moment ago. Prosody
// opens its own sockets, so the port is released before it starts; start
// detects the rare case that someone else took it meanwhile.
func freePort() (int, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) writeConfig() error {
	c2s, err := freePort()
	if err != nil {
		return err
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(c2s))
	direct := 0
	if s.opts.TLS {
		if direct, err = freePort(); err != nil {
			return err
		}
		s.DirectTLSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(direct))
	}
	cfg, err := renderConfig(configData{
		Dir:               s.Dir,
		DataDir:           s.DataDir,
		LogPath:           s.LogPath,
		Domain:            s.Domain,
		C2SPort:           c2s,
		DirectTLSPort:     direct,
		TLS:               s.opts.TLS,
		PasswordHash:      s.opts.PasswordHash,
		MaxArchiveResults: s.opts.MaxArchiveResults,
		Debug:             s.opts.Debug,
		Root:              os.Geteuid() == 0,
	})
	if err != nil {
		return err
	}
	return os.WriteFile(s.ConfigPath, cfg, 0o600)
}

// start runs prosody in the foreground and waits until its c2s port is
// open.
func (s *Server) start() error {
	// A previous attempt's log must not be mistaken for this one's.
	_ = os.Remove(s.LogPath)
	out, err := os.Create(filepath.Join(s.Dir, "prosody.out"))
	if err != nil {
		return err
	}
	cmd := exec.Command(ProsodyPath, "--config", s.ConfigPath, "-F")
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), "HOME="+s.Dir)
	cmd.Stdout = out
	cmd.Stderr = out
	// Own process group: stop kills leftovers by group, never by name.
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

	want := fmt.Sprintf("Activated service 'c2s' on [127.0.0.1]:%s", portOf(s.Addr))
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("prosody exited during start-up: %v; output: %s", s.waitErr, lastLine(readFile(filepath.Join(s.Dir, "prosody.out"))))
		default:
		}
		log := readFile(s.LogPath)
		if bytes.Contains(log, []byte("Failed to open server port")) {
			_ = s.stop()
			return errPortTaken
		}
		if bytes.Contains(log, []byte(want)) && dialable(s.Addr) && (s.DirectTLSAddr == "" || dialable(s.DirectTLSAddr)) {
			return nil
		}
		time.Sleep(pollInterval)
	}
	_ = s.stop()
	return fmt.Errorf("prosody did not open %s within %v", s.Addr, startTimeout)
}

func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp4", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// stop sends SIGTERM to Prosody's process group, waits, then kills what is
// left of the group.
func (s *Server) stop() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	pgid := s.cmd.Process.Pid
	select {
	case <-s.exited:
		_ = syscall.Kill(-pgid, syscall.SIGKILL) // leftovers, if any
		return nil
	default:
	}
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

func keepLog(t testing.TB, from, dir string) {
	b, err := os.ReadFile(from)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".log"), b, 0o600)
	}
	if err != nil {
		t.Logf("prosodytest: keeping the log: %v", err)
	}
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func readFile(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = slices.Delete(lines, 0, 1)
		}
	}
	return strings.Join(lines, "\n")
}

// writeCerts creates a private CA and a certificate for domain (and
// 127.0.0.1) signed by it, writes the leaf as dir/domain.crt and
// dir/domain.key (where Prosody's certificate discovery looks), and returns
// a pool holding the CA.
func writeCerts(dir, domain string) (*x509.CertPool, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "hush prosodytest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: domain},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{domain},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	var chain bytes.Buffer
	_ = pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: leafDER})
	if err := os.WriteFile(filepath.Join(dir, domain+".crt"), chain.Bytes(), 0o600); err != nil {
		return nil, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := os.WriteFile(filepath.Join(dir, domain+".key"), keyPEM, 0o600); err != nil {
		return nil, err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), caPEM, 0o600); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, nil
}

func randomSerial() *big.Int {
	// crypto/rand.Read does not fail (it aborts the program instead).
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[0] &= 0x7f
	return new(big.Int).SetBytes(b)
}
