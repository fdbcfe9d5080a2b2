package replicator

import (
	"strings"
	"testing"

	"github.com/ds2mb/ds2mb/metabase"
	"github.com/ds2mb/ds2mb/schema"
)

const (
	org   = "cn=Example,cn=Microsoft Exchange,cn=Services,cn=Configuration,dc=example,dc=com"
	srv1  = "cn=SERVER01,cn=Servers,cn=AG,cn=Administrative Groups," + org
	srv2  = "cn=SERVER02,cn=Servers,cn=AG,cn=Administrative Groups," + org
	smtp1 = "cn=SMTP,cn=Protocols," + srv1
	vs1DN = "cn=1," + smtp1
	vs2DN = "cn=2," + smtp1
	pols  = "cn=Recipient Policies," + org
	conns = "cn=Connections,cn=RG,cn=Routing Groups,cn=AG,cn=Administrative Groups," + org
	arriv = "{FF3CAA23-00B9-11D2-9DFB-00C04FA322BA}"
	bid   = "{6B2E1D5A-3F4C-4E8B-9A7D-1C2B3E4F5A60}"
)

func obj(dn string, kv ...string) *Object {
	o := &Object{DN: dn, Attrs: map[string][]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		o.Attrs[kv[i]] = append(o.Attrs[kv[i]], kv[i+1])
	}
	return o
}

func baseMirror() Mirror {
	return Mirror{
		"u-svc":  obj(smtp1, "objectClass", "protocolCfgSMTP", "msExchSmtpMaxHopCount", "30", "adminDisplayName", "svc"),
		"u-vs1":  obj(vs1DN, "objectClass", "protocolCfgSMTPServer", "cn", "1", "msExchServerBindings", "127.0.0.1:2525:", "msExchSmtpMaxRecipients", "100"),
		"u-vs2":  obj(vs2DN, "objectClass", "protocolCfgSMTPServer", "cn", "2", "msExchServerBindings", "127.0.0.1:2526:"),
		"u-o1":   obj("cn=1,cn=SMTP,cn=Protocols,"+srv2, "objectClass", "protocolCfgSMTPServer", "msExchServerBindings", "127.0.0.1:2625:"),
		"u-osvc": obj("cn=SMTP,cn=Protocols,"+srv2, "objectClass", "protocolCfgSMTP", "msExchSmtpMaxHopCount", "99"),
		"u-def":  obj("cn=Default Policy,"+pols, "objectClass", "msExchRecipientPolicy", "gatewayProxy", "SMTP:@Example.COM", "gatewayProxy", "X400:c=US;a= ;"),
		"u-par": obj("cn=Partner,"+pols, "objectClass", "msExchRecipientPolicy", "gatewayProxy", "smtp:@partner.example.org",
			"gatewayProxy", "smtp:%g.%s@both.example.net", "msExchNonAuthoritativeDomains", "@partner.example.org"),
		"u-con": obj("cn=Internet,"+conns, "objectClass", "msExchRoutingSMTPConnector", "routingList", "SMTP:*.contoso.com;1",
			"routingList", "SMTP:*;1", "routingList", "X400:c=US;1", "msExchSmtpSmartHost", "smarthost.example.net", "msExchSourceBridgeheadServersDN", strings.ToUpper(vs1DN)),
		"u-bind": obj("cn=Stamp,"+vs1DN, "objectClass", "ds2mbEventBinding", "ds2mbEventType", "OnArrival", "ds2mbBindingID", bid,
			"ds2mbSinkClass", "HeaderStamp", "adminDisplayName", "Stamp", "ds2mbPriority", "100", "ds2mbRule", "MAIL FROM=*@example.com",
			"ds2mbSinkProperty", "Header=X-A: b=c"),
	}
}

func TestRender(t *testing.T) {
	r := Render(baseMirror(), "server01")
	want := []struct{ loc, class, prop, text string }{
		{schema.ServiceLocation, metabase.ClassService, "HopCount", "30"},
		{"/LM/SmtpSvc/1", metabase.ClassServer, "ServerBindings", "127.0.0.1:2525:"},
		{"/LM/SmtpSvc/1", metabase.ClassServer, "MaxRecipients", "100"},
		{"/LM/SmtpSvc/2", metabase.ClassServer, "ServerBindings", "127.0.0.1:2526:"},
		{"/LM/SmtpSvc/1/Domain/example.com", metabase.ClassDomain, "RouteAction", "16"},
		{"/LM/SmtpSvc/2/Domain/example.com", metabase.ClassDomain, "RouteAction", "16"},
		{"/LM/SmtpSvc/1/Domain/partner.example.org", metabase.ClassDomain, "RouteAction", "4096"},
		{"/LM/SmtpSvc/1/Domain/both.example.net", metabase.ClassDomain, "RouteAction", "16"},
		{"/LM/SmtpSvc/1/Domain/*.contoso.com", metabase.ClassDomain, "RouteAction", "2"},
		{"/LM/SmtpSvc/1/Domain/*.contoso.com", metabase.ClassDomain, "RouteActionString", "smarthost.example.net"},
		{schema.BindingLocation(1, arriv, bid), metabase.ClassConfig, "SinkClass", "HeaderStamp"},
		{schema.BindingLocation(1, arriv, bid), metabase.ClassConfig, "DisplayName", "Stamp"},
		{schema.BindingLocation(1, arriv, bid) + "/SourceProperties", metabase.ClassConfig, "Priority", "100"},
		{schema.BindingLocation(1, arriv, bid) + "/SourceProperties", metabase.ClassConfig, "Rule", "MAIL FROM=*@example.com"},
		{schema.BindingLocation(1, arriv, bid) + "/SinkProperties", metabase.ClassConfig, "Header", "X-A: b=c"},
	}
	for _, w := range want {
		n := r.Nodes[strings.ToLower(w.loc)]
		if n == nil {
			t.Errorf("%s not rendered", w.loc)
			continue
		}
		if n.Class != w.class {
			t.Errorf("%s class %s, want %s", w.loc, n.Class, w.class)
		}
		if got := n.Props[w.prop].Text; got != w.text {
			t.Errorf("%s %s = %q, want %q", w.loc, w.prop, got, w.text)
		}
	}
	if n := r.Nodes[strings.ToLower(schema.ServiceLocation)]; n.Props["DisplayName"].Text != "" || n.Props["HopCount"].Text == "99" {
		t.Errorf("service node has a binding property or another server's value: %+v", n.Props)
	}
	if r.Nodes["/lm/smtpsvc/2/domain/*.contoso.com"] != nil {
		t.Errorf("connector rendered on a virtual server that is not its bridgehead")
	}
	if r.Nodes["/lm/smtpsvc/1/domain/*"] != nil {
		t.Errorf("address space * rendered as a domain")
	}
	if !r.Nodes[strings.ToLower(schema.BindingLocation(1, arriv, bid)+"/SinkProperties")].Props["Header"].Custom {
		t.Errorf("sink property not a Custom")
	}
	if len(r.Refused) != 0 {
		t.Errorf("refusals: %+v", r.Refused)
	}
	for _, n := range r.Nodes {
		if strings.Contains(n.Props["ServerBindings"].Text, "2625") {
			t.Errorf("SERVER02's virtual server rendered at %s", n.Location)
		}
	}
	// The rendered subtree alone is a valid metabase.
	tr := metabase.New()
	for _, n := range r.Nodes {
		node := tr.Ensure(n.Location, n.Class)
		for name, p := range n.Props {
			setProp(node, name, p)
		}
	}
	if probs := tr.Validate(); probs != nil {
		t.Errorf("rendered tree invalid: %v", probs)
	}
}

func TestRenderRefusals(t *testing.T) {
	cases := []struct {
		name       string
		edit       func(Mirror)
		attr       string
		structural bool
	}{
		{"negative integer", func(m Mirror) { m["u-vs1"].Attrs["msExchSmtpMaxRecipients"] = []string{"-5"} }, "msExchSmtpMaxRecipients", false},
		{"not a boolean", func(m Mirror) { m["u-vs1"].Attrs["msExchServerAutoStart"] = []string{"yes"} }, "msExchServerAutoStart", false},
		{"bad retry list", func(m Mirror) { m["u-svc"].Attrs["msExchSmtpRemoteQueueRetries"] = []string{"10,x"} }, "msExchSmtpRemoteQueueRetries", false},
		{"bad vs number", func(m Mirror) { m["u-vs2"].DN = "cn=two," + smtp1 }, "cn", true},
		{"unknown event type", func(m Mirror) { m["u-bind"].Attrs["ds2mbEventType"] = []string{"OnFoo"} }, "ds2mbEventType", true},
		{"bad binding id", func(m Mirror) { m["u-bind"].Attrs["ds2mbBindingID"] = []string{"123"} }, "ds2mbBindingID", true},
		{"sink property without =", func(m Mirror) { m["u-bind"].Attrs["ds2mbSinkProperty"] = []string{"Header"} }, "ds2mbSinkProperty", false},
		{"sink property named like a catalogue property", func(m Mirror) { m["u-bind"].Attrs["ds2mbSinkProperty"] = []string{"Priority=1"} }, "ds2mbSinkProperty", false},
		{"bad policy domain", func(m Mirror) { m["u-def"].Attrs["gatewayProxy"] = []string{"SMTP:@exa mple.com"} }, "gatewayProxy", false},
		{"bad smart host", func(m Mirror) { m["u-con"].Attrs["msExchSmtpSmartHost"] = []string{"bad host!"} }, "msExchSmtpSmartHost", true},
		{"invalid UTF-8", func(m Mirror) { m["u-svc"].Attrs["msExchSmtpSendNDRTo"] = []string{"\x80"} }, "msExchSmtpSendNDRTo", false},
		{"control character", func(m Mirror) { m["u-bind"].Attrs["ds2mbRule"] = []string{"EHLO=a\x01"} }, "ds2mbRule", false},
		{"bad cost", func(m Mirror) { m["u-con"].Attrs["routingList"] = []string{"SMTP:a.com;zero"} }, "routingList", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := baseMirror()
			c.edit(m)
			r := Render(m, "SERVER01")
			found := false
			for _, f := range r.Refused {
				if f.Attribute == c.attr && f.DN != "" && f.Reason != "" && f.Structural == c.structural {
					found = true
				}
			}
			if !found {
				t.Errorf("no refusal of %s: %+v", c.attr, r.Refused)
			}
			if r.Nodes["/lm/smtpsvc/1"] == nil {
				t.Errorf("the rest was not rendered")
			}
		})
	}
}

func TestRenderLocalWinsAndCost(t *testing.T) {
	m := baseMirror()
	m["u-con"].Attrs["routingList"] = []string{"SMTP:example.com;1", "SMTP:fabrikam.com;5"}
	m["u-con2"] = obj("cn=Cheap,"+conns, "objectClass", "msExchRoutingSMTPConnector", "routingList", "SMTP:fabrikam.com;2")
	r := Render(m, "SERVER01")
	if got := r.Nodes["/lm/smtpsvc/1/domain/example.com"].Props["RouteAction"].Text; got != "16" {
		t.Errorf("local domain also served by a connector: RouteAction %s, want 16", got)
	}
	n := r.Nodes["/lm/smtpsvc/1/domain/fabrikam.com"]
	if n.Origin != "u-con2" || n.Props["RouteAction"].Text != "4096" {
		t.Errorf("lowest cost did not win: %+v", n)
	}
	if r.Nodes["/lm/smtpsvc/2/domain/fabrikam.com"] == nil {
		t.Errorf("connector without bridgeheads not on every virtual server")
	}
}

func TestParseDN(t *testing.T) {
	rs := parseDN(`cn=a\,b,CN=Host\2Cx , dc=example`)
	if len(rs) != 3 || rs[0].val != "a,b" || rs[1].typ != "cn" || rs[1].val != "Host,x" || rs[2].val != "example" {
		t.Fatalf("%+v", rs)
	}
	if normDN("CN=X, DC=Y") != normDN("cn=x,dc=y") {
		t.Errorf("normDN not case-insensitive")
	}
}

func TestStateValues(t *testing.T) {
	m := Mirror{"u": obj("cn=x", "bin", "\x00\x01\xff", "txt", "b64:literal", "plain", "été")}
	back, err := mirrorFromState(mirrorToState(m))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range m["u"].Attrs {
		if back["u"].Attrs[k][0] != v[0] {
			t.Errorf("%s: %q became %q", k, v[0], back["u"].Attrs[k][0])
		}
	}
}

func TestStateFile(t *testing.T) {
	path := t.TempDir() + "/s.json"
	m := baseMirror()
	m["u-bin"] = obj("cn=b", "msExchSmtpRelayIpList", "\x00\x01\xff")
	owned := map[string]*OwnedNode{"/lm/smtpsvc/1": {Class: metabase.ClassServer, Created: true, Origin: "u-vs1", Props: map[string]DesiredProp{"MaxRecipients": {Text: "100"}}}}
	if err := saveState(path, &State{Server: "SERVER01", Base: "cn=x", Source: "syncrepl", Cookie: []byte("rid=000,csn=1"), Metabase: 7, Owned: owned}, m); err != nil {
		t.Fatal(err)
	}
	st, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	back, err := mirrorFromState(st.Objects)
	if err != nil {
		t.Fatal(err)
	}
	if st.Server != "SERVER01" || string(st.Cookie) != "rid=000,csn=1" || st.Metabase != 7 || len(back) != len(m) ||
		back["u-bin"].Attrs["msExchSmtpRelayIpList"][0] != "\x00\x01\xff" || st.Owned["/lm/smtpsvc/1"].Props["MaxRecipients"].Text != "100" {
		t.Errorf("state round trip: %+v", st)
	}
}

func FuzzParseDN(f *testing.F) {
	for _, s := range []string{vs1DN, `cn=a\,b,dc=x`, `cn=\41\42`, "", ",,", "=", `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rs := parseDN(s)
		if normDN(s) != joinDN(rs) {
			t.Fatalf("normDN differs from joinDN(parseDN)")
		}
	})
}

// FuzzNeverInvalid: whatever a directory attribute holds, the merged
// metabase validates.
func FuzzNeverInvalid(f *testing.F) {
	attrs := []string{"msExchServerBindings", "msExchSmtpMaxRecipients", "msExchSmtpRemoteQueueRetries", "msExchSmtpSmartHost",
		"msExchSmtpFullyQualifiedDomainName", "msExchAuthenticationFlags", "msExchSmtpRelayIpList", "gatewayProxy", "routingList",
		"ds2mbSinkProperty", "ds2mbRule", "ds2mbBindingID", "ds2mbEventType", "msExchServerAutoStart", "msExchSmtpSendNDRTo"}
	for i := range attrs {
		f.Add(uint8(i), "x")
		f.Add(uint8(i), "-5")
		f.Add(uint8(i), "127.0.0.1:2526:")
	}
	f.Fuzz(func(t *testing.T, which uint8, val string) {
		m := baseMirror()
		a := attrs[int(which)%len(attrs)]
		for _, id := range []string{"u-vs1", "u-svc", "u-def", "u-con", "u-bind"} {
			m[id].Attrs[a] = []string{val}
		}
		out, _, _, err := Merge(metabase.New(), Render(m, "SERVER01"), nil)
		if err != nil {
			t.Fatalf("%s=%q: %v", a, val, err)
		}
		if probs := out.Validate(); probs != nil {
			t.Fatalf("%s=%q: invalid: %v", a, val, probs)
		}
		if _, err := metabase.Parse(out.Bytes()); err != nil {
			t.Fatalf("%s=%q: unparsable: %v", a, val, err)
		}
	})
}

// FuzzRenderDN: odd DNs (renames, other shapes) never panic Render nor
// produce an invalid metabase.
func FuzzRenderDN(f *testing.F) {
	for _, s := range []string{vs1DN, "cn=0," + smtp1, "cn=01," + smtp1, "cn=1048577," + smtp1, "cn=x,cn=1," + smtp1, "cn=SMTP,cn=Protocols", "", `cn=1\,2,` + smtp1} {
		f.Add(s, uint8(0))
	}
	ids := []string{"u-vs1", "u-svc", "u-bind", "u-con", "u-def"}
	f.Fuzz(func(t *testing.T, dn string, which uint8) {
		m := baseMirror()
		m[ids[int(which)%len(ids)]].DN = dn
		out, _, _, err := Merge(metabase.New(), Render(m, "SERVER01"), nil)
		if err != nil {
			t.Fatalf("%q: %v", dn, err)
		}
		if probs := out.Validate(); probs != nil {
			t.Fatalf("%q: invalid: %v", dn, probs)
		}
	})
}
