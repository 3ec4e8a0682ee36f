package omemo_test

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/xml"
	"fmt"
	"slices"
	"testing"
	"time"

	"hush.im/internal/ratchet"
	"hush.im/internal/x3dh"
	"hush.im/internal/xeddsa"
	"hush.im/omemo"
	"hush.im/sce"
	"mellium.im/xmpp/jid"
)

// fanout is a sender with confirmed sessions to n devices, spread over
// accounts of at most 100 devices.
type fanout struct {
	m  *omemo.Manager
	to []jid.JID
	n  int
}

var fanouts = map[int]*fanout{}

// newFanout builds (once per n) a sender whose sessions with n recipient
// devices are established and answered, so that Encrypt measures the
// steady state: no key exchange, no session building.
func newFanout(b *testing.B, n int) *fanout {
	if f, ok := fanouts[n]; ok {
		return f
	}
	w := newWorld(b)
	opts := &omemo.Options{Trust: omemo.BlindTrust{}, PreKeys: omemo.MinPreKeys}
	sender := w.newDevice("alice@example.org", opts)
	f := &fanout{m: sender.m, n: n}
	for i := 0; i < n; i += 100 {
		var rcpts []*device
		account := fmt.Sprintf("member%d@example.net", i/100)
		for range min(100, n-i) {
			rcpts = append(rcpts, w.newDevice(account, opts))
		}
		e := mustSend(sender, "<envelope>hi</envelope>", rcpts[0].jid)
		for _, r := range rcpts {
			got := r.mustRecv(sender, e, "<envelope>hi</envelope>")
			r.answer(got, sender)
		}
		f.to = append(f.to, rcpts[0].jid)
	}
	fanouts[n] = f
	return f
}

func (f *fanout) encrypt(b *testing.B) {
	e, rep, err := f.m.Encrypt(envelope, f.to...)
	if err != nil || len(rep.Devices) != f.n || rep.Devices[0].KEX {
		b.Fatal(err)
	}
	_ = e
}

// envelope is a typical padded SCE envelope (sce.PadTarget is 256 bytes
// plus up to 200 random characters).
var envelope = make([]byte, 300)

// BenchmarkEncryptFanout encrypts one envelope for 1, 10, 100 and 1000
// devices with established sessions (1000: ten accounts of 100 devices,
// a group chat).
func BenchmarkEncryptFanout(b *testing.B) {
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			f := newFanout(b, n)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				f.encrypt(b)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/device")
		})
	}
}

// BenchmarkEncryptOneMoreDevice measures the cost of one more device with
// an established session, (Encrypt to 100 devices − Encrypt to 10) / 90,
// against BenchmarkFloorPerDevice's primitives run in the same loop, and
// reports the ratio as x-floor (target ≤ 1.3).
func BenchmarkEncryptOneMoreDevice(b *testing.B) {
	small, large := newFanout(b, 10), newFanout(b, 100)
	fl := newFloor()
	// The Double Ratchet alone (internal/ratchet), to tell its share of
	// the cost from this package's.
	sf := newSessionFloor(b)
	in, _ := x3dh.OMEMO2.Initiate(sf.ik, sf.bundle)
	r, _ := ratchet.NewInitiator(ratchet.OMEMO2, in.SharedSecret, in.AssociatedData, sf.bundle.SignedPreKey)
	material := make([]byte, 48)
	// On a shared machine single iterations are disturbed; the ratios are
	// medians over iterations, each measured back to back.
	var marginal, floorNs, ratio, ratchetRatio []float64
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		small.encrypt(b)
		t1 := time.Now()
		large.encrypt(b)
		t2 := time.Now()
		for range 90 {
			fl.device()
		}
		t3 := time.Now()
		for range 90 {
			if _, err := r.Encrypt(material); err != nil {
				b.Fatal(err)
			}
		}
		t4 := time.Now()
		m := float64(t2.Sub(t1)-t1.Sub(t0)) / 90
		f := float64(t3.Sub(t2)) / 90
		marginal, floorNs = append(marginal, m), append(floorNs, f)
		ratio = append(ratio, m/f)
		ratchetRatio = append(ratchetRatio, float64(t4.Sub(t3))/90/f)
	}
	b.ReportMetric(median(marginal), "ns/device")
	b.ReportMetric(median(floorNs), "floor-ns/device")
	b.ReportMetric(median(ratio), "x-floor")
	b.ReportMetric(median(ratchetRatio), "ratchet-x-floor")
}

func median(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}

// floor holds the state of the bare primitives of one more device.
type floor struct {
	ck, material, ad, header []byte
}

func newFloor() *floor {
	return &floor{ck: make([]byte, 32), material: make([]byte, 48), ad: make([]byte, 64), header: make([]byte, 2+2+34+2+64)}
}

var zeroSalt32 [32]byte

// device runs the primitives of one Double Ratchet message carrying the
// 48-byte key material: the chain step (two HMAC-SHA-256), the message key
// HKDF (80 bytes), AES-256-CBC of 48 bytes and the HMAC-SHA-256 tag over
// AD ‖ OMEMOMessage.
func (f *floor) device() []byte {
	h := hmac.New(sha256.New, f.ck)
	h.Write([]byte{1})
	mk := h.Sum(nil)
	h = hmac.New(sha256.New, f.ck)
	h.Write([]byte{2})
	f.ck = h.Sum(f.ck[:0])
	okm, _ := hkdf.Key(sha256.New, mk, zeroSalt32[:], "OMEMO Message Key Material", 80)
	block, _ := aes.NewCipher(okm[:32])
	ct := make([]byte, 64)
	copy(ct, f.material)
	for i := 48; i < 64; i++ {
		ct[i] = 16
	}
	cipher.NewCBCEncrypter(block, okm[64:80]).CryptBlocks(ct, ct)
	copy(f.header[40:], ct)
	h = hmac.New(sha256.New, okm[32:64])
	h.Write(f.ad)
	h.Write(f.header)
	return h.Sum(nil)[:16]
}

// BenchmarkFloorPerDevice is the bare primitives of one more device.
func BenchmarkFloorPerDevice(b *testing.B) {
	f := newFloor()
	b.ReportAllocs()
	for b.Loop() {
		f.device()
	}
}

// sessionBuild is a sender and a bundle to build a session from.
func benchBundle(b *testing.B) (*omemo.Manager, omemo.Address, *omemo.Bundle) {
	w := newWorld(b)
	sender := w.newDevice("alice@example.org", nil)
	r := w.newDevice("bob@example.net", nil)
	sender.sync(r.jid)
	bundle := w.bundles[r.addr().String()]
	return sender.m, r.addr(), bundle
}

// BenchmarkSessionBuild builds a session from a bundle and encrypts the
// first message (X3DH as initiator, the first ratchet message, the key
// exchange wrapping, the store), as Encrypt does for a new device, against
// the bare primitives in the same loop (x3dh.Initiate with its signature
// check and four X25519, ratchet.NewInitiator with its key pair and DH
// step, one ratchet message); x-floor is the ratio (target ≤ 1.5).
func BenchmarkSessionBuild(b *testing.B) {
	m, a, bundle := benchBundle(b)
	fl := newSessionFloor(b)
	var ratio, build, floor []float64
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		if err := m.SetBundle(a, bundle); err != nil {
			b.Fatal(err)
		}
		m.ResetSession(a)
		b.StartTimer()
		t0 := time.Now()
		e, err := m.EncryptEmpty(a)
		if err != nil || !e.Keys[0].Keys[0].KEX {
			b.Fatal(err)
		}
		t1 := time.Now()
		fl.build(b)
		t2 := time.Now()
		build, floor = append(build, float64(t1.Sub(t0))), append(floor, float64(t2.Sub(t1)))
		ratio = append(ratio, float64(t1.Sub(t0))/float64(t2.Sub(t1)))
	}
	b.ReportMetric(median(build), "build-ns")
	b.ReportMetric(median(floor), "floor-ns")
	b.ReportMetric(median(ratio), "x-floor")
}

type sessionFloor struct {
	ik     *xeddsa.PrivateKey
	bundle *x3dh.Bundle
}

func newSessionFloor(b *testing.B) *sessionFloor {
	ik, _ := xeddsa.GenerateKey()
	peer, _ := xeddsa.GenerateKey()
	spk, _ := ecdh.X25519().GenerateKey(rand.Reader)
	opk, _ := ecdh.X25519().GenerateKey(rand.Reader)
	sig, err := x3dh.OMEMO2.SignPreKey(peer, spk.PublicKey())
	if err != nil {
		b.Fatal(err)
	}
	return &sessionFloor{ik: ik, bundle: &x3dh.Bundle{IdentityKey: peer.Ed25519Public(), SignedPreKey: spk.PublicKey().Bytes(),
		SignedPreKeySignature: sig, SignedPreKeyID: 1, PreKey: opk.PublicKey().Bytes(), PreKeyID: 1}}
}

func (f *sessionFloor) build(b *testing.B) {
	in, err := x3dh.OMEMO2.Initiate(f.ik, f.bundle)
	if err != nil {
		b.Fatal(err)
	}
	s, err := ratchet.NewInitiator(ratchet.OMEMO2, in.SharedSecret, in.AssociatedData, f.bundle.SignedPreKey)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Encrypt(make([]byte, 32)); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkFloorSessionBuild is the bare primitives of a session build.
func BenchmarkFloorSessionBuild(b *testing.B) {
	f := newSessionFloor(b)
	b.ReportAllocs()
	for b.Loop() {
		f.build(b)
	}
}

// legacyFanout is a sender with confirmed legacy sessions to n devices
// that announce only legacy OMEMO.
type legacyFanout struct {
	m  *omemo.Manager
	to []jid.JID
	n  int
}

var legacyFanouts = map[int]*legacyFanout{}

func newLegacyFanout(b *testing.B, n int) *legacyFanout {
	if f, ok := legacyFanouts[n]; ok {
		return f
	}
	w := newWorld(b)
	opts := &omemo.Options{Trust: omemo.BlindTrust{}, PreKeys: omemo.MinPreKeys}
	sender := w.newDualDevice("alice@example.org", opts)
	f := &legacyFanout{m: sender.m, n: n}
	for i := 0; i < n; i += 100 {
		var rcpts []*device
		account := fmt.Sprintf("member%d@example.net", i/100)
		for range min(100, n-i) {
			rcpts = append(rcpts, w.newLegacyDevice(account, opts))
		}
		msg, _ := sender.sendBody("hi", rcpts[0].jid)
		for _, r := range rcpts {
			r.answerMsg(r.mustRecvMsg(sender, msg, "hi"), sender)
		}
		f.to = append(f.to, rcpts[0].jid)
	}
	legacyFanouts[n] = f
	return f
}

var legacyBody = omemo.Plaintext{Body: "Meet me at the lighthouse at eight.", Only: omemo.ProtocolLegacy}

func (f *legacyFanout) encrypt(b *testing.B) {
	msg, rep, err := f.m.EncryptMessage(&legacyBody, f.to...)
	if err != nil || len(rep.Devices) != f.n || rep.Devices[0].KEX || msg.Legacy == nil {
		b.Fatal(err)
	}
}

// legacyFloor is the bare primitives of one more legacy device: the chain
// step (two HMAC-SHA-256), the message key HKDF "WhisperMessageKeys" (80
// bytes), AES-256-CBC of the 32-byte key material and the 8-byte
// HMAC-SHA-256 tag over both identity keys, the version byte and the
// SignalMessage.
type legacyFloor struct {
	ck, material, ad, msg []byte
}

func newLegacyFloor() *legacyFloor {
	return &legacyFloor{ck: make([]byte, 32), material: make([]byte, 32), ad: make([]byte, 66), msg: make([]byte, 1+2+33+2+2+2+48)}
}

func (f *legacyFloor) device() []byte {
	h := hmac.New(sha256.New, f.ck)
	h.Write([]byte{1})
	mk := h.Sum(nil)
	h = hmac.New(sha256.New, f.ck)
	h.Write([]byte{2})
	f.ck = h.Sum(f.ck[:0])
	okm, _ := hkdf.Key(sha256.New, mk, zeroSalt32[:], "WhisperMessageKeys", 80)
	block, _ := aes.NewCipher(okm[:32])
	ct := make([]byte, 48)
	copy(ct, f.material)
	for i := 32; i < 48; i++ {
		ct[i] = 16
	}
	cipher.NewCBCEncrypter(block, okm[64:80]).CryptBlocks(ct, ct)
	copy(f.msg[len(f.msg)-48:], ct)
	h = hmac.New(sha256.New, okm[32:64])
	h.Write(f.ad)
	h.Write(f.msg)
	return h.Sum(nil)[:8]
}

// BenchmarkLegacyEncryptOneMoreDevice is BenchmarkEncryptOneMoreDevice for
// legacy OMEMO: (EncryptMessage to 100 legacy devices − to 10) / 90
// against the bare primitives of one legacy device in the same loop;
// x-floor is the ratio.
func BenchmarkLegacyEncryptOneMoreDevice(b *testing.B) {
	small, large := newLegacyFanout(b, 10), newLegacyFanout(b, 100)
	fl := newLegacyFloor()
	var marginal, floorNs, ratio []float64
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		small.encrypt(b)
		t1 := time.Now()
		large.encrypt(b)
		t2 := time.Now()
		for range 90 {
			fl.device()
		}
		t3 := time.Now()
		m := float64(t2.Sub(t1)-t1.Sub(t0)) / 90
		f := float64(t3.Sub(t2)) / 90
		marginal, floorNs = append(marginal, m), append(floorNs, f)
		ratio = append(ratio, m/f)
	}
	b.ReportMetric(median(marginal), "ns/device")
	b.ReportMetric(median(floorNs), "floor-ns/device")
	b.ReportMetric(median(ratio), "x-floor")
}

// BenchmarkLegacyFloorPerDevice is the bare primitives of one more legacy
// device.
func BenchmarkLegacyFloorPerDevice(b *testing.B) {
	f := newLegacyFloor()
	b.ReportAllocs()
	for b.Loop() {
		f.device()
	}
}

// BenchmarkProtocolsSameMessage encrypts and decrypts the same chat
// message in one loop with OMEMO 2 (its SCE envelope, padded, to a device
// that announces OMEMO 2) and with legacy OMEMO (its body, to a device
// that announces only legacy OMEMO), sessions established, and reports
// each cost and the ratios legacy ÷ OMEMO 2.
func BenchmarkProtocolsSameMessage(b *testing.B) {
	w := newWorld(b)
	a := w.newDualDevice("alice@example.org", nil)
	r2 := w.newDualDevice("bob@example.net", nil)
	rl := w.newLegacyDevice("carol@example.com", nil)
	text := "Meet me at the lighthouse at eight."
	plain := &sce.Stanza{
		Name:     xml.Name{Space: "jabber:client", Local: "message"},
		Attr:     []xml.Attr{{Name: xml.Name{Local: "to"}, Value: "bob@example.net"}},
		Children: []sce.Element{sce.TextElement(xml.Name{Space: "jabber:client", Local: "body"}, text)},
	}
	_, env, err := sce.Seal(plain, sce.SealOptions{Profile: sce.OMEMO2(), From: a.jid})
	if err != nil {
		b.Fatal(err)
	}
	envBytes, _ := env.Marshal()
	p := &omemo.Plaintext{Envelope: envBytes, Body: text}
	for _, r := range []*device{r2, rl} {
		msg, _ := a.sendMsg(p, r.jid)
		got, err := r.recvMsg(a, msg)
		if err != nil {
			b.Fatal(err)
		}
		r.answerMsg(got, a)
	}
	var enc2, dec2, encL, decL []float64
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		m2, _, err := a.m.EncryptMessage(p, r2.jid)
		if err != nil || m2.OMEMO2 == nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := r2.m.Decrypt(a.jid, m2.OMEMO2); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		ml, _, err := a.m.EncryptMessage(p, rl.jid)
		if err != nil || ml.Legacy == nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		if _, err := rl.m.DecryptLegacy(a.jid, ml.Legacy); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		enc2, dec2 = append(enc2, float64(t1.Sub(t0))), append(dec2, float64(t2.Sub(t1)))
		encL, decL = append(encL, float64(t3.Sub(t2))), append(decL, float64(t4.Sub(t3)))
	}
	e2, d2, el, dl := median(enc2), median(dec2), median(encL), median(decL)
	b.ReportMetric(e2, "omemo2-encrypt-ns")
	b.ReportMetric(d2, "omemo2-decrypt-ns")
	b.ReportMetric(el, "legacy-encrypt-ns")
	b.ReportMetric(dl, "legacy-decrypt-ns")
	b.ReportMetric(el/e2, "legacy/omemo2-encrypt")
	b.ReportMetric(dl/d2, "legacy/omemo2-decrypt")
}
