package config_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/metabase"
	"github.com/ds2mb/ds2mb/schema"
	"github.com/ds2mb/ds2mb/smtpsvc/config"
)

func tree(svc, vs map[string]string) *metabase.Tree {
	t := metabase.New()
	s := t.Ensure(schema.ServiceLocation, metabase.ClassService)
	for k, v := range svc {
		s.Set(k, v)
	}
	n := t.Ensure(schema.ServerLocation(1), metabase.ClassServer)
	for k, v := range vs {
		n.Set(k, v)
	}
	return t
}

func build(t *testing.T, tr *metabase.Tree) *config.VirtualServer {
	t.Helper()
	cfg, err := config.Build(tr, config.Options{BaseDir: t.TempDir(), Hostname: "host.test"})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if len(cfg.Servers) != 1 {
		t.Fatalf("%d servers", len(cfg.Servers))
	}
	return cfg.Servers[0]
}

// TestInheritance: own value, else the service's (INHERIT), else the
// catalogue default.
func TestInheritance(t *testing.T) {
	vs := build(t, tree(
		map[string]string{"MaxMessageSize": "2048", "MaxRecipients": "7", "FullyQualifiedDomainName": "svc.example.com"},
		map[string]string{"MaxRecipients": "9", "ServerBindings": "127.0.0.1:2525:"}))
	if vs.MaxMessageSize != 2048 {
		t.Errorf("MaxMessageSize %d, want the service's 2048", vs.MaxMessageSize)
	}
	if vs.MaxRecipients != 9 {
		t.Errorf("MaxRecipients %d, want own 9", vs.MaxRecipients)
	}
	if vs.FQDN != "svc.example.com" {
		t.Errorf("FQDN %q", vs.FQDN)
	}
	if vs.HopCount != 15 || vs.MaxSessionSize != 268435456 || vs.ConnectionTimeout != 600*time.Second {
		t.Errorf("defaults: hop %d session %d timeout %v", vs.HopCount, vs.MaxSessionSize, vs.ConnectionTimeout)
	}
	if !vs.AutoStart || vs.MaxConnections != 0 {
		t.Errorf("AutoStart %v MaxConnections %d", vs.AutoStart, vs.MaxConnections)
	}
	if len(vs.Bindings) != 1 || vs.Bindings[0].Port != 2525 {
		t.Errorf("bindings %v", vs.Bindings)
	}
	c := vs.Commands
	if !c.DSN || !c.Chunking || !c.BinaryMIME || !c.EightBit {
		t.Errorf("default command options %+v", c)
	}
	vs2 := build(t, tree(nil, map[string]string{"FullyQualifiedDomainName": ""}))
	if vs2.FQDN != "host.test" {
		t.Errorf("FQDN fallback %q", vs2.FQDN)
	}
}

func TestFlagsAndUnlimited(t *testing.T) {
	vs := build(t, tree(nil, map[string]string{
		"AuthFlags": "AuthAnonymous | AuthBasic", "RelayForAuth": "4294967295", "MaxMessageSize": "0",
		"MaxConnections": "25", "SmtpInboundCommandSupportOptions": "64", "EnableReverseDnsLookup": "TRUE",
		"LogType": "1", "LogFileDirectory": `C:\Windows\System32\LogFiles`,
	}))
	if !vs.AuthBasic || !vs.RelayForAuth || vs.MaxMessageSize != 0 || vs.MaxConnections != 25 || !vs.ReverseDNS {
		t.Errorf("%+v", vs)
	}
	if c := vs.Commands; !c.DSN || c.Chunking || c.BinaryMIME || c.EightBit {
		t.Errorf("commands %+v", c)
	}
	if !vs.LogEnabled || !strings.HasSuffix(vs.LogDir, "/Windows/System32/LogFiles") {
		t.Errorf("log %v %q", vs.LogEnabled, vs.LogDir)
	}
}

func TestDomains(t *testing.T) {
	tr := tree(nil, nil)
	dom := func(name, action, target string) {
		d := tr.Ensure(schema.DomainLocation(1, name), metabase.ClassDomain)
		d.Set("RouteAction", action)
		if target != "" {
			d.Set("RouteActionString", target)
		}
	}
	dom("example.com", "SMTP_ALIAS", "")
	dom("partner.example.org", "4096", "")
	dom("*.contoso.com", "SMTP_SMARTHOST", "smarthost.example.net")
	dom("a.contoso.com", "SMTP_ALIAS", "")
	dom("drop.example.net", "SMTP_DROP", "Drop")
	vs := build(t, tr)
	cases := []struct {
		name             string
		ok               bool
		local, relay     bool
		smarthost, base  string
		wildcard, isDrop bool
	}{
		{"example.com", true, true, false, "", "example.com", false, false},
		{"EXAMPLE.COM.", true, true, false, "", "example.com", false, false},
		{"sub.example.com", false, false, false, "", "", false, false},
		{"partner.example.org", true, false, true, "", "partner.example.org", false, false},
		{"x.contoso.com", true, false, false, "smarthost.example.net", "contoso.com", true, false},
		{"x.y.contoso.com", true, false, false, "smarthost.example.net", "contoso.com", true, false},
		{"a.contoso.com", true, true, false, "", "a.contoso.com", false, false},
		{"contoso.com", false, false, false, "", "", false, false},
		{"drop.example.net", true, false, false, "", "drop.example.net", false, true},
		{"other.example", false, false, false, "", "", false, false},
	}
	for _, c := range cases {
		d, ok := vs.LookupDomain(c.name)
		if ok != c.ok {
			t.Errorf("%s: found %v", c.name, ok)
			continue
		}
		if !ok {
			continue
		}
		if d.Local != c.local || d.Relay != c.relay || d.SmartHost != c.smarthost || d.Name != c.base ||
			d.Wildcard != c.wildcard || (d.Drop != "") != c.isDrop {
			t.Errorf("%s: %+v", c.name, d)
		}
	}
}

func TestRelayIPList(t *testing.T) {
	blob, _ := schema.EncodeIPSecList(schema.IPSecList{Grant: []netip.Addr{netip.MustParseAddr("192.0.2.7")}})
	p, _ := schema.Lookup("RelayIpList")
	vs := build(t, tree(map[string]string{"RelayIpList": p.Render(schema.BinaryValue(blob))}, nil))
	if !vs.RelayGranted(netip.MustParseAddr("192.0.2.7")) || vs.RelayGranted(netip.MustParseAddr("192.0.2.8")) || vs.RelayIPNote != "" {
		t.Errorf("inherited grant list: %v %q", vs.RelayIPs, vs.RelayIPNote)
	}
	bad := build(t, tree(nil, map[string]string{"RelayIpList": strings.Repeat("ff", 90)}))
	if len(bad.RelayIPs) != 0 || !strings.Contains(bad.RelayIPNote, "relay by address denied") {
		t.Errorf("undecodable list: %v %q", bad.RelayIPs, bad.RelayIPNote)
	}
}

// TestRefusal: a bad tree is refused whole, every problem named by
// Location and property.
func TestRefusal(t *testing.T) {
	tr := tree(nil, map[string]string{"MaxRecipients": "lots", "SslCertificateFile": "/nonexistent/cert.pem", "SslKeyFile": "/nonexistent/key.pem"})
	_, err := config.Build(tr, config.Options{BaseDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "/LM/SmtpSvc/1: MaxRecipients") {
		t.Fatalf("want a refusal naming MaxRecipients: %v", err)
	}
	tr = tree(nil, map[string]string{"SslCertificateFile": "/nonexistent/cert.pem", "SslKeyFile": "/nonexistent/key.pem"})
	_, err = config.Build(tr, config.Options{BaseDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "/LM/SmtpSvc/1: SslCertificateFile: cannot read") {
		t.Fatalf("unreadable certificate: %v", err)
	}
	tr = tree(nil, map[string]string{"AccessSSLFlags": "AccessSSL"})
	_, err = config.Build(tr, config.Options{BaseDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "/LM/SmtpSvc/1: AccessSSLFlags") {
		t.Fatalf("TLS required without a certificate: %v", err)
	}
	tr = tree(nil, nil)
	tr.Ensure(schema.DomainLocation(1, "x.example"), metabase.ClassDomain).Set("RouteAction", "SMTP_SMARTHOST")
	_, err = config.Build(tr, config.Options{BaseDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "/LM/SmtpSvc/1/Domain/x.example: RouteActionString") {
		t.Fatalf("smart host without a host: %v", err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	tr = tree(nil, map[string]string{"QueueDirectory": file})
	_, err = config.Build(tr, config.Options{BaseDir: dir})
	if err == nil || !strings.Contains(err.Error(), "/LM/SmtpSvc/1: QueueDirectory") {
		t.Fatalf("queue folder is a file: %v", err)
	}
}

func TestQueueDirDefaultAndFingerprint(t *testing.T) {
	base := t.TempDir()
	tr := tree(nil, map[string]string{"MaxRecipients": "10"})
	cfg, err := config.Build(tr, config.Options{BaseDir: base, Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	vs := cfg.Servers[0]
	if want := filepath.Join(base, "Mailroot", "vsi 1", "Queue"); vs.QueueDir != want {
		t.Errorf("QueueDir %q, want %q", vs.QueueDir, want)
	}
	if fi, err := os.Stat(vs.QueueDir); err != nil || !fi.IsDir() {
		t.Errorf("queue folder not created: %v", err)
	}
	again, _ := config.Build(tr, config.Options{BaseDir: base, Hostname: "h"})
	if again.Servers[0].Fingerprint != vs.Fingerprint || vs.Fingerprint == "" {
		t.Errorf("same tree, different fingerprints")
	}
	tr.Node(schema.ServerLocation(1)).Set("MaxRecipients", "11")
	changed, _ := config.Build(tr, config.Options{BaseDir: base, Hostname: "h"})
	if changed.Servers[0].Fingerprint == vs.Fingerprint {
		t.Errorf("changed setting, same fingerprint")
	}
	tr.Ensure(schema.DomainLocation(1, "new.example"), metabase.ClassDomain).Set("RouteAction", "SMTP_ALIAS")
	dom, _ := config.Build(tr, config.Options{BaseDir: base, Hostname: "h"})
	if dom.Servers[0].Fingerprint == changed.Servers[0].Fingerprint {
		t.Errorf("new domain, same fingerprint")
	}
}

// BenchmarkBuild1000Domains: Build of a tree with two virtual servers and
// 1,000 domain nodes (the reload path's share of the 50 ms goal).
func BenchmarkBuild1000Domains(b *testing.B) {
	tr := tree(nil, map[string]string{"ServerBindings": "127.0.0.1:2525:"})
	tr.Ensure(schema.ServerLocation(2), metabase.ClassServer).Set("ServerBindings", "127.0.0.1:2526:")
	for i := 0; i < 1000; i++ {
		d := tr.Ensure(schema.DomainLocation(1, "d"+strconv.Itoa(i)+".example.org"), metabase.ClassDomain)
		switch i % 3 {
		case 0:
			d.Set("RouteAction", "SMTP_ALIAS")
		case 1:
			d.Set("RouteAction", "SMTP_DOMAIN_RELAY")
		case 2:
			d.Set("RouteAction", "SMTP_SMARTHOST")
			d.Set("RouteActionString", "[127.0.0.1]")
		}
	}
	o := config.Options{BaseDir: b.TempDir(), Hostname: "h"}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := config.Build(tr, o); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDomainRelayOverride: a domain node that sets RelayIpList or
// RelayForAuth itself carries the effective values at its Location (own,
// else virtual server, service, default); one that sets neither has no
// override; an undecodable list on it is a note; changing the override
// changes the fingerprint.
func TestDomainRelayOverride(t *testing.T) {
	p, _ := schema.Lookup("RelayIpList")
	list := func(hosts ...string) string {
		var l schema.IPSecList
		for _, h := range hosts {
			l.Grant = append(l.Grant, netip.MustParseAddr(h))
		}
		b, _ := schema.EncodeIPSecList(l)
		return p.Render(schema.BinaryValue(b))
	}
	tr := tree(map[string]string{"RelayForAuth": "1"}, map[string]string{"RelayIpList": list("192.0.2.1")})
	dom := func(name string, ps map[string]string) {
		d := tr.Ensure(schema.DomainLocation(1, name), metabase.ClassDomain)
		d.Set("RouteAction", "0")
		for k, v := range ps {
			d.Set(k, v)
		}
	}
	dom("ip.example", map[string]string{"RelayIpList": list("192.0.2.9")})
	dom("auth.example", map[string]string{"RelayForAuth": "0"})
	dom("bad.example", map[string]string{"RelayIpList": strings.Repeat("00", 84)})
	dom("plain.example", nil)
	vs := build(t, tr)
	get := func(name string) *config.Domain {
		d, ok := vs.LookupDomain(name)
		if !ok {
			t.Fatalf("no domain %s", name)
		}
		return d
	}
	ip := get("ip.example")
	if !ip.RelayOverride || !ip.RelayGranted(netip.MustParseAddr("192.0.2.9")) || ip.RelayGranted(netip.MustParseAddr("192.0.2.1")) || !ip.RelayForAuth {
		t.Errorf("ip.example: %+v (want own list, RelayForAuth inherited from the service)", *ip)
	}
	au := get("auth.example")
	if !au.RelayOverride || au.RelayForAuth || !au.RelayGranted(netip.MustParseAddr("192.0.2.1")) {
		t.Errorf("auth.example: %+v (want own RelayForAuth 0, the server's list)", *au)
	}
	bad := get("bad.example")
	if !bad.RelayOverride || len(bad.RelayIPs) != 0 || bad.RelayIPNote == "" {
		t.Errorf("bad.example: %+v", *bad)
	}
	if len(vs.Notes) != 1 || !strings.HasPrefix(vs.Notes[0], "/LM/SmtpSvc/1/Domain/bad.example: RelayIpList") {
		t.Errorf("Notes %q", vs.Notes)
	}
	if pl := get("plain.example"); pl.RelayOverride || pl.RelayIPs != nil {
		t.Errorf("plain.example: %+v", *pl)
	}
	tr.Node(schema.DomainLocation(1, "auth.example")).Set("RelayForAuth", "1")
	if again := build(t, tr); again.Fingerprint == vs.Fingerprint {
		t.Errorf("a domain's RelayForAuth changed, same fingerprint")
	}
}

// TestConnectionSettings: IPSecurity decoded as a grant list switches
// connection control on; one in another layout is ignored with a note;
// MaxSmtpErrors 4294967295 (the default) and 0 mean unlimited; each change
// changes the fingerprint.
func TestConnectionSettings(t *testing.T) {
	p, _ := schema.Lookup("IPSecurity")
	blob, _ := schema.EncodeIPSecList(schema.IPSecList{Grant: []netip.Addr{netip.MustParseAddr("192.0.2.7")}})
	list := p.Render(schema.BinaryValue(blob))

	plain := build(t, tree(nil, nil))
	if plain.ConnectionControl || !plain.ConnectionAllowed(netip.MustParseAddr("198.51.100.1")) || plain.MaxSmtpErrors != 0 {
		t.Errorf("defaults: control %v, MaxSmtpErrors %d", plain.ConnectionControl, plain.MaxSmtpErrors)
	}
	on := build(t, tree(map[string]string{"IPSecurity": list}, nil))
	if !on.ConnectionControl || !on.ConnectionAllowed(netip.MustParseAddr("192.0.2.7")) ||
		!on.ConnectionAllowed(netip.MustParseAddr("::ffff:192.0.2.7")) || on.ConnectionAllowed(netip.MustParseAddr("192.0.2.8")) {
		t.Errorf("inherited IPSecurity: %v %v", on.ConnectionControl, on.ConnectionGrant)
	}
	bad := build(t, tree(nil, map[string]string{"IPSecurity": strings.Repeat("00", 84)}))
	if bad.ConnectionControl || !bad.ConnectionAllowed(netip.MustParseAddr("192.0.2.8")) ||
		len(bad.Notes) != 1 || !strings.Contains(bad.Notes[0], "IPSecurity") {
		t.Errorf("undecodable IPSecurity: %v %q", bad.ConnectionControl, bad.Notes)
	}
	for _, v := range []string{"0", "4294967295"} {
		if n := build(t, tree(nil, map[string]string{"MaxSmtpErrors": v})).MaxSmtpErrors; n != 0 {
			t.Errorf("MaxSmtpErrors %s read as %d", v, n)
		}
	}
	three := build(t, tree(nil, map[string]string{"MaxSmtpErrors": "3"}))
	if three.MaxSmtpErrors != 3 {
		t.Errorf("MaxSmtpErrors 3 read as %d", three.MaxSmtpErrors)
	}
	seen := map[string]string{}
	for name, vs := range map[string]*config.VirtualServer{"plain": plain, "IPSecurity": on, "bad IPSecurity": bad, "MaxSmtpErrors": three} {
		if other, dup := seen[vs.Fingerprint]; dup {
			t.Errorf("%s and %s have the same fingerprint", name, other)
		}
		seen[vs.Fingerprint] = name
	}
}

// TestCommandTimeouts: the Smtp…Timeout properties are seconds (inherited
// from the service), 0 and 4294967295 leave ConnectionTimeout in charge,
// and a change changes the fingerprint.
func TestCommandTimeouts(t *testing.T) {
	vs := build(t, tree(map[string]string{"SmtpHeloTimeout": "30"}, map[string]string{
		"SmtpConnectTimeout": "10", "SmtpMailFromTimeout": "0", "SmtpRcptToTimeout": "4294967295", "SmtpDataTimeout": "120",
		"SmtpBdatTimeout": "60", "SmtpRsetTimeout": "5"}))
	want := config.CommandTimeouts{Connect: 10 * time.Second, Helo: 30 * time.Second, Data: 2 * time.Minute, Bdat: time.Minute, Rset: 5 * time.Second}
	if vs.Timeouts != want {
		t.Errorf("Timeouts %+v, want %+v", vs.Timeouts, want)
	}
	if d := build(t, tree(nil, nil)); d.Timeouts != (config.CommandTimeouts{}) {
		t.Errorf("default Timeouts %+v", d.Timeouts)
	}
	other := build(t, tree(map[string]string{"SmtpHeloTimeout": "31"}, map[string]string{
		"SmtpConnectTimeout": "10", "SmtpMailFromTimeout": "0", "SmtpRcptToTimeout": "4294967295", "SmtpDataTimeout": "120"}))
	if other.Fingerprint == vs.Fingerprint {
		t.Errorf("SmtpHeloTimeout changed, same fingerprint")
	}
}
