package omemotest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// The plain build tests the Go side of the protocol against a fake driver:
// the test binary itself, re-executed with OMEMOTEST_FAKE set. The real
// python driver is exercised by the interop tests.

const fakeEnv = "OMEMOTEST_FAKE"

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeEnv); mode != "" {
		os.Exit(fakeDriver(mode))
	}
	os.Exit(m.Run())
}

// fakeDriver speaks the driver protocol with canned answers. Mode "fatal"
// reports a missing module like peer.py does, mode "exit" exits silently.
func fakeDriver(mode string) int {
	out := bufio.NewWriter(os.Stdout)
	emit := func(v map[string]any) {
		b, _ := json.Marshal(v)
		out.Write(append(b, '\n'))
		out.Flush()
	}
	if mode == "exit" {
		return 1
	}
	if mode == "fatal" {
		fmt.Fprintln(os.Stderr, "Traceback: ModuleNotFoundError: No module named 'omemo'")
		emit(map[string]any{"fatal": true, "error": "python module missing: No module named 'omemo'"})
		return 3
	}
	emit(map[string]any{"ready": true, "versions": map[string]string{"omemo": "fake"}})
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	for in.Scan() {
		var req map[string]any
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			emit(map[string]any{"error": "bad json", "error_type": "DriverError"})
			continue
		}
		id := req["id"]
		switch req["cmd"] {
		case "init":
			emit(map[string]any{"id": id, "jid": req["jid"], "device_id": 42, "identity_key": "AAEC", "fingerprint": "00", "namespaces": []string{NSOMEMO2}})
		case "ping":
			emit(map[string]any{"id": id, "pong": true, "pending_published": 0})
		case "boom":
			emit(map[string]any{"id": id, "error": "NoEligibleDevices: nobody", "error_type": "NoEligibleDevices"})
		case "sleep":
			time.Sleep(time.Minute)
		case "crash":
			fmt.Fprintln(os.Stderr, "fake driver crashing on purpose")
			return 2
		case "wrongid":
			emit(map[string]any{"id": 99999, "pong": true})
		case "garbage":
			out.WriteString("this is not json\n")
			out.Flush()
		case "shutdown":
			emit(map[string]any{"id": id, "bye": true})
			return 0
		default:
			emit(map[string]any{"id": id, "error": "DriverError: unknown command", "error_type": "DriverError"})
		}
	}
	return 0
}

func withFake(mode string) Option {
	return func(c *config) {
		c.command = []string{os.Args[0], "-test.run=^$"}
		c.env = []string{fakeEnv + "=" + mode}
	}
}

func TestFakeDriverCalls(t *testing.T) {
	tests := []struct {
		cmd      string
		wantErr  error  // errors.Is target
		wantType string // *Error type
		dead     bool   // the peer is unusable afterwards
	}{
		{cmd: "ping"},
		{cmd: "boom", wantType: "NoEligibleDevices"},
		{cmd: "nosuch", wantType: "DriverError"},
		{cmd: "sleep", wantErr: ErrTimeout, dead: true},
		{cmd: "crash", wantErr: ErrStopped, dead: true},
		{cmd: "wrongid", wantErr: ErrStopped, dead: true},
		{cmd: "garbage", wantErr: ErrStopped, dead: true},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			p := StartPeer(t, "fake@example.org", withFake("ok"), WithTimeout(2*time.Second))
			if p.DeviceID() != 42 || p.Versions()["omemo"] != "fake" || p.String() != "fake@example.org/42" {
				t.Fatalf("peer = %s id %d versions %v", p, p.DeviceID(), p.Versions())
			}
			if tt.cmd == "sleep" {
				p.timeout = 300 * time.Millisecond
			}
			err := p.Call(tt.cmd, nil, nil)
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("%s: err = %v, want %v", tt.cmd, err, tt.wantErr)
				}
			case tt.wantType != "":
				var e *Error
				if !errors.As(err, &e) || e.Type != tt.wantType || e.Cmd != tt.cmd {
					t.Fatalf("%s: err = %#v, want *Error of type %s", tt.cmd, err, tt.wantType)
				}
			case err != nil:
				t.Fatalf("%s: %v", tt.cmd, err)
			}
			err = p.Call("ping", nil, nil)
			if tt.dead != errors.Is(err, ErrStopped) {
				t.Fatalf("ping after %s: err = %v, want dead=%v", tt.cmd, err, tt.dead)
			}
			p.Stop()
			p.Stop() // idempotent
			if err := p.Call("ping", nil, nil); !errors.Is(err, ErrStopped) {
				t.Fatalf("ping after Stop: %v", err)
			}
			if tt.cmd == "crash" && !strings.Contains(p.stderr.summary(), "crashing on purpose") {
				t.Fatalf("stderr not captured: %q", p.stderr.summary())
			}
		})
	}
}

// fatalTB records Fatalf instead of failing the real test.
type fatalTB struct {
	testing.TB
	mu       sync.Mutex
	fatal    string
	cleanups []func()
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fatalTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

func TestStartPeerFailsLoudly(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
		want string
	}{
		{"module missing", []Option{withFake("fatal")}, "python module missing"},
		{"no such program", []Option{func(c *config) { c.command = []string{"/nonexistent/python3"} }}, "starting /nonexistent/python3"},
		{"exits at once", []Option{withFake("exit")}, "did not start"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fatalTB{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				StartPeer(f, "x@example.org", tt.opts...)
			}()
			<-done
			for i := len(f.cleanups) - 1; i >= 0; i-- {
				f.cleanups[i]()
			}
			if !strings.Contains(f.fatal, tt.want) {
				t.Fatalf("Fatalf message = %q, want it to contain %q", f.fatal, tt.want)
			}
		})
	}
}

// TestScriptHandlesEveryCommand checks that every command the Go side
// sends has a handler in the embedded driver.
func TestScriptHandlesEveryCommand(t *testing.T) {
	re := regexp.MustCompile(`(?:call|callRaw)\("([a-z_]+)"|cmd, args = "([a-z_]+)"`)
	var cmds []string
	for _, f := range []string{"peer.go", "pep.go"} {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			cmds = append(cmds, m[1]+m[2])
		}
	}
	if len(cmds) < 20 {
		t.Fatalf("found only %d commands in the Go sources: %v", len(cmds), cmds)
	}
	cmds = append(cmds, "shutdown")
	for _, c := range cmds {
		if !bytes.Contains(peerScript, []byte("async def cmd_"+c+"(self, req):")) {
			t.Errorf("peer.py has no handler for %q", c)
		}
	}
}

// FuzzReplyFraming checks the reply line framing: every newline-terminated
// line arrives once, without its line ending, and nothing else arrives.
func FuzzReplyFraming(f *testing.F) {
	f.Add([]byte("{\"id\":1}\n{\"id\":2}\r\n"))
	f.Add([]byte("no newline"))
	f.Add(append(bytes.Repeat([]byte("x"), 70000), '\n'))
	f.Fuzz(func(t *testing.T, in []byte) {
		p := &Peer{replies: make(chan []byte, 1)}
		go p.readReplies(bytes.NewReader(in))
		var got [][]byte
		for line := range p.replies {
			got = append(got, line)
		}
		segs := bytes.Split(in, []byte("\n"))
		segs = segs[:len(segs)-1] // the unterminated tail is dropped
		if len(got) != len(segs) {
			t.Fatalf("got %d lines, want %d", len(got), len(segs))
		}
		for i := range segs {
			if want := bytes.TrimRight(segs[i], "\r\n"); !bytes.Equal(got[i], want) {
				t.Fatalf("line %d = %q, want %q", i, got[i], want)
			}
		}
		if p.readErr == nil {
			t.Fatal("no read error at EOF")
		}
	})
}
