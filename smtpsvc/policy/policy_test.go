package policy_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/ds2mb/ds2mb/metabase"
	"github.com/ds2mb/ds2mb/schema"
	"github.com/ds2mb/ds2mb/smtpsvc/config"
	"github.com/ds2mb/ds2mb/smtpsvc/policy"
)

func server(t testing.TB, relayForAuth bool, granted ...string) *config.VirtualServer {
	t.Helper()
	return serverWith(t, nil, relayForAuth, granted...)
}

// ipList is a RelayIpList value granting the hosts.
func ipList(hosts ...string) schema.Value {
	var l schema.IPSecList
	for _, g := range hosts {
		l.Grant = append(l.Grant, netip.MustParseAddr(g))
	}
	b, err := schema.EncodeIPSecList(l)
	if err != nil {
		panic(err)
	}
	return schema.BinaryValue(b)
}

// overrideDomains adds domain nodes with relay overrides (RouteAction 0):
// auth.example (RelayForAuth 1), ip.example (RelayIpList granting
// 192.0.2.50), closed.example (RelayIpList granting nobody, RelayForAuth
// 0: relay closed whatever the virtual server says), bad.example (an
// undecodable RelayIpList) and *.wauth.example (RelayForAuth 1).
func overrideDomains(tr *metabase.Tree) {
	dom := func(name string) *metabase.Node {
		d := tr.Ensure(schema.DomainLocation(1, name), metabase.ClassDomain)
		d.Set("RouteAction", "0")
		return d
	}
	dom("auth.example").Set("RelayForAuth", "1")
	dom("ip.example").SetValue("RelayIpList", ipList("192.0.2.50"))
	c := dom("closed.example")
	c.SetValue("RelayIpList", ipList())
	c.Set("RelayForAuth", "0")
	dom("bad.example").SetValue("RelayIpList", schema.BinaryValue(make([]byte, 84)))
	dom("*.wauth.example").Set("RelayForAuth", "1")
	dom("plain-remote.example") // RouteAction 0, no override: the virtual server decides
}

func serverWith(t testing.TB, extra func(*metabase.Tree), relayForAuth bool, granted ...string) *config.VirtualServer {
	t.Helper()
	tr := metabase.New()
	tr.Ensure(schema.ServiceLocation, metabase.ClassService)
	n := tr.Ensure(schema.ServerLocation(1), metabase.ClassServer)
	if relayForAuth {
		n.Set("RelayForAuth", "1")
	}
	if len(granted) > 0 {
		var l schema.IPSecList
		for _, g := range granted {
			l.Grant = append(l.Grant, netip.MustParseAddr(g))
		}
		b, _ := schema.EncodeIPSecList(l)
		n.SetValue("RelayIpList", schema.BinaryValue(b))
	}
	for name, action := range map[string]string{"example.com": "SMTP_ALIAS", "relay.example": "SMTP_DOMAIN_RELAY",
		"*.wild.example": "SMTP_DOMAIN_RELAY", "drop.example": "SMTP_DROP", "smart.example": "SMTP_SMARTHOST"} {
		d := tr.Ensure(schema.DomainLocation(1, name), metabase.ClassDomain)
		d.Set("RouteAction", action)
		if name == "drop.example" || name == "smart.example" {
			d.Set("RouteActionString", "target")
		}
	}
	if extra != nil {
		extra(tr)
	}
	cfg, err := config.Build(tr, config.Options{BaseDir: t.TempDir(), Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Servers[0]
}

func TestRecipient(t *testing.T) {
	plain := server(t, false)
	granted := server(t, false, "192.0.2.7")
	forAuth := server(t, true)
	anon := policy.Client{IP: netip.MustParseAddr("192.0.2.7")}
	authed := policy.Client{IP: netip.MustParseAddr("198.51.100.1"), Authenticated: true}
	cases := []struct {
		name   string
		vs     *config.VirtualServer
		c      policy.Client
		rcpt   string
		want   policy.Verdict
		status [3]int
	}{
		{"local", plain, anon, "u@example.com", policy.Local, [3]int{}},
		{"local case", plain, anon, "u@Example.COM", policy.Local, [3]int{}},
		{"drop", plain, anon, "u@drop.example", policy.Local, [3]int{}},
		{"relay domain", plain, anon, "u@relay.example", policy.Relay, [3]int{}},
		{"wildcard", plain, anon, "u@a.wild.example", policy.Relay, [3]int{}},
		{"wildcard base", plain, anon, "u@wild.example", policy.Refused, [3]int{5, 7, 1}},
		{"smart host (connector address space)", plain, anon, "u@smart.example", policy.Relay, [3]int{}},
		{"foreign", plain, anon, "u@foreign.example", policy.Refused, [3]int{5, 7, 1}},
		{"granted", granted, anon, "u@foreign.example", policy.Relay, [3]int{}},
		{"granted mapped v6", granted, policy.Client{IP: netip.MustParseAddr("::ffff:192.0.2.7")}, "u@foreign.example", policy.Relay, [3]int{}},
		{"not granted", granted, authed, "u@foreign.example", policy.Refused, [3]int{5, 7, 1}},
		{"auth relay", forAuth, authed, "u@foreign.example", policy.Relay, [3]int{}},
		{"auth relay off", plain, authed, "u@foreign.example", policy.Refused, [3]int{5, 7, 1}},
		{"percent", granted, anon, "u%foreign.example@example.com", policy.Refused, [3]int{5, 7, 1}},
		{"bang", forAuth, authed, "foreign.example!u@example.com", policy.Refused, [3]int{5, 7, 1}},
		{"quoted at", granted, anon, "u@foreign.example@example.com", policy.Refused, [3]int{5, 7, 1}},
		{"no domain", plain, anon, "postmaster", policy.Refused, [3]int{5, 1, 3}},
		{"empty local", plain, anon, "@example.com", policy.Refused, [3]int{5, 1, 3}},
		{"bad domain", granted, anon, "u@exa_mple.com", policy.Refused, [3]int{5, 7, 1}},
		{"literal", plain, anon, "u@[192.0.2.1]", policy.Refused, [3]int{5, 7, 1}},
		{"literal granted", granted, anon, "u@[192.0.2.1]", policy.Relay, [3]int{}},
	}
	// Per-domain relay overrides (REFERENCE.md §1.5).
	over := serverWith(t, overrideDomains, false)
	overGranted := serverWith(t, overrideDomains, true, "192.0.2.7")
	ipClient := policy.Client{IP: netip.MustParseAddr("192.0.2.50")}
	ipAuthed := policy.Client{IP: netip.MustParseAddr("192.0.2.50"), Authenticated: true}
	cases = append(cases, []struct {
		name   string
		vs     *config.VirtualServer
		c      policy.Client
		rcpt   string
		want   policy.Verdict
		status [3]int
	}{
		{"override: auth domain, authenticated", over, authed, "u@auth.example", policy.Relay, [3]int{}},
		{"override: auth domain, anonymous", over, anon, "u@auth.example", policy.Refused, [3]int{5, 7, 1}},
		{"override: auth domain, ip client", over, ipClient, "u@auth.example", policy.Refused, [3]int{5, 7, 1}},
		{"override: wildcard auth domain", over, authed, "u@x.wauth.example", policy.Relay, [3]int{}},
		{"override: wildcard base", over, authed, "u@wauth.example", policy.Refused, [3]int{5, 7, 1}},
		{"override: server still closed to others", over, authed, "u@foreign.example", policy.Refused, [3]int{5, 7, 1}},
		{"override: ip domain, granted client", over, ipClient, "u@ip.example", policy.Relay, [3]int{}},
		{"override: ip domain, other client", over, anon, "u@ip.example", policy.Refused, [3]int{5, 7, 1}},
		{"override: ip domain, authenticated (inherits RelayForAuth 0)", over, authed, "u@ip.example", policy.Refused, [3]int{5, 7, 1}},
		{"override: ip grant is per domain", over, ipClient, "u@foreign.example", policy.Refused, [3]int{5, 7, 1}},
		{"override: ip domain inherits RelayForAuth 1", overGranted, ipAuthed, "u@ip.example", policy.Relay, [3]int{}},
		{"override: ip domain, server-granted client", overGranted, anon, "u@ip.example", policy.Refused, [3]int{5, 7, 1}},
		{"override: auth domain inherits the server's RelayIpList", overGranted, anon, "u@auth.example", policy.Relay, [3]int{}},
		{"override: closed domain, server-granted client", overGranted, anon, "u@closed.example", policy.Refused, [3]int{5, 7, 1}},
		{"override: closed domain, authenticated", overGranted, authed, "u@closed.example", policy.Refused, [3]int{5, 7, 1}},
		{"override: undecodable list grants nobody", overGranted, anon, "u@bad.example", policy.Refused, [3]int{5, 7, 1}},
		{"override: undecodable list, inherited RelayForAuth", overGranted, authed, "u@bad.example", policy.Relay, [3]int{}},
		{"no override: server grant applies", overGranted, anon, "u@plain-remote.example", policy.Relay, [3]int{}},
		{"no override: server refuses", over, authed, "u@plain-remote.example", policy.Refused, [3]int{5, 7, 1}},
		{"server grant elsewhere", overGranted, anon, "u@foreign.example", policy.Relay, [3]int{}},
	}...)
	for _, c := range cases {
		v, ref := policy.Recipient(c.vs, c.rcpt, c.c)
		if v != c.want {
			t.Errorf("%s: verdict %v, want %v (%v)", c.name, v, c.want, ref)
			continue
		}
		if c.want == policy.Refused {
			if ref == nil || ref.Enhanced != c.status || ref.Code/100 != 5 {
				t.Errorf("%s: refusal %+v, want %v", c.name, ref, c.status)
			}
		} else if ref != nil {
			t.Errorf("%s: accepted with a refusal %+v", c.name, ref)
		}
	}
}

// FuzzNeverOpenRelay: any address the policy takes holds no '%', '!' or
// '@' before its last '@', and its domain is one the client may send to: a
// local or relay domain for anyone; a domain whose node overrides relay
// (RelayForAuth 1, a RelayIpList granting 192.0.2.50; what the node does
// not set it inherits from the virtual server) only for a client the
// node's effective values admit, and never a domain whose override closes relay
// (closed.example, bad.example) to a client the virtual server alone would
// admit (192.0.2.7, granted by the virtual server's RelayIpList); any other
// domain only for 192.0.2.7. The virtual server has RelayForAuth 0, so
// authentication alone opens nothing but the override domains. The client
// is fuzzed too: its address (last octet of 192.0.2.x) and whether it
// authenticated.
func FuzzNeverOpenRelay(f *testing.F) {
	for _, s := range []string{"u@example.com", "u%x.example@example.com", "x!u@example.com", "u@x.example@example.com",
		"u@a.wild.example", "u@[192.0.2.1]", "u@example.com.", "u@EXAMPLE.com", "@example.com", "u@.example.com",
		"u@auth.example", "u@ip.example", "u@closed.example", "u@bad.example", "u@a.wauth.example", "u@plain-remote.example",
		"u%x.example@auth.example"} {
		f.Add(s, byte(1), false)
		f.Add(s, byte(7), true)
		f.Add(s, byte(50), true)
	}
	vs := serverWith(f, overrideDomains, false, "192.0.2.7")
	configured := map[string]bool{"example.com": true, "relay.example": true, "drop.example": true, "smart.example": true}
	f.Fuzz(func(t *testing.T, rcpt string, host byte, authed bool) {
		c := policy.Client{IP: netip.AddrFrom4([4]byte{192, 0, 2, host}), Authenticated: authed}
		v, _ := policy.Recipient(vs, rcpt, c)
		if v == policy.Refused {
			return
		}
		at := strings.LastIndexByte(rcpt, '@')
		local, domain := rcpt[:at], strings.ToLower(strings.TrimSuffix(rcpt[at+1:], "."))
		if strings.ContainsAny(local, "%!@") {
			t.Fatalf("%q taken (%v) from %+v with a routing character in the local part", rcpt, v, c)
		}
		var ok bool
		switch {
		case configured[domain] || strings.HasSuffix(domain, ".wild.example"):
			ok = true
		case domain == "auth.example" || strings.HasSuffix(domain, ".wauth.example"):
			ok = authed || host == 7 // RelayIpList inherited from the virtual server
		case domain == "ip.example":
			ok = host == 50
		case domain == "closed.example" || domain == "bad.example":
			ok = false
		default:
			ok = host == 7
		}
		if !ok {
			t.Fatalf("%q taken (%v) from %+v: that client may not relay to %q", rcpt, v, c, domain)
		}
	})
}
