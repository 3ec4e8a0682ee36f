package ox

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"reflect"
	"strings"
	"testing"

	"hush.im/sce"
)

var vectorMessages = []string{
	"sendxmpp-signcrypt.xml", "rsa-signcrypt.xml", "not-for-alice.xml", "sign.xml",
	"sign-encrypted.xml", "crypt.xml", "signcrypt-no-to.xml",
}

// vectorMessage returns the binary OpenPGP message of a vector stanza.
func vectorMessage(t testing.TB, name string) []byte {
	s := string(readTestdata(t, name))
	i, j := strings.Index(s, "<openpgp"), strings.Index(s, "</openpgp>")
	b, err := base64.StdEncoding.DecodeString(s[strings.Index(s[i:], ">")+i+1 : j])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzParseKeys(f *testing.F) {
	for _, name := range []string{"alice.sec", "bob.pub", "rob.pub", "carol.pub", "gone.pub", "old.sec", "sub.pub"} {
		b := readTestdata(f, name)
		f.Add(b)
		keys, err := ParseKeys(b)
		if err != nil {
			f.Fatal(err)
		}
		bin, _ := keys[0].MarshalPublic()
		f.Add(bin)
	}
	f.Add(v3PublicKey())
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseKeys(data)
		if err != nil {
			if keys != nil {
				t.Fatal("keys and an error")
			}
			return
		}
		for _, k := range keys {
			b, err := k.MarshalPublic()
			if err != nil {
				t.Fatal(err)
			}
			again, err := ParseKeys(b)
			if err != nil || len(again) != 1 || again[0].Fingerprint() != k.Fingerprint() {
				t.Fatalf("re-export does not parse: %v", err)
			}
			k.Check()
			k.JIDs()
		}
	})
}

// FuzzElements checks that every PEP and <openpgp/> payload that decodes
// encodes to something that decodes to the same value.
func FuzzElements(f *testing.F) {
	for _, tc := range encodingTests {
		f.Add(tc.xml)
	}
	f.Add(string(readTestdata(f, "bob-pubkey.xml")))
	f.Add(string(readTestdata(f, "gpg-backup.xml")))
	f.Add(manyMetadata(3))
	f.Fuzz(func(t *testing.T, s string) {
		for _, v := range []any{&OpenPGP{}, &PublicKeysList{}, &Pubkey{}, &SecretKey{}} {
			if err := xml.Unmarshal([]byte(s), v); err != nil {
				continue
			}
			b, err := xml.Marshal(v)
			if err != nil {
				t.Fatalf("%T decoded but does not encode: %v", v, err)
			}
			w := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if err := xml.Unmarshal(b, w); err != nil {
				t.Fatalf("%T: re-decode: %v\n%s", v, err, b)
			}
			if !reflect.DeepEqual(v, w) {
				t.Fatalf("%T: round trip changed the value", v)
			}
		}
	})
}

func FuzzDecryptContent(f *testing.F) {
	alice := vectorKey(f, "alice.sec")
	senders := []*Key{vectorKey(f, "bob.pub"), vectorKey(f, "rob.pub")}
	for _, name := range vectorMessages {
		f.Add(vectorMessage(f, name))
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, msg []byte) {
		c, err := DecryptContent(msg, []*Key{alice}, senders, vectorNow)
		if err != nil {
			if c != nil || !errors.Is(err, ErrRejected) {
				t.Fatalf("content %v with error %v", c, err)
			}
			return
		}
		if c.Envelope == nil || (c.Signer != nil) != c.Signed {
			t.Fatal("inconsistent content")
		}
	})
}

func FuzzOpen(f *testing.F) {
	alice := vectorKey(f, "alice.sec")
	senders := []*Key{vectorKey(f, "bob.pub"), vectorKey(f, "rob.pub")}
	for _, name := range vectorMessages {
		st := vectorStanza(f, name, "bob@example.org/laptop")
		f.Add(marshalStanza(f, st))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := sce.ParseStanza(b)
		if err != nil {
			return
		}
		before := marshalStanza(t, st)
		o, err := Open(st, OpenOptions{Keys: []*Key{alice}, SenderKeys: senders, Now: fixedClock(vectorNow)})
		if !bytes.Equal(before, marshalStanza(t, st)) {
			t.Fatal("Open changed its input")
		}
		if err != nil {
			if o != nil || !errors.Is(err, ErrRejected) {
				t.Fatalf("result %v with error %v", o, err)
			}
			return
		}
		if o.Signer == nil || o.Stanza == nil {
			t.Fatal("accepted without a signer")
		}
	})
}

func FuzzRestore(f *testing.F) {
	var backup SecretKey
	if err := xml.Unmarshal(readTestdata(f, "gpg-backup.xml"), &backup); err != nil {
		f.Fatal(err)
	}
	code := strings.TrimSpace(string(readTestdata(f, "gpg-backup.code")))
	f.Add(backup.Message, code)
	f.Add(backup.Message, "TWNK-KD5Y-MT3T-E1GS-DRDB-KVTX")
	f.Fuzz(func(t *testing.T, msg []byte, code string) {
		keys, err := Restore(SecretKey{Message: msg}, code)
		if err != nil && keys != nil {
			t.Fatal("keys and an error")
		}
		for _, k := range keys {
			if !k.IsSecret() {
				t.Fatal("restored a public key")
			}
		}
	})
}
