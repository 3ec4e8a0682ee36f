// Package trust decides which devices hush encrypts to and lets users
// verify them: trust policies over the levels the OMEMO engine records,
// short authentication string (SAS) verification, and XEP-0434 Trust
// Messages with XEP-0450 Automatic Trust Management.
//
// # Policies
//
// BTBV (Blind Trust Before Verification, XEP-0450 0.4.0 §6.2 TOAKAFA) and
// Manual implement omemo.TrustPolicy (XEP-0384 0.9.1 §8). BTBV reads the
// levels of a JID's other keys through a Levels; an Index is the ready-made
// one:
//
//	ix := trust.NewIndex()
//	m, _ := omemo.New(me, store, &omemo.Options{Trust: trust.BTBV{Levels: ix}})
//	devs, _ := m.Devices(bob)   // before encrypting to bob, outside the engine
//	ix.Observe(bob, devs)
//	…
//	m.SetTrust(bob, key, omemo.TrustVerified)
//	ix.Record(bob, key, omemo.TrustVerified)
//
// # Short authentication strings
//
// XEP-0210 0.2 §4.3 asks that verifying keys take no more than comparing
// "a string of up to 6 alphanumeric characters" once. Verification runs a
// commit-then-reveal exchange in namespace NSSAS (urn:hush:sas:0), after
// XEP-0188 0.6 §3.4 and XEP-0116 0.16 §4.7.2, that gives a 6-character
// Crockford base32 string (SASBits = 30 bits) which a man in the middle
// can match with probability 2^-30 per run, however much he computes:
//
//	// Alice
//	v, commit, _ := trust.Start(alice, bob, aliceKeys)   // send commit
//	reveal, _ := v.Receive(accept)                       // send reveal
//	s, _ := v.SAS()                                      // show s
//	keys, _ := v.Confirm()                               // user: "same"
//	// Bob
//	v, accept, _ := trust.Respond(bob, alice, bobKeys, commit) // send accept
//	v.Receive(reveal); s, _ := v.SAS(); keys, _ := v.Confirm()
//
// Each side then records the returned keys with omemo.Manager.SetTrust(…,
// omemo.TrustVerified). The SAS messages carry no secrets, but they MUST be
// sent and accepted only inside an encrypted, verified SCE envelope
// (XEP-0420) of OMEMO 2; the JIDs passed to Start and Respond are that
// envelope's authenticated sender and recipient. ParseMessage reads any of
// them.
//
// # Trust messages
//
// TrustMessage is XEP-0434 0.6.0's <trust-message xmlns='urn:xmpp:tm:1'/>;
// EvaluateTrustMessage applies XEP-0450's receiving rules: only
// authenticated (verified) senders count, own devices may speak about any
// key, a contact's devices only about the contact's keys. It returns the
// levels to record; the caller stores messages from senders not yet
// verified (ErrUnauthenticatedSender) and evaluates them again later.
// PlanAuthentication and PlanDistrust give XEP-0450 §4's sending rules:
// which trust messages to send to which verified devices after the user
// verified or distrusted a key. KeyOwner.URI and ParseTrustURI are the
// Trust Message URIs (XEP-0434 §9.1.1) for QR codes.
//
// The XML types never call crypto; the package holds no state beyond an
// Index and the Verification runs the caller keeps.
package trust
