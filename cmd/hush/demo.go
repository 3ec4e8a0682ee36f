package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"hush.im/omemo"
	"hush.im/omemo/memstore"
	"hush.im/sce"
	"mellium.im/xmpp/jid"
)

// demoMessage is what alice's client has before encryption: a chat message
// with a body, a reply (XEP-0461), a receipt request (XEP-0184), an origin-id
// (XEP-0359) and a hint (XEP-0334).
const demoMessage = `<message xmlns='jabber:client' to='bob@example.org/phone' from='alice@example.org/laptop' type='chat' id='m1'>` +
	`<body>Meet me at the lighthouse at nine. Come alone.</body>` +
	`<reply xmlns='urn:xmpp:reply:0' to='bob@example.org/phone' id='b7'/>` +
	`<request xmlns='urn:xmpp:receipts'/>` +
	`<origin-id xmlns='urn:xmpp:sid:0' id='c3f0a1'/>` +
	`<no-copy xmlns='urn:xmpp:hints'/>` +
	`</message>`

// demoReply is bob's answer, sent from his phone.
const demoReply = `<message xmlns='jabber:client' to='alice@example.org/laptop' from='bob@example.org/phone' type='chat' id='r1'>` +
	`<body>I'll be there.</body>` +
	`</message>`

// runDemo shows hush's main job in one process: alice's device and two of
// bob's exchange OMEMO 2 messages (XEP-0384) whose content travels in a
// Stanza Content Encryption envelope (XEP-0420), with what the server sees
// beside what bob reads, and a hostile server's tricks refused. The PEP
// service is played by the demo itself: bundles and device lists are handed
// over in memory. Later issues move it onto a real server.
//
// "hush demo xmpp" runs the same story over a throwaway Prosody with the
// hush command itself (runDemoXMPP).
func runDemo(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "xmpp" {
		return runDemoXMPP(args[1:], stdout, stderr)
	}
	fs := newFlagSet("demo", "[xmpp]", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{msg: "demo takes no arguments"}
	}
	d := &demo{w: stdout}
	return d.run()
}

type demo struct {
	w io.Writer
}

// device is one OMEMO 2 device of the demo with its own in-memory store.
type device struct {
	name string
	*omemo.Manager
}

func newDevice(name, account string) (*device, error) {
	m, err := omemo.New(jid.MustParse(account), memstore.New(), &omemo.Options{Trust: omemo.BlindTrust{}})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &device{name: name, Manager: m}, nil
}

// meet makes each device know the others' device lists and bundles, as PEP
// would deliver them (XEP-0384 §5.3).
func meet(devs ...*device) error {
	lists := map[string]*omemo.DeviceList{}
	for _, d := range devs {
		l, _, err := d.AnnounceDevice(lists[d.JID().String()])
		if err != nil {
			return err
		}
		lists[d.JID().String()] = l
	}
	for _, d := range devs {
		for account, l := range lists {
			if _, err := d.SetDeviceList(jid.MustParse(account), l); err != nil {
				return fmt.Errorf("%s: device list of %s: %w", d.name, account, err)
			}
		}
		for _, o := range devs {
			if o == d {
				continue
			}
			b, err := o.Bundle()
			if err != nil {
				return err
			}
			if err := d.SetBundle(o.Address(), b); err != nil {
				return fmt.Errorf("%s: bundle of %s: %w", d.name, o.name, err)
			}
		}
	}
	return nil
}

func (d *demo) section(format string, args ...any) {
	fmt.Fprintf(d.w, "\n== "+format+"\n", args...)
}

// base64Run matches long base64 runs, which the demo shortens for reading.
var base64Run = regexp.MustCompile(`[A-Za-z0-9+/]{48,}={0,2}`)

func (d *demo) xml(label string, b []byte) {
	s := base64Run.ReplaceAllStringFunc(string(b), func(r string) string {
		return fmt.Sprintf("%s…(%d chars)", r[:24], len(r))
	})
	fmt.Fprintf(d.w, "%s\n    %s\n", label, strings.ReplaceAll(s, "\n", "\n    "))
}

func (d *demo) run() error {
	alice, err := newDevice("alice's laptop", "alice@example.org")
	if err != nil {
		return err
	}
	bobPhone, err := newDevice("bob's phone", "bob@example.org")
	if err != nil {
		return err
	}
	bobTablet, err := newDevice("bob's tablet", "bob@example.org")
	if err != nil {
		return err
	}
	if err := meet(alice, bobPhone, bobTablet); err != nil {
		return err
	}
	d.section("three OMEMO 2 devices: alice's laptop, bob's phone and tablet")
	for _, dev := range []*device{alice, bobPhone, bobTablet} {
		fp, err := omemo.Fingerprint(dev.IdentityKey())
		if err != nil {
			return err
		}
		fmt.Fprintf(d.w, "%-15s device %-10d fingerprint %s\n", dev.name, dev.DeviceID(), fp)
	}

	plain, err := sce.ParseStanza([]byte(demoMessage))
	if err != nil {
		return fmt.Errorf("demo message: %w", err)
	}
	d.section("alice writes to bob: the stanza her client has")
	d.xml("plaintext stanza:", []byte(demoMessage))

	d.section("alice's laptop seals it (SCE) and encrypts it (OMEMO 2) for every device of bob")
	outer, report, err := alice.SealStanza(plain, nil)
	if err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	for _, r := range report.Devices {
		state := "got a key"
		if !r.OK() {
			state = "skipped: " + r.Reason.String()
		}
		if r.KEX {
			state += " (with a key exchange: first message of a new session)"
		}
		fmt.Fprintf(d.w, "    %s device %d: %s\n", r.JID, r.DeviceID, state)
	}
	wire, err := outer.Marshal()
	if err != nil {
		return err
	}
	d.xml("what the server sees and routes (no body, no reply, no receipt request; <store/> so archives keep it):", wire)

	d.section("bob's devices decrypt, verify the affixes and open it")
	var envelope []byte
	for _, dev := range []*device{bobPhone, bobTablet} {
		opened, err := open(dev, wire)
		if err != nil {
			return fmt.Errorf("%s: %w", dev.name, err)
		}
		if envelope == nil {
			envelope = opened.Envelope
			d.xml("the decrypted SCE envelope (rpad hides the length, <from/> binds the sender):", opened.Envelope)
		}
		fmt.Fprintf(d.w, "what %s shows, from %s device %d (trust: %s), each element marked:\n",
			dev.name, opened.Sender.JID, opened.Sender.Device, opened.Trust)
		if err := d.elements(opened.Stanza); err != nil {
			return err
		}
	}

	d.section("bob answers from his phone: the ratchet turns, no key exchange any more")
	reply, err := sce.ParseStanza([]byte(demoReply))
	if err != nil {
		return err
	}
	replyOuter, report, err := bobPhone.SealStanza(reply, nil)
	if err != nil {
		return fmt.Errorf("seal reply: %w", err)
	}
	replyWire, err := replyOuter.Marshal()
	if err != nil {
		return err
	}
	for _, r := range report.Devices {
		how := "existing session, no key exchange"
		if r.KEX {
			how = "key exchange (first message between these two devices)"
		}
		fmt.Fprintf(d.w, "    %s device %d: %s\n", r.JID, r.DeviceID, how)
	}
	opened, err := open(alice, replyWire)
	if err != nil {
		return fmt.Errorf("alice reads the reply: %w", err)
	}
	fmt.Fprintf(d.w, "alice reads: %q\n", body(opened.Stanza))
	// bob's tablet gets a copy of what his phone sent (own devices).
	if _, err := open(bobTablet, replyWire); err != nil {
		return fmt.Errorf("bob's tablet reads the copy: %w", err)
	}
	fmt.Fprintln(d.w, "bob's tablet reads its copy of the reply too")

	d.section("what a hostile server cannot do")
	_, err = open(bobPhone, wire)
	d.refused("alice's first message delivered to bob's phone a second time", err)

	forged, err := sce.ParseStanza(wire)
	if err != nil {
		return err
	}
	forged.Attr = setAttr(forged.Attr, "from", "mallory@example.org/x")
	forgedWire, err := forged.Marshal()
	if err != nil {
		return err
	}
	_, err = open(bobTablet, forgedWire)
	d.refused("a copy whose 'from' the server rewrote to mallory", err)

	second, _, err := bobPhone.SealStanza(reply, nil)
	if err != nil {
		return err
	}
	secondWire, err := second.Marshal()
	if err != nil {
		return err
	}
	tampered := bytes.Replace(secondWire, []byte("<payload>"), []byte("<payload>AAAA"), 1)
	_, err = open(alice, tampered)
	d.refused("a new message from bob with its ciphertext changed", err)
	if _, err := open(alice, secondWire); err != nil {
		return fmt.Errorf("the genuine message after the tampered one: %w", err)
	}
	fmt.Fprintln(d.w, "    (the genuine message still decrypts afterwards: a failed decrypt changes no state)")

	// A plaintext body injected beside a fresh message from alice.
	again, _, err := alice.SealStanza(plain, nil)
	if err != nil {
		return err
	}
	again.Children = append(again.Children,
		sce.TextElement(xml.Name{Space: "jabber:client", Local: "body"}, "Plans changed: come to the docks."))
	injectedWire, err := again.Marshal()
	if err != nil {
		return err
	}
	opened, err = open(bobTablet, injectedWire)
	if err != nil {
		return fmt.Errorf("injected copy: %w", err)
	}
	if strings.Contains(body(opened.Stanza), "docks") {
		return errors.New("demo: an injected plaintext body reached the application")
	}
	fmt.Fprintf(d.w, "ignored: a plaintext <body/> the server added beside the envelope (bob's tablet reads %q)\n", body(opened.Stanza))

	fmt.Fprintln(d.w, "\nhush: OMEMO 2 with Stanza Content Encryption works end to end in-process.")
	fmt.Fprintln(d.w, "Next: the same over a real XMPP server (see README, Status).")
	return nil
}

// open parses a stanza off the wire and decrypts, verifies and opens it on
// dev.
func open(dev *device, wire []byte) (*omemo.Opened, error) {
	st, err := sce.ParseStanza(wire)
	if err != nil {
		return nil, err
	}
	return dev.OpenStanza(st, nil)
}

// body returns the text of the first encrypted <body/> of st.
func body(st *sce.Stanza) string {
	for _, e := range st.Children {
		if e.Encrypted && e.Name == (xml.Name{Space: "jabber:client", Local: "body"}) {
			return e.Text()
		}
	}
	return ""
}

// elements prints each element of st with whether it was encrypted.
func (d *demo) elements(st *sce.Stanza) error {
	for _, e := range st.Children {
		var b bytes.Buffer
		enc := xml.NewEncoder(&b)
		if err := e.MarshalXML(enc, xml.StartElement{}); err != nil {
			return err
		}
		if err := enc.Flush(); err != nil {
			return err
		}
		mark := "clear    "
		if e.Encrypted {
			mark = "encrypted"
		}
		fmt.Fprintf(d.w, "    [%s] %s\n", mark, b.String())
	}
	return nil
}

// refused prints that an attack was refused and why, or says that it was not.
func (d *demo) refused(what string, err error) {
	if err == nil {
		fmt.Fprintf(d.w, "NOT REFUSED: %s\n", what)
		return
	}
	fmt.Fprintf(d.w, "refused: %s\n    (%v)\n", what, err)
}

// setAttr returns a copy of attrs with the attribute local set to value.
func setAttr(attrs []xml.Attr, local, value string) []xml.Attr {
	out := make([]xml.Attr, 0, len(attrs)+1)
	found := false
	for _, a := range attrs {
		if a.Name.Space == "" && a.Name.Local == local {
			a.Value = value
			found = true
		}
		out = append(out, a)
	}
	if !found {
		out = append(out, xml.Attr{Name: xml.Name{Local: local}, Value: value})
	}
	return out
}
