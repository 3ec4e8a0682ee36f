package ox

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"hush.im/sce"
	"mellium.im/xmpp/jid"
)

// DefaultFallbackBody is the unencrypted <body/> Seal puts in OX messages
// for clients that cannot read them (XEP-0374 §5.2: "SHOULD include an
// unencrypted <body/> explaining that the actual message is encrypted").
const DefaultFallbackBody = "This message is encrypted with OpenPGP for XMPP (XEP-0373, XEP-0374)."

// SealOptions configures Seal.
type SealOptions struct {
	// Kind is the content element: sce.KindSigncrypt, sce.KindSign or
	// sce.KindCrypt. The zero value (sce.KindSCE) means KindSigncrypt, the
	// only kind instant messages use (XEP-0374 §4.1).
	Kind sce.Kind
	// Signer is the sender's secret key, unlocked; required except for
	// <crypt/>. It must carry the User ID "xmpp:<bare From>" (XEP-0373 §3.2)
	// and is always encrypted to as well (§3.1: "SHOULD also be encrypted to
	// self").
	Signer *Key
	// From is the sender's JID, for the User ID check; zero means the
	// stanza's 'from'.
	From jid.JID
	// Recipients are every announced key of every recipient (XEP-0374
	// §4.3.1: "all keys MUST be used for encryption").
	Recipients []*Key
	// Own are the sender's own announced public keys, so that the sender's
	// other devices can read the message.
	Own []*Key
	// Now returns the time for <time/> and for judging key validity; nil
	// means time.Now.
	Now func() time.Time
	// FallbackBody replaces DefaultFallbackBody; it is only added to message
	// stanzas protected by encryption.
	FallbackBody string
	// PadTo is passed to sce.SealOptions.PadTo: zero pads to sce.PadTarget.
	PadTo int
}

// Sealed is the result of Seal.
type Sealed struct {
	// Stanza is the stanza to send: the server-processed elements of the
	// original, the XEP-0334 <store/> hint, for messages the fallback <body/>
	// and the XEP-0380 <encryption/>, and <openpgp/>.
	Stanza *sce.Stanza
	// EncryptedTo lists the keys the message was encrypted to.
	EncryptedTo []Fingerprint
	// Skipped lists keys given in Recipients or Own that were not used, and
	// why (expired, revoked, no encryption subkey…).
	Skipped []*KeyError
}

// Seal protects a plaintext stanza with OX (XEP-0373 §3.1, XEP-0374 §4): the
// stanza's sensitive elements go into the content element's <payload/> with
// the <to/>, <time/> and <rpad/> affixes (through sce.Seal with the sce.OX
// profile), which is signed by Signer and encrypted to every usable key of
// Recipients and Own and to Signer, and appended Base64-encoded in
// <openpgp/>.
//
// Unusable keys are skipped and reported in Sealed.Skipped; if no key of
// Recipients is usable, Seal fails with ErrNoRecipients: nothing is ever
// sent in the clear.
func Seal(st *sce.Stanza, opts SealOptions) (*Sealed, error) {
	kind := opts.Kind
	if kind == sce.KindSCE {
		kind = sce.KindSigncrypt
	}
	if kind != sce.KindSigncrypt && kind != sce.KindSign && kind != sce.KindCrypt {
		return nil, fmt.Errorf("%w: <%s/> is not an OX content element", ErrWrongKind, kind)
	}
	clock := opts.Now
	if clock == nil {
		clock = time.Now
	}
	now := clock()
	if st == nil {
		return nil, sce.ErrNotStanza
	}

	if kind != sce.KindCrypt {
		if opts.Signer == nil {
			return nil, fmt.Errorf("ox: <%s/> needs a signer", kind)
		}
		from := opts.From
		if from.Equal(jid.JID{}) {
			f, err := jid.Parse(st.AttrValue("from"))
			if err != nil {
				return nil, fmt.Errorf("ox: sender JID unknown: set SealOptions.From")
			}
			from = f
		}
		if err := opts.Signer.readySecret(); err != nil {
			return nil, err
		}
		if _, err := opts.Signer.signingKey(now); err != nil {
			return nil, err
		}
		if !opts.Signer.hasJIDAt(from, now) {
			return nil, &KeyError{Fingerprint: opts.Signer.fpr, Err: ErrSignerMismatch}
		}
	} else if opts.Signer != nil {
		return nil, fmt.Errorf("%w: <crypt/> must not be signed", ErrWrongProtection)
	}

	res := &Sealed{}
	var to []*Key
	if kind == sce.KindSign {
		if len(opts.Recipients) > 0 || len(opts.Own) > 0 {
			return nil, fmt.Errorf("%w: <sign/> must not be encrypted", ErrWrongProtection)
		}
	} else {
		usable := func(k *Key) bool {
			if slices.Contains(res.EncryptedTo, k.fpr) {
				return true
			}
			if _, err := k.encryptionKey(now); err != nil {
				var ke *KeyError
				if !errors.As(err, &ke) {
					ke = &KeyError{Fingerprint: k.fpr, Err: err}
				}
				res.Skipped = append(res.Skipped, ke)
				return false
			}
			res.EncryptedTo = append(res.EncryptedTo, k.fpr)
			to = append(to, k)
			return true
		}
		anyRecipient := false
		for _, k := range opts.Recipients {
			if usable(k) {
				anyRecipient = true
			}
		}
		if !anyRecipient {
			return nil, ErrNoRecipients
		}
		for _, k := range opts.Own {
			usable(k)
		}
		if opts.Signer != nil {
			usable(opts.Signer.Public())
		}
	}

	if err := checkProtection(kind, opts.Signer, to); err != nil {
		return nil, err
	}
	outer, _, plaintext, err := sce.SealBytes(st, sce.SealOptions{
		Profile: sce.OX(kind),
		Now:     func() time.Time { return now },
		PadTo:   opts.PadTo,
	})
	if err != nil {
		return nil, err
	}
	msg, err := encryptContent(kind, plaintext, opts.Signer, to, now)
	if err != nil {
		return nil, err
	}
	if outer.Name.Local == "message" && kind != sce.KindSign {
		body := opts.FallbackBody
		if body == "" {
			body = DefaultFallbackBody
		}
		outer.Children = append(outer.Children, sce.TextElement(
			xmlName(outer.Name.Space, "body"), body))
		if !slices.ContainsFunc(outer.Children, func(e sce.Element) bool { return e.Name == encryptName }) {
			outer.Children = append(outer.Children, sce.TextElement(encryptName, "",
				xmlAttr("namespace", NS)))
		}
	}
	outer.Children = append(outer.Children, OpenPGP{Message: msg}.Element())
	res.Stanza = outer
	return res, nil
}

// OpenOptions configures Open.
type OpenOptions struct {
	// Kind is the content element expected: the zero value (sce.KindSCE)
	// means sce.KindSigncrypt, the only kind instant messages use (XEP-0374
	// §4.1). Any other kind is ErrWrongKind.
	Kind sce.Kind
	// Keys are our own secret keys, unlocked, to decrypt with.
	Keys []*Key
	// SenderKeys are the sender's announced public keys, to verify with.
	SenderKeys []*Key
	// Now returns the current time, for the <time/> window and key validity;
	// nil means time.Now.
	Now func() time.Time
	// Window is the largest accepted distance between <time/> and the
	// sending time; zero means sce.DefaultWindow.
	Window time.Duration
}

// Opened is the result of Open.
type Opened struct {
	// Stanza is the stanza the application sees: the payload's elements
	// (Encrypted: true) in place of <openpgp/>, merged with the
	// server-processed elements outside by sce.Open.
	Stanza *sce.Stanza
	// Envelope is the verified content element.
	Envelope *sce.Envelope
	// Signer is the public key that signed it; nil for <crypt/>.
	Signer *Key
	// Raw is the decrypted content element as the sender wrote it.
	Raw []byte
}

// Open decrypts and verifies an OX stanza (XEP-0373 §3.2, XEP-0374 §4) and
// rebuilds the plaintext stanza. It accepts the stanza only if:
//
//   - it has exactly one <openpgp/>, holding a well-formed OpenPGP message
//     that one of Keys decrypts;
//   - the content element is of the expected kind and protected as XEP-0373
//     §3.1 requires;
//   - the signature verifies with one of SenderKeys, none of them expired or
//     revoked, and the signing key has a User ID "xmpp:<bare JID of the
//     stanza's from>";
//   - at least one <to/> names the bare JID of the stanza's 'to', and <time/>
//     is within Window of the sending time (sce.Verify with sce.OX);
//
// then the payload's elements go through sce.Open's merge rules. Every
// failure matches ErrRejected and one more specific error; nothing is
// changed.
func Open(st *sce.Stanza, opts OpenOptions) (*Opened, error) {
	o, err := open(st, opts)
	return o, reject(err)
}

func open(st *sce.Stanza, opts OpenOptions) (*Opened, error) {
	if st == nil {
		return nil, sce.ErrNotStanza
	}
	kind := opts.Kind
	if kind == sce.KindSCE {
		kind = sce.KindSigncrypt
	}
	clock := opts.Now
	if clock == nil {
		clock = time.Now
	}
	now := clock()
	var el *sce.Element
	for i := range st.Children {
		if st.Children[i].Name == openpgpName {
			if el != nil {
				return nil, fmt.Errorf("%w: more than one <openpgp/>", ErrInvalidElement)
			}
			el = &st.Children[i]
		}
	}
	if el == nil {
		return nil, sce.ErrNoEncrypted
	}
	p, err := ParseOpenPGP(*el)
	if err != nil {
		return nil, err
	}
	c, err := decryptContent(p.Message, opts.Keys, opts.SenderKeys, now)
	if err != nil {
		return nil, err
	}
	if c.Envelope.Kind != kind {
		return nil, fmt.Errorf("%w: <%s/>, want <%s/>", ErrWrongKind, c.Envelope.Kind, kind)
	}
	if c.Signer != nil {
		from, err := jid.Parse(st.AttrValue("from"))
		if err != nil || !c.Signer.hasJIDAt(from, now) {
			return nil, ErrSignerMismatch
		}
	}
	if err := sce.Verify(c.Envelope, st, sce.OX(kind), sce.VerifyOptions{Now: clock, Window: opts.Window}); err != nil {
		return nil, err
	}
	plain, err := sce.Open(st, c.Envelope, openpgpName)
	if err != nil {
		return nil, err
	}
	return &Opened{Stanza: plain, Envelope: c.Envelope, Signer: c.Signer, Raw: c.Raw}, nil
}
