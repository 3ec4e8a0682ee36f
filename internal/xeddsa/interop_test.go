//go:build interop

package xeddsa

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os/exec"
	"testing"
)

// python is the Debian interpreter that has python3-xeddsa installed.
const python = "/usr/bin/python3"

// interopKeys is the number of fresh keys each side contributes.
const interopKeys = 50

// TestInteropPythonXEdDSA runs python-xeddsa live: Go signs and python
// verifies, python signs and Go verifies, and both convert the same keys.
func TestInteropPythonXEdDSA(t *testing.T) {
	type goEntry struct {
		Scalar  string `json:"scalar"`
		Ed      string `json:"ed"`
		Curve   string `json:"curve"`
		Msg     string `json:"msg"`
		XEdDSA  string `json:"xeddsa"`
		Ed25519 string `json:"ed25519"`
		Legacy  string `json:"legacy"`
	}
	var entries []goEntry
	for i := range interopKeys {
		var k *PrivateKey
		var err error
		if i%2 == 0 {
			k, err = GenerateKey()
		} else {
			// Arbitrary scalars reach sign bit 1 too.
			seed := make([]byte, 32)
			rand.Read(seed)
			k, err = NewPrivateKey(seed)
		}
		if err != nil {
			t.Fatal(err)
		}
		msg := make([]byte, i*3)
		rand.Read(msg)
		x, err1 := k.Sign(msg)
		e, err2 := k.SignEd25519(msg)
		l, err3 := k.SignLegacy(msg)
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatal(err1, err2, err3)
		}
		entries = append(entries, goEntry{
			Scalar: hex.EncodeToString(k.Bytes()), Ed: hex.EncodeToString(k.Ed25519Public()),
			Curve: hex.EncodeToString(k.Curve25519Public()), Msg: hex.EncodeToString(msg),
			XEdDSA: hex.EncodeToString(x), Ed25519: hex.EncodeToString(e), Legacy: hex.EncodeToString(l),
		})
	}
	req, err := json.Marshal(map[string]any{"n": interopKeys, "go": entries})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "testdata/interop.py")
	cmd.Stdin = bytes.NewReader(req)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python-xeddsa peer failed (is python3-xeddsa installed for %s?): %v\n%s", python, err, stderr.Bytes())
	}
	var resp struct {
		Verdicts []map[string]bool `json:"verdicts"`
		Keys     []struct {
			Seed       string `json:"seed"`
			Scalar     string `json:"scalar"`
			Ed         string `json:"ed"`
			Curve      string `json:"curve"`
			EdToCurve  string `json:"ed_to_curve"`
			CurveToEd0 string `json:"curve_to_ed0"`
			CurveToEd1 string `json:"curve_to_ed1"`
			Msg        string `json:"msg"`
			XEdDSA     string `json:"xeddsa"`
			Ed25519    string `json:"ed25519"`
			Legacy     string `json:"legacy"`
			SeedSig    string `json:"seed_sig"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("python answer: %v\n%s", err, out)
	}
	if len(resp.Verdicts) != interopKeys || len(resp.Keys) != interopKeys {
		t.Fatalf("python answered %d verdicts and %d keys, want %d each", len(resp.Verdicts), len(resp.Keys), interopKeys)
	}
	for i, v := range resp.Verdicts {
		for _, check := range []string{"ed_pub", "curve_pub", "ed_to_curve", "curve_to_ed", "xeddsa", "ed25519", "legacy"} {
			if ok, present := v[check]; !ok || !present {
				t.Errorf("Go key %d: python %s check failed", i, check)
			}
		}
	}
	for i, p := range resp.Keys {
		k, err := PrivateKeyFromEd25519Seed(unhex(t, p.Seed))
		if err != nil {
			t.Fatal(err)
		}
		curve, ed, msg := k.Curve25519Public(), k.Ed25519Public(), unhex(t, p.Msg)
		if hex.EncodeToString(k.Bytes()) != p.Scalar || hex.EncodeToString(ed) != p.Ed || hex.EncodeToString(curve) != p.Curve {
			t.Errorf("python key %d: Go derives %x %x %x from the seed", i, k.Bytes(), ed, curve)
			continue
		}
		u, err := Ed25519PublicToCurve25519(ed)
		if err != nil || hex.EncodeToString(u) != p.EdToCurve {
			t.Errorf("python key %d: Ed25519PublicToCurve25519 = %x, %v; python %s", i, u, err, p.EdToCurve)
		}
		for bit, want := range []string{p.CurveToEd0, p.CurveToEd1} {
			got, err := Curve25519PublicToEd25519(curve, byte(bit))
			if err != nil || hex.EncodeToString(got) != want {
				t.Errorf("python key %d: Curve25519PublicToEd25519(sign %d) = %x, %v; python %s", i, bit, got, err, want)
			}
		}
		if !Verify(curve, msg, unhex(t, p.XEdDSA)) {
			t.Errorf("python key %d: Verify rejects python's XEdDSA signature", i)
		}
		if !VerifyEd25519(ed, msg, unhex(t, p.Ed25519)) || !VerifyEd25519(ed, msg, unhex(t, p.SeedSig)) {
			t.Errorf("python key %d: VerifyEd25519 rejects a python signature", i)
		}
		if !VerifyLegacy(curve, msg, unhex(t, p.Legacy)) {
			t.Errorf("python key %d: VerifyLegacy rejects python-oldmemo's signature", i)
		}
	}
}
