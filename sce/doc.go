// Package sce implements Stanza Content Encryption, XEP-0420 version 0.5.0,
// namespace urn:xmpp:sce:1: the envelope that carries every sensitive element
// of a stanza, its affixes (rpad, time, to, from), padding, affix
// verification, and the split of a plaintext stanza into what goes inside the
// envelope and what must stay outside for the servers.
//
// The package encrypts nothing. An encryption engine (OMEMO 2, OX) uses it
// like this:
//
//	// sending
//	outer, env, plaintext, err := sce.SealBytes(stanza, sce.SealOptions{Profile: sce.OMEMO2(), From: me})
//	// ... encrypt plaintext, append <encrypted/> and the XEP-0380 <encryption/> to outer
//
//	// receiving
//	env, err := sce.Parse(decrypted)
//	err = sce.Verify(env, outer, sce.OMEMO2(), sce.VerifyOptions{})
//	plain, err := sce.Open(outer, env, xml.Name{Space: "urn:xmpp:omemo:2", Local: "encrypted"})
//
// SealBytes (or Seal, then Envelope.Marshal), Parse, Verify and Open are
// what most callers need. Open does not verify: always call Verify first. A
// message that arrived inside a XEP-0280 carbon or a XEP-0313 archive
// result is first taken out of its wrapper with Forwarded, which carries the
// archive's delay stamp along so that Verify checks the time affix against
// it.
//
// The OpenPGP for XMPP content elements of XEP-0373 §3.1 (signcrypt, sign and
// crypt in urn:xmpp:openpgp:0, with a payload instead of content) have the
// same shape and are handled by the same code: see Kind, ParseKind, ParseOX
// and OX. ParseDateTime and FormatDateTime are the XEP-0082 §3.2 DateTime
// codec of the <time/> affix, for other packages' timestamps too.
//
// Stanzas are modelled as a list of child elements kept as XML tokens
// (Stanza, Element). Every Element says whether it came from inside the
// encrypted envelope (Encrypted) so the application can never confuse the
// two. Which elements are server-processed is data, not code: see Classify
// and registry.go.
//
// Parsing is strict and bounded (MaxEnvelopeSize, MaxStanzaSize, MaxDepth,
// MaxNodes); every failure is a typed error (the Err… sentinels, AffixError,
// LimitError) and no input makes the package panic.
package sce // import "hush.im/sce"
