package client

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"hush.im/sce"
)

// Archive page sizes (XEP-0313 §4.1, XEP-0059 §2.1).
const (
	// DefaultArchivePage is the page size when ArchiveQuery.Max is zero.
	DefaultArchivePage = 100
	// MaxArchivePage is the largest page the client asks for and accepts;
	// servers cap pages lower (Prosody: max_archive_query_results, 50 by
	// default) and the client pages on.
	MaxArchivePage = 250
)

// EnableCarbons asks the server to copy messages sent and received by the
// account's other resources to this one (XEP-0280 §4).
func (c *Client) EnableCarbons(ctx context.Context) error {
	_, err := c.iq(ctx, "set", jid.JID{}, elem(name(nsCarbons, "enable"), nil))
	return err
}

// DisableCarbons stops carbon copies to this resource (XEP-0280 §5).
func (c *Client) DisableCarbons(ctx context.Context) error {
	_, err := c.iq(ctx, "set", jid.JID{}, elem(name(nsCarbons, "disable"), nil))
	return err
}

// ArchiveQuery selects messages of the account's archive (XEP-0313 §4.1)
// and one page of them (XEP-0059).
type ArchiveQuery struct {
	// With limits the results to a conversation partner.
	With jid.JID
	// Start and End limit the results to a time range (zero: no limit).
	Start, End time.Time
	// After asks for the page after the message with this archive id
	// (XEP-0059 §2.2); empty means the first page.
	After string
	// Max is the page size: zero means DefaultArchivePage, more than
	// MaxArchivePage means MaxArchivePage.
	Max int
}

// ArchivePage is one page of archive results, oldest first.
type ArchivePage struct {
	// Messages are the results, taken out of their wrappers and, where an
	// engine could, decrypted (Via == ViaArchive).
	Messages []*Incoming
	// First and Last are the archive ids of the first and last result
	// (XEP-0059 §2.2); ask for the next page with After: Last.
	First, Last string
	// Count is the number of messages the query matches, or -1 when the
	// server did not say.
	Count int
	// Complete reports that this is the last page (XEP-0313 §4.3).
	Complete bool
}

// archiveCollector receives the results of one running query on the
// Serve goroutine.
type archiveCollector struct {
	mu       sync.Mutex
	max      int
	results  []*sce.Stanza
	overflow bool
}

// collectArchive hands an archive result of a running query to its
// collector. It reports whether the stanza was one.
func (c *Client) collectArchive(st *sce.Stanza) bool {
	res, ok := stanzaChild(st, name(nsMAM, "result"))
	if !ok || !c.fromOwnAccount(st) {
		return false
	}
	c.mu.Lock()
	col := c.mam[res.AttrValue("queryid")]
	c.mu.Unlock()
	if col == nil {
		return false
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.results) >= col.max {
		col.overflow = true
		return true
	}
	col.results = append(col.results, st)
	return true
}

// QueryArchive fetches one page of the account's own archive
// (XEP-0313 §4). Messages that carry an engine's encrypted element are
// decrypted, in archive order; those that could not be, or that carry
// nothing for the application (ErrNoContent, ErrDuplicate), keep the
// engine's error in Err.
func (c *Client) QueryArchive(ctx context.Context, q ArchiveQuery) (*ArchivePage, error) {
	max := q.Max
	if max <= 0 {
		max = DefaultArchivePage
	}
	if max > MaxArchivePage {
		max = MaxArchivePage
	}
	qid := newID()
	col := &archiveCollector{max: max}
	c.mu.Lock()
	c.mam[qid] = col
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.mam, qid)
		c.mu.Unlock()
	}()

	resp, err := c.iq(ctx, "set", jid.JID{}, archiveQuery(qid, q, max))
	if err != nil {
		return nil, err
	}
	fin, ok := stanzaChild(resp, name(nsMAM, "fin"))
	if !ok {
		return nil, fmt.Errorf("%w: archive result without <fin/>", ErrMalformed)
	}
	page, err := parseFin(fin)
	if err != nil {
		return nil, err
	}
	col.mu.Lock()
	results, overflow := col.results, col.overflow
	col.results = nil
	col.mu.Unlock()
	if overflow {
		return nil, fmt.Errorf("%w: more than %d", ErrArchiveOverflow, max)
	}
	for _, st := range results {
		res, _ := stanzaChild(st, name(nsMAM, "result"))
		inner, _, err := sce.Forwarded(st)
		if err != nil {
			c.log.Warn("client: skipping malformed archive result", "id", res.AttrValue("id"), "err", err)
			continue
		}
		in := &Incoming{Stanza: inner, Received: st, From: senderOf(inner, c.own), Via: ViaArchive, ArchiveID: res.AttrValue("id")}
		c.open(ctx, in)
		page.Messages = append(page.Messages, in)
	}
	return page, nil
}

// archiveQuery builds the <query/> of XEP-0313 §4.1 with an RSM set.
func archiveQuery(qid string, q ArchiveQuery, max int) sce.Element {
	var kids []sce.Element
	var fields [][2]string
	if !q.With.Equal(jid.JID{}) {
		fields = append(fields, [2]string{"with", q.With.String()})
	}
	if !q.Start.IsZero() {
		fields = append(fields, [2]string{"start", q.Start.UTC().Format(time.RFC3339)})
	}
	if !q.End.IsZero() {
		fields = append(fields, [2]string{"end", q.End.UTC().Format(time.RFC3339)})
	}
	if len(fields) > 0 {
		kids = append(kids, submitForm(nsMAM, fields))
	}
	set := []sce.Element{sce.TextElement(name(nsRSM, "max"), strconv.Itoa(max))}
	if q.After != "" {
		set = append(set, sce.TextElement(name(nsRSM, "after"), q.After))
	}
	kids = append(kids, elem(name(nsRSM, "set"), nil, set...))
	return elem(name(nsMAM, "query"), []xml.Attr{attr("queryid", qid)}, kids...)
}

// parseFin reads the XEP-0313 §4.3 <fin/> and its RSM set.
func parseFin(fin sce.Element) (*ArchivePage, error) {
	page := &ArchivePage{Count: -1}
	switch fin.AttrValue("complete") {
	case "true", "1":
		page.Complete = true
	case "", "false", "0":
	default:
		return nil, fmt.Errorf("%w: <fin complete=%q>", ErrMalformed, fin.AttrValue("complete"))
	}
	set, ok := child(fin, name(nsRSM, "set"))
	if !ok {
		return nil, fmt.Errorf("%w: <fin/> without an RSM <set/>", ErrMalformed)
	}
	for _, ch := range children(set) {
		switch ch.Name.Local {
		case "first":
			page.First = ch.Text()
		case "last":
			page.Last = ch.Text()
		case "count":
			n, err := strconv.Atoi(ch.Text())
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%w: RSM count %q", ErrMalformed, ch.Text())
			}
			page.Count = n
		}
	}
	return page, nil
}

// CatchUp pages through the account's archive from q on, handing every
// message to fn in order, until the last page or an error from fn.
// Messages an engine found to carry nothing for the application
// (ErrNoContent) or to be duplicates (ErrDuplicate) are skipped. Engines
// implementing CatchUpEngine are told before the first page and after the
// last, so they can batch their work.
func (c *Client) CatchUp(ctx context.Context, q ArchiveQuery, fn func(*Incoming) error) (err error) {
	c.mu.Lock()
	var batched []CatchUpEngine
	for _, e := range c.engines {
		// An engine added under several names (MultiEngine) is told once.
		if ce, ok := e.(CatchUpEngine); ok && !slices.Contains(batched, ce) {
			batched = append(batched, ce)
		}
	}
	c.mu.Unlock()
	for _, e := range batched {
		e.BeginCatchUp()
	}
	defer func() {
		for _, e := range batched {
			if e2 := e.EndCatchUp(ctx); e2 != nil {
				err = errors.Join(err, e2)
			}
		}
	}()
	for {
		page, err := c.QueryArchive(ctx, q)
		if err != nil {
			return err
		}
		for _, in := range page.Messages {
			if quiet(in.Err) {
				continue
			}
			if err := fn(in); err != nil {
				return err
			}
		}
		if page.Complete || len(page.Messages) == 0 || page.Last == "" || page.Last == q.After {
			return nil
		}
		q.After = page.Last
	}
}
