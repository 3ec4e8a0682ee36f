package main

import (
	"bufio"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"mellium.im/xmpp/jid"

	"hush.im/client"
	"hush.im/ox"
)

// Secret-key backup (XEP-0373 §5).
const (
	// accessWhitelist is the access model of the secret-key node: only
	// the owner may read it (XEP-0373 §5.3, XEP-0223 §3).
	accessWhitelist = "whitelist"
	// backupItemID is the id of the one item of the secret-key node
	// (XEP-0373 §5.3 sets max_items 1; XEP-0223 names it "current").
	backupItemID = "current"
	// maxCodeLine bounds the backup code read from the terminal.
	maxCodeLine = 256
)

// runBackup implements "hush backup": encrypt the account's OX secret key
// with a new backup code, publish it to the private PEP node NodeSecretKey
// with access model whitelist (XEP-0373 §5.3), and print the code on
// standard error.
func runBackup(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("backup", "[account flags]", stderr)
	af := addAccountFlags(fs)
	if err := parseNetFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{msg: fmt.Sprintf("backup: unexpected argument %q", fs.Arg(0))}
	}
	a, err := af.resolve()
	if err != nil {
		return err
	}
	key, err := oxKey(a, false)
	if err != nil {
		return err
	}
	if key == nil {
		return &hintError{err: fmt.Errorf("backup: %s has no OX key", a.jid), hint: `make one with "hush listen --ox" or restore one with "hush restore"`}
	}
	code, backup, err := ox.Backup([]*ox.Key{key})
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), netTimeout)
	defer cancel()
	s, err := af.connect(ctx, stdin, stderr, oxOff)
	if err != nil {
		return err
	}
	defer s.close()
	_, err = s.c.Publish(ctx, ox.NodeSecretKey, client.Item{ID: backupItemID, Payload: backup.Element()},
		&client.PublishOptions{AccessModel: accessWhitelist, MaxItems: "1"})
	if err != nil {
		var pe *client.PublishOptionError
		if errors.As(err, &pe) {
			return &hintError{err: fmt.Errorf("backup: %w", err), hint: "the server must support the whitelist access model (XEP-0373 §5.3); nothing was published"}
		}
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(stdout, "backed up OX key %s to %s\n", key.Fingerprint(), ox.NodeSecretKey)
	fmt.Fprintf(stderr, "hush: backup code: %s\nhush: write it down; it is the only way to restore the key\n", code)
	return nil
}

// runRestore implements "hush restore": fetch the secret-key backup from
// the own PEP node, decrypt it with the backup code (--code, or asked on
// the terminal) and save the key as the account's OX key.
func runRestore(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("restore", "[--code CODE] [account flags]", stderr)
	af := addAccountFlags(fs)
	codeFlag := fs.String("code", "", "the backup `CODE` (asked on the terminal when not given)")
	if err := parseNetFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{msg: fmt.Sprintf("restore: unexpected argument %q", fs.Arg(0))}
	}
	a, err := af.resolve()
	if err != nil {
		return err
	}
	have, err := oxKey(a, false)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), netTimeout)
	defer cancel()
	s, err := af.connect(ctx, stdin, stderr, oxOff)
	if err != nil {
		return err
	}
	defer s.close()
	items, err := s.c.FetchItems(ctx, a.jid, ox.NodeSecretKey)
	if notFound(err) {
		return &hintError{err: fmt.Errorf("restore: no backup of %s on the server", a.jid), hint: `make one with "hush backup" on the device that has the key`}
	}
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	it, ok := firstPayload(items)
	if !ok {
		return &hintError{err: fmt.Errorf("restore: no backup of %s on the server", a.jid), hint: `make one with "hush backup" on the device that has the key`}
	}
	var backup ox.SecretKey
	if err := xml.NewTokenDecoder(&tokens{toks: it.Payload.Tokens}).Decode(&backup); err != nil {
		return fmt.Errorf("restore: the backup on the server: %w", err)
	}
	code := *codeFlag
	if code == "" {
		if code, err = readCode(stdin, stderr); err != nil {
			return err
		}
	}
	keys, err := ox.Restore(backup, code)
	if errors.Is(err, ox.ErrWrongCode) {
		return &hintError{err: errors.New("restore: wrong backup code (or a modified backup)"), hint: "the code was printed by hush backup, e.g. TWNK-KD5Y-MT3T-E1GS-DRDB-KVTW"}
	}
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	var key *ox.Key
	for _, k := range keys {
		if k.IsSecret() && !k.Locked() && k.HasJID(a.jid) {
			key = k
			break
		}
	}
	if key == nil {
		return fmt.Errorf("restore: the backup holds no usable secret key for xmpp:%s", a.jid)
	}
	if have != nil {
		if have.Fingerprint() == key.Fingerprint() {
			fmt.Fprintf(stdout, "OX key %s is already in %s\n", key.Fingerprint(), a.dir)
			return nil
		}
		return &hintError{err: fmt.Errorf("restore: %s has another OX key (%s); not replaced", a.jid, have.Fingerprint()), hint: "move " + oxKeyPath(a) + " away first if the backup's key should replace it"}
	}
	armored, err := key.ArmorSecret()
	if err != nil {
		return err
	}
	if err := writeNewFile(oxKeyPath(a), armored); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	fmt.Fprintf(stdout, "restored OX key %s into %s\n", key.Fingerprint(), a.dir)
	return nil
}

// writeNewFile writes b to a new file at path, mode 0600.
func writeNewFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// readCode reads the backup code: one line from standard input (a
// terminal prompt when it is one).
func readCode(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprint(stderr, "Backup code: ")
		}
	}
	line, err := bufio.NewReaderSize(io.LimitReader(stdin, maxCodeLine), maxCodeLine).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	code := strings.TrimSpace(line)
	if code == "" {
		return "", &usageError{msg: "restore: no backup code", hint: "pass --code CODE or type it when asked"}
	}
	return code, nil
}

// runOXKeys implements "hush ox keys [JID]": the OX public keys the
// account (or JID) announces (XEP-0373 §4.2), the own local one marked.
func runOXKeys(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("ox keys", "[account flags] [JID]", stderr)
	af := addAccountFlags(fs)
	if err := parseNetFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return &usageError{msg: fmt.Sprintf("ox keys: unexpected argument %q", fs.Arg(1))}
	}
	a, err := af.resolve()
	if err != nil {
		return err
	}
	target := a.jid
	if fs.NArg() == 1 {
		j, err := jid.Parse(fs.Arg(0))
		if err != nil || j.Domainpart() == "" {
			return &usageError{msg: fmt.Sprintf("ox keys: invalid JID %q", fs.Arg(0))}
		}
		target = j.Bare()
	}
	local, err := oxKey(a, false)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), netTimeout)
	defer cancel()
	s, err := af.connect(ctx, stdin, stderr, oxOff)
	if err != nil {
		return err
	}
	defer s.close()
	items, err := s.c.FetchItems(ctx, target, ox.NodePublicKeys)
	var list ox.PublicKeysList
	if it, ok := firstPayload(items); err == nil && ok {
		if err := xml.NewTokenDecoder(&tokens{toks: it.Payload.Tokens}).Decode(&list); err != nil {
			return fmt.Errorf("ox keys: the key list of %s: %w", target, err)
		}
	} else if err != nil && !notFound(err) {
		return fmt.Errorf("ox keys: %s: %w", target, err)
	}
	for _, k := range list.Keys {
		note := ""
		if local != nil && target.Equal(a.jid) && k.Fingerprint == local.Fingerprint() {
			note = "  this device's key"
		}
		fmt.Fprintf(stdout, "%s  %s%s\n", k.Fingerprint, k.Date.UTC().Format("2006-01-02T15:04:05Z"), note)
	}
	if len(list.Keys) == 0 {
		if local != nil && target.Equal(a.jid) {
			return &hintError{err: fmt.Errorf("ox keys: %s announces no OX key; the local key %s is not published", target, local.Fingerprint()), hint: `run "hush listen --ox" to publish it`}
		}
		return &hintError{err: fmt.Errorf("ox keys: %s announces no OX key", target), hint: "OX needs a client with OpenPGP for XMPP (XEP-0373)"}
	}
	return nil
}
