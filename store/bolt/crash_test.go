package bolt

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"hush.im/omemo"
	"hush.im/store"
	"hush.im/store/internal/storetest"
	"mellium.im/xmpp/jid"
)

// The crash test: a child process (this test binary, see TestMain) runs
// two devices, alice and bob, each with its own store file, exchanging
// numbered messages through a "server" of append-only files, and the
// parent kills it with SIGKILL at random moments, then restarts it.
//
// Everything the child knows lives in files: the stores, the message
// queues (the server), the published device lists and bundles (PEP), and
// what the application has shown (delivered-*). A message is sent when its
// record is complete in the queue; it is delivered when its line is in
// delivered-*; the child shows a message idempotently (it skips inbox
// sequence numbers it has shown) and acknowledges it afterwards, a few at a
// time, so messages wait in the inbox across kills. Each side sends one to
// six messages per turn, several in one batch that is committed before
// they are sent. Every 37th message the sender drops its session and
// builds a new one from the peer's bundle, so that prekeys are consumed
// and replaced throughout (see roundOrder). Bob catches up in batch mode
// when more than one message waits, alice one message per transaction.
//
// At the end every message 1…n of each direction must have been shown
// exactly once, no prekey id may have been published with two keys, and
// both stores must open (which verifies them) with empty inboxes.

const (
	crashKills    = 50
	crashMessages = 1000 // per direction at least
	crashReset    = 37
	// crashDeadline bounds the whole test; a race build on a loaded 2-core
	// machine (CI runs every package at once) has taken 41 s.
	crashDeadline = 150 * time.Second
)

func TestCrash(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"stores", "pep"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	target := crashMessages
	start := time.Now()
	kills, runs := 0, 0
	var progressLines atomic.Int64
	for {
		if time.Since(start) > crashDeadline {
			var progress []string
			for _, name := range []string{"alice", "bob"} {
				q, err := openQueue(filepath.Join(dir, "queue-"+name))
				if err == nil {
					progress = append(progress, fmt.Sprintf("%s sent %d", name, len(q.records)))
				}
			}
			t.Fatalf("out of time after %d runs, %d kills: %s of %d", runs, kills, strings.Join(progress, ", "), target)
		}
		runs++
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=crash", "HUSH_CRASH_DIR="+dir, "HUSH_CRASH_TARGET="+strconv.Itoa(target))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The child prints "ready" when it has opened the stores, then a
		// line for every message it sent. One kill in five falls at a
		// random moment of the start-up; the others after a random number
		// of messages and a random delay, so that the kills spread over
		// the whole exchange however loaded the machine is.
		progress := make(chan struct{}, 1)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				select {
				case progress <- struct{}{}:
				default:
				}
				progressLines.Add(1)
			}
		}()
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		var delay <-chan time.Time
		startupKill := r.IntN(5) == 0
		if startupKill {
			delay = time.After(time.Duration(r.IntN(40)) * time.Millisecond)
		}
		killAt := progressLines.Load() + int64(5+r.IntN(60))
		killed := false
	wait:
		for {
			select {
			case err = <-exited:
				break wait
			case <-progress:
				if !startupKill && delay == nil && progressLines.Load() >= killAt {
					delay = time.After(time.Duration(r.IntN(20)) * time.Millisecond)
				}
			case <-delay:
				cmd.Process.Signal(syscall.SIGKILL)
				err = <-exited
				var ee *exec.ExitError
				killed = errors.As(err, &ee) && !ee.Exited()
				break wait
			}
		}
		if killed {
			kills++
			continue
		}
		if err != nil {
			for _, name := range []string{"alice", "bob"} {
				tr, _ := os.ReadFile(filepath.Join(dir, "trace-"+name))
				lines := strings.Split(string(tr), "\n")
				t.Logf("trace of %s:\n%s", name, strings.Join(lines[max(0, len(lines)-60):], "\n"))
			}
			t.Fatalf("run %d: child failed: %v\n%s", runs, err, stderr.String())
		}
		if kills >= crashKills {
			break
		}
		target += 100 // finished too early: go on until enough kills
	}
	t.Logf("%d messages each way, %d runs, %d kills, %v", target, runs, kills, time.Since(start).Round(time.Millisecond))

	for _, name := range []string{"alice", "bob"} {
		seen := map[int]int{}
		f, err := os.ReadFile(filepath.Join(dir, "delivered-"+name))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSuffix(string(f), "\n"), "\n") {
			var seq, n int
			if _, err := fmt.Sscanf(line, "%d %d", &seq, &n); err != nil {
				t.Fatalf("delivered-%s: %q", name, line)
			}
			seen[n]++
		}
		for n := 1; n <= target; n++ {
			if seen[n] != 1 {
				t.Errorf("%s: message %d shown %d times", name, n, seen[n])
			}
		}
		if len(seen) != target {
			t.Errorf("%s: %d different messages shown, want %d", name, len(seen), target)
		}
		keys := map[string]string{}
		pk, err := os.ReadFile(filepath.Join(dir, "prekeys-"+name))
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(strings.TrimSuffix(string(pk), "\n"), "\n") {
			// Every line must be a whole record: a garbled one would
			// pass for a prekey id published with another key (or hide
			// one that was).
			id, key, _ := strings.Cut(line, " ")
			if n, err := strconv.ParseUint(id, 10, 32); err != nil || n == 0 || n > 1<<31-1 || len(key) != 2*omemo.PublicKeySize || strings.Trim(key, "0123456789abcdef") != "" {
				t.Fatalf("%s: prekeys-%s line %d is not \"id key\": %q", name, name, i+1, line)
			}
			if k, ok := keys[id]; ok && k != key {
				t.Fatalf("%s: prekey id %s published with two keys: %s, then %s on line %d", name, id, k, key, i+1)
			}
			keys[id] = key
		}
		if len(keys) <= omemo.MinPreKeys {
			t.Errorf("%s: only %d prekeys ever published: resets did not consume any", name, len(keys))
		}
		j := jid.MustParse(name + "@example.org")
		s, err := Open(Path(filepath.Join(dir, "stores"), j), j, nil)
		if err != nil {
			t.Fatal(err)
		}
		if inbox, err := storetest.Inbox(s); err != nil || len(inbox) != 0 {
			t.Errorf("%s: %d messages left in the inbox (%v)", name, len(inbox), err)
		}
		s.Close()
	}
}

// crashChild is the child process of TestCrash.
func crashChild() int {
	dir := os.Getenv("HUSH_CRASH_DIR")
	target, err := strconv.Atoi(os.Getenv("HUSH_CRASH_TARGET"))
	if err == nil {
		err = runCrashChild(dir, target)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 1
	}
	return 0
}

// side is one device of the crash test.
type side struct {
	name      string
	dir       string
	st        *Store
	dev       *storetest.Device
	peer      *side
	out       *queue // messages this side sent
	inPos     int    // records of peer.out already handled
	sent      int
	shown     uint64 // highest inbox seq shown
	delivered *os.File
	preKeys   *os.File // prekeys-name, see logPreKeys
	traceFile *os.File
	batch     bool
}

func runCrashChild(dir string, target int) error {
	pep := filePEP(filepath.Join(dir, "pep"))
	var sides []*side
	for _, name := range []string{"alice", "bob"} {
		j := jid.MustParse(name + "@example.org")
		st, err := Open(Path(filepath.Join(dir, "stores"), j), j, &Options{LockTimeout: 5 * time.Second})
		if err != nil {
			return err
		}
		defer st.Close()
		if raceBuild {
			// The race detector slows the child down several times. A
			// SIGKILL leaves the page cache to the next process, so
			// syncing cannot change this test's outcome: skip it here to
			// stay within the time limit; the normal build syncs.
			st.db.NoSync = true
		}
		dev, err := storetest.Join(pep, j.String(), st, nil)
		if err != nil {
			return err
		}
		s := &side{name: name, dir: dir, st: st, dev: dev, batch: name == "bob"}
		if s.preKeys, _, err = openLog(filepath.Join(dir, "prekeys-"+name)); err != nil {
			return err
		}
		if err := s.logPreKeys(); err != nil {
			return err
		}
		if s.out, err = openQueue(filepath.Join(dir, "queue-"+name)); err != nil {
			return err
		}
		s.sent = len(s.out.records)
		if s.delivered, s.shown, err = openDelivered(filepath.Join(dir, "delivered-"+name)); err != nil {
			return err
		}
		sides = append(sides, s)
	}
	sides[0].peer, sides[1].peer = sides[1], sides[0]
	for _, s := range sides {
		s.trace("start: sent %d, shown %d", s.sent, s.shown)
	}
	fmt.Println("ready")
	for _, s := range sides {
		// Fetch the peer's device list and bundle unless the store has
		// them (the first run, or a kill right after a reset).
		need, noList, err := s.dev.M.NeedBundles(s.peer.dev.JID)
		if err != nil {
			return err
		}
		if len(need) > 0 || len(noList) > 0 {
			if err := s.dev.Sync(s.peer.dev.JID); err != nil {
				return err
			}
		}
	}
	for {
		done := true
		order, err := roundOrder(sides)
		if err != nil {
			return err
		}
		for _, s := range order {
			if err := s.receive(); err != nil {
				return fmt.Errorf("%s: receive: %w", s.name, err)
			}
			if err := s.deliver(s.inPos == s.peer.sent); err != nil {
				return fmt.Errorf("%s: deliver: %w", s.name, err)
			}
			if s.sent < target {
				if err := s.send(min(target-s.sent, 1+rand.IntN(6))); err != nil {
					return fmt.Errorf("%s: send %d: %w", s.name, s.sent+1, err)
				}
				done = false
			}
		}
		if done && sides[0].inPos == sides[1].sent && sides[1].inPos == sides[0].sent {
			return nil
		}
	}
}

// roundOrder lets a side that replaced its session with the peer act
// first, so that its key exchange reaches the peer before the peer sends
// on the session it replaced: a side without a session, or with a key
// exchange it has not seen answered. Replacing a session (every
// crashReset messages) loses what the peer sends on the old one meanwhile
// — that is what a reset means (XEP-0384 §6) — and a kill can fall
// between ResetSession, Encrypt and sending, which are three steps: a real
// client announces a replaced session before anything else, as this order
// does.
func roundOrder(sides []*side) ([]*side, error) {
	var announce [2]bool
	for i, s := range sides {
		err := s.st.View(func(tx omemo.Tx) error {
			rec, err := tx.Session(s.peer.dev.M.Address())
			if errors.Is(err, omemo.ErrNotFound) {
				announce[i] = true
				return nil
			}
			if err == nil {
				announce[i] = rec.Initiator() && !rec.Confirmed()
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	if !announce[0] && announce[1] {
		return []*side{sides[1], sides[0]}, nil
	}
	return sides, nil
}

func (s *side) stanzaID(n int) store.MessageID {
	return storetest.StanzaID(s.dev.JID, fmt.Sprint(s.peer.name, "-", n))
}

// receive decrypts what the peer sent since last time, skipping what the
// seen index knows; several messages are decrypted in one batch on bob's
// side.
func (s *side) receive() error {
	recs, err := s.peer.out.reread()
	if err != nil {
		return err
	}
	if s.inPos >= len(recs) {
		return nil
	}
	var b *Batch
	if s.batch && len(recs)-s.inPos > 1 {
		if b, err = s.st.BeginBatch(); err != nil {
			return err
		}
		defer b.Rollback()
		// What the batch changes must not leave the process before it is
		// committed: not even the bundle.
		s.dev.HoldBundle = true
		defer func() { s.dev.HoldBundle = false }()
	}
	for i := s.inPos; i < len(recs); i++ {
		id := s.stanzaID(i + 1)
		seen, err := storetest.Seen(s.st, id)
		if err != nil {
			return err
		}
		if seen {
			continue
		}
		var e omemo.Encrypted
		if err := xml.Unmarshal(recs[i], &e); err != nil {
			return err
		}
		k := e.Find(s.dev.JID, s.dev.M.DeviceID())
		got, _, err := s.dev.Receive(s.peer.dev.JID, &e, id)
		if err != nil {
			s.trace("recv %d kex=%v batch=%v: %v", i+1, k != nil && k.KEX, b != nil, err)
			return fmt.Errorf("message %d: %w", i+1, err)
		}
		s.trace("recv %d kex=%v new=%v batch=%v", i+1, got.KeyExchange, got.NewSession, b != nil)
		if want := fmt.Sprintf("<envelope>%s %d</envelope>", s.peer.name, i+1); string(got.Envelope) != want {
			return fmt.Errorf("message %d decrypted to %q", i+1, got.Envelope)
		}
		if got.BundleChanged && b == nil {
			if err := s.logPreKeys(); err != nil {
				return err
			}
		}
	}
	if b != nil {
		if err := b.Commit(); err != nil {
			return err
		}
		s.trace("batch committed")
		// Only now is the batch durable: publish what it changed.
		if err := s.dev.Publish(); err != nil {
			return err
		}
		if err := s.logPreKeys(); err != nil {
			return err
		}
	}
	s.inPos = len(recs)
	return nil
}

// deliver shows the inbox (idempotently) and acknowledges it, when it
// holds several messages or all when caught up.
func (s *side) deliver(all bool) error {
	msgs, err := storetest.Inbox(s.st)
	if err != nil || len(msgs) == 0 || len(msgs) < 8 && !all {
		return err
	}
	var seqs []uint64
	for _, m := range msgs {
		if m.Seq > s.shown {
			var n int
			if _, err := fmt.Sscanf(string(m.Payload), "<envelope>"+s.peer.name+" %d</envelope>", &n); err != nil {
				return fmt.Errorf("inbox message %d: %q", m.Seq, m.Payload)
			}
			if _, err := fmt.Fprintf(s.delivered, "%d %d\n", m.Seq, n); err != nil {
				return err
			}
			s.shown = m.Seq
		}
		seqs = append(seqs, m.Seq)
	}
	return storetest.Ack(s.st, seqs...)
}

// send encrypts the next k messages, more than one in a batch, and
// sends them once they are committed. The session with the peer is
// replaced before every crashReset-th message.
func (s *side) send(k int) error {
	var b *Batch
	if k > 1 {
		var err error
		if b, err = s.st.BeginBatch(); err != nil {
			return err
		}
		defer b.Rollback()
	}
	var out [][]byte
	for n := s.sent + 1; n <= s.sent+k; n++ {
		if n%crashReset == 0 {
			peer := s.peer.dev.M.Address()
			err := s.dev.M.ResetSession(peer)
			s.trace("reset before %d: %v", n, err)
			if err != nil && !errors.Is(err, omemo.ErrNotFound) {
				return err
			}
			if err := s.dev.Sync(s.peer.dev.JID); err != nil {
				return err
			}
		}
		e, rep, err := s.dev.M.Encrypt(fmt.Appendf(nil, "<envelope>%s %d</envelope>", s.name, n), s.peer.dev.JID)
		if err != nil {
			return err
		}
		for _, d := range rep.Devices {
			s.trace("encrypted %d kex=%v new=%v batch=%v", n, d.KEX, d.NewSession, b != nil)
		}
		x, err := xml.Marshal(e)
		if err != nil {
			return err
		}
		out = append(out, x)
	}
	if b != nil {
		if err := b.Commit(); err != nil {
			return err
		}
	}
	// Committed: now the stanzas may leave.
	for _, x := range out {
		if err := s.out.append(x); err != nil {
			return err
		}
		s.sent++
		s.trace("sent %d", s.sent)
		fmt.Println("sent", s.name, s.sent)
	}
	return nil
}

// trace appends a line to trace-name (for diagnosing failures).
func (s *side) trace(format string, args ...any) {
	if s.traceFile == nil {
		var err error
		if s.traceFile, err = os.OpenFile(filepath.Join(s.dir, "trace-"+s.name), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600); err != nil {
			return
		}
	}
	fmt.Fprintf(s.traceFile, format+"\n", args...)
}

// logPreKeys appends the prekeys of the current bundle to prekeys-name,
// one "id key" line each, in one write. A SIGKILL can tear that write: a
// write(2) of more than one page is interrupted between pages by a fatal
// signal, so the file may end in half a line, which the next run's
// openLog drops before it appends. (Before, the log was opened with
// O_APPEND and never repaired: the torn line and the next run's first
// line merged into one, "23 1f0c…" ‖ "5 9ab3…", which read as prekey 23
// published with another key.)
func (s *side) logPreKeys() error {
	b, err := s.dev.M.Bundle()
	if err != nil {
		return err
	}
	var w bytes.Buffer
	for _, pk := range b.PreKeys {
		fmt.Fprintf(&w, "%d %s\n", pk.ID, hex.EncodeToString(pk.Key))
	}
	_, err = s.preKeys.Write(w.Bytes())
	return err
}

// openLog opens a log of lines that the child appends to, drops a torn
// last line (the writer was killed in the middle of a write), and returns
// it positioned at its end, with its complete lines.
func openLog(path string) (*os.File, []byte, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	keep := bytes.LastIndexByte(data, '\n') + 1
	if err := f.Truncate(int64(keep)); err != nil {
		f.Close()
		return nil, nil, err
	}
	if _, err := f.Seek(int64(keep), io.SeekStart); err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, data[:keep], nil
}

// openDelivered opens the delivered log (openLog) and returns the highest
// sequence number shown.
func openDelivered(path string) (*os.File, uint64, error) {
	f, data, err := openLog(path)
	if err != nil {
		return nil, 0, err
	}
	var shown uint64
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		seq, _, _ := strings.Cut(sc.Text(), " ")
		v, err := strconv.ParseUint(seq, 10, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("delivered log: %q", sc.Text())
		}
		shown = max(shown, v)
	}
	return f, shown, nil
}

// queue is an append-only file of records: uint32 length, payload,
// CRC-32 of the payload. A torn last record (the writer was killed) is
// cut off when its writer opens the queue.
type queue struct {
	path    string
	f       *os.File
	records [][]byte
	size    int64
}

func openQueue(path string) (*queue, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	q := &queue{path: path, f: f}
	if _, err := q.reread(); err != nil {
		return nil, err
	}
	if err := f.Truncate(q.size); err != nil {
		return nil, err
	}
	return q, nil
}

// reread reads the complete records, the new ones from the file.
func (q *queue) reread() ([][]byte, error) {
	f, err := os.Open(q.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(q.size, io.SeekStart); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	for len(data) >= 8 {
		n := int(binary.BigEndian.Uint32(data))
		if len(data) < 8+n {
			break
		}
		payload := data[4 : 4+n]
		if binary.BigEndian.Uint32(data[4+n:]) != crc32.ChecksumIEEE(payload) {
			break
		}
		q.records = append(q.records, slices.Clone(payload))
		q.size += int64(8 + n)
		data = data[8+n:]
	}
	return q.records, nil
}

func (q *queue) append(payload []byte) error {
	rec := binary.BigEndian.AppendUint32(nil, uint32(len(payload)))
	rec = append(rec, payload...)
	rec = binary.BigEndian.AppendUint32(rec, crc32.ChecksumIEEE(payload))
	if _, err := q.f.WriteAt(rec, q.size); err != nil {
		return err
	}
	q.size += int64(len(rec))
	q.records = append(q.records, payload)
	return nil
}

// filePEP is a storetest.Directory in files, each replaced atomically.
type filePEP string

func (p filePEP) read(name string, v any) (bool, error) {
	b, err := os.ReadFile(filepath.Join(string(p), name))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return true, xml.Unmarshal(b, v)
}

func (p filePEP) write(name string, v any) error {
	b, err := xml.Marshal(v)
	if err != nil {
		return err
	}
	tmp := filepath.Join(string(p), name+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(string(p), name))
}

func (p filePEP) DeviceList(j jid.JID) (*omemo.DeviceList, error) {
	l := new(omemo.DeviceList)
	ok, err := p.read("list-"+j.String(), l)
	if !ok {
		return nil, err
	}
	return l, err
}

func (p filePEP) SetDeviceList(j jid.JID, l *omemo.DeviceList) error {
	return p.write("list-"+j.String(), l)
}

func (p filePEP) Bundle(a omemo.Address) (*omemo.Bundle, error) {
	b := new(omemo.Bundle)
	ok, err := p.read("bundle-"+a.String(), b)
	if !ok {
		return nil, err
	}
	return b, err
}

func (p filePEP) SetBundle(a omemo.Address, b *omemo.Bundle) error {
	return p.write("bundle-"+a.String(), b)
}
