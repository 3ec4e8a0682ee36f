package trust

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"

	"mellium.im/xmpp/jid"
)

// TestSASVectors checks the commitment and the string against
// testdata/sas_vectors.json, written by an independent Python
// implementation (testdata/gen_sas.py).
func TestSASVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/sas_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []struct {
		JIDA       string   `json:"jid_a"`
		JIDB       string   `json:"jid_b"`
		SID        string   `json:"sid"`
		KeysA      []string `json:"keys_a"`
		KeysB      []string `json:"keys_b"`
		NonceA     string   `json:"nonce_a"`
		NonceB     string   `json:"nonce_b"`
		Commitment string   `json:"commitment"`
		SAS        string   `json:"sas"`
	}
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	unhex := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	keys := func(ss []string) [][]byte {
		var out [][]byte
		for _, s := range ss {
			out = append(out, unhex(s))
		}
		k, err := keySet(out)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	for i, v := range vs {
		a, b := jid.MustParse(v.JIDA), jid.MustParse(v.JIDB)
		sid, na, nb := unhex(v.SID), unhex(v.NonceA), unhex(v.NonceB)
		ka, kb := keys(v.KeysA), keys(v.KeysB)
		c := commit(sid, a, b, ka, na)
		if hex.EncodeToString(c) != v.Commitment {
			t.Errorf("vector %d: commitment %x, want %s", i, c, v.Commitment)
		}
		if got, err := computeSAS(sid, a, b, ka, kb, c, na, nb); err != nil || got != v.SAS {
			t.Errorf("vector %d: SAS %s, %v, want %s", i, got, err, v.SAS)
		}
	}
}

func TestEncodeSAS(t *testing.T) {
	for _, tc := range []struct {
		x    uint32
		want string
	}{
		{0, "000000"},
		{1<<SASBits - 1, "ZZZZZZ"},
		{1, "000001"},
		{31 << 25, "Z00000"},
		{0x2a5a5a5a & (1<<SASBits - 1), "N5MPJT"},
	} {
		if got := encodeSAS(tc.x); got != tc.want {
			t.Errorf("encodeSAS(%#x) = %s, want %s", tc.x, got, tc.want)
		}
	}
}
