package replicator

import (
	"slices"
	"strconv"
	"strings"
)

// Object is one directory object of the mirror: its DN and attributes
// (name → values, names as the directory returned them). Objects are
// treated as immutable once stored: a change replaces the whole Object.
type Object struct {
	DN    string
	Attrs map[string][]string

	rdns []rdn  // parsed DN, cached by parsed()
	norm string // normalised DN, cached by normalized()
}

// parsed returns the object's DN as RDNs, parsing it once.
func (o *Object) parsed() []rdn {
	if o.rdns == nil {
		o.rdns = parseDN(o.DN)
	}
	return o.rdns
}

// normalized returns the object's DN in comparable form, computed once.
func (o *Object) normalized() string {
	if o.norm == "" {
		o.norm = joinDN(o.parsed())
	}
	return o.norm
}

// Get returns the values of an attribute, matched case-insensitively.
func (o *Object) Get(name string) []string {
	if v, ok := o.Attrs[name]; ok {
		return v
	}
	for k, v := range o.Attrs {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

// First returns the first value of an attribute, or "".
func (o *Object) First(name string) string {
	if v := o.Get(name); len(v) > 0 {
		return v[0]
	}
	return ""
}

// HasClass reports whether the object's objectClass holds class.
func (o *Object) HasClass(class string) bool {
	for _, c := range o.Get(attrObjectClass) {
		if strings.EqualFold(c, class) {
			return true
		}
	}
	return false
}

// Mirror is the replicator's copy of the directory objects it reads, keyed
// by entryUUID (lower-case string form).
type Mirror map[string]*Object

// LDAP's own attribute names, the only ones the core names outside the
// catalogue (schema/classes.go holds the Exchange structural ones).
const (
	attrObjectClass = "objectClass"
	attrCN          = "cn"
)

// rdn is one relative distinguished name, type lower-cased, value unescaped.
type rdn struct{ typ, val string }

// parseDN splits a DN into RDNs (RFC 4514 escapes: "\," and "\2C"). It is
// lenient: the directory produced the DN.
func parseDN(dn string) []rdn {
	var out []rdn
	var cur strings.Builder
	var typ string
	inType := true
	flush := func() {
		v := strings.TrimSpace(cur.String())
		if inType {
			// An RDN without "=": keep it as a bare value.
			out = append(out, rdn{val: v})
		} else {
			out = append(out, rdn{typ: strings.ToLower(strings.TrimSpace(typ)), val: v})
		}
		cur.Reset()
		typ, inType = "", true
	}
	for i := 0; i < len(dn); i++ {
		c := dn[i]
		switch {
		case c == '\\' && i+1 < len(dn):
			if i+2 < len(dn) && isHex(dn[i+1]) && isHex(dn[i+2]) {
				n, _ := strconv.ParseUint(dn[i+1:i+3], 16, 8)
				cur.WriteByte(byte(n))
				i += 2
			} else {
				cur.WriteByte(dn[i+1])
				i++
			}
		case c == '=' && inType:
			typ = cur.String()
			cur.Reset()
			inType = false
		case c == ',' || c == ';':
			flush()
		default:
			cur.WriteByte(c)
		}
	}
	if cur.Len() > 0 || !inType {
		flush()
	}
	return out
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// normDN is a comparable form of a DN: RDNs lower-cased and re-joined.
func normDN(dn string) string { return joinDN(parseDN(dn)) }

func joinDN(rs []rdn) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.typ + "=" + strings.ToLower(r.val)
	}
	return strings.Join(parts, ",")
}

// isCN reports whether r is "cn=<val>" (case-insensitive).
func (r rdn) isCN(val string) bool { return r.typ == "cn" && strings.EqualFold(r.val, val) }

// sortedUUIDs returns the mirror's keys ordered by DN, then UUID, so that
// every render visits objects in the same order.
func (m Mirror) sortedUUIDs() []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		if c := strings.Compare(m[a].normalized(), m[b].normalized()); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return ids
}
