package main

import (
	"context"
	"errors"
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
  mbctl dir add    [CONNECTION] --server NAME [--vs N] PROPERTY VALUE [VALUE...]
  mbctl dir delete [CONNECTION] --server NAME [--vs N] PROPERTY

--json prints the object, attribute, metabase location and property, and
the values the attribute holds after the command, for scripts.

PROPERTY is a metabase name (MaxRecipients) or its directory attribute
(msExchSmtpMaxRecipients); with --vs it is set on virtual server N's object
(cn=N,cn=SMTP,cn=Protocols,cn=NAME,...), without it on the server's SMTP
object. A value is checked against the catalogue (type, range, format) and
refused, with the reason, before anything is written. set replaces every
value; add adds values to a multi-valued attribute (ServerBindings,
SecureBindings, …), checking the values it would then hold; delete removes
the attribute, so the metabase default applies.

CONNECTION: --ldap-url URL ($DS2MB_LDAP_URL), --bind-dn DN ($DS2MB_BIND_DN),
--bind-password-file FILE ($DS2MB_BIND_PASSWORD_FILE, or the password in
$DS2MB_BIND_PASSWORD), --base-dn DN, the configuration naming context
($DS2MB_BASE_DN), --ca-file PEM ($DS2MB_CA_FILE) and --starttls
($DS2MB_STARTTLS=true) as for ds2mb; --server defaults to $DS2MB_SERVER.
What is in neither a flag nor the environment is read from the config file
--config FILE ($DS2MB_CONFIG, else /etc/ds2mb/ds2mb.env when it exists):
the KEY=VALUE lines of ds2mb.service's EnvironmentFile, so the operator's
tool and the daemon share one setting.
`

func (c *command) dir(args []string) int {
	sub, rest, code, done := c.subcommand("dir", dirUsage, args)
	if done {
		return code
	}
	configFile := c.fs.String("config", os.Getenv("DS2MB_CONFIG"), "KEY=VALUE settings file (default /etc/ds2mb/ds2mb.env when it exists)")
	url := c.fs.String("ldap-url", "", "directory URL ($DS2MB_LDAP_URL)")
	bindDN := c.fs.String("bind-dn", "", "bind DN ($DS2MB_BIND_DN)")
	pwFile := c.fs.String("bind-password-file", "", "file holding the bind password ($DS2MB_BIND_PASSWORD_FILE)")
	baseDN := c.fs.String("base-dn", "", "configuration naming context, cn=Configuration,… ($DS2MB_BASE_DN)")
	caFile := c.fs.String("ca-file", "", "PEM CA certificates for ldaps:// and --starttls ($DS2MB_CA_FILE)")
	startTLS := c.fs.String("starttls", "", "upgrade the ldap:// connection with StartTLS: true or false ($DS2MB_STARTTLS)")
	server := c.fs.String("server", "", "the server, SERVER01 ($DS2MB_SERVER)")
	vs := c.fs.Int("vs", 0, "virtual server number; 0 = the server's SMTP object")
	asJSON := c.jsonFlag()
	pos, ok := c.parse(rest)
	if !ok {
		return exitUsage
	}
	settings, err := loadSettings(*configFile)
	if err != nil {
		return c.errorf("%v", err)
	}
	for _, f := range []struct {
		v   *string
		key string
	}{{url, "DS2MB_LDAP_URL"}, {bindDN, "DS2MB_BIND_DN"}, {pwFile, "DS2MB_BIND_PASSWORD_FILE"}, {baseDN, "DS2MB_BASE_DN"},
		{caFile, "DS2MB_CA_FILE"}, {startTLS, "DS2MB_STARTTLS"}, {server, "DS2MB_SERVER"}} {
		if *f.v == "" {
			*f.v = settings.get(f.key)
		}
	}
	useStartTLS, err := parseBoolSetting(*startTLS)
	if err != nil {
		return c.usageError("--starttls: %v", err)
	}
	want := map[string]int{"get": 1, "set": 2, "add": 2, "delete": 1}
	n, known := want[sub]
	withValues := n == 2
	switch {
	case !known:
		fmt.Fprintf(c.stderr, "mbctl dir: unknown command %q\n\n%s", sub, dirUsage)
		return exitUsage
	case len(pos) < n || !withValues && len(pos) > n:
		return c.dirUsageError("want PROPERTY%s", map[bool]string{true: " VALUE [VALUE...]", false: ""}[withValues])
	case *url == "" || *baseDN == "" || *server == "":
		return c.dirUsageError("--ldap-url, --base-dn and --server are required (or $DS2MB_LDAP_URL, $DS2MB_BASE_DN, $DS2MB_SERVER, in the environment or the --config file)")
	}
	p, err := dirProperty(pos[0], *vs)
	if err != nil {
		return c.errorf("%v", err)
	}
	if sub == "add" {
		if a, ok := schema.LookupAttribute(p.Attribute); !ok || !a.Multi {
			return c.errorf("%s (%s) holds one value: use mbctl dir set", p.Name, p.Attribute)
		}
	}
	if sub == "set" {
		// The catalogue's check, before anything is written.
		if _, err := p.FromDirectory(pos[1:]); err != nil {
			return c.errorf("%s (%s): %v; nothing written", p.Name, p.Attribute, err)
		}
	}
	password := settings.get("DS2MB_BIND_PASSWORD")
	if *pwFile != "" {
		b, err := os.ReadFile(*pwFile)
		if err != nil {
			return c.errorf("--bind-password-file: %v", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	cfg := source.Config{URL: *url, BindDN: *bindDN, Password: password, BaseDN: source.SearchBase(*baseDN), StartTLS: useStartTLS}
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
	// report says what the directory holds (get) or now holds (set, add,
	// delete): a line for people, or the object for --json.
	report := func(values []string, line string, a ...any) int {
		if *asJSON {
			if values == nil {
				values = []string{}
			}
			return c.printJSON(dirJSON{Command: sub, DN: dn, Attribute: p.Attribute, Location: loc, Property: p.Name, Values: values})
		}
		fmt.Fprintf(c.stdout, line, a...)
		return exitOK
	}
	switch sub {
	case "get":
		vals, err := objectValues(ctx, &cfg, dn, p.Attribute)
		if err != nil {
			return c.errorf("%v", err)
		}
		if *asJSON {
			return report(vals, "")
		}
		if len(vals) == 0 {
			fmt.Fprintf(c.stdout, "%s: %s not set (%s %s takes its default)\n", dn, p.Attribute, loc, p.Name)
			return exitOK
		}
		for _, v := range vals {
			fmt.Fprintf(c.stdout, "%s: %s = %s\n", dn, p.Attribute, display(v))
		}
	case "add":
		old, err := objectValues(ctx, &cfg, dn, p.Attribute)
		if err != nil {
			return c.errorf("%v", err)
		}
		for _, v := range pos[1:] {
			for _, o := range old {
				if o == v {
					return c.errorf("%s: %s already holds %q; nothing written", dn, p.Attribute, v)
				}
			}
		}
		// The catalogue's check of every value the attribute would hold.
		if _, err := p.FromDirectory(append(append([]string{}, old...), pos[1:]...)); err != nil {
			return c.errorf("%s (%s) with %s added: %v; nothing written", p.Name, p.Attribute, strings.Join(pos[1:], "; "), err)
		}
		if err := cfg.AddValues(ctx, dn, p.Attribute, pos[1:]); err != nil {
			return c.errorf("%v", err)
		}
		return report(append(old, pos[1:]...), "%s: %s += %s (now %d values of %s %s)\n", dn, p.Attribute, strings.Join(pos[1:], "; "), len(old)+len(pos)-1, loc, p.Name)
	case "set":
		if err := cfg.Replace(ctx, dn, p.Attribute, pos[1:]); err != nil {
			return c.errorf("%v", err)
		}
		return report(pos[1:], "%s: %s = %s (becomes %s %s)\n", dn, p.Attribute, strings.Join(pos[1:], "; "), loc, p.Name)
	case "delete":
		if err := cfg.Replace(ctx, dn, p.Attribute, nil); err != nil {
			return c.errorf("%v", err)
		}
		return report(nil, "%s: %s removed (%s %s takes its default)\n", dn, p.Attribute, loc, p.Name)
	}
	return exitOK
}

// dirJSON is what mbctl dir --json prints: the object and attribute, the
// metabase property they become, and the values the attribute holds after
// the command (none = not set, the default applies).
type dirJSON struct {
	Command   string   `json:"command"`
	DN        string   `json:"dn"`
	Attribute string   `json:"attribute"`
	Location  string   `json:"location"`
	Property  string   `json:"property"`
	Values    []string `json:"values"`
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

// objectValues reads the values of attr on the object dn.
func objectValues(ctx context.Context, cfg *source.Config, dn, attr string) ([]string, error) {
	e, err := cfg.Read(ctx, dn, []string{attr})
	if err != nil {
		return nil, err
	}
	return attrValues(e.Attrs, attr), nil
}

// settings are the KEY=VALUE lines of a config file (ds2mb.env); the
// environment comes first.
type settings map[string]string

// defaultConfig is the settings file mbctl reads when it exists and no
// --config or $DS2MB_CONFIG names another: ds2mb.service's.
const defaultConfig = "/etc/ds2mb/ds2mb.env"

// loadSettings reads the config file path, or defaultConfig when path is
// "" (absent is fine then). Lines are KEY=VALUE, values optionally quoted;
// blank lines and # comments are skipped; anything else is an error that
// names the file and line.
func loadSettings(path string) (settings, error) {
	explicit := path != ""
	if !explicit {
		path = defaultConfig
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if !explicit && errors.Is(err, os.ErrNotExist) {
			return settings{}, nil
		}
		return nil, fmt.Errorf("config file: %v", err)
	}
	s := settings{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(strings.TrimPrefix(k, "export "))
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("%s:%d: want KEY=VALUE, got %q", path, i+1, line)
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		s[k] = v
	}
	return s, nil
}

// get is the environment's value of key, else the file's.
func (s settings) get(key string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return s[key]
}

// parseBoolSetting reads true/false (also yes/no, 1/0); "" is false.
func parseBoolSetting(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "", "false", "no", "0":
		return false, nil
	case "true", "yes", "1":
		return true, nil
	}
	return false, fmt.Errorf("%q: want true or false", v)
}

func attrValues(m map[string][]string, name string) []string {
	for k, v := range m {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}
