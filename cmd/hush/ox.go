package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"hush.im/ox"
	"hush.im/sce"
	"mellium.im/xmpp/jid"
)

const oxUsage = `Usage: hush ox COMMAND [flags]

OpenPGP for XMPP (XEP-0373, XEP-0374) offline, for debugging and interop.
Keys are files, armored or binary, as gpg exports them.

Commands:
    keygen --jid JID [--rsa]       print a new armored secret key with the
                                   User ID xmpp:JID (Ed25519 + Curve25519,
                                   or RSA-3072)
    public                         read secret keys on stdin, print the
                                   armored public keys
    signcrypt --key SECRET --from JID --to JID --recipient-key PUBLIC
              [--recipient-key PUBLIC ...] [--text T] [--stanza]
                                   sign a <signcrypt/> with T (or stdin) as
                                   the body, encrypt it to the recipient keys
                                   and to SECRET, print the <openpgp/> element
                                   (the whole <message/> with --stanza)
    decrypt --key SECRET --sender-key PUBLIC --from JID --to JID [--xml]
            [--now DATETIME] [--window DURATION]
                                   read an <openpgp/> element or a whole
                                   <message/> on stdin, verify it, print the
                                   body (the content element with --xml)
    backup --key SECRET            print a new backup code on stderr and the
                                   <secretkey/> element on stdout
    restore --code CODE            read a <secretkey/> element on stdin,
                                   print the armored secret keys
    keys [account flags] [JID]     (online) the OX keys the account or JID
                                   announces in PEP

Example:
    $ hush ox keygen --jid alice@example.org > alice.sec
    $ hush ox keygen --jid bob@example.org > bob.sec
    $ hush ox public < bob.sec > bob.pub
    $ hush ox public < alice.sec > alice.pub
    $ hush ox signcrypt --key alice.sec --from alice@example.org \
          --to bob@example.org --recipient-key bob.pub --text 'Hi Bob' > msg.xml
    $ hush ox decrypt --key bob.sec --sender-key alice.pub \
          --from alice@example.org --to bob@example.org < msg.xml
    Hi Bob
    $ hush ox backup --key alice.sec > backup.xml
    TWNK-KD5Y-MT3T-E1GS-DRDB-KVTW
    $ hush ox restore --code TWNK-KD5Y-MT3T-E1GS-DRDB-KVTW < backup.xml > restored.sec
`

// maxOXInput bounds what the ox commands read from stdin: a whole stanza.
const maxOXInput = sce.MaxStanzaSize

// runOX implements "hush ox …".
func runOX(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, oxUsage)
		return &usageError{msg: "ox: no command given", hint: `run "hush ox help" for the commands`}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, oxUsage)
		return nil
	case "keygen":
		return oxKeygen(rest, stdout, stderr)
	case "public":
		return oxPublic(rest, stdin, stdout, stderr)
	case "signcrypt":
		return oxSigncrypt(rest, stdin, stdout, stderr)
	case "decrypt":
		return oxDecrypt(rest, stdin, stdout, stderr)
	case "backup":
		return oxBackup(rest, stdout, stderr)
	case "restore":
		return oxRestore(rest, stdin, stdout, stderr)
	case "keys":
		return runOXKeys(rest, stdin, stdout, stderr)
	}
	return &usageError{msg: fmt.Sprintf("ox: unknown command %q", cmd), hint: `run "hush ox help" for the commands`}
}

// oxFileList is a repeatable flag of file names.
type oxFileList []string

func (f *oxFileList) String() string { return strings.Join(*f, ",") }

func (f *oxFileList) Set(s string) error {
	*f = append(*f, s)
	return nil
}

// oxJIDFlag parses a JID flag value.
func oxJIDFlag(name, value string) (jid.JID, error) {
	if value == "" {
		return jid.JID{}, &usageError{msg: fmt.Sprintf("ox: --%s is required", name)}
	}
	j, err := jid.Parse(value)
	if err != nil {
		return jid.JID{}, &usageError{msg: fmt.Sprintf("ox: --%s: invalid JID %q", name, value)}
	}
	return j, nil
}

func oxNoArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return &usageError{msg: fmt.Sprintf("ox: unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

// oxReadLimited reads all of r, failing beyond limit bytes.
func oxReadLimited(r io.Reader, limit int64, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("ox: reading %s: %w", what, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("ox: %s is larger than %d bytes", what, limit)
	}
	return b, nil
}

// oxReadKeyFile reads the keys in a file; secret says whether they must be
// secret keys, which are returned unlocked.
func oxReadKeyFile(name string, secret bool) ([]*ox.Key, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("ox: %w", err)
	}
	defer f.Close()
	b, err := oxReadLimited(f, ox.MaxKeyDataSize, name)
	if err != nil {
		return nil, err
	}
	keys, err := ox.ParseKeys(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for _, k := range keys {
		if secret && !k.IsSecret() {
			return nil, fmt.Errorf("%s: %w", name, &ox.KeyError{Fingerprint: k.Fingerprint(), Err: ox.ErrNotSecret})
		}
		if secret && k.Locked() {
			return nil, fmt.Errorf("%s: %w (remove the passphrase, e.g. with gpg --passwd, and export again)",
				name, &ox.KeyError{Fingerprint: k.Fingerprint(), Err: ox.ErrKeyLocked})
		}
	}
	return keys, nil
}

func oxKeygen(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ox keygen", "--jid JID [--rsa]", stderr)
	addr := fs.String("jid", "", "the `JID` for the User ID xmpp:JID")
	rsa := fs.Bool("rsa", false, "make an RSA-3072 key instead of Ed25519 + Curve25519")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := oxNoArgs(fs); err != nil {
		return err
	}
	j, err := oxJIDFlag("jid", *addr)
	if err != nil {
		return err
	}
	alg := ox.Curve25519
	if *rsa {
		alg = ox.RSA3072
	}
	k, err := ox.GenerateKey(j, alg)
	if err != nil {
		return err
	}
	b, err := k.ArmorSecret()
	if err != nil {
		return err
	}
	_, err = stdout.Write(b)
	return err
}

func oxPublic(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("ox public", "< SECRET", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := oxNoArgs(fs); err != nil {
		return err
	}
	b, err := oxReadLimited(stdin, ox.MaxKeyDataSize, "standard input")
	if err != nil {
		return err
	}
	keys, err := ox.ParseKeys(b)
	if err != nil {
		return err
	}
	for _, k := range keys {
		out, err := k.ArmorPublic()
		if err != nil {
			return err
		}
		if _, err := stdout.Write(out); err != nil {
			return err
		}
	}
	return nil
}

// oxSignerFor picks the first secret key usable for signing with a User ID for
// from; the others are returned as own keys to encrypt to.
func oxSignerFor(keys []*ox.Key, from jid.JID) (signer *ox.Key, own []*ox.Key, err error) {
	var firstErr error
	for _, k := range keys {
		if signer == nil {
			err := k.Check()
			if err == nil && !k.HasJID(from) {
				err = &ox.KeyError{Fingerprint: k.Fingerprint(), Err: ox.ErrSignerMismatch}
			}
			if err == nil {
				signer = k
				continue
			}
			if firstErr == nil {
				firstErr = err
			}
		}
		own = append(own, k.Public())
	}
	if signer == nil {
		return nil, nil, fmt.Errorf("no usable secret key for %s: %w", from.Bare(), firstErr)
	}
	return signer, own, nil
}

func oxSigncrypt(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("ox signcrypt", "--key SECRET --from JID --to JID --recipient-key PUBLIC [--recipient-key PUBLIC ...] [--text T]", stderr)
	keyFile := fs.String("key", "", "the sender's secret key `file`")
	fromFlag := fs.String("from", "", "the sender's `JID`")
	toFlag := fs.String("to", "", "the recipient's `JID`")
	var recipients oxFileList
	fs.Var(&recipients, "recipient-key", "a recipient's public key `file` (repeatable)")
	text := fs.String("text", "", "the message `text` (default: standard input)")
	stanza := fs.Bool("stanza", false, "print the whole <message/>, not just <openpgp/>")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := oxNoArgs(fs); err != nil {
		return err
	}
	from, err := oxJIDFlag("from", *fromFlag)
	if err != nil {
		return err
	}
	to, err := oxJIDFlag("to", *toFlag)
	if err != nil {
		return err
	}
	if *keyFile == "" {
		return &usageError{msg: "ox: --key is required"}
	}
	if len(recipients) == 0 {
		return &usageError{msg: "ox: --recipient-key is required"}
	}
	secrets, err := oxReadKeyFile(*keyFile, true)
	if err != nil {
		return err
	}
	signer, own, err := oxSignerFor(secrets, from)
	if err != nil {
		return err
	}
	var recipientKeys []*ox.Key
	for _, name := range recipients {
		keys, err := oxReadKeyFile(name, false)
		if err != nil {
			return err
		}
		for _, k := range keys {
			recipientKeys = append(recipientKeys, k.Public())
		}
	}
	body := *text
	if !oxFlagSet(fs, "text") {
		b, err := oxReadLimited(stdin, sce.MaxEnvelopeSize, "standard input")
		if err != nil {
			return err
		}
		body = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	}
	st := &sce.Stanza{
		Name: xml.Name{Space: "jabber:client", Local: "message"},
		Attr: []xml.Attr{
			{Name: xml.Name{Local: "from"}, Value: from.String()},
			{Name: xml.Name{Local: "to"}, Value: to.String()},
			{Name: xml.Name{Local: "type"}, Value: "chat"},
		},
		Children: []sce.Element{sce.TextElement(xml.Name{Space: "jabber:client", Local: "body"}, body)},
	}
	sealed, err := ox.Seal(st, ox.SealOptions{Signer: signer, From: from, Recipients: recipientKeys, Own: own})
	if err != nil {
		return err
	}
	for _, skipped := range sealed.Skipped {
		fmt.Fprintf(stderr, "hush: warning: not encrypting to %v\n", skipped)
	}
	var out any = sealed.Stanza
	if !*stanza {
		for i := range sealed.Stanza.Children {
			if c := sealed.Stanza.Children[i]; c.Name == (xml.Name{Space: ox.NS, Local: "openpgp"}) {
				out = c
			}
		}
	}
	return oxWriteXML(stdout, out)
}

func oxFlagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

func oxWriteXML(w io.Writer, v any) error {
	b, err := xml.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func oxDecrypt(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("ox decrypt", "--key SECRET --sender-key PUBLIC --from JID --to JID [--xml] < MESSAGE", stderr)
	keyFile := fs.String("key", "", "the recipient's secret key `file`")
	var senderFiles oxFileList
	fs.Var(&senderFiles, "sender-key", "the sender's public key `file` (repeatable)")
	fromFlag := fs.String("from", "", "the sender's `JID`")
	toFlag := fs.String("to", "", "the recipient's `JID`")
	asXML := fs.Bool("xml", false, "print the decrypted content element instead of the body")
	nowFlag := fs.String("now", "", "judge <time/> and key validity at this XEP-0082 `DateTime` instead of the clock")
	window := fs.Duration("window", 0, "accepted distance of <time/> from now (default 5m)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := oxNoArgs(fs); err != nil {
		return err
	}
	from, err := oxJIDFlag("from", *fromFlag)
	if err != nil {
		return err
	}
	to, err := oxJIDFlag("to", *toFlag)
	if err != nil {
		return err
	}
	if *keyFile == "" {
		return &usageError{msg: "ox: --key is required"}
	}
	if len(senderFiles) == 0 {
		return &usageError{msg: "ox: --sender-key is required"}
	}
	var clock func() time.Time
	if *nowFlag != "" {
		t, err := time.Parse(time.RFC3339Nano, *nowFlag)
		if err != nil {
			return &usageError{msg: fmt.Sprintf("ox: --now: %q is not an XEP-0082 DateTime", *nowFlag)}
		}
		clock = func() time.Time { return t }
	}
	keys, err := oxReadKeyFile(*keyFile, true)
	if err != nil {
		return err
	}
	var senderKeys []*ox.Key
	for _, name := range senderFiles {
		ks, err := oxReadKeyFile(name, false)
		if err != nil {
			return err
		}
		for _, k := range ks {
			senderKeys = append(senderKeys, k.Public())
		}
	}
	in, err := oxReadLimited(stdin, maxOXInput, "standard input")
	if err != nil {
		return err
	}
	st, err := oxReadStanza(in, from, to)
	if err != nil {
		return err
	}
	opened, err := ox.Open(st, ox.OpenOptions{Keys: keys, SenderKeys: senderKeys, Now: clock, Window: *window})
	if err != nil {
		return err
	}
	if *asXML {
		_, err := fmt.Fprintf(stdout, "%s\n", bytes.TrimSpace(opened.Raw))
		return err
	}
	for _, c := range opened.Stanza.Children {
		if c.Encrypted && c.Name.Local == "body" && (c.Name.Space == "jabber:client" || c.Name.Space == "jabber:server") {
			_, err := fmt.Fprintf(stdout, "%s\n", c.Text())
			return err
		}
	}
	return errors.New("ox: the message has no encrypted body (use --xml to see its content)")
}

// oxReadStanza reads an <openpgp/> element or a whole <message/> (whose
// namespace defaults to jabber:client, as in go-sendxmpp's output) and gives
// it from and to, which must match any it has.
func oxReadStanza(in []byte, from, to jid.JID) (*sce.Stanza, error) {
	d := xml.NewDecoder(bytes.NewReader(in))
	d.DefaultSpace = "jabber:client"
	var start xml.StartElement
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("ox: standard input holds no <openpgp/> or <message/>: %w", sce.ErrInvalidXML)
		}
		if s, ok := tok.(xml.StartElement); ok {
			start = s
			break
		}
	}
	var st *sce.Stanza
	switch start.Name {
	case xml.Name{Space: ox.NS, Local: "openpgp"}:
		var el sce.Element
		if err := el.UnmarshalXML(d, start); err != nil {
			return nil, err
		}
		st = &sce.Stanza{Name: xml.Name{Space: "jabber:client", Local: "message"}, Children: []sce.Element{el}}
	case xml.Name{Space: "jabber:client", Local: "message"}:
		st = new(sce.Stanza)
		if err := st.UnmarshalXML(d, start); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("ox: standard input holds <%s/>, not <openpgp xmlns='%s'/> or <message/>", start.Name.Local, ox.NS)
	}
	for _, a := range []struct {
		name string
		j    jid.JID
	}{{"from", from}, {"to", to}} {
		have := st.AttrValue(a.name)
		if have == "" {
			st.Attr = append(st.Attr, xml.Attr{Name: xml.Name{Local: a.name}, Value: a.j.String()})
			continue
		}
		hj, err := jid.Parse(have)
		if err != nil || !hj.Bare().Equal(a.j.Bare()) {
			return nil, fmt.Errorf("ox: the message's %s %q is not --%s %s", a.name, have, a.name, a.j)
		}
	}
	return st, nil
}

func oxBackup(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ox backup", "--key SECRET", stderr)
	keyFile := fs.String("key", "", "the secret key `file` to back up")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := oxNoArgs(fs); err != nil {
		return err
	}
	if *keyFile == "" {
		return &usageError{msg: "ox: --key is required"}
	}
	keys, err := oxReadKeyFile(*keyFile, true)
	if err != nil {
		return err
	}
	code, backup, err := ox.Backup(keys)
	if err != nil {
		return err
	}
	if err := oxWriteXML(stdout, backup); err != nil {
		return err
	}
	_, err = fmt.Fprintln(stderr, code)
	return err
}

func oxRestore(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("ox restore", "--code CODE < BACKUP", stderr)
	code := fs.String("code", "", "the backup `code`, e.g. TWNK-KD5Y-MT3T-E1GS-DRDB-KVTW")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := oxNoArgs(fs); err != nil {
		return err
	}
	if *code == "" {
		return &usageError{msg: "ox: --code is required"}
	}
	in, err := oxReadLimited(stdin, maxOXInput, "standard input")
	if err != nil {
		return err
	}
	var backup ox.SecretKey
	if err := xml.Unmarshal(in, &backup); err != nil {
		return fmt.Errorf("ox: standard input is not a <secretkey xmlns='%s'/> element: %w", ox.NS, err)
	}
	keys, err := ox.Restore(backup, *code)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	for _, k := range keys {
		if k.Locked() {
			return fmt.Errorf("ox: key %s in the backup is passphrase-protected, which XEP-0373 §5.4 does not allow", k.Fingerprint())
		}
		b, err := k.ArmorSecret()
		if err != nil {
			return err
		}
		out.Write(b)
	}
	_, err = stdout.Write(out.Bytes())
	return err
}
