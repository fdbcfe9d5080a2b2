package localdir

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"
)

// record is one LDIF record (RFC 2849): an entry to add, or a change.
type record struct {
	line       int    // line of the dn: line, for errors
	dn         string // the record's DN
	changeType string // "add" (also for plain entries), "modify", "delete", "modrdn"
	attrs      []attr // add: the entry's attributes, in order, one per name
	mods       []mod  // modify: the changes, in order
	newRDN     string // modrdn
	deleteOld  bool   // modrdn
	newSup     string // modrdn: new superior, "" = same parent
}

// attr is one attribute with its values.
type attr struct {
	name string
	vals []string
}

// mod is one change of a modify record.
type mod struct {
	op string // add, delete, replace
	attr
}

// line is one logical LDIF line "name: value" after unfolding and decoding.
type line struct {
	n           int
	name, value string
}

// parseLDIF reads LDIF text: records separated by blank lines, "#" comments,
// continuation lines starting with one space, "name:: base64" values, and
// changetype add, modify, delete and modrdn/moddn. Records without a
// changetype are entries to add.
func parseLDIF(text string) ([]record, error) {
	var recs []record
	var cur []line
	flush := func() error {
		if len(cur) == 0 {
			return nil
		}
		r, err := buildRecord(cur)
		cur = nil
		if err != nil {
			return err
		}
		if r != nil {
			recs = append(recs, *r)
		}
		return nil
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	n := 0
	var raw string // the logical line being unfolded
	rawLine := 0
	inComment := false
	emit := func() error {
		if raw == "" {
			return nil
		}
		l, err := splitLine(raw, rawLine)
		raw = ""
		if err != nil {
			return err
		}
		cur = append(cur, l)
		return nil
	}
	for sc.Scan() {
		n++
		s := strings.TrimSuffix(sc.Text(), "\r")
		switch {
		case strings.HasPrefix(s, " "):
			if inComment {
				continue
			}
			if raw == "" {
				return nil, fmt.Errorf("ldif line %d: continuation line without a line to continue", n)
			}
			raw += s[1:]
		case strings.HasPrefix(s, "#"):
			if err := emit(); err != nil {
				return nil, err
			}
			inComment = true
		case strings.TrimSpace(s) == "":
			inComment = false
			if err := emit(); err != nil {
				return nil, err
			}
			if err := flush(); err != nil {
				return nil, err
			}
		default:
			inComment = false
			if err := emit(); err != nil {
				return nil, err
			}
			raw, rawLine = s, n
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("ldif: %w", err)
	}
	if err := emit(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return recs, nil
}

// splitLine splits "name: value", "name:: base64" or a lone "-".
func splitLine(s string, n int) (line, error) {
	if s == "-" {
		return line{n: n, name: "-"}, nil
	}
	name, rest, ok := strings.Cut(s, ":")
	if !ok || name == "" {
		return line{}, fmt.Errorf("ldif line %d: %q is not \"name: value\"", n, abbrev(s))
	}
	switch {
	case strings.HasPrefix(rest, ":"):
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest[1:]))
		if err != nil {
			return line{}, fmt.Errorf("ldif line %d: attribute %s: bad base64 value: %v", n, name, err)
		}
		return line{n: n, name: name, value: string(b)}, nil
	case strings.HasPrefix(rest, "<"):
		return line{}, fmt.Errorf("ldif line %d: attribute %s: URL values (\"%s:<\") are not supported", n, name, name)
	default:
		return line{n: n, name: name, value: strings.TrimLeft(rest, " ")}, nil
	}
}

// buildRecord turns the lines of one record into a record; a "version: 1"
// alone is skipped.
func buildRecord(ls []line) (*record, error) {
	if strings.EqualFold(ls[0].name, "version") {
		ls = ls[1:]
		if len(ls) == 0 {
			return nil, nil
		}
	}
	if !strings.EqualFold(ls[0].name, "dn") {
		return nil, fmt.Errorf("ldif line %d: a record must start with dn:, not %s:", ls[0].n, ls[0].name)
	}
	r := &record{line: ls[0].n, dn: ls[0].value, changeType: "add"}
	if _, err := ldap.ParseDN(r.dn); err != nil {
		return nil, fmt.Errorf("ldif line %d: bad DN %q: %v", r.line, r.dn, err)
	}
	ls = ls[1:]
	for len(ls) > 0 && strings.EqualFold(ls[0].name, "control") {
		return nil, fmt.Errorf("ldif line %d: dn %s: controls are not supported", ls[0].n, r.dn)
	}
	if len(ls) > 0 && strings.EqualFold(ls[0].name, "changetype") {
		r.changeType = strings.ToLower(strings.TrimSpace(ls[0].value))
		ls = ls[1:]
	}
	where := func(l line) string { return fmt.Sprintf("ldif line %d: dn %s", l.n, r.dn) }
	switch r.changeType {
	case "add":
		for _, l := range ls {
			if l.name == "-" {
				return nil, fmt.Errorf("%s: unexpected \"-\" in an add record", where(l))
			}
			r.attrs = addValue(r.attrs, l.name, l.value)
		}
		if len(r.attrs) == 0 {
			return nil, fmt.Errorf("ldif line %d: dn %s: an entry needs attributes", r.line, r.dn)
		}
	case "delete":
		if len(ls) > 0 {
			return nil, fmt.Errorf("%s: a delete record takes no attributes", where(ls[0]))
		}
	case "modrdn", "moddn":
		r.changeType = "modrdn"
		for _, l := range ls {
			switch strings.ToLower(l.name) {
			case "newrdn":
				r.newRDN = l.value
			case "deleteoldrdn":
				r.deleteOld = strings.TrimSpace(l.value) == "1"
			case "newsuperior":
				r.newSup = l.value
			default:
				return nil, fmt.Errorf("%s: unexpected %s: in a modrdn record", where(l), l.name)
			}
		}
		if r.newRDN == "" {
			return nil, fmt.Errorf("ldif line %d: dn %s: modrdn needs newrdn:", r.line, r.dn)
		}
	case "modify":
		for len(ls) > 0 {
			op := strings.ToLower(ls[0].name)
			if op != "add" && op != "delete" && op != "replace" {
				return nil, fmt.Errorf("%s: want add:, delete: or replace:, got %s:", where(ls[0]), ls[0].name)
			}
			m := mod{op: op, attr: attr{name: strings.TrimSpace(ls[0].value)}}
			ls = ls[1:]
			for len(ls) > 0 && ls[0].name != "-" {
				if !strings.EqualFold(ls[0].name, m.name) {
					return nil, fmt.Errorf("%s: value of %s inside a change of %s", where(ls[0]), ls[0].name, m.name)
				}
				m.vals = append(m.vals, ls[0].value)
				ls = ls[1:]
			}
			if len(ls) > 0 {
				ls = ls[1:] // the "-"
			}
			r.mods = append(r.mods, m)
		}
	default:
		return nil, fmt.Errorf("ldif line %d: dn %s: unknown changetype %q", r.line, r.dn, r.changeType)
	}
	return r, nil
}

func addValue(as []attr, name, v string) []attr {
	for i := range as {
		if strings.EqualFold(as[i].name, name) {
			as[i].vals = append(as[i].vals, v)
			return as
		}
	}
	return append(as, attr{name: name, vals: []string{v}})
}

// entryLDIF writes an add record as plain LDIF content (no changetype), for
// slapadd; values that are not safe as plain text are written base64.
func (r record) entryLDIF(b *strings.Builder) {
	writeValue(b, "dn", r.dn)
	for _, a := range r.attrs {
		for _, v := range a.vals {
			writeValue(b, a.name, v)
		}
	}
	b.WriteString("\n")
}

func writeValue(b *strings.Builder, name, v string) {
	if safeString(v) {
		fmt.Fprintf(b, "%s: %s\n", name, v)
	} else {
		fmt.Fprintf(b, "%s:: %s\n", name, base64.StdEncoding.EncodeToString([]byte(v)))
	}
}

// safeString reports whether v may be written as a plain LDIF value
// (RFC 2849 SAFE-STRING, restricted to printable ASCII).
func safeString(v string) bool {
	if v == "" {
		return true
	}
	if v[0] == ' ' || v[0] == ':' || v[0] == '<' || v[len(v)-1] == ' ' || !utf8.ValidString(v) {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}

func abbrev(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

// apply performs the record over LDAP.
func (r record) apply(c *ldap.Conn) error {
	var err error
	switch r.changeType {
	case "add":
		req := ldap.NewAddRequest(r.dn, nil)
		for _, a := range r.attrs {
			req.Attribute(a.name, a.vals)
		}
		err = c.Add(req)
	case "delete":
		err = c.Del(ldap.NewDelRequest(r.dn, nil))
	case "modrdn":
		err = c.ModifyDN(ldap.NewModifyDNRequest(r.dn, r.newRDN, r.deleteOld, r.newSup))
	case "modify":
		req := ldap.NewModifyRequest(r.dn, nil)
		for _, m := range r.mods {
			switch m.op {
			case "add":
				req.Add(m.name, m.vals)
			case "delete":
				req.Delete(m.name, m.vals)
			case "replace":
				req.Replace(m.name, m.vals)
			}
		}
		err = c.Modify(req)
	}
	if err != nil {
		return fmt.Errorf("ldif line %d: %s %s: %w", r.line, r.changeType, r.dn, err)
	}
	return nil
}

// ApplyLDIF applies ldapadd/ldapmodify-style LDIF over an open connection
// (records without changetype are added; add, modify, delete and modrdn are
// supported), stopping at the first failing record. Other directory
// harnesses (deploy/samba) load their fixtures with it.
func ApplyLDIF(c *ldap.Conn, ldif string) error {
	recs, err := parseLDIF(ldif)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if err := r.apply(c); err != nil {
			return err
		}
	}
	return nil
}
