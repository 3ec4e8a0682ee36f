package prosody

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestLuaString(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:      `"plain"`,
		`a"b`:        `"a\"b"`,
		`back\slash`: `"back\\slash"`,
		"new\nline":  "",
		"del\x7f":    "",
	} {
		got, err := luaString(in)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("luaString(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestConfig(t *testing.T) {
	var b bytes.Buffer
	err := cfgTmpl.Execute(&b, map[string]any{"Dir": "/d", "DataDir": "/d/data", "LogPath": "/d/log", "Domain": Domain, "Port": 5999, "Root": false})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`c2s_ports = { 5999 }`, `interfaces = { "127.0.0.1" }`, `"pep"; "mam"`, `VirtualHost "localhost"`, `modules_disabled = { "s2s" }`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("configuration lacks %s:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "run_as_root") {
		t.Errorf("run_as_root without Root")
	}
}

func TestNotInstalled(t *testing.T) {
	dir := t.TempDir()
	_, err := Start(context.Background(), Options{Dir: dir, Prosody: filepath.Join(dir, "prosody"), Prosodyctl: filepath.Join(dir, "prosodyctl")})
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Start without prosody: %v, want ErrNotInstalled", err)
	}
}

func TestBadUser(t *testing.T) {
	_, err := Start(context.Background(), Options{Dir: t.TempDir(), Users: []string{"Not Valid"}, Prosody: "/bin/sh", Prosodyctl: "/bin/sh"})
	if err == nil || !strings.Contains(err.Error(), "user name") {
		t.Fatalf("Start with a bad user name: %v", err)
	}
}
