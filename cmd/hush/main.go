// Command hush is end-to-end encrypted XMPP from a terminal.
//
// It is the command-line face of the hush library (hush.im): Stanza Content
// Encryption (XEP-0420), OMEMO 2 (XEP-0384) and, as they land, legacy OMEMO and
// OpenPGP for XMPP. Run "hush help" for the commands.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

const usage = `hush — end-to-end encryption for XMPP.

Usage:
    hush demo                show hush's main job in-process (see README)
    hush help                show this text

Example:
    $ hush demo
    == alice seals a message for bob (XEP-0420 Stanza Content Encryption)
    ...

Exit codes:
    0  success
    1  failure (an error was printed as "hush: error: …")
    2  bad usage
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
	var ue *usageError
	if errors.As(err, &ue) {
		if ue.hint != "" {
			fmt.Fprintf(stderr, "hush: hint: %s\n", ue.hint)
		}
		return exitUsage
	}
	return 1
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
		fs.PrintDefaults()
	}
	return fs
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
