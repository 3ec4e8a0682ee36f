// Package client is the XMPP side of hush, on mellium.im/xmpp v0.22.0: it
// connects an account (SASL SCRAM-SHA-256, SCRAM-SHA-1 or PLAIN over
// STARTTLS or XEP-0368 direct TLS, RFC 6120), serves the stream, and gives
// the encryption engines and the application what they need from the
// network:
//
//   - PEP (XEP-0163) on PubSub (XEP-0060): Publish with publish-options
//     (§7.1.5), reconfiguring a node that answers precondition-not-met
//     (§8.2) and reading the item back; FetchItems; Retract; +notify events
//     to HandleEvents handlers, advertised through disco (XEP-0030) and
//     entity capabilities (XEP-0115) in the initial presence;
//   - DiscoInfo queries of peers;
//   - message carbons (XEP-0280) and archive queries with paging
//     (XEP-0313, XEP-0059);
//   - sending and receiving message, iq and presence stanzas as sce.Stanza
//     values, with handlers that run off the stream (mellium holds the
//     stream while its Serve handler runs);
//   - the Engine seam: SendEncrypted hands a plaintext stanza to an engine
//     (OMEMO, OX) and sends what it returns only if it reached a device and
//     leaks no sensitive element (fail closed); received stanzas carrying
//     an engine's encrypted element are decrypted before handlers see them,
//     with a Security record.
//
// Most callers use Dial, register handlers and engines, then call Online:
//
//	c, err := client.Dial(ctx, account, password, &client.Options{TLS: cfg})
//	c.HandleMessage(func(ctx context.Context, in *client.Incoming) { … })
//	c.HandleEvents("urn:xmpp:omemo:2:devices", onDeviceList)
//	err = c.EnableCarbons(ctx)
//	err = c.Online(ctx)
//
// The engines: NewOMEMO adds OMEMO 2 (XEP-0384 0.9.1, urn:xmpp:omemo:2)
// around an omemo.Manager, publishing the device list and bundle and
// following contacts' device lists; NewOX adds OpenPGP for XMPP
// (XEP-0373 0.7, XEP-0374 0.2) around package ox, publishing the public
// key and fetching contacts' keys. Both are created after Dial and before
// Online:
//
//	o, err := client.NewOMEMO(ctx, c, store, nil) // blind trust before verification
//	rep, err := c.SendEncrypted(ctx, client.OMEMOEncrypted, msg)
//
// Received data is parsed with package sce's bounded parser (sce.MaxStanzaSize,
// sce.MaxDepth, sce.MaxNodes); every failure is a typed error (the Err…
// sentinels, StanzaError, AuthError, PublishOptionError). Decryption
// outcomes that carry nothing for the application (ErrNoContent,
// ErrDuplicate) never reach handlers.
package client // import "hush.im/client"
