//go:build integration

package prosodytest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestIntegrationStart(t *testing.T) {
	start := time.Now()
	s := Start(t, Options{Users: []string{"alice", "bob"}, TLS: true, PasswordHash: "SHA-256"})
	t.Logf("started in %v", time.Since(start))
	if s.Password("alice") == "" || s.Password("bob") == "" || s.Password("alice") == s.Password("bob") {
		t.Fatal("passwords not set")
	}
	if got := s.JID("alice").String(); got != "alice@localhost" {
		t.Errorf("JID %s", got)
	}

	// The c2s port speaks XMPP and offers STARTTLS.
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(got, []byte("</stream:features>")) {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("reading features: %v (%q)", err, got)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Contains(got, []byte("urn:ietf:params:xml:ns:xmpp-tls")) {
		t.Errorf("no STARTTLS offered: %s", got)
	}

	// Direct TLS with the private CA, and not with the system roots.
	tc, err := tls.Dial("tcp", s.DirectTLSAddr, s.TLSConfig())
	if err != nil {
		t.Fatalf("direct TLS: %v", err)
	}
	tc.Close()
	_, err = tls.Dial("tcp", s.DirectTLSAddr, &tls.Config{ServerName: "localhost"})
	var uae x509.UnknownAuthorityError
	if !errors.As(err, &uae) {
		t.Errorf("system roots accepted the private CA: %v", err)
	}

	// Accounts are files in DataDir; more can be created while running.
	s.Register(t, "carol")
	if s.Password("carol") == "" {
		t.Error("no password for carol")
	}
	if _, err := os.Stat(filepath.Join(s.DataDir, "localhost", "accounts", "carol.dat")); err != nil {
		t.Error(err)
	}
	files, err := s.FilesContaining([]byte("stored_key"))
	if err != nil || len(files) != 3 || files[0] != filepath.Join("localhost", "accounts", "alice.dat") {
		t.Errorf("FilesContaining: %v %v", files, err)
	}
	if _, err := s.FilesContaining(nil); err == nil {
		t.Error("empty needle accepted")
	}
	if out, err := s.Ctl("about"); err != nil || !bytes.Contains(out, []byte("0.12")) {
		t.Errorf("prosodyctl about: %v %s", err, out)
	}
}

// Stop leaves no process behind.
func TestIntegrationStop(t *testing.T) {
	var s *Server
	t.Run("run", func(t *testing.T) {
		s = Start(t, Options{})
	})
	select {
	case <-s.proc.Exited():
	default:
		t.Fatal("prosody still running after cleanup")
	}
	if c, err := net.DialTimeout("tcp4", s.Addr, time.Second); err == nil {
		c.Close()
		t.Error("port still open after stop")
	}
}
