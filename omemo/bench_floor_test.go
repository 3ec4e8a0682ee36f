package omemo_test

// Fan-out benchmarks against the floor of bare primitives, on both kinds
// of store: memstore.New (records kept as values, copied per transaction)
// and memstore.NewSerializing (records kept as MarshalBinary bytes and
// decoded on every read, as an on-disk store does). Built on the public
// API only, with names prefixed "perf", so that they do not depend on the
// test helpers of the other files.

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"hush.im/omemo"
	"hush.im/omemo/memstore"
	"hush.im/sce"
	"mellium.im/xmpp/jid"
)

// perfNet is a PEP service of Go values: the device lists and bundles the
// devices published. tb is for the setup only.
type perfNet struct {
	tb      testing.TB
	lists   map[string]*omemo.DeviceList
	bundles map[string]*omemo.Bundle // by Address.String()
}

func newPerfNet(tb testing.TB) *perfNet {
	return &perfNet{tb: tb, lists: map[string]*omemo.DeviceList{}, bundles: map[string]*omemo.Bundle{}}
}

type perfDevice struct {
	n   *perfNet
	m   *omemo.Manager
	jid jid.JID
}

// device creates a device of account on store st, adds it to the account's
// device list and publishes its bundle.
func (n *perfNet) device(account string, st omemo.Store) *perfDevice {
	n.tb.Helper()
	j := jid.MustParse(account)
	m, err := omemo.New(j, st, &omemo.Options{Trust: omemo.BlindTrust{}, PreKeys: omemo.MinPreKeys})
	if err != nil {
		n.tb.Fatal(err)
	}
	l, _, err := m.AnnounceDevice(n.lists[account])
	if err != nil {
		n.tb.Fatal(err)
	}
	n.lists[account] = l
	b, err := m.Bundle()
	if err != nil {
		n.tb.Fatal(err)
	}
	n.bundles[m.Address().String()] = b
	return &perfDevice{n: n, m: m, jid: j}
}

// sync gives d the device lists of itself and the recipients and the
// bundles it lacks, as a client does before sending.
func (d *perfDevice) sync(to ...jid.JID) {
	d.n.tb.Helper()
	for _, j := range append([]jid.JID{d.jid}, to...) {
		if l, ok := d.n.lists[j.String()]; ok {
			if _, err := d.m.SetDeviceList(j, l); err != nil {
				d.n.tb.Fatal(err)
			}
		}
	}
	need, _, err := d.m.NeedBundles(to...)
	if err != nil {
		d.n.tb.Fatal(err)
	}
	for _, a := range need {
		if b, ok := d.n.bundles[a.String()]; ok {
			if err := d.m.SetBundle(a, b); err != nil {
				d.n.tb.Fatal(err)
			}
		}
	}
}

// establish has d send one message to every device of the accounts, every
// device decrypt it and answer the key exchange, and d decrypt the
// answers: afterwards d's sessions with them are confirmed.
func (d *perfDevice) establish(env []byte, to []jid.JID, devices []*perfDevice) {
	d.n.tb.Helper()
	d.sync(to...)
	e, rep, err := d.m.Encrypt(env, to...)
	if err != nil {
		d.n.tb.Fatal(err)
	}
	if s := rep.Skipped(); len(s) > 0 {
		d.n.tb.Fatalf("devices left out: %+v", s)
	}
	for _, r := range devices {
		got, err := r.m.Decrypt(d.jid, e)
		if err != nil {
			d.n.tb.Fatalf("%v decrypting from %v: %v", r.m.Address(), d.m.Address(), err)
		}
		if got.BundleChanged { // the prekey it used is gone
			nb, err := r.m.Bundle()
			if err != nil {
				d.n.tb.Fatal(err)
			}
			d.n.bundles[r.m.Address().String()] = nb
		}
		if got.SendEmpty == omemo.EmptyNone {
			continue
		}
		answer, err := r.m.EncryptEmpty(got.Sender)
		if err != nil {
			d.n.tb.Fatal(err)
		}
		if _, err := d.m.Decrypt(r.jid, answer); err != nil {
			d.n.tb.Fatalf("%v decrypting the answer of %v: %v", d.m.Address(), r.m.Address(), err)
		}
	}
}

// encrypt encrypts env for the accounts and checks that exactly n devices
// got a key, none with a key exchange.
func (d *perfDevice) encrypt(tb testing.TB, env []byte, to []jid.JID, n int) *omemo.Encrypted {
	e, rep, err := d.m.Encrypt(env, to...)
	if err != nil {
		tb.Fatal(err)
	}
	if len(rep.Devices) != n {
		tb.Fatalf("%d devices in the report, want %d", len(rep.Devices), n)
	}
	for _, dr := range rep.Devices {
		if !dr.OK() || dr.KEX {
			tb.Fatalf("device %+v: want a key without key exchange", dr)
		}
	}
	return e
}

// perfEnvelope is a typical SCE envelope (XEP-0420) of a one-to-one chat
// message as SealStanza makes it: a body of a few words, an origin-id,
// rpad, from and time, padded as package sce pads.
func perfEnvelope(tb testing.TB) []byte {
	tb.Helper()
	st, err := sce.ParseStanza([]byte(`<message xmlns='jabber:client' to='bob@example.net' type='chat' id='b5c4e0e3-5c52-4a4b-9f4e-62f1a0e2b0a1'>` +
		`<body>See you at the station at six, I'll wait by the north entrance.</body>` +
		`<origin-id xmlns='urn:xmpp:sid:0' id='b5c4e0e3-5c52-4a4b-9f4e-62f1a0e2b0a1'/></message>`))
	if err != nil {
		tb.Fatal(err)
	}
	_, env, err := sce.Seal(st, sce.SealOptions{Profile: sce.OMEMO2(), From: jid.MustParse("alice@example.org")})
	if err != nil {
		tb.Fatal(err)
	}
	b, err := env.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// perfFloor holds the state of the bare primitives of one more device: the
// chain step (two HMAC-SHA-256), the message key HKDF-SHA-256 (80 bytes),
// AES-256-CBC of the 48-byte key material and the HMAC-SHA-256 tag over
// AD ‖ OMEMOMessage, with the standard library used the plain way.
type perfFloor struct {
	ck, material, ad, header []byte
}

func newPerfFloor() *perfFloor {
	return &perfFloor{ck: make([]byte, 32), material: make([]byte, 48), ad: make([]byte, 64), header: make([]byte, 2+2+34+2+64)}
}

func (f *perfFloor) device() []byte {
	h := hmac.New(sha256.New, f.ck)
	h.Write([]byte{1})
	mk := h.Sum(nil)
	h = hmac.New(sha256.New, f.ck)
	h.Write([]byte{2})
	f.ck = h.Sum(f.ck[:0])
	okm, _ := hkdf.Key(sha256.New, mk, make([]byte, 32), "OMEMO Message Key Material", 80)
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

// perfFanout is a sender per kind of store with confirmed sessions to the
// devices of perfSizes recipients: 1, 10, 100 (one account each) and 1000
// (the 100-device account and nine more, a large group chat).
type perfFanout struct {
	env     []byte
	senders map[string]*perfDevice // "memory", "serialized"
	to      map[int][]jid.JID
}

var perfSizes = []int{1, 10, 100, 1000}

var (
	perfOnce  sync.Once
	perfState *perfFanout
)

func perfSetup(b *testing.B) *perfFanout {
	perfOnce.Do(func() {
		n := newPerfNet(b)
		f := &perfFanout{env: perfEnvelope(b), senders: map[string]*perfDevice{}, to: map[int][]jid.JID{}}
		var all []*perfDevice
		var accounts []jid.JID
		add := func(account string, k int) jid.JID {
			for range k {
				all = append(all, n.device(account, memstore.New()))
			}
			j := jid.MustParse(account)
			accounts = append(accounts, j)
			return j
		}
		f.to[1] = []jid.JID{add("one@example.net", 1)}
		f.to[10] = []jid.JID{add("ten@example.net", 10)}
		f.to[100] = []jid.JID{add("group0@example.net", 100)}
		f.to[1000] = slices.Clone(f.to[100])
		for i := 1; i < 10; i++ {
			f.to[1000] = append(f.to[1000], add(fmt.Sprintf("group%d@example.net", i), 100))
		}
		for name, st := range map[string]omemo.Store{"memory": memstore.New(), "serialized": memstore.NewSerializing()} {
			s := n.device("alice-"+name+"@example.org", st)
			s.establish(f.env, accounts, all)
			f.senders[name] = s
		}
		perfState = f
	})
	if perfState == nil {
		b.Fatal("fan-out setup failed")
	}
	return perfState
}

func perfMedian(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}

// BenchmarkFanoutVsFloor encrypts one typical envelope for 1, 10, 100 and
// 1000 devices with confirmed sessions, followed in the same iteration by
// the bare primitives of as many devices; x-floor is the median ratio
// (the fan-out also pays the payload encryption and the store
// transaction once per message).
func BenchmarkFanoutVsFloor(b *testing.B) {
	for _, store := range []string{"memory", "serialized"} {
		for _, n := range perfSizes {
			b.Run(fmt.Sprintf("%s/%d", store, n), func(b *testing.B) {
				f := perfSetup(b)
				s, fl := f.senders[store], newPerfFloor()
				var per, floor, ratio []float64
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					t0 := time.Now()
					s.encrypt(b, f.env, f.to[n], n)
					t1 := time.Now()
					for range n {
						fl.device()
					}
					t2 := time.Now()
					e, fe := float64(t1.Sub(t0))/float64(n), float64(t2.Sub(t1))/float64(n)
					per, floor, ratio = append(per, e), append(floor, fe), append(ratio, e/fe)
				}
				b.ReportMetric(perfMedian(per), "ns/device")
				b.ReportMetric(perfMedian(floor), "floor-ns/device")
				b.ReportMetric(perfMedian(ratio), "x-floor")
			})
		}
	}
}

// BenchmarkOneMoreDeviceVsFloor is the marginal cost of one more device,
// (Encrypt to 100 devices − Encrypt to 10) / 90, against the bare
// primitives of one device run 90 times in the same iteration (target
// ≤ 1.3×), on both kinds of store.
func BenchmarkOneMoreDeviceVsFloor(b *testing.B) {
	for _, store := range []string{"memory", "serialized"} {
		b.Run(store, func(b *testing.B) {
			f := perfSetup(b)
			s, fl := f.senders[store], newPerfFloor()
			var marginal, floor, ratio []float64
			b.ResetTimer()
			for b.Loop() {
				t0 := time.Now()
				s.encrypt(b, f.env, f.to[10], 10)
				t1 := time.Now()
				s.encrypt(b, f.env, f.to[100], 100)
				t2 := time.Now()
				for range 90 {
					fl.device()
				}
				t3 := time.Now()
				m := float64(t2.Sub(t1)-t1.Sub(t0)) / 90
				fe := float64(t3.Sub(t2)) / 90
				marginal, floor, ratio = append(marginal, m), append(floor, fe), append(ratio, m/fe)
			}
			b.ReportMetric(perfMedian(marginal), "ns/device")
			b.ReportMetric(perfMedian(floor), "floor-ns/device")
			b.ReportMetric(perfMedian(ratio), "x-floor")
		})
	}
}

// BenchmarkFloorOneDevice is the bare primitives of one more device alone.
func BenchmarkFloorOneDevice(b *testing.B) {
	f := newPerfFloor()
	b.ReportAllocs()
	for b.Loop() {
		f.device()
	}
}
