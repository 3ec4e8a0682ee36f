//go:build interop

package omemo_test

// hush against the reference implementation, python-omemo 1.0 with the
// python-twomemo backend (driven through internal/omemotest), on the same
// workload in the same run (issue 3, Speed): one typical SCE envelope
// encrypted for N devices with established sessions, serialized as
// <encrypted/> XML, parsed and decrypted by one of them; and the first
// message to a new device (session building). Python's time is measured by
// python itself (time.perf_counter around its encrypt/serialize and
// parse/decrypt loops), so the pipe to the driver is not counted.
//
//	go test -tags interop -run '^$' -bench Python -benchtime 10x -count 5 ./omemo
//
// ns/op is the wall time of a whole iteration, setup traffic and the
// driver's pipe included; the results are the metrics: per-message times
// of each side and python/hush, the median over iterations of the ratio
// measured back to back (so that the load of a shared machine cancels).

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"runtime"
	"testing"
	"time"

	"hush.im/internal/omemotest"
	"hush.im/omemo"
	"hush.im/omemo/memstore"
	"mellium.im/xmpp/jid"
)

const pyNS = omemotest.NSOMEMO2

// pyBench is the cast: a python sender and receiver and a hush sender and
// receiver, each pair with confirmed sessions to the same hush devices
// (the other N−1 recipients), all linked by one PEP model.
type pyBench struct {
	b        *testing.B
	pep      *omemotest.PEP
	net      *perfNet
	env      []byte
	pyS, pyR *omemotest.Peer
	hS, hR   *perfDevice
}

func newPyBench(b *testing.B) *pyBench {
	b.Helper()
	pep := omemotest.NewPEP()
	opts := []omemotest.Option{omemotest.WithPEP(pep), omemotest.WithNamespaces(pyNS), omemotest.WithTimeout(5 * time.Minute)}
	x := &pyBench{b: b, pep: pep, net: newPerfNet(b), env: perfEnvelope(b)}
	x.pyS = omemotest.StartPeer(b, "py-sender@example.org", opts...)
	x.pyR = omemotest.StartPeer(b, "py-receiver@example.net", opts...)
	x.hS = x.account("hush-sender@example.org", 1)[0]
	x.hR = x.account("hush-receiver@example.net", 1)[0]
	// The python receiver's session with the python sender.
	x.pyEstablish([]string{x.pyR.JID()}, nil)
	// The hush receiver's session with the hush sender.
	x.hS.establish(x.env, []jid.JID{x.hR.jid}, []*perfDevice{x.hR})
	return x
}

// account creates k hush devices of account and publishes their device
// list and bundles to PEP (where the python peers see them).
func (x *pyBench) account(account string, k int) []*perfDevice {
	x.b.Helper()
	var ds []*perfDevice
	for range k {
		ds = append(ds, x.net.device(account, memstore.New()))
	}
	x.publish(account, ds)
	return ds
}

func (x *pyBench) publish(account string, ds []*perfDevice) {
	x.b.Helper()
	l, err := xml.Marshal(x.net.lists[account])
	if err != nil {
		x.b.Fatal(err)
	}
	if err := x.pep.PublishDeviceList(pyNS, account, l); err != nil {
		x.b.Fatalf("python rejected the device list of %s: %v", account, err)
	}
	for _, d := range ds {
		x.publishBundle(d)
	}
}

func (x *pyBench) publishBundle(d *perfDevice) {
	x.b.Helper()
	bundle, err := d.m.Bundle()
	if err != nil {
		x.b.Fatal(err)
	}
	x.net.bundles[d.m.Address().String()] = bundle
	bx, err := xml.Marshal(bundle)
	if err != nil {
		x.b.Fatal(err)
	}
	if err := x.pep.PublishBundle(pyNS, d.jid.String(), d.m.DeviceID(), bx); err != nil {
		x.b.Fatalf("python rejected the bundle of %v: %v", d.m.Address(), err)
	}
}

// pyEstablish has the python sender send one message to the accounts (key
// exchanges), the python receiver (if addressed) and the hush devices
// decrypt it and answer, and the python sender decrypt the answers.
func (x *pyBench) pyEstablish(to []string, hush []*perfDevice) {
	x.b.Helper()
	enc, err := x.pyS.Encrypt(to, x.env, pyNS)
	if err != nil {
		x.b.Fatal(err)
	}
	if len(enc.Errors) > 0 {
		x.b.Fatalf("python left out devices: %+v", enc.Errors)
	}
	msg := enc.Messages[pyNS]
	for _, j := range to {
		if j == x.pyR.JID() {
			if _, err := x.pyR.Decrypt(x.pyS.JID(), msg); err != nil {
				x.b.Fatal(err)
			}
			out, err := x.pyR.Outbox()
			if err != nil {
				x.b.Fatal(err)
			}
			for _, o := range out {
				if _, err := x.pyS.Decrypt(x.pyR.JID(), o.XML); err != nil {
					x.b.Fatal(err)
				}
			}
		}
	}
	from := jid.MustParse(x.pyS.JID())
	for _, d := range hush {
		var e omemo.Encrypted
		if err := xml.Unmarshal(msg, &e); err != nil {
			x.b.Fatal(err)
		}
		got, err := d.m.Decrypt(from, &e)
		if err != nil {
			x.b.Fatalf("%v decrypting python's key exchange: %v", d.m.Address(), err)
		}
		if got.BundleChanged {
			x.publishBundle(d)
		}
		if got.SendEmpty == omemo.EmptyNone {
			x.b.Fatalf("%v owes python no answer", d.m.Address())
		}
		answer, err := d.m.EncryptEmpty(got.Sender)
		if err != nil {
			x.b.Fatal(err)
		}
		ax, err := xml.Marshal(answer)
		if err != nil {
			x.b.Fatal(err)
		}
		if _, err := x.pyS.Decrypt(d.jid.String(), ax); err != nil {
			x.b.Fatalf("python decrypting the answer of %v: %v", d.m.Address(), err)
		}
	}
}

// keysIn parses an <encrypted/> element and returns its number of keys and
// of key exchanges.
func keysIn(b *testing.B, x []byte) (keys, kex int) {
	b.Helper()
	var e omemo.Encrypted
	if err := xml.Unmarshal(x, &e); err != nil {
		b.Fatalf("hush cannot parse python's message: %v", err)
	}
	for _, ks := range e.Keys {
		for _, k := range ks.Keys {
			keys++
			if k.KEX {
				kex++
			}
		}
	}
	return keys, kex
}

// ratios collects per-iteration measurements and reports their medians.
type ratios struct {
	hushEnc, hushDec, pyEnc, pyDec []float64 // ns per message
	total, enc, dec                []float64 // python/hush
}

func (r *ratios) add(k int, hEnc, hDec, pEnc, pDec time.Duration) {
	f := func(d time.Duration) float64 { return float64(d) / float64(k) }
	r.hushEnc, r.hushDec = append(r.hushEnc, f(hEnc)), append(r.hushDec, f(hDec))
	r.pyEnc, r.pyDec = append(r.pyEnc, f(pEnc)), append(r.pyDec, f(pDec))
	r.total = append(r.total, float64(pEnc+pDec)/float64(hEnc+hDec))
	r.enc = append(r.enc, float64(pEnc)/float64(hEnc))
	if hDec > 0 {
		r.dec = append(r.dec, float64(pDec)/float64(hDec))
	}
}

func (r *ratios) report(b *testing.B) {
	b.ReportMetric(perfMedian(r.hushEnc), "hush-enc-ns/msg")
	b.ReportMetric(perfMedian(r.pyEnc), "python-enc-ns/msg")
	b.ReportMetric(perfMedian(r.enc), "python/hush-enc")
	if len(r.dec) > 0 {
		b.ReportMetric(perfMedian(r.hushDec), "hush-dec-ns/msg")
		b.ReportMetric(perfMedian(r.pyDec), "python-dec-ns/msg")
		b.ReportMetric(perfMedian(r.dec), "python/hush-dec")
		b.ReportMetric(perfMedian(r.total), "python/hush")
	}
}

// BenchmarkPython times the same workload in hush and python-omemo.
//
// fanout=N: each side encrypts k typical SCE envelopes for N devices with
// confirmed sessions (its receiver and N−1 shared hush devices) and
// serializes them as <encrypted/> XML; its receiver parses and decrypts
// them in order. Then each receiver answers once (untimed), so that the
// ratchet turns and no heartbeat falls into the timed part.
//
// session: each side encrypts one envelope for a device it has no session
// with (X3DH from the bundle, the first ratchet message, the key exchange
// wrapping, XML), a fresh hush device per iteration.
func BenchmarkPython(b *testing.B) {
	x := newPyBench(b)
	for _, n := range []int{1, 10, 100} {
		pyTo, hushTo := []string{x.pyR.JID()}, []jid.JID{x.hR.jid}
		if n > 1 {
			account := fmt.Sprintf("members%d@example.com", n)
			members := x.account(account, n-1)
			x.pyEstablish([]string{account}, members)
			x.hS.establish(x.env, []jid.JID{jid.MustParse(account)}, members)
			pyTo, hushTo = append(pyTo, account), append(hushTo, jid.MustParse(account))
		}
		// Messages per round: enough that a round of hush lasts long
		// enough to average out the scheduler, few enough that python's
		// receiver never reaches its heartbeat (53 on one chain).
		k := map[int]int{1: 50, 10: 20, 100: 5}[n]
		b.Run(fmt.Sprintf("fanout=%d", n), func(b *testing.B) {
			var r ratios
			for b.Loop() {
				hEnc, hDec, pEnc, pDec := x.fanoutRound(b, n, k, pyTo, hushTo)
				r.add(k, hEnc, hDec, pEnc, pDec)
			}
			r.report(b)
		})
	}
	b.Run("session", func(b *testing.B) {
		var r ratios
		for i := 0; b.Loop(); i++ {
			d := x.account(fmt.Sprintf("fresh%d@example.com", i), 1)[0]
			hEnc, pEnc := x.sessionRound(b, d)
			r.add(1, hEnc, 0, pEnc, 0)
		}
		r.report(b)
	})
}

// gcBeforeHush: this process holds the state of every simulated hush
// device (over a hundred), a heap a real client does not have, and a
// garbage collection cycle costs in proportion to it. Each timed hush
// section therefore starts right after a collection, and allocates too
// little to start another: allocation is counted, the collection of this
// benchmark's extra heap is not. (Python's processes hold one device
// each; a collection before python's section keeps this process from
// competing with it for the CPU.)

// fanoutRound runs one timed round of k messages on both sides and the
// untimed answers.
func (x *pyBench) fanoutRound(b *testing.B, n, k int, pyTo []string, hushTo []jid.JID) (hEnc, hDec, pEnc, pDec time.Duration) {
	// python
	runtime.GC() // no collection of this process runs beside python
	msgs, pEnc, err := x.pyS.EncryptBatch(pyTo, pyNS, x.env, k)
	if err != nil {
		b.Fatal(err)
	}
	res, err := x.pyR.DecryptBatch(x.pyS.JID(), msgs)
	if err != nil {
		b.Fatal(err)
	}
	if res.N != k || res.Empty != 0 {
		b.Fatalf("python decrypted %d messages (%d empty), want %d", res.N, res.Empty, k)
	}
	if keys, kex := keysIn(b, msgs[0]); keys != n || kex != 0 {
		b.Fatalf("python's message has %d keys (%d key exchanges), want %d without", keys, kex, n)
	}
	pDec = res.Elapsed

	// hush: the same steps, Encrypt + XML out, XML in + Decrypt.
	xs := make([][]byte, k)
	reports := make([]*omemo.Report, k)
	runtime.GC() // see gcBeforeHush
	t0 := time.Now()
	for i := range xs {
		e, rep, err := x.hS.m.Encrypt(x.env, hushTo...)
		if err != nil {
			b.Fatal(err)
		}
		if xs[i], err = xml.Marshal(e); err != nil {
			b.Fatal(err)
		}
		reports[i] = rep
	}
	t1 := time.Now()
	got := make([]*omemo.Decrypted, k)
	for i, m := range xs {
		var e omemo.Encrypted
		if err := xml.Unmarshal(m, &e); err != nil {
			b.Fatal(err)
		}
		if got[i], err = x.hR.m.Decrypt(x.hS.jid, &e); err != nil {
			b.Fatal(err)
		}
	}
	t2 := time.Now()
	for i := range k {
		if len(reports[i].Devices) != n || len(reports[i].Skipped()) != 0 || reports[i].Devices[0].KEX {
			b.Fatalf("hush message %d: report %+v, want %d keys without key exchange", i, reports[i].Devices, n)
		}
		if !bytes.Equal(got[i].Envelope, x.env) {
			b.Fatalf("hush message %d decrypted to %q", i, got[i].Envelope)
		}
	}

	// The answers, untimed: each receiver sends one message back.
	enc, err := x.pyR.Encrypt([]string{x.pyS.JID()}, x.env, pyNS)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := x.pyS.Decrypt(x.pyR.JID(), enc.Messages[pyNS]); err != nil {
		b.Fatal(err)
	}
	out, err := x.pyR.Outbox()
	if err != nil {
		b.Fatal(err)
	}
	for _, o := range out {
		if _, err := x.pyS.Decrypt(x.pyR.JID(), o.XML); err != nil {
			b.Fatal(err)
		}
	}
	x.hR.sync(x.hS.jid)
	e, _, err := x.hR.m.Encrypt(x.env, x.hS.jid)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := x.hS.m.Decrypt(x.hR.jid, e); err != nil {
		b.Fatal(err)
	}
	return t1.Sub(t0), t2.Sub(t1), pEnc, pDec
}

// sessionRound has both senders encrypt a first message to the new device
// d (which both know from PEP).
func (x *pyBench) sessionRound(b *testing.B, d *perfDevice) (hEnc, pEnc time.Duration) {
	msgs, pEnc, err := x.pyS.EncryptBatch([]string{d.jid.String()}, pyNS, x.env, 1)
	if err != nil {
		b.Fatal(err)
	}
	if keys, kex := keysIn(b, msgs[0]); keys != 1 || kex != 1 {
		b.Fatalf("python's first message has %d keys, %d key exchanges; want 1, 1", keys, kex)
	}
	x.hS.sync(d.jid)
	runtime.GC() // see gcBeforeHush
	t0 := time.Now()
	e, rep, err := x.hS.m.Encrypt(x.env, d.jid)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := xml.Marshal(e); err != nil {
		b.Fatal(err)
	}
	hEnc = time.Since(t0)
	if len(rep.Devices) != 1 || !rep.Devices[0].NewSession || !rep.Devices[0].KEX {
		b.Fatalf("hush report %+v, want one new session", rep.Devices)
	}
	return hEnc, pEnc
}
