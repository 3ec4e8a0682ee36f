package client

import (
	"context"
	"testing"

	"hush.im/sce"
)

const benchMessage = `<message xmlns="jabber:client" from="bob@example.org/x" to="alice@example.org/dev" type="chat" id="m1"><body>Hello, this is a message of ordinary length for a chat.</body><origin-id xmlns="urn:xmpp:sid:0" id="o1"/><store xmlns="urn:xmpp:hints"/></message>`

// BenchmarkReceive measures a message from the wire to a handler: mellium's
// decoder, sce.ReadStanza, the queue and dispatch.
func BenchmarkReceive(b *testing.B) {
	c, fs := newPair(b)
	got := make(chan struct{}, 1024)
	c.HandleMessage(func(context.Context, *Incoming) { got <- struct{}{} })
	msg := []byte(benchMessage)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		for i := 0; i < b.N; i++ {
			if _, err := fs.conn.Write(msg); err != nil {
				return
			}
		}
	}()
	for i := 0; i < b.N; i++ {
		<-got
	}
}

// BenchmarkFloorParseStanza is the floor of BenchmarkReceive: parsing the
// same stanza from bytes, nothing else.
func BenchmarkFloorParseStanza(b *testing.B) {
	msg := []byte(benchMessage)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := sce.ParseStanza(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSend measures sending a message: sce serialization and
// mellium's encoder onto the wire.
func BenchmarkSend(b *testing.B) {
	c, fs := newPair(b)
	st, err := sce.ParseStanza([]byte(benchMessage))
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		for range fs.in {
		}
	}()
	b.ReportAllocs()
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		if err := c.Send(ctx, st); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFloorMarshalStanza is the floor of BenchmarkSend: serializing
// the stanza.
func BenchmarkFloorMarshalStanza(b *testing.B) {
	st, err := sce.ParseStanza([]byte(benchMessage))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := st.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}
