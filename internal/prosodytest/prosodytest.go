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
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"hush.im/internal/prosody"
	"mellium.im/xmpp/jid"
)

// Paths of the Prosody binaries (Debian package prosody).
const (
	ProsodyPath    = prosody.DefaultProsody
	ProsodyctlPath = prosody.DefaultProsodyctl
)

// Domain is the virtual host every server serves.
const Domain = prosody.Domain

// startAttempts bounds retries when the free port chosen for Prosody was
// taken by another process between choosing and binding.
const startAttempts = 3

// LogDirEnv names an environment variable: when set to a directory, the
// harness copies each server's log there (named after the test) before the
// temporary directory is removed.
const LogDirEnv = "PROSODYTEST_LOG_DIR"

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
	proc      *prosody.Process
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
		if err := prosody.CheckLocalpart(u); err != nil {
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
	if err := prosody.WriteGroups(dir, s.Domain, opts.Users); err != nil {
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
				if err := s.proc.Stop(); err != nil {
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
		if !errors.Is(err, prosody.ErrPortTaken) {
			break
		}
	}
	t.Fatalf("prosodytest: starting prosody: %v\n%s", lastErr, tail(s.LogPath, 40))
	return nil
}

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
	if err := prosody.CheckLocalpart(user); err != nil {
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
	return prosody.Ctl(context.Background(), ProsodyctlPath, s.Dir, s.ConfigPath, args...)
}

// FilesContaining returns the files under DataDir (relative to it) whose
// content contains needle: what a test asserts is empty for plaintext that
// must never reach the server in the clear.
func (s *Server) FilesContaining(needle []byte) ([]string, error) {
	return prosody.FilesContaining(s.DataDir, needle)
}

// registerAll creates the accounts with prosodyctl, in parallel.
func (s *Server) registerAll(users []string) error {
	var wg sync.WaitGroup
	errs := make([]error, len(users))
	for i, u := range users {
		pw, err := prosody.RandomPassword()
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

func (s *Server) writeConfig() error {
	c2s, err := prosody.FreePort()
	if err != nil {
		return err
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(c2s))
	direct := 0
	if s.opts.TLS {
		if direct, err = prosody.FreePort(); err != nil {
			return err
		}
		s.DirectTLSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(direct))
	}
	cfg, err := prosody.Config{
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
	}.Render()
	if err != nil {
		return err
	}
	return os.WriteFile(s.ConfigPath, cfg, 0o600)
}

// start runs prosody in the foreground and waits until its ports are open.
func (s *Server) start() error {
	var extra []string
	if s.DirectTLSAddr != "" {
		extra = append(extra, s.DirectTLSAddr)
	}
	p, err := prosody.Launch(context.Background(), ProsodyPath, s.Dir, s.ConfigPath, s.LogPath, s.Addr, extra...)
	if err != nil {
		return err
	}
	s.proc = p
	return nil
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
