//go:build interop

package x3dh

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os/exec"
	"testing"
)

// python is the Debian interpreter with python3-x3dh, -twomemo and -oldmemo.
const python = "/usr/bin/python3"

// interopRounds is the number of key agreements per profile and direction.
const interopRounds = 10

func runPython(t *testing.T, req any, resp any) {
	t.Helper()
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "testdata/interop.py")
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python-x3dh peer failed (python3-x3dh/-twomemo/-oldmemo installed for %s?): %v\n%s", python, err, stderr.Bytes())
	}
	if err := json.Unmarshal(out, resp); err != nil {
		t.Fatalf("python answer: %v\n%s", err, out)
	}
}

type wireBundle struct {
	State json.RawMessage `json:"state,omitempty"`
	IK    string          `json:"ik"`
	SPK   string          `json:"spk"`
	SPKS  string          `json:"spks"`
	PK    string          `json:"pk"`
}

// TestInteropGoInitiates: python publishes bundles, Go initiates, python
// completes passively; both must derive the same SK and AD.
func TestInteropGoInitiates(t *testing.T) {
	for name, p := range profiles {
		var bundles []wireBundle
		runPython(t, map[string]any{"mode": "bundles", "profile": name, "n": interopRounds}, &bundles)
		if len(bundles) != interopRounds {
			t.Fatalf("%s: python sent %d bundles", name, len(bundles))
		}
		type round struct {
			State     json.RawMessage `json:"state"`
			AliceIKEd string          `json:"alice_ik_ed"`
			EK        string          `json:"ek"`
			SPK       string          `json:"spk"`
			PK        string          `json:"pk"`
		}
		var rounds []round
		var ours []*Initiated
		for i, wb := range bundles {
			alice := newParty(t, byte(i%2)).ik
			got, err := p.Initiate(alice, &Bundle{
				IdentityKey:           unhex(t, wb.IK),
				SignedPreKey:          unhex(t, wb.SPK),
				SignedPreKeySignature: unhex(t, wb.SPKS),
				PreKey:                unhex(t, wb.PK),
			})
			if err != nil {
				t.Fatalf("%s bundle %d: Initiate: %v", name, i, err)
			}
			ours = append(ours, got)
			rounds = append(rounds, round{wb.State, hex.EncodeToString(alice.Ed25519Public()), hex.EncodeToString(got.Ephemeral), wb.SPK, wb.PK})
		}
		var theirs []struct {
			SharedSecret string `json:"shared_secret"`
			AD           string `json:"ad"`
		}
		runPython(t, map[string]any{"mode": "passive", "profile": name, "rounds": rounds}, &theirs)
		if len(theirs) != len(ours) {
			t.Fatalf("%s: python answered %d rounds", name, len(theirs))
		}
		for i := range ours {
			if hex.EncodeToString(ours[i].SharedSecret) != theirs[i].SharedSecret || hex.EncodeToString(ours[i].AssociatedData) != theirs[i].AD {
				t.Errorf("%s round %d: Go SK %x AD %x, python SK %s AD %s", name, i,
					ours[i].SharedSecret, ours[i].AssociatedData, theirs[i].SharedSecret, theirs[i].AD)
			}
		}
	}
}

// TestInteropPythonInitiates: Go publishes bundles (signed by SignPreKey,
// identity keys of both sign bits), python initiates, Go responds.
func TestInteropPythonInitiates(t *testing.T) {
	for name, p := range profiles {
		var bobs []*party
		var bundles []wireBundle
		for i := range interopRounds {
			bob := newParty(t, byte(i%2))
			b := bob.bundle(t, p)
			bobs = append(bobs, bob)
			bundles = append(bundles, wireBundle{
				IK: hex.EncodeToString(b.IdentityKey), SPK: hex.EncodeToString(b.SignedPreKey),
				SPKS: hex.EncodeToString(b.SignedPreKeySignature), PK: hex.EncodeToString(b.PreKey),
			})
		}
		var theirs []struct {
			AliceIK      string `json:"alice_ik"`
			EK           string `json:"ek"`
			PK           string `json:"pk"`
			SharedSecret string `json:"shared_secret"`
			AD           string `json:"ad"`
		}
		runPython(t, map[string]any{"mode": "active", "profile": name, "bundles": bundles}, &theirs)
		if len(theirs) != interopRounds {
			t.Fatalf("%s: python answered %d rounds", name, len(theirs))
		}
		for i, r := range theirs {
			bob := bobs[i]
			if r.PK != bundles[i].PK {
				t.Errorf("%s round %d: python used prekey %s, not %s", name, i, r.PK, bundles[i].PK)
				continue
			}
			sk, ad, err := p.Respond(bob.ik, bob.spk, bob.opk, unhex(t, r.AliceIK), unhex(t, r.EK))
			if err != nil {
				t.Errorf("%s round %d: Respond: %v", name, i, err)
				continue
			}
			if hex.EncodeToString(sk) != r.SharedSecret || hex.EncodeToString(ad) != r.AD {
				t.Errorf("%s round %d (bob sign bit %d): Go SK %x AD %x, python SK %s AD %s", name, i,
					bob.ik.Ed25519Public()[31]>>7, sk, ad, r.SharedSecret, r.AD)
			}
		}
	}
}
