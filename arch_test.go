package ds2mb_test

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// module is the module path; project packages are it and below.
const module = "github.com/ds2mb/ds2mb"

// pkg is what the rules need of one package of `go list -json`.
type pkg struct {
	ImportPath string
	Imports    []string // direct imports of the non-test files
	Deps       []string // every package the non-test files depend on, transitively
}

// rule forbids packages matching who from importing packages matching what.
// Transitive rules look at every dependency (Deps), direct ones only at the
// package's own import lines (Imports). Test files are not subject to the
// rules: tests may use any client library to drive the code they test.
type rule struct {
	name       string
	who        func(p string) bool // the packages the rule applies to
	what       func(p string) bool // the imports they may not have
	transitive bool
}

// under reports whether p is the project package dir or below it.
func under(dir string) func(string) bool {
	full := module + "/" + dir
	return func(p string) bool { return p == full || strings.HasPrefix(p, full+"/") }
}

func project(p string) bool { return p == module || strings.HasPrefix(p, module+"/") }

func not(f func(string) bool) func(string) bool { return func(p string) bool { return !f(p) } }

func anyOf(fs ...func(string) bool) func(string) bool {
	return func(p string) bool {
		for _, f := range fs {
			if f(p) {
				return true
			}
		}
		return false
	}
}

func prefix(mod string) func(string) bool {
	return func(p string) bool { return p == mod || strings.HasPrefix(p, mod+"/") }
}

// rules is the dependency direction of DESIGN.md ("Top-level layout") and the
// house rules on third-party libraries.
var rules = []rule{
	// schema is the leaf every part builds on: it imports nothing of the project.
	{"schema imports nothing of the project", func(p string) bool { return under("schema")(p) && !under("schema/cmd")(p) }, project, true},
	// The generator mains under schema/cmd render the catalogue: schema only.
	{"schema generators import only schema", under("schema/cmd"), func(p string) bool { return project(p) && !under("schema")(p) }, true},
	// metabase sits on the catalogue only.
	{"metabase imports only schema", under("metabase"), func(p string) bool { return project(p) && !under("schema")(p) && !under("metabase")(p) }, true},
	// The metabase file is the only contract between replicator and worker.
	{"replicator never imports smtpsvc", under("replicator"), under("smtpsvc"), true},
	{"smtpsvc never imports replicator", under("smtpsvc"), under("replicator"), true},
	// Only the MetaBase.xml store parses XML with etree.
	{"only metabase imports etree", not(under("metabase")), prefix("github.com/beevik/etree"), false},
	// Only the directory-source code speaks LDAP; deploy (local directory) and
	// the mains may too, and the worker's SMTP AUTH checker, which verifies a
	// password by an LDAP simple bind (issue: "credentials checked by an LDAP
	// simple bind") and is the only worker package allowed to.
	{"only replicator, smtpsvc/auth, deploy and cmd import go-ldap", not(anyOf(under("replicator"), under("smtpsvc/auth"), under("deploy"), under("cmd"))), prefix("github.com/go-ldap/ldap"), false},
	// Only delivery code resolves DNS with miekg/dns.
	{"only smtpsvc imports miekg/dns", not(under("smtpsvc")), prefix("github.com/miekg/dns"), false},
}

// check returns one line per broken rule and package.
func check(pkgs []pkg, rules []rule) []string {
	var bad []string
	for _, r := range rules {
		for _, p := range pkgs {
			if !project(p.ImportPath) || !r.who(p.ImportPath) {
				continue
			}
			list := p.Imports
			if r.transitive {
				list = p.Deps
			}
			for _, imp := range list {
				if imp != p.ImportPath && r.what(imp) {
					bad = append(bad, r.name+": "+p.ImportPath+" imports "+imp)
				}
			}
		}
	}
	return bad
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// listPackages runs go list -json on every package of the module.
func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command(goTool(), "list", "-e", "-json=ImportPath,Imports,Deps", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestArchitecture fails when an import breaks the dependency direction of
// DESIGN.md or the house rules on who may use etree, go-ldap and miekg/dns.
func TestArchitecture(t *testing.T) {
	pkgs := listPackages(t)
	seen := map[string]bool{}
	for _, p := range pkgs {
		seen[p.ImportPath] = true
	}
	for _, must := range []string{module + "/schema", module + "/metabase"} {
		if !seen[must] {
			t.Fatalf("go list did not report %s; the test would check nothing", must)
		}
	}
	for _, line := range check(pkgs, rules) {
		t.Error(line)
	}
}

// TestArchitectureRulesCatch shows that each rule catches the import it
// forbids and lets the allowed ones pass, on made-up packages.
func TestArchitectureRulesCatch(t *testing.T) {
	m := func(s string) string { return module + "/" + s }
	bad := []pkg{
		{ImportPath: m("schema"), Deps: []string{"fmt", m("metabase")}},
		{ImportPath: m("schema/cmd/schemagen"), Deps: []string{m("schema"), m("metabase")}},
		{ImportPath: m("metabase"), Deps: []string{m("schema"), m("replicator")}},
		{ImportPath: m("replicator/source"), Deps: []string{m("smtpsvc/queue")}},
		{ImportPath: m("smtpsvc"), Deps: []string{m("replicator")}},
		{ImportPath: m("smtpsvc/config"), Imports: []string{"github.com/beevik/etree"}},
		{ImportPath: m("smtpsvc/session"), Imports: []string{"github.com/go-ldap/ldap/v3"}},
		{ImportPath: m("replicator"), Imports: []string{"github.com/miekg/dns"}},
	}
	got := check(bad, rules)
	if len(got) != len(rules) {
		t.Errorf("rules found %d problems in %d bad packages, want one each:\n%s", len(got), len(bad), strings.Join(got, "\n"))
	}
	for _, r := range rules {
		found := false
		for _, g := range got {
			found = found || strings.HasPrefix(g, r.name+":")
		}
		if !found {
			t.Errorf("rule %q caught nothing", r.name)
		}
	}
	good := []pkg{
		{ImportPath: m("schema"), Deps: []string{"fmt", "strings"}},
		{ImportPath: m("schema/cmd/schemagen"), Deps: []string{m("schema")}},
		{ImportPath: m("metabase"), Imports: []string{"github.com/beevik/etree", m("schema")}, Deps: []string{"github.com/beevik/etree", m("schema")}},
		{ImportPath: m("replicator"), Imports: []string{"github.com/go-ldap/ldap/v3", m("metabase")}, Deps: []string{m("metabase"), m("schema"), "github.com/beevik/etree"}},
		{ImportPath: m("smtpsvc/delivery"), Imports: []string{"github.com/miekg/dns"}, Deps: []string{m("metabase"), m("schema")}},
		{ImportPath: m("deploy/localdir"), Imports: []string{"github.com/go-ldap/ldap/v3"}},
		{ImportPath: m("cmd/ds2mb"), Imports: []string{m("replicator"), "github.com/go-ldap/ldap/v3"}, Deps: []string{m("replicator"), m("metabase")}},
	}
	if got := check(good, rules); len(got) != 0 {
		t.Errorf("allowed imports reported:\n%s", strings.Join(got, "\n"))
	}
}
