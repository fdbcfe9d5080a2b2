package schema

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// README markers around the generated configuration reference. The first
// generation replaces a line holding only ConfigReferencePlaceholder with
// the marker pair and the reference; later ones replace what lies between
// the markers and nothing else.
const (
	ConfigReferenceBegin       = "<!-- BEGIN CONFIG REFERENCE -->"
	ConfigReferenceEnd         = "<!-- END CONFIG REFERENCE -->"
	ConfigReferencePlaceholder = "<!-- CONFIG REFERENCE -->"
)

// ConfigReference renders the catalogue as README's configuration
// reference, in Markdown: one row per metabase property (IIS name, ID, type,
// inheritance, node kinds, default, unit, directory attribute, grade, what it
// does (Property.Description: the setting's purpose and what ds2mb's SMTP
// worker does with it), and the note that records each choice made where
// REFERENCE.md grades a fact G or U or sources conflict), then the directory
// attributes that have no metabase property. The output is deterministic.
func ConfigReference() []byte {
	var b bytes.Buffer
	b.WriteString("_Generated from the schema catalogue (`schema.Properties()`, `schema.Attributes()`) by `go generate ./schema`; do not edit by hand._\n\n")
	b.WriteString("Grades follow REFERENCE.md: **D** stated by a source, **N** very likely, **G** guessed, **U** unsourced; ")
	b.WriteString("the grade is that of the property's ID and of its pairing with the directory attribute. ")
	b.WriteString("Every G or U entry and every default chosen where sources conflict says what was chosen in its note. ")
	b.WriteString("IDs from 61696 (0xF100) up are ds2mb's own, for properties whose IIS ID is unsourced. ")
	b.WriteString("Nodes: `service` = `/LM/SmtpSvc`, `server` = `/LM/SmtpSvc/N`, `domain` = `/LM/SmtpSvc/N/Domain/<domain>`, ")
	b.WriteString("`binding` = `…/EventManager/EventTypes/{CATID}/Bindings/{ID}`, `binding-source` = its `SourceProperties`. ")
	b.WriteString("Inherit = INHERIT: a virtual server without its own value takes the service's; without either, the default applies.\n\n")
	b.WriteString("| Property | ID | Type | Inherit | Nodes | Default | Unit | Directory attribute | Grade | What it does | Note |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for i := range properties {
		p := &properties[i]
		typ := p.Type.String()
		switch {
		case p.Bool:
			typ += " (BOOL)"
		case p.Flags:
			typ += " (flags)"
		case len(p.Symbols) > 0:
			typ += " (enum)"
		}
		if p.Secure {
			typ += ", SECURE"
		}
		inherit := "no"
		if p.Inherit {
			inherit = "yes"
		}
		var nodes []string
		for _, k := range p.Nodes.Kinds() {
			nodes = append(nodes, k.String())
		}
		def := "—"
		if p.Default != "" {
			def = "`" + mdCode(p.Default) + "`"
		}
		unit := p.Unit
		if unit == "" {
			unit = "—"
		}
		attr := "—"
		if p.Attribute != "" {
			attr = "`" + p.Attribute + "`"
		}
		note := refNote(p)
		fmt.Fprintf(&b, "| `%s` | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			p.Name, p.ID, typ, inherit, strings.Join(nodes, ", "), def, mdCell(unit), attr, p.Grade, mdCell(p.Description()), mdCell(note))
	}
	b.WriteString("\nDirectory attributes without a metabase property (read for routing, kept for completeness, or not replicated):\n\n")
	b.WriteString("| Attribute | OID | Syntax | Values | Why no property |\n")
	b.WriteString("|---|---|---|---|---|\n")
	for _, a := range attributes {
		if _, ok := ForAttribute(a.Name); ok {
			continue
		}
		syntax, _ := a.Syntax.ADSyntax()
		values := "single"
		if a.Multi {
			values = "multi"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", a.Name, a.OID, syntax, values, mdCell(a.Description))
	}
	return b.Bytes()
}

// refNote is the note column of a property: its Note, plus its range or
// format when they say something the other columns do not.
func refNote(p *Property) string {
	var parts []string
	if p.Note != "" {
		parts = append(parts, p.Note)
	}
	if p.HasRange && !p.Flags && !p.Bool {
		parts = append(parts, fmt.Sprintf("range %d–%d", p.Min, p.Max))
	}
	if len(p.Symbols) > 0 && len(p.Symbols) <= 8 {
		var s []string
		for _, sym := range p.Symbols {
			s = append(s, fmt.Sprintf("%s 0x%x", sym.Name, sym.Value))
		}
		parts = append(parts, strings.Join(s, ", "))
	}
	if f := formatNames[p.Format]; f != "" {
		parts = append(parts, "format: "+f)
	}
	return strings.Join(parts, "; ")
}

var formatNames = map[Format]string{
	FormatBindings:       "IP:port:host per line",
	FormatSecureBindings: "IP:port per line",
	FormatRetryList:      "minutes, e.g. 15,30,60,240",
	FormatSmartHost:      "host name or [IP]",
	FormatIPSecList:      "IPSECLIST blob (REFERENCE.md §4)",
	FormatDomain:         "domain name",
	FormatRule:           "CMD=pattern;… (EHLO, HELO, MAIL FROM, RCPT TO)",
	FormatGUID:           "{GUID}",
	FormatAddress:        "e-mail address or local part",
}

// mdCell makes s safe in a Markdown table cell.
func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;").Replace(s)
}

// mdCode makes s safe inside a code span in a table cell.
func mdCode(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "`", "'").Replace(s)
}

// SpliceConfigReference returns readme with the configuration reference
// (ConfigReference) between the BEGIN and END markers, or in place of the
// placeholder line the first time. Nothing else in readme changes.
func SpliceConfigReference(readme []byte) ([]byte, error) {
	body := ConfigReference()
	s := string(readme)
	if i := strings.Index(s, ConfigReferenceBegin); i >= 0 {
		rest := s[i+len(ConfigReferenceBegin):]
		j := strings.Index(rest, ConfigReferenceEnd)
		if j < 0 {
			return nil, fmt.Errorf("README has %s but no %s after it", ConfigReferenceBegin, ConfigReferenceEnd)
		}
		var out bytes.Buffer
		out.WriteString(s[:i+len(ConfigReferenceBegin)])
		out.WriteString("\n\n")
		out.Write(body)
		out.WriteString("\n")
		out.WriteString(rest[j:])
		return out.Bytes(), nil
	}
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) != ConfigReferencePlaceholder {
			continue
		}
		nl := ""
		if strings.HasSuffix(l, "\n") {
			nl = "\n"
		}
		lines[i] = ConfigReferenceBegin + "\n\n" + string(body) + "\n" + ConfigReferenceEnd + nl
		return []byte(strings.Join(lines, "")), nil
	}
	return nil, errors.New("README has neither " + ConfigReferenceBegin + "/" + ConfigReferenceEnd + " markers nor a " + ConfigReferencePlaceholder + " line")
}
