package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"

	"mellium.im/xmpp/jid"

	"hush.im/client"
	"hush.im/omemo"
	"hush.im/omemo/legacy"
	"hush.im/ox"
)

// Doctor thresholds and names.
const (
	// nsPublishOptions is the pubsub feature for publish-options
	// (XEP-0060 §7.1.5), which hush needs to publish its bundle and
	// device list with access model open (XEP-0384 §5.3).
	nsPublishOptions = "http://jabber.org/protocol/pubsub#publish-options"
	// doctorLowPreKeys: fewer one-time prekeys than this in the published
	// bundle is reported (XEP-0384 §5.3.2 asks for at least 25; hush keeps
	// omemo.DefaultPreKeys and refills after each key exchange).
	doctorLowPreKeys = omemo.MinPreKeys
)

// doctorReport collects the checks of hush doctor.
type doctorReport struct {
	w        io.Writer
	problems int
}

func (r *doctorReport) ok(format string, args ...any) {
	fmt.Fprintf(r.w, "ok       "+format+"\n", args...)
}

func (r *doctorReport) info(format string, args ...any) {
	fmt.Fprintf(r.w, "info     "+format+"\n", args...)
}

func (r *doctorReport) problem(hint, format string, args ...any) {
	r.problems++
	fmt.Fprintf(r.w, "PROBLEM  "+format+"\n", args...)
	if hint != "" {
		fmt.Fprintf(r.w, "         hint: %s\n", hint)
	}
}

// notFound reports whether err is a pubsub item-not-found (no such node
// or item, XEP-0060 §6.5.9.11).
func notFound(err error) bool {
	var se *client.StanzaError
	return errors.As(err, &se) && se.Condition == "item-not-found"
}

// firstPayload returns the first item with a payload, or false.
func firstPayload(items []client.Item) (client.Item, bool) {
	for _, it := range items {
		if it.Payload.Name.Local != "" {
			return it, true
		}
	}
	return client.Item{}, false
}

// countChildren counts the direct children of a payload named local.
func countChildren(el client.Item, local string) int {
	n, depth := 0, 0
	for _, tok := range el.Payload.Tokens {
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 && t.Name.Local == local {
				n++
			}
		case xml.EndElement:
			depth--
		}
	}
	return n
}

const doctorSynopsis = "[account flags] [JID...]"

// runDoctor implements "hush doctor": checks the account's server and
// published keys, and what the given contacts announce.
func runDoctor(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("doctor", doctorSynopsis, stderr)
	af := addAccountFlags(fs)
	if err := parseNetFlags(fs, args); err != nil {
		return err
	}
	var contacts []jid.JID
	for _, arg := range fs.Args() {
		j, err := jid.Parse(arg)
		if err != nil || j.Domainpart() == "" {
			return &usageError{msg: fmt.Sprintf("doctor: invalid JID %q", arg)}
		}
		contacts = append(contacts, j.Bare())
	}
	ctx, cancel := context.WithTimeout(context.Background(), netTimeout)
	defer cancel()
	s, err := af.connect(ctx, stdin, stderr, oxIfPresent)
	if err != nil {
		return err
	}
	defer s.close()
	r := &doctorReport{w: stdout}
	m := s.o.Manager()
	own := m.JID()
	fmt.Fprintf(stdout, "account  %s, this device %d\n", own, m.DeviceID())

	// The server: PEP (XEP-0163 §4 identity pubsub/pep) and
	// publish-options.
	info, err := s.c.DiscoInfo(ctx, own, "")
	if err != nil {
		r.problem("the server answers no disco#info on the account: PEP is probably missing", "server: disco#info on %s: %v", own, err)
	} else {
		pep := false
		for _, id := range info.Identities {
			if id.Category == "pubsub" && id.Type == "pep" {
				pep = true
			}
		}
		if pep {
			r.ok("server supports PEP (XEP-0163)")
		} else {
			r.problem("OMEMO and OX keep their keys in PEP; ask the server's admin to enable it (Prosody: mod_pep)", "server announces no PEP identity (pubsub/pep) on %s", own)
		}
		if info.Has(nsPublishOptions) {
			r.ok("server supports publish-options (XEP-0060 §7.1.5)")
		} else {
			r.problem("without publish-options the bundle may stay readable to contacts only; upgrade the server", "server does not announce %s", nsPublishOptions)
		}
	}

	// The own device list and bundle, fetched fresh from the server as a
	// contact would (XEP-0384 §5.3).
	items, err := s.c.FetchItems(ctx, own, omemo.NodeDevices)
	var list omemo.DeviceList
	switch it, ok := firstPayload(items); {
	case err != nil:
		r.problem(`run "hush devices" to publish it again`, "own device list (%s): %v", omemo.NodeDevices, err)
	case !ok:
		r.problem(`run "hush devices" to publish it again`, "own device list (%s) is empty", omemo.NodeDevices)
	default:
		if err := xml.NewTokenDecoder(&tokens{toks: it.Payload.Tokens}).Decode(&list); err != nil {
			r.problem("another client published a broken list; publishing again replaces it", "own device list: %v", err)
		} else if !list.Contains(m.DeviceID()) {
			r.problem(`run "hush devices" to announce this device again`, "this device %d is not on the own device list (%d devices)", m.DeviceID(), len(list.Devices))
		} else {
			r.ok("own device list has %d %s, this one included", len(list.Devices), plural(len(list.Devices), "device", "devices"))
		}
	}
	id := strconv.FormatUint(uint64(m.DeviceID()), 10)
	items, err = s.c.FetchItems(ctx, own, omemo.NodeBundles, id)
	var bundle omemo.Bundle
	switch it, ok := firstPayload(items); {
	case err != nil:
		r.problem(`contacts cannot start a session with this device; run "hush devices" to publish it again`, "own bundle (%s, item %s) not fetchable: %v", omemo.NodeBundles, id, err)
	case !ok:
		r.problem(`run "hush devices" to publish it again`, "own bundle (item %s) is empty", id)
	default:
		if err := xml.NewTokenDecoder(&tokens{toks: it.Payload.Tokens}).Decode(&bundle); err != nil {
			r.problem("publishing again replaces it", "own bundle: %v", err)
		} else if !bytes.Equal(bundle.IdentityKey, m.IdentityKey()) {
			r.problem("another device published a bundle under this device id; remove the store or its other copy", "own bundle holds another identity key than this device")
		} else if n := len(bundle.PreKeys); n < doctorLowPreKeys {
			r.problem(`run "hush listen" once so that hush refills them`, "own bundle has %d prekeys left (fewer than %d)", n, doctorLowPreKeys)
		} else {
			r.ok("own bundle is fetchable, %d prekeys left", n)
		}
	}

	checkLegacy(ctx, s, r)

	// OX: the own public key announced (XEP-0373 §4.2).
	if s.x != nil {
		fpr := s.x.Key().Fingerprint()
		items, err := s.c.FetchItems(ctx, own, ox.NodePublicKeys)
		var l ox.PublicKeysList
		it, ok := firstPayload(items)
		switch {
		case err != nil || !ok:
			r.problem(`run "hush listen --ox" to announce it`, "own OX key %s is not announced: %v", fpr, err)
		case xml.NewTokenDecoder(&tokens{toks: it.Payload.Tokens}).Decode(&l) != nil:
			r.problem(`run "hush listen --ox" to announce it again`, "own OX key list is malformed")
		default:
			found := false
			for _, k := range l.Keys {
				found = found || k.Fingerprint == fpr
			}
			if found {
				r.ok("own OX key %s is announced", fpr)
			} else {
				r.problem(`run "hush listen --ox" to announce it`, "own OX key %s is not on the announced list", fpr)
			}
		}
	} else {
		r.info("no OX key (made on the first send --ox or listen --ox)")
	}

	// Contacts: which protocols they announce.
	for _, c := range contacts {
		var have []string
		for _, p := range []struct{ name, node, child, unit string }{
			{"OMEMO 2", omemo.NodeDevices, "device", "device"},
			{"legacy OMEMO", legacy.NodeDeviceList, "device", "device"},
			{"OX", ox.NodePublicKeys, "pubkey-metadata", "key"},
		} {
			items, err := s.c.FetchItems(ctx, c, p.node)
			it, ok := firstPayload(items)
			switch {
			case notFound(err) || (err == nil && !ok):
			case err != nil:
				r.info("%s: %s: %v", c, p.name, err)
			default:
				n := countChildren(it, p.child)
				if n > 0 {
					have = append(have, fmt.Sprintf("%s (%d %s)", p.name, n, plural(n, p.unit, p.unit+"s")))
				}
			}
		}
		if len(have) == 0 {
			r.problem("they may be on a client without end-to-end encryption, or their PEP nodes are not visible to you (add each other to the roster)", "%s announces no OMEMO 2, legacy OMEMO or OX keys", c)
			continue
		}
		r.ok("%s announces %s", c, joinList(have))
	}
	if r.problems > 0 {
		return &exitError{code: 1, err: fmt.Errorf("doctor: %d %s", r.problems, plural(r.problems, "problem", "problems"))}
	}
	fmt.Fprintln(stdout, "healthy")
	return nil
}

// checkLegacy checks the own legacy OMEMO device list and bundle
// (XEP-0384 0.3 §4.3, §4.4), fetched as a contact would: what
// Conversations, Dino, Gajim and Profanity read.
func checkLegacy(ctx context.Context, s *session, r *doctorReport) {
	m := s.o.Manager()
	own := m.JID()
	items, err := s.c.FetchItems(ctx, own, legacy.NodeDeviceList)
	var list legacy.DeviceList
	switch it, ok := firstPayload(items); {
	case err != nil:
		r.problem(`legacy OMEMO clients cannot reach this device; run "hush devices" to publish it again`, "own legacy device list (%s): %v", legacy.NodeDeviceList, err)
	case !ok:
		r.problem(`run "hush devices" to publish it again`, "own legacy device list (%s) is empty", legacy.NodeDeviceList)
	default:
		if err := xml.NewTokenDecoder(&tokens{toks: it.Payload.Tokens}).Decode(&list); err != nil {
			r.problem("another client published a broken list; publishing again replaces it", "own legacy device list: %v", err)
		} else if !list.Contains(m.DeviceID()) {
			r.problem(`run "hush devices" to announce this device again`, "this device %d is not on the own legacy device list (%d devices)", m.DeviceID(), len(list.Devices))
		} else {
			r.ok("own legacy device list has %d %s, this one included", len(list.Devices), plural(len(list.Devices), "device", "devices"))
		}
	}
	node := legacy.BundleNode(m.DeviceID())
	items, err = s.c.FetchItems(ctx, own, node)
	var bundle legacy.Bundle
	mine, merr := m.LegacyBundle()
	switch it, ok := firstPayload(items); {
	case err != nil:
		r.problem(`legacy OMEMO clients cannot start a session with this device; run "hush devices" to publish it again`, "own legacy bundle (%s) not fetchable: %v", node, err)
	case !ok:
		r.problem(`run "hush devices" to publish it again`, "own legacy bundle (%s) is empty", node)
	case merr != nil:
		r.problem("", "own legacy bundle: %v", merr)
	default:
		if err := xml.NewTokenDecoder(&tokens{toks: it.Payload.Tokens}).Decode(&bundle); err != nil {
			r.problem("publishing again replaces it", "own legacy bundle: %v", err)
		} else if !bytes.Equal(bundle.IdentityKey, mine.IdentityKey) {
			r.problem("another device published a legacy bundle under this device id; remove the store or its other copy", "own legacy bundle holds another identity key than this device")
		} else if n := len(bundle.PreKeys); n < doctorLowPreKeys {
			r.problem(`run "hush listen" once so that hush refills them`, "own legacy bundle has %d prekeys left (fewer than %d)", n, doctorLowPreKeys)
		} else {
			r.ok("own legacy bundle is fetchable, %d prekeys left", n)
		}
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func joinList(s []string) string {
	var b bytes.Buffer
	for i, x := range s {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(x)
	}
	return b.String()
}
