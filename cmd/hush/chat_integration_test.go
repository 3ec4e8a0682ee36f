//go:build integration

package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"hush.im/internal/prosodytest"
)

// syncBuffer is a bytes.Buffer safe for one writer and a polling reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// chatSession is a running "hush chat" driven through a stdin pipe.
type chatSession struct {
	in        *io.PipeWriter
	out, errs *syncBuffer
	done      chan int
}

func startChat(t *testing.T, a *hushAccount, with string) *chatSession {
	t.Helper()
	pr, pw := io.Pipe()
	c := &chatSession{in: pw, out: &syncBuffer{}, errs: &syncBuffer{}, done: make(chan int, 1)}
	go func() {
		c.done <- run([]string{"chat", "--store", a.dir, with}, pr, c.out, c.errs)
		pr.Close()
	}()
	t.Cleanup(func() { pw.Close() })
	c.waitFor(t, "stderr", c.errs, "hush: chatting with "+with)
	return c
}

// waitFor waits until buf holds want, or fails the test.
func (c *chatSession) waitFor(t *testing.T, name string, buf *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(buf.String(), want) {
		select {
		case code := <-c.done:
			c.done <- code
			if strings.Contains(buf.String(), want) {
				return
			}
			t.Fatalf("chat exited %d before %s held %q\nstdout:\n%s\nstderr:\n%s", code, name, want, c.out, c.errs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timeout waiting for %q on %s\nstdout:\n%s\nstderr:\n%s", want, name, c.out, c.errs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *chatSession) say(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(c.in, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

func (c *chatSession) exit(t *testing.T) int {
	t.Helper()
	select {
	case code := <-c.done:
		return code
	case <-time.After(30 * time.Second):
		t.Fatalf("chat did not exit\nstdout:\n%s\nstderr:\n%s", c.out, c.errs)
		return -1
	}
}

func TestIntegrationChat(t *testing.T) {
	srv := prosodytest.Start(t, prosodytest.Options{Users: []string{"alice", "bob"}})
	alice, bob := addAccount(t, srv, "alice"), addAccount(t, srv, "bob")
	aliceDev, bobDev := alice.ownDevice(t), bob.ownDevice(t)
	aliceJID, bobJID := srv.JID("alice").String(), srv.JID("bob").String()

	bc := startChat(t, bob, aliceJID)
	ac := startChat(t, alice, bobJID)
	hello := fmt.Sprintf("hello bob %d", time.Now().UnixNano())
	ac.say(t, hello)
	bc.waitFor(t, "bob's stdout", bc.out, fmt.Sprintf("%s [device %s, omemo2, blind]: %s\n", aliceJID, aliceDev, hello))
	ac.say(t, "")         // empty lines are not sent
	bc.say(t, "hi alice") // and back
	ac.waitFor(t, "alice's stdout", ac.out, fmt.Sprintf("%s [device %s, omemo2, blind]: hi alice\n", bobJID, bobDev))
	ac.say(t, "second line")
	bc.waitFor(t, "bob's stdout", bc.out, "]: second line\n")

	ac.say(t, chatQuit)
	if code := ac.exit(t); code != 0 {
		t.Fatalf("alice /quit: exit %d\n%s", code, ac.errs)
	}
	bc.in.Close() // end of input
	if code := bc.exit(t); code != 0 {
		t.Fatalf("bob at end of input: exit %d\n%s", code, bc.errs)
	}
	if n := strings.Count(bc.out.String(), "\n"); n != 2 {
		t.Errorf("bob printed %d lines, want 2:\n%s", n, bc.out)
	}
	if n := strings.Count(ac.out.String(), "\n"); n != 1 {
		t.Errorf("alice printed %d lines, want 1:\n%s", n, ac.out)
	}
	// The plaintext never reached the server's files.
	if files, err := srv.FilesContaining([]byte(hello)); err != nil || len(files) > 0 {
		t.Fatalf("plaintext stored by the server in %v (%v)", files, err)
	}
}
