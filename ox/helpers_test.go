package ox

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"hush.im/sce"
	"mellium.im/xmpp/jid"
)

// vectorTime is when testdata/gen.sh made the GnuPG messages (their <time/>
// affix and signature creation time); vectorNow is a minute later.
var (
	vectorTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	vectorNow  = vectorTime.Add(time.Minute)
)

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// vectorKey returns the one key in testdata/name.
func vectorKey(t testing.TB, name string) *Key {
	t.Helper()
	keys, err := ParseKeys(readTestdata(t, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(keys) != 1 {
		t.Fatalf("%s: %d keys", name, len(keys))
	}
	return keys[0]
}

func mustJID(s string) jid.JID { return jid.MustParse(s) }

func mustStanza(t testing.TB, s string) *sce.Stanza {
	t.Helper()
	st, err := sce.ParseStanza([]byte(s))
	if err != nil {
		t.Fatalf("parse stanza: %v", err)
	}
	return st
}

// Generated keys are shared by the tests: making them is the slow part.
var (
	genOnce             sync.Once
	genAlice, genBob    *Key
	genCarol, genAlice2 *Key
	genErr              error
)

func testKeys(t testing.TB) (alice, bob, carol, alice2 *Key) {
	t.Helper()
	genOnce.Do(func() {
		for _, p := range []struct {
			k   **Key
			jid string
		}{{&genAlice, "alice@example.org"}, {&genBob, "bob@example.org"}, {&genCarol, "carol@example.org"}, {&genAlice2, "alice@example.org"}} {
			if *p.k, genErr = GenerateKey(mustJID(p.jid), Curve25519); genErr != nil {
				return
			}
		}
	})
	if genErr != nil {
		t.Fatal(genErr)
	}
	return genAlice, genBob, genCarol, genAlice2
}

const chat = `<message xmlns='jabber:client' from='alice@example.org/phone' to='bob@example.org' type='chat' id='m1'>` +
	`<body>Meet me at the lighthouse.</body><origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message>`
