//go:build interop

package ratchet

import (
	"bufio"
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"testing"
)

// pythonPath is Debian's python, which has python-twomemo and
// python-oldmemo installed (a pyenv python on PATH may not).
const pythonPath = "/usr/bin/python3"

// pySide is a live python-doubleratchet session driven over JSON lines
// (testdata/interop.py).
type pySide struct {
	t   *testing.T
	in  io.WriteCloser
	out *bufio.Scanner
	cmd *exec.Cmd
}

func startPython(t *testing.T) *pySide {
	t.Helper()
	if _, err := os.Stat(pythonPath); err != nil {
		t.Fatalf("interop needs %s with python3-twomemo and python3-oldmemo: %v", pythonPath, err)
	}
	cmd := exec.Command(pythonPath, "testdata/interop.py")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(nil, 1<<20)
	py := &pySide{t, in, sc, cmd}
	t.Cleanup(func() {
		in.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("python side: %v", err)
		}
	})
	return py
}

func (py *pySide) call(req map[string]string) map[string]string {
	py.t.Helper()
	b, _ := json.Marshal(req)
	if _, err := py.in.Write(append(b, '\n')); err != nil {
		py.t.Fatal(err)
	}
	if !py.out.Scan() {
		py.t.Fatalf("python side died: %v", py.out.Err())
	}
	var resp map[string]string
	if err := json.Unmarshal(py.out.Bytes(), &resp); err != nil {
		py.t.Fatalf("python answered %q: %v", py.out.Bytes(), err)
	}
	return resp
}

func (py *pySide) hex(resp map[string]string, key string) []byte {
	py.t.Helper()
	if e, ok := resp["error"]; ok {
		py.t.Fatalf("python: %s", e)
	}
	b, err := hex.DecodeString(resp[key])
	if err != nil {
		py.t.Fatal(err)
	}
	return b
}

type inFlight struct {
	msg, pt []byte
}

// TestInteropPython runs random conversations between Go and python in both
// roles and both profiles: random plaintexts, shuffled delivery, dropped
// messages, ratchet turns at random.
func TestInteropPython(t *testing.T) {
	for _, p := range allProfiles {
		for _, goInitiates := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/go initiator %v", p, goInitiates), func(t *testing.T) {
				py := startPython(t)
				ss, ad := randBytes(t, KeySize), randBytes(t, p.adSize)
				spk, err := ecdh.X25519().GenerateKey(rand.Reader)
				if err != nil {
					t.Fatal(err)
				}
				rng := mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64()))
				randPT := func() []byte { return randBytes(t, rng.IntN(100)) }
				init := map[string]string{"op": "init", "profile": map[*Profile]string{OMEMO2: "OMEMO2", Legacy: "Legacy"}[p],
					"shared_secret": hex.EncodeToString(ss), "ad": hex.EncodeToString(ad)}

				var goSide *Session
				var toGo, toPy []inFlight
				goReady, pyReady := true, true // may encrypt
				first := randPT()
				if goInitiates {
					if goSide, err = NewInitiator(p, ss, ad, spk.PublicKey().Bytes()); err != nil {
						t.Fatal(err)
					}
					init["role"], init["spk"] = "responder", hex.EncodeToString(spk.Bytes())
					py.call(init)
					pyReady = false
					msg, err := goSide.Encrypt(first)
					if err != nil {
						t.Fatal(err)
					}
					toPy = append(toPy, inFlight{msg, first})
				} else {
					if goSide, err = NewResponder(p, ss, ad, spk); err != nil {
						t.Fatal(err)
					}
					init["role"], init["spk"] = "initiator", hex.EncodeToString(spk.PublicKey().Bytes())
					init["plaintext"] = hex.EncodeToString(first)
					toGo = append(toGo, inFlight{py.hex(py.call(init), "message"), first})
					goReady = false
				}

				take := func(q *[]inFlight) inFlight {
					i := rng.IntN(len(*q))
					m := (*q)[i]
					*q = append((*q)[:i], (*q)[i+1:]...)
					return m
				}
				deliverToGo := func(m inFlight) {
					pt, err := goSide.Decrypt(m.msg)
					if err != nil {
						t.Fatalf("Go could not decrypt python's message: %v", err)
					}
					if !bytes.Equal(pt, m.pt) {
						t.Fatalf("Go decrypted %x, python sent %x", pt, m.pt)
					}
					goReady = true
				}
				deliverToPy := func(m inFlight) {
					pt := py.hex(py.call(map[string]string{"op": "decrypt", "message": hex.EncodeToString(m.msg)}), "plaintext")
					if !bytes.Equal(pt, m.pt) {
						t.Fatalf("python decrypted %x, Go sent %x", pt, m.pt)
					}
					pyReady = true
				}

				for step := 0; step < 300; step++ {
					switch r := rng.IntN(10); {
					case r < 3 && goReady:
						pt := randPT()
						msg, err := goSide.Encrypt(pt)
						if err != nil {
							t.Fatal(err)
						}
						toPy = append(toPy, inFlight{msg, pt})
					case r < 6 && pyReady:
						pt := randPT()
						msg := py.hex(py.call(map[string]string{"op": "encrypt", "plaintext": hex.EncodeToString(pt)}), "message")
						toGo = append(toGo, inFlight{msg, pt})
					case r < 8 && len(toGo) > 0:
						m := take(&toGo)
						if rng.IntN(8) == 0 && goReady {
							continue // dropped
						}
						deliverToGo(m)
					case r < 10 && len(toPy) > 0:
						m := take(&toPy)
						if rng.IntN(8) == 0 && pyReady {
							continue // dropped
						}
						deliverToPy(m)
					}
				}
				for len(toGo) > 0 {
					deliverToGo(take(&toGo))
				}
				for len(toPy) > 0 {
					deliverToPy(take(&toPy))
				}
			})
		}
	}
}
