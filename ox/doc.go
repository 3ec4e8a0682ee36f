// Package ox implements OpenPGP for XMPP, XEP-0373 version 0.7.0, namespace
// urn:xmpp:openpgp:0, and its Instant Messaging profile, XEP-0374 version
// 0.2.0, disco feature urn:xmpp:openpgp:im:0.
//
// OX protects a stanza's elements with an OpenPGP message: the elements go
// into a content element (<signcrypt/>, <sign/> or <crypt/>) with the
// affixes <to/>, <time/> and <rpad/>, which is signed and/or encrypted to
// every key of every recipient and to the sender's own keys, and sent
// Base64-encoded in <openpgp/>. OX has no forward secrecy, by design: archives
// stay readable as long as the secret keys are kept (XEP-0374 §1).
//
// Most callers need four things:
//
//	// keys
//	k, err := ox.GenerateKey(me, ox.Curve25519)   // User ID "xmpp:<me>"
//	keys, err := ox.ParseKeys(b)                  // armored or binary, gpg's too
//
//	// sending a message (XEP-0374: signcrypt, fallback body, hints)
//	sealed, err := ox.Seal(stanza, ox.SealOptions{Signer: k, From: me, Recipients: bobKeys, Own: myKeys})
//
//	// receiving
//	opened, err := ox.Open(stanza, ox.OpenOptions{Keys: mySecretKeys, SenderKeys: bobKeys})
//
// Seal and Open do the work of the package sce (hush.im/sce), which holds the
// content element, its affixes, padding, their verification and the split and
// merge of stanzas for OX as for SCE. Open checks, and rejects the stanza
// unless, the OpenPGP message is protected as its content element requires
// (XEP-0373 §3.1), the signature verifies with one of the sender's keys, that
// key carries a User ID "xmpp:<bare JID of the stanza's from>" (§3.2), one <to/>
// names the stanza's 'to', and the <time/> is within the window. It changes no
// state: a rejected stanza leaves nothing behind.
//
// The PEP payloads of XEP-0373 §4 and §5 are the XML types PublicKeysList,
// Pubkey and SecretKey, with the node names NodePublicKeys, PublicKeyNode
// and NodeSecretKey; Backup and Restore make and open the secret-key backup
// of §5.4 with a BackupCode.
//
// Keys are version 4 OpenPGP keys made and read by
// github.com/ProtonMail/go-crypto/openpgp, so that GnuPG 2.2 and the clients
// built on it (go-sendxmpp, Gajim, Profanity) read what hush writes and the
// other way round. Expired and revoked keys and subkeys are never used to
// encrypt, sign or verify. Every failure is a typed error (the Err…
// sentinels, KeyError); error strings never contain decrypted content or
// secret material.
package ox // import "hush.im/ox"
