package legacy

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"strconv"
	"testing"
)

// vectors is testdata/vectors.json, written by testdata/gen_vectors.py
// with python-oldmemo.
type vectors struct {
	GCM []struct {
		Key, IV, Body, Payload, Tag hexBytes
	} `json:"gcm"`
	DeviceList struct {
		IDs []uint32 `json:"ids"`
		XML string   `json:"xml"`
	} `json:"device_list"`
	Bob struct {
		Identity        hexBytes            `json:"identity"`
		IdentityEd25519 hexBytes            `json:"identity_ed25519"`
		SignedPreKeyID  uint32              `json:"signed_prekey_id"`
		SignedPreKey    hexBytes            `json:"signed_prekey"`
		PreKeys         map[string]hexBytes `json:"prekeys"`
		DeviceID        uint32              `json:"device_id"`
		BundleXML       string              `json:"bundle_xml"`
	} `json:"bob"`
	Alice struct {
		IdentityCurve25519 hexBytes `json:"identity_curve25519"`
		DeviceID           uint32   `json:"device_id"`
	} `json:"alice"`
	Messages []struct {
		Kind     string   `json:"kind"`
		Body     hexBytes `json:"body"`
		Material hexBytes `json:"material"`
		XML      string   `json:"xml"`
	} `json:"messages"`
}

type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*h = nil
		return nil
	}
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = v
	return nil
}

func loadVectors(t testing.TB) *vectors {
	t.Helper()
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.GCM) == 0 || len(v.Messages) == 0 {
		t.Fatal("empty vectors")
	}
	return &v
}
