package ratchet

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/subtle"

	"google.golang.org/protobuf/encoding/protowire"
	"hush.im/internal/wire"
)

// KeySize is the size of root keys, chain keys, message keys, shared secrets
// and raw X25519 ratchet keys.
const KeySize = 32

// Profile holds the parameters that differ between the Double Ratchets of
// OMEMO 2 and of libsignal (legacy OMEMO): KDF info strings, MAC length,
// which bytes the MAC covers, and the wire format of a message. The core in
// Session is shared. The only values are OMEMO2 and Legacy.
type Profile struct {
	id   byte // in serialized sessions; never reuse a value
	name string

	// rootInfo is the HKDF info of KDF_RK (HKDF-SHA-256, salt = root key,
	// IKM = DH output, 64 bytes: new root key ‖ chain key).
	rootInfo []byte
	// messageKeyInfo is the HKDF info that expands a message key into
	// encryption key 32 ‖ authentication key 32 ‖ IV 16 (salt = 32 zero bytes).
	messageKeyInfo []byte
	// macSize is the length of the truncated HMAC-SHA-256 tag.
	macSize int
	// adSize is the length of the associated data from X3DH: two encoded
	// identity keys, the initiator's first.
	adSize int
	// senderFirstAD swaps the two halves of the associated data so that the
	// sender's identity key comes first (libsignal), instead of keeping the
	// initiator's first in both directions (OMEMO 2).
	senderFirstAD bool
	// pnIsLastIndex reads a header's previous-chain field as the index of the
	// last message of that chain (libsignal sends max(length−1, 0)) rather
	// than as its length (python-doubleratchet), so one more skipped key is
	// derived from the old chain. python-oldmemo sends the length; the extra
	// key is never used then, and libsignal's last message is not lost.
	pnIsLastIndex bool

	format messageFormat
}

// messageFormat is the wire format of one profile's messages.
type messageFormat interface {
	// frame encodes a message with header h, ciphertext ct and a zero tag
	// of macSize bytes, and returns it with the bytes the tag covers after
	// the associated data and the tag's place, both inside msg.
	frame(h header, ct []byte, macSize int) (msg, covered, tag []byte)
	// parse decodes a wire message into its header, ciphertext, the bytes the
	// tag covers after the associated data, and the tag.
	parse(msg []byte) (h header, ct, covered, tag []byte, err error)
}

// header is the Double Ratchet message header (Signal DR §3.4 HEADER):
// the sender's current ratchet public key, the length of its previous sending
// chain and the message number in the current sending chain.
type header struct {
	dh [KeySize]byte
	pn uint32
	n  uint32
}

// OMEMO2 is the Double Ratchet profile of OMEMO 2 (XEP-0384 0.9 §Double
// Ratchet; python-twomemo's RootChainKDFImpl, MessageChainKDFImpl, AEADImpl
// and DoubleRatchetImpl):
//
//   - KDF_RK: HKDF-SHA-256, salt = root key, IKM = X25519 output, info
//     "OMEMO Root Chain", 64 bytes → root key [0:32] ‖ chain key [32:64];
//   - KDF_CK: HMAC-SHA-256(ck, 0x01) = message key, HMAC-SHA-256(ck, 0x02)
//     = next chain key;
//   - ENCRYPT: HKDF-SHA-256(salt = 32 zero bytes, IKM = message key, info
//     "OMEMO Message Key Material", 80 bytes) → encryption key 32 ‖
//     authentication key 32 ‖ IV 16; AES-256-CBC with PKCS#7 padding;
//     the ciphertext goes into an OMEMOMessage{n, pn, dh_pub, ciphertext},
//     serialized once; tag = HMAC-SHA-256(authentication key, AD ‖
//     OMEMOMessage bytes) truncated to 16 bytes; the wire message is
//     OMEMOAuthenticatedMessage{mac: tag, message: OMEMOMessage bytes};
//   - AD: the 64-byte X3DH associated data, Ed25519(IK_A) ‖ Ed25519(IK_B),
//     initiator first in both directions.
//
// python-doubleratchet hands the AEAD "AD ‖ OMEMOMessage(header without
// ciphertext)" (DoubleRatchetImpl._build_associated_data), but twomemo's AEAD
// splits that again at 64 bytes and only the AD part reaches the HMAC, so the
// header-only encoding never affects the output and is not built here.
var OMEMO2 = &Profile{
	id:             1,
	name:           "OMEMO 2",
	rootInfo:       []byte("OMEMO Root Chain"),
	messageKeyInfo: []byte("OMEMO Message Key Material"),
	macSize:        wire.MACSize,
	adSize:         2 * 32,
	format:         omemo2Format{},
}

// Legacy is the Double Ratchet profile of legacy OMEMO (XEP-0384 0.3), that
// is of libsignal v3 (libsignal-protocol-java RootKey, ChainKey,
// SessionCipher; python-oldmemo's DoubleRatchetImpl and AEADImpl):
//
//   - KDF_RK: as OMEMO2 with info "WhisperRatchet";
//   - KDF_CK: as OMEMO2 (0x01 message key seed, 0x02 next chain key);
//   - ENCRYPT: as OMEMO2 with info "WhisperMessageKeys" (cipher key 32 ‖
//     MAC key 32 ‖ IV 16, AES-256-CBC, PKCS#7); the wire message is
//     0x33 ‖ SignalMessage{ratchetKey (0x05-prefixed), counter,
//     previousCounter, ciphertext} ‖ tag, where tag = HMAC-SHA-256(MAC key,
//     senderIK ‖ receiverIK ‖ 0x33 ‖ SignalMessage bytes) truncated to 8
//     bytes and the identity keys are 33-byte 0x05-prefixed Curve25519 keys;
//   - AD: the 66-byte X3DH associated data, IK_A ‖ IK_B (initiator first),
//     which the session swaps so that the sender comes first;
//   - previousCounter is sent as python-oldmemo does (the previous chain's
//     length) and read as libsignal sends it (the last index), see
//     pnIsLastIndex.
//
// The session initialisation is OMEMO 2's, which equals libsignal's for
// OMEMO's flows provided the X3DH shared secret is libsignal's root key: the
// first 32 bytes of HKDF(…, info "WhisperText") (python-x3dh's 32-byte
// output is exactly that).
var Legacy = &Profile{
	id:             2,
	name:           "libsignal v3 (legacy OMEMO)",
	rootInfo:       []byte("WhisperRatchet"),
	messageKeyInfo: []byte("WhisperMessageKeys"),
	macSize:        wire.LegacyMACSize,
	adSize:         2 * 33,
	senderFirstAD:  true,
	pnIsLastIndex:  true,
	format:         legacyFormat{},
}

var profiles = []*Profile{OMEMO2, Legacy}

// String returns the profile's name.
func (p *Profile) String() string { return p.name }

// AssociatedDataSize returns the length of the X3DH associated data a
// session of this profile takes: 64 for OMEMO2 (two Ed25519 keys), 66 for
// Legacy (two 0x05-prefixed Curve25519 keys).
func (p *Profile) AssociatedDataSize() int { return p.adSize }

// omemo2Format is OMEMOAuthenticatedMessage{mac, OMEMOMessage} (XEP-0384
// §Protobuf Schemas).
type omemo2Format struct{}

// Field numbers of OMEMOAuthenticatedMessage (XEP-0384 §Protobuf Schemas),
// written here rather than with wire.OMEMOAuthenticatedMessage so that the
// tag can be computed over the OMEMOMessage in its final place.
const (
	authMessageMAC     protowire.Number = 1
	authMessageMessage protowire.Number = 2
)

func (omemo2Format) frame(h header, ct []byte, macSize int) (msg, covered, tag []byte) {
	inner := wire.OMEMOMessage{N: h.n, PN: h.pn, DHPub: h.dh[:], Ciphertext: ct}
	n := inner.Size()
	size := protowire.SizeTag(authMessageMAC) + protowire.SizeBytes(macSize) +
		protowire.SizeTag(authMessageMessage) + protowire.SizeBytes(n)
	msg = make([]byte, 0, size)
	msg = protowire.AppendTag(msg, authMessageMAC, protowire.BytesType)
	msg = protowire.AppendVarint(msg, uint64(macSize))
	at := len(msg)
	msg = msg[:at+macSize]
	msg = protowire.AppendTag(msg, authMessageMessage, protowire.BytesType)
	msg = protowire.AppendVarint(msg, uint64(n))
	start := len(msg)
	msg = inner.Append(msg)
	return msg, msg[start:], msg[at : at+macSize]
}

func (omemo2Format) parse(msg []byte) (h header, ct, covered, tag []byte, err error) {
	var outer wire.OMEMOAuthenticatedMessage
	if err := outer.Unmarshal(msg); err != nil {
		return h, nil, nil, nil, err
	}
	var inner wire.OMEMOMessage
	if err := inner.Unmarshal(outer.Message); err != nil {
		return h, nil, nil, nil, err
	}
	h.n, h.pn = inner.N, inner.PN
	copy(h.dh[:], inner.DHPub)
	return h, inner.Ciphertext, outer.Message, outer.MAC, nil
}

// legacyFormat is 0x33 ‖ SignalMessage ‖ MAC (libsignal SignalMessage).
type legacyFormat struct{}

func (legacyFormat) frame(h header, ct []byte, macSize int) (msg, covered, tag []byte) {
	m := wire.SignalMessage{RatchetKey: h.dh[:], Counter: h.n, PreviousCounter: h.pn, Ciphertext: ct}
	msg = m.AppendFramed(make([]byte, 0, 1+m.Size()+macSize))
	n := len(msg)
	msg = msg[:n+macSize]
	return msg, msg[:n], msg[n:]
}

func (legacyFormat) parse(msg []byte) (h header, ct, covered, tag []byte, err error) {
	m, covered, tag, err := wire.ParseFramedSignalMessage(msg)
	if err != nil {
		return h, nil, nil, nil, err
	}
	h.n, h.pn = m.Counter, m.PreviousCounter
	copy(h.dh[:], m.RatchetKey)
	return h, m.Ciphertext, covered, tag, nil
}

// kdfRoot is KDF_RK (Signal DR §5.2; XEP-0384 §Double Ratchet): HKDF-SHA-256
// with the root key as salt and the DH output as IKM; python-doubleratchet's
// KDFChain keeps the first 32 bytes as the next root key and outputs the rest.
func (p *Profile) kdfRoot(w *work, rk, dh *[KeySize]byte) (ck [KeySize]byte) {
	w.prepare(&w.key, rk[:])
	w.hkdf(w.okm[:2*KeySize], &w.key, dh, p.rootInfo)
	copy(rk[:], w.okm[:KeySize])
	copy(ck[:], w.okm[KeySize:2*KeySize])
	return ck
}

// aeadKeys expands the message key w.mk into the encryption key,
// authentication key and IV (XEP-0384 §Double Ratchet ENCRYPT steps 1–2;
// libsignal ChainKey.getMessageKeys), slices of w.okm.
func (p *Profile) aeadKeys(w *work) (enc, auth, iv []byte) {
	w.hkdf(w.okm[:80], zeroSaltKey, &w.mk, p.messageKeyInfo)
	return w.okm[:32], w.okm[32:64], w.okm[64:80]
}

// tag computes HMAC-SHA-256 over ad1 ‖ ad2 ‖ covered into w.sum, to be
// truncated to p.macSize.
func (p *Profile) tag(w *work, auth, ad1, ad2, covered []byte) []byte {
	w.prepare(&w.key, auth)
	return w.mac(&w.key, ad1, ad2, covered)[:p.macSize]
}

// seal encrypts plaintext under the message key w.mk for the header h and
// returns the wire message (XEP-0384 §Double Ratchet ENCRYPT).
func (p *Profile) seal(w *work, ad1, ad2 []byte, h *header, plaintext []byte) ([]byte, error) {
	enc, auth, iv := p.aeadKeys(w)
	block, err := aes.NewCipher(enc)
	if err != nil {
		return nil, err
	}
	pad := aes.BlockSize - len(plaintext)%aes.BlockSize
	ct := make([]byte, len(plaintext)+pad)
	copy(ct, plaintext)
	for i := len(plaintext); i < len(ct); i++ {
		ct[i] = byte(pad)
	}
	cbcEncrypt(block, iv, ct)
	msg, covered, tag := p.format.frame(*h, ct, p.macSize)
	copy(tag, p.tag(w, auth, ad1, ad2, covered))
	return msg, nil
}

// open authenticates and decrypts the parts of a parsed wire message under
// the message key w.mk. It reports false for every failure, without saying
// which.
func (p *Profile) open(w *work, ad1, ad2, covered, tag, ct []byte) ([]byte, bool) {
	enc, auth, iv := p.aeadKeys(w)
	if !hmac.Equal(p.tag(w, auth, ad1, ad2, covered), tag) {
		return nil, false
	}
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, false
	}
	block, err := aes.NewCipher(enc)
	if err != nil {
		return nil, false
	}
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(pt, ct)
	n, ok := unpad(pt)
	if !ok {
		return nil, false
	}
	return pt[:n], true
}

// unpad checks PKCS#7 padding (RFC 5652 §6.3) in constant time and returns
// the plaintext length.
func unpad(b []byte) (int, bool) {
	pad := int(b[len(b)-1])
	good := subtle.ConstantTimeLessOrEq(1, pad) & subtle.ConstantTimeLessOrEq(pad, aes.BlockSize)
	for i := 1; i <= aes.BlockSize; i++ {
		inPad := subtle.ConstantTimeLessOrEq(i, pad)
		same := subtle.ConstantTimeByteEq(b[len(b)-i], byte(pad))
		good &= subtle.ConstantTimeSelect(inPad, same, 1)
	}
	return len(b) - pad, good == 1
}
