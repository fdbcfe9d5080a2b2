package schema

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"
)

// ADSchemaRoot is the placeholder forest root of the AD schema extension, as
// Microsoft's own schema LDIFs write it: replace "DC=X" with the forest's
// root DN before importing (ldifde -c "DC=X" "#defaultNamingContext", or sed).
const ADSchemaRoot = "DC=X"

// adSchemaNC is the schema naming context under the placeholder root.
const adSchemaNC = "CN=Schema,CN=Configuration," + ADSchemaRoot

// adDefaultSD is the defaultSecurityDescriptor of every class the
// extension adds: full control for Domain Admins, Enterprise Admins and
// SYSTEM, read for Authenticated Users, as configuration objects have.
// Without it objects of the new classes get no read grant, and an ordinary
// account (a replicator's read-only one) sees their DNs but no attributes.
const adDefaultSD = "D:(A;;RPWPCRCCDCLCLORCWOWDSDDTSW;;;DA)(A;;RPWPCRCCDCLCLORCWOWDSDDTSW;;;EA)" +
	"(A;;RPWPCRCCDCLCLORCWOWDSDDTSW;;;SY)(A;;RPLCLORC;;;AU)"

// adBuiltins are the attributes and classes every Active Directory schema
// already holds; the extension names them but never adds them.
var adBuiltins = map[string]bool{
	"top": true, "container": true, "cn": true, "description": true, "adminDisplayName": true,
}

// guidNamespace is the fixed namespace of the name-based UUIDs that stand in
// for the schemaIDGUIDs REFERENCE.md does not give (ds2mb's own attributes
// and class). It is the UUID the OID arc OurArc is made of
// (c243c6a0-c996-4485-aefe-3667d20203f0), so one constant names ds2mb's
// schema in both forms.
var guidNamespace = [16]byte{0xc2, 0x43, 0xc6, 0xa0, 0xc9, 0x96, 0x44, 0x85, 0xae, 0xfe, 0x36, 0x67, 0xd2, 0x02, 0x03, 0xf0}

// NameUUID returns the RFC 4122 version-5 (SHA-1, name-based) UUID of name in
// ds2mb's namespace, in the usual string form. It gives a stable
// schemaIDGUID to a schema object whose GUID the catalogue does not hold.
func NameUUID(name string) string {
	h := sha1.New()
	h.Write(guidNamespace[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	s := hex.EncodeToString(u[:])
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}

// SchemaIDGUID is the schemaIDGUID of a schema object: the catalogue's GUID
// when it has one, else NameUUID of its lDAPDisplayName.
func SchemaIDGUID(name, guid string) string {
	if guid != "" {
		return strings.ToLower(guid)
	}
	return NameUUID(name)
}

// GUIDBytes returns the 16 bytes of a GUID string in Windows' in-memory
// (little-endian) order: the first three groups byte-swapped, as AD stores
// schemaIDGUID and objectGUID.
func GUIDBytes(guid string) ([16]byte, error) {
	var out [16]byte
	s := strings.Trim(guid, "{}")
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return out, fmt.Errorf("%q is not a GUID", guid)
	}
	raw, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil {
		return out, fmt.Errorf("%q is not a GUID", guid)
	}
	copy(out[:], raw)
	out[0], out[1], out[2], out[3] = raw[3], raw[2], raw[1], raw[0]
	out[4], out[5] = raw[5], raw[4]
	out[6], out[7] = raw[7], raw[6]
	return out, nil
}

// ADCommonName derives an AD schema object's cn from its lDAPDisplayName the
// way Microsoft's names read: words split at case changes and joined by "-",
// acronyms kept ("msExchSmtpMaxMessageSize" → "ms-Exch-Smtp-Max-Message-Size",
// "protocolCfgSMTPServer" → "Protocol-Cfg-SMTP-Server").
func ADCommonName(ldapName string) string {
	r := []rune(ldapName)
	var words []string
	start := 0
	for i := 1; i < len(r); i++ {
		prev, cur := r[i-1], r[i]
		next := rune(0)
		if i+1 < len(r) {
			next = r[i+1]
		}
		lowerToUpper := (unicode.IsLower(prev) || unicode.IsDigit(prev) && i-start > 1 && unicode.IsLower(r[i-2])) && unicode.IsUpper(cur)
		acronymEnd := unicode.IsUpper(prev) && unicode.IsUpper(cur) && unicode.IsLower(next)
		if lowerToUpper || acronymEnd {
			words = append(words, string(r[start:i]))
			start = i
		}
	}
	words = append(words, string(r[start:]))
	if w := words[0]; w != "ms" && w != "ds2mb" {
		words[0] = strings.ToUpper(w[:1]) + w[1:]
	}
	return strings.Join(words, "-")
}

// ADSchemaLDIF renders the catalogue's attributes and classes as an Active
// Directory schema extension: attributeSchema records, a schemaUpdateNow of
// the root DSE, then classSchema records in dependency order with a
// schemaUpdateNow after each (a class may name the one before it as superior).
// DNs are under the placeholder root ADSchemaRoot. schemaIDGUIDs are base64
// of the little-endian GUID bytes, the only form AD accepts over LDAP. The
// output is deterministic: deploy/ad/exchange-schema.ldif is this
// function's output, written by go generate.
func ADSchemaLDIF() []byte {
	var b bytes.Buffer
	b.WriteString("# Exchange 2000/2003 SMTP configuration schema as an Active Directory schema extension, as ds2mb reads it.\n")
	b.WriteString("# Code generated by go generate ./schema (schema/cmd/schemagen); DO NOT EDIT.\n")
	b.WriteString("# Source: schema.Attributes() and schema.Classes(). Replace " + ADSchemaRoot + " with the forest root DN, then import as a\n")
	b.WriteString("# Schema Admin with schema updates allowed, e.g. ldapmodify -c -f (or ldifde -i -c \"DC=X\" \"#defaultNamingContext\").\n")
	b.WriteString("# Meant for a directory without the Exchange schema (Samba AD in tests): with Exchange installed the objects exist.\n")
	b.WriteString("# schemaIDGUIDs are Exchange's (OpenChange's copy); ds2mb's own objects get RFC 4122 v5 UUIDs (schema.NameUUID).\n")
	b.WriteString("# Left out, being in every AD base schema: " + strings.Join(sortedKeys(adBuiltins), ", ") + ".\n")
	// Back-links after their forward links, which AD must know first.
	var forward, back []Attribute
	for _, a := range Attributes() {
		switch {
		case adBuiltins[a.Name]:
		case a.LinkID%2 == 1:
			back = append(back, a)
		default:
			forward = append(forward, a)
		}
	}
	writeAttributeSchema(&b, forward)
	if len(back) > 0 {
		b.WriteString("\n")
		writeSchemaUpdateNow(&b)
		writeAttributeSchema(&b, back)
	}
	b.WriteString("\n")
	writeSchemaUpdateNow(&b)
	for _, c := range adClassOrder() {
		cn := ADCommonName(c.Name)
		dn := "CN=" + cn + "," + adSchemaNC
		b.WriteString("\n")
		fmt.Fprintf(&b, "dn: %s\n", dn)
		b.WriteString("changetype: add\nobjectClass: top\nobjectClass: classSchema\n")
		fmt.Fprintf(&b, "cn: %s\n", cn)
		fmt.Fprintf(&b, "lDAPDisplayName: %s\n", c.Name)
		fmt.Fprintf(&b, "adminDisplayName: %s\n", cn)
		fmt.Fprintf(&b, "governsID: %s\n", c.OID)
		sup := c.Sup
		if sup == "" {
			sup = "top"
		}
		fmt.Fprintf(&b, "subClassOf: %s\n", sup)
		category := 1 // structural
		if c.Auxiliary {
			category = 3
		}
		fmt.Fprintf(&b, "objectClassCategory: %d\n", category)
		b.WriteString("rDNAttID: cn\n")
		for _, m := range c.Must {
			fmt.Fprintf(&b, "mustContain: %s\n", m)
		}
		for _, m := range c.May {
			fmt.Fprintf(&b, "mayContain: %s\n", m)
		}
		for _, p := range c.PossSup {
			fmt.Fprintf(&b, "possSuperiors: %s\n", p)
		}
		fmt.Fprintf(&b, "defaultObjectCategory: %s\n", dn)
		fmt.Fprintf(&b, "defaultSecurityDescriptor: %s\n", adDefaultSD)
		writeGUID(&b, c.Name, c.GUID)
		writeAdminDescription(&b, c.Note)
		b.WriteString("\n")
		writeSchemaUpdateNow(&b)
	}
	return b.Bytes()
}

// writeAttributeSchema writes one attributeSchema record per attribute.
func writeAttributeSchema(b *bytes.Buffer, attrs []Attribute) {
	for _, a := range attrs {
		cn := ADCommonName(a.Name)
		syntax, om := a.Syntax.ADSyntax()
		b.WriteString("\n")
		fmt.Fprintf(b, "dn: CN=%s,%s\n", cn, adSchemaNC)
		b.WriteString("changetype: add\nobjectClass: top\nobjectClass: attributeSchema\n")
		fmt.Fprintf(b, "cn: %s\n", cn)
		fmt.Fprintf(b, "lDAPDisplayName: %s\n", a.Name)
		fmt.Fprintf(b, "adminDisplayName: %s\n", cn)
		fmt.Fprintf(b, "attributeID: %s\n", a.OID)
		fmt.Fprintf(b, "attributeSyntax: %s\n", syntax)
		fmt.Fprintf(b, "oMSyntax: %d\n", om)
		if a.Syntax == SyntaxDN {
			// OM object class of DS-DN (object(DS-DN)), required with oMSyntax 127.
			b.WriteString("oMObjectClass:: KwwCh3McAIVK\n")
		}
		fmt.Fprintf(b, "isSingleValued: %s\n", upperBool(!a.Multi))
		if a.RangeUpper > 0 {
			fmt.Fprintf(b, "rangeUpper: %d\n", a.RangeUpper)
		}
		if a.LinkID != 0 {
			fmt.Fprintf(b, "linkID: %d\n", a.LinkID)
		}
		b.WriteString("searchFlags: 0\n")
		writeGUID(b, a.Name, a.GUID)
		writeAdminDescription(b, a.Description)
	}
}

// adClassOrder returns the classes the extension adds, each after its
// superclass and its possible superiors (Samba refuses a class that names
// one not yet in the schema). Builtins are left out.
func adClassOrder() []Class {
	var rest []Class
	done := map[string]bool{}
	for n := range adBuiltins {
		done[n] = true
	}
	for _, c := range Classes() {
		if !adBuiltins[c.Name] {
			rest = append(rest, c)
		}
	}
	var out []Class
	for len(rest) > 0 {
		var later []Class
		for _, c := range rest {
			ready := c.Sup == "" || done[c.Sup]
			for _, p := range c.PossSup {
				ready = ready && (done[p] || p == c.Name)
			}
			if ready {
				done[c.Name] = true
				out = append(out, c)
			} else {
				later = append(later, c)
			}
		}
		if len(later) == len(rest) {
			// A cycle or an unknown class: keep catalogue order;
			// TestADSchemaLDIFOrder reports it.
			return append(out, later...)
		}
		rest = later
	}
	return out
}

func writeGUID(b *bytes.Buffer, name, guid string) {
	raw, err := GUIDBytes(SchemaIDGUID(name, guid))
	if err != nil {
		panic(fmt.Sprintf("schema: %s: %v", name, err)) // caught by TestGUIDs
	}
	fmt.Fprintf(b, "schemaIDGUID:: %s\n", base64.StdEncoding.EncodeToString(raw[:]))
}

// writeAdminDescription writes an adminDescription (at most 1024 characters
// in AD), base64-encoded when LDIF requires it (RFC 2849: non-ASCII, or a
// leading space, colon or '<').
func writeAdminDescription(b *bytes.Buffer, d string) {
	if d == "" {
		return
	}
	if r := []rune(d); len(r) > 1024 {
		d = string(r[:1021]) + "..."
	}
	if ldifSafe(d) {
		fmt.Fprintf(b, "adminDescription: %s\n", d)
		return
	}
	fmt.Fprintf(b, "adminDescription:: %s\n", base64.StdEncoding.EncodeToString([]byte(d)))
}

func ldifSafe(s string) bool {
	if s == "" {
		return true
	}
	if c := s[0]; c == ' ' || c == ':' || c == '<' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == 0 || c == '\n' || c == '\r' || c >= 0x80 {
			return false
		}
	}
	return s[len(s)-1] != ' '
}

func writeSchemaUpdateNow(b *bytes.Buffer) {
	b.WriteString("dn:\nchangetype: modify\nadd: schemaUpdateNow\nschemaUpdateNow: 1\n-\n")
}

func upperBool(v bool) string {
	if v {
		return "TRUE"
	}
	return "FALSE"
}

func sortedKeys(m map[string]bool) []string { return slices.Sorted(maps.Keys(m)) }
