package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
	"mellium.im/xmpp/jid"

	"hush.im/client"
	"hush.im/omemo"
	"hush.im/ox"
	"hush.im/store/bolt"
	"hush.im/trust"
)

const accountUsage = `Usage: hush account COMMAND [flags]

The account hush connects as, saved once so that later commands need only
the store (--store DIR, or $XDG_CONFIG_HOME/hush).

Commands:
    add --jid JID [--password-file FILE] [--server HOST:PORT] [--ca FILE] [--insecure]
                                   save the account in the store: the JID,
                                   the server address, the CA file, and the
                                   password file's path (never a password)
    show                           print the saved account

Example:
    $ hush account add --jid alice@example.org --password-file ~/.alice-pass
    hush: saved alice@example.org in /home/alice/.config/hush
`

// Account limits.
const (
	// maxPasswordFile bounds a password file (RFC 6120 §6.3.8 sets no
	// limit; 4 KiB is far beyond any real password).
	maxPasswordFile = 4 << 10
	// maxConfigFile bounds the saved account file.
	maxConfigFile = 64 << 10
	// maxCAFile bounds a --ca PEM file.
	maxCAFile = 1 << 20
	// configName is the file, in the store directory, holding the saved
	// account.
	configName = "account.json"
	// passwordEnv is the environment variable holding the password.
	passwordEnv = "HUSH_PASSWORD"
)

// savedAccount is what "hush account add" writes to configName. It holds no
// secret: the password stays in its own file, only the path is recorded.
type savedAccount struct {
	JID          string `json:"jid"`
	Server       string `json:"server,omitempty"`
	CA           string `json:"ca,omitempty"`
	Insecure     bool   `json:"insecure,omitempty"`
	PasswordFile string `json:"password_file,omitempty"`
}

// accountFlags are the flags of every command that connects or opens the
// account's store.
type accountFlags struct {
	fs           *flag.FlagSet
	store        *string
	jid          *string
	passwordFile *string
	server       *string
	ca           *string
	insecure     *bool
}

func addAccountFlags(fs *flag.FlagSet) *accountFlags {
	f := &accountFlags{
		fs:           fs,
		store:        fs.String("store", "", "the `DIR` holding the account and its keys (default $XDG_CONFIG_HOME/hush)"),
		jid:          fs.String("jid", "", "the account's `JID` (default: the saved one)"),
		passwordFile: fs.String("password-file", "", "read the password from `FILE` (or set "+passwordEnv+")"),
		server:       fs.String("server", "", "connect to `HOST:PORT` instead of looking the domain up"),
		ca:           fs.String("ca", "", "trust the private CA in PEM `FILE` for the server's certificate"),
		insecure:     fs.Bool("insecure", false, "plain TCP without TLS, to a loopback --server only (test servers)"),
	}
	shortName(fs, "s", "store")
	shortName(fs, "j", "jid")
	return f
}

// account is a resolved account: the saved one with the flags on top.
type account struct {
	dir          string
	jid          jid.JID
	server       string
	ca           string
	insecure     bool
	passwordFile string
}

// storeDir returns --store or the default directory.
func (f *accountFlags) storeDir() (string, error) {
	if *f.store != "" {
		return *f.store, nil
	}
	base, err := os.UserConfigDir()
	if err != nil {
		return "", &usageError{msg: "no configuration directory: " + err.Error(), hint: "pass --store DIR"}
	}
	return filepath.Join(base, "hush"), nil
}

// resolve loads the saved account of the store, if any, and applies the
// flags given on the command line.
func (f *accountFlags) resolve() (*account, error) {
	dir, err := f.storeDir()
	if err != nil {
		return nil, err
	}
	a := &account{dir: dir}
	saved, err := loadAccount(dir)
	if err != nil {
		return nil, err
	}
	if saved != nil {
		if a.jid, err = parseBareJID("saved jid", saved.JID); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, configName), err)
		}
		a.server, a.ca, a.insecure, a.passwordFile = saved.Server, saved.CA, saved.Insecure, saved.PasswordFile
	}
	if *f.jid != "" {
		if a.jid, err = parseBareJID("--jid", *f.jid); err != nil {
			return nil, err
		}
	}
	if a.jid.Domainpart() == "" {
		return nil, &usageError{msg: "no account: --jid is required", hint: `save one with "hush account add --jid JID …" or pass --jid`}
	}
	if *f.server != "" {
		a.server = *f.server
	}
	if *f.ca != "" {
		a.ca = *f.ca
	}
	if flagSet(f.fs, "insecure") {
		a.insecure = *f.insecure
	}
	if *f.passwordFile != "" {
		a.passwordFile = *f.passwordFile
	}
	if a.insecure && !loopbackAddr(a.server) {
		return nil, &usageError{msg: "--insecure needs --server HOST:PORT with a loopback address", hint: "plain TCP is for a test server on 127.0.0.1 only"}
	}
	return a, nil
}

// loopbackAddr reports whether addr is host:port with a loopback IP
// address or "localhost".
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// parseBareJID parses a JID argument that must have a localpart.
func parseBareJID(what, s string) (jid.JID, error) {
	j, err := jid.Parse(s)
	if err != nil || j.Localpart() == "" || j.Domainpart() == "" {
		return jid.JID{}, &usageError{msg: fmt.Sprintf("%s: invalid account JID %q", what, s)}
	}
	return j.Bare(), nil
}

// loadAccount reads the saved account of dir, or returns nil if there is
// none.
func loadAccount(dir string) (*savedAccount, error) {
	path := filepath.Join(dir, configName)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxConfigFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxConfigFile)
	}
	var s savedAccount
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &s, nil
}

// saveAccount writes the account to dir (mode 0700) as configName (mode
// 0600), replacing the file atomically.
func saveAccount(dir string, s *savedAccount) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".account-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, configName))
}

// runAccount implements "hush account …".
func runAccount(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, accountUsage)
		return &usageError{msg: "account: no command given", hint: `run "hush account help" for the commands`}
	}
	switch args[0] {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, accountUsage)
		return nil
	case "add":
		return accountAdd(args[1:], stderr)
	case "show":
		return accountShow(args[1:], stdout, stderr)
	}
	return &usageError{msg: fmt.Sprintf("account: unknown command %q", args[0]), hint: `run "hush account help" for the commands`}
}

func accountAdd(args []string, stderr io.Writer) error {
	fs := newFlagSet("account add", "--jid JID [--password-file FILE] [--server HOST:PORT] [--ca FILE] [--insecure] [--store DIR]", stderr)
	af := addAccountFlags(fs)
	if err := parseNetFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{msg: fmt.Sprintf("account add: unexpected argument %q", fs.Arg(0))}
	}
	if *af.jid == "" {
		return &usageError{msg: "account add: --jid is required"}
	}
	a, err := af.resolve()
	if err != nil {
		return err
	}
	s := &savedAccount{JID: a.jid.String(), Server: a.server, Insecure: a.insecure}
	if a.ca != "" {
		if _, err := loadCA(a.ca); err != nil {
			return err
		}
		if s.CA, err = filepath.Abs(a.ca); err != nil {
			return err
		}
	}
	// Only a password file's path is ever saved, never a password
	// (HUSH_PASSWORD is not recorded).
	if *af.passwordFile != "" {
		if _, err := readPasswordFile(*af.passwordFile); err != nil {
			return err
		}
		if s.PasswordFile, err = filepath.Abs(*af.passwordFile); err != nil {
			return err
		}
	}
	if err := saveAccount(a.dir, s); err != nil {
		return fmt.Errorf("account add: %w", err)
	}
	fmt.Fprintf(stderr, "hush: saved %s in %s\n", s.JID, a.dir)
	return nil
}

func accountShow(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("account show", "[--store DIR]", stderr)
	af := addAccountFlags(fs)
	if err := parseNetFlags(fs, args); err != nil {
		return err
	}
	a, err := af.resolve()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "jid: %s\nstore: %s\n", a.jid, a.dir)
	if a.server != "" {
		fmt.Fprintf(stdout, "server: %s\n", a.server)
	}
	if a.ca != "" {
		fmt.Fprintf(stdout, "ca: %s\n", a.ca)
	}
	if a.insecure {
		fmt.Fprintf(stdout, "insecure: plain TCP to a loopback server\n")
	}
	if a.passwordFile != "" {
		fmt.Fprintf(stdout, "password-file: %s\n", a.passwordFile)
	}
	return nil
}

// parseNetFlags is parseFlags with a hint for a password given as a flag.
func parseNetFlags(fs *flag.FlagSet, args []string) error {
	for _, a := range args {
		if a == "--" {
			break
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && (name == "password" || name == "p") {
			return &usageError{msg: "a password is never a flag (it would show in the process list and shell history)", hint: "use --password-file FILE or " + passwordEnv}
		}
	}
	return parseFlags(fs, args)
}

// readPasswordFile reads a password file: its content without one final
// line ending.
func readPasswordFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPasswordFile+1))
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	if len(b) > maxPasswordFile {
		return "", fmt.Errorf("password file %s: larger than %d bytes", path, maxPasswordFile)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		return "", fmt.Errorf("password file %s is empty", path)
	}
	return s, nil
}

// password returns the account's password: from --password-file, else
// HUSH_PASSWORD, else the saved password file, else a prompt when stdin
// is a terminal.
func (f *accountFlags) password(a *account, stdin io.Reader, stderr io.Writer) (string, error) {
	if *f.passwordFile != "" {
		return readPasswordFile(*f.passwordFile)
	}
	if p := os.Getenv(passwordEnv); p != "" {
		return p, nil
	}
	if a.passwordFile != "" {
		return readPasswordFile(a.passwordFile)
	}
	if file, ok := stdin.(*os.File); ok {
		if p, ok, err := promptPassword(file, stderr, a.jid); ok || err != nil {
			return p, err
		}
	}
	return "", &usageError{msg: "no password for " + a.jid.String(), hint: "use --password-file FILE or " + passwordEnv}
}

// promptPassword asks for the password on the terminal in, with echo
// off. ok is false when in is not a terminal.
func promptPassword(in *os.File, stderr io.Writer, account jid.JID) (string, bool, error) {
	fd := int(in.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", false, nil
	}
	noEcho := *old
	noEcho.Lflag &^= unix.ECHO
	noEcho.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
		return "", true, err
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	fmt.Fprintf(stderr, "Password for %s: ", account)
	var b []byte
	buf := make([]byte, 1)
	for len(b) <= maxPasswordFile {
		n, err := in.Read(buf)
		if n == 0 || err != nil || buf[0] == '\n' {
			break
		}
		b = append(b, buf[0])
	}
	fmt.Fprintln(stderr)
	s := strings.TrimSuffix(string(b), "\r")
	if s == "" {
		return "", true, errors.New("empty password")
	}
	return s, true, nil
}

// readLimited reads a file of at most limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return b, nil
}

// loadCA reads a PEM file of CA certificates.
func loadCA(path string) (*x509.CertPool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--ca: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCAFile+1))
	if err != nil {
		return nil, fmt.Errorf("--ca: %w", err)
	}
	if len(b) > maxCAFile {
		return nil, fmt.Errorf("--ca %s: larger than %d bytes", path, maxCAFile)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("--ca %s: no PEM certificate", path)
	}
	return pool, nil
}

// openStore opens the account's OMEMO store in the account directory.
// create says whether a missing store may be created.
func openStore(a *account, create bool) (*bolt.Store, error) {
	path := bolt.Path(a.dir, a.jid)
	if !create {
		if _, err := os.Stat(path); err != nil {
			return nil, &noStoreError{jid: a.jid, dir: a.dir}
		}
	}
	st, err := bolt.Open(path, a.jid, nil)
	if errors.Is(err, bolt.ErrInUse) {
		return nil, &hintError{err: err, hint: "another hush (listen?) has this account open; stop it or use another --store"}
	}
	if errors.Is(err, bolt.ErrCorrupt) {
		return nil, &hintError{err: err, hint: "the store file is damaged (a disk error, or it was edited); hush will not use it. Keep it, restore it from a backup, or move it away to start over with a new device (contacts then see a new device)"}
	}
	if errors.Is(err, bolt.ErrInsecure) {
		return nil, &hintError{err: err, hint: "the store directory and file must belong to you and be private (chmod 700 DIR, chmod 600 FILE)"}
	}
	return st, err
}

// session is a connected account with its OMEMO engine and, if
// asked for, its OX engine.
type session struct {
	a  *account
	c  *client.Client
	o  *client.OMEMO
	x  *client.OX // nil without OX
	st *bolt.Store
	ix *trust.Index

	decryptMu sync.Mutex // one decryption (and its store batch) at a time
	// only restricts what hushEngine encrypts to one OMEMO protocol
	// (hush send --omemo, --legacy); zero: each device with the newest
	// protocol it announces.
	only omemo.Protocol
}

// oxMode says whether connect starts the OX engine.
type oxMode int

const (
	oxOff       oxMode = iota
	oxIfPresent        // when the account has an OX key
	oxCreate           // generating the key on first use
)

// oxKeyPath is the file, beside the OMEMO store, that holds the account's
// OpenPGP secret key for OX (XEP-0373), ASCII-armoured, mode 0600.
func oxKeyPath(a *account) string {
	return strings.TrimSuffix(bolt.Path(a.dir, a.jid), ".hush") + ".ox.asc"
}

// oxKey loads the account's OX key, or generates and saves it (Ed25519 +
// Curve25519, User ID xmpp:JID, XEP-0373 §8.5) when create is set. It
// returns nil when there is none and create is not set.
func oxKey(a *account, create bool) (*ox.Key, error) {
	path := oxKeyPath(a)
	b, err := readLimited(path, ox.MaxKeyDataSize)
	if errors.Is(err, fs.ErrNotExist) {
		if !create {
			return nil, nil
		}
		k, err := ox.GenerateKey(a.jid, ox.Curve25519)
		if err != nil {
			return nil, err
		}
		armored, err := k.ArmorSecret()
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(a.dir, 0o700); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("ox key: %w", err)
		}
		if _, err := f.Write(armored); err != nil {
			f.Close()
			os.Remove(path)
			return nil, fmt.Errorf("ox key: %w", err)
		}
		if err := f.Close(); err != nil {
			os.Remove(path)
			return nil, fmt.Errorf("ox key: %w", err)
		}
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ox key: %w", err)
	}
	keys, err := ox.ParseKeys(b)
	if err != nil {
		return nil, fmt.Errorf("ox key %s: %w", path, err)
	}
	if len(keys) != 1 || !keys[0].IsSecret() || keys[0].Locked() || !keys[0].HasJID(a.jid) {
		return nil, fmt.Errorf("ox key %s: want one unlocked secret key for xmpp:%s", path, a.jid)
	}
	return keys[0], nil
}

// connect opens the store, connects and starts the OMEMO engine (OMEMO 2
// and legacy OMEMO, one identity) with blind trust before verification. It does not send initial presence.
func (f *accountFlags) connect(ctx context.Context, stdin io.Reader, stderr io.Writer, withOX oxMode) (*session, error) {
	a, err := f.resolve()
	if err != nil {
		return nil, err
	}
	opts := &client.Options{Addr: a.server, PlainLoopback: a.insecure, Type: "console", RequireEncryption: true}
	if a.ca != "" {
		pool, err := loadCA(a.ca)
		if err != nil {
			return nil, err
		}
		opts.TLS = &tls.Config{RootCAs: pool}
	}
	pw, err := f.password(a, stdin, stderr)
	if err != nil {
		return nil, err
	}
	// An existing store is opened (and locked) before connecting; a new
	// one, with a new device, is made only once the server accepted the
	// login.
	st, err := openStore(a, false)
	var noStore *noStoreError
	if err != nil && !errors.As(err, &noStore) {
		return nil, err
	}
	var r [4]byte
	rand.Read(r[:])
	full, err := a.jid.WithResource("hush-" + hex.EncodeToString(r[:]))
	if err != nil {
		if st != nil {
			st.Close()
		}
		return nil, err
	}
	c, err := client.Dial(ctx, full, pw, opts)
	if err != nil {
		if st != nil {
			st.Close()
		}
		var ae *client.AuthError
		switch {
		case errors.As(err, &ae):
			return nil, &hintError{err: err, hint: "check the password and the JID"}
		case errors.Is(err, client.ErrInsecureRemote):
			return nil, &hintError{err: err, hint: "--insecure is for a test server on 127.0.0.1 only"}
		case errors.Is(err, syscall.ECONNREFUSED):
			return nil, &hintError{err: err, hint: "is the server running? check --server (host and port)"}
		}
		return nil, err
	}
	if st == nil {
		if st, err = openStore(a, true); err != nil {
			c.Close()
			return nil, err
		}
	}
	s := &session{a: a, c: c, st: st, ix: trust.NewIndex()}
	s.o, err = client.NewOMEMO(ctx, c, st, &client.OMEMOOptions{Trust: trust.BTBV{Levels: s.ix}, Legacy: true})
	if err != nil {
		s.close()
		return nil, err
	}
	if err := s.observe(a.jid); err != nil {
		s.close()
		return nil, err
	}
	if err := c.AddEngine(hushEngine{OMEMO: s.o, s: s}); err != nil {
		s.close()
		return nil, err
	}
	if err := s.answerEncryptedPings(); err != nil {
		s.close()
		return nil, err
	}
	if withOX != oxOff {
		if err := s.startOX(ctx, withOX == oxCreate); err != nil {
			s.close()
			return nil, err
		}
	}
	return s, nil
}

// startOX starts the OX engine with the account's key, made and published
// first when create is set; without a key and create, it does nothing.
func (s *session) startOX(ctx context.Context, create bool) error {
	key, err := oxKey(s.a, create)
	if err != nil || key == nil {
		return err
	}
	s.x, err = client.NewOX(ctx, s.c, key, nil)
	return err
}

// observe feeds the trust index the devices known of bare (BTBV reads it
// while encrypting).
func (s *session) observe(bare jid.JID) error {
	devs, err := s.o.Manager().Devices(bare)
	if err != nil {
		return err
	}
	s.ix.Observe(bare, devs)
	if ok, err := s.o.Manager().Authenticated(bare); err != nil {
		return err
	} else if ok {
		s.ix.MarkAuthenticated(bare)
	}
	return nil
}

func (s *session) close() {
	s.c.Close()
	s.st.Close()
}

// noStoreError reports an account without a store yet.
type noStoreError struct {
	jid jid.JID
	dir string
}

func (e *noStoreError) Error() string { return fmt.Sprintf("no keys of %s in %s", e.jid, e.dir) }

// Hint implements hinter.
func (e *noStoreError) Hint() string { return `connect once with "hush devices" or "hush send"` }

// hintError is a failure (exit 1) with a hint.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }
func (e *hintError) Hint() string  { return e.hint }

// exitError is a failure with its own exit code.
type exitError struct {
	code int
	err  error
	hint string
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Hint is the exit error's own hint, or that of the error it wraps.
func (e *exitError) Hint() string {
	var h hinter
	if e.hint == "" && errors.As(e.err, &h) {
		return h.Hint()
	}
	return e.hint
}
