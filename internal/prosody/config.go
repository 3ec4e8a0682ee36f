package prosody

import (
	"bytes"
	"fmt"
	"strings"
	"text/template"
)

// Config is the configuration file Start (and the test harness
// internal/prosodytest) writes: a loopback-only Prosody 0.12 serving one
// virtual host, with the modules hush needs.
type Config struct {
	// Dir holds the pid file, groups.txt and, with TLS, certs/.
	Dir string
	// DataDir is data_path; LogPath the log file.
	DataDir, LogPath string
	// Domain is the virtual host.
	Domain string
	// C2SPort is the c2s port on 127.0.0.1; DirectTLSPort the XEP-0368
	// direct TLS port, or 0 for none.
	C2SPort, DirectTLSPort int
	// TLS loads mod_tls with the certificate Dir/certs/Domain.crt (and
	// .key), offering STARTTLS without requiring it.
	TLS bool
	// PasswordHash is mod_auth_internal_hashed's SCRAM hash, "SHA-1" or
	// "SHA-256"; "" leaves Prosody's default.
	PasswordHash string
	// MaxArchiveResults is max_archive_query_results (XEP-0313 page size);
	// 0 leaves Prosody's default.
	MaxArchiveResults int
	// Debug logs at debug level instead of info.
	Debug bool
	// Root adds run_as_root: Prosody and prosodyctl refuse to run as root
	// (or switch to the prosody user) without it.
	Root bool
}

// Modules are the modules the server loads (DESIGN.md, "Real peers"). The
// platform module (posix), c2s, presence, message, iq and offline are
// loaded by Prosody itself.
var Modules = []string{
	"roster", "saslauth", "disco", "carbons", "pep", "mam",
	"register", "smacks", "groups", "ping",
}

// luaString quotes s as a Lua string literal. It refuses control
// characters, which no path or name written here contains.
func luaString(s string) (string, error) {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("prosody: control character in %q", s)
		}
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`, nil
}

var cfgTmpl = template.Must(template.New("cfg").Funcs(template.FuncMap{
	"lua": luaString,
	"list": func(s []string) (string, error) {
		out := make([]string, len(s))
		for i, v := range s {
			q, err := luaString(v)
			if err != nil {
				return "", err
			}
			out[i] = q
		}
		return strings.Join(out, "; "), nil
	},
	"join": func(a, b string) string { return a + "/" + b },
}).Parse(`-- Written by hush.im/internal/prosody. Throwaway loopback server.
{{if .Root}}run_as_root = true
{{end}}pidfile = {{lua (join .Dir "prosody.pid")}}
data_path = {{lua .DataDir}}
{{if .TLS}}certificates = {{lua (join .Dir "certs")}}
{{end}}plugin_paths = { }
use_ipv6 = false
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { {{.C2SPort}} }
c2s_direct_tls_ports = { {{if .DirectTLSPort}}{{.DirectTLSPort}}{{end}} }
legacy_ssl_ports = { }
s2s_ports = { }
component_ports = { }
http_ports = { }
https_ports = { }

modules_enabled = { {{list .Modules}}{{if .TLS}}; "tls"{{end}} }
modules_disabled = { "s2s" }

-- Loopback only: plaintext c2s is allowed{{if .TLS}} next to STARTTLS{{end}}.
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_hashed"
{{if .PasswordHash}}password_hash = {{lua .PasswordHash}}
{{end}}storage = "internal"
allow_registration = false

groups_file = {{lua (join .Dir "groups.txt")}}
default_archive_policy = true
archive_expires_after = "never"
{{if .MaxArchiveResults}}max_archive_query_results = {{.MaxArchiveResults}}
{{end}}{{if .TLS}}
ssl = {
	certificate = {{lua (join (join .Dir "certs") (printf "%s.crt" .Domain))}};
	key = {{lua (join (join .Dir "certs") (printf "%s.key" .Domain))}};
}
{{end}}
log = {
	{ levels = { min = {{if .Debug}}"debug"{{else}}"info"{{end}} }, to = "file", filename = {{lua .LogPath}} };
}

VirtualHost {{lua .Domain}}
`))

// Render returns the configuration file for c.
func (c Config) Render() ([]byte, error) {
	var b bytes.Buffer
	err := cfgTmpl.Execute(&b, struct {
		Config
		Modules []string
	}{c, Modules})
	if err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
