package samba_test

import (
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/ds2mb/ds2mb/deploy/localdir"
	"github.com/ds2mb/ds2mb/deploy/samba"
)

// TestStartLoadsSchemaAndSample brings a DC up and reads a sample virtual
// server back through the proxy, with an attribute of the Exchange schema.
func TestStartLoadsSchemaAndSample(t *testing.T) {
	dc := samba.StartT(t, samba.Options{})
	c, err := dc.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dn := samba.MoveDN(localdir.SampleVSDN("SERVER01", 1))
	res, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=protocolCfgSMTPServer)", []string{"msExchServerBindings"}, nil))
	if err != nil {
		t.Fatalf("read %s: %v", dn, err)
	}
	if len(res.Entries) != 1 || res.Entries[0].GetAttributeValue("msExchServerBindings") == "" {
		t.Fatalf("%s: got %d entries without msExchServerBindings", dn, len(res.Entries))
	}
}
