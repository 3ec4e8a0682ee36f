//go:build interop

package omemotest

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// xmpppeer.py is the slixmpp client around python-omemo (OMEMO 2 only).
//
//go:embed xmpppeer.py
var xmppPeerScript []byte

// maxEvents bounds the asynchronous events buffered before the test reads
// them; a peer that produces more is stopped.
const maxEvents = 1024

// XMPPPeerOptions configures [StartXMPPPeer].
type XMPPPeerOptions struct {
	// JID is the account's bare JID, Password its password.
	JID, Password string
	// Addr is the server's c2s address, 127.0.0.1:port. The connection is
	// plain TCP (no STARTTLS): loopback test servers only.
	Addr string
	// DeviceID is the OMEMO device id; zero picks a random one.
	DeviceID uint32
	// Timeout bounds every command; zero means DefaultTimeout.
	Timeout time.Duration
	// Debug logs every stanza (slixmpp DEBUG) in the test log.
	Debug bool
}

// XMPPPeer is a python-omemo OMEMO 2 device (XEP-0384 0.9, urn:xmpp:omemo:2)
// connected to an XMPP server with slixmpp: it publishes its device list and
// bundle to its PEP service, fetches its contacts' by IQ, sends and receives
// <message/> stanzas and wraps the body in an SCE envelope (XEP-0420 0.5).
// Trust is blind. Received messages and python-omemo's automatic messages
// arrive as [XMPPEvent]s, read with [XMPPPeer.Next].
type XMPPPeer struct {
	tb      testing.TB
	jid     string
	timeout time.Duration

	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan []byte // replies
	events chan XMPPEvent

	mu      sync.Mutex // one command at a time
	nextID  uint64
	stopped error

	stderr   stderrLog
	stopOnce sync.Once
	logID    atomic.Uint32 // the device id, for stderr lines (set once known)

	deviceID    uint32
	fullJID     string
	fingerprint string
}

// XMPPEvent is something the python client saw on its own (see
// xmpppeer.py): Event is "message" (an OMEMO 2 message with a body),
// "empty" (an empty OMEMO message), "auto" (python-omemo sent an empty
// message itself, To set), "plaintext" (a message with a body and no OMEMO
// 2 element), "error" (a message that failed to decrypt) or "disconnected".
type XMPPEvent struct {
	Event       string `json:"event"`
	From        string `json:"from"`
	To          string `json:"to"`
	Device      uint32 `json:"device"`
	Text        string `json:"text"`
	KeyExchange bool   `json:"kex"`      // our <key/> was kex='true'
	Delayed     bool   `json:"delayed"`  // it carried <delay/> (offline storage)
	Empty       bool   `json:"empty"`    // "auto": an empty message
	Envelope    string `json:"envelope"` // "message": the decrypted SCE envelope
	Error       string `json:"error"`
	Stanza      string `json:"stanza"`
}

func (e XMPPEvent) String() string {
	b, _ := json.Marshal(e)
	return string(b)
}

// XMPPSent is the result of [XMPPPeer.Send].
type XMPPSent struct {
	Recipients []Recipient    `json:"recipients"`
	Errors     []EncryptError `json:"errors"`
	Stanza     string         `json:"stanza"` // the <message/> as sent
}

// StartXMPPPeer starts the python client, connects it, creates its OMEMO 2
// device (publishing device list and bundle) and sends initial presence. It
// calls t.Fatal when python or a module (python3-omemo python3-twomemo
// python3-xmlschema python3-slixmpp) is missing or the start fails, and
// stops the process in t.Cleanup.
func StartXMPPPeer(t testing.TB, o XMPPPeerOptions) *XMPPPeer {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	host, portStr, err := net.SplitHostPort(o.Addr)
	if err != nil {
		t.Fatalf("omemotest: address %q: %v", o.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		t.Fatalf("omemotest: address %q: %v", o.Addr, err)
	}
	if _, err := os.Stat(PythonPath); err != nil {
		t.Fatalf("omemotest: %s is required (apt-get install python3 python3-omemo python3-twomemo python3-xmlschema python3-slixmpp): %v", PythonPath, err)
	}
	script := filepath.Join(t.TempDir(), "xmpppeer.py")
	if err := os.WriteFile(script, xmppPeerScript, 0o600); err != nil {
		t.Fatalf("omemotest: writing the client: %v", err)
	}
	p := &XMPPPeer{
		tb: t, jid: o.JID, timeout: o.Timeout,
		lines:  make(chan []byte, 1),
		events: make(chan XMPPEvent, maxEvents),
		stderr: stderrLog{done: make(chan struct{})},
	}
	cmd := exec.Command(PythonPath, "-u", script)
	cmd.Env = os.Environ()
	if o.Debug {
		cmd.Env = append(cmd.Env, "OMEMOTEST_LOG=DEBUG")
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("omemotest: starting %s: %v", PythonPath, err)
	}
	p.cmd, p.stdin = cmd, stdin
	go p.stderr.read(stderr, func(line string) { p.tb.Logf("py %s/%d: %s", p.jid, p.logID.Load(), line) })
	go p.readStdout(stdout)
	t.Cleanup(p.Stop)

	line, err := p.receive("start")
	if err != nil {
		p.Stop()
		t.Fatalf("omemotest: %s did not start: %v%s", o.JID, err, p.stderr.summary())
	}
	var h hello
	if err := json.Unmarshal(line, &h); err != nil || (!h.Ready && !h.Fatal) {
		p.Stop()
		t.Fatalf("omemotest: %s: bad hello %q%s", o.JID, line, p.stderr.summary())
	}
	if h.Fatal {
		p.Stop()
		t.Fatalf("omemotest: %s: %s%s", o.JID, h.Error, p.stderr.summary())
	}
	args := map[string]any{"jid": o.JID, "password": o.Password, "host": host, "port": port}
	if o.DeviceID != 0 {
		args["device_id"] = o.DeviceID
	}
	var r struct {
		FullJID     string `json:"full_jid"`
		DeviceID    uint32 `json:"device_id"`
		Fingerprint string `json:"fingerprint"`
	}
	if err := p.call("start", args, &r); err != nil {
		p.Stop()
		t.Fatalf("omemotest: %s: start: %v%s", o.JID, err, p.stderr.summary())
	}
	p.deviceID, p.fullJID, p.fingerprint = r.DeviceID, r.FullJID, r.Fingerprint
	p.logID.Store(r.DeviceID)
	t.Logf("omemotest: %s is python-omemo device %d (%s)", r.FullJID, r.DeviceID, h.Versions)
	return p
}

// JID is the peer's bare JID.
func (p *XMPPPeer) JID() string { return p.jid }

// FullJID is the JID the server bound.
func (p *XMPPPeer) FullJID() string { return p.fullJID }

// DeviceID is the peer's OMEMO 2 device id.
func (p *XMPPPeer) DeviceID() uint32 { return p.deviceID }

// Fingerprint is python-omemo's fingerprint of the identity key.
func (p *XMPPPeer) Fingerprint() string { return p.fingerprint }

// Send encrypts text for every device of the bare JID to (after fetching
// its device list again) and the peer's other own devices, in an SCE
// envelope with rpad, from, to and time, and sends the message.
func (p *XMPPPeer) Send(to, text string) (*XMPPSent, error) {
	var r XMPPSent
	if err := p.call("send", map[string]any{"to": to, "text": text}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Disconnect closes the stream: the server keeps messages for the account
// (offline storage) until [XMPPPeer.Connect].
func (p *XMPPPeer) Disconnect() error { return p.call("disconnect", nil, nil) }

// Connect reconnects after [XMPPPeer.Disconnect] and sends initial
// presence, after which the server delivers what it kept.
func (p *XMPPPeer) Connect() error { return p.call("connect", nil, nil) }

// Next returns the next event, or an error after d.
func (p *XMPPPeer) Next(d time.Duration) (XMPPEvent, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case ev, ok := <-p.events:
		if !ok {
			return XMPPEvent{}, fmt.Errorf("%w: no more events", ErrStopped)
		}
		return ev, nil
	case <-timer.C:
		return XMPPEvent{}, fmt.Errorf("%w: no event within %v", ErrTimeout, d)
	}
}

// Pending returns the events already received, without waiting.
func (p *XMPPPeer) Pending() []XMPPEvent {
	var out []XMPPEvent
	for {
		select {
		case ev, ok := <-p.events:
			if !ok {
				return out
			}
			out = append(out, ev)
		default:
			return out
		}
	}
}

// readStdout splits the output into replies and events.
func (p *XMPPPeer) readStdout(r io.Reader) {
	defer close(p.lines)
	defer close(p.events)
	defer func() { _, _ = io.Copy(io.Discard, r) }()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		line := append([]byte(nil), sc.Bytes()...)
		var probe struct {
			Event *string `json:"event"`
		}
		if json.Unmarshal(line, &probe) == nil && probe.Event != nil {
			var ev XMPPEvent
			if err := json.Unmarshal(line, &ev); err != nil {
				p.tb.Logf("omemotest: %s: malformed event %q: %v", p.jid, line, err)
				continue
			}
			select {
			case p.events <- ev:
			default:
				p.tb.Errorf("omemotest: %s: more than %d unread events; dropping %s", p.jid, maxEvents, ev)
			}
			continue
		}
		p.lines <- line
	}
}

func (p *XMPPPeer) receive(cmd string) ([]byte, error) {
	timer := time.NewTimer(p.timeout)
	defer timer.Stop()
	select {
	case line, ok := <-p.lines:
		if !ok {
			p.stopped = fmt.Errorf("%w: process exited during %s", ErrStopped, cmd)
			return nil, p.stopped
		}
		return line, nil
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		p.stopped = fmt.Errorf("%w: %s did not answer within %v (%w)", ErrTimeout, cmd, p.timeout, ErrStopped)
		return nil, p.stopped
	}
}

func (p *XMPPPeer) call(cmd string, args map[string]any, out any) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped != nil {
		return p.stopped
	}
	p.nextID++
	id := p.nextID
	req := map[string]any{"cmd": cmd, "id": id}
	for k, v := range args {
		req[k] = v
	}
	b, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("omemotest: %s: %w", cmd, err)
	}
	if _, err := p.stdin.Write(append(b, '\n')); err != nil {
		p.stopped = fmt.Errorf("%w: writing %s: %v", ErrStopped, cmd, err)
		return p.stopped
	}
	line, err := p.receive(cmd)
	if err != nil {
		return err
	}
	var h replyHeader
	if err := json.Unmarshal(line, &h); err != nil || h.ID == nil || *h.ID != id {
		_ = p.cmd.Process.Kill()
		p.stopped = fmt.Errorf("%w: %s: unexpected reply %.200q (%v)", ErrStopped, cmd, line, err)
		return p.stopped
	}
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

// Stop shuts the client down (closing its stream) and waits for the
// process; later calls return [ErrStopped].
func (p *XMPPPeer) Stop() {
	p.stopOnce.Do(func() {
		p.mu.Lock()
		if p.stopped == nil {
			if _, err := p.stdin.Write([]byte(`{"cmd":"shutdown","id":0}` + "\n")); err == nil {
				select {
				case <-p.lines:
				case <-time.After(5 * time.Second):
				}
			}
			p.stopped = ErrStopped
		}
		p.mu.Unlock()
		_ = p.stdin.Close()
		// Read stdout to its end (os/exec: Wait only after the reads).
		done := make(chan struct{})
		go func() {
			for range p.lines {
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
		<-p.stderr.done
		_ = p.cmd.Wait()
		if errors.Is(p.stopped, ErrTimeout) {
			p.tb.Logf("omemotest: %s stopped after a timeout%s", p.jid, p.stderr.summary())
		}
	})
}
