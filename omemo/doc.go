// Package omemo implements OMEMO Encryption, XEP-0384 version 0.9.1,
// namespace urn:xmpp:omemo:2 ("OMEMO 2"), with the Stanza Content
// Encryption profile of XEP-0384 §5.5.1 (XEP-0420).
//
// Most callers use a Manager: New loads (or creates) this device's identity
// from a Store; Manager.Bundle and Manager.AnnounceDevice give the PEP
// payloads to publish; Manager.SetDeviceList and Manager.SetBundle feed it
// what PEP returned; Manager.SealStanza and Manager.OpenStanza turn a
// plaintext message stanza into an encrypted one and back. The low-level
// Manager.Encrypt and Manager.Decrypt work on the bytes of an SCE envelope
// and the <encrypted/> element.
//
// Every operation is one Store transaction: a decrypt reads the state,
// computes the next ratchet state on a copy, authenticates, and commits the
// session, the consumed prekey and the replay record together. After any
// failure the store is exactly as before.
//
// The package owns no socket. Outcomes that need network traffic are
// returned to the caller: a bundle to republish, an empty message (key
// exchange completion or heartbeat) to send to a device.
//
// The XML payloads (DeviceList, Bundle, Encrypted) follow the XEP-0384 §11
// schema strictly and never call crypto. Where the XEP is vague the
// reference implementation python-twomemo 1.0 / python-omemo 1.0 decides.
package omemo
