package main

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/ds2mb/ds2mb/metabase"
	"github.com/ds2mb/ds2mb/smtpsvc/config"
	"github.com/ds2mb/ds2mb/smtpsvc/policy"
)

// server writes and parses the metabase of o and builds the worker's
// configuration of virtual server 1 from it.
func server(t *testing.T, o options) *config.VirtualServer {
	t.Helper()
	tr, err := metabase.Parse(build(o).Bytes())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Build(tr, config.Options{BaseDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	vs := cfg.Server(1)
	if vs == nil {
		t.Fatal("no virtual server 1")
	}
	return vs
}

// TestSmartHost: with -smarthost, a loopback client may send to example.com
// (relayed to the smart host on -remote-port) and to no other domain.
func TestSmartHost(t *testing.T) {
	vs := server(t, options{port: 2725, fqdn: "bench.test", smartHost: "[127.0.0.1]", remotePort: 2626})
	d := vs.Delivery
	if !slices.Equal(d.SmartHosts, []string{"[127.0.0.1]"}) || d.SmartHostType != 2 || d.RemotePort != 2626 {
		t.Errorf("SmartHosts %q, SmartHostType %d, RemotePort %d", d.SmartHosts, d.SmartHostType, d.RemotePort)
	}
	c := policy.Client{IP: netip.MustParseAddr("127.0.0.1")}
	if v, r := policy.Recipient(vs, "user@example.com", c); v != policy.Relay {
		t.Errorf("user@example.com: verdict %v, %v; want relay", v, r)
	}
	if v, _ := policy.Recipient(vs, "user@other.org", c); v != policy.Refused {
		t.Errorf("user@other.org: verdict %v; want refused (no open relay)", v)
	}
}

// TestLocal: without -smarthost, example.com is a local domain.
func TestLocal(t *testing.T) {
	vs := server(t, options{port: 2725, fqdn: "bench.test", domains: 2})
	if len(vs.Delivery.SmartHosts) != 0 {
		t.Errorf("SmartHosts %q", vs.Delivery.SmartHosts)
	}
	c := policy.Client{IP: netip.MustParseAddr("127.0.0.1")}
	for _, rcpt := range []string{"user@example.com", "user@d1.example.org"} {
		if v, r := policy.Recipient(vs, rcpt, c); v != policy.Local {
			t.Errorf("%s: verdict %v, %v; want local", rcpt, v, r)
		}
	}
}
