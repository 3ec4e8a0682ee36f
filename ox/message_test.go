package ox

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"hush.im/sce"
)

// vectorStanza reads a stanza of testdata/gen.sh (no namespace declared, as
// go-sendxmpp writes them) and gives it a 'from', as the server would.
func vectorStanza(t testing.TB, name, from string) *sce.Stanza {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(readTestdata(t, name)))
	d.DefaultSpace = "jabber:client"
	st, err := sce.ReadStanza(d)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	st.Attr = append(st.Attr, xml.Attr{Name: xml.Name{Local: "from"}, Value: from})
	return st
}

func body(st *sce.Stanza) (string, bool) {
	for _, c := range st.Children {
		if c.Name == (xml.Name{Space: "jabber:client", Local: "body"}) {
			return c.Text(), c.Encrypted
		}
	}
	return "", false
}

func marshalStanza(t testing.TB, st *sce.Stanza) []byte {
	t.Helper()
	b, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVectors opens the messages testdata/gen.sh made with GnuPG, among
// them one in go-sendxmpp's format.
func TestVectors(t *testing.T) {
	alice := vectorKey(t, "alice.sec")
	bob, rob := vectorKey(t, "bob.pub"), vectorKey(t, "rob.pub")
	for _, tc := range []struct {
		file   string
		kind   sce.Kind
		sender *Key
		body   string
		want   error
	}{
		{"sendxmpp-signcrypt.xml", sce.KindSigncrypt, bob, "Hello from go-sendxmpp's format", nil},
		{"rsa-signcrypt.xml", sce.KindSigncrypt, rob, "Hello from RSA", nil},
		{"sign.xml", sce.KindSign, bob, "Signed, not sealed", nil},
		{"crypt.xml", sce.KindCrypt, nil, "Sealed, not signed", nil},
		{"sign.xml", sce.KindSigncrypt, bob, "", ErrWrongKind},
		{"crypt.xml", sce.KindSigncrypt, bob, "", ErrWrongKind},
		{"not-for-alice.xml", sce.KindSigncrypt, bob, "", ErrNotForUs},
		{"sign-encrypted.xml", sce.KindSign, bob, "", ErrWrongProtection},
		{"signcrypt-no-to.xml", sce.KindSigncrypt, bob, "", sce.ErrMissingAffix},
		{"rsa-signcrypt.xml", sce.KindSigncrypt, bob, "", ErrBadSignature},
	} {
		t.Run(strings.TrimSuffix(tc.file, ".xml")+"/"+tc.kind.String(), func(t *testing.T) {
			from := "bob@example.org/laptop"
			if tc.sender == rob {
				from = "rob@example.org/desk"
			}
			st := vectorStanza(t, tc.file, from)
			before := marshalStanza(t, st)
			var senders []*Key
			if tc.sender != nil {
				senders = []*Key{tc.sender}
			}
			o, err := Open(st, OpenOptions{Kind: tc.kind, Keys: []*Key{alice}, SenderKeys: senders, Now: fixedClock(vectorNow)})
			if !bytes.Equal(before, marshalStanza(t, st)) {
				t.Error("Open changed its input")
			}
			if tc.want != nil {
				if !errors.Is(err, tc.want) || !errors.Is(err, ErrRejected) || o != nil {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, enc := body(o.Stanza); got != tc.body || !enc {
				t.Errorf("body %q (encrypted %t), want %q", got, enc, tc.body)
			}
			if (o.Signer != nil) != (tc.sender != nil) || o.Signer != nil && o.Signer.Fingerprint() != tc.sender.Fingerprint() {
				t.Errorf("signer %v", o.Signer)
			}
			if !o.Envelope.Time.Equal(vectorTime) {
				t.Errorf("time %v", o.Envelope.Time)
			}
			// The fallback body outside is gone; the hints stay, unencrypted.
			n := 0
			for _, c := range o.Stanza.Children {
				if c.Name.Local == "body" {
					n++
				}
				if c.Name.Local == "store" && c.Encrypted {
					t.Error("store hint marked encrypted")
				}
			}
			if n != 1 {
				t.Errorf("%d bodies", n)
			}
		})
	}
}

func TestSealOpen(t *testing.T) {
	alice, bob, carol, alice2 := testKeys(t)
	bob2, err := GenerateKey(mustJID("bob@example.org"), Curve25519)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	st := mustStanza(t, chat)
	before := marshalStanza(t, st)
	sealed, err := Seal(st, SealOptions{
		Signer:     alice,
		Recipients: []*Key{bob.Public(), bob2.Public()},
		Own:        []*Key{alice.Public(), alice2.Public()},
		Now:        fixedClock(now),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, marshalStanza(t, st)) {
		t.Error("Seal changed its input")
	}
	want := []Fingerprint{bob.Fingerprint(), bob2.Fingerprint(), alice.Fingerprint(), alice2.Fingerprint()}
	if !slices.Equal(sealed.EncryptedTo, want) || len(sealed.Skipped) != 0 {
		t.Errorf("encrypted to %v, skipped %v", sealed.EncryptedTo, sealed.Skipped)
	}

	// XEP-0374 §5.2: fallback body, store and EME hints, <openpgp/>; the
	// origin-id is mirrored; nothing of the plaintext body is outside.
	out := marshalStanza(t, sealed.Stanza)
	for _, s := range []string{
		`<body>` + DefaultFallbackBody + `</body>`,
		`<store xmlns="urn:xmpp:hints"></store>`,
		`<encryption xmlns="urn:xmpp:eme:0" namespace="urn:xmpp:openpgp:0"></encryption>`,
		`<origin-id xmlns="urn:xmpp:sid:0" id="o1"></origin-id>`,
		`<openpgp xmlns="urn:xmpp:openpgp:0">`,
	} {
		if !bytes.Contains(out, []byte(s)) {
			t.Errorf("sealed stanza lacks %s:\n%s", s, out)
		}
	}
	if bytes.Contains(out, []byte("lighthouse")) {
		t.Error("plaintext outside the encryption")
	}

	// Received over the wire by each of the four keys: bob's two devices and,
	// as a carbon, alice's other device.
	wire, err := sce.ParseStanza(out)
	if err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]*Key{"bob": bob, "bob2": bob2, "alice": alice, "alice2": alice2} {
		o, err := Open(wire, OpenOptions{Keys: []*Key{k}, SenderKeys: []*Key{alice.Public(), alice2.Public()}, Now: fixedClock(now.Add(time.Second))})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got, enc := body(o.Stanza); got != "Meet me at the lighthouse." || !enc {
			t.Errorf("%s: body %q", name, got)
		}
		if o.Signer.Fingerprint() != alice.Fingerprint() || o.Signer.IsSecret() {
			t.Errorf("%s: signer %s", name, o.Signer.Fingerprint())
		}
		if len(o.Envelope.To) != 1 || o.Envelope.To[0].String() != "bob@example.org" || len(o.Envelope.Rpad) == 0 {
			t.Errorf("%s: affixes %+v", name, o.Envelope)
		}
	}
	// Carol got nothing.
	if _, err := Open(wire, OpenOptions{Keys: []*Key{carol}, SenderKeys: []*Key{alice}}); !errors.Is(err, ErrNotForUs) {
		t.Errorf("carol: %v", err)
	}
}

func TestSealKinds(t *testing.T) {
	alice, bob, _, _ := testKeys(t)
	for _, tc := range []struct {
		kind       sce.Kind
		signer     *Key
		recipients []*Key
		body       bool
	}{
		{sce.KindSigncrypt, alice, []*Key{bob}, true},
		{sce.KindSign, alice, nil, false},
		{sce.KindCrypt, nil, []*Key{bob}, true},
	} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			sealed, err := Seal(mustStanza(t, chat), SealOptions{Kind: tc.kind, Signer: tc.signer, Recipients: tc.recipients})
			if err != nil {
				t.Fatal(err)
			}
			_, hasFallback := body(sealed.Stanza)
			if hasFallback := hasFallback || bytes.Contains(marshalStanza(t, sealed.Stanza), []byte(DefaultFallbackBody)); hasFallback != tc.body {
				t.Errorf("fallback body %t", hasFallback)
			}
			o, err := Open(sealed.Stanza, OpenOptions{Kind: tc.kind, Keys: []*Key{bob}, SenderKeys: []*Key{alice}})
			if err != nil {
				t.Fatal(err)
			}
			if o.Envelope.Kind != tc.kind || (o.Signer == nil) != (tc.signer == nil) {
				t.Errorf("kind %v signer %v", o.Envelope.Kind, o.Signer)
			}
			if got, _ := body(o.Stanza); got != "Meet me at the lighthouse." {
				t.Errorf("body %q", got)
			}
			// Only the kind asked for is accepted.
			other := sce.KindSigncrypt
			if tc.kind == other {
				other = sce.KindCrypt
			}
			if _, err := Open(sealed.Stanza, OpenOptions{Kind: other, Keys: []*Key{bob}, SenderKeys: []*Key{alice}}); !errors.Is(err, ErrWrongKind) {
				t.Errorf("opened as %v: %v", other, err)
			}
		})
	}
}

func TestSealErrors(t *testing.T) {
	alice, bob, carol, _ := testKeys(t)
	old, gone, sub := vectorKey(t, "old.pub"), vectorKey(t, "gone.pub"), vectorKey(t, "sub.pub")
	st := mustStanza(t, chat)

	// Expired and revoked keys and subkeys are never used.
	sealed, err := Seal(st, SealOptions{Signer: alice, Recipients: []*Key{old, bob, gone, sub}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sealed.EncryptedTo, []Fingerprint{bob.Fingerprint(), alice.Fingerprint()}) {
		t.Errorf("encrypted to %v", sealed.EncryptedTo)
	}
	wantSkipped := []error{ErrKeyExpired, ErrKeyRevoked, ErrNoEncryptionKey}
	if len(sealed.Skipped) != 3 {
		t.Fatalf("skipped %v", sealed.Skipped)
	}
	for i, ke := range sealed.Skipped {
		if !errors.Is(ke, wantSkipped[i]) {
			t.Errorf("skipped[%d] = %v, want %v", i, ke, wantSkipped[i])
		}
	}

	for _, tc := range []struct {
		name string
		st   *sce.Stanza
		opts SealOptions
		want error
	}{
		{"no usable recipient", st, SealOptions{Signer: alice, Recipients: []*Key{old, gone}}, ErrNoRecipients},
		{"no recipient", st, SealOptions{Signer: alice, Own: []*Key{alice}}, ErrNoRecipients},
		{"signer without the sender's user id", st, SealOptions{Signer: carol, Recipients: []*Key{bob}}, ErrSignerMismatch},
		{"public signer", st, SealOptions{Signer: alice.Public(), Recipients: []*Key{bob}}, ErrNotSecret},
		{"expired signer", st, SealOptions{Signer: alice, Recipients: []*Key{bob}, Now: fixedClock(alice.Created().Add(-time.Hour))}, ErrKeyExpired},
		{"no signer", st, SealOptions{Recipients: []*Key{bob}}, nil},
		{"signed crypt", st, SealOptions{Kind: sce.KindCrypt, Signer: alice, Recipients: []*Key{bob}}, ErrWrongProtection},
		{"encrypted sign", st, SealOptions{Kind: sce.KindSign, Signer: alice, Recipients: []*Key{bob}}, ErrWrongProtection},
		{"not an OX kind", st, SealOptions{Kind: sce.Kind(9), Signer: alice, Recipients: []*Key{bob}}, ErrWrongKind},
		{"no to", mustStanza(t, `<message xmlns='jabber:client' from='alice@example.org'><body>x</body></message>`), SealOptions{Signer: alice, Recipients: []*Key{bob}}, sce.ErrNoAddress},
		{"no from", mustStanza(t, `<message xmlns='jabber:client' to='bob@example.org'><body>x</body></message>`), SealOptions{Signer: alice, Recipients: []*Key{bob}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Seal(tc.st, tc.opts)
			if err == nil || s != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	// With From set, a stanza without 'from' can be sealed.
	if _, err := Seal(mustStanza(t, `<message xmlns='jabber:client' to='bob@example.org'><body>x</body></message>`),
		SealOptions{Signer: alice, From: mustJID("alice@example.org/phone"), Recipients: []*Key{bob}}); err != nil {
		t.Errorf("SealOptions.From: %v", err)
	}
}

// rawSigned returns the packets of a message signed by signer with hash h:
// one-pass signature, literal data, signature (RFC 4880 §11.3).
func rawSigned(t testing.TB, content []byte, signer *Key, h crypto.Hash, now time.Time) []byte {
	t.Helper()
	sk, err := signer.signingKey(now)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	ops := &packet.OnePassSignature{Version: 3, SigType: packet.SigTypeBinary, Hash: h, PubKeyAlgo: sk.PublicKey.PubKeyAlgo, KeyId: sk.PublicKey.KeyId, IsLast: true}
	if err := ops.Serialize(&buf); err != nil {
		t.Fatal(err)
	}
	buf.Write(rawLiteral(t, content))
	id := sk.PublicKey.KeyId
	sig := &packet.Signature{SigType: packet.SigTypeBinary, PubKeyAlgo: sk.PublicKey.PubKeyAlgo, Hash: h, CreationTime: now, IssuerKeyId: &id}
	hh := h.New()
	hh.Write(content)
	noSalt := false // the salt notation has no size for SHA-1
	if err := sig.Sign(hh, sk.PrivateKey, &packet.Config{NonDeterministicSignaturesViaNotation: &noSalt}); err != nil {
		t.Fatal(err)
	}
	if err := sig.Serialize(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func rawLiteral(t testing.TB, content []byte) []byte {
	var buf bytes.Buffer
	w, err := packet.SerializeLiteral(nopCloser{&buf}, true, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(content)
	w.Close()
	return buf.Bytes()
}

// rawEncrypt encrypts arbitrary packets to keys: PKESKs and an
// integrity-protected encrypted data packet around inner.
func rawEncrypt(t testing.TB, inner []byte, to ...*Key) []byte {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	var buf bytes.Buffer
	for _, k := range to {
		ek, err := k.encryptionKey(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := packet.SerializeEncryptedKeyAEAD(&buf, ek.PublicKey, packet.CipherAES256, false, key, nil); err != nil {
			t.Fatal(err)
		}
	}
	w, err := packet.SerializeSymmetricallyEncrypted(&buf, packet.CipherAES256, false, packet.CipherSuite{}, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(inner)
	w.Close()
	return buf.Bytes()
}

// v3Signature is a version 3 signature packet (RFC 4880 §5.2.2).
func v3Signature(keyID uint64) []byte {
	body := []byte{3, 5, 0, 0x65, 0, 0, 0}
	for i := 7; i >= 0; i-- {
		body = append(body, byte(keyID>>(8*i)))
	}
	body = append(body, byte(packet.PubKeyAlgoEdDSA), 8, 0xab, 0xcd)
	for range 2 {
		body = append(body, 0x01, 0x00)
		body = append(body, bytes.Repeat([]byte{0x42}, 32)...)
	}
	return append([]byte{0x88, byte(len(body))}, body...)
}

// withOpenPGP returns st with the <openpgp/> replaced by one carrying msg.
func withOpenPGP(st *sce.Stanza, msg []byte) *sce.Stanza {
	c := *st
	c.Children = slices.Clone(st.Children)
	for i := range c.Children {
		if c.Children[i].Name == openpgpName {
			c.Children[i] = OpenPGP{Message: msg}.Element()
		}
	}
	return &c
}

func withAttr(st *sce.Stanza, name, value string) *sce.Stanza {
	c := *st
	c.Attr = slices.Clone(st.Attr)
	for i := range c.Attr {
		if c.Attr[i].Name.Local == name {
			c.Attr[i].Value = value
		}
	}
	return &c
}

// TestOpenBad feeds Open everything the issue lists as bad input and more.
// Each is rejected with ErrRejected and a typed cause, and Open changes
// nothing.
func TestOpenBad(t *testing.T) {
	alice, bob, carol, alice2 := testKeys(t)
	now := time.Now()
	sealed, err := Seal(mustStanza(t, chat), SealOptions{Signer: alice, Recipients: []*Key{bob, carol}, Now: fixedClock(now)})
	if err != nil {
		t.Fatal(err)
	}
	good := sealed.Stanza
	var msg []byte
	for _, c := range good.Children {
		if c.Name == openpgpName {
			p, _ := ParseOpenPGP(c)
			msg = p.Message
		}
	}
	contentAt := func(kind, extra string, at time.Time) []byte {
		return []byte(`<` + kind + ` xmlns='urn:xmpp:openpgp:0'><to jid='bob@example.org'/><time stamp='` + sce.FormatDateTime(at) + `'/>` +
			extra + `<payload><body xmlns='jabber:client'>x</body></payload></` + kind + `>`)
	}
	content := func(kind, extra string) []byte { return contentAt(kind, extra, now) }
	sc := content("signcrypt", "<rpad>x</rpad>")
	flipped := slices.Clone(msg)
	flipped[len(flipped)-30] ^= 1
	revoked := func() *Key {
		raw, _ := alice.MarshalSecret()
		keys, _ := ParseKeys(raw)
		if err := keys[0].e.RevokeKey(packet.KeyCompromised, "", nil); err != nil {
			t.Fatal(err)
		}
		return keys[0].Public()
	}()
	twoOpenPGP := *good
	twoOpenPGP.Children = append(slices.Clone(good.Children), OpenPGP{Message: msg}.Element())
	noOpenPGP := *good
	noOpenPGP.Children = slices.DeleteFunc(slices.Clone(good.Children), func(e sce.Element) bool { return e.Name == openpgpName })
	skesk := func() []byte {
		var buf bytes.Buffer
		w, err := openpgp.SymmetricallyEncrypt(&buf, []byte("pw"), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(sc)
		w.Close()
		return buf.Bytes()
	}()

	for _, tc := range []struct {
		name    string
		st      *sce.Stanza
		kind    sce.Kind
		keys    []*Key
		senders []*Key
		now     time.Time
		want    error
	}{
		{"good", good, 0, []*Key{bob}, []*Key{alice}, now, nil},
		{"wrong signer", good, 0, []*Key{bob}, []*Key{carol}, now, ErrBadSignature},
		{"forged from", withAttr(good, "from", "carol@example.org/pc"), 0, []*Key{bob}, []*Key{alice}, now, ErrSignerMismatch},
		{"forged from, signer's key given for carol", withAttr(good, "from", "carol@example.org/pc"), 0, []*Key{bob}, []*Key{carol, alice}, now, ErrSignerMismatch},
		{"forwarded to carol", withAttr(good, "to", "carol@example.org"), 0, []*Key{carol}, []*Key{alice}, now, sce.ErrRecipientMismatch},
		{"missing to", withOpenPGP(good, rawEncrypt(t, rawSigned(t, []byte(`<signcrypt xmlns='urn:xmpp:openpgp:0'><time stamp='`+sce.FormatDateTime(now)+`'/><payload/></signcrypt>`), alice, crypto.SHA256, now), bob)), 0, []*Key{bob}, []*Key{alice}, now, sce.ErrMissingAffix},
		{"stale time", good, 0, []*Key{bob}, []*Key{alice}, now.Add(time.Hour), sce.ErrStale},
		{"future time", withOpenPGP(good, rawEncrypt(t, rawSigned(t, contentAt("signcrypt", "", now.Add(time.Hour)), alice, crypto.SHA256, now), bob)), 0, []*Key{bob}, []*Key{alice}, now, sce.ErrFuture},
		{"truncated", withOpenPGP(good, msg[:len(msg)/2]), 0, []*Key{bob}, []*Key{alice}, now, ErrDecrypt},
		{"truncated header", withOpenPGP(good, msg[:40]), 0, []*Key{bob}, []*Key{alice}, now, ErrMalformed},
		{"garbage", withOpenPGP(good, []byte("this is not an OpenPGP message at all")), 0, []*Key{bob}, []*Key{alice}, now, ErrMalformed},
		{"flipped bit", withOpenPGP(good, flipped), 0, []*Key{bob}, []*Key{alice}, now, ErrDecrypt},
		{"encrypted to someone else", good, 0, []*Key{alice2}, []*Key{alice}, now, ErrNotForUs},
		{"sign also encrypted", withOpenPGP(good, rawEncrypt(t, rawSigned(t, content("sign", ""), alice, crypto.SHA256, now), bob)), sce.KindSign, []*Key{bob}, []*Key{alice}, now, ErrWrongProtection},
		{"crypt also signed", withOpenPGP(good, rawEncrypt(t, rawSigned(t, content("crypt", ""), alice, crypto.SHA256, now), bob)), sce.KindCrypt, []*Key{bob}, []*Key{alice}, now, ErrWrongProtection},
		{"signcrypt not signed", withOpenPGP(good, rawEncrypt(t, rawLiteral(t, sc), bob)), 0, []*Key{bob}, []*Key{alice}, now, ErrWrongProtection},
		{"signcrypt not encrypted", withOpenPGP(good, rawSigned(t, sc, alice, crypto.SHA256, now)), 0, []*Key{bob}, []*Key{alice}, now, ErrWrongProtection},
		{"v3 signature inside", withOpenPGP(good, rawEncrypt(t, v3Signed(t, sc, alice, now), bob)), 0, []*Key{bob}, []*Key{alice}, now, ErrBadSignature},
		{"v3 signature outside", withOpenPGP(good, v3Signed(t, content("sign", ""), alice, now)), sce.KindSign, []*Key{bob}, []*Key{alice}, now, ErrUnsupported},
		{"sha1 signature", withOpenPGP(good, rawEncrypt(t, rawSigned(t, sc, alice, crypto.SHA1, now), bob)), 0, []*Key{bob}, []*Key{alice}, now, ErrUnsupported},
		{"revoked signer", good, 0, []*Key{bob}, []*Key{revoked}, now, ErrKeyRevoked},
		{"signer not yet valid", good, 0, []*Key{bob}, []*Key{alice}, alice.Created().Add(-time.Hour), ErrBadSignature},
		{"passphrase-encrypted", withOpenPGP(good, skesk), 0, []*Key{bob}, []*Key{alice}, now, ErrMalformed},
		{"not a content element", withOpenPGP(good, rawEncrypt(t, rawSigned(t, []byte(`<body xmlns='jabber:client'>x</body>`), alice, crypto.SHA256, now), bob)), 0, []*Key{bob}, []*Key{alice}, now, ErrMalformed},
		{"sce envelope", withOpenPGP(good, rawEncrypt(t, rawSigned(t, []byte(`<envelope xmlns='urn:xmpp:sce:1'><content><body xmlns='jabber:client'>x</body></content></envelope>`), alice, crypto.SHA256, now), bob)), 0, []*Key{bob}, []*Key{alice}, now, sce.ErrNotEnvelope},
		{"invalid utf-8", withOpenPGP(good, rawEncrypt(t, rawSigned(t, content("signcrypt", "<rpad>\xff</rpad>"), alice, crypto.SHA256, now), bob)), 0, []*Key{bob}, []*Key{alice}, now, sce.ErrInvalidXML},
		{"sign expected, signcrypt sent", good, sce.KindSign, []*Key{bob}, []*Key{alice}, now, ErrWrongKind},
		{"not xml", withOpenPGP(good, rawEncrypt(t, rawSigned(t, []byte(`<signcrypt xmlns='urn:xmpp:openpgp:0'>`), alice, crypto.SHA256, now), bob)), 0, []*Key{bob}, []*Key{alice}, now, ErrMalformed},
		{"two openpgp elements", &twoOpenPGP, 0, []*Key{bob}, []*Key{alice}, now, ErrInvalidElement},
		{"no openpgp element", &noOpenPGP, 0, []*Key{bob}, []*Key{alice}, now, sce.ErrNoEncrypted},
		{"unsigned own key as sender", good, 0, []*Key{bob}, nil, now, ErrBadSignature},
		{"public key to decrypt", good, 0, []*Key{bob.Public()}, []*Key{alice}, now, ErrNotSecret},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := marshalStanza(t, tc.st)
			o, err := Open(tc.st, OpenOptions{Kind: tc.kind, Keys: tc.keys, SenderKeys: tc.senders, Now: fixedClock(tc.now)})
			if !bytes.Equal(before, marshalStanza(t, tc.st)) {
				t.Error("Open changed its input")
			}
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrRejected) || o != nil {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			// Error strings never quote decrypted content.
			if strings.Contains(err.Error(), "lighthouse") {
				t.Errorf("error quotes the plaintext: %v", err)
			}
		})
	}
}

// v3Signed is rawSigned with the signature packet replaced by a version 3
// one, which XEP-0373 §7.1 forbids accepting.
func v3Signed(t testing.TB, content []byte, signer *Key, now time.Time) []byte {
	sk, _ := signer.signingKey(now)
	var buf bytes.Buffer
	ops := &packet.OnePassSignature{Version: 3, SigType: packet.SigTypeBinary, Hash: crypto.SHA256, PubKeyAlgo: sk.PublicKey.PubKeyAlgo, KeyId: sk.PublicKey.KeyId, IsLast: true}
	ops.Serialize(&buf)
	buf.Write(rawLiteral(t, content))
	buf.Write(v3Signature(sk.PublicKey.KeyId))
	return buf.Bytes()
}

func TestDecryptContentLimits(t *testing.T) {
	alice, bob, _, _ := testKeys(t)
	if _, err := DecryptContent(make([]byte, MaxMessageSize+1), []*Key{bob}, []*Key{alice}, time.Now()); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized message: %v", err)
	}
	// More session keys than MaxRecipientKeys are refused before any
	// decryption is tried.
	one := rawEncrypt(t, nil, bob)
	var pkesk bytes.Buffer
	ek, _ := bob.encryptionKey(time.Now())
	if err := packet.SerializeEncryptedKeyAEAD(&pkesk, ek.PublicKey, packet.CipherAES256, false, make([]byte, 32), nil); err != nil {
		t.Fatal(err)
	}
	many := slices.Concat(bytes.Repeat(pkesk.Bytes(), MaxRecipientKeys), one)
	if _, err := DecryptContent(many, []*Key{bob}, []*Key{alice}, time.Now()); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too many session keys: %v", err)
	}
	env := &sce.Envelope{Kind: sce.KindSigncrypt, To: nil, Time: time.Now()}
	if _, err := EncryptContent(env, alice, slices.Repeat([]*Key{bob}, 2), time.Now()); err != nil {
		t.Errorf("a recipient given twice: %v", err)
	}
	// A content element larger than sce accepts is not decrypted further.
	big := rawEncrypt(t, rawSigned(t, bytes.Repeat([]byte("a"), maxLiteralSize+1), alice, crypto.SHA256, time.Now()), bob)
	if _, err := DecryptContent(big, []*Key{bob}, []*Key{alice}, time.Now()); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized content element: %v", err)
	}
}

func TestOpenPGPElementInStanza(t *testing.T) {
	// The <openpgp/> text as go-sendxmpp and the XEP write it: plain Base64
	// of the binary message, no armor.
	alice, bob, _, _ := testKeys(t)
	sealed, err := Seal(mustStanza(t, chat), SealOptions{Signer: alice, Recipients: []*Key{bob}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range sealed.Stanza.Children {
		if c.Name == openpgpName {
			raw, err := base64.StdEncoding.DecodeString(c.Text())
			if err != nil || len(raw) == 0 || raw[0]&0x80 == 0 {
				t.Errorf("<openpgp/> is not Base64 of binary OpenPGP: %v", err)
			}
		}
	}
}

// TestOpenAccepts covers content other clients may send: a jabber:server
// body (XEP-0374 §4.2: MUST be accepted), several <to/>s of which one is
// ours, no <rpad/> (only SHOULD), an XML declaration.
func TestOpenAccepts(t *testing.T) {
	alice, bob, _, _ := testKeys(t)
	now := time.Now()
	stamp := sce.FormatDateTime(now)
	outer := mustStanza(t, `<message xmlns='jabber:client' from='alice@example.org/a' to='bob@example.org/b'><openpgp xmlns='urn:xmpp:openpgp:0'>AA==</openpgp></message>`)
	for name, content := range map[string]string{
		"jabber:server body": `<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='bob@example.org'/><time stamp='` + stamp + `'/><payload><body xmlns='jabber:server'>hi</body></payload></signcrypt>`,
		"several to":         `<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='carol@example.org'/><to jid='bob@example.org'/><time stamp='` + stamp + `'/><rpad/><payload><body xmlns='jabber:client'>hi</body></payload></signcrypt>`,
		"xml declaration":    `<?xml version='1.0' encoding='UTF-8'?>` + "\n" + `<signcrypt xmlns='urn:xmpp:openpgp:0'><rpad>r</rpad><payload><body xmlns='jabber:client'>hi</body></payload><time stamp='` + stamp + `'/><to jid='bob@example.org'/></signcrypt>`,
	} {
		t.Run(name, func(t *testing.T) {
			st := withOpenPGP(outer, rawEncrypt(t, rawSigned(t, []byte(content), alice, crypto.SHA256, now), bob))
			o, err := Open(st, OpenOptions{Keys: []*Key{bob}, SenderKeys: []*Key{alice}, Now: fixedClock(now)})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, c := range o.Stanza.Children {
				if c.Name.Local == "body" && c.Encrypted && c.Text() == "hi" {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d encrypted bodies", n)
			}
		})
	}
}
