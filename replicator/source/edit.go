package source

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/ds2mb/ds2mb/schema"
)

// Entry is one directory object read by Search.
type Entry struct {
	DN    string
	Attrs map[string][]string
}

// Search reads the objects below c.BaseDN that match filter, with the
// attributes named (nil = all user attributes).
func (c *Config) Search(ctx context.Context, filter string, attrs []string) ([]Entry, error) {
	return c.search(ctx, c.BaseDN, ldap.ScopeWholeSubtree, filter, attrs)
}

// Read reads the one object dn with the attributes named (nil = all user
// attributes).
func (c *Config) Read(ctx context.Context, dn string, attrs []string) (Entry, error) {
	es, err := c.search(ctx, dn, ldap.ScopeBaseObject, "(objectClass=*)", attrs)
	if err != nil {
		return Entry{}, err
	}
	if len(es) != 1 {
		return Entry{}, fmt.Errorf("%s: not readable", dn)
	}
	return es[0], nil
}

func (c *Config) search(ctx context.Context, base string, scope int, filter string, attrs []string) ([]Entry, error) {
	conn, err := c.DialContext(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if len(attrs) == 0 {
		attrs = []string{"*"}
	}
	res, err := conn.Search(ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases, 0, 0, false,
		filter, attrs, nil))
	if err != nil {
		return nil, c.wrap("search "+base, err)
	}
	out := make([]Entry, 0, len(res.Entries))
	for _, e := range res.Entries {
		out = append(out, Entry{DN: e.DN, Attrs: entryAttrs(e)})
	}
	return out, nil
}

// CountObjects counts the objects a full refresh reads (the filter below
// c.BaseDN), reading no attributes, in pages so that Active Directory's
// page limit does not cut it short.
func (c *Config) CountObjects(ctx context.Context) (int, error) {
	conn, err := c.DialContext(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	res, err := conn.SearchWithPaging(ldap.NewSearchRequest(c.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		c.filter(), []string{"1.1"}, nil), 500)
	if err != nil {
		return 0, c.wrap("count below "+c.BaseDN, err)
	}
	return len(res.Entries), nil
}

// ServerObject finds the DN of a server's SMTP protocol object (vs 0:
// cn=SMTP,cn=Protocols,cn=<server>,…) or of its virtual server vs
// (cn=<vs>,cn=SMTP,…) below c.BaseDN.
func (c *Config) ServerObject(ctx context.Context, server string, vs int) (string, error) {
	class, cn := schema.ClassSMTP, "SMTP"
	if vs > 0 {
		class, cn = schema.ClassSMTPServer, fmt.Sprint(vs)
	}
	filter := "(&(objectClass=" + class + ")(cn=" + ldap.EscapeFilter(cn) + "))"
	es, err := c.Search(ctx, filter, []string{"cn"})
	if err != nil {
		return "", err
	}
	var found []string
	for _, e := range es {
		if serverOfDN(e.DN, vs > 0, server) {
			found = append(found, e.DN)
		}
	}
	what := "the SMTP protocol object of " + server
	if vs > 0 {
		what = fmt.Sprintf("virtual server %d of %s", vs, server)
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%s not found below %s", what, c.BaseDN)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%s: %d objects match (%s)", what, len(found), strings.Join(found, "; "))
}

// serverOfDN reports whether dn is cn=SMTP,cn=Protocols,cn=<server>,…
// (with one more RDN in front for a virtual server).
func serverOfDN(dn string, virtual bool, server string) bool {
	p, err := ldap.ParseDN(dn)
	if err != nil {
		return false
	}
	i := 0
	if virtual {
		i = 1
	}
	rdn := func(k int) string {
		if k >= len(p.RDNs) || len(p.RDNs[k].Attributes) != 1 || !strings.EqualFold(p.RDNs[k].Attributes[0].Type, "cn") {
			return ""
		}
		return p.RDNs[k].Attributes[0].Value
	}
	return strings.EqualFold(rdn(i), "SMTP") && strings.EqualFold(rdn(i+1), "Protocols") && strings.EqualFold(rdn(i+2), server)
}

// Replace sets an attribute of the object dn to vals; no values removes
// the attribute.
func (c *Config) Replace(ctx context.Context, dn, attr string, vals []string) error {
	req := ldap.NewModifyRequest(dn, nil)
	if len(vals) == 0 {
		req.Delete(attr, nil)
	} else {
		req.Replace(attr, vals)
	}
	return c.modify(ctx, req, "modify "+dn+" "+attr)
}

// AddValues adds vals to an attribute of the object dn.
func (c *Config) AddValues(ctx context.Context, dn, attr string, vals []string) error {
	req := ldap.NewModifyRequest(dn, nil)
	req.Add(attr, vals)
	return c.modify(ctx, req, "modify "+dn+" add "+attr)
}

// modify sends one modify request on a connection of its own.
func (c *Config) modify(ctx context.Context, req *ldap.ModifyRequest, what string) error {
	conn, err := c.DialContext(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.Modify(req); err != nil {
		return c.wrap(what, err)
	}
	return nil
}

// TLSConfig is the TLS configuration that verifies the directory against
// the PEM CA certificates in caFile.
func TLSConfig(caFile string) (*tls.Config, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
