package ox

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"hush.im/sce"
)

// Limits on OpenPGP messages.
const (
	// MaxMessageSize is the largest binary OpenPGP message accepted in an
	// <openpgp/> element: 64 KiB short of 3 MiB, so that its Base64 and the
	// rest of the stanza fit in sce.MaxStanzaSize (4 MiB), and far above a
	// content element of sce.MaxEnvelopeSize encrypted to MaxRecipientKeys
	// keys. XEP-0373 sets no limit.
	MaxMessageSize = 3<<20 - 64<<10

	// MaxRecipientKeys is the most public-key encrypted session key packets
	// a message may carry, written or read. XEP-0374 §4.3.1 encrypts to every
	// key of every recipient and the sender's own keys; 256 covers a group of
	// a hundred members with two keys each, and bounds the public-key
	// operations a hostile message can make a receiver try.
	MaxRecipientKeys = 256

	// maxLiteralSize is the largest decrypted content element: the size
	// sce.ParseOX accepts.
	maxLiteralSize = sce.MaxEnvelopeSize
)

// Content is a decrypted and verified OX content element (XEP-0373 §3.1),
// as DecryptContent returns it.
type Content struct {
	// Envelope is the content element: Kind, the <payload/> children in
	// Content (all marked Encrypted, even for <sign/>: they come from inside
	// the OpenPGP message) and the affixes. Its affixes are not yet checked
	// against a stanza: see sce.Verify, or use Open.
	Envelope *sce.Envelope
	// Signer is the public key whose signature verified; nil when the
	// message was not signed.
	Signer *Key
	// Signed and Encrypted say how the OpenPGP message was protected.
	Signed, Encrypted bool
	// Raw is the decrypted literal data: the content element's XML as the
	// sender wrote it.
	Raw []byte
}

// acceptedHash reports whether h is strong enough for message signatures:
// MD5, SHA-1 and RIPEMD-160 are refused (RFC 9580 §9.5).
func acceptedHash(h crypto.Hash) bool {
	switch h {
	case crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512, crypto.SHA3_256, crypto.SHA3_512:
		return true
	}
	return false
}

// EncryptContent protects a serialized OX content element as XEP-0373 §3.1
// requires for its kind and returns the binary OpenPGP message:
//
//   - KindSigncrypt: signed by signer and encrypted to recipients (which
//     should include the sender's own keys, §3.1 "SHOULD also be encrypted
//     to self");
//   - KindSign: signed by signer, not encrypted (recipients must be empty);
//   - KindCrypt: encrypted to recipients, not signed (signer must be nil).
//
// Every recipient key must be usable at now (ErrKeyExpired, ErrKeyRevoked,
// ErrNoEncryptionKey in a *KeyError); Seal filters and reports unusable keys
// instead. The literal data is marked binary, like go-sendxmpp's; no
// compression (it leaks length) and no AEAD packets (GnuPG 2.2 reads
// neither).
//
// This is the low-level half of Seal; most callers want Seal.
func EncryptContent(env *sce.Envelope, signer *Key, recipients []*Key, now time.Time) ([]byte, error) {
	if env == nil {
		return nil, sce.ErrNotEnvelope
	}
	if err := checkProtection(env.Kind, signer, recipients); err != nil {
		return nil, err
	}
	plaintext, err := env.Marshal()
	if err != nil {
		return nil, err
	}
	return encryptContent(env.Kind, plaintext, signer, recipients, now)
}

// checkProtection checks that signer and recipients protect a content
// element of kind as XEP-0373 §3.1 requires.
func checkProtection(kind sce.Kind, signer *Key, recipients []*Key) error {
	switch {
	case kind != sce.KindSigncrypt && kind != sce.KindSign && kind != sce.KindCrypt:
		return fmt.Errorf("%w: <%s/> is not an OX content element", ErrWrongKind, kind)
	case kind != sce.KindCrypt && signer == nil:
		return fmt.Errorf("ox: <%s/> needs a signer", kind)
	case kind == sce.KindCrypt && signer != nil:
		return fmt.Errorf("%w: <crypt/> must not be signed", ErrWrongProtection)
	case kind == sce.KindSign && len(recipients) > 0:
		return fmt.Errorf("%w: <sign/> must not be encrypted", ErrWrongProtection)
	case kind != sce.KindSign && len(recipients) == 0:
		return ErrNoRecipients
	}
	return nil
}

// encryptContent is EncryptContent of a content element of kind already
// serialized as plaintext, with checkProtection passed.
func encryptContent(kind sce.Kind, plaintext []byte, signer *Key, recipients []*Key, now time.Time) ([]byte, error) {
	var signerEntity *openpgp.Entity
	if signer != nil {
		if err := signer.readySecret(); err != nil {
			return nil, err
		}
		if _, err := signer.signingKey(now); err != nil {
			return nil, err
		}
		signerEntity = signer.e
	}
	var to []*openpgp.Entity
	var seen []Fingerprint
	for _, k := range recipients {
		if slices.Contains(seen, k.fpr) {
			continue
		}
		seen = append(seen, k.fpr)
		if _, err := k.encryptionKey(now); err != nil {
			return nil, err
		}
		to = append(to, k.e)
	}
	if len(to) > MaxRecipientKeys {
		return nil, fmt.Errorf("%w: more than %d recipient keys", ErrTooLarge, MaxRecipientKeys)
	}

	cfg := keyConfig(func() time.Time { return now })
	hints := &openpgp.FileHints{IsBinary: true, ModTime: now}
	var buf bytes.Buffer
	buf.Grow(len(plaintext) + 512 + 300*len(to))
	var w io.WriteCloser
	var err error
	if kind == sce.KindSign {
		w, err = openpgp.Sign(&buf, signerEntity, hints, cfg)
	} else {
		w, err = openpgp.Encrypt(&buf, to, signerEntity, hints, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("ox: encrypt: %w", err)
	}
	if _, err := w.Write(plaintext); err != nil {
		return nil, fmt.Errorf("ox: encrypt: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("ox: encrypt: %w", err)
	}
	if buf.Len() > MaxMessageSize {
		return nil, fmt.Errorf("%w: message over %d bytes", ErrTooLarge, MaxMessageSize)
	}
	return buf.Bytes(), nil
}

// splitKeyring keeps decryption and verification apart: session keys are
// decrypted only with our own secret keys, signatures verified only with the
// sender's public keys. A message signed with one of our own keys therefore
// does not verify as coming from someone else.
type splitKeyring struct {
	own, sender openpgp.EntityList
}

func (k splitKeyring) KeysById(id uint64) []openpgp.Key {
	var out []openpgp.Key
	for _, key := range k.own.KeysById(id) {
		if key.PrivateKey != nil && isEncryptionKey(key) {
			out = append(out, key)
		}
	}
	return out
}

func (k splitKeyring) KeysByIdUsage(id uint64, usage byte) []openpgp.Key {
	return k.sender.KeysByIdUsage(id, usage)
}

func (k splitKeyring) DecryptionKeys() []openpgp.Key {
	// Anonymous recipients (key id 0, RFC 4880 §5.1) would make us try every
	// key: OX messages name their recipients.
	return nil
}

// isEncryptionKey reports whether key's binding signature allows
// encryption. Expired own keys still decrypt: XEP-0374 keeps archives
// readable as long as the secret key is kept.
func isEncryptionKey(key openpgp.Key) bool {
	s := key.SelfSignature
	return s != nil && s.FlagsValid && (s.FlagEncryptCommunications || s.FlagEncryptStorage) &&
		key.PublicKey.PubKeyAlgo.CanEncrypt()
}

// scanMessage checks the outer packet sequence of an OX message before any
// decryption: how many session keys it carries, whether it is encrypted,
// and that it holds no packet go-crypto would silently skip (such as
// version 3 signatures, XEP-0373 §7.1).
func scanMessage(msg []byte) (encrypted bool, err error) {
	r := packet.NewReader(bytes.NewReader(msg))
	pkesk := 0
	for {
		p, err := r.NextWithUnsupported()
		switch {
		case err == io.EOF:
			if encrypted || pkesk > 0 {
				return false, fmt.Errorf("%w: no encrypted data", ErrMalformed)
			}
			return false, nil
		case err != nil:
			return false, packetError(err)
		}
		switch p := p.(type) {
		case *packet.UnsupportedPacket:
			return false, fmt.Errorf("%w: %s", ErrUnsupported, trimPGP(p.Error.Error()))
		case *packet.EncryptedKey:
			pkesk++
			if pkesk > MaxRecipientKeys {
				return false, fmt.Errorf("%w: more than %d recipient keys", ErrTooLarge, MaxRecipientKeys)
			}
		case *packet.SymmetricKeyEncrypted:
			return false, fmt.Errorf("%w: passphrase-encrypted message", ErrMalformed)
		case *packet.SymmetricallyEncrypted, *packet.AEADEncrypted:
			if pkesk == 0 {
				return false, fmt.Errorf("%w: encrypted data without a session key", ErrMalformed)
			}
			// The rest is ciphertext; go-crypto checks what follows.
			return true, nil
		case *packet.Compressed:
			if pkesk > 0 {
				return false, fmt.Errorf("%w: session key not followed by encrypted data", ErrMalformed)
			}
			// Signed and compressed, as gpg --sign writes: go-crypto
			// decompresses within maxLiteralSize.
			return false, nil
		case *packet.OnePassSignature, *packet.LiteralData, *packet.Signature:
			if pkesk > 0 {
				return false, fmt.Errorf("%w: session key not followed by encrypted data", ErrMalformed)
			}
			// An unencrypted message: keep scanning to find unsupported
			// packets among the signatures.
			if lit, ok := p.(*packet.LiteralData); ok {
				if _, err := io.Copy(io.Discard, io.LimitReader(lit.Body, maxLiteralSize+1)); err != nil {
					return false, packetError(err)
				}
			}
		default:
			return false, fmt.Errorf("%w: unexpected %T packet", ErrMalformed, p)
		}
	}
}

func trimPGP(s string) string {
	for _, p := range []string{"openpgp: unsupported feature: ", "openpgp: invalid data: ", "openpgp: "} {
		if len(s) > len(p) && s[:len(p)] == p {
			return s[len(p):]
		}
	}
	return s
}

// packetError maps a go-crypto error met while reading packets before
// decryption.
func packetError(err error) error {
	var unsupported pgperrors.UnsupportedError
	if errors.As(err, &unsupported) {
		return fmt.Errorf("%w: %s", ErrUnsupported, trimPGP(err.Error()))
	}
	return ErrMalformed
}

// decryptError maps a go-crypto error from ReadMessage or from reading the
// decrypted body. Everything that goes wrong after decryption started is
// ErrDecrypt or ErrBadSignature, never a parse detail.
func decryptError(err error, encrypted bool) error {
	var (
		sigErr pgperrors.SignatureError
		decErr pgperrors.DecryptWithSessionKeyError
	)
	switch {
	case errors.Is(err, pgperrors.ErrKeyIncorrect):
		return ErrNotForUs
	case errors.Is(err, pgperrors.ErrMDCHashMismatch), errors.Is(err, pgperrors.ErrMDCMissing),
		errors.As(err, &decErr):
		return ErrDecrypt
	case errors.As(err, &sigErr):
		return ErrBadSignature
	case encrypted:
		return ErrDecrypt
	}
	return packetError(err)
}

// DecryptContent opens a binary OpenPGP message from an <openpgp/> element:
// it decrypts it with one of keys (our own secret keys, unlocked), verifies
// its signature with one of senderKeys (the sender's announced public keys),
// reads the content element and checks that its protection matches its kind
// (XEP-0373 §3.1). It does not check the signer's User ID or the affixes
// against a stanza: Open does, and most callers want Open.
//
// Key validity (expiry, revocation) is judged at now. Errors match
// ErrRejected.
func DecryptContent(msg []byte, keys, senderKeys []*Key, now time.Time) (*Content, error) {
	c, err := decryptContent(msg, keys, senderKeys, now)
	return c, reject(err)
}

func decryptContent(msg []byte, keys, senderKeys []*Key, now time.Time) (*Content, error) {
	if len(msg) > MaxMessageSize {
		return nil, fmt.Errorf("%w: message over %d bytes", ErrTooLarge, MaxMessageSize)
	}
	for _, k := range keys {
		if err := k.readySecret(); err != nil {
			return nil, err
		}
	}
	encrypted, err := scanMessage(msg)
	if err != nil {
		return nil, err
	}
	kr := splitKeyring{own: entities(keys), sender: entities(senderKeys)}
	cfg := keyConfig(func() time.Time { return now })
	md, err := openpgp.ReadMessage(bytes.NewReader(msg), kr, nil, cfg)
	if err != nil {
		return nil, decryptError(err, encrypted)
	}
	// The literal data is about as long as the message (OX forbids
	// compression; gpg --sign compresses, and the buffer grows then).
	var lit bytes.Buffer
	lit.Grow(min(len(msg), maxLiteralSize) + bytes.MinRead)
	if _, err := lit.ReadFrom(io.LimitReader(md.UnverifiedBody, maxLiteralSize+1)); err != nil {
		return nil, decryptError(err, encrypted)
	}
	raw := lit.Bytes()
	if len(raw) > maxLiteralSize {
		return nil, fmt.Errorf("%w: content element over %d bytes", ErrTooLarge, maxLiteralSize)
	}
	c := &Content{Signed: md.IsSigned, Encrypted: md.IsEncrypted && encrypted, Raw: raw}
	if md.IsSigned {
		signer, err := checkSignature(md, senderKeys)
		if err != nil {
			return nil, err
		}
		c.Signer = signer
	}
	env, err := sce.ParseOX(raw)
	if err != nil {
		return nil, because(ErrMalformed, err)
	}
	kind := env.Kind
	c.Envelope = env
	var ok bool
	switch kind {
	case sce.KindSigncrypt:
		ok = c.Signed && c.Encrypted
	case sce.KindSign:
		ok = c.Signed && !c.Encrypted
	case sce.KindCrypt:
		ok = !c.Signed && c.Encrypted
	}
	if !ok {
		return nil, fmt.Errorf("%w: <%s/> signed=%t encrypted=%t", ErrWrongProtection, kind, c.Signed, c.Encrypted)
	}
	return c, nil
}

// checkSignature checks the verification result of a fully read message
// and returns the signer.
func checkSignature(md *openpgp.MessageDetails, senderKeys []*Key) (*Key, error) {
	switch {
	case md.SignedBy == nil:
		return nil, fmt.Errorf("%w: not signed by one of the sender's keys", ErrBadSignature)
	case md.SignatureError != nil:
		switch {
		case errors.Is(md.SignatureError, pgperrors.ErrKeyRevoked):
			return nil, because(ErrBadSignature, ErrKeyRevoked)
		case errors.Is(md.SignatureError, pgperrors.ErrKeyExpired), errors.Is(md.SignatureError, pgperrors.ErrSignatureExpired):
			return nil, because(ErrBadSignature, ErrKeyExpired)
		}
		return nil, ErrBadSignature
	case md.Signature == nil, md.Signature.Version != 4:
		return nil, ErrBadSignature
	case len(md.UnverifiedSignatures) > 0:
		return nil, fmt.Errorf("%w: more than one signature", ErrBadSignature)
	case !acceptedHash(md.Signature.Hash):
		return nil, fmt.Errorf("%w: weak signature hash", ErrUnsupported)
	case md.Signature.SigType != packet.SigTypeBinary && md.Signature.SigType != packet.SigTypeText:
		return nil, ErrBadSignature
	}
	if err := checkAlgo(md.SignedBy.PublicKey); err != nil {
		return nil, err
	}
	for _, k := range senderKeys {
		if k.e == md.SignedBy.Entity {
			return k.Public(), nil
		}
	}
	return nil, ErrBadSignature
}
