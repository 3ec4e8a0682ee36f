package ratchet

import (
	"bytes"
	"crypto/ecdh"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"
)

// conversation mirrors testdata/{omemo2,legacy}.json, written by
// testdata/gen_vectors.py from python-doubleratchet with python-twomemo's and
// python-oldmemo's parameters.
type conversation struct {
	Profile          string
	SharedSecret     string   `json:"shared_secret"`
	AssociatedData   string   `json:"associated_data"`
	BobSignedPreKey  string   `json:"bob_signed_prekey"`
	AliceRatchetKeys []string `json:"alice_ratchet_keys"`
	BobRatchetKeys   []string `json:"bob_ratchet_keys"`
	Events           []struct {
		Op, Party, ID        string
		From                 string
		Plaintext            *string
		Message              string
		Error                *string
		SendingChainLength   int `json:"sending_chain_length"`
		ReceivingChainLength int `json:"receiving_chain_length"`
	}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadConversation(t testing.TB, name string) *conversation {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var c conversation
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Events) == 0 {
		t.Fatalf("%s has no events", name)
	}
	return &c
}

// keySequence returns a key source that hands out the given X25519 private
// keys in order, and a function reporting how many are left.
func keySequence(t testing.TB, keys []string) (func() (*ecdh.PrivateKey, error), func() int) {
	i := 0
	return func() (*ecdh.PrivateKey, error) {
			if i == len(keys) {
				return nil, errors.New("test key sequence exhausted")
			}
			i++
			return ecdh.X25519().NewPrivateKey(mustHex(t, keys[i-1]))
		}, func() int {
			return len(keys) - i
		}
}

func profileByName(t testing.TB, name string) *Profile {
	switch name {
	case "OMEMO2":
		return OMEMO2
	case "Legacy":
		return Legacy
	}
	t.Fatalf("unknown profile %q", name)
	return nil
}

func mustMarshal(t testing.TB, s *Session) []byte {
	t.Helper()
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVectors replays python's conversations: Go must produce every wire
// message byte for byte, decrypt what python decrypted, refuse what python
// refused without changing state, and agree on the chain lengths.
func TestVectors(t *testing.T) {
	for _, file := range []string{"omemo2.json", "legacy.json"} {
		t.Run(file, func(t *testing.T) {
			c := loadConversation(t, file)
			p := profileByName(t, c.Profile)
			ss, ad := mustHex(t, c.SharedSecret), mustHex(t, c.AssociatedData)
			spk, err := ecdh.X25519().NewPrivateKey(mustHex(t, c.BobSignedPreKey))
			if err != nil {
				t.Fatal(err)
			}
			aliceKeys, aliceLeft := keySequence(t, c.AliceRatchetKeys)
			bobKeys, bobLeft := keySequence(t, c.BobRatchetKeys)
			sessions := map[string]*Session{}
			messages := map[string][]byte{}

			for i, e := range c.Events {
				where := fmt.Sprintf("event %d (%s %s %s)", i, e.Party, e.Op, e.ID)
				s := sessions[e.Party]
				switch e.Op {
				case "tamper":
					messages[e.ID] = mustHex(t, e.Message)
					continue
				case "encrypt":
					if s == nil {
						if e.Party != "alice" {
							t.Fatalf("%s: only alice starts", where)
						}
						if s, err = newInitiator(p, ss, ad, spk.PublicKey().Bytes(), aliceKeys); err != nil {
							t.Fatalf("%s: %v", where, err)
						}
						sessions["alice"] = s
					}
					got, err := s.Encrypt(mustHex(t, *e.Plaintext))
					if err != nil {
						t.Fatalf("%s: %v", where, err)
					}
					want := mustHex(t, e.Message)
					if !bytes.Equal(got, want) {
						t.Fatalf("%s: wire message differs from python's\n got %x\nwant %x", where, got, want)
					}
					messages[e.ID] = got
				case "decrypt":
					if s == nil {
						if s, err = NewResponder(p, ss, ad, spk); err != nil {
							t.Fatalf("%s: %v", where, err)
						}
						s.newKey = bobKeys
						sessions["bob"] = s
					}
					before := mustMarshal(t, s)
					pt, err := s.Decrypt(messages[e.ID])
					if e.Error != nil {
						if err == nil {
							t.Fatalf("%s: decrypted, python failed with %s", where, *e.Error)
						}
						if !errors.Is(err, ErrAuthentication) {
							t.Errorf("%s: error %v is not ErrAuthentication", where, err)
						}
						if *e.Error == "DuplicateMessageException" && !errors.Is(err, ErrDuplicate) {
							t.Errorf("%s: error %v, want ErrDuplicate", where, err)
						}
						if after := mustMarshal(t, s); !bytes.Equal(before, after) {
							t.Fatalf("%s: failed Decrypt changed the session", where)
						}
						continue
					}
					if err != nil {
						t.Fatalf("%s: %v", where, err)
					}
					if want := mustHex(t, *e.Plaintext); !bytes.Equal(pt, want) {
						t.Fatalf("%s: plaintext %x, want %x", where, pt, want)
					}
				default:
					t.Fatalf("%s: unknown op", where)
				}
				if got, want := s.SendingChainLength(), e.SendingChainLength; got != want {
					t.Errorf("%s: sending chain length %d, python %d", where, got, want)
				}
				if got, want := s.ReceivingChainLength(), e.ReceivingChainLength; got != want {
					t.Errorf("%s: receiving chain length %d, python %d", where, got, want)
				}
			}
			if aliceLeft() != 0 || bobLeft() != 0 {
				t.Errorf("ratchet keys left unused: alice %d, bob %d", aliceLeft(), bobLeft())
			}
			if n := sessions["bob"].ReceivedSinceLastSend(); n != 0 {
				t.Errorf("bob's ReceivedSinceLastSend after his heartbeat = %d", n)
			}
		})
	}
}
