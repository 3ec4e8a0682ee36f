package prosody

import (
	"context"
	"errors"
	"os"
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
	for _, tc := range []struct {
		name    string
		c       Config
		want    []string
		notWant []string
	}{
		{
			name:    "demo",
			c:       Config{Dir: "/d", DataDir: "/d/data", LogPath: "/d/log", Domain: Domain, C2SPort: 5999},
			want:    []string{`c2s_ports = { 5999 }`, `interfaces = { "127.0.0.1" }`, `"pep"; "mam"`, `"groups"; "ping" }`, `VirtualHost "localhost"`, `modules_disabled = { "s2s" }`, `c2s_direct_tls_ports = {  }`},
			notWant: []string{"run_as_root", "password_hash", "max_archive_query_results", "certificates", `"tls"`, "ssl =", `"debug"`},
		},
		{
			name: "plain",
			c:    Config{Dir: "/tmp/x", DataDir: "/tmp/x/data", LogPath: "/tmp/x/p.log", Domain: "localhost", C2SPort: 5000, PasswordHash: "SHA-1", MaxArchiveResults: 50},
			want: []string{
				`data_path = "/tmp/x/data"`,
				`c2s_ports = { 5000 }`,
				`c2s_direct_tls_ports = {  }`,
				`"pep"; "mam"`,
				`"groups"`,
				`c2s_require_encryption = false`,
				`allow_unencrypted_plain_auth = true`,
				`password_hash = "SHA-1"`,
				`groups_file = "/tmp/x/groups.txt"`,
				`max_archive_query_results = 50`,
				`VirtualHost "localhost"`,
			},
			notWant: []string{"run_as_root", `"tls"`, "ssl =", "limits", `"debug"`},
		},
		{
			name: "tls as root",
			c:    Config{Dir: "/tmp/y", DataDir: "/tmp/y/data", LogPath: "/tmp/y/p.log", Domain: "localhost", C2SPort: 5000, DirectTLSPort: 5001, TLS: true, PasswordHash: "SHA-256", MaxArchiveResults: 50, Root: true, Debug: true},
			want: []string{
				"run_as_root = true",
				`certificates = "/tmp/y/certs"`,
				`c2s_direct_tls_ports = { 5001 }`,
				`; "tls" }`,
				`certificate = "/tmp/y/certs/localhost.crt"`,
				`key = "/tmp/y/certs/localhost.key"`,
				`password_hash = "SHA-256"`,
				`min = "debug"`,
			},
		},
		{
			name: "quotes are escaped",
			c:    Config{Dir: `/tmp/a"b\c`, DataDir: "/d", LogPath: "/l", Domain: "localhost", C2SPort: 1, PasswordHash: "SHA-1", MaxArchiveResults: 1},
			want: []string{`pidfile = "/tmp/a\"b\\c/prosody.pid"`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.c.Render()
			if err != nil {
				t.Fatal(err)
			}
			cfg := string(b)
			for _, w := range tc.want {
				if !strings.Contains(cfg, w) {
					t.Errorf("config lacks %q:\n%s", w, cfg)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(cfg, w) {
					t.Errorf("config has %q", w)
				}
			}
		})
	}
	if _, err := (Config{Dir: "/tmp/\n", PasswordHash: "SHA-1"}).Render(); err == nil {
		t.Error("control character accepted")
	}
}

func TestCheckLocalpart(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"alice", true}, {"bob-2.x_y", true}, {"", false}, {"Alice", false}, {"a b", false}, {"a@b", false}, {"-a", false}, {strings.Repeat("a", 65), false},
	} {
		if err := CheckLocalpart(tc.in); (err == nil) != tc.ok {
			t.Errorf("CheckLocalpart(%q) = %v", tc.in, err)
		}
	}
}

func TestFilesContaining(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a", "x.dat"), []byte("has secret inside"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "y.dat"), []byte("nothing"), 0o600); err != nil {
		t.Fatal(err)
	}
	hits, err := FilesContaining(dir, []byte("secret"))
	if err != nil || len(hits) != 1 || hits[0] != filepath.Join("a", "x.dat") {
		t.Errorf("FilesContaining = %v, %v", hits, err)
	}
	if _, err := FilesContaining(dir, nil); err == nil {
		t.Error("empty needle accepted")
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
