package schema

import (
	"bytes"
	"encoding/xml"
	"os"
	"strconv"
	"strings"
	"testing"
)

type mbDoc struct {
	XMLName     xml.Name       `xml:"MetaData"`
	Collections []mbCollection `xml:"DatabaseMeta>Collection"`
}

type mbCollection struct {
	Name       string       `xml:"InternalName,attr"`
	Inherits   string       `xml:"InheritsPropertiesFrom,attr"`
	Containers string       `xml:"ContainerClassList,attr"`
	Properties []mbProperty `xml:"Property"`
}

type mbProperty struct {
	Name       string   `xml:"InternalName,attr"`
	ID         string   `xml:"ID,attr"`
	Type       string   `xml:"Type,attr"`
	UserType   string   `xml:"UserType,attr"`
	Attributes string   `xml:"Attributes,attr"`
	Default    *string  `xml:"DefaultValue,attr"`
	Start      string   `xml:"StartingNumber,attr"`
	End        string   `xml:"EndingNumber,attr"`
	MetaFlags  string   `xml:"MetaFlags,attr"`
	Flags      []mbFlag `xml:"Flag"`
}

type mbFlag struct {
	Name  string `xml:"InternalName,attr"`
	Value string `xml:"Value,attr"`
}

// TestMBSchemaXML: the document parses; IIsConfigObject defines every
// property as the catalogue does; each SMTP node class lists exactly the
// properties its node kind may hold.
func TestMBSchemaXML(t *testing.T) {
	var doc mbDoc
	if err := xml.Unmarshal(MBSchemaXML(), &doc); err != nil {
		t.Fatalf("MBSchema.xml does not parse: %v", err)
	}
	byName := map[string]mbCollection{}
	for _, c := range doc.Collections {
		byName[c.Name] = c
	}
	cfg, ok := byName["IIsConfigObject"]
	if !ok {
		t.Fatal("no IIsConfigObject collection")
	}
	if len(cfg.Properties) != len(Properties()) {
		t.Errorf("IIsConfigObject defines %d properties, catalogue has %d", len(cfg.Properties), len(Properties()))
	}
	defs := map[string]mbProperty{}
	for _, mp := range cfg.Properties {
		defs[mp.Name] = mp
	}
	for i := range Properties() {
		p := &Properties()[i]
		mp, ok := defs[p.Name]
		if !ok {
			t.Errorf("%s not defined", p.Name)
			continue
		}
		if mp.ID != strconv.FormatUint(uint64(p.ID), 10) || mp.Type != p.Type.String() || mp.UserType != p.UserType {
			t.Errorf("%s: ID %s Type %s UserType %s; catalogue %d %v %s", p.Name, mp.ID, mp.Type, mp.UserType, p.ID, p.Type, p.UserType)
		}
		if strings.Contains(mp.Attributes, "INHERIT") != p.Inherit || strings.Contains(mp.Attributes, "SECURE") != p.Secure {
			t.Errorf("%s: Attributes %q, Inherit %v Secure %v", p.Name, mp.Attributes, p.Inherit, p.Secure)
		}
		if dv, ok := p.DefaultValue(); ok != (mp.Default != nil) || ok && *mp.Default != dv.Text() {
			t.Errorf("%s: DefaultValue %v, catalogue %q", p.Name, mp.Default, p.Default)
		}
		if p.Bool != strings.Contains(mp.MetaFlags, "BOOL") || p.Flags != strings.Contains(mp.MetaFlags, "FLAG") {
			t.Errorf("%s: MetaFlags %q", p.Name, mp.MetaFlags)
		}
		if len(mp.Flags) != len(p.Symbols) {
			t.Errorf("%s: %d Flag elements, %d symbols", p.Name, len(mp.Flags), len(p.Symbols))
		}
		for j, f := range mp.Flags {
			if j < len(p.Symbols) && (f.Name != p.Symbols[j].Name || f.Value != strconv.FormatUint(uint64(p.Symbols[j].Value), 10)) {
				t.Errorf("%s: Flag %v, symbol %v", p.Name, f, p.Symbols[j])
			}
		}
		if p.HasRange && !p.Flags && !p.Bool && (mp.Start != strconv.FormatUint(uint64(p.Min), 10) || mp.End != strconv.FormatUint(uint64(p.Max), 10)) {
			t.Errorf("%s: range %s–%s, catalogue %d–%d", p.Name, mp.Start, mp.End, p.Min, p.Max)
		}
	}
	if mp := defs["AuthFlags"]; mp.Default == nil || *mp.Default != "1" || len(mp.Flags) < 3 || mp.Flags[1].Name != "AuthBasic" || mp.Flags[1].Value != "2" {
		t.Errorf("AuthFlags definition: %+v", mp)
	}
	if mp := defs["RelayIpList"]; mp.Type != "BINARY" || mp.Attributes != "INHERIT | REFERENCE" || mp.UserType != UTFile {
		t.Errorf("RelayIpList definition: %+v", mp)
	}
	for _, c := range mbClasses {
		col, ok := byName[c.name]
		if !ok {
			t.Errorf("no %s collection", c.name)
			continue
		}
		if col.Inherits != "IIsConfigObject" {
			t.Errorf("%s inherits from %q", c.name, col.Inherits)
		}
		listed := map[string]bool{}
		for _, mp := range col.Properties {
			if _, ok := defs[mp.Name]; !ok && mp.Name != "Location" {
				t.Errorf("%s lists %s, which IIsConfigObject does not define", c.name, mp.Name)
			}
			listed[mp.Name] = true
		}
		for _, p := range Properties() {
			want := false
			for _, k := range c.kinds {
				want = want || p.Nodes.Has(k)
			}
			if want != listed[p.Name] {
				t.Errorf("%s: lists %s = %v, catalogue says %v", c.name, p.Name, listed[p.Name], want)
			}
		}
	}
	if !byName["IIsSmtpServer"].has("ServerBindings") || byName["IIsSmtpService"].has("ServerBindings") || !byName["IIsSmtpDomain"].has("RouteActionString") {
		t.Error("node classes do not follow the catalogue's placement")
	}
}

func (c mbCollection) has(name string) bool {
	for _, p := range c.Properties {
		if p.Name == name {
			return true
		}
	}
	return false
}

// TestConfigReference: one row per property with its facts, its
// description, the G/U notes, and every directory-only attribute with its
// reason.
func TestConfigReference(t *testing.T) {
	ref := string(ConfigReference())
	if !bytes.Equal(ConfigReference(), ConfigReference()) {
		t.Error("ConfigReference is not deterministic")
	}
	rows := map[string]string{}
	for _, line := range strings.Split(ref, "\n") {
		if strings.HasPrefix(line, "| `") {
			name := strings.Trim(strings.SplitN(line, "|", 3)[1], " `")
			if _, dup := rows[name]; dup {
				t.Errorf("row %s twice", name)
			}
			rows[name] = line
		}
	}
	for _, p := range Properties() {
		row, ok := rows[p.Name]
		if !ok {
			t.Errorf("no row for property %s", p.Name)
			continue
		}
		cells := splitRow(row)
		if len(cells) != 11 {
			t.Errorf("%s: %d cells, want 11: %q", p.Name, len(cells), row)
			continue
		}
		if cells[1] != strconv.FormatUint(uint64(p.ID), 10) || !strings.HasPrefix(cells[2], p.Type.String()) || cells[8] != string(p.Grade) {
			t.Errorf("%s: row %q", p.Name, row)
		}
		if p.Attribute != "" && cells[7] != "`"+p.Attribute+"`" {
			t.Errorf("%s: attribute cell %q", p.Name, cells[7])
		}
		if p.Default != "" && !strings.Contains(cells[5], mdCode(p.Default)) {
			t.Errorf("%s: default cell %q lacks %q", p.Name, cells[5], p.Default)
		}
		if cells[9] != mdCell(p.Description()) || cells[9] == "" {
			t.Errorf("%s: what-it-does cell %q, want the description %q", p.Name, cells[9], p.Description())
		}
		if (p.Grade == GradeG || p.Grade == GradeU) && !strings.Contains(cells[10], "ASSUMPTION(") {
			t.Errorf("%s (grade %s): note cell does not show the assumption: %q", p.Name, p.Grade, cells[10])
		}
	}
	for _, a := range Attributes() {
		_, mapped := ForAttribute(a.Name)
		_, listed := rows[a.Name]
		if mapped == listed {
			t.Errorf("attribute %s: mapped %v, listed among the directory-only attributes %v", a.Name, mapped, listed)
		}
	}
	if !strings.Contains(ref, "| Grade | What it does | Note |") {
		t.Error("reference header lacks the What it does column before Note")
	}
	for _, want := range []string{"msExchSmtpOutboundSecurityFlag", "msExchBridgeheadedLocalConnectorsDNBL", "ASSUMPTION(U, REFERENCE.md 2.3)"} {
		if !strings.Contains(ref, want) {
			t.Errorf("reference lacks %q", want)
		}
	}
}

// splitRow splits a Markdown table row on unescaped pipes.
func splitRow(row string) []string {
	var cells []string
	var cur strings.Builder
	for i := 0; i < len(row); i++ {
		switch {
		case row[i] == '\\' && i+1 < len(row) && row[i+1] == '|':
			cur.WriteString(`\|`)
			i++
		case row[i] == '|':
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(row[i])
		}
	}
	if len(cells) > 0 {
		cells = cells[1:] // before the leading pipe
	}
	return cells
}

func TestSpliceConfigReference(t *testing.T) {
	body := string(ConfigReference())
	first, err := SpliceConfigReference([]byte("# Title\n\nintro\n\n" + ConfigReferencePlaceholder + "\n\n## After\ntext\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := "# Title\n\nintro\n\n" + ConfigReferenceBegin + "\n\n" + body + "\n" + ConfigReferenceEnd + "\n\n## After\ntext\n"
	if string(first) != want {
		t.Errorf("placeholder splice:\n%s\nwant\n%s", first, want)
	}
	again, err := SpliceConfigReference(first)
	if err != nil || !bytes.Equal(again, first) {
		t.Errorf("a second splice changed the file: %v", err)
	}
	stale := strings.Replace(string(first), body, "old table\n", 1)
	fixed, err := SpliceConfigReference([]byte(stale))
	if err != nil || !bytes.Equal(fixed, first) {
		t.Errorf("stale section not replaced: %v", err)
	}
	if _, err := SpliceConfigReference([]byte("no markers\n")); err == nil {
		t.Error("README without markers accepted")
	}
	if _, err := SpliceConfigReference([]byte(ConfigReferenceBegin + "\nno end\n")); err == nil {
		t.Error("BEGIN without END accepted")
	}
}

// TestREADMEConfigReferenceCurrent fails when README.md's configuration
// reference is not what the catalogue generates.
func TestREADMEConfigReferenceCurrent(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	if !bytes.Contains(readme, []byte(ConfigReferenceBegin)) {
		t.Fatalf("README.md has no %s section: run go generate ./schema", ConfigReferenceBegin)
	}
	want, err := SpliceConfigReference(readme)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readme, want) {
		t.Fatal("README.md's configuration reference is stale: run go generate ./schema")
	}
}
