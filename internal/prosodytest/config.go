package prosodytest

import (
	"bytes"
	"fmt"
	"strings"
	"text/template"
)

// configData fills the configuration template.
type configData struct {
	Dir, DataDir, LogPath string
	Domain                string
	C2SPort               int
	DirectTLSPort         int
	TLS                   bool
	PasswordHash          string
	MaxArchiveResults     int
	Debug                 bool
	// Root adds run_as_root: Prosody and prosodyctl refuse to run as root
	// (or switch to the prosody user) without it.
	Root bool
}

// modules are the modules the harness loads (DESIGN.md, "Real peers"). The
// platform module (posix), c2s, presence, message, iq and offline are
// loaded by Prosody itself.
var modules = []string{
	"roster", "saslauth", "disco", "carbons", "pep", "mam",
	"register", "smacks", "groups", "ping",
}

// luaString quotes s as a Lua string literal. It refuses control
// characters, which no path or name the harness writes contains.
func luaString(s string) (string, error) {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("prosodytest: control character in %q", s)
		}
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`, nil
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
}).Parse(`-- Written by hush.im/internal/prosodytest. Private test server.
{{if .Root}}run_as_root = true
{{end}}pidfile = {{lua (join .Dir "prosody.pid")}}
data_path = {{lua .DataDir}}
certificates = {{lua (join .Dir "certs")}}
plugin_paths = { }
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

-- Loopback only: plaintext is allowed next to STARTTLS.
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_hashed"
password_hash = {{lua .PasswordHash}}
storage = "internal"
allow_registration = false

groups_file = {{lua (join .Dir "groups.txt")}}
default_archive_policy = true
archive_expires_after = "never"
max_archive_query_results = {{.MaxArchiveResults}}
{{if .TLS}}
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

func renderConfig(d configData) ([]byte, error) {
	var b bytes.Buffer
	err := cfgTmpl.Execute(&b, struct {
		configData
		Modules []string
	}{d, modules})
	if err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
