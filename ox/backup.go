package ox

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ProtonMail/go-crypto/openpgp/s2k"
)

// Secret-key backup, XEP-0373 §5.4.
const (
	// BackupAlphabet is what backup codes are made of: upper-case Latin
	// letters and digits without 'O' and '0' (XEP-0373 §5.4 step 2).
	BackupAlphabet = "123456789ABCDEFGHIJKLMNPQRSTUVWXYZ"

	// BackupCodeChars is the number of random characters in a backup code.
	BackupCodeChars = 24

	// BackupCodeLen is the length of a backup code with its dashes, e.g.
	// "TWNK-KD5Y-MT3T-E1GS-DRDB-KVTW", the whole of which is the passphrase
	// (XEP-0373 §5.4 step 3).
	BackupCodeLen = BackupCodeChars + BackupCodeChars/4 - 1

	// maxBackupSize bounds a <secretkey/> message: the key data plus the
	// SKESK, encryption and literal packet overhead.
	maxBackupSize = MaxKeyDataSize + 4096

	// backupS2KCount is the S2K iteration count of backups. The code carries
	// 24·log2(34) ≈ 122 bits of entropy, so stretching adds nothing; the
	// smallest count GnuPG itself writes (65536, RFC 4880 §3.7.1.3) keeps
	// restoring fast.
	backupS2KCount = 65536
)

// NewBackupCode returns a fresh backup code: 24 characters of
// BackupAlphabet from crypto/rand, in groups of four joined by '-'
// (XEP-0373 §5.4 step 2). The code must be kept secret.
func NewBackupCode() (string, error) {
	var b strings.Builder
	var buf [64]byte
	n := 0
	for n < BackupCodeChars {
		if _, err := rand.Read(buf[:]); err != nil {
			return "", fmt.Errorf("ox: backup code: %w", err)
		}
		for _, c := range buf {
			// Rejection sampling: 34·7 = 238 values map uniformly.
			if c >= byte(len(BackupAlphabet)*(256/len(BackupAlphabet))) || n == BackupCodeChars {
				continue
			}
			if n > 0 && n%4 == 0 {
				b.WriteByte('-')
			}
			b.WriteByte(BackupAlphabet[int(c)%len(BackupAlphabet)])
			n++
		}
	}
	return b.String(), nil
}

// normalizeCode checks a backup code, accepting lower case and surrounding
// white space from a human, and returns it as the passphrase.
func normalizeCode(code string) (string, error) {
	code = strings.ToUpper(strings.TrimSpace(code))
	if len(code) != BackupCodeLen {
		return "", ErrMalformedCode
	}
	for i := 0; i < len(code); i++ {
		c := code[i]
		if i%5 == 4 {
			if c != '-' {
				return "", ErrMalformedCode
			}
		} else if strings.IndexByte(BackupAlphabet, c) < 0 {
			return "", ErrMalformedCode
		}
	}
	return code, nil
}

func backupConfig() *packet.Config {
	cfg := keyConfig(nil)
	cfg.S2KConfig = &s2k.Config{S2KMode: s2k.IteratedSaltedS2K, Hash: crypto.SHA256, S2KCount: backupS2KCount}
	return cfg
}

// Backup makes a secret-key backup of keys (XEP-0373 §5.4): a fresh backup
// code, and the <secretkey/> payload holding the keys' transferable secret
// keys, concatenated with S2K usage 0, encrypted in one SKESK (iterated and
// salted S2K with SHA-256, AES-256) and integrity-protected encrypted data
// packet with the whole code as passphrase. The keys must be unlocked.
// Show the code to the user; it is the only way to restore.
func Backup(keys []*Key) (code string, backup SecretKey, err error) {
	code, err = NewBackupCode()
	if err != nil {
		return "", SecretKey{}, err
	}
	backup, err = backupWithCode(keys, code)
	return code, backup, err
}

func backupWithCode(keys []*Key, code string) (SecretKey, error) {
	if len(keys) == 0 {
		return SecretKey{}, errors.New("ox: backup: no keys")
	}
	var plain bytes.Buffer
	for _, k := range keys {
		b, err := k.MarshalSecret()
		if err != nil {
			return SecretKey{}, err
		}
		plain.Write(b)
	}
	defer clear(plain.Bytes())
	if plain.Len() > MaxKeyDataSize {
		return SecretKey{}, fmt.Errorf("%w: backup over %d bytes", ErrTooLarge, MaxKeyDataSize)
	}
	var out bytes.Buffer
	w, err := openpgp.SymmetricallyEncrypt(&out, []byte(code), &openpgp.FileHints{IsBinary: true}, backupConfig())
	if err != nil {
		return SecretKey{}, fmt.Errorf("ox: backup: %w", err)
	}
	if _, err := w.Write(plain.Bytes()); err != nil {
		return SecretKey{}, fmt.Errorf("ox: backup: %w", err)
	}
	if err := w.Close(); err != nil {
		return SecretKey{}, fmt.Errorf("ox: backup: %w", err)
	}
	return SecretKey{Message: out.Bytes()}, nil
}

// Restore opens a secret-key backup with its backup code and returns the
// secret keys in it. A wrong code or a modified backup is ErrWrongCode, a
// code that cannot be one is ErrMalformedCode; either way nothing is
// returned. Keys still protected by a passphrase (which XEP-0373 §5.4 does
// not allow, but which do no harm) come back locked.
func Restore(backup SecretKey, code string) ([]*Key, error) {
	pass, err := normalizeCode(code)
	if err != nil {
		return nil, err
	}
	if len(backup.Message) > maxBackupSize {
		return nil, fmt.Errorf("%w: backup over %d bytes", ErrTooLarge, maxBackupSize)
	}
	if err := scanBackup(backup.Message); err != nil {
		return nil, err
	}
	tried := false
	prompt := func([]openpgp.Key, bool) ([]byte, error) {
		if tried {
			return nil, ErrWrongCode
		}
		tried = true
		return []byte(pass), nil
	}
	md, err := openpgp.ReadMessage(bytes.NewReader(backup.Message), nil, prompt, backupConfig())
	if err != nil {
		return nil, ErrWrongCode
	}
	// Read to the end first: only then is the integrity check done, and
	// anything seen before it may come from a wrong code.
	plain, err := io.ReadAll(io.LimitReader(md.UnverifiedBody, MaxKeyDataSize+1))
	defer clear(plain)
	if err != nil {
		return nil, ErrWrongCode
	}
	if len(plain) > MaxKeyDataSize {
		return nil, fmt.Errorf("%w: backup over %d bytes", ErrTooLarge, MaxKeyDataSize)
	}
	if !md.IsSymmetricallyEncrypted || md.IsSigned {
		return nil, fmt.Errorf("%w: not a passphrase-encrypted backup", ErrMalformed)
	}
	keys, err := ParseKeys(plain)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if !k.IsSecret() {
			return nil, &KeyError{Fingerprint: k.fpr, Err: ErrNotSecret}
		}
	}
	return keys, nil
}

// scanBackup checks that a backup is one SKESK followed by encrypted data.
func scanBackup(msg []byte) error {
	r := packet.NewReader(bytes.NewReader(msg))
	p, err := r.Next()
	if err != nil {
		return packetError(err)
	}
	if _, ok := p.(*packet.SymmetricKeyEncrypted); !ok {
		return fmt.Errorf("%w: backup does not start with a passphrase-encrypted session key", ErrMalformed)
	}
	p, err = r.Next()
	if err != nil {
		return packetError(err)
	}
	switch p.(type) {
	case *packet.SymmetricallyEncrypted, *packet.AEADEncrypted:
		return nil
	}
	return fmt.Errorf("%w: backup holds more than one session key", ErrMalformed)
}
