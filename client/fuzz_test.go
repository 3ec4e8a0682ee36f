package client

import (
	"os"
	"path/filepath"
	"testing"

	"mellium.im/xmpp/jid"

	"hush.im/sce"
)

// FuzzReplies feeds arbitrary stanzas to every parser of server replies
// and notifications. None may panic; each either fails with ErrMalformed
// or returns a value.
func FuzzReplies(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.xml"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`<iq xmlns="jabber:client" type="result"><query xmlns="http://jabber.org/protocol/disco#info"><identity category="client" type="pc"/><feature var="a"/></query></iq>`,
		`<iq xmlns="jabber:client" type="result"><pubsub xmlns="http://jabber.org/protocol/pubsub"><items node="n"><item id="1"><x xmlns="urn:x"/></item><item id="2"/></items></pubsub></iq>`,
		`<iq xmlns="jabber:client" type="result"><pubsub xmlns="http://jabber.org/protocol/pubsub#owner"><configure node="n"><x xmlns="jabber:x:data" type="form"><field var="pubsub#access_model"><value>open</value></field></x></configure></pubsub></iq>`,
		`<message xmlns="jabber:client" from="alice@example.org"><received xmlns="urn:xmpp:carbons:2"><forwarded xmlns="urn:xmpp:forward:0"><message xmlns="jabber:client"><body>x</body></message></forwarded></received></message>`,
	} {
		f.Add([]byte(s))
	}
	own := jid.MustParse("alice@example.org/dev")
	c := &Client{own: own}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := sce.ParseStanza(b)
		if err != nil {
			return
		}
		se := parseStanzaError(st)
		_ = se.Error()
		_ = publishOptionError("n", []string{"pubsub#max_items"}, se)
		_ = c.fromOwnAccount(st)
		_ = c.offline(st)
		_, _, _ = sce.Forwarded(st)
		for _, ch := range st.Children {
			switch ch.Name {
			case name(nsPubSubEvent, "event"):
				_, _ = parseEvent(senderOf(st, own), ch)
			case name(nsMAM, "fin"):
				_, _ = parseFin(ch)
			case name(nsDiscoInfo, "query"):
				_, _ = parseDiscoInfo(ch)
			case name(nsPubSub, "pubsub"):
				if its, ok := child(ch, name(nsPubSub, "items")); ok {
					_, _ = parseItems(its, name(nsPubSub, "item"))
				}
			case name(nsPubSubOwner, "pubsub"):
				if conf, ok := child(ch, name(nsPubSubOwner, "configure")); ok {
					if x, ok := child(conf, name(nsDataForms, "x")); ok {
						_ = parseForm(x)
					}
				}
			}
			_, _ = marshalElement(ch)
		}
	})
}
