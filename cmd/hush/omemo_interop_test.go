//go:build interop

package main

// "hush omemo" against python-omemo (python-twomemo and python-oldmemo,
// through internal/omemotest), with bundles, device lists and messages
// passed as files and pipes, as a user debugging interop would.

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hush.im/internal/omemotest"
	"hush.im/sce"
	"mellium.im/xmpp/jid"
)

// cliDevice is a hush device driven through the command.
type cliDevice struct {
	t     *testing.T
	store string
	jid   string
	id    uint32
}

func newCLIDevice(t *testing.T, account string, id uint32) *cliDevice {
	t.Helper()
	d := &cliDevice{t: t, store: filepath.Join(t.TempDir(), "store"), jid: account, id: id}
	mustHush(t, "", "omemo", "init", "--store", d.store, "--jid", account, "--device-id", fmt.Sprint(id))
	return d
}

func (d *cliDevice) hush(stdin string, args ...string) string {
	d.t.Helper()
	return mustHush(d.t, stdin, append([]string{"omemo", args[0], "--store", d.store}, args[1:]...)...)
}

// addPython records a python device from its published bundle file.
func (d *cliDevice) addPython(p *omemotest.Peer, ns string) {
	d.t.Helper()
	bundles, err := p.OwnBundles()
	if err != nil {
		d.t.Fatal(err)
	}
	file := filepath.Join(d.t.TempDir(), "bundle.xml")
	// As PEP gives it: the bundle inside its <item/>.
	item := fmt.Sprintf("<item id='%d'>%s</item>", p.DeviceID(), bundles[ns])
	if err := os.WriteFile(file, []byte(item), 0o600); err != nil {
		d.t.Fatal(err)
	}
	out := d.hush("", "add-device", "--jid", p.JID(), "--device", fmt.Sprint(p.DeviceID()), "--bundle", file)
	if want := map[string]string{omemotest.NSOMEMO2: "(OMEMO 2)", omemotest.NSLegacy: "(legacy OMEMO)"}[ns]; !strings.Contains(out, want) {
		d.t.Fatalf("add-device: %s", out)
	}
}

// publishTo gives a python peer this device's device list and bundle in
// namespace ns, from the command's output.
func (d *cliDevice) publishTo(p *omemotest.Peer, ns string) {
	d.t.Helper()
	var flags []string
	if ns == omemotest.NSLegacy {
		flags = []string{"--legacy"}
	}
	list := d.hush("", append([]string{"devicelist"}, flags...)...)
	if ids, err := p.AddDeviceList(ns, d.jid, []byte(list)); err != nil || len(ids) != 1 || ids[0] != d.id {
		d.t.Fatalf("python read hush's device list as %v: %v", ids, err)
	}
	bundle := d.hush("", append([]string{"bundle"}, flags...)...)
	if _, err := p.AddBundle(ns, d.jid, d.id, []byte(bundle)); err != nil {
		d.t.Fatalf("python rejected hush's bundle: %v", err)
	}
}

// elements splits encrypt's output, one element per line, by namespace.
func elements(t *testing.T, out string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var probe struct{ XMLName xml.Name }
		if err := xml.Unmarshal([]byte(line), &probe); err != nil {
			t.Fatalf("encrypt printed %q: %v", line, err)
		}
		m[probe.XMLName.Space] = line
	}
	return m
}

// envelope builds the SCE envelope python encrypts for OMEMO 2 (python
// encrypts bytes only): a body from the python account.
func envelope(t *testing.T, from, to, body string) []byte {
	t.Helper()
	st := &sce.Stanza{
		Name:     xml.Name{Space: "jabber:client", Local: "message"},
		Attr:     []xml.Attr{{Name: xml.Name{Local: "to"}, Value: to}, {Name: xml.Name{Local: "from"}, Value: from + "/py"}},
		Children: []sce.Element{sce.TextElement(xml.Name{Space: "jabber:client", Local: "body"}, body)},
	}
	_, env, err := sce.Seal(st, sce.SealOptions{Profile: sce.OMEMO2(), Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pythonReads(t *testing.T, p *omemotest.Peer, from, ns, x, want string) *omemotest.Decrypted {
	t.Helper()
	var d omemotest.Decrypted
	if err := p.Call("decrypt", map[string]any{"from": from, "xml": x, "namespace": ns}, &d); err != nil {
		t.Fatalf("python (%s) decrypting hush's message: %v\n%s", ns, err, x)
	}
	got := string(d.Plaintext)
	if ns == omemotest.NSOMEMO2 {
		env, err := sce.Parse(d.Plaintext)
		if err != nil || len(env.Content) != 1 || !env.From.Equal(jid.MustParse(from)) {
			t.Fatalf("python decrypted an envelope hush cannot have sent: %s (%v)", d.Plaintext, err)
		}
		got = env.Content[0].Text()
	}
	if got != want {
		t.Fatalf("python (%s) read %q, want %q", ns, got, want)
	}
	return &d
}

// TestInteropCLI: for each protocol, python's bundle file → add-device →
// encrypt → python decrypts; hush's bundle → python encrypts → decrypt;
// python's automatic empty messages decrypt to nothing. Then one message
// from hush to a python OMEMO 2 device and a python legacy device of the
// same account carries both elements, each read by its device.
func TestInteropCLI(t *testing.T) {
	for _, ns := range []string{omemotest.NSOMEMO2, omemotest.NSLegacy} {
		t.Run(ns, func(t *testing.T) {
			py := omemotest.StartPeer(t, "bob@example.net", omemotest.WithNamespaces(ns))
			h := newCLIDevice(t, "alice@example.org", 1001)
			h.addPython(py, ns)
			h.publishTo(py, ns)
			for i := range 3 {
				text := fmt.Sprintf("hush → python %d: <&> ¿qué?", i)
				out := h.hush("", "encrypt", "--to", "bob@example.net", "--text", text)
				els := elements(t, out)
				if len(els) != 1 || els[ns] == "" {
					t.Fatalf("encrypt printed %q", out)
				}
				if d := pythonReads(t, py, h.jid, ns, els[ns], text); !d.KeyExchange {
					t.Fatalf("message %d: python saw no key exchange", i)
				}
			}
			msgs, err := py.Outbox()
			if err != nil || len(msgs) == 0 {
				t.Fatalf("python did not answer the key exchanges: %v", err)
			}
			for _, m := range msgs {
				if out := h.hush(string(m.XML), "decrypt", "--from", "bob@example.net"); out != "" {
					t.Fatalf("python's empty message decrypted to %q", out)
				}
			}
			out := h.hush("", "encrypt", "--to", "bob@example.net", "--text", "confirmed")
			if strings.Contains(out, `kex="true"`) || strings.Contains(out, `prekey="true"`) {
				t.Fatal("hush still sends key exchanges after python's answer")
			}
			pythonReads(t, py, h.jid, ns, elements(t, out)[ns], "confirmed")
			// And back, each message as a whole stanza.
			for i := range 3 {
				text := fmt.Sprintf("python → hush %d: ❤", i)
				pt := []byte(text)
				if ns == omemotest.NSOMEMO2 {
					pt = envelope(t, "bob@example.net", h.jid, text)
				}
				enc, err := py.Encrypt([]string{h.jid}, pt, ns)
				if err != nil || len(enc.Errors) != 0 {
					t.Fatalf("python encrypt: %+v %v", enc, err)
				}
				stanza := `<message xmlns="jabber:client" from="bob@example.net/py" to="alice@example.org" type="chat">` + string(enc.Messages[ns]) + `</message>`
				if got := h.hush(stanza, "decrypt", "--from", "bob@example.net"); got != text+"\n" {
					t.Fatalf("hush decrypted %q, want %q", got, text)
				}
				if !bytes.Contains([]byte(mustHush(t, stanza, "omemo", "inspect")), []byte(fmt.Sprint("sender device: ", py.DeviceID()))) {
					t.Fatal("inspect")
				}
			}
		})
	}
	t.Run("mixed", func(t *testing.T) {
		tablet := omemotest.StartPeer(t, "bob@example.net", omemotest.WithNamespaces(omemotest.NSOMEMO2))
		phone := omemotest.StartPeer(t, "bob@example.net", omemotest.WithNamespaces(omemotest.NSLegacy))
		h := newCLIDevice(t, "alice@example.org", 1001)
		h.addPython(tablet, omemotest.NSOMEMO2)
		h.addPython(phone, omemotest.NSLegacy)
		h.publishTo(tablet, omemotest.NSOMEMO2)
		h.publishTo(phone, omemotest.NSLegacy)
		out := h.hush("", "encrypt", "--to", "bob@example.net", "--text", "to both")
		els := elements(t, out)
		if len(els) != 2 {
			t.Fatalf("encrypt printed %q", out)
		}
		// Each python device gets both elements, as in one stanza.
		both := els[omemotest.NSOMEMO2] + els[omemotest.NSLegacy]
		stanza := `<message xmlns="jabber:client" from="alice@example.org/h" to="bob@example.net">` + both + `</message>`
		pythonReads(t, tablet, h.jid, omemotest.NSOMEMO2, stanza, "to both")
		pythonReads(t, phone, h.jid, omemotest.NSLegacy, stanza, "to both")
		insp := mustHush(t, both, "omemo", "inspect")
		if !strings.Contains(insp, "OMEMO 2 (urn:xmpp:omemo:2)") || !strings.Contains(insp, "legacy OMEMO (eu.siacs.conversations.axolotl)") {
			t.Fatalf("inspect: %s", insp)
		}
	})
}
