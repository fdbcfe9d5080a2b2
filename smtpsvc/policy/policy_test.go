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

// FuzzNeverOpenRelay: for an anonymous client without relay rights, any
// address the policy takes names a configured domain after its last '@'
// and holds no '%', '!' or '@' before it.
func FuzzNeverOpenRelay(f *testing.F) {
	for _, s := range []string{"u@example.com", "u%x.example@example.com", "x!u@example.com", "u@x.example@example.com",
		"u@a.wild.example", "u@[192.0.2.1]", "u@example.com.", "u@EXAMPLE.com", "@example.com", "u@.example.com"} {
		f.Add(s)
	}
	vs := server(f, false)
	anon := policy.Client{IP: netip.MustParseAddr("203.0.113.1")}
	configured := map[string]bool{"example.com": true, "relay.example": true, "drop.example": true, "smart.example": true}
	f.Fuzz(func(t *testing.T, rcpt string) {
		v, _ := policy.Recipient(vs, rcpt, anon)
		if v == policy.Refused {
			return
		}
		at := strings.LastIndexByte(rcpt, '@')
		local, domain := rcpt[:at], strings.ToLower(strings.TrimSuffix(rcpt[at+1:], "."))
		if strings.ContainsAny(local, "%!@") {
			t.Fatalf("%q taken (%v) with a routing character in the local part", rcpt, v)
		}
		if !configured[domain] && !strings.HasSuffix(domain, ".wild.example") {
			t.Fatalf("%q taken (%v) for an unconfigured domain %q", rcpt, v, domain)
		}
	})
}
