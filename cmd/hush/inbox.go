package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"hush.im/client"
	"hush.im/omemo"
	"hush.im/sce"
	"hush.im/store"
)

// nsSID is the namespace of XEP-0359 unique and stable stanza ids.
const nsSID = "urn:xmpp:sid:0"

// inboxPage bounds the inbox messages hush listen reads in one
// transaction; the rest follow in the next round.
const inboxPage = 64

// messageIDs returns the XEP-0359 ids of an incoming stanza that hush
// trusts for recognising a duplicate: a <stanza-id/> stamped by the
// account's own server (by = own bare JID, XEP-0359 §6: only ids from a
// trusted 'by' count), the archive id of an archive result (XEP-0313
// §4.2, stamped by the same archive), and the sender's <origin-id/>,
// scoped to the sender's bare JID.
func messageIDs(own jid.JID, in *client.Incoming) []store.MessageID {
	var ids []store.MessageID
	add := func(id store.MessageID) {
		if id.Check() != nil || len(ids) >= store.MaxMessageIDs {
			return
		}
		for _, have := range ids {
			if have.Kind == id.Kind && have.ID == id.ID && have.Scope.Equal(id.Scope) {
				return
			}
		}
		ids = append(ids, id)
	}
	if in.Via == client.ViaArchive && in.ArchiveID != "" {
		add(store.MessageID{Kind: store.StanzaID, Scope: own, ID: in.ArchiveID})
	}
	if in.Stanza == nil {
		return ids
	}
	for _, c := range in.Stanza.Children {
		switch c.Name {
		case xml.Name{Space: nsSID, Local: "stanza-id"}:
			by, err := jid.Parse(c.AttrValue("by"))
			if err == nil && by.Equal(own) {
				add(store.MessageID{Kind: store.StanzaID, Scope: own, ID: c.AttrValue("id")})
			}
		case xml.Name{Space: nsSID, Local: "origin-id"}:
			add(store.MessageID{Kind: store.OriginID, Scope: in.From.Bare(), ID: c.AttrValue("id")})
		}
	}
	return ids
}

// originID returns a new XEP-0359 <origin-id/> for a message this device
// sends, already in the seen index: the copy the archive keeps (OX
// encrypts to the own key too) is then not shown as a received message by
// the next catch-up.
func (s *session) originID() (sce.Element, error) {
	var b [16]byte
	rand.Read(b[:])
	id := base64.RawURLEncoding.EncodeToString(b[:])
	err := s.st.Update(func(tx omemo.Tx) error {
		ib, err := inboxOf(tx)
		if err != nil {
			return err
		}
		return ib.MarkSeen(store.MessageID{Kind: store.OriginID, Scope: s.o.Manager().JID(), ID: id})
	})
	el := sce.TextElement(xml.Name{Space: nsSID, Local: "origin-id"}, "", xml.Attr{Name: xml.Name{Local: "id"}, Value: id})
	return el, err
}

// inboxOf and cursorOf return the parts of a store transaction hush needs
// beside OMEMO's (store/kv implements both).
func inboxOf(tx omemo.Tx) (store.Inbox, error) {
	ib, ok := tx.(store.Inbox)
	if !ok {
		return nil, errors.New("the store has no inbox")
	}
	return ib, nil
}

func cursorOf(tx omemo.Tx) (store.ArchiveCursor, error) {
	ac, ok := tx.(store.ArchiveCursor)
	if !ok {
		return nil, errors.New("the store has no archive cursor")
	}
	return ac, nil
}

// inboxEntry is the payload hush keeps in the store inbox for a decrypted
// message: what hush listen prints.
type inboxEntry = listened

// seen reports whether one of ids was received before.
func (s *session) seen(ids []store.MessageID) (bool, error) {
	if len(ids) == 0 {
		return false, nil
	}
	var dup bool
	err := s.st.View(func(tx omemo.Tx) error {
		ib, err := inboxOf(tx)
		if err != nil {
			return err
		}
		dup, err = ib.Seen(ids...)
		return err
	})
	return dup, err
}

// putInbox records a decrypted message in the store inbox (in the open
// batch, if any: see hushEngine.Decrypt), or only its ids when it has no
// text, and moves the archive cursor to it, in one transaction. A
// duplicate is client.ErrDuplicate, so that the client drops it quietly.
func (s *session) putInbox(own jid.JID, in *client.Incoming, plain *sce.Stanza, sec *client.Security) error {
	if plain == nil || sec == nil {
		return nil
	}
	ids := messageIDs(own, in)
	var m *store.Message
	if text := body(plain); text != "" {
		payload, err := json.Marshal(inboxEntry{From: sec.Sender.String(), Device: sec.Device, Protocol: protocolName(sec.Protocol), Trust: sec.Trust.String(), Via: in.Via.String(), Text: text})
		if err != nil {
			return err
		}
		dev, _ := strconv.ParseUint(sec.Device, 10, 32)
		m = &store.Message{From: sec.Sender.Bare(), Device: uint32(dev), IDs: ids, Received: time.Now(), Payload: payload}
	}
	err := s.st.Update(func(tx omemo.Tx) error {
		ib, err := inboxOf(tx)
		if err != nil {
			return err
		}
		switch {
		case m != nil:
			_, err = ib.PutInbox(m)
		case len(ids) > 0:
			// Nothing to show (a chat state, a receipt): the ids only.
			err = ib.MarkSeen(ids...)
		}
		if err != nil {
			return err
		}
		return moveCursor(tx, ids)
	})
	if errors.Is(err, store.ErrDuplicate) {
		return fmt.Errorf("%w: %w", client.ErrDuplicate, err)
	}
	return err
}

// decryptOMEMO is hushEngine.Decrypt: the ratchet step and the inbox
// entry of the message are committed in one store transaction (a
// bolt.Batch around client.OMEMO.Decrypt and PutInbox), so that a message
// is either not consumed at all or waits in the inbox until hush listen
// has printed it (DESIGN: nothing lost). A message whose stanza-id or
// origin-id was seen before is dropped before it is decrypted.
func (e hushEngine) decryptOMEMO(ctx context.Context, in *client.Incoming) (*sce.Stanza, *client.Security, error) {
	s := e.s
	s.decryptMu.Lock()
	defer s.decryptMu.Unlock()
	ids := messageIDs(s.o.Manager().JID(), in)
	dup, err := s.seen(ids)
	if err != nil {
		return nil, nil, err
	}
	if dup {
		return nil, nil, fmt.Errorf("%w: message id seen before", client.ErrDuplicate)
	}
	b, err := s.st.BeginBatch()
	if err != nil {
		return nil, nil, err
	}
	// The batch is always committed, never rolled back: Updates of other
	// goroutines (the engine's follow-up work) may run inside it, and a
	// failed Update leaves the batch as it was.
	plain, sec, err := e.OMEMO.Decrypt(ctx, in)
	if err == nil {
		err = s.putInbox(s.o.Manager().JID(), in, plain, sec)
	}
	if cerr := b.Commit(); cerr != nil {
		return nil, nil, fmt.Errorf("storing the decrypted message: %w", cerr)
	}
	return plain, sec, err
}

// pendingInbox returns the unacknowledged inbox messages, oldest first.
func (s *session) pendingInbox(limit int) ([]*store.Message, error) {
	var msgs []*store.Message
	err := s.st.View(func(tx omemo.Tx) error {
		ib, err := inboxOf(tx)
		if err != nil {
			return err
		}
		msgs, err = ib.Inbox(limit)
		return err
	})
	return msgs, err
}

// ack removes a printed message from the inbox.
func (s *session) ack(seq uint64) error {
	return s.st.Update(func(tx omemo.Tx) error {
		ib, err := inboxOf(tx)
		if err != nil {
			return err
		}
		return ib.Ack(seq)
	})
}

// decodeEntry decodes an inbox payload written by putInbox.
func decodeEntry(m *store.Message) (inboxEntry, error) {
	var e inboxEntry
	if err := json.Unmarshal(m.Payload, &e); err != nil {
		return e, fmt.Errorf("inbox message %d: %w", m.Seq, store.ErrCorrupt)
	}
	return e, nil
}

// handleIntoInbox installs the message handler of hush listen and hush
// chat: OMEMO messages (both versions) are in the inbox already
// (hushEngine.Decrypt), OX messages are put there; each wakes the
// returned channel. signal wakes it too.
func (s *session) handleIntoInbox(stderr io.Writer) (wake <-chan struct{}, signal func()) {
	ch := make(chan struct{}, 1)
	signal = func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	s.c.HandleMessage(func(_ context.Context, in *client.Incoming) {
		if s.intoInbox(in, stderr) {
			signal()
		}
	})
	return ch, signal
}

// intoInbox handles one incoming message for hush listen and chat, live
// or from the archive, and reports whether the inbox may have grown. The
// archive cursor moves to the message: with its inbox entry (putInbox),
// or here for a message that has none.
func (s *session) intoInbox(in *client.Incoming, stderr io.Writer) bool {
	if in.Err != nil {
		s.advanceCursor(in, stderr)
		// The archive holds what this device sent itself, which is not
		// encrypted for it: nothing to say.
		own := s.o.Manager().JID()
		if !(in.Via == client.ViaArchive && in.From.Bare().Equal(own) && errors.Is(in.Err, omemo.ErrNotForThisDevice)) {
			fmt.Fprintf(stderr, "hush: warning: undecryptable message from %s: %v\n", in.From, in.Err)
		}
		return false
	}
	if in.Security == nil {
		s.advanceCursor(in, stderr)
		if slices.ContainsFunc(in.Stanza.Children, func(e sce.Element) bool { return e.Name == xml.Name{Space: nsClient, Local: "body"} }) {
			fmt.Fprintf(stderr, "hush: warning: ignored an unencrypted message from %s\n", in.From)
		}
		return false
	}
	if p := in.Security.Protocol; p != client.OMEMOEncrypted && p != client.OMEMOLegacyEncrypted {
		// OX: the engine has no transaction to join; the message is
		// put in the inbox before it is shown.
		if err := s.putInbox(s.o.Manager().JID(), in, in.Stanza, in.Security); err != nil && !errors.Is(err, client.ErrDuplicate) {
			fmt.Fprintf(stderr, "hush: warning: message from %s: %v\n", in.From, err)
			return false
		}
	}
	return true
}

// The archive cursor (store.ArchiveCursor) of hush listen and chat: how
// far this device has read the account's archive (XEP-0313), as
// "id:ARCHIVE-ID", the id of the last message it handled, or, before it
// handled any, "since:DATETIME", when it first listened. On start they
// page through the archive from there (catchUp), so that messages another
// device of the account took from the server while this one was offline
// are read too; what was seen before is dropped by the seen index.
const (
	cursorID    = "id:"
	cursorSince = "since:"
)

// advanceCursor moves the archive cursor to in, for a message that did not
// reach the inbox (putInbox moves it in its own transaction).
func (s *session) advanceCursor(in *client.Incoming, stderr io.Writer) {
	ids := messageIDs(s.o.Manager().JID(), in)
	if err := s.st.Update(func(tx omemo.Tx) error { return moveCursor(tx, ids) }); err != nil {
		fmt.Fprintf(stderr, "hush: warning: archive cursor: %v\n", err)
	}
}

// moveCursor sets the archive cursor to the archive's id among ids (a
// stanza-id by the own bare JID, or the archive id), if there is one.
func moveCursor(tx omemo.Tx, ids []store.MessageID) error {
	for _, id := range ids {
		if id.Kind == store.StanzaID {
			return setCursor(tx, cursorID+id.ID)
		}
	}
	return nil
}

func setCursor(tx omemo.Tx, c string) error {
	ac, err := cursorOf(tx)
	if err != nil {
		return err
	}
	return ac.SetArchiveCursor(c)
}

// startCursor sets the archive cursor to now.
func (s *session) startCursor() error {
	return s.st.Update(func(tx omemo.Tx) error {
		return setCursor(tx, cursorSince+time.Now().UTC().Format(time.RFC3339))
	})
}

func (s *session) cursor() (string, error) {
	var c string
	err := s.st.View(func(tx omemo.Tx) error {
		ac, err := cursorOf(tx)
		if err != nil {
			return err
		}
		c, err = ac.ArchiveCursor()
		return err
	})
	return c, err
}

// catchUp reads the account's archive from the cursor on, each message
// as a live one (intoInbox), before the initial presence brings the
// offline ones. The first time, it only records when it started.
func (s *session) catchUp(ctx context.Context, stderr io.Writer) error {
	c, err := s.cursor()
	if err != nil {
		return err
	}
	var q client.ArchiveQuery
	switch {
	case strings.HasPrefix(c, cursorID):
		q.After = strings.TrimPrefix(c, cursorID)
	case strings.HasPrefix(c, cursorSince):
		t, err := time.Parse(time.RFC3339, strings.TrimPrefix(c, cursorSince))
		if err != nil {
			return fmt.Errorf("archive cursor %q: %w", c, store.ErrCorrupt)
		}
		q.Start = t
	default:
		return s.startCursor()
	}
	err = s.c.CatchUp(ctx, q, func(in *client.Incoming) error {
		s.intoInbox(in, stderr)
		return nil
	})
	if notFound(err) {
		// The archive no longer has the message of the cursor (expired):
		// read on from now.
		fmt.Fprintf(stderr, "hush: warning: the archive no longer holds the last message read; messages since may be missed\n")
		return s.startCursor()
	}
	return err
}
