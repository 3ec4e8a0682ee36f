//go:build interop

package main

// hush against python-omemo over a real Prosody: the python side is an XMPP
// client on slixmpp (internal/omemotest/xmpppeer.py) that publishes and
// fetches device lists and bundles in PEP and sends and receives OMEMO 2
// (XEP-0384 0.9, urn:xmpp:omemo:2) messages with SCE envelopes
// (XEP-0420), so everything between the two crosses the server as it
// would between two deployed clients.

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"hush.im/internal/omemotest"
	"hush.im/internal/prosodytest"
)

// slixmppWait bounds waiting for one event of the python client.
const slixmppWait = 30 * time.Second

// pyMessage waits for the python client's next message with a body,
// failing on errors and plaintext; empty messages are returned to the
// caller through empties.
func pyMessage(t *testing.T, py *omemotest.XMPPPeer, empties *[]omemotest.XMPPEvent) omemotest.XMPPEvent {
	t.Helper()
	for {
		ev, err := py.Next(slixmppWait)
		if err != nil {
			t.Fatalf("%s: waiting for a message: %v", py.JID(), err)
		}
		switch ev.Event {
		case "message":
			return ev
		case "empty", "auto":
			*empties = append(*empties, ev)
		default:
			t.Fatalf("%s: unexpected event %s", py.JID(), ev)
		}
	}
}

// checkHushStanza checks the shape of a message hush sent, as the python
// client received it: one OMEMO 2 <encrypted/> (with a <payload/> unless
// empty), the XEP-0380 EME element and the XEP-0334 <store/> hint, and no
// body in the clear (XEP-0420 0.5: no fallback body).
func checkHushStanza(t *testing.T, ev omemotest.XMPPEvent, empty bool) {
	t.Helper()
	var m struct {
		Encrypted []struct {
			Payload *string `xml:"payload"`
		} `xml:"urn:xmpp:omemo:2 encrypted"`
		EME []struct {
			Namespace string `xml:"namespace,attr"`
		} `xml:"urn:xmpp:eme:0 encryption"`
		Store []struct{} `xml:"urn:xmpp:hints store"`
		Body  []string   `xml:"body"`
	}
	if err := xml.Unmarshal([]byte(ev.Stanza), &m); err != nil {
		t.Fatalf("python received a stanza it cannot print as XML: %v\n%s", err, ev.Stanza)
	}
	if len(m.Encrypted) != 1 || (m.Encrypted[0].Payload == nil) != empty || len(m.EME) != 1 || m.EME[0].Namespace != omemotest.NSOMEMO2 || len(m.Store) != 1 || len(m.Body) != 0 {
		t.Errorf("hush's message (empty %v) is not <encrypted/> + EME + <store/> without body:\n%s", empty, ev.Stanza)
	}
}

// pySend has the python client send text to hush and checks the key it
// made for hush's device. It returns the base64 <payload/> it sent.
func pySend(t *testing.T, py *omemotest.XMPPPeer, to, dev, text string, wantKEX bool) string {
	t.Helper()
	sent, err := py.Send(to, text)
	if err != nil {
		t.Fatalf("python send to %s: %v", to, err)
	}
	if len(sent.Errors) > 0 {
		t.Fatalf("python send: errors %+v", sent.Errors)
	}
	for _, r := range sent.Recipients {
		if r.JID == to && strconv.FormatUint(uint64(r.DeviceID), 10) == dev {
			if r.KeyExchange != wantKEX {
				t.Errorf("python's key for %s/%s: kex %v, want %v\n%s", to, dev, r.KeyExchange, wantKEX, sent.Stanza)
			}
			var m struct {
				Payload string `xml:"urn:xmpp:omemo:2 encrypted>payload"`
			}
			if err := xml.Unmarshal([]byte(sent.Stanza), &m); err != nil || len(m.Payload) < 16 {
				t.Fatalf("python sent no OMEMO 2 payload (%v):\n%s", err, sent.Stanza)
			}
			return m.Payload
		}
	}
	t.Fatalf("python encrypted for %+v, not for %s device %s\n%s", sent.Recipients, to, dev, sent.Stanza)
	return ""
}

// hushListen runs hush listen --json for n messages and returns them.
func hushListen(t *testing.T, a *hushAccount, n int) []listened {
	t.Helper()
	code, stdout, stderr := a.hush(t, "", "listen", "--json", "--count", strconv.Itoa(n), "--timeout", "30s")
	if code != 0 {
		t.Fatalf("%s: listen: exit %d\n%s%s", a.name, code, stdout, stderr)
	}
	if strings.Contains(stderr, "warning") {
		t.Errorf("%s: listen warned:\n%s", a.name, stderr)
	}
	var out []listened
	dec := json.NewDecoder(strings.NewReader(stdout))
	for dec.More() {
		var l listened
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("listen --json output %q: %v", stdout, err)
		}
		out = append(out, l)
	}
	if len(out) != n {
		t.Fatalf("listen printed %d messages, want %d:\n%s", len(out), n, stdout)
	}
	return out
}

// hushSend runs hush send --omemo and checks it reached the python device.
func hushSend(t *testing.T, a *hushAccount, py *omemotest.XMPPPeer, text string) {
	t.Helper()
	code, _, stderr := a.hush(t, "", "send", "--omemo", py.JID(), text)
	want := fmt.Sprintf("hush: sent to %s device %d\n", py.JID(), py.DeviceID())
	if code != 0 || !strings.Contains(stderr, want) {
		t.Fatalf("%s: send --omemo %s: exit %d, want %q in\n%s", a.name, py.JID(), code, want, stderr)
	}
}

// TestInteropSlixmppOMEMO2: hush and a python-omemo client on slixmpp talk
// OMEMO 2 in both directions through Prosody.
//
//  1. python → hush while hush is offline: python's key exchange, delivered
//     from offline storage; hush listen prints it and answers the key
//     exchange with an empty message, which python decrypts.
//  2. hush → python on that session, twice: python reads the SCE envelope.
//  3. python → hush again, live, on the established session (no kex).
//  4. carol (python) is offline; hush starts a session to her (hush's key
//     exchange) and sends twice; carol connects, reads both from offline
//     storage and answers the key exchange with an empty message; hush
//     reads it; carol replies, hush's next message is no key exchange.
//  5. Prosody's data directory never held a plaintext.
func TestInteropSlixmppOMEMO2(t *testing.T) {
	srv := prosodytest.Start(t, prosodytest.Options{Users: []string{"alice", "bob", "carol"}})
	alice := addAccount(t, srv, "alice")
	aliceDev := alice.ownDevice(t) // connects: publishes hush's device list and bundle
	aliceJID := srv.JID("alice").String()
	bob := omemotest.StartXMPPPeer(t, omemotest.XMPPPeerOptions{JID: srv.JID("bob").String(), Password: srv.Password("bob"), Addr: srv.Addr})
	bobDev := strconv.FormatUint(uint64(bob.DeviceID()), 10)
	nonce := time.Now().UnixNano()
	// Each text has a unique part without XML-special characters, which is
	// what the server's files are searched for (the rest could be escaped).
	var secrets []string
	secret := func(format string) string {
		s := fmt.Sprintf(format+" %d-%d", len(secrets), nonce)
		secrets = append(secrets, s)
		return s + " <&> ¿qué? 🔒"
	}
	var empties []omemotest.XMPPEvent

	// 1. python → hush, offline, key exchange.
	first := secret("python to hush, offline, key exchange")
	firstPayload := pySend(t, bob, aliceJID, aliceDev, first, true)
	got := hushListen(t, alice, 1)
	want := listened{From: bob.JID(), Device: bobDev, Protocol: "omemo2", Trust: "blind", Via: "offline", Text: first}
	if got[0] != want {
		t.Fatalf("listen: got %+v, want %+v", got[0], want)
	}
	// hush's listen flushed the answer to the key exchange.
	ev, err := bob.Next(slixmppWait)
	if err != nil || ev.Event != "empty" || ev.From != aliceJID || strconv.FormatUint(uint64(ev.Device), 10) != aliceDev {
		t.Fatalf("python: want hush's empty message answering the key exchange, got %s (%v)", ev, err)
	}
	checkHushStanza(t, ev, true)

	// 2. hush → python on the session python started.
	for i := range 2 {
		text := secret(fmt.Sprintf("hush to python %d", i))
		hushSend(t, alice, bob, text)
		m := pyMessage(t, bob, &empties)
		if m.From != aliceJID || strconv.FormatUint(uint64(m.Device), 10) != aliceDev || m.Text != text || m.KeyExchange {
			t.Fatalf("python read %s, want %q from %s device %s without kex", m, text, aliceJID, aliceDev)
		}
		checkHushStanza(t, m, false)
	}

	// 3. python → hush, live, session established.
	type result struct {
		got []listened
	}
	done := make(chan result, 1)
	go func() {
		// Not hushListen: t.Fatal must not run on this goroutine.
		code, stdout, stderr := alice.hush(t, "", "listen", "--json", "--count", "2", "--timeout", "30s")
		var r result
		if code != 0 {
			t.Errorf("listen: exit %d\n%s%s", code, stdout, stderr)
			done <- r
			return
		}
		dec := json.NewDecoder(strings.NewReader(stdout))
		for dec.More() {
			var l listened
			if err := dec.Decode(&l); err != nil {
				t.Errorf("listen output %q: %v", stdout, err)
				break
			}
			r.got = append(r.got, l)
		}
		done <- r
	}()
	live := []string{secret("python to hush, live one"), secret("python to hush, live two")}
	for _, text := range live {
		pySend(t, bob, aliceJID, aliceDev, text, false)
	}
	r := <-done
	if len(r.got) != 2 {
		t.Fatalf("live listen printed %+v", r.got)
	}
	for i, l := range r.got {
		if l.From != bob.JID() || l.Device != bobDev || l.Protocol != "omemo2" || l.Text != live[i] || (l.Via != "live" && l.Via != "offline" && l.Via != "archive") {
			t.Errorf("live listen %d: got %+v, want %q from %s device %s", i, l, live[i], bob.JID(), bobDev)
		}
	}

	// 4. hush starts the session, to a python client that is offline.
	carol := omemotest.StartXMPPPeer(t, omemotest.XMPPPeerOptions{JID: srv.JID("carol").String(), Password: srv.Password("carol"), Addr: srv.Addr})
	carolDev := strconv.FormatUint(uint64(carol.DeviceID()), 10)
	if err := carol.Disconnect(); err != nil {
		t.Fatal(err)
	}
	if ev, err := carol.Next(slixmppWait); err != nil || ev.Event != "disconnected" {
		t.Fatalf("carol: want disconnected, got %s (%v)", ev, err)
	}
	offline := []string{secret("hush to python, offline, key exchange"), secret("hush to python, offline, second")}
	for _, text := range offline {
		hushSend(t, alice, carol, text)
	}
	if err := carol.Connect(); err != nil {
		t.Fatal(err)
	}
	var carolEmpties []omemotest.XMPPEvent
	for _, text := range offline {
		m := pyMessage(t, carol, &carolEmpties)
		if m.From != aliceJID || strconv.FormatUint(uint64(m.Device), 10) != aliceDev || m.Text != text || !m.KeyExchange || !m.Delayed {
			t.Fatalf("carol read %s, want %q from %s device %s: a key exchange from offline storage", m, text, aliceJID, aliceDev)
		}
		checkHushStanza(t, m, false)
	}
	// python-omemo answers the key exchange by itself.
	deadline := time.Now().Add(slixmppWait)
	for len(carolEmpties) == 0 && time.Now().Before(deadline) {
		if ev, err := carol.Next(time.Until(deadline)); err == nil {
			carolEmpties = append(carolEmpties, ev)
		}
	}
	if len(carolEmpties) == 0 || carolEmpties[0].Event != "auto" || !carolEmpties[0].Empty || carolEmpties[0].To != aliceJID {
		t.Fatalf("carol: want python-omemo's automatic empty message to %s, got %v", aliceJID, carolEmpties)
	}
	// hush reads it (it prints nothing) and then carol's reply.
	reply := secret("python to hush, reply on hush's session")
	pySend(t, carol, aliceJID, aliceDev, reply, false)
	got = hushListen(t, alice, 1)
	// alice listened before: the archive brings it.
	want = listened{From: carol.JID(), Device: carolDev, Protocol: "omemo2", Trust: "blind", Via: "archive", Text: reply}
	if got[0] != want {
		t.Fatalf("listen: got %+v, want %+v", got[0], want)
	}
	after := secret("hush to python, session confirmed")
	hushSend(t, alice, carol, after)
	m := pyMessage(t, carol, &carolEmpties)
	if m.Text != after || m.KeyExchange || m.Delayed {
		t.Fatalf("carol read %s, want %q live without kex", m, after)
	}

	// Nothing else arrived anywhere: no plaintext, no failure.
	for _, p := range []*omemotest.XMPPPeer{bob, carol} {
		for _, ev := range p.Pending() {
			if ev.Event != "empty" && ev.Event != "auto" {
				t.Errorf("%s: unexpected event %s", p.JID(), ev)
			}
		}
	}
	if code, stdout, _ := alice.hush(t, "", "listen", "--count", "1", "--timeout", "2s"); code != exitTimeout || stdout != "" {
		t.Errorf("hush received something more: exit %d %q", code, stdout)
	}

	// 5. The server never held a plaintext, though it stored the messages
	// (offline storage, archive): the search does find the ciphertext of
	// python's first message.
	if files, err := srv.FilesContaining([]byte(firstPayload)); err != nil || len(files) == 0 {
		t.Errorf("the payload of python's first message is in none of the server's files (%v): the plaintext search proves nothing", err)
	}
	for _, s := range secrets {
		files, err := srv.FilesContaining([]byte(s))
		if err != nil || len(files) > 0 {
			t.Errorf("plaintext %q stored by the server in %v (%v)", s, files, err)
		}
	}
}
