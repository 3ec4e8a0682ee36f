package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"hush.im/client"
	"hush.im/omemo"
	"hush.im/sce"
	"hush.im/trust"
)

// Waits of hush verify.
const (
	// verifyCommitWait is how long hush verify waits for a Commit the peer
	// may have sent already (offline delivery, or the peer started first)
	// before it starts a run itself.
	verifyCommitWait = 2 * time.Second
	// verifyDefaultTimeout bounds the wait for the peer's side of the run.
	verifyDefaultTimeout = 5 * time.Minute
)

const verifySynopsis = "[--timeout DURATION] [account flags] JID"

// sasIn is one SAS message from the peer, taken from a verified OMEMO 2
// SCE envelope.
type sasIn struct {
	msg trust.Message
}

// runVerify implements "hush verify JID": the short authentication string
// check of package trust (XEP-0210 §4.3: at most 6 characters compared
// once out of band) over OMEMO 2. Both users run it at about the same
// time; the first to start sends the Commit, the other answers. Each sees
// a 6-character string; when they match and the user confirms, the
// identity keys the peer vouched for are marked verified, and from then on
// only verified keys of the peer get messages (BTBV, XEP-0450 §6.2).
func runVerify(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("verify", verifySynopsis, stderr)
	af := addAccountFlags(fs)
	timeout := fs.Duration("timeout", verifyDefaultTimeout, "give up when the peer has not answered within `DURATION`")
	shortName(fs, "t", "timeout")
	if err := parseNetFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return &usageError{msg: "verify: want one JID", hint: "hush verify " + verifySynopsis}
	}
	peer, err := jid.Parse(fs.Arg(0))
	if err != nil || peer.Domainpart() == "" || peer.Localpart() == "" {
		return &usageError{msg: fmt.Sprintf("verify: invalid JID %q", fs.Arg(0))}
	}
	peer = peer.Bare()
	if *timeout <= 0 {
		return &usageError{msg: "verify: --timeout must be positive"}
	}
	stderr = &lockedWriter{w: stderr}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cctx, ccancel := context.WithTimeout(ctx, netTimeout)
	defer ccancel()
	s, err := af.connect(cctx, stdin, stderr, oxOff)
	if err != nil {
		return err
	}
	defer s.close()
	// The SAS messages must travel in an authenticated SCE envelope:
	// OMEMO 2 (legacy OMEMO carries bodies only).
	s.only = omemo.ProtocolOMEMO2
	in := make(chan sasIn, 16)
	s.c.HandleMessage(func(_ context.Context, m *client.Incoming) {
		if m.Err != nil || m.Security == nil || m.Security.Protocol != client.OMEMOEncrypted || !m.Security.Sender.Bare().Equal(peer) {
			return
		}
		for _, ch := range m.Stanza.Children {
			if !ch.Encrypted || ch.Name.Space != trust.NSSAS || len(ch.Tokens) < 2 {
				continue
			}
			start, ok := ch.Tokens[0].(xml.StartElement)
			if !ok {
				continue
			}
			msg, err := trust.ParseMessage(&tokens{toks: ch.Tokens[1:]}, start)
			if err != nil {
				fmt.Fprintf(stderr, "hush: warning: %s sent a malformed verification message: %v\n", peer, err)
				continue
			}
			select {
			case in <- sasIn{msg: msg}:
			default:
			}
		}
	})
	if err := s.c.Online(cctx); err != nil {
		return err
	}
	if err := s.o.Prepare(cctx, peer); err != nil {
		return &exitError{code: exitNotSent, err: fmt.Errorf("verify: %w; nothing was sent", deviceListError(peer, err)), hint: "verification runs over OMEMO 2"}
	}
	ccancel()
	own, err := vouchedKeys(s)
	if err != nil {
		return err
	}
	self := s.o.Manager().JID()
	send := func(m trust.Message) error {
		sctx, cancel := context.WithTimeout(ctx, netTimeout)
		defer cancel()
		el, err := sce.ReadElement(m.TokenReader())
		if err != nil {
			return err
		}
		msg := &sce.Stanza{
			Name:     xml.Name{Space: nsClient, Local: "message"},
			Attr:     []xml.Attr{{Name: xml.Name{Local: "to"}, Value: peer.String()}, {Name: xml.Name{Local: "type"}, Value: "chat"}},
			Children: []sce.Element{el},
		}
		rep, err := s.c.SendEncrypted(sctx, client.OMEMOEncrypted, msg)
		if reachedNoDevice(err) {
			printReport(stderr, rep)
			return &exitError{code: exitNotSent, err: fmt.Errorf("verify: %s: %w", peer, errNoTrustedDevice)}
		}
		return err
	}

	// A Commit the peer sent already makes this side the responder.
	run := &sasRun{self: self, peer: peer, own: own}
	wait := time.NewTimer(verifyCommitWait)
	select {
	case m := <-in:
		if c, ok := m.msg.(*trust.Commit); ok {
			acc, err := run.respond(c)
			if err != nil {
				return fmt.Errorf("verify: %w", err)
			}
			if err := send(acc); err != nil {
				return err
			}
		}
	case <-wait.C:
	case <-ctx.Done():
		return errors.New("verify: interrupted")
	}
	wait.Stop()
	if run.v == nil {
		c, err := run.start()
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		if err := send(c); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "hush: waiting for %s to run \"hush verify %s\"\n", peer, self)
	}

	deadline := time.NewTimer(*timeout)
	defer deadline.Stop()
	for run.v.State() != trust.StateCompare {
		select {
		case m := <-in:
			reply, err := run.receive(m.msg)
			switch {
			case errors.Is(err, trust.ErrCommitment):
				return errors.New("verify: FAILED: the peer's revealed nonce does not match its commitment; this may be an attack, nothing was verified")
			case errors.Is(err, trust.ErrCanceled):
				return fmt.Errorf("verify: %s canceled; nothing was verified", peer)
			case err != nil:
				continue // another run's message, a duplicate
			}
			if reply != nil {
				if err := send(reply); err != nil {
					return err
				}
			}
		case <-deadline.C:
			return &exitError{code: exitTimeout, err: fmt.Errorf("verify: %s did not answer within %s; nothing was verified", peer, *timeout),
				hint: fmt.Sprintf("%s must run \"hush verify %s\" at the same time", peer, self)}
		case <-s.c.Done():
			return fmt.Errorf("verify: disconnected: %v", s.c.Err())
		case <-ctx.Done():
			return errors.New("verify: interrupted")
		}
	}
	v := run.v

	sas, err := v.SAS()
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	fmt.Fprintln(stdout, sas)
	fmt.Fprintf(stderr, "hush: compare this string with the one %s sees, aloud or side by side.\nhush: do they match? [y/N] ", peer)
	answer, _ := bufio.NewReader(stdin).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
		if c, err := v.Reject(trust.ReasonMismatch); err == nil {
			if err := send(c); err != nil {
				fmt.Fprintf(stderr, "hush: warning: %v\n", err)
			}
		}
		return errors.New("verify: the strings differ (or were not confirmed): nothing was verified; a mismatch may mean an attack")
	}
	keys, err := v.Confirm()
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	m := s.o.Manager()
	for _, k := range keys {
		if err := m.SetTrust(k.JID, k.IdentityKey, omemo.TrustVerified); err != nil {
			return err
		}
		fpr, err := omemo.Fingerprint(k.IdentityKey)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s %s: verified\n", k.JID, fpr)
	}
	return nil
}

// sasRun is this side of a SAS verification with one peer, as the
// messages come: it starts the run or answers the peer's, and when both
// users started at once (each sent a Commit) it keeps the run with the
// lower SID, as package trust asks.
type sasRun struct {
	self, peer jid.JID
	own        [][]byte
	v          *trust.Verification
}

// start begins the run as initiator.
func (r *sasRun) start() (*trust.Commit, error) {
	v, c, err := trust.Start(r.self, r.peer, r.own)
	if err == nil {
		r.v = v
	}
	return c, err
}

// respond answers the peer's Commit as responder.
func (r *sasRun) respond(c *trust.Commit) (*trust.Accept, error) {
	v, acc, err := trust.Respond(r.self, r.peer, r.own, c)
	if err == nil {
		r.v = v
	}
	return acc, err
}

// receive handles a message of the peer and returns the reply to send,
// if any. A Commit while this side's own Commit is unanswered is the
// peer's simultaneous start: the lower SID wins, the other run is
// dropped. A Cancel ends the run with trust.ErrCanceled.
func (r *sasRun) receive(m trust.Message) (trust.Message, error) {
	if c, ok := m.(*trust.Commit); ok && r.v.Role() == trust.Initiator && r.v.State() == trust.StateCommitted {
		if bytes.Compare(c.SID, r.v.SID()) >= 0 {
			return nil, trust.ErrUnexpected // ours goes on; the peer answers it
		}
		acc, err := r.respond(c)
		if err != nil {
			return nil, err
		}
		return acc, nil
	}
	reply, err := r.v.Receive(m)
	if err == nil && r.v.State() == trust.StateCanceled {
		return nil, trust.ErrCanceled
	}
	return reply, err
}

// vouchedKeys returns the identity keys this device vouches for in a SAS
// run: its own, and those of the own other devices the account verified
// (never blindly trusted ones).
func vouchedKeys(s *session) ([][]byte, error) {
	m := s.o.Manager()
	keys := [][]byte{m.IdentityKey()}
	devs, err := m.Devices(m.JID())
	if err != nil {
		return nil, err
	}
	for _, d := range devs {
		if d.Trust == omemo.TrustVerified && d.IdentityKey != nil {
			keys = append(keys, d.IdentityKey)
		}
	}
	return keys, nil
}
