//go:build integration

package prosody

import (
	"context"
	"net"
	"os"
	"testing"
)

func TestIntegrationStartStop(t *testing.T) {
	s, err := Start(context.Background(), Options{Dir: t.TempDir(), Users: []string{"alice", "bob"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Password("alice") == "" || s.Password("alice") == s.Password("bob") || s.JID("bob") != "bob@localhost" {
		t.Errorf("passwords %q %q, JID %q", s.Password("alice"), s.Password("bob"), s.JID("bob"))
	}
	c, err := net.Dial("tcp4", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("tcp4", s.Addr); err == nil {
		t.Errorf("%s still accepts connections after Stop", s.Addr)
	}
	if _, err := os.Stat(s.LogPath); err != nil {
		t.Errorf("no log: %v", err)
	}
}
