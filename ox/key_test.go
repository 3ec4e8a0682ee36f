package ox

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"mellium.im/xmpp/jid"
)

func TestGenerateKey(t *testing.T) {
	algs := []Algorithm{Curve25519, RSA3072}
	if testing.Short() {
		algs = algs[:1]
	}
	for _, alg := range algs {
		t.Run(alg.String(), func(t *testing.T) {
			k, err := GenerateKey(mustJID("Juliet@Example.org/balcony"), alg)
			if err != nil {
				t.Fatal(err)
			}
			if got := k.UserIDs(); !slices.Equal(got, []string{"xmpp:juliet@example.org"}) {
				t.Errorf("user ids %q", got)
			}
			if !k.IsSecret() || k.Locked() {
				t.Errorf("secret %t locked %t", k.IsSecret(), k.Locked())
			}
			if err := k.Check(); err != nil {
				t.Errorf("Check: %v", err)
			}
			if k.e.PrimaryKey.Version != 4 {
				t.Errorf("key version %d", k.e.PrimaryKey.Version)
			}
			wantAlgo := map[Algorithm][2]packet.PublicKeyAlgorithm{
				Curve25519: {packet.PubKeyAlgoEdDSA, packet.PubKeyAlgoECDH},
				RSA3072:    {packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSA},
			}[alg]
			if k.e.PrimaryKey.PubKeyAlgo != wantAlgo[0] || len(k.e.Subkeys) != 1 || k.e.Subkeys[0].PublicKey.PubKeyAlgo != wantAlgo[1] {
				t.Errorf("algorithms: primary %v, %d subkeys", k.e.PrimaryKey.PubKeyAlgo, len(k.e.Subkeys))
			}
			if alg == RSA3072 {
				if bits, _ := k.e.PrimaryKey.BitLength(); bits != 3072 {
					t.Errorf("RSA key of %d bits", bits)
				}
			}
			// Secret and public forms parse back to the same key.
			for name, marshal := range map[string]func() ([]byte, error){
				"MarshalSecret": k.MarshalSecret, "ArmorSecret": k.ArmorSecret,
				"MarshalPublic": k.MarshalPublic, "ArmorPublic": k.ArmorPublic,
			} {
				b, err := marshal()
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				keys, err := ParseKeys(b)
				if err != nil {
					t.Fatalf("%s: ParseKeys: %v", name, err)
				}
				if len(keys) != 1 || keys[0].Fingerprint() != k.Fingerprint() {
					t.Fatalf("%s: got %d keys", name, len(keys))
				}
				if secret := strings.Contains(name, "Secret"); keys[0].IsSecret() != secret {
					t.Errorf("%s: IsSecret %t", name, keys[0].IsSecret())
				}
				// Serialization is deterministic: re-encoding gives the same bytes.
				again, err := marshal()
				if err != nil || (!strings.HasPrefix(name, "Armor") && !bytes.Equal(again, b)) {
					t.Errorf("%s: not deterministic", name)
				}
			}
			pub := k.Public()
			if pub.IsSecret() || pub.Fingerprint() != k.Fingerprint() || !k.IsSecret() {
				t.Error("Public changed the key or kept secret material")
			}
			if _, err := pub.MarshalSecret(); !errors.Is(err, ErrNotSecret) {
				t.Errorf("MarshalSecret of a public key: %v", err)
			}
		})
	}
	if _, err := GenerateKey(jid.JID{}, Curve25519); err == nil {
		t.Error("GenerateKey with an empty JID succeeded")
	}
	if _, err := GenerateKey(mustJID("a@b"), Algorithm(9)); err == nil {
		t.Error("GenerateKey with an unknown algorithm succeeded")
	}
}

// TestGnuPGKeys reads the keys testdata/gen.sh made with GnuPG 2.2.
func TestGnuPGKeys(t *testing.T) {
	for _, tc := range []struct {
		file   string
		secret bool
		jids   []string
		check  error // Check at the current time
	}{
		{"alice.sec", true, []string{"alice@example.org"}, nil},
		{"alice.pub", false, []string{"alice@example.org"}, nil},
		{"bob.sec", true, []string{"bob@example.org"}, nil},
		{"rob.sec", true, []string{"rob@example.org"}, nil},
		{"rob.pub", false, []string{"rob@example.org"}, nil},
		{"old.pub", false, []string{"old@example.org"}, ErrKeyExpired},
		{"gone.pub", false, []string{"gone@example.org"}, ErrKeyRevoked},
		{"sub.pub", false, []string{"sub@example.org"}, ErrNoEncryptionKey},
		{"carol.pub", false, []string{"carol@example.org"}, nil},
	} {
		t.Run(tc.file, func(t *testing.T) {
			k := vectorKey(t, tc.file)
			if k.IsSecret() != tc.secret || k.Locked() {
				t.Errorf("secret %t locked %t", k.IsSecret(), k.Locked())
			}
			var got []string
			for _, j := range k.jidsAt(time.Now()) {
				got = append(got, j.String())
			}
			if !slices.Equal(got, tc.jids) && !(len(got) == 0 && len(tc.jids) == 0) {
				t.Errorf("JIDs %q, want %q", got, tc.jids)
			}
			if err := k.Check(); !errors.Is(err, tc.check) || (tc.check == nil) != (err == nil) {
				t.Errorf("Check: %v, want %v", err, tc.check)
			}
			var ke *KeyError
			if err := k.Check(); err != nil && (!errors.As(err, &ke) || ke.Fingerprint != k.Fingerprint()) {
				t.Errorf("Check error %v is not a *KeyError for the key", err)
			}
		})
	}
	// The revoked User ID of carol's key does not bind it to mallory.
	carol := vectorKey(t, "carol.pub")
	if carol.HasJID(mustJID("mallory@example.org")) || !carol.HasJID(mustJID("carol@example.org/tablet")) {
		t.Error("HasJID ignores the User ID revocation")
	}
	if got := carol.UserIDs(); len(got) != 2 {
		t.Errorf("carol has %d self-signed user ids, want 2 (one revoked)", len(got))
	}
	// Minimal re-export keeps what makes the key usable, and gpg's bob.fpr.
	bob := vectorKey(t, "bob.pub")
	if bob.Fingerprint().String() != strings.TrimSpace(string(readTestdata(t, "bob.fpr"))) {
		t.Errorf("fingerprint %s", bob.Fingerprint())
	}
	for _, name := range []string{"gone.pub", "old.pub", "carol.pub", "rob.sec"} {
		k := vectorKey(t, name)
		var b []byte
		var err error
		if k.IsSecret() {
			b, err = k.MarshalSecret()
		} else {
			b, err = k.MarshalPublic()
		}
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseKeys(b)
		if err != nil {
			t.Fatalf("%s re-exported: %v", name, err)
		}
		if errors.Is(k.Check(), ErrKeyRevoked) != errors.Is(again[0].Check(), ErrKeyRevoked) ||
			!slices.Equal(k.UserIDs(), again[0].UserIDs()) ||
			k.HasJID(mustJID("mallory@example.org")) != again[0].HasJID(mustJID("mallory@example.org")) {
			t.Errorf("%s: re-export lost revocations or user ids", name)
		}
	}
}

func TestParseKeysMany(t *testing.T) {
	all := slices.Concat(readTestdata(t, "alice.pub"), readTestdata(t, "bob.sec"))
	// Two armored blocks: only the first is read, as gpg --import would
	// not: hush reads one block, so concatenate binary keys instead.
	alice, bob := vectorKey(t, "alice.pub"), vectorKey(t, "bob.sec")
	a, _ := alice.MarshalPublic()
	b, _ := bob.MarshalSecret()
	keys, err := ParseKeys(slices.Concat(a, b))
	if err != nil || len(keys) != 2 || keys[0].Fingerprint() != alice.Fingerprint() || !keys[1].IsSecret() {
		t.Fatalf("two binary keys: %d keys, %v", len(keys), err)
	}
	if keys, err := ParseKeys(all); err != nil || len(keys) != 1 {
		t.Errorf("two armored blocks: %d keys, %v", len(keys), err)
	}
	if _, err := ParseKeys(slices.Concat(a, a)); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("the same key twice: %v", err)
	}
}

// v3PublicKey is a version 3 RSA public key packet (RFC 4880 §5.5.2), which
// XEP-0373 §7.1 forbids accepting, followed by a User ID packet.
func v3PublicKey() []byte {
	n := bytes.Repeat([]byte{0xc5}, 256)
	body := []byte{3, 0x5e, 0, 0, 0, 0, 0, 1, 0x08, 0x00}
	body = append(body, n...)
	body = append(body, 0, 17, 1, 0, 1)
	pkt := append([]byte{0x99, byte(len(body) >> 8), byte(len(body))}, body...)
	uid := []byte("xmpp:old@example.org")
	return append(pkt, append([]byte{0xb4, byte(len(uid))}, uid...)...)
}

func TestParseKeysBad(t *testing.T) {
	bob := readTestdata(t, "bob.pub")
	bin, _ := vectorKey(t, "bob.pub").MarshalPublic()
	msg := readTestdata(t, "sendxmpp-signcrypt.xml")
	noUID := func() []byte {
		// The primary key and subkey of bob without the User ID.
		k := vectorKey(t, "bob.pub")
		var buf bytes.Buffer
		k.e.PrimaryKey.Serialize(&buf)
		k.e.Subkeys[0].PublicKey.Serialize(&buf)
		k.e.Subkeys[0].Sig.Serialize(&buf)
		return buf.Bytes()
	}()
	badSig := slices.Clone(bin)
	badSig[len(bin)-10] ^= 0x40
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrInvalidKey},
		{"garbage", []byte("hello, world, this is not a key"), ErrInvalidKey},
		{"truncated binary", bin[:len(bin)/2], ErrInvalidKey},
		{"truncated armor", bob[:len(bob)/2], ErrInvalidKey},
		{"armored message", []byte("-----BEGIN PGP MESSAGE-----\n\nwV4D\n=AAAA\n-----END PGP MESSAGE-----\n"), ErrInvalidKey},
		{"v3 key", v3PublicKey(), ErrUnsupported},
		{"no user id", noUID, ErrInvalidKey},
		{"bad subkey signature", badSig, ErrInvalidKey},
		{"xml", msg, ErrInvalidKey},
		{"too large", make([]byte, MaxKeyDataSize+1), ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := ParseKeys(tc.in)
			if !errors.Is(err, tc.want) || keys != nil {
				t.Errorf("ParseKeys: %d keys, %v; want %v", len(keys), err, tc.want)
			}
		})
	}
}

func TestUnlock(t *testing.T) {
	_, bob, _, _ := testKeys(t)
	raw, _ := bob.MarshalSecret()
	keys, _ := ParseKeys(raw)
	k := keys[0]
	if err := k.e.EncryptPrivateKeys([]byte("correct horse"), nil); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := k.e.SerializePrivateWithoutSigning(&buf, nil); err != nil {
		t.Fatal(err)
	}
	keys, err := ParseKeys(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	locked := keys[0]
	if !locked.Locked() {
		t.Fatal("not locked")
	}
	if _, err := locked.ArmorSecret(); !errors.Is(err, ErrKeyLocked) {
		t.Errorf("ArmorSecret of a locked key: %v", err)
	}
	if _, err := EncryptContent(nil, locked, nil, time.Now()); err == nil {
		t.Error("EncryptContent with a nil envelope succeeded")
	}
	if err := locked.Unlock([]byte("wrong")); !errors.Is(err, ErrWrongPassphrase) || !locked.Locked() {
		t.Errorf("wrong passphrase: %v, locked %t", err, locked.Locked())
	}
	if err := locked.Unlock([]byte("correct horse")); err != nil || locked.Locked() {
		t.Errorf("right passphrase: %v, locked %t", err, locked.Locked())
	}
	if err := bob.Public().Unlock(nil); !errors.Is(err, ErrNotSecret) {
		t.Errorf("Unlock of a public key: %v", err)
	}
}

func TestExpiredAndRevokedKeys(t *testing.T) {
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	cfg := keyConfig(fixedClock(t0))
	cfg.Algorithm, cfg.Curve = packet.PubKeyAlgoEdDSA, packet.Curve25519
	cfg.KeyLifetimeSecs = 1800 // expired half an hour ago
	e, err := openpgp.NewEntity("xmpp:dave@example.org", "", "", cfg)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := newKey(e)
	if err != nil {
		t.Fatal(err)
	}
	if err := expired.Check(); !errors.Is(err, ErrKeyExpired) {
		t.Errorf("expired key: %v", err)
	}
	if _, err := expired.encryptionKey(t0); err != nil {
		t.Errorf("the key was valid at its creation: %v", err)
	}

	_, bob, _, _ := testKeys(t)
	raw, _ := bob.MarshalSecret()
	keys, _ := ParseKeys(raw)
	revokedSub := keys[0]
	if err := revokedSub.e.RevokeSubkey(&revokedSub.e.Subkeys[0], packet.KeyRetired, "", nil); err != nil {
		t.Fatal(err)
	}
	if err := revokedSub.Check(); !errors.Is(err, ErrNoEncryptionKey) {
		t.Errorf("key with revoked subkey: %v", err)
	}
	keys, _ = ParseKeys(raw)
	revoked := keys[0]
	if err := revoked.e.RevokeKey(packet.KeyCompromised, "", nil); err != nil {
		t.Fatal(err)
	}
	if err := revoked.Check(); !errors.Is(err, ErrKeyRevoked) {
		t.Errorf("revoked key: %v", err)
	}
	// Revocations survive export and import.
	b, _ := revoked.MarshalPublic()
	again, err := ParseKeys(b)
	if err != nil || !errors.Is(again[0].Check(), ErrKeyRevoked) {
		t.Errorf("revoked key after re-import: %v, %v", err, again[0].Check())
	}
}

func TestUserIDJID(t *testing.T) {
	for _, tc := range []struct {
		uid  string
		want string
	}{
		{"xmpp:juliet@example.org", "juliet@example.org"},
		{"XMPP:Juliet@Example.ORG", "juliet@example.org"},
		{"Juliet Capulet <xmpp:juliet@example.org>", "juliet@example.org"},
		{"xmpp:example.org", "example.org"},
		{"xmpp:juliet@example.org/balcony", ""},
		{"xmpp:juliet@example.org?message", ""},
		{"xmpp:juliet%40example.org", ""},
		{"juliet@example.org", ""},
		{"Juliet <juliet@example.org>", ""},
		{"xmpp:", ""},
		{"xmpp:@example.org", ""},
		{"xmpp:juliet@example.org trailing", ""},
		{"mailto:xmpp:juliet@example.org", ""},
	} {
		j, ok := userIDJID(tc.uid)
		got := ""
		if ok {
			got = j.String()
		}
		if got != tc.want {
			t.Errorf("userIDJID(%q) = %q, want %q", tc.uid, got, tc.want)
		}
	}
}

func TestFingerprint(t *testing.T) {
	const s = "1357B01865B2503C18453D208CAC2A9678548E35"
	f, err := ParseFingerprint(s)
	if err != nil || f.String() != s {
		t.Fatalf("ParseFingerprint: %v, %s", err, f)
	}
	if got := PublicKeyNode(f); got != "urn:xmpp:openpgp:0:public-keys:"+s {
		t.Errorf("PublicKeyNode: %s", got)
	}
	for _, bad := range []string{"", strings.ToLower(s), s[:39], s + "0", "1357 B018 65B2 503C 1845 3D20 8CAC 2A96 7854 8E35", "G357B01865B2503C18453D208CAC2A9678548E35"} {
		if _, err := ParseFingerprint(bad); !errors.Is(err, ErrInvalidElement) {
			t.Errorf("ParseFingerprint(%q): %v", bad, err)
		}
	}
}
