package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"hush.im/sce"
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

// runDemo shows hush's main job in one process. Until the XMPP side lands it
// is the layer that carries everything else: Stanza Content Encryption
// (XEP-0420) sealing a stanza for an end-to-end protocol, and the receiving
// side verifying and opening it, refusing forgeries.
func runDemo(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", "", stderr)
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

func (d *demo) section(format string, args ...any) {
	fmt.Fprintf(d.w, "\n== "+format+"\n", args...)
}

func (d *demo) xml(label string, b []byte) {
	fmt.Fprintf(d.w, "%s\n    %s\n", label, bytes.ReplaceAll(b, []byte("\n"), []byte("\n    ")))
}

func (d *demo) run() error {
	profile := sce.OMEMO2()
	encrypted := xml.Name{Space: "urn:xmpp:omemo:2", Local: "encrypted"}

	plain, err := sce.ParseStanza([]byte(demoMessage))
	if err != nil {
		return fmt.Errorf("demo message: %w", err)
	}
	d.section("alice writes to bob: the stanza her client has")
	d.xml("plaintext stanza:", []byte(demoMessage))

	d.section("sce.Seal splits it (XEP-0420): what the server must read stays outside")
	outer, env, err := sce.Seal(plain, sce.SealOptions{Profile: profile})
	if err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	envBytes, err := env.Marshal()
	if err != nil {
		return err
	}
	d.xml("inside, the envelope to encrypt (body, reply, receipt request, origin-id; rpad hides the length):", envBytes)
	// The engine appends its <encrypted/>; until the OMEMO step of this demo
	// lands, a stand-in element marks where the ciphertext goes.
	outer.Children = append(outer.Children, sce.TextElement(encrypted, "…ciphertext of the envelope…"))
	wire, err := outer.Marshal()
	if err != nil {
		return err
	}
	d.xml("outside, what the server sees and routes:", wire)

	d.section("bob receives it: parse the envelope, verify the affixes, open")
	recv, err := sce.ParseStanza(wire)
	if err != nil {
		return err
	}
	got, err := sce.Parse(envBytes)
	if err != nil {
		return fmt.Errorf("parse envelope: %w", err)
	}
	if err := sce.Verify(got, recv, profile, sce.VerifyOptions{}); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	opened, err := sce.Open(recv, got, encrypted)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	fmt.Fprintln(d.w, "what bob's client gets, each element marked:")
	if err := d.elements(opened); err != nil {
		return err
	}

	d.section("what a hostile server cannot do")
	// 1. Rewrite the sender: the <from/> affix inside no longer matches.
	forged := *recv
	forged.Attr = setAttr(recv.Attr, "from", "mallory@example.org/x")
	err = sce.Verify(got, &forged, profile, sce.VerifyOptions{})
	d.refused("a copy whose 'from' the server rewrote to mallory", err, sce.ErrSenderMismatch)

	// 2. Replay it an hour later: the <time/> affix is out of the window.
	sealedAt := got.Time
	if sealedAt.IsZero() {
		// The OMEMO 2 profile makes <time/> optional; seal a copy with it.
		_, env2, err := sce.Seal(plain, sce.SealOptions{Profile: profile, Add: sce.AffixTime})
		if err != nil {
			return err
		}
		got = env2
	}
	later := func() time.Time { return time.Now().Add(time.Hour) }
	err = sce.Verify(got, recv, profile, sce.VerifyOptions{Now: later})
	d.refused("the same message replayed an hour later", err, sce.ErrTimeOutOfWindow)

	// 3. Inject a plaintext body and a <store/> hint inside: the body is
	// ignored, the copy inside is dropped.
	injected := *recv
	injected.Children = append(append([]sce.Element(nil), recv.Children...),
		sce.TextElement(xml.Name{Space: "jabber:client", Local: "body"}, "Plans changed: come to the docks."))
	opened, err = sce.Open(&injected, got, encrypted)
	if err != nil {
		return err
	}
	for _, e := range opened.Children {
		if e.Name.Local == "body" && strings.Contains(e.Text(), "docks") {
			return errors.New("demo: an injected plaintext body reached the application")
		}
	}
	fmt.Fprintln(d.w, "ignored: a plaintext <body/> the server added beside the envelope (bob still reads only alice's)")
	fmt.Fprintln(d.w, "\nhush: the envelope round trip works; OMEMO 2, legacy OMEMO and OX encrypt it (see README, Status).")
	return nil
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

// refused prints that an attack was refused with the expected error, or
// says that it was not.
func (d *demo) refused(what string, err, want error) {
	switch {
	case err == nil:
		fmt.Fprintf(d.w, "NOT REFUSED: %s\n", what)
	case errors.Is(err, want):
		fmt.Fprintf(d.w, "refused: %s\n    (%v)\n", what, err)
	default:
		fmt.Fprintf(d.w, "refused, but for another reason: %s\n    (%v)\n", what, err)
	}
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
