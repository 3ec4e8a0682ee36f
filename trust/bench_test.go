package trust_test

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/xml"
	"strings"
	"testing"

	"hush.im/omemo"
	"hush.im/trust"
)

// BenchmarkVerification is one whole SAS run, both sides, without XML.
func BenchmarkVerification(b *testing.B) {
	aKeys, bKeys := [][]byte{key(1), key(2)}, [][]byte{key(3)}
	for b.Loop() {
		va, commit, _ := trust.Start(alice, bob, aKeys)
		vb, accept, _ := trust.Respond(bob, alice, bKeys, commit)
		reveal, _ := va.Receive(accept)
		if _, err := vb.Receive(reveal); err != nil {
			b.Fatal(err)
		}
		if _, err := va.SAS(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFloorSASPrimitives is the bare cryptography of a run: three
// random values, two SHA-256 commitments (made and checked) and two
// HKDF-SHA-256 derivations (one per side).
func BenchmarkFloorSASPrimitives(b *testing.B) {
	buf := make([]byte, 3*32+16)
	input := make([]byte, 300)
	for b.Loop() {
		rand.Read(buf)
		sha256.Sum256(input)
		sha256.Sum256(input)
		hkdf.Key(sha256.New, buf[:64], buf[64:80], string(input), 4)
		hkdf.Key(sha256.New, buf[:64], buf[64:80], string(input), 4)
	}
}

func BenchmarkParseCommit(b *testing.B) {
	s := sasTable[0].xml
	for b.Loop() {
		if _, err := parseMessage(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseTrustMessage(b *testing.B) {
	s := tmTable[1].xml
	for b.Loop() {
		var tm trust.TrustMessage
		if err := xml.Unmarshal([]byte(s), &tm); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFloorXMLDecode is encoding/xml reading the same trust message
// into tokens, with no checks.
func BenchmarkFloorXMLDecode(b *testing.B) {
	s := tmTable[1].xml
	for b.Loop() {
		d := xml.NewDecoder(strings.NewReader(s))
		for {
			if _, err := d.Token(); err != nil {
				break
			}
		}
	}
}

func BenchmarkBTBVAllow(b *testing.B) {
	ix := trust.NewIndex()
	devs := make([]omemo.DeviceInfo, 8)
	for i := range devs {
		devs[i] = omemo.DeviceInfo{Address: omemo.Address{JID: bob, Device: uint32(i + 1)}, IdentityKey: key(byte(i))}
	}
	ix.Observe(bob, devs)
	p := trust.BTBV{Levels: ix}
	d := omemo.DeviceInfo{Address: omemo.Address{JID: bob, Device: 99}, IdentityKey: key(99)}
	for b.Loop() {
		if !p.Allow(d) {
			b.Fatal("refused")
		}
	}
}
