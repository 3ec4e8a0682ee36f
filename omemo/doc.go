// Package omemo implements OMEMO Encryption, XEP-0384 version 0.9.1,
// namespace urn:xmpp:omemo:2 ("OMEMO 2"), with the Stanza Content
// Encryption profile of XEP-0384 §5.5.1 (XEP-0420), and beside it legacy
// OMEMO, XEP-0384 version 0.3, namespace eu.siacs.conversations.axolotl,
// which the deployed clients speak (its codecs and sessions are package
// omemo/legacy).
//
// Most callers use a Manager: New loads (or creates) this device's identity
// from a Store; Manager.Bundle, Manager.LegacyBundle, Manager.AnnounceDevice
// and Manager.AnnounceLegacyDevice give the PEP payloads to publish;
// Manager.SetDeviceList, Manager.SetLegacyDeviceList, Manager.SetBundle and
// Manager.SetLegacyBundle feed it what PEP returned; Manager.SealStanza and
// Manager.OpenStanza turn a plaintext message stanza into an encrypted one
// and back. The low-level Manager.EncryptMessage, Manager.Decrypt and
// Manager.DecryptLegacy work on the bytes of an SCE envelope or a body and
// the <encrypted/> elements.
//
// One identity serves both protocols (DESIGN: one identity per device):
// the same identity key (Ed25519 form in OMEMO 2, Curve25519 form in
// legacy OMEMO), device id, signed prekey (signed once for each) and
// one-time prekeys. Each recipient device gets the newest protocol it
// announces: OMEMO 2 when it is on its account's OMEMO 2 device list,
// legacy OMEMO otherwise, so a message to a mix of devices carries both
// <encrypted/> elements. Legacy OMEMO protects the body alone; what only
// SCE could protect is not sent to legacy devices, and the Report says so
// per device. Trust is recorded for the Ed25519 form of identity keys in
// both protocols.
//
// Every operation is one Store transaction: a decrypt reads the state,
// computes the next ratchet state on a copy, authenticates, and commits the
// session, the consumed prekey and the replay record together. After any
// failure the store is exactly as before.
//
// The package owns no socket. Outcomes that need network traffic are
// returned to the caller: bundles to republish, an empty message (key
// exchange completion or heartbeat) to send to a device.
//
// The XML payloads (DeviceList, Bundle, Encrypted) follow the XEP-0384 §11
// schema strictly and never call crypto. Where the XEP is vague the
// reference implementation python-omemo 1.0 with python-twomemo and
// python-oldmemo decides.
package omemo
