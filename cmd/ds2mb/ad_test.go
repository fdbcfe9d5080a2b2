package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ds2mb/ds2mb/deploy/localdir"
	"github.com/ds2mb/ds2mb/deploy/samba"
)

// TestDaemonOnActiveDirectory: with --mode auto the binary sees AD's
// change-notification control in the root DSE, chooses adnotify, replicates
// the sample organisation from a real Samba AD DC and follows an edit.
func TestDaemonOnActiveDirectory(t *testing.T) {
	dc := samba.StartT(t, samba.Options{})
	bin := buildBinary(t)
	mb := filepath.Join(t.TempDir(), "MetaBase.xml")
	d := startDaemon(t, bin, []string{"--ldap-url", dc.URL, "--bind-dn", dc.BindDN, "--base-dn", dc.ConfigDN,
		"--server", "SERVER01", "--metabase", mb, "--mode", "auto"}, dc.Password)
	waitFile(t, mb, `MaxRecipients="100"`)
	if out := d.output(); !strings.Contains(out, "mode=adnotify") {
		t.Fatalf("auto did not choose adnotify:\n%s", out)
	}
	err := dc.ApplyLDIF("dn: " + samba.MoveDN(localdir.SampleVSDN("SERVER01", 1)) +
		"\nchangetype: modify\nreplace: msExchSmtpMaxRecipients\nmsExchSmtpMaxRecipients: 77\n-")
	if err != nil {
		t.Fatal(err)
	}
	waitFile(t, mb, `MaxRecipients="77"`)
	if strings.Contains(d.output(), dc.Password) {
		t.Errorf("log holds the password")
	}
}
