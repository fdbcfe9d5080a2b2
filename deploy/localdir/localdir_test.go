package localdir_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ds2mb/ds2mb/deploy/localdir"
)

func search(t *testing.T, c *ldap.Conn, base string, scope int, filter string, attrs ...string) []*ldap.Entry {
	t.Helper()
	res, err := c.Search(ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil))
	if err != nil {
		t.Fatalf("search %s %s: %v", base, filter, err)
	}
	return res.Entries
}

// TestSampleReadBack starts slapd with the sample organisation and reads it
// back with go-ldap.
func TestSampleReadBack(t *testing.T) {
	s := localdir.StartT(t, localdir.Options{})
	if !strings.HasPrefix(s.URL, "ldap://127.0.0.1:") || s.Port == 0 {
		t.Fatalf("URL %q, port %d: want a loopback URL with a port", s.URL, s.Port)
	}
	c, err := s.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	all := search(t, c, s.Suffix, ldap.ScopeWholeSubtree, "(objectClass=*)", "dn")
	if len(all) != localdir.SampleEntries {
		t.Errorf("sample has %d entries, want %d", len(all), localdir.SampleEntries)
	}
	vs := search(t, c, s.ConfigDN, ldap.ScopeWholeSubtree, "(objectClass=protocolCfgSMTPServer)", "dn")
	if len(vs) != 3 {
		t.Errorf("found %d virtual servers, want 3 (SERVER01/1, SERVER01/2, SERVER02/1)", len(vs))
	}
	want := map[string]string{
		"msExchServerBindings":               "127.0.0.1:2525:",
		"msExchServerAutoStart":              "TRUE",
		"msExchSmtpFullyQualifiedDomainName": "server01.example.com",
		"msExchSmtpMaxMessageSize":           "10485760",
		"msExchSmtpMaxRecipients":            "100",
		"msExchSmtpQueueDirectory":           "Queue",
	}
	var names []string
	for k := range want {
		names = append(names, k)
	}
	e := search(t, c, localdir.SampleVSDN("SERVER01", 1), ldap.ScopeBaseObject, "(objectClass=*)", append(names, "objectClass", "entryUUID", "entryCSN")...)
	if len(e) != 1 {
		t.Fatalf("SERVER01/1: %d entries", len(e))
	}
	for k, v := range want {
		if got := e[0].GetAttributeValue(k); got != v {
			t.Errorf("SERVER01/1 %s = %q, want %q", k, got, v)
		}
	}
	if e[0].GetAttributeValue("entryUUID") == "" || e[0].GetAttributeValue("entryCSN") == "" {
		t.Error("slapadd did not give the entry an entryUUID and entryCSN")
	}
	if got := search(t, c, localdir.SampleVSDN("SERVER02", 1), ldap.ScopeBaseObject, "(objectClass=*)", "msExchServerBindings"); got[0].GetAttributeValue("msExchServerBindings") != "127.0.0.1:2625:" {
		t.Errorf("SERVER02/1 bindings = %q", got[0].GetAttributeValue("msExchServerBindings"))
	}
	b := search(t, c, localdir.SampleBindingDN(), ldap.ScopeBaseObject, "(objectClass=ds2mbEventBinding)", "ds2mbSinkProperty", "ds2mbRule", "ds2mbBindingID")
	if len(b) != 1 || b[0].GetAttributeValue("ds2mbSinkProperty") != "Name=X-Stamped" ||
		b[0].GetAttributeValue("ds2mbRule") != "MAIL FROM=*@example.com" || b[0].GetAttributeValue("ds2mbBindingID") != localdir.SampleBindingID {
		t.Errorf("event binding: %+v", b)
	}
	conn := search(t, c, localdir.SampleConnectorDN, ldap.ScopeBaseObject, "(objectClass=msExchRoutingSMTPConnector)", "msExchSourceBridgeheadServersDN", "routingList")
	if len(conn) != 1 || !strings.EqualFold(conn[0].GetAttributeValue("msExchSourceBridgeheadServersDN"), localdir.SampleVSDN("SERVER01", 1)) {
		t.Errorf("connector: %+v", conn)
	}
	pol := search(t, c, localdir.SamplePoliciesDN, ldap.ScopeSingleLevel, "(objectClass=msExchRecipientPolicy)", "gatewayProxy", "msExchNonAuthoritativeDomains")
	if len(pol) != 2 {
		t.Errorf("found %d recipient policies, want 2", len(pol))
	}

	// The consumer account binds and is not cut at the default size limit.
	cc, err := ldap.DialURL(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if err := cc.Bind(localdir.SampleConsumerDN, localdir.SampleConsumerPassword); err != nil {
		t.Fatalf("consumer bind: %v", err)
	}
	if got := search(t, cc, s.Suffix, ldap.ScopeWholeSubtree, "(objectClass=*)", "dn"); len(got) != localdir.SampleEntries {
		t.Errorf("consumer sees %d entries, want %d", len(got), localdir.SampleEntries)
	}
	// The root DSE offers the RFC 4533 sync request control.
	dse := search(t, c, "", ldap.ScopeBaseObject, "(objectClass=*)", "supportedControl")
	if !strings.Contains(strings.Join(dse[0].GetAttributeValues("supportedControl"), " "), "1.3.6.1.4.1.4203.1.9.1.1") {
		t.Error("root DSE does not advertise syncrepl (syncprov not loaded?)")
	}
}

// TestKillRestartKeepsData writes, kills slapd as a crash would, restarts it
// on the same port and finds the write; then the same with a clean stop.
func TestKillRestartKeepsData(t *testing.T) {
	s := localdir.StartT(t, localdir.Options{Checkpoint: "1 1"})
	port := s.Port
	dn := localdir.SampleVSDN("SERVER01", 2)
	if err := s.AddLDIF("dn: " + dn + "\nchangetype: modify\nreplace: msExchSmtpMaxRecipients\nmsExchSmtpMaxRecipients: 777\n-\n"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, stop := range []struct {
		name string
		f    func() error
	}{{"kill", s.Kill}, {"stop", s.Stop}} {
		if err := stop.f(); err != nil {
			t.Fatalf("%s: %v", stop.name, err)
		}
		if s.Running() {
			t.Fatalf("after %s slapd still runs", stop.name)
		}
		if c, err := s.Dial(); err == nil {
			c.Close()
			t.Fatalf("after %s a dial still succeeds", stop.name)
		}
		if err := s.Restart(ctx); err != nil {
			t.Fatalf("restart after %s: %v", stop.name, err)
		}
		if s.Port != port {
			t.Fatalf("restart moved the port from %d to %d", port, s.Port)
		}
		c, err := s.Dial()
		if err != nil {
			t.Fatal(err)
		}
		e := search(t, c, dn, ldap.ScopeBaseObject, "(objectClass=*)", "msExchSmtpMaxRecipients")
		c.Close()
		if got := e[0].GetAttributeValue("msExchSmtpMaxRecipients"); got != "777" {
			t.Errorf("after %s and restart: msExchSmtpMaxRecipients = %q, want 777", stop.name, got)
		}
	}
}

// TestNoSampleExtraLDIF starts an almost empty directory with extra LDIF:
// entries are loaded before the start, changes applied over LDAP after it.
func TestNoSampleExtraLDIF(t *testing.T) {
	s := localdir.StartT(t, localdir.Options{NoSample: true, ExtraLDIF: []string{
		"dn: cn=Configuration,dc=example,dc=com\nobjectClass: container\ncn: Configuration\n\n" +
			"dn: cn=1,cn=Configuration,dc=example,dc=com\nobjectClass: protocolCfgSMTPServer\ncn: 1\n" +
			"msExchServerBindings:: OjI1Og==\n",
		"dn: cn=1,cn=Configuration,dc=example,dc=com\nchangetype: modify\nadd: msExchSmtpMaxHopCount\nmsExchSmtpMaxHopCount: 12\n",
	}})
	c, err := s.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	all := search(t, c, s.Suffix, ldap.ScopeWholeSubtree, "(objectClass=*)", "msExchServerBindings", "msExchSmtpMaxHopCount")
	if len(all) != 3 {
		t.Fatalf("%d entries, want 3 (suffix, Configuration, cn=1)", len(all))
	}
	e := all[2]
	if e.GetAttributeValue("msExchServerBindings") != ":25:" || e.GetAttributeValue("msExchSmtpMaxHopCount") != "12" {
		t.Errorf("cn=1: bindings %q hop count %q, want \":25:\" and 12", e.GetAttributeValue("msExchServerBindings"), e.GetAttributeValue("msExchSmtpMaxHopCount"))
	}
	// A bad record is refused with an error naming its line and DN.
	err = s.AddLDIF("dn: cn=2,cn=Configuration,dc=example,dc=com\nobjectClass: protocolCfgSMTPServer\ncn: 2\nmsExchServerAutoStart: true\n")
	if err == nil || !strings.Contains(err.Error(), "cn=2,cn=Configuration") || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("bad boolean: err = %v, want an error naming line 1 and the DN", err)
	}
}

// TestBadOptions checks that a bad checkpoint is refused before slapd starts.
func TestBadOptions(t *testing.T) {
	_, err := localdir.Start(context.Background(), localdir.Options{Dir: t.TempDir(), Checkpoint: "1 0"})
	if err == nil || !strings.Contains(err.Error(), "minutes") {
		t.Errorf("checkpoint \"1 0\": err = %v, want a complaint about minutes", err)
	}
}

// TestPortInUse checks that a slapd that cannot listen is reported with
// slapd's reason, and that Start does not hang on a port that accepts but
// never answers.
func TestPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = localdir.Start(ctx, localdir.Options{Dir: t.TempDir(), Port: l.Addr().(*net.TCPAddr).Port})
	if err == nil || !strings.Contains(err.Error(), "Address already in use") {
		t.Errorf("Start on a taken port: err = %v, want slapd's \"Address already in use\"", err)
	}

	// Another slapd on the port answers binds with the same credentials:
	// Start must still see that its own slapd failed.
	other := localdir.StartT(t, localdir.Options{})
	s, err := localdir.Start(ctx, localdir.Options{Dir: t.TempDir(), Port: other.Port})
	if err == nil {
		s.Stop()
		t.Fatalf("Start on the port of another slapd succeeded")
	}
	if !strings.Contains(err.Error(), "Address already in use") {
		t.Errorf("Start on another slapd's port: err = %v, want \"Address already in use\"", err)
	}
}

// BenchmarkStartStop measures a fresh local directory with the sample
// organisation: slapadd, slapd start to first bind, SIGTERM and exit.
func BenchmarkStartStop(b *testing.B) {
	for b.Loop() {
		s, err := localdir.Start(context.Background(), localdir.Options{Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Stop(); err != nil {
			b.Fatal(err)
		}
	}
}
