package main

import (
	"bytes"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"hush.im/internal/wire"
	"hush.im/omemo"
	"hush.im/omemo/legacy"
	"hush.im/sce"
	"hush.im/store/bolt"
	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
)

const omemoUsage = `Usage: hush omemo COMMAND [flags]

OMEMO offline, for debugging and interop: OMEMO 2 (XEP-0384 0.9,
urn:xmpp:omemo:2) and legacy OMEMO (XEP-0384 0.3,
eu.siacs.conversations.axolotl) with one identity and one device id. No
server is involved: PEP payloads and messages are files and pipes. The
device's state lives in --store DIR (one file per account, recorded by
init); --account JID picks the account when DIR holds several. Every command
takes --legacy, which makes it read and write the legacy formats.

Commands:
    init --store DIR --jid JID [--device-id N]
                                   create this device: identity key, device
                                   id, signed prekey and 100 prekeys
    bundle --store DIR             print this device's bundle
                                   (<bundle xmlns='urn:xmpp:omemo:2'>, or the
                                   legacy one with --legacy)
    devicelist --store DIR         print the own device list with this device
                                   (<devices xmlns='urn:xmpp:omemo:2'>, or
                                   <list xmlns='eu.siacs.conversations.axolotl'>)
    add-device --store DIR --jid JID --device N --bundle FILE
                                   record a contact's (or another own)
                                   device from its bundle, as PEP gives it,
                                   and trust it; the protocol is that of the
                                   bundle (--legacy: it must be legacy)
    encrypt --store DIR --to JID [--text T] [--stanza]
                                   encrypt T (or standard input) as the
                                   <body/> for every known device of JID and
                                   every other own device, each with the
                                   newest protocol it announces; print the
                                   <encrypted/> element of each protocol used
                                   (the whole <message/> with --stanza);
                                   --legacy: legacy OMEMO for every device
    decrypt --store DIR --from JID [--xml]
                                   read an <encrypted/> element or a whole
                                   <message/> on standard input, print the
                                   body (the decrypted elements with --xml);
                                   an empty OMEMO message prints nothing
    inspect                        decode the <encrypted/> elements on
                                   standard input without keys: sender,
                                   recipients, key exchanges, sizes

Example:
    $ hush omemo init --store alice --jid alice@example.org
    jid: alice@example.org
    device: 1234567
    fingerprint: 3b6a27bc ce0a1a9a 29fd4ae4 6c2a8b9e 41d2d2b2 a3f8c8a1 f5e4a3b2 c1d0e9f8
    $ hush omemo init --store bob --jid bob@example.net --device-id 7654321
    $ hush omemo bundle --store bob > bob.xml
    $ hush omemo add-device --store alice --jid bob@example.net --device 7654321 --bundle bob.xml
    $ hush omemo encrypt --store alice --to bob@example.net --text 'Hi Bob' > msg.xml
    $ hush omemo decrypt --store bob --from alice@example.org < msg.xml
    Hi Bob
`

// omemoMaxInput bounds what the omemo commands read: a whole stanza on
// standard input, a bundle file.
const omemoMaxInput = sce.MaxStanzaSize

// runOMEMO implements "hush omemo …".
func runOMEMO(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, omemoUsage)
		return &usageError{msg: "omemo: no command given", hint: `run "hush omemo help" for the commands`}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, omemoUsage)
		return nil
	case "init":
		return omemoInit(rest, stdout, stderr)
	case "bundle":
		return omemoBundle(rest, stdout, stderr)
	case "devicelist":
		return omemoDeviceList(rest, stdout, stderr)
	case "add-device":
		return omemoAddDevice(rest, stdout, stderr)
	case "encrypt":
		return omemoEncrypt(rest, stdin, stdout, stderr)
	case "decrypt":
		return omemoDecrypt(rest, stdin, stdout, stderr)
	case "inspect":
		return omemoInspect(rest, stdin, stdout, stderr)
	}
	return &usageError{msg: fmt.Sprintf("omemo: unknown command %q", cmd), hint: `run "hush omemo help" for the commands`}
}

// omemoFlags are the flags every command that uses the store has.
type omemoFlags struct {
	fs      *flag.FlagSet
	store   *string
	account *string
	legacy  *bool
}

func newOMEMOFlags(name, synopsis string, stderr io.Writer, store bool) *omemoFlags {
	f := &omemoFlags{fs: newFlagSet("omemo "+name, synopsis, stderr)}
	if store {
		f.store = f.fs.String("store", "", "the `DIR` holding the device's state")
		f.account = f.fs.String("account", "", "the own `JID`, when DIR holds the state of several accounts")
	}
	f.legacy = f.fs.Bool("legacy", false, "use legacy OMEMO (eu.siacs.conversations.axolotl)")
	return f
}

func (f *omemoFlags) parse(args []string) error {
	if err := parseFlags(f.fs, args); err != nil {
		return err
	}
	if f.fs.NArg() > 0 {
		return &usageError{msg: fmt.Sprintf("omemo: unexpected argument %q", f.fs.Arg(0))}
	}
	if f.store != nil && *f.store == "" {
		return &usageError{msg: "omemo: --store is required"}
	}
	return nil
}

// omemoJIDFlag parses a JID flag value into a bare JID.
func omemoJIDFlag(name, value string) (jid.JID, error) {
	if value == "" {
		return jid.JID{}, &usageError{msg: fmt.Sprintf("omemo: --%s is required", name)}
	}
	j, err := jid.Parse(value)
	if err != nil || j.Domainpart() == "" {
		return jid.JID{}, &usageError{msg: fmt.Sprintf("omemo: --%s: invalid JID %q", name, value)}
	}
	return j.Bare(), nil
}

// omemoDevice is an opened device: its store and Manager.
type omemoDevice struct {
	st *bolt.Store
	m  *omemo.Manager
}

func (d *omemoDevice) Close() error { return d.st.Close() }

// omemoAccounts returns the accounts whose stores are in dir: the bare
// JIDs of the files bolt.Path names.
func omemoAccounts(dir string) ([]jid.JID, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.hush"))
	if err != nil {
		return nil, err
	}
	var out []jid.JID
	for _, name := range names {
		base := strings.TrimSuffix(filepath.Base(name), ".hush")
		s, err := omemoUnescape(base)
		if err != nil {
			continue
		}
		j, err := jid.Parse(s)
		if err != nil || bolt.Path(dir, j) != filepath.Join(dir, filepath.Base(name)) {
			continue
		}
		out = append(out, j)
	}
	return out, nil
}

// omemoUnescape undoes the percent-encoding of bolt.Path.
func omemoUnescape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errors.New("bad escape")
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", err
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

// open opens the device in --store: the account of --account, or the only
// one in the directory.
func (f *omemoFlags) open() (*omemoDevice, error) {
	dir := *f.store
	var account jid.JID
	if *f.account != "" {
		var err error
		if account, err = omemoJIDFlag("account", *f.account); err != nil {
			return nil, err
		}
	} else {
		accounts, err := omemoAccounts(dir)
		if err != nil {
			return nil, err
		}
		switch len(accounts) {
		case 0:
			return nil, fmt.Errorf("omemo: no device in %s (create one with hush omemo init)", dir)
		case 1:
			account = accounts[0]
		default:
			return nil, &usageError{msg: fmt.Sprintf("omemo: %s holds %d accounts", dir, len(accounts)), hint: "pick one with --account JID"}
		}
	}
	path := bolt.Path(dir, account)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("omemo: no device of %s in %s", account, dir)
	}
	st, err := bolt.Open(path, account, nil)
	if err != nil {
		return nil, err
	}
	m, err := omemo.New(account, st, nil)
	if err != nil {
		st.Close()
		return nil, err
	}
	return &omemoDevice{st: st, m: m}, nil
}

func omemoInit(args []string, stdout, stderr io.Writer) error {
	f := newOMEMOFlags("init", "--store DIR --jid JID [--device-id N] [--legacy]", stderr, false)
	f.store = f.fs.String("store", "", "the `DIR` to hold the device's state")
	account := f.fs.String("jid", "", "the account's bare `JID`")
	deviceID := f.fs.Uint("device-id", 0, "the device id `N` (1 … 2^31−1; default random)")
	if err := f.parse(args); err != nil {
		return err
	}
	j, err := omemoJIDFlag("jid", *account)
	if err != nil {
		return err
	}
	if *deviceID > omemo.MaxDeviceID {
		return &usageError{msg: fmt.Sprintf("omemo: --device-id %d is not in 1 … %d", *deviceID, omemo.MaxDeviceID)}
	}
	path := bolt.Path(*f.store, j)
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("omemo: %s already holds a device of %s", *f.store, j)
	}
	if others, _ := omemoAccounts(*f.store); len(others) > 0 {
		return fmt.Errorf("omemo: %s already holds the device of %s", *f.store, others[0])
	}
	st, err := bolt.Open(path, j, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	m, err := omemo.New(j, st, &omemo.Options{DeviceID: uint32(*deviceID)})
	if err != nil {
		os.Remove(path)
		return err
	}
	l, _, err := m.AnnounceDevice(nil)
	if err != nil {
		return err
	}
	if _, err := m.SetDeviceList(j, l); err != nil {
		return err
	}
	ll, _, err := m.AnnounceLegacyDevice(nil)
	if err != nil {
		return err
	}
	if _, err := m.SetLegacyDeviceList(j, ll); err != nil {
		return err
	}
	fp, err := omemoFingerprint(m.IdentityKey())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "jid: %s\ndevice: %d\nfingerprint: %s\n", j, m.DeviceID(), fp)
	return err
}

// omemoFingerprint formats an identity key (Ed25519 form) as XEP-0384 §8
// recommends: its Curve25519 form in eight groups of eight hex digits. It
// is the same for both protocols (Conversations shows legacy fingerprints
// so, without the 05 type byte).
func omemoFingerprint(ik []byte) (string, error) { return omemo.Fingerprint(ik) }

func omemoPrintXML(w io.Writer, v any) error {
	b, err := xml.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func omemoBundle(args []string, stdout, stderr io.Writer) error {
	f := newOMEMOFlags("bundle", "--store DIR [--legacy]", stderr, true)
	if err := f.parse(args); err != nil {
		return err
	}
	d, err := f.open()
	if err != nil {
		return err
	}
	defer d.Close()
	if *f.legacy {
		b, err := d.m.LegacyBundle()
		if err != nil {
			return err
		}
		return omemoPrintXML(stdout, b)
	}
	b, err := d.m.Bundle()
	if err != nil {
		return err
	}
	return omemoPrintXML(stdout, b)
}

func omemoDeviceList(args []string, stdout, stderr io.Writer) error {
	f := newOMEMOFlags("devicelist", "--store DIR [--legacy]", stderr, true)
	if err := f.parse(args); err != nil {
		return err
	}
	d, err := f.open()
	if err != nil {
		return err
	}
	defer d.Close()
	own := d.m.JID()
	if *f.legacy {
		cur, err := d.m.LegacyDeviceList(own)
		if err != nil && !errors.Is(err, omemo.ErrNotFound) {
			return err
		}
		l, _, err := d.m.AnnounceLegacyDevice(cur)
		if err != nil {
			return err
		}
		return omemoPrintXML(stdout, l)
	}
	cur, err := d.m.DeviceList(own)
	if err != nil && !errors.Is(err, omemo.ErrNotFound) {
		return err
	}
	l, _, err := d.m.AnnounceDevice(cur)
	if err != nil {
		return err
	}
	return omemoPrintXML(stdout, l)
}

// omemoReadLimited reads all of r, failing beyond limit bytes.
func omemoReadLimited(r io.Reader, limit int64, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("omemo: reading %s: %w", what, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("omemo: %s is larger than %d bytes", what, limit)
	}
	return b, nil
}

// omemoFindElement returns the first element named local in one of the
// namespaces, anywhere in the document (a bare payload, a PEP <item/>, a
// whole IQ result), decoded into the value returned by make for its
// namespace.
func omemoFindElement(data []byte, local string, make func(ns string) any) (any, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return nil, fmt.Errorf("omemo: no <%s/> of OMEMO 2 or legacy OMEMO found", local)
		} else if err != nil {
			return nil, fmt.Errorf("omemo: %w", err)
		}
		start, ok := tok.(xml.StartElement)
		if !ok || start.Name.Local != local {
			continue
		}
		v := make(start.Name.Space)
		if v == nil {
			continue
		}
		if err := d.DecodeElement(v, &start); err != nil {
			return nil, err
		}
		return v, nil
	}
}

func omemoAddDevice(args []string, stdout, stderr io.Writer) error {
	f := newOMEMOFlags("add-device", "--store DIR --jid JID --device N --bundle FILE [--legacy]", stderr, true)
	account := f.fs.String("jid", "", "the device's bare `JID` (a contact's, or the own one for another own device)")
	device := f.fs.Uint("device", 0, "the device id `N`")
	bundleFile := f.fs.String("bundle", "", "the `FILE` holding the device's bundle (the PEP item or the bare <bundle/>)")
	if err := f.parse(args); err != nil {
		return err
	}
	j, err := omemoJIDFlag("jid", *account)
	if err != nil {
		return err
	}
	if *device == 0 || *device > omemo.MaxDeviceID {
		return &usageError{msg: fmt.Sprintf("omemo: --device must be in 1 … %d", omemo.MaxDeviceID)}
	}
	if *bundleFile == "" {
		return &usageError{msg: "omemo: --bundle is required"}
	}
	file, err := os.Open(*bundleFile)
	if err != nil {
		return fmt.Errorf("omemo: %w", err)
	}
	data, err := omemoReadLimited(file, omemoMaxInput, *bundleFile)
	file.Close()
	if err != nil {
		return err
	}
	v, err := omemoFindElement(data, "bundle", func(ns string) any {
		switch {
		case ns == legacy.NS:
			return new(legacy.Bundle)
		case ns == omemo.NS && !*f.legacy:
			return new(omemo.Bundle)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w", *bundleFile, err)
	}
	d, err := f.open()
	if err != nil {
		return err
	}
	defer d.Close()
	a := omemo.Address{JID: j, Device: uint32(*device)}
	if a.Equal(d.m.Address()) {
		return errors.New("omemo: that is this device")
	}
	var ik []byte
	var proto omemo.Protocol
	switch b := v.(type) {
	case *omemo.Bundle:
		if err := omemo.VerifyBundle(b); err != nil {
			return fmt.Errorf("%s: %w", *bundleFile, err)
		}
		l, err := d.m.DeviceList(j)
		if errors.Is(err, omemo.ErrNotFound) {
			l = &omemo.DeviceList{}
		} else if err != nil {
			return err
		}
		if !l.Contains(a.Device) {
			l.Devices = append(l.Devices, omemo.Device{ID: a.Device})
		}
		if _, err := d.m.SetDeviceList(j, l); err != nil {
			return err
		}
		if err := d.m.SetBundle(a, b); err != nil {
			return err
		}
		ik, proto = b.IdentityKey, omemo.ProtocolOMEMO2
	case *legacy.Bundle:
		if err := legacy.VerifyBundle(b); err != nil {
			return fmt.Errorf("%s: %w", *bundleFile, err)
		}
		if ik, err = legacy.Ed25519IdentityKey(b.IdentityKey, b.SignBit()); err != nil {
			return fmt.Errorf("%s: %w", *bundleFile, err)
		}
		l, err := d.m.LegacyDeviceList(j)
		if errors.Is(err, omemo.ErrNotFound) {
			l = &legacy.DeviceList{}
		} else if err != nil {
			return err
		}
		if !l.Contains(a.Device) {
			l.Devices = append(l.Devices, a.Device)
		}
		if _, err := d.m.SetLegacyDeviceList(j, l); err != nil {
			return err
		}
		if err := d.m.SetLegacyBundle(a, b); err != nil {
			return err
		}
		proto = omemo.ProtocolLegacy
	}
	if err := d.m.SetTrust(j, ik, omemo.TrustTrusted); err != nil {
		return err
	}
	fp, err := omemoFingerprint(ik)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s device %d (%v), trusted: %s\n", j, a.Device, proto, fp)
	return err
}

// omemoText returns the text to encrypt: --text, or standard input without
// one final line ending.
func omemoText(text *string, set bool, stdin io.Reader) (string, error) {
	if set {
		return *text, nil
	}
	b, err := omemoReadLimited(stdin, omemoMaxInput, "standard input")
	if err != nil {
		return "", err
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	return s, nil
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

var (
	nameMessage = xml.Name{Space: "jabber:client", Local: "message"}
	nameBody    = xml.Name{Space: "jabber:client", Local: "body"}
)

func omemoEncrypt(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	f := newOMEMOFlags("encrypt", "--store DIR --to JID [--text T] [--stanza] [--legacy]", stderr, true)
	to := f.fs.String("to", "", "the recipient's bare `JID`")
	text := f.fs.String("text", "", "the message `T` (default: standard input)")
	stanza := f.fs.Bool("stanza", false, "print the whole <message/> instead of the <encrypted/> elements")
	if err := f.parse(args); err != nil {
		return err
	}
	toJID, err := omemoJIDFlag("to", *to)
	if err != nil {
		return err
	}
	body, err := omemoText(text, flagSet(f.fs, "text"), stdin)
	if err != nil {
		return err
	}
	if body == "" {
		return errors.New("omemo: nothing to encrypt: the text is empty")
	}
	if !utf8.ValidString(body) {
		return errors.New("omemo: the text is not UTF-8")
	}
	d, err := f.open()
	if err != nil {
		return err
	}
	defer d.Close()
	plain := &sce.Stanza{
		Name: nameMessage,
		Attr: []xml.Attr{
			{Name: xml.Name{Local: "to"}, Value: toJID.String()},
			{Name: xml.Name{Local: "type"}, Value: "chat"},
		},
		Children: []sce.Element{sce.TextElement(nameBody, body)},
	}
	opts := &omemo.SealOptions{}
	if *f.legacy {
		opts.Only = omemo.ProtocolLegacy
	}
	outer, rep, err := d.m.SealStanza(plain, opts)
	omemoReport(stderr, rep)
	if err != nil {
		return err
	}
	if *stanza {
		b, err := outer.Marshal()
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	for _, el := range outer.Children {
		if el.Name.Local != "encrypted" || (el.Name.Space != omemo.NS && el.Name.Space != legacy.NS) {
			continue
		}
		b, err := xml.Marshal(el)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(stdout, "%s\n", b); err != nil {
			return err
		}
	}
	return nil
}

// omemoReport prints, on stderr, the devices that did not get the message
// or got only part of it.
func omemoReport(stderr io.Writer, rep *omemo.Report) {
	if rep == nil {
		return
	}
	for _, r := range rep.Devices {
		who := r.JID.String()
		if r.DeviceID != 0 {
			who += fmt.Sprintf(" device %d", r.DeviceID)
		}
		switch {
		case !r.OK() && r.Err != nil:
			fmt.Fprintf(stderr, "hush: warning: %s not encrypted to: %v: %v\n", who, r.Reason, r.Err)
		case !r.OK():
			fmt.Fprintf(stderr, "hush: warning: %s not encrypted to: %v\n", who, r.Reason)
		case len(r.Withheld) > 0:
			names := make([]string, len(r.Withheld))
			for i, n := range r.Withheld {
				names[i] = "<" + n.Local + " xmlns='" + n.Space + "'/>"
			}
			fmt.Fprintf(stderr, "hush: warning: %s speaks %v: not sent %s\n", who, r.Protocol, strings.Join(names, ", "))
		}
	}
}

// omemoReadStanza reads the <encrypted/> elements in data (one per
// protocol, as encrypt prints them), wrapped in a <message/> from the
// sender to own, or a whole <message/> (given the sender as 'from' when it
// has none).
func omemoReadStanza(data []byte, from, own jid.JID) (*sce.Stanza, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	var st *sce.Stanza
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("omemo: %w", err)
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if st == nil && start.Name.Local == "message" {
			if st, err = sce.ParseStanza(data); err != nil {
				return nil, err
			}
			break
		}
		if start.Name.Local != "encrypted" || (start.Name.Space != omemo.NS && start.Name.Space != legacy.NS) {
			return nil, fmt.Errorf("omemo: <%s xmlns='%s'> is neither <encrypted/> nor <message/>", start.Name.Local, start.Name.Space)
		}
		el, err := sce.ReadElement(xmlstream.MultiReader(xmlstream.Token(start), d))
		if err != nil {
			return nil, err
		}
		if st == nil {
			st = &sce.Stanza{Name: nameMessage, Attr: []xml.Attr{
				{Name: xml.Name{Local: "to"}, Value: own.String()},
				{Name: xml.Name{Local: "type"}, Value: "chat"},
			}}
		}
		st.Children = append(st.Children, el)
	}
	if st == nil {
		return nil, errors.New("omemo: no <encrypted/> element or <message/> on standard input")
	}
	if f := st.AttrValue("from"); f == "" {
		st.Attr = append(st.Attr, xml.Attr{Name: xml.Name{Local: "from"}, Value: from.String()})
	} else if j, err := jid.Parse(f); err != nil || !j.Bare().Equal(from) {
		return nil, fmt.Errorf("omemo: the message is from %q, not --from %s", f, from)
	}
	return st, nil
}

func omemoDecrypt(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	f := newOMEMOFlags("decrypt", "--store DIR --from JID [--xml] [--legacy] < MESSAGE", stderr, true)
	fromFlag := f.fs.String("from", "", "the sender's bare `JID`")
	asXML := f.fs.Bool("xml", false, "print the decrypted elements instead of the body text")
	if err := f.parse(args); err != nil {
		return err
	}
	from, err := omemoJIDFlag("from", *fromFlag)
	if err != nil {
		return err
	}
	data, err := omemoReadLimited(stdin, omemoMaxInput, "standard input")
	if err != nil {
		return err
	}
	d, err := f.open()
	if err != nil {
		return err
	}
	defer d.Close()
	st, err := omemoReadStanza(data, from, d.m.JID())
	if err != nil {
		return err
	}
	if *f.legacy {
		st.Children = slices.DeleteFunc(st.Children, func(el sce.Element) bool {
			return el.Name == xml.Name{Space: omemo.NS, Local: "encrypted"}
		})
	}
	op, err := d.m.OpenStanza(st, &omemo.OpenOptions{Sender: from})
	if errors.Is(err, omemo.ErrUnknownDevice) {
		return fmt.Errorf("%w: record the sender's legacy bundle first (hush omemo add-device)", err)
	} else if err != nil {
		return err
	}
	if op.Stanza == nil {
		return nil // an empty OMEMO message
	}
	var out bytes.Buffer
	for _, el := range op.Stanza.Children {
		if !el.Encrypted {
			continue
		}
		if *asXML {
			b, err := xml.Marshal(el)
			if err != nil {
				return err
			}
			out.Write(b)
		} else if el.Name.Local == "body" && out.Len() == 0 {
			out.WriteString(el.Text())
		}
	}
	if out.Len() == 0 {
		return nil
	}
	out.WriteByte('\n')
	_, err = stdout.Write(out.Bytes())
	return err
}

func omemoInspect(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	f := newOMEMOFlags("inspect", "[--legacy] < ENCRYPTED", stderr, false)
	if err := f.parse(args); err != nil {
		return err
	}
	data, err := omemoReadLimited(stdin, omemoMaxInput, "standard input")
	if err != nil {
		return err
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	var out bytes.Buffer
	found := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("omemo: %w", err)
		}
		start, ok := tok.(xml.StartElement)
		if !ok || start.Name.Local != "encrypted" {
			continue
		}
		switch {
		case start.Name.Space == omemo.NS && !*f.legacy:
			var e omemo.Encrypted
			if err := d.DecodeElement(&e, &start); err != nil {
				return err
			}
			omemoInspect2(&out, &e)
		case start.Name.Space == legacy.NS:
			var e legacy.Encrypted
			if err := d.DecodeElement(&e, &start); err != nil {
				return err
			}
			omemoInspectLegacy(&out, &e)
		default:
			continue
		}
		found++
	}
	if found == 0 {
		return errors.New("omemo: no <encrypted/> element on standard input")
	}
	_, err = stdout.Write(out.Bytes())
	return err
}

func omemoInspect2(w io.Writer, e *omemo.Encrypted) {
	n := 0
	for _, ks := range e.Keys {
		n += len(ks.Keys)
	}
	fmt.Fprintf(w, "OMEMO 2 (%s)\n  sender device: %d\n", omemo.NS, e.SID)
	if e.Payload == nil {
		fmt.Fprintf(w, "  payload: none (empty OMEMO message)\n")
	} else {
		fmt.Fprintf(w, "  payload: %d bytes\n", len(e.Payload))
	}
	fmt.Fprintf(w, "  keys: %d\n", n)
	for _, ks := range e.Keys {
		for _, k := range ks.Keys {
			fmt.Fprintf(w, "    %s device %d: %s\n", ks.JID, k.RID, omemoDescribeKey2(k))
		}
	}
}

// omemoDescribeKey2 describes an OMEMO 2 <key> from its public header.
func omemoDescribeKey2(k omemo.Key) string {
	auth := k.Data
	prefix := "message"
	if k.KEX {
		var kex wire.OMEMOKeyExchange
		if err := kex.Unmarshal(k.Data); err != nil {
			return fmt.Sprintf("key exchange, %d bytes, malformed: %v", len(k.Data), err)
		}
		fp, _ := omemo.Fingerprint(kex.IK)
		prefix = fmt.Sprintf("key exchange (prekey %d, signed prekey %d, identity %s), message", kex.PKID, kex.SPKID, fp)
		auth = kex.Message.Marshal()
	}
	var am wire.OMEMOAuthenticatedMessage
	var m wire.OMEMOMessage
	if err := am.Unmarshal(auth); err != nil {
		return fmt.Sprintf("%s, %d bytes, malformed: %v", prefix, len(k.Data), err)
	}
	if err := m.Unmarshal(am.Message); err != nil {
		return fmt.Sprintf("%s, %d bytes, malformed: %v", prefix, len(k.Data), err)
	}
	return fmt.Sprintf("%s n=%d pn=%d ratchet key %s, %d bytes", prefix, m.N, m.PN, hex.EncodeToString(m.DHPub)[:16], len(k.Data))
}

func omemoInspectLegacy(w io.Writer, e *legacy.Encrypted) {
	fmt.Fprintf(w, "legacy OMEMO (%s)\n  sender device: %d\n  iv: %d bytes\n", legacy.NS, e.SID, len(e.IV))
	if e.Payload == nil {
		fmt.Fprintf(w, "  payload: none (KeyTransportElement, an empty OMEMO message)\n")
	} else {
		fmt.Fprintf(w, "  payload: %d bytes\n", len(e.Payload))
	}
	fmt.Fprintf(w, "  keys: %d\n", len(e.Keys))
	for _, k := range e.Keys {
		fmt.Fprintf(w, "    device %d: %s\n", k.RID, omemoDescribeKeyLegacy(k))
	}
}

// omemoDescribeKeyLegacy describes a legacy <key> from its public header.
func omemoDescribeKeyLegacy(k legacy.Key) string {
	msg := k.Data
	prefix := "message"
	if k.PreKey {
		kex, err := legacy.ParseKeyExchange(k.Data)
		if err != nil {
			return fmt.Sprintf("key exchange, %d bytes, malformed: %v", len(k.Data), err)
		}
		prefix = fmt.Sprintf("key exchange (prekey %d, signed prekey %d, identity 05%s), message", kex.PreKeyID, kex.SignedPreKeyID, hex.EncodeToString(kex.IdentityKey))
		msg = kex.SignalMessage()
	}
	m, _, _, err := wire.ParseFramedSignalMessage(msg)
	if err != nil {
		return fmt.Sprintf("%s, %d bytes, malformed: %v", prefix, len(k.Data), err)
	}
	return fmt.Sprintf("%s counter=%d previous=%d ratchet key %s, %d bytes", prefix, m.Counter, m.PreviousCounter, hex.EncodeToString(m.RatchetKey)[:16], len(k.Data))
}
