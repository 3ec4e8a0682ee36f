//go:build interop

package ox

// Interop tests against GnuPG 2.2 and go-sendxmpp's OX format. They fail,
// never skip, when gpg or go-sendxmpp is missing. Run with
//
//	go test -tags interop ./ox/

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"hush.im/sce"
)

// gnupg is a GnuPG home of its own with a short-lived agent.
type gnupg struct {
	t    testing.TB
	home string
}

func newGnuPG(t testing.TB) *gnupg {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Fatalf("gpg is required for the interop tests: %v", err)
	}
	home, err := os.MkdirTemp("", "hush-gpg-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	g := &gnupg{t: t, home: home}
	t.Cleanup(func() {
		cmd := exec.Command("gpgconf", "--kill", "all")
		cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
		cmd.Run()
		os.RemoveAll(home)
	})
	return g
}

// run runs gpg in batch mode with an empty passphrase and returns stdout
// and the status lines (--status-fd).
func (g *gnupg) run(stdin []byte, args ...string) (stdout []byte, status string) {
	g.t.Helper()
	stdout, status, err := g.try(stdin, args...)
	if err != nil {
		g.t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, status)
	}
	return stdout, status
}

func (g *gnupg) try(stdin []byte, args ...string) ([]byte, string, error) {
	base := []string{"--batch", "--no-tty", "--quiet", "--pinentry-mode", "loopback", "--passphrase", "",
		"--trust-model", "always", "--status-fd", "2"}
	// A passphrase given by the caller replaces the empty one.
	for i, a := range args {
		if a == "--passphrase" && i+1 < len(args) {
			base = slicesDelete(base, "--passphrase", "")
		}
	}
	cmd := exec.Command("gpg", append(base, args...)...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+g.home)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.Bytes(), errb.String(), err
}

func slicesDelete(s []string, a, b string) []string {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == a && s[i+1] == b {
			return append(s[:i:i], s[i+2:]...)
		}
	}
	return s
}

// genKey makes a key in gpg: Ed25519 + Curve25519 or RSA-3072 with an
// encryption subkey, and returns its public key as hush parses it.
func (g *gnupg) genKey(uid string, rsa bool) *Key {
	g.t.Helper()
	if rsa {
		g.run(nil, "--quick-gen-key", uid, "rsa3072", "sign", "never")
		g.run(nil, "--quick-add-key", g.fpr(uid), "rsa3072", "encr", "never")
	} else {
		g.run(nil, "--quick-gen-key", uid, "future-default", "default", "never")
	}
	pub, _ := g.run(nil, "--export", uid)
	keys, err := ParseKeys(pub)
	if err != nil || len(keys) != 1 {
		g.t.Fatalf("gpg's key for %s: %v", uid, err)
	}
	return keys[0]
}

func (g *gnupg) fpr(uid string) string {
	out, _ := g.run(nil, "--with-colons", "--list-keys", uid)
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" {
			return f[9]
		}
	}
	g.t.Fatalf("no fingerprint for %s", uid)
	return ""
}

func (g *gnupg) importKey(k *Key, secret bool) {
	g.t.Helper()
	var b []byte
	var err error
	if secret {
		b, err = k.ArmorSecret()
	} else {
		b, err = k.ArmorPublic()
	}
	if err != nil {
		g.t.Fatal(err)
	}
	g.run(b, "--import")
}

func openpgpOf(t testing.TB, st *sce.Stanza) []byte {
	for _, c := range st.Children {
		if c.Name == openpgpName {
			p, err := ParseOpenPGP(c)
			if err != nil {
				t.Fatal(err)
			}
			return p.Message
		}
	}
	t.Fatal("no <openpgp/>")
	return nil
}

// sendxmppStanza wraps a binary OpenPGP message as go-sendxmpp sends it.
func sendxmppStanza(t testing.TB, msg []byte, from string) *sce.Stanza {
	s := "<message xmlns='jabber:client' to='alice@example.org' from='" + from + "' id='gsx1'>" +
		"<store xmlns='urn:xmpp:hints'/><encryption xmlns='urn:xmpp:eme:0' namespace='urn:xmpp:openpgp:0'/>" +
		"<openpgp xmlns='urn:xmpp:openpgp:0'>" + base64.StdEncoding.EncodeToString(msg) + "</openpgp>" +
		"<body>This message is encrypted (XEP-0373: OpenPGP for XMPP).</body></message>"
	return mustStanza(t, s)
}

// sendxmppContent is a <signcrypt/> as go-sendxmpp 0.5.6 writes it: to,
// time in whole seconds UTC, rpad, payload with a jabber:client body;
// single-quoted attributes (etree).
func sendxmppContent(to, text string, at time.Time) []byte {
	return []byte("<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='" + to + "'/><time stamp='" +
		at.UTC().Format("2006-01-02T15:04:05Z") + "'/><rpad>Zq3vLk9PpW2xRt7</rpad><payload><body xmlns='jabber:client'>" +
		text + "</body></payload></signcrypt>")
}

var interopAlgs = []struct {
	name string
	rsa  bool
	alg  Algorithm
}{{"curve25519", false, Curve25519}, {"rsa3072", true, RSA3072}}

// TestInteropGnuPGReadsHush: hush makes keys and <signcrypt/> messages, gpg
// imports the keys, decrypts the messages and verifies their signatures.
func TestInteropGnuPGReadsHush(t *testing.T) {
	for _, a := range interopAlgs {
		t.Run(a.name, func(t *testing.T) {
			g := newGnuPG(t)
			bob := g.genKey("xmpp:bob@example.org", a.rsa)
			alice, err := GenerateKey(mustJID("alice@example.org"), a.alg)
			if err != nil {
				t.Fatal(err)
			}
			g.importKey(alice, false)
			sealed, err := Seal(mustStanza(t, chat), SealOptions{Signer: alice, Recipients: []*Key{bob}})
			if err != nil {
				t.Fatal(err)
			}
			plain, status := g.run(openpgpOf(t, sealed.Stanza), "--decrypt")
			for _, want := range []string{"[GNUPG:] DECRYPTION_OKAY", "[GNUPG:] GOODSIG", "xmpp:alice@example.org", "[GNUPG:] VALIDSIG " + alice.Fingerprint().String()} {
				if !strings.Contains(status, want) {
					t.Errorf("gpg status lacks %q:\n%s", want, status)
				}
			}
			env, err := sce.ParseKind(plain, sce.KindSigncrypt)
			if err != nil {
				t.Fatalf("gpg's plaintext: %v\n%s", err, plain)
			}
			if len(env.Content) != 2 || env.Content[0].Text() != "Meet me at the lighthouse." || env.To[0].String() != "bob@example.org" {
				t.Errorf("content %s", plain)
			}
			// gpg also imports hush's secret key and decrypts with it what
			// hush encrypted to the signer herself.
			g.importKey(alice, true)
			g.run([]byte("x"), "--delete-secret-keys", "--yes", g.fpr("xmpp:bob@example.org"))
			if _, status := g.run(openpgpOf(t, sealed.Stanza), "--decrypt"); !strings.Contains(status, "DECRYPTION_OKAY") {
				t.Errorf("gpg with hush's secret key:\n%s", status)
			}
		})
	}
}

// TestInteropHushReadsGnuPG: gpg makes keys and signs and encrypts
// <signcrypt/> elements (go-sendxmpp's format, and with gpg's default
// compression), hush opens them.
func TestInteropHushReadsGnuPG(t *testing.T) {
	for _, a := range interopAlgs {
		t.Run(a.name, func(t *testing.T) {
			g := newGnuPG(t)
			bob := g.genKey("xmpp:bob@example.org", a.rsa)
			alice, err := GenerateKey(mustJID("alice@example.org"), a.alg)
			if err != nil {
				t.Fatal(err)
			}
			g.importKey(alice, false)
			for _, extra := range [][]string{{"--compress-algo", "none"}, nil} {
				content := sendxmppContent("alice@example.org", "Hi Alice, from gpg", time.Now())
				args := append([]string{"-u", "xmpp:bob@example.org", "-r", "xmpp:alice@example.org", "-r", "xmpp:bob@example.org", "--sign", "--encrypt"}, extra...)
				msg, _ := g.run(content, args...)
				o, err := Open(sendxmppStanza(t, msg, "bob@example.org/gpg"), OpenOptions{Keys: []*Key{alice}, SenderKeys: []*Key{bob}})
				if err != nil {
					t.Fatalf("%v: %v", extra, err)
				}
				if got, _ := body(o.Stanza); got != "Hi Alice, from gpg" || o.Signer.Fingerprint() != bob.Fingerprint() {
					t.Errorf("%v: body %q", extra, got)
				}
				// And the checks hold for gpg's messages too.
				if _, err := Open(sendxmppStanza(t, msg, "mallory@example.org/gpg"), OpenOptions{Keys: []*Key{alice}, SenderKeys: []*Key{bob}}); !errors.Is(err, ErrSignerMismatch) {
					t.Errorf("forged from: %v", err)
				}
			}
			// A message gpg encrypted to bob only.
			msg, _ := g.run(sendxmppContent("alice@example.org", "x", time.Now()), "-u", "xmpp:bob@example.org", "-r", "xmpp:bob@example.org", "--sign", "--encrypt")
			if _, err := Open(sendxmppStanza(t, msg, "bob@example.org"), OpenOptions{Keys: []*Key{alice}, SenderKeys: []*Key{bob}}); !errors.Is(err, ErrNotForUs) {
				t.Errorf("not for alice: %v", err)
			}
			// gpg's secret keys are hush's secret keys.
			sec, _ := g.run(nil, "--export-secret-keys", "xmpp:bob@example.org")
			keys, err := ParseKeys(sec)
			if err != nil || !keys[0].IsSecret() || keys[0].Locked() || keys[0].Check() != nil {
				t.Fatalf("gpg's secret key: %v", err)
			}
		})
	}
}

// TestInteropGoSendxmpp checks that the installed go-sendxmpp writes OX the
// way sendxmppContent and sendxmppStanza (and testdata/gen.sh) assume, and
// that hush opens a message in that format made with gpg now. Capturing one
// through a real server is the client's job (cmd/hush integration tests).
func TestInteropGoSendxmpp(t *testing.T) {
	path, err := exec.LookPath("go-sendxmpp")
	if err != nil {
		t.Fatalf("go-sendxmpp is required for the interop tests: %v", err)
	}
	bin, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"signcrypt", "payload", "rpad", NS, "urn:xmpp:eme:0", "urn:xmpp:hints",
		"2006-01-02T15:04:05Z", // <time stamp/>: whole seconds, UTC
		"This message is encrypted (XEP-0373: OpenPGP for XMPP).", // fallback <body/>
		"ox: no to element", // it checks <to/> on receive
		"gopenpgp",          // its OpenPGP library, on go-crypto
	} {
		if !bytes.Contains(bin, []byte(s)) {
			t.Errorf("go-sendxmpp binary lacks %q: its OX format changed", s)
		}
	}
	out, err := exec.Command(path, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("go-sendxmpp --version: %v\n%s", err, out)
	}
	t.Logf("go-sendxmpp --version: %s", bytes.TrimSpace(out))

	g := newGnuPG(t)
	bob := g.genKey("xmpp:bob@example.org", false)
	alice, err := GenerateKey(mustJID("alice@example.org"), Curve25519)
	if err != nil {
		t.Fatal(err)
	}
	g.importKey(alice, false)
	// gopenpgp's Encrypt: binary literal data, one-pass signature, no
	// compression, encrypted to the recipient and the sender.
	msg, _ := g.run(sendxmppContent("alice@example.org", "sent by go-sendxmpp --ox", time.Now()),
		"-u", "xmpp:bob@example.org", "-r", "xmpp:alice@example.org", "-r", "xmpp:bob@example.org", "--compress-algo", "none", "--sign", "--encrypt")
	o, err := Open(sendxmppStanza(t, msg, "bob@example.org/go-sendxmpp"), OpenOptions{Keys: []*Key{alice}, SenderKeys: []*Key{bob}})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := body(o.Stanza); got != "sent by go-sendxmpp --ox" {
		t.Errorf("body %q", got)
	}
}

// TestInteropBackup: a backup made by hush is opened by gpg given the code,
// and one made with gpg following XEP-0373 §5.4 is restored by hush.
func TestInteropBackup(t *testing.T) {
	g := newGnuPG(t)
	alice, err := GenerateKey(mustJID("alice@example.org"), Curve25519)
	if err != nil {
		t.Fatal(err)
	}
	code, backup, err := Backup([]*Key{alice})
	if err != nil {
		t.Fatal(err)
	}
	plain, status := g.run(backup.Message, "--passphrase", code, "--decrypt")
	if !strings.Contains(status, "DECRYPTION_OKAY") {
		t.Errorf("gpg status:\n%s", status)
	}
	g.run(plain, "--import")
	out, _ := g.run(nil, "--with-colons", "--list-secret-keys", "xmpp:alice@example.org")
	if !strings.Contains(string(out), alice.Fingerprint().String()) {
		t.Errorf("gpg did not import the secret key:\n%s", out)
	}
	if _, _, err := g.try(backup.Message, "--passphrase", "TWNK-KD5Y-MT3T-E1GS-DRDB-KVTW", "--decrypt"); err == nil {
		t.Error("gpg opened the backup with another code")
	}

	bob := g.genKey("xmpp:bob@example.org", false)
	sec, _ := g.run(nil, "--export-secret-keys", "xmpp:bob@example.org")
	const gcode = "TWNK-KD5Y-MT3T-E1GS-DRDB-KVTW"
	for _, cipher := range []string{"AES128", "AES256"} {
		enc, _ := g.run(sec, "--passphrase", gcode, "--symmetric", "--cipher-algo", cipher)
		b, _ := xml.Marshal(SecretKey{Message: enc})
		var wire SecretKey
		if err := xml.Unmarshal(b, &wire); err != nil {
			t.Fatal(err)
		}
		keys, err := Restore(wire, gcode)
		if err != nil || len(keys) != 1 || keys[0].Fingerprint() != bob.Fingerprint() || !keys[0].IsSecret() {
			t.Fatalf("%s: restore: %v", cipher, err)
		}
		if _, err := Restore(wire, code); !errors.Is(err, ErrWrongCode) {
			t.Errorf("%s: wrong code: %v", cipher, err)
		}
	}
}

// BenchmarkGnuPG compares Seal and Open with gpg doing the same work
// (sign+encrypt and decrypt+verify of the same 1 KiB content for the same
// keys) in alternating iterations, and reports the ratio as "x-gpg". gpg's
// time includes starting the process and talking to its agent, which is
// what a client shelling out to gpg pays.
func BenchmarkGnuPG(b *testing.B) {
	g := newGnuPG(b)
	bob := g.genKey("xmpp:bob@example.org", false)
	sec, _ := g.run(nil, "--export-secret-keys", "xmpp:bob@example.org")
	bobKeys, _ := ParseKeys(sec)
	alice, err := GenerateKey(mustJID("alice@example.org"), Curve25519)
	if err != nil {
		b.Fatal(err)
	}
	g.importKey(alice, true)
	st := benchStanza(b)
	st.Attr[1].Value = "bob@example.org"
	content := sendxmppContent("bob@example.org", benchText, time.Now())

	b.Run("signcrypt", func(b *testing.B) {
		var hush, gpg time.Duration
		for b.Loop() {
			t0 := time.Now()
			if _, err := Seal(st, SealOptions{Signer: alice, Recipients: []*Key{bob}}); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			g.run(content, "-u", "xmpp:alice@example.org", "-r", "xmpp:bob@example.org", "-r", "xmpp:alice@example.org", "--compress-algo", "none", "--sign", "--encrypt")
			hush, gpg = hush+t1.Sub(t0), gpg+time.Since(t1)
		}
		b.ReportMetric(float64(hush)/float64(gpg), "x-gpg")
	})
	b.Run("decrypt", func(b *testing.B) {
		sealed, err := Seal(st, SealOptions{Signer: alice, Recipients: []*Key{bob}})
		if err != nil {
			b.Fatal(err)
		}
		msg := openpgpOf(b, sealed.Stanza)
		var hush, gpg time.Duration
		for b.Loop() {
			t0 := time.Now()
			if _, err := Open(sealed.Stanza, OpenOptions{Keys: bobKeys, SenderKeys: []*Key{alice}}); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			g.run(msg, "--decrypt")
			hush, gpg = hush+t1.Sub(t0), gpg+time.Since(t1)
		}
		b.ReportMetric(float64(hush)/float64(gpg), "x-gpg")
	})
}
