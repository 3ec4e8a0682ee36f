// Package omemotest drives the reference OMEMO implementation, python-omemo
// 1.0.2 with the python-twomemo 1.0.3 backend (XEP-0384 0.8+, namespace
// urn:xmpp:omemo:2) and the python-oldmemo 1.0.3 backend (XEP-0384 0.3,
// namespace eu.siacs.conversations.axolotl), as a test oracle for hush.
//
// Each [Peer] is one OMEMO device: a /usr/bin/python3 process running the
// embedded peer.py, which subclasses omemo.SessionManager with an in-memory
// (optionally file-backed) omemo.Storage and has no network. Its "PEP
// service" is a local view that the Go side fills ([Peer.AddDeviceList],
// [Peer.AddBundle]); what python-omemo publishes is queued for
// [Peer.Published] and what it sends on its own (key exchange completion,
// heartbeats, session replacement: always empty OMEMO messages) is queued
// for [Peer.Outbox]. A [PEP] connects several peers (and a hush device
// under test) like a PEP service would, so most tests only move
// <encrypted/> elements around.
//
// python-omemo encrypts bytes: for OMEMO 2 the plaintext is the serialized
// SCE envelope (XEP-0420), built by the caller; for legacy OMEMO it is the
// body text. Traps of the reference worth knowing (DESIGN.md): it treats any
// kex/prekey attribute value, even "false", as true; it answers a key
// exchange with an empty message (no <payload/>); it sends a heartbeat once
// a receiving chain is longer than 53 messages.
//
// The package is test support only. Tests that use it belong behind the
// build tag "interop" and must fail, never skip, when python or one of its
// modules (python3-omemo python3-twomemo python3-oldmemo python3-xmlschema)
// is missing: [StartPeer] calls t.Fatal in that case.
package omemotest

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// NSOMEMO2 is the namespace of OMEMO 2 (XEP-0384 0.8+ §"Namespace").
const NSOMEMO2 = "urn:xmpp:omemo:2"

// NSLegacy is the namespace of legacy OMEMO (XEP-0384 0.3).
const NSLegacy = "eu.siacs.conversations.axolotl"

// PythonPath is the interpreter that has the Debian python3-omemo packages.
// A pyenv python earlier on PATH lacks them, so PATH is never searched.
const PythonPath = "/usr/bin/python3"

// DefaultTimeout bounds every command sent to a peer; creating a device
// (two bundles of 100 pre keys each) takes about half a second on an idle
// machine.
const DefaultTimeout = 60 * time.Second

// maxLine bounds one reply line from the driver (batches of messages).
const maxLine = 256 << 20

// stderrTail is how many stderr lines are kept for error messages.
const stderrTail = 40

// Trust level names understood by [Peer.SetTrust]. A device starts as
// [TrustUndecided]; with blind trust (the default) undecided devices are
// used as if trusted, with [WithManualTrust] encryption to them fails with
// an [*Error] of type "StillUndecided".
const (
	TrustTrusted    = "trusted"
	TrustDistrusted = "distrusted"
	TrustUndecided  = "undecided"
)

//go:embed peer.py
var peerScript []byte

// ErrStopped is returned by every method of a [Peer] whose process has
// exited, was stopped, or was killed after a timeout.
var ErrStopped = errors.New("omemotest: peer stopped")

// ErrTimeout is wrapped by the error of a command that did not answer in
// time; the peer is killed, and that error (which also wraps [ErrStopped])
// is returned by every later call.
var ErrTimeout = errors.New("omemotest: timeout")

// Error is a failure reported by the python side: Type is the python
// exception class (for example "NoEligibleDevices", "StillUndecided",
// "DecryptionFailed", "XMLSchemaValidationError", "DriverError" for a bad
// request).
type Error struct {
	Cmd  string
	Type string
	Msg  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("omemotest: %s: %s", e.Cmd, e.Msg)
}

type config struct {
	deviceID     uint32
	storagePath  string
	identitySeed []byte
	signBit      int
	namespaces   []string
	manualTrust  bool
	label        *string
	timeout      time.Duration
	debug        bool
	historySync  bool
	pep          *PEP
	name         string
	command      []string // tests only: replaces python and the script
	env          []string // tests only
}

// Option configures [StartPeer].
type Option func(*config)

// WithDeviceID makes the device use id (1 … 2^31−1, XEP-0384 §"Device
// ids") instead of a random one. It only applies to a fresh storage.
func WithDeviceID(id uint32) Option { return func(c *config) { c.deviceID = id } }

// WithStorage persists the python-omemo storage as JSON at path after every
// write; starting a peer again with the same path (and jid) restores it.
func WithStorage(path string) Option { return func(c *config) { c.storagePath = path } }

// WithIdentitySeed sets the 32-byte Ed25519 seed of a fresh identity key
// (python-omemo derives the private scalar as SHA-512(seed)[:32], clamped).
func WithIdentitySeed(seed []byte) Option {
	return func(c *config) { c.identitySeed = append([]byte(nil), seed...) }
}

// WithIdentitySignBit makes a fresh random identity key whose Ed25519 public
// form has the given sign bit (bit 7 of byte 31), 0 or 1. Random python
// identities have it set half the time; hush must handle both.
func WithIdentitySignBit(bit int) Option { return func(c *config) { c.signBit = bit } }

// WithNamespaces selects and orders the backends to load (default
// [NSOMEMO2], [NSLegacy]); the order is python-omemo's default priority.
func WithNamespaces(ns ...string) Option {
	return func(c *config) { c.namespaces = append([]string(nil), ns...) }
}

// WithManualTrust turns blind trust off: undecided devices are not used for
// encryption until [Peer.SetTrust] decides on them.
func WithManualTrust() Option { return func(c *config) { c.manualTrust = true } }

// WithLabel sets the device label published in the OMEMO 2 device list.
func WithLabel(label string) Option { return func(c *config) { c.label = &label } }

// WithTimeout replaces [DefaultTimeout] for every command of the peer.
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithDebug turns on python-omemo's DEBUG logging (it logs key material and
// plaintexts) in the test log.
func WithDebug() Option { return func(c *config) { c.debug = true } }

// WithHistorySync leaves the device in python-omemo's history
// synchronisation mode after start: used pre keys are hidden instead of
// deleted and automatic empty messages are queued until
// [Peer.SetHistorySync] (false).
func WithHistorySync() Option { return func(c *config) { c.historySync = true } }

// WithPEP attaches the peer to a PEP model: the peer first learns every item
// already in pep, and everything it publishes afterwards is delivered to
// pep and to every other attached peer.
func WithPEP(pep *PEP) Option { return func(c *config) { c.pep = pep } }

// WithName sets the prefix of the peer's lines in the test log (default: the
// jid and, once known, the device id).
func WithName(name string) Option { return func(c *config) { c.name = name } }

// Peer is one python-omemo device. Its methods are safe for concurrent use
// but run one command at a time.
type Peer struct {
	tb      testing.TB
	jid     string
	timeout time.Duration

	cmd     *exec.Cmd
	stdin   io.WriteCloser
	replies chan []byte
	readErr error // set before replies is closed

	stderr stderrLog
	name   atomic.Pointer[string]

	mu      sync.Mutex // serialises commands
	nextID  uint64
	stopped error

	pending atomic.Bool // the driver has published items not yet drained
	pep     *PEP

	stopOnce sync.Once

	deviceID    uint32
	identityKey []byte
	fingerprint string
	namespaces  []string
	versions    map[string]string
}

type hello struct {
	Ready    bool              `json:"ready"`
	Fatal    bool              `json:"fatal"`
	Error    string            `json:"error"`
	Versions map[string]string `json:"versions"`
}

type info struct {
	JID         string   `json:"jid"`
	DeviceID    uint32   `json:"device_id"`
	IdentityKey []byte   `json:"identity_key"`
	Fingerprint string   `json:"fingerprint"`
	Namespaces  []string `json:"namespaces"`
}

// StartPeer starts a python-omemo device for the bare jid and creates (or,
// with [WithStorage], loads) its identity, bundles and device list entry.
// It calls t.Fatal when python, a python module, or the start fails, and
// registers t.Cleanup to stop the process. The python side's stderr goes
// to the test log.
func StartPeer(t testing.TB, jid string, opts ...Option) *Peer {
	t.Helper()
	cfg := config{timeout: DefaultTimeout, signBit: -1}
	for _, o := range opts {
		o(&cfg)
	}
	argv := cfg.command
	if argv == nil {
		if _, err := os.Stat(PythonPath); err != nil {
			t.Fatalf("omemotest: %s is required for OMEMO interop tests (apt-get install python3 python3-omemo python3-twomemo python3-oldmemo python3-xmlschema): %v", PythonPath, err)
		}
		script := filepath.Join(t.TempDir(), "peer.py")
		if err := os.WriteFile(script, peerScript, 0o600); err != nil {
			t.Fatalf("omemotest: writing driver: %v", err)
		}
		argv = []string{PythonPath, "-u", script}
	}
	p := &Peer{
		tb:      t,
		jid:     jid,
		timeout: cfg.timeout,
		replies: make(chan []byte, 1),
		stderr:  stderrLog{done: make(chan struct{})},
	}
	name := cfg.name
	if name == "" {
		name = jid
	}
	p.name.Store(&name)

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), cfg.env...)
	if cfg.debug {
		cmd.Env = append(cmd.Env, "OMEMOTEST_LOG=DEBUG")
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("omemotest: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("omemotest: %v", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatalf("omemotest: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("omemotest: starting %s: %v", argv[0], err)
	}
	p.cmd, p.stdin = cmd, stdin
	go p.stderr.read(stderr, func(line string) { p.tb.Logf("py %s: %s", p, line) })
	go p.readReplies(stdout)
	t.Cleanup(p.Stop)

	// The hello line says whether every module imported.
	line, err := p.receive("start")
	if err != nil {
		p.Stop()
		t.Fatalf("omemotest: %s did not start: %v%s", name, err, p.stderr.summary())
	}
	var h hello
	if err := json.Unmarshal(line, &h); err != nil || (!h.Ready && !h.Fatal) {
		p.Stop()
		t.Fatalf("omemotest: %s: bad hello %q%s", name, line, p.stderr.summary())
	}
	if h.Fatal {
		p.Stop()
		t.Fatalf("omemotest: %s: %s%s", name, h.Error, p.stderr.summary())
	}
	p.versions = h.Versions

	// A peer attached to a PEP first sees what is already published, so a
	// second device of an account finds the first one's device list.
	if cfg.pep != nil {
		if err := cfg.pep.preload(p); err != nil {
			p.Stop()
			t.Fatalf("omemotest: %s: loading PEP items: %v", name, err)
		}
	}

	args := map[string]any{"jid": jid, "history_sync": cfg.historySync}
	if cfg.deviceID != 0 {
		args["device_id"] = cfg.deviceID
	}
	if cfg.storagePath != "" {
		args["storage_path"] = cfg.storagePath
	}
	if cfg.identitySeed != nil {
		args["identity_seed"] = cfg.identitySeed
	}
	if cfg.signBit >= 0 {
		args["ik_sign_bit"] = cfg.signBit
	}
	if cfg.namespaces != nil {
		args["namespaces"] = cfg.namespaces
	}
	if cfg.manualTrust {
		args["trust"] = "manual"
	}
	if cfg.label != nil {
		args["label"] = *cfg.label
	}
	var in info
	if err := p.callRaw("init", args, &in); err != nil {
		p.Stop()
		t.Fatalf("omemotest: %s: init: %v%s", name, err, p.stderr.summary())
	}
	p.deviceID, p.identityKey, p.fingerprint, p.namespaces = in.DeviceID, in.IdentityKey, in.Fingerprint, in.Namespaces
	if cfg.name == "" {
		full := jid + "/" + strconv.FormatUint(uint64(in.DeviceID), 10)
		p.name.Store(&full)
	}
	if cfg.pep != nil {
		if err := cfg.pep.attach(p); err != nil {
			p.Stop()
			t.Fatalf("omemotest: %s: publishing to PEP: %v", name, err)
		}
	}
	return p
}

// JID is the peer's bare JID.
func (p *Peer) JID() string { return p.jid }

// DeviceID is the peer's OMEMO device id.
func (p *Peer) DeviceID() uint32 { return p.deviceID }

// IdentityKey is the peer's public identity key in Ed25519 form (XEP-0384
// §"Key Exchange": always transferred in Ed25519 form).
func (p *Peer) IdentityKey() []byte { return append([]byte(nil), p.identityKey...) }

// Fingerprint is python-omemo's fingerprint: lowercase hex of the
// Curve25519 form of the identity key (XEP-0384 §"Trust").
func (p *Peer) Fingerprint() string { return p.fingerprint }

// Namespaces lists the loaded backends in priority order.
func (p *Peer) Namespaces() []string { return append([]string(nil), p.namespaces...) }

// Versions reports the versions of python and of the OMEMO modules in use.
func (p *Peer) Versions() map[string]string { return p.versions }

// String returns the peer's log name.
func (p *Peer) String() string { return *p.name.Load() }

// stderrLog logs each line of a python process's standard error and keeps
// the last stderrTail of them for failure messages.
type stderrLog struct {
	done chan struct{} // closed when the stream ended
	mu   sync.Mutex
	tail []string
}

// read logs the lines of r with logf until r ends.
func (l *stderrLog) read(r io.Reader, logf func(line string)) {
	defer close(l.done)
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if line = strings.TrimRight(line, "\r\n"); line != "" {
			l.mu.Lock()
			l.tail = append(l.tail, line)
			if len(l.tail) > stderrTail {
				l.tail = l.tail[len(l.tail)-stderrTail:]
			}
			l.mu.Unlock()
			logf(line)
		}
		if err != nil {
			return
		}
	}
}

// summary returns the last lines, for a failure message.
func (l *stderrLog) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.tail) == 0 {
		return ""
	}
	return "\npython stderr (last lines):\n\t" + strings.Join(l.tail, "\n\t")
}

func (p *Peer) readReplies(r io.Reader) {
	defer close(p.replies)
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		var line []byte
		for {
			chunk, err := br.ReadSlice('\n')
			line = append(line, chunk...)
			if len(line) > maxLine {
				p.readErr = fmt.Errorf("reply longer than %d bytes", maxLine)
				return
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				p.readErr = fmt.Errorf("reading reply: %w", err)
				return
			}
			break
		}
		p.replies <- bytes.TrimRight(line, "\r\n")
	}
}

// receive waits for one reply line. The caller holds p.mu (or is StartPeer).
func (p *Peer) receive(cmd string) ([]byte, error) {
	timer := time.NewTimer(p.timeout)
	defer timer.Stop()
	select {
	case line, ok := <-p.replies:
		if !ok {
			p.stopped = fmt.Errorf("%w: process exited during %s: %v", ErrStopped, cmd, p.readErr)
			return nil, p.stopped
		}
		return line, nil
	case <-timer.C:
		p.kill()
		p.stopped = fmt.Errorf("%w: %s did not answer within %v (%w)", ErrTimeout, cmd, p.timeout, ErrStopped)
		return nil, p.stopped
	}
}

type replyHeader struct {
	ID               *uint64 `json:"id"`
	Error            string  `json:"error"`
	ErrorType        string  `json:"error_type"`
	PendingPublished int     `json:"pending_published"`
}

// callRaw sends one command and decodes the reply into out (if not nil). It
// never triggers a PEP synchronisation.
func (p *Peer) callRaw(cmd string, args map[string]any, out any) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped != nil {
		return p.stopped
	}
	p.nextID++
	id := p.nextID
	req := make(map[string]any, len(args)+2)
	for k, v := range args {
		req[k] = v
	}
	req["cmd"], req["id"] = cmd, id
	b, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("omemotest: %s: encoding request: %w", cmd, err)
	}
	if _, err := p.stdin.Write(append(b, '\n')); err != nil {
		p.kill()
		p.stopped = fmt.Errorf("%w: writing %s: %v", ErrStopped, cmd, err)
		return p.stopped
	}
	line, err := p.receive(cmd)
	if err != nil {
		return err
	}
	var h replyHeader
	if err := json.Unmarshal(line, &h); err != nil {
		p.kill()
		p.stopped = fmt.Errorf("%w: %s: malformed reply %.200q: %v", ErrStopped, cmd, line, err)
		return p.stopped
	}
	if h.ID == nil || *h.ID != id {
		p.kill()
		p.stopped = fmt.Errorf("%w: %s: reply for another request: %.200q", ErrStopped, cmd, line)
		return p.stopped
	}
	p.pending.Store(h.PendingPublished > 0)
	if h.Error != "" || h.ErrorType != "" {
		return &Error{Cmd: cmd, Type: h.ErrorType, Msg: h.Error}
	}
	if out != nil {
		if err := json.Unmarshal(line, out); err != nil {
			return fmt.Errorf("omemotest: %s: decoding reply: %w", cmd, err)
		}
	}
	return nil
}

// call is callRaw followed, for a peer attached to a PEP, by delivering
// whatever the command made python-omemo publish.
func (p *Peer) call(cmd string, args map[string]any, out any) error {
	err := p.callRaw(cmd, args, out)
	if p.pep != nil && p.pending.Load() {
		if serr := p.pep.Sync(); serr != nil && err == nil {
			err = serr
		}
	}
	return err
}

// Call sends a raw driver command (see peer.py; arguments and the reply are
// JSON objects, binary values standard base64) and decodes the reply into
// out. Low-level: most tests use the typed methods.
func (p *Peer) Call(cmd string, args map[string]any, out any) error {
	return p.call(cmd, args, out)
}

func (p *Peer) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
	}
}

// Stop ends the python process (politely, then by force after five
// seconds), detaches the peer from its PEP and waits until its stderr is
// logged. It is idempotent and registered with t.Cleanup by [StartPeer].
// Stopping and starting a peer with the same [WithStorage] path restarts
// the same device.
func (p *Peer) Stop() {
	p.stopOnce.Do(func() {
		if p.pep != nil {
			p.pep.detach(p)
		}
		p.mu.Lock()
		if p.stopped == nil {
			// Best effort; a dead process just closes the pipe.
			if _, err := p.stdin.Write([]byte(`{"cmd":"shutdown","id":0}` + "\n")); err == nil {
				timer := time.NewTimer(5 * time.Second)
				select {
				case <-p.replies:
				case <-timer.C:
				}
				timer.Stop()
			}
			p.stopped = ErrStopped
		}
		p.mu.Unlock()
		_ = p.stdin.Close()
		done := make(chan struct{})
		go func() {
			for range p.replies {
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			p.kill()
			<-done
		}
		_ = p.cmd.Wait()
		<-p.stderr.done
	})
}

// ---------------------------------------------------------------------------
// PEP (XEP-0163) items.

// OwnBundles returns the device's current bundles, namespace → the <bundle/>
// payload as published to PEP (item id = device id for OMEMO 2, node
// eu.siacs.conversations.axolotl.bundles:<device id> for legacy).
func (p *Peer) OwnBundles() (map[string][]byte, error) {
	var r struct {
		Bundles map[string]string `json:"bundles"`
	}
	if err := p.call("own_bundle", nil, &r); err != nil {
		return nil, err
	}
	return bytesMap(r.Bundles), nil
}

// OwnDeviceLists returns the device lists this device last published
// (namespace → <devices/> or <list/> payload).
func (p *Peer) OwnDeviceLists() (map[string][]byte, error) {
	var r struct {
		Lists map[string]string `json:"lists"`
	}
	if err := p.call("own_device_list", nil, &r); err != nil {
		return nil, err
	}
	return bytesMap(r.Lists), nil
}

// AddDeviceList delivers a device list of jid, as a PEP notification would
// (the payload, or an <item/> or <items/> holding it), parsed and
// schema-checked by twomemo.etree / oldmemo.etree. It returns the device
// ids. For the own jid, python-omemo re-publishes the list if this device
// is missing from it (XEP-0384 §"Device list").
func (p *Peer) AddDeviceList(ns, jid string, xml []byte) ([]uint32, error) {
	var r struct {
		DeviceIDs []uint32 `json:"device_ids"`
	}
	err := p.call("add_device_list", map[string]any{"namespace": ns, "jid": jid, "xml": string(xml)}, &r)
	return r.DeviceIDs, err
}

// AddBundle makes the bundle of jid's device available for download, as a
// PEP service would; it is parsed (and its XML schema checked) right away,
// so a malformed bundle fails here. It returns the identity key in Ed25519
// form (for legacy bundles python-omemo takes the sign bit from bit 7 of
// signature byte 63).
func (p *Peer) AddBundle(ns, jid string, deviceID uint32, xml []byte) ([]byte, error) {
	var r struct {
		IdentityKey []byte `json:"identity_key"`
	}
	err := p.call("add_bundle", map[string]any{"namespace": ns, "jid": jid, "device_id": deviceID, "xml": string(xml)}, &r)
	return r.IdentityKey, err
}

// RemoveBundle makes a bundle unavailable (bundle downloads then fail with
// BundleNotFound).
func (p *Peer) RemoveBundle(ns, jid string, deviceID uint32) error {
	return p.call("remove_bundle", map[string]any{"namespace": ns, "jid": jid, "device_id": deviceID}, nil)
}

// ParsedBundle is a bundle as the reference reads it.
type ParsedBundle struct {
	IdentityKey     []byte      `json:"identity_key"`       // Ed25519 form
	SignedPreKey    []byte      `json:"signed_pre_key"`     // raw 32-byte X25519
	SignedPreKeyID  uint32      `json:"signed_pre_key_id"`  //
	SignedPreKeySig []byte      `json:"signed_pre_key_sig"` // legacy: sign bit cleared
	PreKeys         []PreKeyPub `json:"pre_keys"`           // sorted by id
}

// PreKeyPub is one public pre key of a bundle.
type PreKeyPub struct {
	ID  uint32 `json:"id"`
	Key []byte `json:"key"` // raw 32-byte X25519
}

// ParseBundle parses a <bundle/> with the reference parser (schema
// validation included) without storing it.
func (p *Peer) ParseBundle(ns string, xml []byte) (*ParsedBundle, error) {
	var r ParsedBundle
	if err := p.call("parse", map[string]any{"kind": "bundle", "namespace": ns, "xml": string(xml)}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// ListedDevice is one entry of a parsed device list.
type ListedDevice struct {
	ID    uint32  `json:"id"`
	Label *string `json:"label"`
}

// ParseDeviceList parses a device list with the reference parser (schema
// validation included) without storing it.
func (p *Peer) ParseDeviceList(ns string, xml []byte) ([]ListedDevice, error) {
	var r struct {
		Devices []ListedDevice `json:"devices"`
	}
	err := p.call("parse", map[string]any{"kind": "device_list", "namespace": ns, "xml": string(xml)}, &r)
	return r.Devices, err
}

// Published is one PEP publication made by python-omemo.
type Published struct {
	Kind      string // "bundle", "device_list" or "bundle_delete"
	Namespace string
	JID       string
	DeviceID  uint32 // bundles only
	XML       []byte // the item payload; empty for bundle_delete
}

type publishedJSON struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	JID       string `json:"jid"`
	DeviceID  uint32 `json:"device_id"`
	XML       string `json:"xml"`
}

// Published drains the publications python-omemo made since the last call,
// oldest first. A peer attached to a [PEP] has them drained automatically.
func (p *Peer) Published() ([]Published, error) {
	var r struct {
		Items []publishedJSON `json:"items"`
	}
	if err := p.callRaw("published", nil, &r); err != nil {
		return nil, err
	}
	out := make([]Published, len(r.Items))
	for i, it := range r.Items {
		out[i] = Published{Kind: it.Kind, Namespace: it.Namespace, JID: it.JID, DeviceID: it.DeviceID, XML: []byte(it.XML)}
	}
	return out, nil
}

// ---------------------------------------------------------------------------
// Messages.

// Recipient is one <key/> of an <encrypted/> element.
type Recipient struct {
	JID         string `json:"jid"`
	DeviceID    uint32 `json:"device_id"`
	KeyExchange bool   `json:"kex"` // kex='true' (OMEMO 2) / prekey='true' (legacy)
}

// EncryptError is a recipient device python-omemo left out (bundle missing,
// key exchange failed); the message still went to the others.
type EncryptError struct {
	Namespace string `json:"namespace"`
	JID       string `json:"jid"`
	DeviceID  uint32 `json:"device_id"`
	Err       string `json:"error"`
}

// Encrypted is the result of [Peer.Encrypt].
type Encrypted struct {
	// Messages maps a namespace to its <encrypted/> element; a namespace is
	// present only if some recipient device uses it.
	Messages   map[string][]byte
	Recipients map[string][]Recipient
	Errors     []EncryptError
}

// Encrypt encrypts plaintext for every trusted device of the bare JIDs in
// to and for the peer's own other devices (python-omemo adds the own JID).
// For OMEMO 2 the plaintext must be the serialized SCE envelope; for legacy
// the body text. namespaces, if given, is the backend priority order and
// excludes devices that support none of them; a device supporting several
// gets the first. It fails with an [*Error] ("NoEligibleDevices",
// "StillUndecided", ...) when python-omemo refuses.
func (p *Peer) Encrypt(to []string, plaintext []byte, namespaces ...string) (*Encrypted, error) {
	return p.EncryptEach(to, map[string][]byte{"": plaintext}, namespaces...)
}

// EncryptEach is [Peer.Encrypt] with a plaintext per namespace (key "" is
// the default for namespaces not listed), as python-omemo's encrypt takes
// it: an SCE envelope for OMEMO 2 next to a body for legacy.
func (p *Peer) EncryptEach(to []string, plaintexts map[string][]byte, namespaces ...string) (*Encrypted, error) {
	if to == nil {
		to = []string{}
	}
	args := map[string]any{"to": to, "plaintext": plaintexts[""]}
	per := map[string][]byte{}
	for ns, pt := range plaintexts {
		if ns != "" {
			per[ns] = append([]byte{}, pt...)
		}
	}
	if plaintexts[""] == nil {
		args["plaintext"] = []byte{}
	}
	if len(per) > 0 {
		args["plaintexts"] = per
	}
	if len(namespaces) > 0 {
		args["namespaces"] = namespaces
	}
	var r struct {
		Messages   map[string]string      `json:"messages"`
		Recipients map[string][]Recipient `json:"recipients"`
		Errors     []EncryptError         `json:"errors"`
	}
	if err := p.call("encrypt", args, &r); err != nil {
		return nil, err
	}
	return &Encrypted{Messages: bytesMap(r.Messages), Recipients: r.Recipients, Errors: r.Errors}, nil
}

// Decrypted is the result of [Peer.Decrypt].
type Decrypted struct {
	Namespace         string `json:"namespace"`
	Plaintext         []byte `json:"plaintext"` // nil for an empty OMEMO message
	Empty             bool   `json:"empty"`     // no <payload/>: key exchange completion, heartbeat, ...
	SenderDeviceID    uint32 `json:"sender_device_id"`
	SenderIdentityKey []byte `json:"sender_identity_key"` // Ed25519 form
	KeyExchange       bool   `json:"key_exchange"`        // our <key/> was marked kex / prekey
	SessionExisted    bool   `json:"session_existed"`     // a session with the sender existed before
	SessionBuilt      bool   `json:"session_built"`       // this message built a new (or replacement) session
	Trust             string `json:"trust"`               // sender's trust level name
	AutoMessages      int    `json:"auto_messages"`       // empty messages python-omemo queued in reaction
}

// Decrypt decrypts an <encrypted/> element (or a stanza holding one) from
// the bare JID from. The namespace is taken from the element. Reactions of
// python-omemo (the empty message answering a key exchange, heartbeats)
// land in [Peer.Outbox]; used pre keys are replaced and the new bundle
// published.
func (p *Peer) Decrypt(from string, encrypted []byte) (*Decrypted, error) {
	var r Decrypted
	if err := p.call("decrypt", map[string]any{"from": from, "xml": string(encrypted)}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// OutMessage is an empty OMEMO message python-omemo sent on its own.
type OutMessage struct {
	Namespace  string
	To         string // bare JID
	SenderID   uint32
	Empty      bool
	XML        []byte // the <encrypted/> element
	Recipients []Recipient
}

// Outbox drains the messages python-omemo sent by itself since the last
// call (SessionManager._send_message), oldest first.
func (p *Peer) Outbox() ([]OutMessage, error) {
	var r struct {
		Messages []struct {
			Namespace  string      `json:"namespace"`
			To         string      `json:"to"`
			SID        uint32      `json:"sid"`
			Empty      bool        `json:"empty"`
			XML        string      `json:"xml"`
			Recipients []Recipient `json:"recipients"`
		} `json:"messages"`
	}
	if err := p.call("outbox", nil, &r); err != nil {
		return nil, err
	}
	out := make([]OutMessage, len(r.Messages))
	for i, m := range r.Messages {
		out[i] = OutMessage{Namespace: m.Namespace, To: m.To, SenderID: m.SID, Empty: m.Empty, XML: []byte(m.XML), Recipients: m.Recipients}
	}
	return out, nil
}

// ---------------------------------------------------------------------------
// Sessions, devices, trust.

// SessionInfo describes the session with one remote device.
type SessionInfo struct {
	Exists               bool   `json:"exists"`
	Initiation           string `json:"initiation"` // "active" or "passive"
	Confirmed            bool   `json:"confirmed"`
	SendingChainLength   int    `json:"sending_chain_length"`
	ReceivingChainLength *int   `json:"receiving_chain_length"`
}

// Session reports the peer's session with jid's device in namespace ns.
func (p *Peer) Session(ns, jid string, deviceID uint32) (*SessionInfo, error) {
	var r SessionInfo
	if err := p.call("session", map[string]any{"namespace": ns, "jid": jid, "device_id": deviceID}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// DeviceInfo is python-omemo's DeviceInformation.
type DeviceInfo struct {
	DeviceID    uint32          `json:"device_id"`
	Namespaces  []string        `json:"namespaces"`
	Active      map[string]bool `json:"active"`
	IdentityKey []byte          `json:"identity_key"`
	Trust       string          `json:"trust"`
	Label       *string         `json:"label"`
}

// Devices lists what the peer knows about jid's devices.
func (p *Peer) Devices(jid string) ([]DeviceInfo, error) {
	var r struct {
		Devices []DeviceInfo `json:"devices"`
	}
	err := p.call("devices", map[string]any{"jid": jid}, &r)
	return r.Devices, err
}

// SetTrust sets the trust level ([TrustTrusted], [TrustDistrusted],
// [TrustUndecided]) of jid's device deviceID.
func (p *Peer) SetTrust(jid string, deviceID uint32, level string) error {
	return p.call("set_trust", map[string]any{"jid": jid, "device_id": deviceID, "level": level}, nil)
}

// ReplaceSessions makes python-omemo replace its sessions with jid's device
// (it sends an empty key exchange message per namespace to the outbox). It
// returns the namespaces that failed, with the reason.
func (p *Peer) ReplaceSessions(jid string, deviceID uint32) (map[string]string, error) {
	var r struct {
		Failed map[string]string `json:"failed"`
	}
	err := p.call("replace_sessions", map[string]any{"jid": jid, "device_id": deviceID}, &r)
	return r.Failed, err
}

// RotateSignedPreKey rotates the signed pre key of every backend and
// publishes the new bundles.
func (p *Peer) RotateSignedPreKey() error { return p.call("rotate_signed_pre_key", nil, nil) }

// SetHistorySync enters (true) or leaves (false) python-omemo's history
// synchronisation mode; leaving it deletes hidden pre keys and sends the
// queued empty messages.
func (p *Peer) SetHistorySync(active bool) error {
	return p.call("history_sync", map[string]any{"active": active}, nil)
}

// ---------------------------------------------------------------------------
// Timing, for benchmarks that compare hush with the reference.

// EncryptBatch encrypts plaintext n times for to, in namespace ns only,
// inside python, and returns the <encrypted/> elements and the time python
// spent (encrypt and serialize, no IPC). Large n may need [WithTimeout]
// (about 1.5 ms per message).
func (p *Peer) EncryptBatch(to []string, ns string, plaintext []byte, n int) ([][]byte, time.Duration, error) {
	if plaintext == nil {
		plaintext = []byte{}
	}
	var r struct {
		XMLs    []string `json:"xmls"`
		Seconds float64  `json:"seconds"`
	}
	if err := p.call("encrypt_batch", map[string]any{"to": to, "namespace": ns, "plaintext": plaintext, "n": n}, &r); err != nil {
		return nil, 0, err
	}
	out := make([][]byte, len(r.XMLs))
	for i, x := range r.XMLs {
		out[i] = []byte(x)
	}
	return out, seconds(r.Seconds), nil
}

// BatchResult is the result of [Peer.DecryptBatch].
type BatchResult struct {
	N            int
	Empty        int // empty OMEMO messages among them
	AutoMessages int // empty messages python-omemo queued in reaction
	Elapsed      time.Duration
}

// DecryptBatch decrypts msgs from the bare JID from, in order, inside
// python, and reports the time python spent (parse and decrypt, no IPC).
// It stops at the first failure.
func (p *Peer) DecryptBatch(from string, msgs [][]byte) (BatchResult, error) {
	xs := make([]string, len(msgs))
	for i, m := range msgs {
		xs[i] = string(m)
	}
	var r struct {
		N            int     `json:"n"`
		Empty        int     `json:"empty"`
		AutoMessages int     `json:"auto_messages"`
		Seconds      float64 `json:"seconds"`
	}
	if err := p.call("decrypt_batch", map[string]any{"from": from, "xmls": xs}, &r); err != nil {
		return BatchResult{}, err
	}
	return BatchResult{N: r.N, Empty: r.Empty, AutoMessages: r.AutoMessages, Elapsed: seconds(r.Seconds)}, nil
}

// Timing is the reference's cost for n messages of one namespace.
type Timing struct {
	Namespace string
	N         int
	Encrypt   time.Duration // total python time for n encryptions
	Decrypt   time.Duration // total python time for n decryptions
}

// PerMessage returns the mean encrypt and decrypt time of one message.
func (t Timing) PerMessage() (encrypt, decrypt time.Duration) {
	if t.N == 0 {
		return 0, 0
	}
	return t.Encrypt / time.Duration(t.N), t.Decrypt / time.Duration(t.N)
}

// Measure has sender encrypt n messages of plaintext to receiver's JID in
// namespace ns and receiver decrypt them, and returns python's own time
// for both sides. For steady-state numbers, establish the session first
// (one message each way); otherwise the first message carries the key
// exchange. Messages for other devices of the receiver's JID are dropped.
func Measure(sender, receiver *Peer, ns string, plaintext []byte, n int) (Timing, error) {
	msgs, enc, err := sender.EncryptBatch([]string{receiver.JID()}, ns, plaintext, n)
	if err != nil {
		return Timing{}, err
	}
	res, err := receiver.DecryptBatch(sender.JID(), msgs)
	if err != nil {
		return Timing{}, err
	}
	return Timing{Namespace: ns, N: n, Encrypt: enc, Decrypt: res.Elapsed}, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func bytesMap(m map[string]string) map[string][]byte {
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = []byte(v)
	}
	return out
}
