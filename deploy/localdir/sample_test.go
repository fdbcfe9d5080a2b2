package localdir

import (
	"strings"
	"testing"

	"github.com/ds2mb/ds2mb/deploy/openldap"
	"github.com/ds2mb/ds2mb/schema"
)

// TestSampleMatchesCatalogue checks sample.ldif against the schema
// catalogue: every class it uses is known, every attribute it sets is
// defined (here or in core/cosine), every value of a replicated attribute
// passes the catalogue's check, and the DN constants name its entries.
func TestSampleMatchesCatalogue(t *testing.T) {
	recs, err := parseLDIF(string(openldap.SampleLDIF()))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != SampleEntries {
		t.Errorf("sample.ldif has %d entries, SampleEntries says %d", len(recs), SampleEntries)
	}
	classes := map[string]bool{"dcObject": true, "organization": true, "applicationProcess": true, "simpleSecurityObject": true}
	for _, c := range schema.Classes() {
		classes[c.Name] = true
	}
	core := map[string]bool{"objectclass": true, "cn": true, "dc": true, "o": true, "description": true, "userpassword": true}
	dns := map[string]bool{}
	for _, r := range recs {
		dns[strings.ToLower(r.dn)] = true
		for _, a := range r.attrs {
			where := "dn " + r.dn + " attribute " + a.name
			if strings.EqualFold(a.name, "objectClass") {
				for _, v := range a.vals {
					if !classes[v] {
						t.Errorf("%s: class %s is not in the catalogue", where, v)
					}
				}
				continue
			}
			if _, ok := schema.LookupAttribute(a.name); !ok && !core[strings.ToLower(a.name)] {
				t.Errorf("%s: attribute not in the catalogue", where)
			}
			if p, ok := schema.ForAttribute(a.name); ok {
				if _, err := p.FromDirectory(a.vals); err != nil {
					t.Errorf("%s: %q fails the catalogue's check for %s: %v", where, a.vals, p.Name, err)
				}
			}
		}
	}
	for _, dn := range []string{SampleSuffix, SampleConsumerDN, SampleConfigDN, SampleOrgDN, SampleAdminGroupDN, SamplePoliciesDN, SampleConnectorDN,
		SampleServerDN("SERVER01"), SampleSMTPDN("SERVER02"), SampleVSDN("SERVER01", 1), SampleVSDN("SERVER01", 2), SampleVSDN("SERVER02", 1), SampleBindingDN()} {
		if !dns[strings.ToLower(dn)] {
			t.Errorf("%s is not an entry of sample.ldif", dn)
		}
	}
}
