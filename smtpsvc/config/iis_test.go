package config_test

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/metabase"
	"github.com/ds2mb/ds2mb/smtpsvc/config"
)

// TestHandWrittenIIS: a MetaBase.xml written in IIS's own terms (symbolic
// and numeric flags, a Custom AuthFlags, Windows paths, 0xFFFFFFFF for
// "no limit", a bin.hex RelayIpList, upper-case domain keys) builds the
// same settings ds2mb's own files do.
func TestHandWrittenIIS(t *testing.T) {
	tr, err := metabase.Load(filepath.Join("testdata", "iis.xml"))
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	cfg, err := config.Build(tr, config.Options{BaseDir: base, Hostname: "host.test"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Version != 77 || len(cfg.Servers) != 2 {
		t.Fatalf("version %d, %d servers", cfg.Version, len(cfg.Servers))
	}
	one, two := cfg.Server(1), cfg.Server(2)

	if one.FQDN != "mail.example.com" || !one.AutoStart || len(one.Bindings) != 2 || one.Bindings[1].IP.IsValid() || one.Bindings[1].Port != 587 {
		t.Errorf("vs1 identity: %q %v %v", one.FQDN, one.AutoStart, one.Bindings)
	}
	if one.MaxMessageSize != 0 || one.MaxRecipients != 64000 || one.ConnectionTimeout != 10*time.Minute {
		t.Errorf("vs1 limits: %d %d %v", one.MaxMessageSize, one.MaxRecipients, one.ConnectionTimeout)
	}
	if !one.AuthBasic || !one.RelayForAuth || !one.RelayGranted(netip.MustParseAddr("127.0.0.1")) ||
		!one.RelayGranted(netip.MustParseAddr("192.0.2.10")) || one.RelayGranted(netip.MustParseAddr("192.0.2.11")) {
		t.Errorf("vs1 relay/auth: basic %v forAuth %v ips %v", one.AuthBasic, one.RelayForAuth, one.RelayIPs)
	}
	if c := one.Commands; !c.DSN || !c.Chunking || !c.BinaryMIME || !c.EightBit {
		t.Errorf("vs1 commands %+v", c)
	}
	if one.QueueDir != filepath.Join(base, "Inetpub/mailroot/Queue") || !one.LogEnabled ||
		one.LogDir != filepath.Join(base, "WINDOWS/system32/LogFiles") {
		t.Errorf("vs1 folders: %q %v %q", one.QueueDir, one.LogEnabled, one.LogDir)
	}
	for name, want := range map[string]string{"mail.example.com": "local", "example.com": "local", "x.contoso.com": "smarthost",
		"partner.example.org": "relay", "dropped.example": "drop"} {
		d, ok := one.LookupDomain(name)
		got := ""
		switch {
		case !ok:
			got = "none"
		case d.Local:
			got = "local"
		case d.Relay:
			got = "relay"
		case d.SmartHost == "[192.0.2.25]":
			got = "smarthost"
		case d.Drop == filepath.Join(base, "Inetpub/mailroot/Drop"):
			got = "drop"
		}
		if got != want {
			t.Errorf("vs1 domain %s: %s, want %s (%+v)", name, got, want, d)
		}
	}

	if two.FQDN != "relay.example.com" || two.AutoStart || two.MaxConnections != 100 || two.AuthBasic || two.LogEnabled {
		t.Errorf("vs2: %q auto %v maxconn %d auth %v log %v", two.FQDN, two.AutoStart, two.MaxConnections, two.AuthBasic, two.LogEnabled)
	}
	if c := two.Commands; !c.DSN || c.Chunking || c.EightBit {
		t.Errorf("vs2 commands %+v", c)
	}
	if two.QueueDir != filepath.Join(base, "vsi 2/Queue") || len(two.Domains) != 0 {
		t.Errorf("vs2 queue %q, domains %v", two.QueueDir, two.Domains)
	}
	if !two.RelayGranted(netip.MustParseAddr("127.0.0.1")) {
		t.Error("vs2 does not inherit the service's RelayIpList")
	}
}
