package xeddsa

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// ErrInvalidPublicKey is matched (with errors.Is) by every public key
// rejection of this package; the more specific errors below wrap it.
var ErrInvalidPublicKey = errors.New("xeddsa: invalid public key")

var (
	// ErrNonCanonical reports a public key encoding that would re-encode
	// differently: a Montgomery u ≥ p or with bit 255 set (XEdDSA §3.4
	// "if u ≥ p"), or an Ed25519 y ≥ p or a negative zero x (RFC 8032
	// §5.1.3 decoding rules, strict form).
	ErrNonCanonical error = &keyError{"non-canonical encoding"}
	// ErrNotOnCurve reports bytes that encode no point of the curve (RFC 8032
	// §5.1.3 step 3 / a Montgomery u on the twist).
	ErrNotOnCurve error = &keyError{"not a point on the curve"}
	// ErrSmallOrder reports a point of order dividing 8 (the identity and the
	// torsion points), which libsodium and this package refuse everywhere.
	ErrSmallOrder error = &keyError{"small-order point"}
	// ErrNotInSubgroup reports a point with a torsion component, outside the
	// prime-order subgroup (libsodium crypto_sign_ed25519_pk_to_curve25519
	// refuses these too).
	ErrNotInSubgroup error = &keyError{"point outside the prime-order subgroup"}
)

// keyError is the type of the specific public key errors.
type keyError struct{ reason string }

func (e *keyError) Error() string { return "xeddsa: invalid public key: " + e.reason }
func (e *keyError) Unwrap() error { return ErrInvalidPublicKey }

// lMinusOne is L - 1, L = 2^252 + 27742317777372353535851937790883648493 the
// order of the prime-order subgroup (RFC 8032 §5.1), as a little-endian scalar.
var lMinusOne = mustScalar([]byte{
	0xec, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58,
	0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
})

func mustScalar(b []byte) *edwards25519.Scalar {
	s, err := new(edwards25519.Scalar).SetCanonicalBytes(b)
	if err != nil {
		panic("xeddsa: bad scalar constant")
	}
	return s
}

// decodeEdwards parses an RFC 8032 point encoding strictly: canonical, and
// not of small order. It does not check the subgroup.
func decodeEdwards(b []byte) (*edwards25519.Point, error) {
	if len(b) != PublicKeySize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrInvalidPublicKey, len(b), PublicKeySize)
	}
	p, err := new(edwards25519.Point).SetBytes(b)
	if err != nil {
		return nil, ErrNotOnCurve
	}
	// SetBytes accepts y ≥ p, and x = 0 with the sign bit set ("negative
	// zero"); strict decoding refuses both (STYLE: decoding rejects what
	// would re-encode differently). Negative zero needs y = ±1, which are
	// small-order points, so it is sorted out below without re-encoding.
	if !canonicalY(b) {
		return nil, ErrNonCanonical
	}
	if isSmallOrder(p) {
		if b[31]&0x80 != 0 && (isY(b, &yOne) || isY(b, &yMinusOne)) {
			return nil, ErrNonCanonical
		}
		return nil, ErrSmallOrder
	}
	return p, nil
}

// yOne and yMinusOne are the encodings of y = 1 and y = p - 1 (sign bit 0).
var (
	yOne      = [32]byte{1}
	yMinusOne = [32]byte{
		0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
	}
)

// isY reports whether b encodes y, ignoring the sign bit.
func isY(b []byte, y *[32]byte) bool {
	return bytes.Equal(b[:31], y[:31]) && b[31]&0x7f == y[31]
}

// canonicalY reports whether the y-coordinate of an Ed25519 encoding (b
// without its sign bit) is less than p = 2^255 - 19.
func canonicalY(b []byte) bool {
	if b[31]&0x7f != 0x7f {
		return true
	}
	for i := 30; i > 0; i-- {
		if b[i] != 0xff {
			return true
		}
	}
	return b[0] < 0xed
}

// decodeEdwardsPrimeOrder is decodeEdwards plus the subgroup check: [L]P = O.
func decodeEdwardsPrimeOrder(b []byte) (*edwards25519.Point, error) {
	p, err := decodeEdwards(b)
	if err != nil {
		return nil, err
	}
	// [L]P = [L-1]P + P; the point is public, so variable time is fine.
	zero := edwards25519.NewScalar()
	q := new(edwards25519.Point).VarTimeDoubleScalarBaseMult(lMinusOne, p, zero)
	q.Add(q, p)
	if q.Equal(edwards25519.NewIdentityPoint()) != 1 {
		return nil, ErrNotInSubgroup
	}
	return p, nil
}

// smallOrderR lists the canonical RFC 8032 encodings of the eight points of
// order dividing 8 (libsodium's ge25519_has_small_order blacklist, canonical
// entries, with both signs where x ≠ 0).
var smallOrderR = [8][32]byte{
	yOne,       // identity
	yMinusOne,  // order 2
	{},         // order 4, y = 0, x positive
	{31: 0x80}, // order 4, y = 0, x negative
	{0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f,
		0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a}, // order 8
	{0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f,
		0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0xfa}, // order 8
	{0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0,
		0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05}, // order 8
	{0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0,
		0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x85}, // order 8
}

// isSmallOrder reports whether [8]P is the identity.
func isSmallOrder(p *edwards25519.Point) bool {
	q := new(edwards25519.Point).MultByCofactor(p)
	return q.Equal(edwards25519.NewIdentityPoint()) == 1
}

// Ed25519PublicToCurve25519 converts an Ed25519 public key (RFC 8032
// encoding) to its X25519 form with the RFC 7748 §4.1 birational map
// u = (1 + y) / (1 - y). Like libsodium's crypto_sign_ed25519_pk_to_curve25519
// (which python-xeddsa re-exports) it rejects invalid points, small-order
// points and points outside the prime-order subgroup; unlike libsodium it also
// rejects non-canonical encodings. Errors match [ErrInvalidPublicKey].
func Ed25519PublicToCurve25519(edPub []byte) ([]byte, error) {
	p, err := decodeEdwardsPrimeOrder(edPub)
	if err != nil {
		return nil, err
	}
	return p.BytesMontgomery(), nil
}

// Curve25519PublicToEd25519 converts an X25519 public key (a Montgomery u,
// RFC 7748 §5) to its Ed25519 form with the RFC 7748 §4.1 birational map
// y = (u - 1) / (u + 1), setting the sign bit (0 or 1) as given, because u
// alone does not determine it (XEdDSA §2.2 convert_mont). It rejects
// non-canonical u (≥ p, or bit 255 set), u on the twist, and the resulting
// point if it is of small order or outside the prime-order subgroup, so that
// the result always converts back with [Ed25519PublicToCurve25519]. Errors
// match [ErrInvalidPublicKey].
func Curve25519PublicToEd25519(curvePub []byte, signBit byte) ([]byte, error) {
	if signBit > 1 {
		return nil, fmt.Errorf("xeddsa: sign bit is %d, want 0 or 1", signBit)
	}
	b, err := montgomeryToEdwards(curvePub, signBit)
	if err != nil {
		return nil, err
	}
	if _, err := decodeEdwardsPrimeOrder(b); err != nil {
		return nil, err
	}
	return b, nil
}

// montgomeryToEdwards applies the birational map to a canonical u and sets the
// sign bit. The result is not checked to be on the curve.
func montgomeryToEdwards(curvePub []byte, signBit byte) ([]byte, error) {
	if len(curvePub) != PublicKeySize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrInvalidPublicKey, len(curvePub), PublicKeySize)
	}
	var u field.Element
	if _, err := u.SetBytes(curvePub); err != nil {
		return nil, ErrNotOnCurve
	}
	// field.Element.SetBytes ignores bit 255 and reduces u ≥ p: refuse both.
	if !bytes.Equal(u.Bytes(), curvePub) {
		return nil, ErrNonCanonical
	}
	one := new(field.Element).One()
	num := new(field.Element).Subtract(&u, one)
	den := new(field.Element).Add(&u, one)
	if den.Equal(new(field.Element).Zero()) == 1 {
		// u = -1 has no Edwards image (it is not on Curve25519 either).
		return nil, ErrNotOnCurve
	}
	y := new(field.Element).Multiply(num, den.Invert(den))
	b := y.Bytes()
	b[31] |= signBit << 7
	return b, nil
}

// VerifyEd25519 reports whether sig is a valid Ed25519 signature of msg by
// the RFC 8032 public key edPub. It is crypto/ed25519's verification (RFC 8032
// §5.1.7, s < L) with the strict checks of libsodium's
// crypto_sign_verify_detached (python-xeddsa's ed25519_verify) added: edPub
// must be canonical and not of small order, and R must not be of small order.
// It never panics; inputs of the wrong size are invalid.
func VerifyEd25519(edPub, msg, sig []byte) bool {
	if len(edPub) != PublicKeySize || len(sig) != SignatureSize {
		return false
	}
	if _, err := decodeEdwards(edPub); err != nil {
		return false
	}
	// R must not be of small order. Only canonical encodings can equal the R
	// that ed25519.Verify recomputes, so comparing against the canonical
	// small-order encodings is enough and saves decoding R.
	for i := range smallOrderR {
		if bytes.Equal(sig[:32], smallOrderR[i][:]) {
			return false
		}
	}
	return ed25519.Verify(ed25519.PublicKey(edPub), msg, sig)
}

// Verify reports whether sig is a valid XEdDSA signature of msg by the X25519
// public key curvePub (XEdDSA §3.4 xeddsa_verify): curvePub is converted to
// its Ed25519 form with sign bit 0 and the signature checked as by
// [VerifyEd25519]. A u ≥ p is rejected, as the specification requires.
// Signatures that carry libsignal's sign bit in byte 63 need [VerifyLegacy].
func Verify(curvePub, msg, sig []byte) bool {
	edPub, err := montgomeryToEdwards(curvePub, 0)
	if err != nil {
		return false
	}
	return VerifyEd25519(edPub, msg, sig)
}

// VerifyLegacy reports whether sig is a valid libsignal "curve25519
// signature" of msg by the X25519 public key curvePub (libsignal-protocol-c
// curve_sigs.c curve25519_verify, DIGEST §5.6): the Ed25519 sign bit is read
// from bit 7 of sig[63], that bit is cleared, and the signature is checked as
// by [VerifyEd25519] under the converted key. XEdDSA signatures (bit clear)
// verify too. sig is not modified.
func VerifyLegacy(curvePub, msg, sig []byte) bool {
	if len(sig) != SignatureSize {
		return false
	}
	signBit := sig[63] >> 7
	edPub, err := montgomeryToEdwards(curvePub, signBit)
	if err != nil {
		return false
	}
	var cleared [SignatureSize]byte
	copy(cleared[:], sig)
	cleared[63] &= 0x7f
	return VerifyEd25519(edPub, msg, cleared[:])
}
