package ox

import (
	"encoding/xml"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestNewBackupCode(t *testing.T) {
	counts := make(map[byte]int)
	const n = 400
	seen := make(map[string]bool)
	for range n {
		code, err := NewBackupCode()
		if err != nil {
			t.Fatal(err)
		}
		if BackupCodeLen != 29 || len(code) != BackupCodeLen {
			t.Fatalf("code %q has length %d", code, len(code))
		}
		if got, err := normalizeCode(code); err != nil || got != code {
			t.Fatalf("code %q does not check: %v", code, err)
		}
		groups := strings.Split(code, "-")
		if len(groups) != 6 {
			t.Fatalf("code %q is not six groups", code)
		}
		for _, c := range []byte(strings.ReplaceAll(code, "-", "")) {
			counts[c]++
		}
		if seen[code] {
			t.Fatalf("code %q repeated", code)
		}
		seen[code] = true
	}
	// Every symbol of the alphabet turns up, none far more than its share
	// (9600 draws, 282 expected per symbol; 450 is over ten deviations off).
	if len(counts) != len(BackupAlphabet) {
		t.Errorf("%d distinct symbols, want %d", len(counts), len(BackupAlphabet))
	}
	for c, k := range counts {
		if !strings.ContainsRune(BackupAlphabet, rune(c)) || k > 450 || k < 150 {
			t.Errorf("symbol %q drawn %d times", c, k)
		}
	}
}

func TestNormalizeCode(t *testing.T) {
	const good = "TWNK-KD5Y-MT3T-E1GS-DRDB-KVTW"
	for in, want := range map[string]string{
		good:                                 good,
		" twnk-kd5y-mt3t-e1gs-drdb-kvtw\n":   good,
		"TWNK-KD5Y-MT3T-E1GS-DRDB-KVT0":      "",
		"TWNK-KD5Y-MT3T-E1GS-DRDB-KVTO":      "",
		"TWNKKD5YMT3TE1GSDRDBKVTW":           "",
		"TWNK KD5Y MT3T E1GS DRDB KVTW":      "",
		"TWNK-KD5Y-MT3T-E1GS-DRDB":           "",
		"TWNK-KD5Y-MT3T-E1GS-DRDB-KVTW-ABCD": "",
		"TWN-KKD5Y-MT3T-E1GS-DRDB-KVTW":      "",
		"":                                   "",
	} {
		got, err := normalizeCode(in)
		if got != want || (want == "") != errors.Is(err, ErrMalformedCode) {
			t.Errorf("normalizeCode(%q) = %q, %v", in, got, err)
		}
	}
}

func TestBackupRestore(t *testing.T) {
	alice, _, _, alice2 := testKeys(t)
	code, backup, err := Backup([]*Key{alice, alice2})
	if err != nil {
		t.Fatal(err)
	}
	b, err := xml.Marshal(backup)
	if err != nil {
		t.Fatal(err)
	}
	var wire SecretKey
	if err := xml.Unmarshal(b, &wire); err != nil {
		t.Fatal(err)
	}
	keys, err := Restore(wire, strings.ToLower(code))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].Fingerprint() != alice.Fingerprint() || keys[1].Fingerprint() != alice2.Fingerprint() {
		t.Fatalf("restored %d keys", len(keys))
	}
	for _, k := range keys {
		if !k.IsSecret() || k.Locked() || k.Check() != nil {
			t.Errorf("restored key %s: secret %t locked %t check %v", k.Fingerprint(), k.IsSecret(), k.Locked(), k.Check())
		}
	}
	a, _ := alice.MarshalSecret()
	r, _ := keys[0].MarshalSecret()
	if !slices.Equal(a, r) {
		t.Error("restored secret key differs")
	}

	other, err := NewBackupCode()
	if err != nil {
		t.Fatal(err)
	}
	tampered := SecretKey{Message: slices.Clone(backup.Message)}
	tampered.Message[len(tampered.Message)-5] ^= 1
	for _, tc := range []struct {
		name   string
		backup SecretKey
		code   string
		want   error
	}{
		{"wrong code", backup, other, ErrWrongCode},
		{"malformed code", backup, "TWNK-KD5Y", ErrMalformedCode},
		{"code with O", backup, code[:28] + "O", ErrMalformedCode},
		{"tampered", tampered, code, ErrWrongCode},
		{"truncated", SecretKey{Message: backup.Message[:len(backup.Message)/2]}, code, ErrWrongCode},
		{"garbage", SecretKey{Message: []byte("garbage garbage garbage")}, code, ErrMalformed},
		{"empty", SecretKey{}, code, ErrMalformed},
		{"not a backup", SecretKey{Message: rawEncrypt(t, rawLiteral(t, a), alice)}, code, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := Restore(tc.backup, tc.code)
			if !errors.Is(err, tc.want) || keys != nil {
				t.Errorf("got %d keys, %v; want %v", len(keys), err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), code) {
				t.Error("error quotes the code")
			}
		})
	}

	if _, _, err := Backup(nil); err == nil {
		t.Error("Backup of no keys succeeded")
	}
	if _, _, err := Backup([]*Key{alice.Public()}); !errors.Is(err, ErrNotSecret) {
		t.Errorf("Backup of a public key: %v", err)
	}
}

// TestRestoreGnuPG restores the backup testdata/gen.sh made with gpg
// following XEP-0373 §5.4 (AES-128, gpg's default S2K and compression).
func TestRestoreGnuPG(t *testing.T) {
	var backup SecretKey
	if err := xml.Unmarshal(readTestdata(t, "gpg-backup.xml"), &backup); err != nil {
		t.Fatal(err)
	}
	code := strings.TrimSpace(string(readTestdata(t, "gpg-backup.code")))
	keys, err := Restore(backup, code)
	if err != nil {
		t.Fatal(err)
	}
	bob := vectorKey(t, "bob.sec")
	if len(keys) != 1 || keys[0].Fingerprint() != bob.Fingerprint() || !keys[0].IsSecret() || keys[0].Locked() {
		t.Fatalf("restored %d keys", len(keys))
	}
	if _, err := Restore(backup, "TWNK-KD5Y-MT3T-E1GS-DRDB-KVTX"); !errors.Is(err, ErrWrongCode) {
		t.Errorf("wrong code: %v", err)
	}
}
