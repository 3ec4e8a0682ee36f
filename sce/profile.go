package sce

import "fmt"

// Profile is an encryption protocol's use of the affixes (XEP-0420 §4:
// "Encryption protocols that make use of Stanza Content Encryption MUST
// define their own profiles").
//
// Seal adds Required, Recommended, GroupChat (in group chats) and whatever
// SealOptions.Add asks for. Verify rejects an envelope that lacks Required
// (or GroupChat in a group chat) affixes, or that has affixes outside
// Required|Recommended|Allowed|GroupChat; every affix present is verified.
type Profile struct {
	// Name identifies the profile in errors, e.g. "urn:xmpp:omemo:2". It must
	// not be empty.
	Name string
	// Kind is the container the protocol encrypts.
	Kind Kind
	// Required affixes MUST be present.
	Required Affix
	// Recommended affixes SHOULD be present: Seal adds them, Verify accepts
	// their absence.
	Recommended Affix
	// Allowed affixes MAY be present.
	Allowed Affix
	// GroupChat affixes are required in group chats (MUC, MIX).
	GroupChat Affix
}

// OMEMO2 returns the SCE profile of OMEMO 2, XEP-0384 0.9 §5.5.1: <rpad/>
// MUST, <from/> SHOULD, <time/> MAY, <to/> MUST in group chats (and MAY
// otherwise). Converse.js sends rpad and from only, which this profile
// accepts for one-to-one chats.
func OMEMO2() Profile {
	return Profile{
		Name:        "urn:xmpp:omemo:2",
		Kind:        KindSCE,
		Required:    AffixRpad,
		Recommended: AffixFrom,
		Allowed:     AffixTime | AffixTo,
		GroupChat:   AffixTo,
	}
}

// OX returns the profile of an OpenPGP for XMPP content element, XEP-0373
// 0.7 §3.1 table "OpenPGP Content Element Properties":
//
//	signcrypt: to MUST, time MUST, rpad SHOULD
//	sign:      to MUST, time MUST, rpad OPTIONAL
//	crypt:     to OPTIONAL, time MUST, rpad SHOULD
//
// For a Kind that is not an OX content element it returns the zero Profile,
// which Seal and Verify reject.
func OX(k Kind) Profile {
	p := Profile{Kind: k}
	switch k {
	case KindSigncrypt:
		p.Required, p.Recommended = AffixTo|AffixTime, AffixRpad
	case KindSign:
		p.Required, p.Allowed = AffixTo|AffixTime, AffixRpad
	case KindCrypt:
		p.Required, p.Recommended, p.Allowed = AffixTime, AffixRpad, AffixTo
	default:
		return Profile{}
	}
	p.Name = "urn:xmpp:openpgp:0 " + k.String()
	return p
}

// permitted returns every affix the profile lets an envelope carry.
func (p Profile) permitted() Affix {
	return p.Required | p.Recommended | p.Allowed | p.GroupChat
}

func (p Profile) check() error {
	if p.Name == "" || !p.Kind.valid() {
		return ErrInvalidProfile
	}
	if extra := p.permitted() &^ p.Kind.affixes(); extra != 0 {
		return fmt.Errorf("%w: %s cannot carry %v", ErrInvalidProfile, p.Kind, extra)
	}
	return nil
}
