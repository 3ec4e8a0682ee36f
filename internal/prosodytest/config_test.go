package prosodytest

import (
	"strings"
	"testing"
)

func TestRenderConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		d       configData
		want    []string
		notWant []string
	}{
		{
			name: "plain",
			d:    configData{Dir: "/tmp/x", DataDir: "/tmp/x/data", LogPath: "/tmp/x/p.log", Domain: "localhost", C2SPort: 5000, PasswordHash: "SHA-1", MaxArchiveResults: 50},
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
			d:    configData{Dir: "/tmp/y", DataDir: "/tmp/y/data", LogPath: "/tmp/y/p.log", Domain: "localhost", C2SPort: 5000, DirectTLSPort: 5001, TLS: true, PasswordHash: "SHA-256", MaxArchiveResults: 50, Root: true, Debug: true},
			want: []string{
				"run_as_root = true",
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
			d:    configData{Dir: `/tmp/a"b\c`, DataDir: "/d", LogPath: "/l", Domain: "localhost", C2SPort: 1, PasswordHash: "SHA-1", MaxArchiveResults: 1},
			want: []string{`pidfile = "/tmp/a\"b\\c/prosody.pid"`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := renderConfig(tc.d)
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
	if _, err := renderConfig(configData{Dir: "/tmp/\n", PasswordHash: "SHA-1"}); err == nil {
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
		if err := checkLocalpart(tc.in); (err == nil) != tc.ok {
			t.Errorf("checkLocalpart(%q) = %v", tc.in, err)
		}
	}
}

func TestWriteCerts(t *testing.T) {
	dir := t.TempDir()
	pool, err := writeCerts(dir, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	if pool == nil {
		t.Fatal("no CA pool")
	}
	s := &Server{CA: pool, Domain: "localhost"}
	if cfg := s.TLSConfig(); cfg.ServerName != "localhost" || cfg.RootCAs != pool {
		t.Errorf("TLSConfig %+v", cfg)
	}
	if (&Server{}).TLSConfig() != nil {
		t.Error("TLSConfig without TLS")
	}
}
