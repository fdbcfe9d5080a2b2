package replicator_test

import (
	"path/filepath"
	"testing"

	"github.com/ds2mb/ds2mb/deploy/localdir"
	"github.com/ds2mb/ds2mb/schema"
)

// TestObjectKinds: every object kind, added, modified and deleted in the
// directory, is reflected at the right Location with the right value.
func TestObjectKinds(t *testing.T) {
	for _, mode := range []string{"syncrepl", "poll"} {
		t.Run(mode, func(t *testing.T) { objectKinds(t, mode) })
	}
}

func objectKinds(t *testing.T, mode string) {
	srv := localdir.StartT(t, localdir.Options{})
	mb := filepath.Join(t.TempDir(), "MetaBase.xml")
	rn := start(t, srv, mb, mode)

	// Initial full replication of the sample organisation.
	waitProp(t, mb, vs1, "ServerBindings", "127.0.0.1:2525:")
	valid(t, mb)
	checks := []struct{ loc, name, want string }{
		{schema.ServiceLocation, "HopCount", "30"},
		{schema.ServiceLocation, "SmtpRemoteProgressiveRetry", "10,10,10,15"},
		{schema.ServiceLocation, "RemoteTimeout", "600"},
		{schema.ServiceLocation, "BadMailDirectory", "Badmail"},
		{vs1, "MaxMessageSize", "10485760"},
		{vs1, "MaxRecipients", "100"},
		{vs1, "ServerAutoStart", "TRUE"},
		{vs1, "FullyQualifiedDomainName", "server01.example.com"},
		{vs2, "ServerBindings", "127.0.0.1:2526:"},
		{vs2, "MaxMessageSize", "5242880"},
		{schema.DomainLocation(1, "example.com"), "RouteAction", "16"},
		{schema.DomainLocation(2, "example.com"), "RouteAction", "16"},
		{schema.DomainLocation(1, "partner.example.org"), "RouteAction", "4096"},
		{schema.DomainLocation(2, "partner.example.org"), "RouteAction", "4096"},
		{schema.DomainLocation(1, "*.contoso.com"), "RouteAction", "2"},
		{schema.DomainLocation(1, "*.contoso.com"), "RouteActionString", "smarthost.example.net"},
		{schema.BindingLocation(1, onArrival, localdir.SampleBindingID), "SinkClass", "ds2mb.HeaderStamp"},
		{schema.BindingLocation(1, onArrival, localdir.SampleBindingID), "DisplayName", "Stamp mail from example.com"},
		{schema.BindingLocation(1, onArrival, localdir.SampleBindingID), "Enabled", "TRUE"},
		{schema.BindingLocation(1, onArrival, localdir.SampleBindingID) + "/SourceProperties", "Priority", "24575"},
		{schema.BindingLocation(1, onArrival, localdir.SampleBindingID) + "/SourceProperties", "Rule", "MAIL FROM=*@example.com"},
		{schema.BindingLocation(1, onArrival, localdir.SampleBindingID) + "/SinkProperties", "Name", "X-Stamped"},
		{schema.BindingLocation(1, onArrival, localdir.SampleBindingID) + "/SinkProperties", "Value", "ds2mb"},
	}
	for _, c := range checks {
		if got := prop(mb, c.loc, c.name); got != c.want {
			t.Errorf("%s %s = %q, want %q", c.loc, c.name, got, c.want)
		}
	}
	tr := load(mb)
	if tr.Node(schema.DomainLocation(2, "*.contoso.com")) != nil {
		t.Errorf("connector with bridgehead VS 1 also rendered on VS 2")
	}
	for _, n := range tr.Nodes() {
		if n.Text("ServerBindings") == "127.0.0.1:2625:" {
			t.Errorf("SERVER02's virtual server replicated at %s", n.Location)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Service object: modify.
	ldif(t, srv, replace(localdir.SampleSMTPDN("SERVER01"), "msExchSmtpMaxHopCount", "40"))
	waitProp(t, mb, schema.ServiceLocation, "HopCount", "40")

	// Virtual server: modify, add, delete.
	ldif(t, srv, replace(localdir.SampleVSDN("SERVER01", 1), "msExchSmtpMaxRecipients", "77"))
	waitProp(t, mb, vs1, "MaxRecipients", "77")
	ldif(t, srv, vsLDIF(3, "127.0.0.1:2527:"))
	waitProp(t, mb, vs3, "ServerBindings", "127.0.0.1:2527:")
	waitProp(t, mb, vs3, "MaxRecipients", "13")
	waitProp(t, mb, schema.DomainLocation(3, "example.com"), "RouteAction", "16") // policies reach every VS
	ldif(t, srv, del(localdir.SampleVSDN("SERVER01", 3)))
	waitNoNode(t, mb, vs3)
	waitNoNode(t, mb, schema.DomainLocation(3, "example.com"))

	// Recipient policy: add a domain, make one authoritative, delete one.
	partner := "cn=Partner Policy," + localdir.SamplePoliciesDN
	def := "cn=Default Policy," + localdir.SamplePoliciesDN
	ldif(t, srv, replace(def, "gatewayProxy", "SMTP:@example.com", "smtp:@new.example.com", "X400:c=US;a= ;p=Example;"))
	waitProp(t, mb, schema.DomainLocation(2, "new.example.com"), "RouteAction", "16")
	ldif(t, srv, "dn: "+partner+"\nchangetype: modify\ndelete: msExchNonAuthoritativeDomains\n-")
	waitProp(t, mb, schema.DomainLocation(1, "partner.example.org"), "RouteAction", "16")
	ldif(t, srv, del(partner))
	waitNoNode(t, mb, schema.DomainLocation(1, "partner.example.org"))
	ldif(t, srv, "dn: cn=Third Policy,"+localdir.SamplePoliciesDN+"\nchangetype: add\nobjectClass: msExchRecipientPolicy\ncn: Third Policy\n"+
		"gatewayProxy: smtp:@relay.example.net\nmsExchNonAuthoritativeDomains: @relay.example.net")
	waitProp(t, mb, schema.DomainLocation(1, "relay.example.net"), "RouteAction", "4096")

	// Connector: smart host change, smart host removed (relay), new space, delete.
	ldif(t, srv, replace(localdir.SampleConnectorDN, "msExchSmtpSmartHost", "[127.0.0.1]"))
	waitProp(t, mb, schema.DomainLocation(1, "*.contoso.com"), "RouteActionString", "[127.0.0.1]")
	ldif(t, srv, "dn: "+localdir.SampleConnectorDN+"\nchangetype: modify\ndelete: msExchSmtpSmartHost\n-")
	waitProp(t, mb, schema.DomainLocation(1, "*.contoso.com"), "RouteAction", "4096")
	waitProp(t, mb, schema.DomainLocation(1, "*.contoso.com"), "RouteActionString", "")
	ldif(t, srv, replace(localdir.SampleConnectorDN, "routingList", "SMTP:fabrikam.com;5", "SMTP:new.example.com;1"))
	waitProp(t, mb, schema.DomainLocation(1, "fabrikam.com"), "RouteAction", "4096")
	waitNoNode(t, mb, schema.DomainLocation(1, "*.contoso.com"))
	if got := prop(mb, schema.DomainLocation(1, "new.example.com"), "RouteAction"); got != "16" {
		t.Errorf("a domain both local and a connector's: RouteAction %q, want 16 (local wins)", got)
	}
	ldif(t, srv, del(localdir.SampleConnectorDN))
	waitNoNode(t, mb, schema.DomainLocation(1, "fabrikam.com"))

	// Event binding: modify, add, delete.
	bl := schema.BindingLocation(1, onArrival, localdir.SampleBindingID)
	ldif(t, srv, replace(localdir.SampleBindingDN(), "ds2mbPriority", "100"))
	waitProp(t, mb, bl+"/SourceProperties", "Priority", "100")
	ldif(t, srv, replace(localdir.SampleBindingDN(), "ds2mbSinkProperty", "Header=X-Other: yes", "Mode=strict"))
	waitProp(t, mb, bl+"/SinkProperties", "Mode", "strict")
	waitProp(t, mb, bl+"/SinkProperties", "Header", "X-Other: yes")
	newID := "{11111111-2222-3333-4444-555555555555}"
	ldif(t, srv, "dn: cn=Log,"+localdir.SampleVSDN("SERVER01", 2)+"\nchangetype: add\nobjectClass: ds2mbEventBinding\ncn: Log\n"+
		"ds2mbEventType: OnSessionStart\nds2mbBindingID: "+newID+"\nds2mbSinkClass: Logger\nds2mbBindingEnabled: FALSE")
	nl := schema.BindingLocation(2, "{F6628C8F-0D5E-11D2-AA68-00C04FA35B82}", newID)
	waitProp(t, mb, nl, "Enabled", "FALSE")
	ldif(t, srv, del(localdir.SampleBindingDN()))
	waitNoNode(t, mb, bl)
	waitNoNode(t, mb, bl+"/SourceProperties")
	waitNoNode(t, mb, bl+"/SinkProperties")

	valid(t, mb)
	if !rn.has(1003, nil) || !rn.has(1009, nil) {
		t.Errorf("no object-replicated or saved events")
	}
}

// TestRename: a virtual server renamed (modrdn cn=3 → cn=4) moves from
// /LM/SmtpSvc/3 to /LM/SmtpSvc/4, with its policy domains.
func TestRename(t *testing.T) {
	srv := localdir.StartT(t, localdir.Options{})
	mb := filepath.Join(t.TempDir(), "MetaBase.xml")
	start(t, srv, mb, "syncrepl")
	ldif(t, srv, vsLDIF(3, "127.0.0.1:2527:"))
	waitProp(t, mb, vs3, "ServerBindings", "127.0.0.1:2527:")
	ldif(t, srv, "dn: "+localdir.SampleVSDN("SERVER01", 3)+"\nchangetype: modrdn\nnewrdn: cn=4\ndeleteoldrdn: 1")
	waitProp(t, mb, schema.ServerLocation(4), "ServerBindings", "127.0.0.1:2527:")
	waitNoNode(t, mb, vs3)
	waitNoNode(t, mb, schema.DomainLocation(3, "example.com"))
	waitProp(t, mb, schema.DomainLocation(4, "example.com"), "RouteAction", "16")
	valid(t, mb)
}
