package sce

import (
	"bytes"
	"crypto/rand"
	"encoding/xml"
	"fmt"
	"time"

	"mellium.im/xmpp/jid"
)

// Padding (XEP-0420 §4, <rpad/>): "the stanza is padded to a fixed minimum
// size. Afterwards, between 0 and 200 characters are added on top." The XEP
// leaves the minimum open ("TODO: sane boundaries?").
const (
	// PadTarget is the serialized envelope size, in bytes, that Seal pads up
	// to before adding the random part. 256 bytes hides the length of the
	// messages that leak most by their length — "ok", a thumbs-up, receipts,
	// chat states, bodies up to about a hundred characters — for the cost of
	// a few hundred bytes per message.
	PadTarget = 256

	// MaxRandomPad is the most random characters Seal adds on top of
	// PadTarget; the count is uniform in 0…MaxRandomPad. XEP-0420 §4.
	MaxRandomPad = 200
)

// padAlphabet is what <rpad/> is made of: 64 characters that are valid in
// XML and need no escaping (XEP-0420 0.3.0 allows any characters).
const padAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// SealOptions configures Seal.
type SealOptions struct {
	// Profile is the encryption protocol's profile, e.g. OMEMO2() or
	// OX(KindSigncrypt). It decides the container and the affixes.
	Profile Profile
	// From is the sender's JID for <from/> when the stanza has no 'from'
	// attribute (clients usually leave it to their server). Only its bare
	// form is used.
	From jid.JID
	// GroupChat applies the profile's group-chat rules (for OMEMO 2: <to/>
	// naming the room). It is implied for messages of type 'groupchat'.
	GroupChat bool
	// Add asks for affixes beyond the profile's required and recommended
	// ones; they must be allowed by the profile.
	Add Affix
	// PadTo overrides PadTarget: zero means PadTarget, a negative value no
	// minimum (only the random part).
	PadTo int
	// Now returns the time for <time/>; nil means time.Now.
	Now func() time.Time
	// Extra holds protocol-specific affix elements to add to the envelope.
	Extra []Element
}

var storeName = xml.Name{Space: nsHints, Local: "store"}

// Seal splits a plaintext stanza into the outer stanza that travels in the
// clear and the envelope to encrypt (XEP-0420 §7):
//
//   - Sensitive elements (everything not in the registry, <body/> always)
//     go into the envelope's content;
//   - ServerProcessed elements (hints, <stanza-id/>, <addresses/>,
//     <encryption/>, <delay/>, carbons and MAM elements, …) stay outside;
//   - Mirrored elements (<origin-id/>) stay outside and are copied inside;
//   - an unencrypted SCE envelope in the stanza is ErrInvalidElement;
//   - the affixes the profile requires or recommends are added: <to/> and
//     <from/> from the stanza's attributes as bare JIDs (SealOptions.From
//     when there is no 'from'), <time/> from the clock, <rpad/> as described
//     at PadTarget;
//   - a message that is not of type 'error' gets one unencrypted
//     <store xmlns='urn:xmpp:hints'/> (XEP-0420 §7, §10; XEP-0334), unless it
//     has one already.
//
// The caller then serializes env (Envelope.Marshal), encrypts it, and
// appends its own encrypted element and the XEP-0380 <encryption/> to
// outer. Neither outer nor env share slices with st that Seal modifies, but
// the elements' tokens are shared: do not modify them afterwards.
//
// Seal serializes the envelope to measure it for padding; SealBytes returns
// that serialization, which saves the caller a second one.
func Seal(st *Stanza, opts SealOptions) (outer *Stanza, env *Envelope, err error) {
	outer, env, _, err = SealBytes(st, opts)
	return outer, env, err
}

// SealBytes is Seal that also returns the serialized envelope, the plaintext
// to encrypt: the same bytes env.Marshal() would return, without serializing
// the envelope a second time. plaintext is the caller's; env must not be
// modified if plaintext is to stay its serialization.
func SealBytes(st *Stanza, opts SealOptions) (outer *Stanza, env *Envelope, plaintext []byte, err error) {
	if err := checkStanza(st); err != nil {
		return nil, nil, nil, err
	}
	p := opts.Profile
	if err := p.check(); err != nil {
		return nil, nil, nil, err
	}
	group := opts.GroupChat || st.isGroupChat()
	want := p.Required | p.Recommended | opts.Add
	need := p.Required
	if group {
		want |= p.GroupChat
		need |= p.GroupChat
	}
	if extra := opts.Add &^ p.permitted(); extra != 0 {
		return nil, nil, nil, &AffixError{Affix: extra.first(), Err: ErrAffixNotAllowed}
	}

	env = &Envelope{Kind: p.Kind}
	outer = st.cloneHead(4)
	hasStore := false
	for _, el := range st.Children {
		switch Classify(el.Name) {
		case Sensitive:
			el.Encrypted = true
			env.Content = append(env.Content, el)
		case Mirrored:
			el.Encrypted = true
			env.Content = append(env.Content, el)
			el.Encrypted = false
			outer.Children = append(outer.Children, el)
		case ServerProcessed:
			if el.Name == storeName {
				if hasStore {
					continue
				}
				hasStore = true
			}
			el.Encrypted = false
			outer.Children = append(outer.Children, el)
		default:
			return nil, nil, nil, invalidElement("unencrypted SCE element in the stanza to seal")
		}
	}

	for _, a := range [...]Affix{AffixTo, AffixFrom} {
		if want&a == 0 {
			continue
		}
		attr, fallback := st.AttrValue("to"), jid.JID{}
		if a == AffixFrom {
			attr, fallback = st.AttrValue("from"), opts.From
		}
		j, ok, err := addressAffix(a, attr, fallback)
		switch {
		case err != nil:
			return nil, nil, nil, err
		case !ok && need&a != 0:
			return nil, nil, nil, &AffixError{Affix: a, Err: ErrNoAddress}
		case ok && a == AffixTo:
			env.To = []jid.JID{j}
		case ok:
			env.From = j
		}
	}
	if want&AffixTime != 0 {
		now := time.Now
		if opts.Now != nil {
			now = opts.Now
		}
		env.Time = now().UTC().Truncate(time.Millisecond)
	}
	for _, el := range opts.Extra {
		el.Encrypted = true
		env.Extra = append(env.Extra, el)
	}

	// Serialize once: this validates every element, measures for padding,
	// enforces the limits the receiver's parser applies, and gives the
	// plaintext. An <rpad/> is written empty; its text, which needs no
	// escaping, is spliced in at padAt once the size is known.
	pad := want&AffixRpad != 0
	env.HasRpad = pad
	var buf bytes.Buffer
	buf.Grow(env.sizeHint())
	padAt := -1
	var mark *int
	if pad {
		mark = &padAt
	}
	wr, err := serialize(env, &buf, mark, false)
	if err != nil {
		return nil, nil, nil, err
	}
	if wr.deepest > MaxDepth {
		return nil, nil, nil, &LimitError{Limit: "depth", Max: MaxDepth}
	}
	// The rpad's element is counted already, its text not yet.
	if wr.nodes+1 > MaxNodes {
		return nil, nil, nil, &LimitError{Limit: "nodes", Max: MaxNodes}
	}
	size := buf.Len()
	if pad {
		if padAt < 0 {
			return nil, nil, nil, invalidElement("no place for <rpad/>") // cannot happen
		}
		target := opts.PadTo
		if target == 0 {
			target = PadTarget
		}
		fill := max(0, target-size)
		fill = min(fill, MaxEnvelopeSize-MaxRandomPad-size)
		if env.Rpad, err = randomPad(fill); err != nil {
			return nil, nil, nil, err
		}
		size += len(env.Rpad)
	}
	if size > MaxEnvelopeSize {
		return nil, nil, nil, &LimitError{Limit: "size", Max: MaxEnvelopeSize}
	}
	if pad && env.Rpad != "" {
		// Make room after the end of the buffer and move the tail there.
		tail := buf.Len() - padAt
		buf.WriteString(env.Rpad)
		b := buf.Bytes()
		copy(b[padAt+len(env.Rpad):], b[padAt:padAt+tail])
		copy(b[padAt:], env.Rpad)
	}
	plaintext = buf.Bytes()

	if st.isMessage() && st.AttrValue("type") != "error" && !hasStore {
		outer.Children = append(outer.Children, TextElement(storeName, ""))
	}
	return outer, env, plaintext, nil
}

// addressAffix returns the bare JID for a <to/> or <from/> affix from the
// stanza attribute value, or fallback, and whether there is one.
func addressAffix(a Affix, attr string, fallback jid.JID) (jid.JID, bool, error) {
	if attr == "" {
		if isZeroJID(fallback) {
			return jid.JID{}, false, nil
		}
		return fallback.Bare(), true, nil
	}
	j, err := jid.Parse(attr)
	if err != nil {
		return jid.JID{}, false, &AffixError{Affix: a, Err: ErrMalformedAffix}
	}
	return j.Bare(), true, nil
}

// randomPad returns fill characters plus a uniformly random number of
// characters in 0…MaxRandomPad, all uniformly random from padAlphabet, from
// crypto/rand.
func randomPad(fill int) (string, error) {
	fill = max(fill, 0)
	var buf [32]byte
	extra := -1
	for extra < 0 {
		if _, err := rand.Read(buf[:]); err != nil {
			return "", fmt.Errorf("sce: padding: %w", err)
		}
		// Rejection sampling: bytes 0…200 are uniform over MaxRandomPad+1.
		for _, c := range buf {
			if int(c) <= MaxRandomPad {
				extra = int(c)
				break
			}
		}
	}
	b := make([]byte, fill+extra)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("sce: padding: %w", err)
	}
	for i, c := range b {
		b[i] = padAlphabet[c&63]
	}
	return string(b), nil
}

// Open rebuilds the stanza the application sees from the outer stanza and
// its decrypted, verified envelope (XEP-0420 §8, §10). Call Verify first:
// Open does not check affixes.
//
// The element named encrypted (e.g. {urn:xmpp:omemo:2 encrypted}, {urn:xmpp:openpgp:0
// openpgp}) is replaced by the envelope's content, marked Encrypted: true,
// without the ServerProcessed and Forbidden elements found inside (a
// <store/> or <stanza-id/> smuggled inside is dropped). Of the other outer
// elements, ServerProcessed and Mirrored ones are kept marked Encrypted:
// false; Sensitive ones (an unencrypted <body/> beside the encrypted
// element), unencrypted envelopes and further encrypted elements of the same
// name are dropped. Elements that are unique per xml:lang (body, subject,
// thread, origin-id, each hint…) are kept once: the first encrypted one,
// else the first unencrypted one. A missing encrypted element is
// ErrNoEncrypted.
func Open(outer *Stanza, env *Envelope, encrypted xml.Name) (*Stanza, error) {
	if err := checkStanza(outer); err != nil {
		return nil, err
	}
	if env == nil {
		return nil, ErrNotEnvelope
	}
	at := -1
	for i := range outer.Children {
		if outer.Children[i].Name == encrypted {
			at = i
			break
		}
	}
	if at < 0 {
		return nil, ErrNoEncrypted
	}
	var seen map[uniqueKey]struct{}
	keep := func(el *Element, r *rule) bool {
		if r == nil || !r.unique {
			return true
		}
		k := uniqueKey{name: xml.Name{Space: canonicalSpace(el.Name.Space), Local: el.Name.Local}, lang: el.lang()}
		if _, dup := seen[k]; dup {
			return false
		}
		if seen == nil {
			seen = make(map[uniqueKey]struct{})
		}
		seen[k] = struct{}{}
		return true
	}
	inner := make([]Element, 0, len(env.Content))
	for _, el := range env.Content {
		r := lookup(el.Name)
		if r != nil && (r.class == ServerProcessed || r.class == Forbidden) {
			continue
		}
		if !keep(&el, r) {
			continue
		}
		el.Encrypted = true
		inner = append(inner, el)
	}
	res := outer.cloneHead(len(outer.Children) + len(inner))
	for i, el := range outer.Children {
		if i == at {
			res.Children = append(res.Children, inner...)
			continue
		}
		if el.Name == encrypted {
			continue
		}
		r := lookup(el.Name)
		if r == nil || r.class == Sensitive || r.class == Forbidden {
			continue
		}
		if !keep(&el, r) {
			continue
		}
		el.Encrypted = false
		res.Children = append(res.Children, el)
	}
	return res, nil
}

type uniqueKey struct {
	name xml.Name
	lang string
}
