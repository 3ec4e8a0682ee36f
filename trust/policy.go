package trust

import (
	"sync"

	"hush.im/omemo"
	"mellium.im/xmpp/jid"
)

// Levels gives the trust levels recorded for the identity keys of one bare
// JID (one level per key, in any order). BTBV consults it for every device
// whose key is undecided.
//
// Levels is called from inside the omemo.Manager's store transaction (the
// policy is consulted while a message is being encrypted), so it must not
// call back into the Manager or its Store: both shipped stores would
// deadlock. Use an Index, fed from Manager.Devices outside encryption, or
// an equivalent cache.
type Levels interface {
	Levels(bare jid.JID) ([]omemo.TrustLevel, error)
}

// LevelsFunc adapts a function to Levels.
type LevelsFunc func(bare jid.JID) ([]omemo.TrustLevel, error)

// Levels implements Levels.
func (f LevelsFunc) Levels(bare jid.JID) ([]omemo.TrustLevel, error) { return f(bare) }

// BTBV is Blind Trust Before Verification, the policy of Conversations and
// XEP-0450 §6.2's recommended TOAKAFA ("Trust Only Authenticated Keys
// After First Authentication"): as long as no key of a bare JID is
// verified, its new (undecided) keys are used blindly; once one key of the
// JID is verified, undecided keys of that JID are no longer used until they
// are verified too. Blind trust is never recorded: it is a property of an
// undecided key, so a key used blindly before the first verification stops
// being used after it, as XEP-0450 §6.2 asks ("keys that are not
// authenticated by then SHOULD NOT be used any longer").
//
// Distrusted keys are never used; verified keys always are; keys the user
// marked trusted (omemo.TrustTrusted) are used unless Strict is set and the
// JID has a verified key. The own JID is treated like any other: the own
// other devices are blindly trusted until one of them is verified.
//
// BTBV fails closed: without Levels, or when Levels fails for the JID
// (ErrUnknownJID from an Index that has not seen it), undecided keys are
// refused. Use it as omemo.Options.Trust.
type BTBV struct {
	// Levels gives the levels recorded for a JID's keys.
	Levels Levels
	// Strict also stops using keys marked trusted but not verified once
	// the JID has a verified key (the full TOAKAFA of XEP-0450 §6.2).
	Strict bool
}

var _ omemo.TrustPolicy = BTBV{}

// Allow implements omemo.TrustPolicy.
func (p BTBV) Allow(d omemo.DeviceInfo) bool {
	switch d.Trust {
	case omemo.TrustVerified:
		return true
	case omemo.TrustTrusted:
		if !p.Strict {
			return true
		}
	case omemo.TrustUndecided:
	default: // distrusted, or a level this package does not know
		return false
	}
	if p.Levels == nil {
		return false
	}
	levels, err := p.Levels.Levels(d.JID.Bare())
	if err != nil {
		return false
	}
	return !HasVerified(levels)
}

// HasVerified reports whether one of levels is omemo.TrustVerified: the
// point after which BTBV stops trusting new keys blindly.
func HasVerified(levels []omemo.TrustLevel) bool {
	for _, l := range levels {
		if l == omemo.TrustVerified {
			return true
		}
	}
	return false
}

// Manual uses only keys that the user marked trusted or verified
// (XEP-0384 §8: "Clients MUST NOT use a newly built session … without
// ensuring trust first"). It is omemo.ManualTrust, restated here so that
// callers choose all policies from one package.
type Manual struct{}

var _ omemo.TrustPolicy = Manual{}

// Allow implements omemo.TrustPolicy.
func (Manual) Allow(d omemo.DeviceInfo) bool {
	return d.Trust == omemo.TrustTrusted || d.Trust == omemo.TrustVerified
}

// Index is an in-memory record of the trust levels of the identity keys of
// bare JIDs, the Levels that BTBV reads while the engine encrypts. It is
// safe for concurrent use. It holds no secrets.
//
// Feed it with Observe(bare, devices) from omemo.Manager.Devices for every
// JID before encrypting to it (at start-up and whenever device lists or
// bundles change), and with Record after every Manager.SetTrust. It only
// ever adds or updates keys, so a verified key stays counted even when its
// device leaves the device list. A JID never observed is unknown, and
// BTBV refuses its undecided keys.
type Index struct {
	mu   sync.RWMutex
	jids map[string]map[string]omemo.TrustLevel
}

var _ Levels = (*Index)(nil)

// NewIndex returns an empty Index.
func NewIndex() *Index {
	return &Index{jids: make(map[string]map[string]omemo.TrustLevel)}
}

func (ix *Index) entry(bare jid.JID) map[string]omemo.TrustLevel {
	k := bare.Bare().String()
	m, ok := ix.jids[k]
	if !ok {
		m = make(map[string]omemo.TrustLevel)
		ix.jids[k] = m
	}
	return m
}

// Observe records what omemo.Manager.Devices returned for bare. Devices
// without an identity key are skipped; bare becomes known even when
// devices is empty.
func (ix *Index) Observe(bare jid.JID, devices []omemo.DeviceInfo) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	m := ix.entry(bare)
	for _, d := range devices {
		if len(d.IdentityKey) == omemo.PublicKeySize && d.JID.Bare().Equal(bare.Bare()) {
			m[string(d.IdentityKey)] = d.Trust
		}
	}
}

// Record records the level set with omemo.Manager.SetTrust for one
// identity key (Ed25519 form) of bare.
func (ix *Index) Record(bare jid.JID, identityKey []byte, level omemo.TrustLevel) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.entry(bare)[string(identityKey)] = level
}

// MarkAuthenticated records that a key of bare was verified once
// (omemo.Manager.Authenticated): Levels then includes TrustVerified even
// when no key is verified any more, so BTBV does not go back to blind
// trust after the authenticated key is distrusted (XEP-0450 §6.2).
func (ix *Index) MarkAuthenticated(bare jid.JID) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.entry(bare)[authenticatedMark] = omemo.TrustVerified
}

// authenticatedMark is the Index key of MarkAuthenticated; identity keys
// are PublicKeySize bytes, so it never collides with one.
const authenticatedMark = ""

// Forget drops everything recorded for bare, which becomes unknown.
func (ix *Index) Forget(bare jid.JID) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	delete(ix.jids, bare.Bare().String())
}

// Levels implements Levels. It returns ErrUnknownJID for a JID never
// observed or recorded.
func (ix *Index) Levels(bare jid.JID) ([]omemo.TrustLevel, error) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	m, ok := ix.jids[bare.Bare().String()]
	if !ok {
		return nil, ErrUnknownJID
	}
	out := make([]omemo.TrustLevel, 0, len(m))
	for _, l := range m {
		out = append(out, l)
	}
	return out, nil
}
