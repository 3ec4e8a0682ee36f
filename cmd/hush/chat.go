package main

import (
	"bufio"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"hush.im/client"
)

const chatSynopsis = "[--omemo|--legacy|--ox] [account flags] JID"

// chatQuit is the line that ends hush chat.
const chatQuit = "/quit"

// runChat implements "hush chat JID": an interactive two-way chat. Each
// line of standard input is a message to JID, sent like hush send (fail
// closed: a line no trusted device could get is reported and not sent);
// incoming messages are printed as they arrive, through the store inbox
// like hush listen. "/quit" or the end of input ends it.
func runChat(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("chat", chatSynopsis, stderr)
	af := addAccountFlags(fs)
	pf := addProtocolFlags(fs)
	if err := parseNetFlags(fs, args); err != nil {
		return err
	}
	proto, err := pf.protocol("chat")
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return &usageError{msg: "chat: want one JID", hint: "hush chat " + chatSynopsis}
	}
	to, err := jid.Parse(fs.Arg(0))
	if err != nil || to.Domainpart() == "" {
		return &usageError{msg: fmt.Sprintf("chat: invalid JID %q", fs.Arg(0))}
	}
	to = to.Bare()
	stdout = &lockedWriter{w: stdout}
	stderr = &lockedWriter{w: stderr}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cctx, ccancel := context.WithTimeout(ctx, netTimeout)
	defer ccancel()
	s, err := af.connect(cctx, stdin, stderr, proto.oxMode())
	if err != nil {
		return err
	}
	defer s.close()
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
	protocol, err := s.prepareSend(cctx, to, proto)
	if err != nil {
		// Receiving still works; each line typed will be refused.
		fmt.Fprintf(stderr, "hush: warning: %v\nhush: hint: %s\n", err, sendHint)
		protocol = client.OMEMOEncrypted
	}
	ccancel()
	fmt.Fprintf(stderr, "hush: chatting with %s; %s or end of input to leave\n", to, chatQuit)

	// Lines from standard input, read on their own goroutine.
	lines := make(chan string)
	readErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 0, 4096), maxMessage)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		readErr <- sc.Err()
	}()

	signalInbox()
	var result error
loop:
	for {
		select {
		case line := <-lines:
			text := strings.TrimRight(line, "\r")
			if strings.TrimSpace(text) == chatQuit {
				break loop
			}
			if strings.TrimSpace(text) == "" {
				continue
			}
			if !utf8.ValidString(text) {
				fmt.Fprintln(stderr, "hush: warning: line is not UTF-8; not sent")
				continue
			}
			if err := chatSend(ctx, s, protocol, to, text); err != nil {
				fmt.Fprintf(stderr, "hush: not sent: %v\n", err)
			}
		case err := <-readErr:
			if err != nil {
				result = fmt.Errorf("chat: standard input: %w", err)
			}
			break loop
		case <-wake:
			if err := printInbox(s, stdout, stderr, signalInbox); err != nil {
				return fmt.Errorf("chat: %w", err)
			}
		case <-s.c.Done():
			result = fmt.Errorf("chat: disconnected: %v", s.c.Err())
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	fctx, fcancel := context.WithTimeout(context.Background(), flushTimeout)
	defer fcancel()
	if err := s.o.Flush(fctx); err != nil {
		fmt.Fprintf(stderr, "hush: warning: %v\n", err)
	}
	return result
}

// chatSend sends one line of hush chat.
func chatSend(ctx context.Context, s *session, protocol xml.Name, to jid.JID, text string) error {
	sctx, cancel := context.WithTimeout(ctx, netTimeout)
	defer cancel()
	_, err := s.sendText(sctx, protocol, to, text)
	if errors.Is(err, errNoTrustedDevice) {
		return fmt.Errorf("%w (see \"hush fingerprints %s\")", err, to)
	}
	return err
}

// printInbox prints and acknowledges one page of the inbox, and asks for
// another round when the page was full.
func printInbox(s *session, stdout, stderr io.Writer, again func()) error {
	pending, err := s.pendingInbox(inboxPage)
	if err != nil {
		return fmt.Errorf("inbox: %w", err)
	}
	if len(pending) == inboxPage {
		again()
	}
	for _, pm := range pending {
		m, err := decodeEntry(pm)
		if err != nil {
			fmt.Fprintf(stderr, "hush: warning: %v\n", err)
		} else if _, err := fmt.Fprintf(stdout, "%s [device %s, %s, %s]: %s\n", m.From, m.Device, m.Protocol, m.Trust, m.Text); err != nil {
			return err
		}
		if err := s.ack(pm.Seq); err != nil {
			return fmt.Errorf("inbox: %w", err)
		}
	}
	return nil
}
