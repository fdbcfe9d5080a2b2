package schema

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestOpenLDAPSchemaCommitted fails when deploy/openldap/exchange.schema is
// not what the catalogue generates: run go generate ./schema.
func TestOpenLDAPSchemaCommitted(t *testing.T) {
	const path = "../deploy/openldap/exchange.schema"
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read committed schema: %v (run go generate ./schema)", err)
	}
	if want := OpenLDAPSchema(); !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: run go generate ./schema", path)
	}
}

// TestOpenLDAPSchemaReferences checks that every attribute a class names is
// defined by the catalogue or by the schemas slapd includes before ours, and
// that nothing of those is redefined.
func TestOpenLDAPSchemaReferences(t *testing.T) {
	known := map[string]bool{}
	for _, a := range Attributes() {
		if openLDAPBuiltins[a.Name] {
			t.Errorf("attribute %s is defined by core/cosine already; the catalogue must not redefine it", a.Name)
		}
		if known[strings.ToLower(a.Name)] {
			t.Errorf("attribute %s defined twice", a.Name)
		}
		known[strings.ToLower(a.Name)] = true
	}
	classes := map[string]bool{"top": true}
	for _, c := range Classes() {
		if !classes[c.Sup] && !openLDAPBuiltins[c.Sup] {
			t.Errorf("class %s: superclass %s is not defined before it", c.Name, c.Sup)
		}
		classes[c.Name] = true
		for _, n := range append(append([]string{}, c.Must...), c.May...) {
			if !known[strings.ToLower(n)] && !openLDAPBuiltins[n] {
				t.Errorf("class %s names attribute %s, which neither the catalogue nor core/cosine defines", c.Name, n)
			}
		}
	}
}

// TestOpenLDAPSchemaShape checks the matching rules and SINGLE-VALUE of the
// generated attribute types against their syntax.
func TestOpenLDAPSchemaShape(t *testing.T) {
	out := string(OpenLDAPSchema())
	blocks := regexp.MustCompile(`(?s)attributetype \( (\S+) NAME '([^']+)'(.*?) \)\n`).FindAllStringSubmatch(out, -1)
	if len(blocks) != len(Attributes()) {
		t.Fatalf("generated %d attribute types, catalogue has %d", len(blocks), len(Attributes()))
	}
	for i, m := range blocks {
		a := Attributes()[i]
		oid, name, body := m[1], m[2], m[3]
		if oid != a.OID || name != a.Name {
			t.Errorf("attribute %d: generated %s %s, want %s %s", i, oid, name, a.OID, a.Name)
		}
		want := map[Syntax][]string{
			SyntaxInteger: {"EQUALITY integerMatch", "ORDERING integerOrderingMatch", "SYNTAX 1.3.6.1.4.1.1466.115.121.1.27"},
			SyntaxBoolean: {"EQUALITY booleanMatch", "SYNTAX 1.3.6.1.4.1.1466.115.121.1.7"},
			SyntaxOctet:   {"EQUALITY octetStringMatch", "SYNTAX 1.3.6.1.4.1.1466.115.121.1.40"},
			SyntaxDN:      {"EQUALITY distinguishedNameMatch", "SYNTAX 1.3.6.1.4.1.1466.115.121.1.12"},
			SyntaxString:  {"EQUALITY caseIgnoreMatch", "SUBSTR caseIgnoreSubstringsMatch", "SYNTAX 1.3.6.1.4.1.1466.115.121.1.15"},
		}[a.Syntax]
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: missing %q in %q", a.Name, w, body)
			}
		}
		if single := strings.Contains(body, "SINGLE-VALUE"); single == a.Multi {
			t.Errorf("%s: SINGLE-VALUE is %v, but Multi is %v", a.Name, single, a.Multi)
		}
	}
	if !strings.Contains(out, "1.2.840.113556.1.4.7000.102.5007 NAME 'msExchSmtpMaxMessageSize'") {
		t.Error("msExchSmtpMaxMessageSize does not carry its Microsoft OID 1.2.840.113556.1.4.7000.102.5007")
	}
	if strings.Contains(out, "NAME 'description'") || strings.Contains(out, "NAME 'cn'") {
		t.Error("the schema redefines a core attribute")
	}
}
