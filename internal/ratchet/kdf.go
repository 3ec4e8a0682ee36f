package ratchet

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"crypto/subtle"
	"encoding"
	"hash"
	"sync"
)

// The KDFs of both profiles are HMAC-SHA-256 (RFC 2104) and HKDF-SHA-256
// (RFC 5869) over 32-byte keys. Computed with crypto/hmac and crypto/hkdf
// they cost about forty small allocations per message, more than the
// hashing itself; this file computes the same functions on one reused
// SHA-256 state instead. TestKDFMatchesStandardLibrary checks them against
// crypto/hmac and crypto/hkdf, and the python vectors check every message.

// sha256State is what crypto/sha256.New returns: its documentation promises
// encoding.BinaryAppender and encoding.BinaryUnmarshaler "to marshal and
// unmarshal the internal state of the hash".
type sha256State interface {
	hash.Hash
	encoding.BinaryAppender
	encoding.BinaryUnmarshaler
}

// maxStateSize bounds a marshaled SHA-256 state (108 bytes in Go 1.26).
const maxStateSize = 128

// hmacKey is an HMAC-SHA-256 key prepared for several MACs: the SHA-256
// states after its inner and after its outer padded key block (RFC 2104
// §2, K XOR ipad and K XOR opad), so that each MAC only hashes its
// message. It is secret.
type hmacKey struct {
	inner, outer [maxStateSize]byte
	n            int
}

// work is the working memory of one Encrypt or Decrypt: the SHA-256 state
// every HMAC and HKDF runs on, the prepared keys and the intermediate
// values. Everything handed to the hash lives here (or in package
// variables, or in the Session, or in the message), so that nothing on the
// caller's stack escapes to the heap through the hash.Hash interface. Works
// come from workPool and are wiped before they go back.
type work struct {
	d   sha256State
	key hmacKey // the key of the current HMAC or HKDF-Expand
	prk hmacKey // HKDF's pseudorandom key

	pad  [sha256.BlockSize]byte
	ikm  [KeySize]byte
	sum  [sha256.Size]byte // the last MAC
	in   [sha256.Size]byte // the inner hash of the last MAC
	prev [sha256.Size]byte // HKDF-Expand's T(i-1)
	ctr  [1]byte           // HKDF-Expand's counter

	mk  [KeySize]byte // the message key being used
	okm [80]byte      // HKDF output: up to encryption key ‖ authentication key ‖ IV
}

var workPool = sync.Pool{New: func() any {
	return &work{d: sha256.New().(sha256State)}
}}

func getWork() *work { return workPool.Get().(*work) }

// done wipes w and returns it to the pool.
func (w *work) done() {
	w.wipe()
	workPool.Put(w)
}

// wipe clears every key and intermediate value in w.
func (w *work) wipe() {
	d := w.d
	d.Reset()
	*w = work{d: d}
}

// prepare makes k the HMAC key key. The keys of both profiles are 32
// bytes; a key longer than a block is hashed first (RFC 2104 §2).
func (w *work) prepare(k *hmacKey, key []byte) {
	clear(w.pad[:])
	if len(key) > sha256.BlockSize {
		sum := sha256.Sum256(key)
		copy(w.pad[:], sum[:])
		clear(sum[:])
	} else {
		copy(w.pad[:], key)
	}
	for i := range w.pad {
		w.pad[i] ^= 0x36
	}
	w.d.Reset()
	w.d.Write(w.pad[:])
	in, _ := w.d.AppendBinary(k.inner[:0])
	for i := range w.pad {
		w.pad[i] ^= 0x36 ^ 0x5c
	}
	w.d.Reset()
	w.d.Write(w.pad[:])
	out, _ := w.d.AppendBinary(k.outer[:0])
	clear(w.pad[:])
	if len(in) != len(out) || len(in) > maxStateSize {
		// crypto/sha256 marshals fixed-size states into the capacity
		// given; anything else is a broken build, not an input.
		panic("ratchet: unexpected SHA-256 state encoding")
	}
	k.n = len(in)
}

// mac computes HMAC-SHA-256 over the concatenation of parts under k into
// w.sum. k is w.key, w.prk or zeroSaltKey; parts must not be on the
// caller's stack.
func (w *work) mac(k *hmacKey, parts ...[]byte) *[sha256.Size]byte {
	w.d.UnmarshalBinary(k.inner[:k.n])
	for _, p := range parts {
		w.d.Write(p)
	}
	w.d.Sum(w.in[:0])
	w.d.UnmarshalBinary(k.outer[:k.n])
	w.d.Write(w.in[:])
	w.d.Sum(w.sum[:0])
	return &w.sum
}

// hkdf fills out (at most 255 × 32 bytes) with HKDF-SHA-256 (RFC 5869) of
// ikm, salted with the prepared key salt, with info.
func (w *work) hkdf(out []byte, salt *hmacKey, ikm *[KeySize]byte, info []byte) {
	w.ikm = *ikm
	w.prepare(&w.prk, w.mac(salt, w.ikm[:])[:]) // Extract: PRK = HMAC(salt, IKM)
	prev := w.prev[:0]
	for n := 0; n < len(out); n += sha256.Size {
		w.ctr[0]++
		t := w.mac(&w.prk, prev, info, w.ctr[:]) // T(i) = HMAC(PRK, T(i-1) ‖ info ‖ i)
		copy(out[n:], t[:])
		w.prev = *t
		prev = w.prev[:]
	}
	w.ctr[0] = 0
}

// zeroSaltKey is the HMAC key of HKDF-Extract with 32 zero bytes as salt,
// which both profiles use for message keys.
var zeroSaltKey = func() *hmacKey {
	w := &work{d: sha256.New().(sha256State)}
	k := new(hmacKey)
	w.prepare(k, make([]byte, sha256.Size))
	return k
}()

var (
	messageKeySeed = []byte{0x01}
	chainKeySeed   = []byte{0x02}
)

// chainStep is KDF_CK (Signal DR §5.2; XEP-0384 §Double Ratchet): the
// message key HMAC-SHA-256(ck, 0x01) goes to w.mk, and ck becomes
// HMAC-SHA-256(ck, 0x02). python-doubleratchet computes the same with its
// "separate HMACs" KDF and the constant 0x02 0x01: output [0:32] is the next
// chain key, [32:64] the message key.
func (w *work) chainStep(ck *[KeySize]byte) {
	w.prepare(&w.key, ck[:])
	w.mk = *w.mac(&w.key, messageKeySeed)
	*ck = *w.mac(&w.key, chainKeySeed)
}

// cbcEncrypt encrypts buf (whole blocks) in place with AES-CBC (NIST SP
// 800-38A §6.2) under b and iv.
func cbcEncrypt(b cipher.Block, iv, buf []byte) {
	prev := iv
	for i := 0; i < len(buf); i += aes.BlockSize {
		blk := buf[i : i+aes.BlockSize]
		subtle.XORBytes(blk, blk, prev)
		b.Encrypt(blk, blk)
		prev = blk
	}
}
