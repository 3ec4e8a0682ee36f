package wire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// vectors mirrors testdata/vectors.json, written by testdata/gen_vectors.py
// from python's protobuf runtime and the schemas of python-twomemo and
// python-oldmemo.
type vectors struct {
	OMEMOMessage []struct {
		N, PN      uint32
		DHPub      hexBytes `json:"dh_pub"`
		Ciphertext hexBytes
		Encoded    hexBytes
	} `json:"omemo_message"`
	OMEMOAuthenticatedMessage []struct {
		MAC, Message, Encoded hexBytes
	} `json:"omemo_authenticated_message"`
	OMEMOKeyExchange []struct {
		PKID                          uint32 `json:"pk_id"`
		SPKID                         uint32 `json:"spk_id"`
		IK, EK, MAC, Message, Encoded hexBytes
	} `json:"omemo_key_exchange"`
	SignalMessage []struct {
		RatchetKey      hexBytes `json:"ratchet_key"`
		Counter         uint32
		PreviousCounter uint32 `json:"previous_counter"`
		Ciphertext      hexBytes
		Encoded, MAC    hexBytes
		Framed          hexBytes
	} `json:"signal_message"`
	PreKeySignalMessage []struct {
		RegistrationID *uint32  `json:"registration_id"`
		PreKeyID       uint32   `json:"pre_key_id"`
		SignedPreKeyID uint32   `json:"signed_pre_key_id"`
		BaseKey        hexBytes `json:"base_key"`
		IdentityKey    hexBytes `json:"identity_key"`
		Message        hexBytes
		Encoded        hexBytes
		Framed         hexBytes
	} `json:"prekey_signal_message"`
}

// hexBytes decodes a JSON hex string; JSON null stays nil, "" becomes a
// non-nil empty slice (protobuf presence).
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*h = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = append([]byte{}, v...)
	return nil
}

func loadVectors(tb testing.TB) *vectors {
	tb.Helper()
	data, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		tb.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(data, &v); err != nil {
		tb.Fatal(err)
	}
	if len(v.OMEMOMessage) == 0 || len(v.OMEMOAuthenticatedMessage) == 0 || len(v.OMEMOKeyExchange) == 0 ||
		len(v.SignalMessage) == 0 || len(v.PreKeySignalMessage) == 0 {
		tb.Fatal("testdata/vectors.json lacks a section")
	}
	return &v
}

// message is what every codec here implements.
type message interface {
	Marshal() []byte
	Unmarshal([]byte) error
	Size() int
}

// checkEncoding marshals want, compares with encoded, unmarshals encoded
// into a fresh value and compares with want (the mellium encoding-table shape).
func checkEncoding(t *testing.T, want, fresh message, encoded []byte) {
	t.Helper()
	if got := want.Marshal(); !bytes.Equal(got, encoded) {
		t.Errorf("Marshal:\n got %x\nwant %x", got, encoded)
	}
	if n := want.Size(); n != len(encoded) {
		t.Errorf("Size = %d, want %d", n, len(encoded))
	}
	if err := fresh.Unmarshal(encoded); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if !reflect.DeepEqual(fresh, want) {
		t.Errorf("Unmarshal:\n got %+v\nwant %+v", fresh, want)
	}
}

func TestVectorsOMEMO(t *testing.T) {
	v := loadVectors(t)
	for i, c := range v.OMEMOMessage {
		t.Run("OMEMOMessage", func(t *testing.T) {
			t.Logf("vector %d", i)
			checkEncoding(t, &OMEMOMessage{N: c.N, PN: c.PN, DHPub: c.DHPub, Ciphertext: c.Ciphertext},
				&OMEMOMessage{}, c.Encoded)
		})
	}
	for i, c := range v.OMEMOAuthenticatedMessage {
		t.Run("OMEMOAuthenticatedMessage", func(t *testing.T) {
			t.Logf("vector %d", i)
			checkEncoding(t, &OMEMOAuthenticatedMessage{MAC: c.MAC, Message: c.Message},
				&OMEMOAuthenticatedMessage{}, c.Encoded)
		})
	}
	for i, c := range v.OMEMOKeyExchange {
		t.Run("OMEMOKeyExchange", func(t *testing.T) {
			t.Logf("vector %d", i)
			checkEncoding(t, &OMEMOKeyExchange{PKID: c.PKID, SPKID: c.SPKID, IK: c.IK, EK: c.EK,
				Message: OMEMOAuthenticatedMessage{MAC: c.MAC, Message: c.Message}},
				&OMEMOKeyExchange{}, c.Encoded)
		})
	}
}

func TestVectorsLegacy(t *testing.T) {
	v := loadVectors(t)
	for i, c := range v.SignalMessage {
		t.Run("SignalMessage", func(t *testing.T) {
			t.Logf("vector %d", i)
			want := &SignalMessage{RatchetKey: c.RatchetKey, Counter: c.Counter,
				PreviousCounter: c.PreviousCounter, Ciphertext: c.Ciphertext}
			checkEncoding(t, want, &SignalMessage{}, c.Encoded)

			framed := append(want.AppendFramed(nil), c.MAC...)
			if !bytes.Equal(framed, c.Framed) {
				t.Errorf("AppendFramed ‖ MAC:\n got %x\nwant %x", framed, c.Framed)
			}
			m, signed, mac, err := ParseFramedSignalMessage(c.Framed)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(&m, want) || !bytes.Equal(mac, c.MAC) ||
				!bytes.Equal(signed, c.Framed[:len(c.Framed)-LegacyMACSize]) {
				t.Errorf("ParseFramedSignalMessage = %+v, %x, %x", m, signed, mac)
			}
		})
	}
	for i, c := range v.PreKeySignalMessage {
		t.Run("PreKeySignalMessage", func(t *testing.T) {
			t.Logf("vector %d", i)
			want := &PreKeySignalMessage{PreKeyID: c.PreKeyID, SignedPreKeyID: c.SignedPreKeyID,
				BaseKey: c.BaseKey, IdentityKey: c.IdentityKey, Message: c.Message}
			if c.RegistrationID != nil {
				want.RegistrationID, want.HasRegistrationID = *c.RegistrationID, true
			}
			checkEncoding(t, want, &PreKeySignalMessage{}, c.Encoded)
			if got := want.MarshalFramed(); !bytes.Equal(got, c.Framed) {
				t.Errorf("MarshalFramed:\n got %x\nwant %x", got, c.Framed)
			}
			var got PreKeySignalMessage
			if err := got.UnmarshalFramed(c.Framed); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(&got, want) {
				t.Errorf("UnmarshalFramed = %+v", got)
			}
		})
	}
}

// Builders for hand-made inputs.
func tv(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

func tb(num protowire.Number, v []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func key(n int) []byte { return bytes.Repeat([]byte{0x42}, n) }

func lkey(n int) []byte { return append([]byte{LegacyKeyType}, key(n)...) }

// Valid bases, mutated by the malformed table.
var (
	validOMEMOMessage = cat(tv(1, 3), tv(2, 1), tb(3, key(32)), tb(4, key(64)))
	validAuth         = cat(tb(1, key(16)), tb(2, validOMEMOMessage))
	validKEX          = cat(tv(1, 7), tv(2, 9), tb(3, key(32)), tb(4, key(32)), tb(5, validAuth))
	validSignal       = cat(tb(1, lkey(32)), tv(2, 3), tv(3, 1), tb(4, key(48)))
	validFramed       = cat([]byte{LegacyVersion}, validSignal, key(8))
	validPreKey       = cat(tv(1, 7), tb(2, lkey(32)), tb(3, lkey(32)), tb(4, validFramed), tv(5, 1), tv(6, 9))
)

func TestValidBases(t *testing.T) {
	for _, c := range []struct {
		m message
		b []byte
	}{
		{&OMEMOMessage{}, validOMEMOMessage}, {&OMEMOAuthenticatedMessage{}, validAuth},
		{&OMEMOKeyExchange{}, validKEX}, {&SignalMessage{}, validSignal}, {&PreKeySignalMessage{}, validPreKey},
	} {
		if err := c.m.Unmarshal(c.b); err != nil {
			t.Errorf("%T: %v", c.m, err)
		} else if got := c.m.Marshal(); !bytes.Equal(got, c.b) {
			t.Errorf("%T: re-encoding differs:\n got %x\nwant %x", c.m, got, c.b)
		}
	}
	if _, _, _, err := ParseFramedSignalMessage(validFramed); err != nil {
		t.Error(err)
	}
}

var malformedCases = []struct {
	name string
	new  func() message
	in   []byte
}{
	// OMEMOMessage
	{"omemo/empty", newOMEMO, nil},
	{"omemo/missing n", newOMEMO, cat(tv(2, 1), tb(3, key(32)))},
	{"omemo/missing pn", newOMEMO, cat(tv(1, 1), tb(3, key(32)))},
	{"omemo/missing dh_pub", newOMEMO, cat(tv(1, 1), tv(2, 1), tb(4, key(16)))},
	{"omemo/dh_pub 31 bytes", newOMEMO, cat(tv(1, 3), tv(2, 1), tb(3, key(31)))},
	{"omemo/dh_pub 33 bytes", newOMEMO, cat(tv(1, 3), tv(2, 1), tb(3, key(33)))},
	{"omemo/unknown field 5", newOMEMO, cat(validOMEMOMessage, tv(5, 0))},
	{"omemo/unknown field 100", newOMEMO, cat(validOMEMOMessage, tv(100, 0))},
	{"omemo/unknown field 0", newOMEMO, cat([]byte{0x00, 0x00}, validOMEMOMessage)},
	{"omemo/duplicate n", newOMEMO, cat(tv(1, 3), tv(1, 3), tv(2, 1), tb(3, key(32)))},
	{"omemo/duplicate ciphertext", newOMEMO, cat(validOMEMOMessage, tb(4, key(16)))},
	{"omemo/out of order", newOMEMO, cat(tv(2, 1), tv(1, 3), tb(3, key(32)))},
	{"omemo/trailing zero byte", newOMEMO, cat(validOMEMOMessage, []byte{0})},
	{"omemo/trailing tag", newOMEMO, cat(validOMEMOMessage[:len(validOMEMOMessage)-66], []byte{0x22})},
	{"omemo/truncated ciphertext", newOMEMO, validOMEMOMessage[:len(validOMEMOMessage)-1]},
	{"omemo/non-minimal value", newOMEMO, cat([]byte{0x08, 0x83, 0x00}, tv(2, 1), tb(3, key(32)))},
	{"omemo/non-minimal tag", newOMEMO, cat([]byte{0x88, 0x00, 0x03}, tv(2, 1), tb(3, key(32)))},
	{"omemo/non-minimal length", newOMEMO, cat(tv(1, 3), tv(2, 1), []byte{0x1a, 0xa0, 0x00}, key(32))},
	{"omemo/n as bytes", newOMEMO, cat(tb(1, []byte{3}), tv(2, 1), tb(3, key(32)))},
	{"omemo/dh_pub as varint", newOMEMO, cat(tv(1, 3), tv(2, 1), tv(3, 32))},
	{"omemo/n as fixed32", newOMEMO, cat([]byte{0x0d, 3, 0, 0, 0}, tv(2, 1), tb(3, key(32)))},
	{"omemo/n as fixed64", newOMEMO, cat([]byte{0x09, 3, 0, 0, 0, 0, 0, 0, 0}, tv(2, 1), tb(3, key(32)))},
	{"omemo/group", newOMEMO, cat([]byte{0x0b, 0x0c}, tv(2, 1), tb(3, key(32)))},
	{"omemo/n above uint32", newOMEMO, cat(tv(1, 1<<32), tv(2, 1), tb(3, key(32)))},
	{"omemo/varint overflow", newOMEMO, cat([]byte{0x08}, bytes.Repeat([]byte{0xff}, 10), []byte{0x01})},
	{"omemo/length past end", newOMEMO, cat(tv(1, 3), tv(2, 1), []byte{0x1a, 0x40}, key(32))},
	{"omemo/huge length", newOMEMO, cat(tv(1, 3), tv(2, 1), []byte{0x1a, 0xff, 0xff, 0xff, 0xff, 0x0f})},
	{"omemo/too big", newOMEMO, cat(tv(1, 3), tv(2, 1), tb(3, key(32)), tb(4, key(maxMessageSize)))},

	// OMEMOAuthenticatedMessage
	{"auth/empty", newAuth, nil},
	{"auth/mac 15 bytes", newAuth, cat(tb(1, key(15)), tb(2, validOMEMOMessage))},
	{"auth/mac 32 bytes", newAuth, cat(tb(1, key(32)), tb(2, validOMEMOMessage))},
	{"auth/missing mac", newAuth, tb(2, validOMEMOMessage)},
	{"auth/missing message", newAuth, tb(1, key(16))},
	{"auth/out of order", newAuth, cat(tb(2, validOMEMOMessage), tb(1, key(16)))},
	{"auth/unknown field", newAuth, cat(validAuth, tb(3, nil))},
	{"auth/trailing", newAuth, cat(validAuth, []byte{0x12})},
	{"auth/message as varint", newAuth, cat(tb(1, key(16)), tv(2, 1))},

	// OMEMOKeyExchange
	{"kex/empty", newKEX, nil},
	{"kex/missing pk_id", newKEX, cat(tv(2, 9), tb(3, key(32)), tb(4, key(32)), tb(5, validAuth))},
	{"kex/missing spk_id", newKEX, cat(tv(1, 7), tb(3, key(32)), tb(4, key(32)), tb(5, validAuth))},
	{"kex/missing ik", newKEX, cat(tv(1, 7), tv(2, 9), tb(4, key(32)), tb(5, validAuth))},
	{"kex/missing ek", newKEX, cat(tv(1, 7), tv(2, 9), tb(3, key(32)), tb(5, validAuth))},
	{"kex/missing message", newKEX, cat(tv(1, 7), tv(2, 9), tb(3, key(32)), tb(4, key(32)))},
	{"kex/ik 33 bytes", newKEX, cat(tv(1, 7), tv(2, 9), tb(3, lkey(32)), tb(4, key(32)), tb(5, validAuth))},
	{"kex/ek 31 bytes", newKEX, cat(tv(1, 7), tv(2, 9), tb(3, key(32)), tb(4, key(31)), tb(5, validAuth))},
	{"kex/inner mac short", newKEX, cat(tv(1, 7), tv(2, 9), tb(3, key(32)), tb(4, key(32)),
		tb(5, cat(tb(1, key(8)), tb(2, validOMEMOMessage))))},
	{"kex/inner trailing", newKEX, cat(tv(1, 7), tv(2, 9), tb(3, key(32)), tb(4, key(32)), tb(5, cat(validAuth, []byte{0})))},
	{"kex/inner empty", newKEX, cat(tv(1, 7), tv(2, 9), tb(3, key(32)), tb(4, key(32)), tb(5, nil))},
	{"kex/message as varint", newKEX, cat(tv(1, 7), tv(2, 9), tb(3, key(32)), tb(4, key(32)), tv(5, 0))},
	{"kex/unknown field 6", newKEX, cat(validKEX, tv(6, 0))},
	{"kex/duplicate message", newKEX, cat(validKEX, tb(5, validAuth))},
	{"kex/pk_id above uint32", newKEX, cat(tv(1, 1<<33), tv(2, 9), tb(3, key(32)), tb(4, key(32)), tb(5, validAuth))},

	// SignalMessage (protobuf only)
	{"signal/empty", newSignal, nil},
	{"signal/unprefixed key", newSignal, cat(tb(1, key(32)), tv(2, 3), tv(3, 1))},
	{"signal/key prefix 0x06", newSignal, cat(tb(1, append([]byte{6}, key(32)...)), tv(2, 3), tv(3, 1))},
	{"signal/key 34 bytes", newSignal, cat(tb(1, lkey(33)), tv(2, 3), tv(3, 1))},
	{"signal/missing counter", newSignal, cat(tb(1, lkey(32)), tv(3, 1), tb(4, key(48)))},
	{"signal/missing previous counter", newSignal, cat(tb(1, lkey(32)), tv(2, 3), tb(4, key(48)))},
	{"signal/missing ratchet key", newSignal, cat(tv(2, 3), tv(3, 1), tb(4, key(48)))},
	{"signal/out of order", newSignal, cat(tv(2, 3), tb(1, lkey(32)), tv(3, 1))},
	{"signal/unknown field", newSignal, cat(validSignal, tv(5, 1))},
	{"signal/trailing", newSignal, cat(validSignal, []byte{0x80})},

	// PreKeySignalMessage (protobuf only)
	{"prekey/empty", newPreKey, nil},
	{"prekey/missing pre key id", newPreKey, cat(tb(2, lkey(32)), tb(3, lkey(32)), tb(4, validFramed), tv(6, 9))},
	{"prekey/missing signed pre key id", newPreKey, cat(tv(1, 7), tb(2, lkey(32)), tb(3, lkey(32)), tb(4, validFramed))},
	{"prekey/missing base key", newPreKey, cat(tv(1, 7), tb(3, lkey(32)), tb(4, validFramed), tv(6, 9))},
	{"prekey/missing identity key", newPreKey, cat(tv(1, 7), tb(2, lkey(32)), tb(4, validFramed), tv(6, 9))},
	{"prekey/missing message", newPreKey, cat(tv(1, 7), tb(2, lkey(32)), tb(3, lkey(32)), tv(6, 9))},
	{"prekey/unprefixed identity key", newPreKey, cat(tv(1, 7), tb(2, lkey(32)), tb(3, key(32)), tb(4, validFramed), tv(6, 9))},
	{"prekey/duplicate registration id", newPreKey, cat(tv(5, 1), validPreKey)},
	{"prekey/duplicate out of order", newPreKey, cat(tv(6, 9), validPreKey)},
	{"prekey/unknown field 7", newPreKey, cat(validPreKey, tv(7, 0))},
	{"prekey/trailing", newPreKey, cat(validPreKey, []byte{0x30})},
}

func newOMEMO() message  { return &OMEMOMessage{} }
func newAuth() message   { return &OMEMOAuthenticatedMessage{} }
func newKEX() message    { return &OMEMOKeyExchange{} }
func newSignal() message { return &SignalMessage{} }
func newPreKey() message { return &PreKeySignalMessage{} }

func TestMalformed(t *testing.T) {
	for _, c := range malformedCases {
		t.Run(c.name, func(t *testing.T) {
			m := c.new()
			err := m.Unmarshal(c.in)
			if err == nil {
				t.Fatalf("Unmarshal(%x) succeeded: %+v", c.in, m)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			if !reflect.DeepEqual(m, c.new()) {
				t.Errorf("failed Unmarshal left %+v, want zero value", m)
			}
		})
	}
}

func TestMalformedFramed(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"version only", []byte{LegacyVersion}},
		{"no protobuf", cat([]byte{LegacyVersion}, key(8))},
		{"version 0x32", cat([]byte{0x32}, validSignal, key(8))},
		{"version 0x23", cat([]byte{0x23}, validSignal, key(8))},
		{"MAC missing", cat([]byte{LegacyVersion}, validSignal)},
		{"MAC 9 bytes", cat([]byte{LegacyVersion}, validSignal, key(9))},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, _, _, err := ParseFramedSignalMessage(c.in); !errors.Is(err, ErrMalformed) {
				t.Errorf("ParseFramedSignalMessage(%x) = %v, want ErrMalformed", c.in, err)
			}
		})
	}
	var m PreKeySignalMessage
	for _, in := range [][]byte{nil, validPreKey, cat([]byte{0x32}, validPreKey)} {
		if err := m.UnmarshalFramed(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("UnmarshalFramed(%x) = %v, want ErrMalformed", in, err)
		}
	}
}

// ProtoBuf.js (libsignal-protocol-javascript) writes PreKeySignalMessage
// fields in declaration order, 5, 1, 6, 2, 3, 4.
func TestPreKeySignalMessageDeclarationOrder(t *testing.T) {
	in := cat(tv(5, 1), tv(1, 7), tv(6, 9), tb(2, lkey(32)), tb(3, lkey(32)), tb(4, validFramed))
	var m PreKeySignalMessage
	if err := m.Unmarshal(in); err != nil {
		t.Fatal(err)
	}
	want := PreKeySignalMessage{RegistrationID: 1, HasRegistrationID: true, PreKeyID: 7, SignedPreKeyID: 9,
		BaseKey: key(32), IdentityKey: key(32), Message: validFramed}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("got %+v", m)
	}
	if got := m.Marshal(); !bytes.Equal(got, validPreKey) {
		t.Errorf("Marshal is not canonical:\n got %x\nwant %x", got, validPreKey)
	}
}

func TestUnmarshalDoesNotAlias(t *testing.T) {
	in := append([]byte{}, validKEX...)
	var m OMEMOKeyExchange
	if err := m.Unmarshal(in); err != nil {
		t.Fatal(err)
	}
	before := m.Marshal()
	for i := range in {
		in[i] = 0xee
	}
	if after := m.Marshal(); !bytes.Equal(before, after) {
		t.Error("decoded message changed with its input buffer")
	}
}

func TestUnmarshalResets(t *testing.T) {
	m := OMEMOMessage{N: 9, Ciphertext: []byte{1}}
	if err := m.Unmarshal(cat(tv(1, 3), tv(2, 1), tb(3, key(32)))); err != nil {
		t.Fatal(err)
	}
	if m.Ciphertext != nil || m.N != 3 {
		t.Errorf("stale fields survived Unmarshal: %+v", m)
	}
}

// The zero and maximum values and absent/empty ciphertexts round-trip.
func TestRoundTrip(t *testing.T) {
	for _, m := range []message{
		&OMEMOMessage{DHPub: key(32)},
		&OMEMOMessage{N: ^uint32(0), PN: ^uint32(0), DHPub: key(32), Ciphertext: []byte{}},
		&OMEMOAuthenticatedMessage{MAC: key(16), Message: []byte{}},
		&OMEMOKeyExchange{IK: key(32), EK: key(32), Message: OMEMOAuthenticatedMessage{MAC: key(16), Message: validOMEMOMessage}},
		&SignalMessage{RatchetKey: key(32)},
		&SignalMessage{RatchetKey: key(32), Counter: ^uint32(0), Ciphertext: []byte{}},
		&PreKeySignalMessage{BaseKey: key(32), IdentityKey: key(32), Message: []byte{}, HasRegistrationID: true},
	} {
		b := m.Marshal()
		got := reflect.New(reflect.TypeOf(m).Elem()).Interface().(message)
		if err := got.Unmarshal(b); err != nil {
			t.Errorf("%T: %v", m, err)
			continue
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip of %+v gave %+v", m, got)
		}
	}
}
