package main

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"hush.im/client"
	"hush.im/omemo"
	"hush.im/sce"
)

// nsPing is XEP-0199 XMPP Ping.
const nsPing = "urn:xmpp:ping"

// pingName is the XEP-0199 <ping/> payload.
var pingName = xml.Name{Space: nsPing, Local: "ping"}

// Presence collection of hush ping for a bare JID.
const (
	// pingPresenceWait bounds the wait for the contact's first presence
	// after the own initial presence (RFC 6121 §4.2.2: the server probes
	// the contacts and forwards their presence).
	pingPresenceWait = 5 * time.Second
	// pingPresenceQuiet ends the collection once no further presence of
	// the contact came for this long.
	pingPresenceQuiet = time.Second
)

const pingSynopsis = "[account flags] JID[/RESOURCE]"

// answerEncryptedPings makes the session answer XEP-0199 pings that come
// end-to-end encrypted (XEP-0420 §3: the IQ payload in the envelope) with
// an encrypted result, as hush ping expects of the contact. Plain pings are
// answered by the client itself (XEP-0199 §4).
func (s *session) answerEncryptedPings() error {
	return s.c.HandleIQ(pingName, func(_ context.Context, in *client.Incoming) ([]sce.Element, error) {
		return nil, nil
	})
}

// runPing implements "hush ping JID": an end-to-end encrypted XEP-0199
// ping (an IQ whose payload travels in the OMEMO 2 SCE envelope, XEP-0384
// §5.5, XEP-0420 §3) to a full JID, or to each online client of a bare
// JID. It prints which device answered, with what trust, and the round
// trip. It exits 0 when at least one answered encrypted.
func runPing(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("ping", pingSynopsis, stderr)
	af := addAccountFlags(fs)
	if err := parseNetFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return &usageError{msg: "ping: want one JID", hint: "hush ping " + pingSynopsis}
	}
	to, err := jid.Parse(fs.Arg(0))
	if err != nil || to.Domainpart() == "" || to.Localpart() == "" {
		return &usageError{msg: fmt.Sprintf("ping: invalid JID %q", fs.Arg(0))}
	}
	ctx, cancel := context.WithTimeout(context.Background(), netTimeout)
	defer cancel()
	s, err := af.connect(ctx, stdin, stderr, oxOff)
	if err != nil {
		return err
	}
	defer s.close()
	// Legacy OMEMO carries message bodies only: an IQ needs OMEMO 2.
	s.only = omemo.ProtocolOMEMO2
	targets := []jid.JID{to}
	if to.Resourcepart() == "" {
		if targets, err = s.onlineResources(ctx, to); err != nil {
			return err
		}
	} else if err := s.c.Online(ctx); err != nil {
		return err
	}
	if err := s.o.RefreshDevices(ctx, to.Bare()); err != nil {
		if !errors.Is(err, client.ErrNoDeviceList) {
			err = fmt.Errorf("%s: %w", to.Bare(), err)
		}
		return &exitError{code: exitNotSent, err: fmt.Errorf("ping: %w; nothing was sent", err), hint: "an encrypted ping needs OMEMO 2 on the contact's client"}
	}
	answered := 0
	for _, full := range targets {
		iq := &sce.Stanza{
			Name:     xml.Name{Space: nsClient, Local: "iq"},
			Attr:     []xml.Attr{{Name: xml.Name{Local: "type"}, Value: "get"}, {Name: xml.Name{Local: "to"}, Value: full.String()}},
			Children: []sce.Element{sce.TextElement(pingName, "")},
		}
		start := time.Now()
		resp, rep, err := s.c.SendEncryptedIQ(ctx, client.OMEMOEncrypted, iq)
		rtt := time.Since(start)
		switch {
		case reachedNoDevice(err):
			printReport(stderr, rep)
			return &exitError{code: exitNotSent, err: fmt.Errorf("ping: %s: %w", to.Bare(), errNoTrustedDevice),
				hint: fmt.Sprintf(`see "hush fingerprints %s" and "hush trust"`, to.Bare())}
		case err != nil:
			fmt.Fprintf(stdout, "%s: no answer: %v\n", full, err)
		case resp.Err != nil || resp.Security == nil:
			fmt.Fprintf(stdout, "%s: answered, but not end-to-end encrypted\n", full)
		default:
			answered++
			sec := resp.Security
			fmt.Fprintf(stdout, "%s: encrypted pong from device %s (%s, %s) in %s\n", full, sec.Device, protocolName(sec.Protocol), sec.Trust, rtt.Round(time.Millisecond))
		}
	}
	fctx, fcancel := context.WithTimeout(context.Background(), flushTimeout)
	defer fcancel()
	if err := s.o.Flush(fctx); err != nil {
		fmt.Fprintf(stderr, "hush: warning: %v\n", err)
	}
	if answered == 0 {
		return fmt.Errorf("ping: no client of %s answered encrypted", to.Bare())
	}
	return nil
}

// onlineResources sends the initial presence and returns the full JIDs
// of bare's clients that announce themselves available (RFC 6121 §4.2.2:
// the server forwards the presence of the contacts the account is
// subscribed to), waiting at most pingPresenceWait for the first.
func (s *session) onlineResources(ctx context.Context, bare jid.JID) ([]jid.JID, error) {
	var mu sync.Mutex
	var found []jid.JID
	seen := make(chan struct{}, 1)
	s.c.HandlePresence(func(_ context.Context, in *client.Incoming) {
		if in.Stanza == nil || !in.From.Bare().Equal(bare) || in.From.Resourcepart() == "" || in.Stanza.AttrValue("type") != "" {
			return
		}
		mu.Lock()
		if !slices.ContainsFunc(found, in.From.Equal) {
			found = append(found, in.From)
		}
		mu.Unlock()
		select {
		case seen <- struct{}{}:
		default:
		}
	})
	if err := s.c.Online(ctx); err != nil {
		return nil, err
	}
	wait := time.NewTimer(pingPresenceWait)
	defer wait.Stop()
loop:
	for {
		select {
		case <-seen:
			wait.Reset(pingPresenceQuiet)
		case <-wait.C:
			break loop
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(found) == 0 {
		return nil, &hintError{err: fmt.Errorf("ping: no client of %s is online", bare), hint: "its presence reaches you only when you are subscribed to it (in each other's roster)"}
	}
	return found, nil
}
