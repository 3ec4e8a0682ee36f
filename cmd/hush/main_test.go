package main

import (
	"bytes"
	"strings"
	"testing"
)

// runHush runs the command in-process and returns its exit code and output.
func runHush(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsage(t *testing.T) {
	code, _, stderr := runHush(t, "")
	if code != exitUsage || !strings.Contains(stderr, "hush: error: no command given") {
		t.Errorf("no args: code %d, stderr %q", code, stderr)
	}
	code, _, stderr = runHush(t, "", "frobnicate")
	if code != exitUsage || !strings.Contains(stderr, `unknown command "frobnicate"`) || !strings.Contains(stderr, "hush: hint:") {
		t.Errorf("unknown command: code %d, stderr %q", code, stderr)
	}
	code, stdout, _ := runHush(t, "", "help")
	if code != 0 || !strings.Contains(stdout, "Usage:") {
		t.Errorf("help: code %d, stdout %q", code, stdout)
	}
}

func TestDemo(t *testing.T) {
	code, stdout, stderr := runHush(t, "", "demo")
	if code != 0 {
		t.Fatalf("demo exit %d, stderr:\n%s", code, stderr)
	}
	for _, want := range []string{
		"[encrypted] <body xmlns=\"jabber:client\">Meet me at the lighthouse",
		"<encrypted xmlns=\"urn:xmpp:omemo:2\">",
		"alice reads: \"I'll be there.\"",
		"refused: alice's first message delivered to bob's phone a second time",
		"refused: a copy whose 'from' the server rewrote",
		"refused: a new message from bob with its ciphertext changed",
		"the genuine message still decrypts afterwards",
		"ignored: a plaintext <body/>",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	// The server's view must not hold the plaintext.
	from, to := strings.Index(stdout, "what the server sees"), strings.Index(stdout, "== bob's devices")
	if from < 0 || to < from {
		t.Fatalf("demo output lacks the server's view:\n%s", stdout)
	}
	if wire := stdout[from:to]; strings.Contains(wire, "lighthouse") || strings.Contains(wire, "<body") {
		t.Errorf("the server's view holds the plaintext:\n%s", wire)
	}
	for _, bad := range []string{"NOT REFUSED"} {
		if strings.Contains(stdout, bad) {
			t.Errorf("demo output contains %q:\n%s", bad, stdout)
		}
	}
	if code, _, _ := runHush(t, "", "demo", "extra"); code != exitUsage {
		t.Errorf("demo with an argument: exit %d, want %d", code, exitUsage)
	}
}
