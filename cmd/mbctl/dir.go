package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ds2mb/ds2mb/replicator/source"
	"github.com/ds2mb/ds2mb/schema"
)

const dirUsage = `mbctl dir: edit the directory objects ds2mb replicates

  mbctl dir get    [CONNECTION] --server NAME [--vs N] PROPERTY
  mbctl dir set    [CONNECTION] --server NAME [--vs N] PROPERTY VALUE [VALUE...]
  mbctl dir delete [CONNECTION] --server NAME [--vs N] PROPERTY

PROPERTY is a metabase name (MaxRecipients) or its directory attribute
(msExchSmtpMaxRecipients); with --vs it is set on virtual server N's object
(cn=N,cn=SMTP,cn=Protocols,cn=NAME,...), without it on the server's SMTP
object. A value is checked against the catalogue (type, range, format) and
refused, with the reason, before anything is written. delete removes the
attribute, so the metabase default applies.

CONNECTION: --ldap-url URL ($DS2MB_LDAP_URL), --bind-dn DN ($DS2MB_BIND_DN),
--bind-password-file FILE ($DS2MB_BIND_PASSWORD_FILE, or the password in
$DS2MB_BIND_PASSWORD), --base-dn DN, the configuration naming context
($DS2MB_BASE_DN), --ca-file PEM and --starttls as for ds2mb; --server
defaults to $DS2MB_SERVER.
`

func (c *command) dir(args []string) int {
	sub, rest, code, done := c.subcommand("dir", dirUsage, args)
	if done {
		return code
	}
	url := c.fs.String("ldap-url", os.Getenv("DS2MB_LDAP_URL"), "directory URL")
	bindDN := c.fs.String("bind-dn", os.Getenv("DS2MB_BIND_DN"), "bind DN")
	pwFile := c.fs.String("bind-password-file", os.Getenv("DS2MB_BIND_PASSWORD_FILE"), "file holding the bind password")
	baseDN := c.fs.String("base-dn", os.Getenv("DS2MB_BASE_DN"), "configuration naming context (cn=Configuration,…)")
	caFile := c.fs.String("ca-file", "", "PEM CA certificates for ldaps:// and --starttls")
	startTLS := c.fs.Bool("starttls", false, "upgrade the ldap:// connection with StartTLS")
	server := c.fs.String("server", os.Getenv("DS2MB_SERVER"), "the server (SERVER01)")
	vs := c.fs.Int("vs", 0, "virtual server number; 0 = the server's SMTP object")
	pos, ok := c.parse(rest)
	if !ok {
		return exitUsage
	}
	want := map[string]int{"get": 1, "set": 2, "delete": 1}
	n, known := want[sub]
	switch {
	case !known:
		fmt.Fprintf(c.stderr, "mbctl dir: unknown command %q\n\n%s", sub, dirUsage)
		return exitUsage
	case len(pos) < n || sub != "set" && len(pos) > n:
		return c.dirUsageError("want PROPERTY%s", map[bool]string{true: " VALUE [VALUE...]", false: ""}[sub == "set"])
	case *url == "" || *baseDN == "" || *server == "":
		return c.dirUsageError("--ldap-url, --base-dn and --server are required (or $DS2MB_LDAP_URL, $DS2MB_BASE_DN, $DS2MB_SERVER)")
	}
	p, err := dirProperty(pos[0], *vs)
	if err != nil {
		return c.errorf("%v", err)
	}
	if sub == "set" {
		// The catalogue's check, before anything is written.
		if _, err := p.FromDirectory(pos[1:]); err != nil {
			return c.errorf("%s (%s): %v; nothing written", p.Name, p.Attribute, err)
		}
	}
	password := os.Getenv("DS2MB_BIND_PASSWORD")
	if *pwFile != "" {
		b, err := os.ReadFile(*pwFile)
		if err != nil {
			return c.errorf("--bind-password-file: %v", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	cfg := source.Config{URL: *url, BindDN: *bindDN, Password: password, BaseDN: source.SearchBase(*baseDN), StartTLS: *startTLS}
	if *caFile != "" {
		tc, err := source.TLSConfig(*caFile)
		if err != nil {
			return c.errorf("--ca-file: %v", err)
		}
		cfg.TLS = tc
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dn, err := cfg.ServerObject(ctx, *server, *vs)
	if err != nil {
		return c.errorf("%v", err)
	}
	loc := schema.ServiceLocation
	if *vs > 0 {
		loc = schema.ServerLocation(*vs)
	}
	switch sub {
	case "get":
		es, err := cfg.Search(ctx, "(objectClass=*)", []string{p.Attribute})
		if err != nil {
			return c.errorf("%v", err)
		}
		for _, e := range es {
			if !strings.EqualFold(e.DN, dn) {
				continue
			}
			vals := attrValues(e.Attrs, p.Attribute)
			if len(vals) == 0 {
				fmt.Fprintf(c.stdout, "%s: %s not set (%s %s takes its default)\n", dn, p.Attribute, loc, p.Name)
				return exitOK
			}
			for _, v := range vals {
				fmt.Fprintf(c.stdout, "%s: %s = %s\n", dn, p.Attribute, display(v))
			}
			return exitOK
		}
		return c.errorf("%s: not readable", dn)
	case "set":
		if err := cfg.Replace(ctx, dn, p.Attribute, pos[1:]); err != nil {
			return c.errorf("%v", err)
		}
		fmt.Fprintf(c.stdout, "%s: %s = %s (becomes %s %s)\n", dn, p.Attribute, strings.Join(pos[1:], "; "), loc, p.Name)
	case "delete":
		if err := cfg.Replace(ctx, dn, p.Attribute, nil); err != nil {
			return c.errorf("%v", err)
		}
		fmt.Fprintf(c.stdout, "%s: %s removed (%s %s takes its default)\n", dn, p.Attribute, loc, p.Name)
	}
	return exitOK
}

func (c *command) dirUsageError(format string, a ...any) int {
	fmt.Fprintf(c.stderr, "mbctl %s: %s\n\n%s", c.name, fmt.Sprintf(format, a...), dirUsage)
	return exitUsage
}

// dirProperty finds the catalogue property a name means, by metabase name
// or directory attribute, and checks that it lives in the directory on
// the object asked for.
func dirProperty(name string, vs int) (*schema.Property, error) {
	p, ok := schema.Lookup(name)
	if !ok {
		p, ok = schema.ForAttribute(name)
	}
	if !ok {
		return nil, fmt.Errorf("%q is neither a metabase property nor a directory attribute of the catalogue", name)
	}
	if p.Attribute == "" {
		return nil, fmt.Errorf("%s has no directory attribute: it is set in the metabase only", p.Name)
	}
	kind, what := schema.NodeService, "the server's SMTP object (no --vs)"
	if vs > 0 {
		kind, what = schema.NodeServer, "a virtual server (--vs N)"
	}
	if !p.Nodes.Has(kind) {
		return nil, fmt.Errorf("%s (%s) is not a property of %s", p.Name, p.Attribute, what)
	}
	return p, nil
}

func attrValues(m map[string][]string, name string) []string {
	for k, v := range m {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}
