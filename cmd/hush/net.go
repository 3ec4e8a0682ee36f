package main

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"hush.im/client"
	"hush.im/omemo"
	"hush.im/ox"
	"hush.im/sce"
)

// Exit codes beyond 0 (success), 1 (failure) and exitUsage.
const (
	// exitTimeout: hush listen --count N timed out before N messages.
	exitTimeout = 3
	// exitNotSent: hush send found no trusted device of the contact and
	// sent nothing (DESIGN: fail closed).
	exitNotSent = 4
)

// Network command limits.
const (
	// netTimeout bounds connecting plus one command's round trips.
	netTimeout = 60 * time.Second
	// maxMessage bounds the text of one message read from standard input
	// (what fits in a stanza, sce.MaxStanzaSize).
	maxMessage = sce.MaxStanzaSize / 2
	// flushTimeout bounds the follow-up work (bundle republish, empty
	// messages) done before a command disconnects.
	flushTimeout = 10 * time.Second
)

var nsClient = "jabber:client"

// errNoTrustedDevice reports a send that would reach no trusted device of
// the contact.
var errNoTrustedDevice = errors.New("no trusted device of the contact could be encrypted for; nothing was sent")

// hushEngine is the OMEMO engine (OMEMO 2 and legacy OMEMO) as hush uses
// it. It keeps the trust index that BTBV reads up to date with the devices
// of each peer before encrypting to it or decrypting from it, encrypts
// with the protocol hush send was asked for (session.only), and, for hush
// send, refuses (so that client.SendEncrypted sends nothing) unless a
// device of the recipient, not only another own device, got a key.
type hushEngine struct {
	*client.OMEMO
	s *session
}

// Encrypt implements client.Engine.
func (e hushEngine) Encrypt(ctx context.Context, plain *sce.Stanza) (*sce.Stanza, *client.Report, error) {
	to, err := jid.Parse(plain.AttrValue("to"))
	if err != nil {
		return nil, nil, err
	}
	if err := e.s.observe(to.Bare()); err != nil {
		return nil, nil, err
	}
	out, rep, err := e.OMEMO.EncryptOnly(ctx, plain, e.s.only)
	if err != nil {
		return nil, rep, err
	}
	for _, d := range rep.Sent() {
		if d.JID.Bare().Equal(to.Bare()) {
			return out, rep, nil
		}
	}
	return nil, rep, errNoTrustedDevice
}

// Decrypt implements client.Engine.
func (e hushEngine) Decrypt(ctx context.Context, in *client.Incoming) (*sce.Stanza, *client.Security, error) {
	if err := e.s.observe(in.From.Bare()); err != nil {
		return nil, nil, err
	}
	return e.decryptOMEMO(ctx, in)
}

const sendSynopsis = "[--omemo|--legacy|--ox] [account flags] JID [TEXT]"

// sendProtocol is the protocol of one hush send.
type sendProtocol int

const (
	sendAuto   sendProtocol = iota // the best the contact announces
	sendOMEMO2                     // OMEMO 2 alone
	sendLegacy                     // legacy OMEMO alone
	sendOX                         // OpenPGP for XMPP
)

// protocolFlags are the protocol flags of hush send and hush chat.
type protocolFlags struct{ omemo2, legacy, ox *bool }

func addProtocolFlags(fs *flag.FlagSet) *protocolFlags {
	return &protocolFlags{
		omemo2: fs.Bool("omemo", false, "encrypt with OMEMO 2 (XEP-0384 0.9) alone"),
		legacy: fs.Bool("legacy", false, "encrypt with legacy OMEMO (eu.siacs.conversations.axolotl) alone: the body only"),
		ox:     fs.Bool("ox", false, "encrypt with OpenPGP for XMPP (XEP-0373/0374); the own key is made and published on first use"),
	}
}

// protocol returns the protocol asked for; sendAuto without a flag.
func (f *protocolFlags) protocol(cmd string) (sendProtocol, error) {
	proto := sendAuto
	for _, c := range []struct {
		set bool
		p   sendProtocol
	}{{*f.omemo2, sendOMEMO2}, {*f.legacy, sendLegacy}, {*f.ox, sendOX}} {
		if !c.set {
			continue
		}
		if proto != sendAuto {
			return 0, &usageError{msg: cmd + ": --omemo, --legacy and --ox exclude each other"}
		}
		proto = c.p
	}
	return proto, nil
}

// oxMode is the OX mode connect needs for proto.
func (p sendProtocol) oxMode() oxMode {
	if p == sendOX {
		return oxCreate
	}
	return oxIfPresent
}

func runSend(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("send", sendSynopsis, stderr)
	af := addAccountFlags(fs)
	pf := addProtocolFlags(fs)
	if err := parseNetFlags(fs, args); err != nil {
		return err
	}
	proto, err := pf.protocol("send")
	if err != nil {
		return err
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		return &usageError{msg: "send: want JID and optionally TEXT", hint: "hush send " + sendSynopsis}
	}
	to, err := jid.Parse(fs.Arg(0))
	if err != nil || to.Domainpart() == "" {
		return &usageError{msg: fmt.Sprintf("send: invalid JID %q", fs.Arg(0))}
	}
	to = to.Bare()
	text, err := messageText(fs, stdin)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), netTimeout)
	defer cancel()
	s, err := af.connect(ctx, stdin, stderr, proto.oxMode())
	if err != nil {
		return err
	}
	defer s.close()
	protocol, err := s.prepareSend(ctx, to, proto)
	if err != nil {
		return &exitError{code: exitNotSent, err: fmt.Errorf("send: %w", err), hint: sendHint}
	}
	rep, err := s.sendText(ctx, protocol, to, text)
	printReport(stderr, rep)
	if errors.Is(err, errNoTrustedDevice) {
		return &exitError{code: exitNotSent, err: fmt.Errorf("send: %w", err),
			hint: fmt.Sprintf(`see "hush fingerprints %s" and "hush trust"`, to)}
	}
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	fctx, fcancel := context.WithTimeout(context.Background(), flushTimeout)
	defer fcancel()
	if err := s.o.Flush(fctx); err != nil {
		fmt.Fprintf(stderr, "hush: warning: %v\n", err)
	}
	return nil
}

// sendHint is the hint of a send whose protocol the contact lacks.
const sendHint = "without a protocol flag hush picks one the contact announces; it never sends plaintext"

// prepareSend readies the session for messages to to with proto (the
// best the contact announces for sendAuto, see chooseProtocol) and
// returns the protocol to give client.SendEncrypted. An error means no
// message can be encrypted to to with proto; it names to.
func (s *session) prepareSend(ctx context.Context, to jid.JID, proto sendProtocol) (xml.Name, error) {
	var err error
	if proto == sendAuto {
		if proto, err = s.chooseProtocol(ctx, to); err != nil {
			return xml.Name{}, err
		}
	}
	switch proto {
	case sendOX:
		if s.x == nil {
			if err := s.startOX(ctx, true); err != nil {
				return xml.Name{}, err
			}
		}
		return client.OXEncrypted, nil
	case sendLegacy:
		s.only = omemo.ProtocolLegacy
		err = s.o.RefreshLegacyDevices(ctx, to)
	case sendOMEMO2:
		s.only = omemo.ProtocolOMEMO2
		err = s.o.RefreshDevices(ctx, to)
	}
	if err != nil {
		if errors.Is(err, client.ErrNoDeviceList) {
			return xml.Name{}, fmt.Errorf("%w; nothing was sent", err)
		}
		return xml.Name{}, fmt.Errorf("%s: %w; nothing was sent", to, err)
	}
	return client.OMEMOEncrypted, nil
}

// sendText sends text to to as a chat message encrypted with protocol.
// When no trusted device of the contact could get a key, nothing is sent
// and the error wraps errNoTrustedDevice.
func (s *session) sendText(ctx context.Context, protocol xml.Name, to jid.JID, text string) (*client.Report, error) {
	oid, err := s.originID()
	if err != nil {
		return nil, err
	}
	msg := &sce.Stanza{
		Name: xml.Name{Space: nsClient, Local: "message"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "to"}, Value: to.String()}, {Name: xml.Name{Local: "type"}, Value: "chat"}},
		Children: []sce.Element{
			sce.TextElement(xml.Name{Space: nsClient, Local: "body"}, text),
			oid,
		},
	}
	rep, err := s.c.SendEncrypted(ctx, protocol, msg)
	switch {
	case errors.Is(err, ox.ErrNoRecipients):
		return rep, &exitError{code: exitNotSent, err: fmt.Errorf("%s announces no OpenPGP key; nothing was sent", to), hint: sendHint}
	case reachedNoDevice(err):
		return rep, fmt.Errorf("%s: %w", to, errNoTrustedDevice)
	}
	return rep, err
}

// reachedNoDevice reports whether a failed encrypted send reached no
// trusted device of the contact, in any of the ways the engines say so.
func reachedNoDevice(err error) bool {
	var noDevice *omemo.NoEligibleDevicesError
	return errors.Is(err, errNoTrustedDevice) || errors.Is(err, client.ErrNoRecipientDevice) || errors.As(err, &noDevice)
}

// messageText returns the TEXT argument of hush send, or standard input
// without its final newline.
func messageText(fs *flag.FlagSet, stdin io.Reader) (string, error) {
	var text string
	if fs.NArg() == 2 {
		text = fs.Arg(1)
	} else {
		b, err := io.ReadAll(io.LimitReader(stdin, maxMessage+1))
		if err != nil {
			return "", err
		}
		if len(b) > maxMessage {
			return "", fmt.Errorf("send: message longer than %d bytes", maxMessage)
		}
		text = strings.TrimSuffix(string(b), "\n")
	}
	if text == "" {
		return "", &usageError{msg: "send: empty message"}
	}
	if !utf8.ValidString(text) {
		return "", errors.New("send: message is not UTF-8")
	}
	return text, nil
}

// deviceListError makes one error of what client.OMEMO.Prepare returned
// for target (one error per protocol): that it announces no OMEMO device
// list, or the first other failure.
func deviceListError(target jid.JID, err error) error {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		if !errors.Is(e, client.ErrNoDeviceList) {
			return fmt.Errorf("%s: %w", target, e)
		}
	}
	return &noDeviceListError{target}
}

// noDeviceListError is a contact that announces no OMEMO device list of
// either protocol; it is client.ErrNoDeviceList.
type noDeviceListError struct{ jid jid.JID }

func (e *noDeviceListError) Error() string {
	return e.jid.String() + " announces no OMEMO device list (OMEMO 2 or legacy)"
}

func (e *noDeviceListError) Unwrap() error { return client.ErrNoDeviceList }

// chooseProtocol picks the protocol of a hush send without a protocol
// flag: OMEMO when the contact announces an OMEMO device list (OMEMO 2 or
// legacy; each device then gets the newest protocol it announces), else
// OX when it announces an OpenPGP key (XEP-0373 §4.2), else none: the
// send fails closed (exit 4).
func (s *session) chooseProtocol(ctx context.Context, to jid.JID) (sendProtocol, error) {
	omemoErr := s.o.Prepare(ctx, to)
	if omemoErr == nil {
		devs, err := s.o.Manager().Devices(to)
		if err != nil {
			return 0, err
		}
		if slices.ContainsFunc(devs, func(d omemo.DeviceInfo) bool { return d.Listed }) {
			return sendAuto, nil
		}
	}
	items, err := s.c.FetchItems(ctx, to, ox.NodePublicKeys)
	if err == nil && len(items) > 0 {
		return sendOX, nil
	}
	return 0, fmt.Errorf("%s announces no OMEMO device and no OpenPGP key; nothing was sent", to)
}

// printReport prints the delivery report of a send on stderr: which
// devices got a key, which did not and why.
func printReport(stderr io.Writer, rep *client.Report) {
	if rep == nil {
		return
	}
	for _, d := range rep.Devices {
		who := d.JID.String()
		if d.Device != "" {
			who += " device " + d.Device
		}
		switch {
		case d.Sent:
			fmt.Fprintf(stderr, "hush: sent to %s\n", who)
		case d.Err != nil:
			fmt.Fprintf(stderr, "hush: skipped %s: %s: %v\n", who, d.Reason, d.Err)
		default:
			fmt.Fprintf(stderr, "hush: skipped %s: %s\n", who, d.Reason)
		}
	}
}

// listened is one decrypted message as hush listen prints it.
type listened struct {
	From     string `json:"from"`
	Device   string `json:"device"`
	Protocol string `json:"protocol"`
	Trust    string `json:"trust"`
	Via      string `json:"via"`
	Text     string `json:"text"`
}

// protocolName names an engine's encrypted element for output.
func protocolName(n xml.Name) string {
	switch n {
	case client.OMEMOEncrypted:
		return "omemo2"
	case client.OMEMOLegacyEncrypted:
		return "legacy"
	case client.OXEncrypted:
		return "ox"
	}
	return n.Space
}

func runListen(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("listen", "[--json] [--count N] [--timeout DURATION] [account flags]", stderr)
	af := addAccountFlags(fs)
	asJSON := fs.Bool("json", false, "print one JSON object per message")
	useOX := fs.Bool("ox", false, "also receive OX: make and publish the own OX key if there is none (without it, OX is on when the key exists)")
	count := fs.Int("count", 0, "exit after `N` messages (0: no limit)")
	timeout := fs.Duration("timeout", 0, "exit after `DURATION` (0: no limit); with --count, exit 3 if fewer than N messages came")
	shortName(fs, "n", "count")
	shortName(fs, "t", "timeout")
	if err := parseNetFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{msg: fmt.Sprintf("listen: unexpected argument %q", fs.Arg(0))}
	}
	if *count < 0 || *timeout < 0 {
		return &usageError{msg: "listen: --count and --timeout must not be negative"}
	}
	// Handlers run on goroutines of their own: one writer at a time.
	stderr = &lockedWriter{w: stderr}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cctx, ccancel := context.WithTimeout(ctx, netTimeout)
	defer ccancel()
	mode := oxIfPresent
	if *useOX {
		mode = oxCreate
	}
	s, err := af.connect(cctx, stdin, stderr, mode)
	if err != nil {
		return err
	}
	defer s.close()

	// Every decrypted message goes to the store inbox first (OMEMO 2:
	// with its ratchet step, see hushEngine.Decrypt); this loop prints
	// what the inbox holds and acknowledges it only after printing, so a
	// message that arrived while a previous listen died is printed now.
	wake, signalInbox := s.handleIntoInbox(stderr)
	// What another device of the account took from the server while this
	// one was offline is in the archive (XEP-0313).
	if err := s.catchUp(cctx, stderr); err != nil {
		fmt.Fprintf(stderr, "hush: warning: archive catch-up: %v\n", err)
	}
	if err := s.c.EnableCarbons(cctx); err != nil {
		fmt.Fprintf(stderr, "hush: warning: carbons: %v\n", err)
	}
	if err := s.c.Online(cctx); err != nil {
		return err
	}
	ccancel()
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	n := 0
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	var result error
	signalInbox() // what an earlier listen left unprinted
loop:
	for *count == 0 || n < *count {
		select {
		case <-wake:
			pending, err := s.pendingInbox(inboxPage)
			if err != nil {
				return fmt.Errorf("listen: inbox: %w", err)
			}
			if len(pending) == inboxPage {
				signalInbox()
			}
			for _, pm := range pending {
				if *count > 0 && n >= *count {
					break loop
				}
				m, err := decodeEntry(pm)
				if err != nil {
					fmt.Fprintf(stderr, "hush: warning: %v\n", err)
				} else if *asJSON {
					if err := enc.Encode(m); err != nil {
						return err
					}
				} else if _, err := fmt.Fprintf(stdout, "%s [device %s, %s, %s]: %s\n", m.From, m.Device, m.Protocol, m.Trust, m.Text); err != nil {
					return err
				}
				if err := s.ack(pm.Seq); err != nil {
					return fmt.Errorf("listen: inbox: %w", err)
				}
				n++
			}
		case <-s.c.Done():
			result = fmt.Errorf("listen: disconnected: %v", s.c.Err())
			break loop
		case <-ctx.Done():
			if *count > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				result = &exitError{code: exitTimeout, err: fmt.Errorf("listen: timeout after %d of %d messages", n, *count)}
			}
			break loop
		}
	}
	// The follow-up of what was read: republish the bundle, answer key
	// exchanges (XEP-0384 §5.5.3).
	fctx, fcancel := context.WithTimeout(context.Background(), flushTimeout)
	defer fcancel()
	if err := s.o.Flush(fctx); err != nil {
		fmt.Fprintf(stderr, "hush: warning: %v\n", err)
	}
	return result
}

// runDevices implements "hush devices [JID]" and "hush fingerprints
// [JID]": fetch the device list and bundles, print what is known.
func runDevices(name string, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet(name, "[account flags] [JID]", stderr)
	af := addAccountFlags(fs)
	if err := parseNetFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return &usageError{msg: fmt.Sprintf("%s: unexpected argument %q", name, fs.Arg(1))}
	}
	var target jid.JID
	if fs.NArg() == 1 {
		j, err := jid.Parse(fs.Arg(0))
		if err != nil || j.Domainpart() == "" {
			return &usageError{msg: fmt.Sprintf("%s: invalid JID %q", name, fs.Arg(0))}
		}
		target = j.Bare()
	}
	ctx, cancel := context.WithTimeout(context.Background(), netTimeout)
	defer cancel()
	s, err := af.connect(ctx, stdin, stderr, oxOff)
	if err != nil {
		return err
	}
	defer s.close()
	m := s.o.Manager()
	own := m.JID()
	if target.Domainpart() == "" {
		target = own
	}
	if err := s.o.Prepare(ctx, target); err != nil {
		return fmt.Errorf("%s: %w", name, deviceListError(target, err))
	}
	if err := s.observe(target); err != nil {
		return err
	}
	devs, err := m.Devices(target)
	if err != nil {
		return err
	}
	if target.Equal(own) {
		fpr, err := omemo.Fingerprint(m.IdentityKey())
		if err != nil {
			return err
		}
		printDevice(stdout, name, strconv.FormatUint(uint64(m.DeviceID()), 10), fpr, "this device", "")
	}
	for _, d := range devs {
		fpr := "(no key known)"
		if d.IdentityKey != nil {
			if fpr, err = omemo.Fingerprint(d.IdentityKey); err != nil {
				return err
			}
		}
		var state []string
		if !d.Listed {
			state = append(state, "not listed")
		}
		if d.Session {
			state = append(state, "session")
		}
		if d.Label != "" {
			state = append(state, strconv.Quote(d.Label))
		}
		if !d.LastMessage.IsZero() {
			state = append(state, "last message "+d.LastMessage.Local().Format(lastMessageLayout))
		}
		printDevice(stdout, name, strconv.FormatUint(uint64(d.Device), 10), fpr, d.Trust.String(), strings.Join(state, ", "))
	}
	return nil
}

// lastMessageLayout is how hush devices shows when a device's last
// message was decrypted, in local time.
const lastMessageLayout = "2006-01-02 15:04 MST"

func printDevice(w io.Writer, cmd, id, fpr, trust, state string) {
	if cmd == "fingerprints" {
		fmt.Fprintf(w, "%-10s %s  %s\n", id, fpr, trust)
		return
	}
	if state != "" {
		trust += ", " + state
	}
	fmt.Fprintf(w, "%-10s %s\n", id, trust)
}

// tokens reads tokens from a slice.
type tokens struct{ toks []xml.Token }

func (t *tokens) Token() (xml.Token, error) {
	if len(t.toks) == 0 {
		return nil, io.EOF
	}
	tok := t.toks[0]
	t.toks = t.toks[1:]
	return tok, nil
}

// runTrust implements "hush trust JID ID|FPR" (verified) and "hush
// distrust JID ID|FPR", offline on the store (XEP-0384 §8, XEP-0450).
func runTrust(name string, level omemo.TrustLevel, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet(name, "[--store DIR] JID ID|FINGERPRINT", stderr)
	af := addAccountFlags(fs)
	if err := parseNetFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 2 {
		return &usageError{msg: name + ": want JID and a device ID or fingerprint", hint: `see "hush fingerprints JID"`}
	}
	target, err := jid.Parse(fs.Arg(0))
	if err != nil || target.Domainpart() == "" {
		return &usageError{msg: fmt.Sprintf("%s: invalid JID %q", name, fs.Arg(0))}
	}
	target = target.Bare()
	want := strings.ToLower(strings.Join(fs.Args()[1:], ""))
	want = strings.ReplaceAll(want, " ", "")
	a, err := af.resolve()
	if err != nil {
		return err
	}
	st, err := openStore(a, false)
	if err != nil {
		return err
	}
	defer st.Close()
	m, err := omemo.New(a.jid, st, nil)
	if err != nil {
		return err
	}
	devs, err := m.Devices(target)
	if err != nil {
		return err
	}
	for _, d := range devs {
		fpr := ""
		if d.IdentityKey != nil {
			if fpr, err = omemo.Fingerprint(d.IdentityKey); err != nil {
				return err
			}
		}
		if want != strconv.FormatUint(uint64(d.Device), 10) && (fpr == "" || want != strings.ReplaceAll(fpr, " ", "")) {
			continue
		}
		if d.IdentityKey == nil {
			return &hintError{err: fmt.Errorf("%s: no key known for %s device %d", name, target, d.Device), hint: fmt.Sprintf(`fetch it with "hush fingerprints %s"`, target)}
		}
		if err := m.SetTrust(target, d.IdentityKey, level); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s device %d %s: %s\n", target, d.Device, fpr, level)
		return nil
	}
	return &hintError{err: fmt.Errorf("%s: no device %s of %s known", name, fs.Arg(1), target), hint: fmt.Sprintf(`see "hush fingerprints %s"`, target)}
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
