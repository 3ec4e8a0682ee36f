package trust_test

import (
	"reflect"
	"testing"

	"hush.im/omemo"
	"hush.im/trust"
	"mellium.im/xmpp/jid"
)

func TestPlans(t *testing.T) {
	V, U, D, T := omemo.TrustVerified, omemo.TrustUndecided, omemo.TrustDistrusted, omemo.TrustTrusted
	carol := jid.MustParse("carol@example.net")
	ep := func(j jid.JID, k byte, l omemo.TrustLevel) trust.Endpoint {
		return trust.Endpoint{JID: j, IdentityKey: key(k), Trust: l}
	}
	// This device is A1 (alice). A2 verified, A3 undecided, B1 verified,
	// B2 trusted, C1 verified, C2 distrusted.
	a2, a3 := ep(alice, 2, V), ep(alice, 3, U)
	b1, b2 := ep(bob, 11, V), ep(bob, 12, T)
	c1, c2 := ep(carol, 21, V), ep(carol, 22, D)
	known := []trust.Endpoint{a2, a3, b1, b2, c1, c2}
	msg := func(trusted bool, es ...trust.Endpoint) *trust.TrustMessage {
		tm := trust.NewATMMessage()
		for _, e := range es {
			n := len(tm.Owners)
			if n == 0 || !tm.Owners[n-1].JID.Equal(e.JID) {
				tm.Owners = append(tm.Owners, trust.KeyOwner{JID: e.JID})
				n++
			}
			tm.Owners[n-1].Keys = append(tm.Owners[n-1].Keys, trust.KeyDecision{Key: e.IdentityKey, Trust: trusted})
		}
		return tm
	}
	verifiedNow := func(e trust.Endpoint) trust.Endpoint { e.Trust = V; return e }
	for _, tc := range []struct {
		name string
		got  []trust.Delivery
		want []trust.Delivery
	}{
		{"authenticate a contact's key (§4.1.1)",
			trust.PlanAuthentication(jid.MustParse("alice@example.org/a1"), ep(bob, 12, V), known),
			[]trust.Delivery{
				{To: []trust.Endpoint{a2}, Message: msg(true, verifiedNow(b2))},
				{To: []trust.Endpoint{verifiedNow(b2)}, Message: msg(true, a2)},
			}},
		{"authenticate an own key (§4.2.1)",
			trust.PlanAuthentication(alice, ep(alice, 3, V), known),
			[]trust.Delivery{
				{To: []trust.Endpoint{a2, b1, c1}, Message: msg(true, verifiedNow(a3))},
				{To: []trust.Endpoint{verifiedNow(a3)}, Message: msg(true, a2, b1, c1)},
			}},
		{"authenticate with nobody else verified",
			trust.PlanAuthentication(alice, ep(bob, 12, V), []trust.Endpoint{a3, b1}),
			nil},
		{"distrust an own key (§4.3.1)",
			trust.PlanDistrust(alice, ep(alice, 2, D), known),
			[]trust.Delivery{{To: []trust.Endpoint{b1, c1}, Message: msg(false, ep(alice, 2, D))}}},
		{"distrust a contact's key (§4.4.1)",
			trust.PlanDistrust(alice, ep(bob, 11, D), known),
			[]trust.Delivery{{To: []trust.Endpoint{a2}, Message: msg(false, ep(bob, 11, D))}}},
		{"distrust with no verified own device",
			trust.PlanDistrust(alice, ep(bob, 11, D), []trust.Endpoint{a3, b1}),
			nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !reflect.DeepEqual(tc.got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", tc.got, tc.want)
			}
		})
	}
	// The messages are about the target only, never about who receives
	// them, and every recipient is verified.
	for _, d := range trust.PlanAuthentication(alice, ep(alice, 3, V), known) {
		for _, e := range d.To {
			if !trust.MaySend(e.Trust) && !(e.JID.Equal(alice) && e.IdentityKey[0] == 3) {
				t.Errorf("trust message planned for an unverified device %v", e)
			}
		}
	}
	// EndpointOf.
	e := trust.EndpointOf(omemo.DeviceInfo{Address: omemo.Address{JID: jid.MustParse("bob@example.com/x"), Device: 3}, IdentityKey: key(7), Trust: V})
	if !reflect.DeepEqual(e, ep(bob, 7, V)) {
		t.Errorf("EndpointOf = %+v", e)
	}
}
