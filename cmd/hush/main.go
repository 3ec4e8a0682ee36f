// Command hush is end-to-end encrypted XMPP from a terminal.
//
// It is the command-line face of the hush library (hush.im): Stanza Content
// Encryption (XEP-0420), OMEMO 2 (XEP-0384 0.9, urn:xmpp:omemo:2) and
// OpenPGP for XMPP (XEP-0373 0.7, XEP-0374 0.2) against real servers:
// hush account add, send, listen, chat, devices, fingerprints, trust and
// distrust, doctor, backup and restore, with blind trust before verification (XEP-0450 §6.2) and fail-closed
// sends. Run "hush help" for the commands and exit codes.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"hush.im/omemo"
)

const usage = `hush — end-to-end encryption for XMPP.

Usage:
    hush account add --jid JID [--password-file FILE] [--server HOST:PORT] [--ca FILE] [--insecure]
                             save the account (later commands need only --store)
    hush send [--omemo|--legacy|--ox] JID [TEXT]
                             encrypt TEXT (or standard input) for every trusted
                             device of JID and send it: with OMEMO (each device
                             the newest version it announces) when JID has
                             OMEMO devices, else with OX; a flag forces OMEMO 2,
                             legacy OMEMO or OX. The delivery report goes to
                             standard error
    hush listen [--json] [-n|--count N] [-t|--timeout DURATION] [--ox]
                             print each decrypted message: sender, device (OX:
                             key fingerprint), protocol, trust, text (JSON
                             lines with --json)
    hush devices [JID]       the own (or JID's) OMEMO devices with trust
    hush fingerprints [JID]  the own (or JID's) identity key fingerprints
    hush trust JID ID|FPR    mark a device's key verified (after comparing it)
    hush distrust JID ID|FPR never encrypt to that key again
    hush chat [--omemo|--legacy|--ox] JID
                             chat with JID: each line typed is sent (like send),
                             incoming messages are printed as they arrive;
                             /quit or end of input leaves
    hush ping JID[/RESOURCE] an end-to-end encrypted ping (an OMEMO 2 IQ) to
                             each online client of JID: which device answered,
                             its trust, the round trip
    hush verify [-t|--timeout DURATION] JID
                             verify JID's keys: both users run it, compare the
                             6-character string each sees, and answer y
    hush doctor [JID...]     check the account: PEP and publish-options on the
                             server, the own device list and bundle as others
                             fetch them, prekeys left, the own OX key; and
                             which of OMEMO 2, legacy OMEMO, OX each JID
                             announces. Exit 1 with hints on a problem
    hush backup              back up the OX secret key to the private PEP node
                             urn:xmpp:openpgp:0:secret-key (XEP-0373 §5); the
                             backup code goes to standard error
    hush restore [--code CODE]
                             fetch that backup and import the key (the code is
                             read from standard input without --code)
    hush ox keys [JID]       the OX keys the account (or JID) announces
    hush demo                show hush's main job in-process (see README)
    hush demo xmpp [--prosody PATH]
                             the same over a throwaway Prosody on 127.0.0.1,
                             with alice and bob running hush send and listen
                             (needs the Debian package prosody; installs nothing)
    hush omemo COMMAND       OMEMO 2 and legacy OMEMO offline (hush omemo help)
    hush ox COMMAND          OpenPGP for XMPP offline (hush ox help)
    hush help                show this text

Account flags (send, listen, chat, ping, verify, devices, fingerprints,
trust, distrust, doctor, backup, restore, ox keys):
    -s, --store DIR          the account and its keys (default $XDG_CONFIG_HOME/hush)
    -j, --jid JID            the account (default: the saved one)
    --password-file FILE     the password; or set HUSH_PASSWORD; without either,
                             hush asks on the terminal. Never a flag.
    --server HOST:PORT       connect there instead of looking the domain up
    --ca FILE                trust this private CA (PEM) for the server
    --insecure               plain TCP, only to a loopback --server (test servers)

Trust is blind trust before verification: new devices of a contact are used
until one of the contact's keys is verified, with "hush verify" (a
6-character string both users compare) or "hush trust" (a fingerprint
compared by hand); from then on only verified keys are. hush send never sends in the clear: when no trusted
device of the contact can be reached it sends nothing and exits 4. The OX
key (OpenPGP, XEP-0373) is made and published on the first send --ox or
listen --ox and kept beside the OMEMO keys in the store.

Nothing received is lost: listen and chat put each decrypted message in the
store's inbox in the same transaction as the OMEMO ratchet step, and remove
it only after printing it; what a listen did not print (--count reached, the
process killed) is printed by the next one, which also reads the account's
archive (XEP-0313) from where this device stopped: what another device of
the account took from the server meanwhile. A message whose stanza-id or
origin-id (XEP-0359) was seen before is not shown again.

Example:
    $ hush account add --jid alice@example.org --password-file ~/.alice-pass
    hush: saved alice@example.org in /home/alice/.config/hush
    $ hush send bob@example.net 'Meet me at the lighthouse'
    hush: sent to bob@example.net device 1029384756
    hush: sent to alice@example.org device 564738291
    $ hush listen --count 1        # as bob
    alice@example.org [device 1234567, omemo2, blind]: Meet me at the lighthouse
    $ hush fingerprints bob@example.net
    1029384756 3b6a27bc ce0a1a9a 29fd4ae4 6c2a8b9e 41d2d2b2 a3f8c8a1 f5e4a3b2 c1d0e9f8  undecided
    $ hush trust bob@example.net 1029384756

Exit codes:
    0    success (listen: --count messages read, or the --timeout ended
         a listen without --count)
    1    failure (an error was printed as "hush: error: …"): wrong password,
         server unreachable, store in use by another hush, damaged store,
         doctor found a problem, …
    2    bad usage
    3    listen --count N --timeout D: the timeout came before N messages;
         verify: the peer did not answer within --timeout
    4    send, ping: no trusted device of the contact could be reached, or it
         announces no protocol hush speaks; nothing sent
    130  demo xmpp: interrupted (Prosody stopped, its files removed)
`

// exitUsage is the exit code for a command line hush does not understand.
const exitUsage = 2

// usageError marks an error in how hush was invoked; main exits with
// exitUsage and prints the hint, if any.
type usageError struct {
	msg  string
	hint string
}

func (e *usageError) Error() string { return e.msg }

// Hint implements hinter.
func (e *usageError) Hint() string { return e.hint }

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code, so tests (and
// testscript) can call it directly.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := dispatch(args, stdin, stdout, stderr)
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "hush: error: %v\n", err)
	var h hinter
	if errors.As(err, &h) && h.Hint() != "" {
		fmt.Fprintf(stderr, "hush: hint: %s\n", h.Hint())
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return 1
}

// hinter is an error with a hint for the user, printed after it as
// "hush: hint: …".
type hinter interface {
	error
	Hint() string
}

func dispatch(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &usageError{msg: "no command given", hint: `run "hush help" for the commands`}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "demo":
		return runDemo(rest, stdout, stderr)
	case "ox":
		return runOX(rest, stdin, stdout, stderr)
	case "omemo":
		return runOMEMO(rest, stdin, stdout, stderr)
	case "account":
		return runAccount(rest, stdout, stderr)
	case "send":
		return runSend(rest, stdin, stdout, stderr)
	case "listen":
		return runListen(rest, stdin, stdout, stderr)
	case "devices", "fingerprints":
		return runDevices(cmd, rest, stdin, stdout, stderr)
	case "backup":
		return runBackup(rest, stdin, stdout, stderr)
	case "restore":
		return runRestore(rest, stdin, stdout, stderr)
	case "chat":
		return runChat(rest, stdin, stdout, stderr)
	case "verify":
		return runVerify(rest, stdin, stdout, stderr)
	case "ping":
		return runPing(rest, stdin, stdout, stderr)
	case "doctor":
		return runDoctor(rest, stdin, stdout, stderr)
	case "trust":
		return runTrust(cmd, omemo.TrustVerified, rest, stdout, stderr)
	case "distrust":
		return runTrust(cmd, omemo.TrustDistrusted, rest, stdout, stderr)
	default:
		return &usageError{msg: fmt.Sprintf("unknown command %q", cmd), hint: `run "hush help" for the commands`}
	}
}

// newFlagSet returns a flag set for a sub-command that reports errors
// instead of exiting, and prints its usage to stderr.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("hush "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: hush %s %s\n", name, synopsis)
		printFlags(stderr, fs)
	}
	return fs
}

// shortName makes -short another name of the flag --long (in the style
// of age: "-s, --store DIR").
func shortName(fs *flag.FlagSet, short, long string) {
	f := fs.Lookup(long)
	fs.Var(f.Value, short, f.Usage)
}

// printFlags prints the flags of fs as flag.PrintDefaults does, with long
// names after two dashes and a short name, if any, in front:
//
//	-s, --store DIR
//	    the DIR holding the account and its keys
func printFlags(w io.Writer, fs *flag.FlagSet) {
	short := map[string]string{} // long name → short name
	fs.VisitAll(func(f *flag.Flag) {
		if len(f.Name) != 1 {
			return
		}
		fs.VisitAll(func(g *flag.Flag) {
			if len(g.Name) > 1 && g.Value == f.Value {
				short[g.Name] = f.Name
			}
		})
	})
	fs.VisitAll(func(f *flag.Flag) {
		if len(f.Name) == 1 && slices.Contains(slices.Collect(maps.Values(short)), f.Name) {
			return
		}
		arg, usage := flag.UnquoteUsage(f)
		names := "--" + f.Name
		if s, ok := short[f.Name]; ok {
			names = "-" + s + ", " + names
		}
		if arg != "" {
			names += " " + arg
		}
		switch f.DefValue {
		case "", "0", "false", "0s":
		default:
			def := f.DefValue
			if fmt.Sprintf("%T", f.Value) == "*flag.stringValue" {
				def = strconv.Quote(def)
			}
			usage += " (default " + def + ")"
		}
		fmt.Fprintf(w, "  %s\n    \t%s\n", names, strings.ReplaceAll(usage, "\n", "\n    \t"))
	})
}

// parseFlags parses args into fs and turns a flag error into a usage error.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{msg: err.Error()}
	}
	return nil
}
