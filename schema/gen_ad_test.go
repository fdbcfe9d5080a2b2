package schema

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestGeneratedFilesCurrent fails when a committed generated file is not
// what its generator renders now.
func TestGeneratedFilesCurrent(t *testing.T) {
	for _, f := range []struct {
		path   string
		render func() []byte
	}{
		{"../deploy/ad/exchange-schema.ldif", ADSchemaLDIF},
		{"../deploy/mbschema/MBSchema.xml", MBSchemaXML},
	} {
		got, err := os.ReadFile(f.path)
		if err != nil {
			t.Errorf("%s: %v (run go generate ./schema)", f.path, err)
			continue
		}
		if !bytes.Equal(got, f.render()) {
			t.Errorf("%s is stale: run go generate ./schema", f.path)
		}
		if !bytes.Equal(f.render(), f.render()) {
			t.Errorf("%s: the generator is not deterministic", f.path)
		}
	}
}

// ldifRecord is one record of an LDIF file: its DN and attribute values in order.
type ldifRecord struct {
	dn    string
	attrs map[string][]string
	order []string
}

// parseLDIF reads the simple LDIF the generator writes (no folding),
// decoding base64 values.
func parseLDIF(t *testing.T, data []byte) []ldifRecord {
	t.Helper()
	var out []ldifRecord
	for _, block := range strings.Split(string(data), "\n\n") {
		var r *ldifRecord
		for _, line := range strings.Split(block, "\n") {
			if line == "" || strings.HasPrefix(line, "#") || line == "-" {
				continue
			}
			name, val, ok := strings.Cut(line, ":")
			if !ok {
				t.Fatalf("LDIF line without colon: %q", line)
			}
			if strings.HasPrefix(val, ":") {
				b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(val[1:]))
				if err != nil {
					t.Fatalf("bad base64 in %q: %v", line, err)
				}
				val = string(b)
			} else {
				val = strings.TrimPrefix(val, " ")
			}
			if name == "dn" {
				out = append(out, ldifRecord{dn: val, attrs: map[string][]string{}})
				r = &out[len(out)-1]
				continue
			}
			if r == nil {
				t.Fatalf("attribute before dn: %q", line)
			}
			r.attrs[name] = append(r.attrs[name], val)
			r.order = append(r.order, name)
		}
	}
	return out
}

func (r ldifRecord) one(name string) string {
	if v := r.attrs[name]; len(v) == 1 {
		return v[0]
	}
	return ""
}

// TestADSchemaLDIF checks the records against the catalogue: attributes
// first, schemaUpdateNow, then classes in dependency order.
func TestADSchemaLDIF(t *testing.T) {
	recs := parseLDIF(t, ADSchemaLDIF())
	attrs := map[string]ldifRecord{}
	classes := map[string]int{}
	// updates counts the schemaUpdateNow records so far; updatedAt says how
	// many had been seen when each attribute was added.
	updates := 0
	updatedAt := map[string]int{}
	byLinkID := map[string]int{}
	for i, r := range recs {
		switch {
		case r.dn == "":
			if r.one("changetype") != "modify" || r.one("add") != "schemaUpdateNow" || r.one("schemaUpdateNow") != "1" {
				t.Errorf("record %d: root DSE record is not a schemaUpdateNow modify: %v", i, r.attrs)
			}
			updates++
		case slicesContains(r.attrs["objectClass"], "attributeSchema"):
			name := r.one("lDAPDisplayName")
			if len(classes) > 0 {
				t.Errorf("attribute %s comes after the classes began", name)
			}
			attrs[name] = r
			updatedAt[name] = updates
			if l := r.one("linkID"); l != "" {
				byLinkID[l] = updates
				n, _ := strconv.Atoi(l)
				if n%2 == 1 {
					fwd, ok := byLinkID[strconv.Itoa(n-1)]
					if !ok || fwd >= updates {
						t.Errorf("back-link %s (linkID %d) is not after its forward link and a schemaUpdateNow", name, n)
					}
				}
			}
		case slicesContains(r.attrs["objectClass"], "classSchema"):
			if len(classes) == 0 {
				for a, u := range updatedAt {
					if u >= updates {
						t.Errorf("no schemaUpdateNow between attribute %s and the first class", a)
					}
				}
			}
			name := r.one("lDAPDisplayName")
			classes[name] = i
			for _, dep := range append([]string{r.one("subClassOf")}, r.attrs["possSuperiors"]...) {
				if j, ok := classes[dep]; !ok && !adBuiltins[dep] && dep != name {
					t.Errorf("class %s names %s, which comes later or nowhere", name, dep)
				} else if ok && j >= i {
					t.Errorf("class %s after its dependency %s", name, dep)
				}
			}
			for _, m := range append(append([]string{}, r.attrs["mayContain"]...), r.attrs["mustContain"]...) {
				if _, ok := attrs[m]; !ok && !adBuiltins[m] {
					t.Errorf("class %s names attribute %s, which the LDIF does not add first", name, m)
				}
			}
			if r.one("objectClassCategory") != "1" || r.one("governsID") == "" || r.one("rDNAttID") != "cn" {
				t.Errorf("class %s: %v", name, r.attrs)
			}
			if r.one("defaultObjectCategory") != r.dn {
				t.Errorf("class %s: defaultObjectCategory %q, want its own DN", name, r.one("defaultObjectCategory"))
			}
		default:
			t.Errorf("record %d (%s) is neither schema object nor schemaUpdateNow", i, r.dn)
		}
		if r.dn != "" {
			if r.one("changetype") != "add" {
				t.Errorf("%s: changetype %q", r.dn, r.one("changetype"))
			}
			want := "CN=" + r.one("cn") + ",CN=Schema,CN=Configuration,DC=X"
			if r.dn != want {
				t.Errorf("DN %q, want %q", r.dn, want)
			}
			if len(r.one("schemaIDGUID")) != 16 {
				t.Errorf("%s: schemaIDGUID is %d bytes, want 16", r.dn, len(r.one("schemaIDGUID")))
			}
		}
	}
	if updates < len(classes)+1 {
		t.Errorf("%d schemaUpdateNow records; want one after the attributes and one after each class", updates)
	}
	for _, a := range Attributes() {
		r, ok := attrs[a.Name]
		if adBuiltins[a.Name] {
			if ok {
				t.Errorf("%s is in every AD schema and must not be added", a.Name)
			}
			continue
		}
		if !ok {
			t.Errorf("attribute %s missing from the LDIF", a.Name)
			continue
		}
		syntax, om := a.Syntax.ADSyntax()
		if r.one("attributeID") != a.OID || r.one("attributeSyntax") != syntax || r.one("oMSyntax") != strconv.Itoa(om) {
			t.Errorf("%s: %v", a.Name, r.attrs)
		}
		if r.one("isSingleValued") != upperBool(!a.Multi) {
			t.Errorf("%s: isSingleValued %s, Multi %v", a.Name, r.one("isSingleValued"), a.Multi)
		}
		if a.RangeUpper > 0 && r.one("rangeUpper") != strconv.Itoa(a.RangeUpper) {
			t.Errorf("%s: rangeUpper %q", a.Name, r.one("rangeUpper"))
		}
		if a.LinkID > 0 && r.one("linkID") != strconv.Itoa(a.LinkID) {
			t.Errorf("%s: linkID %q", a.Name, r.one("linkID"))
		}
		if a.Syntax == SyntaxDN && r.one("oMObjectClass") != "\x2b\x0c\x02\x87\x73\x1c\x00\x85\x4a" {
			t.Errorf("%s: DN attribute without the DS-DN oMObjectClass", a.Name)
		}
		if r.one("adminDescription") != a.Description {
			t.Errorf("%s: adminDescription %q, want %q", a.Name, r.one("adminDescription"), a.Description)
		}
		want, _ := GUIDBytes(SchemaIDGUID(a.Name, a.GUID))
		if r.one("schemaIDGUID") != string(want[:]) {
			t.Errorf("%s: schemaIDGUID bytes differ", a.Name)
		}
	}
	// DIRECTORIES.md §4's example of the form AD accepts over LDAP.
	if r := attrs["msExchSmtpMaxMessageSize"]; base64.StdEncoding.EncodeToString([]byte(r.one("schemaIDGUID"))) != "ysZHQZiw0hGqBgDAT47t2A==" {
		t.Errorf("msExchSmtpMaxMessageSize schemaIDGUID %x, want base64 ysZHQZiw0hGqBgDAT47t2A==", r.one("schemaIDGUID"))
	}
	if r := attrs["msExchSmtpMaxMessageSize"]; r.dn != "CN=ms-Exch-Smtp-Max-Message-Size,CN=Schema,CN=Configuration,DC=X" {
		t.Errorf("msExchSmtpMaxMessageSize DN %q", r.dn)
	}
	for _, c := range Classes() {
		if _, ok := classes[c.Name]; !ok && !adBuiltins[c.Name] {
			t.Errorf("class %s missing from the LDIF", c.Name)
		}
	}
}

func slicesContains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestADCommonName(t *testing.T) {
	cases := map[string]string{
		"msExchSmtpMaxMessageSize":              "ms-Exch-Smtp-Max-Message-Size",
		"msExchServerBindings":                  "ms-Exch-Server-Bindings",
		"msExchDS2MBOptions":                    "ms-Exch-DS2MB-Options",
		"msExchNTAuthenticationProviders":       "ms-Exch-NT-Authentication-Providers",
		"msExchIPSecurity":                      "ms-Exch-IP-Security",
		"msExchSmtpTRNSmartHost":                "ms-Exch-Smtp-TRN-Smart-Host",
		"msExchSmtpEnableVRFY":                  "ms-Exch-Smtp-Enable-VRFY",
		"msExchBridgeheadedLocalConnectorsDNBL": "ms-Exch-Bridgeheaded-Local-Connectors-DNBL",
		"protocolCfgSMTPServer":                 "Protocol-Cfg-SMTP-Server",
		"gatewayProxy":                          "Gateway-Proxy",
		"ds2mbEventType":                        "ds2mb-Event-Type",
	}
	for in, want := range cases {
		if got := ADCommonName(in); got != want {
			t.Errorf("ADCommonName(%q) = %q, want %q", in, got, want)
		}
	}
	seen := map[string]string{}
	for _, a := range Attributes() {
		cn := ADCommonName(a.Name)
		if len(cn) > 64 {
			t.Errorf("%s: cn %q longer than 64", a.Name, cn)
		}
		if other, dup := seen[strings.ToLower(cn)]; dup {
			t.Errorf("%s and %s share cn %s", a.Name, other, cn)
		}
		seen[strings.ToLower(cn)] = a.Name
	}
}

func TestGUIDs(t *testing.T) {
	// GUID string → Windows byte order (DIRECTORIES.md §4: objectGUID bytes
	// 19a177b2ce9b4d4c… are b277a119-9bce-4c4d-…).
	b, err := GUIDBytes("b277a119-9bce-4c4d-0011-223344556677")
	if err != nil || !bytes.HasPrefix(b[:], []byte{0x19, 0xa1, 0x77, 0xb2, 0xce, 0x9b, 0x4d, 0x4c, 0x00, 0x11}) {
		t.Errorf("GUIDBytes = % x, %v", b, err)
	}
	if _, err := GUIDBytes("{4147c6ca-b098-11d2-aa06-00c04f8eedd8}"); err != nil {
		t.Errorf("braced GUID: %v", err)
	}
	for _, bad := range []string{"", "4147c6ca", "4147c6ca-b098-11d2-aa06-00c04f8eedzz", "4147c6cab09811d2aa0600c04f8eedd8xxxx"} {
		if _, err := GUIDBytes(bad); err == nil {
			t.Errorf("GUIDBytes(%q) accepted", bad)
		}
	}
	// Version-5 UUIDs in ds2mb's namespace; the expected value was computed
	// independently (Python's uuid.uuid5 with namespace
	// c243c6a0-c996-4485-aefe-3667d20203f0).
	if got := NameUUID("ds2mbEventType"); got != "2f862bc0-09a4-59ac-bb66-453693db5f91" {
		t.Errorf("NameUUID(ds2mbEventType) = %s", got)
	}
	if NameUUID("a") == NameUUID("b") || NameUUID("a") != NameUUID("a") {
		t.Error("NameUUID is not a stable, distinct mapping")
	}
	// The namespace is the UUID OurArc is made of: after Microsoft's
	// 1.2.840.113556.1.8000.2554, its hex digits in parts of 4,4,4,4,4,6,6.
	var ns strings.Builder
	for _, x := range guidNamespace {
		ns.WriteString(strconv.FormatUint(uint64(x)+0x100, 16)[1:])
	}
	var fromArc strings.Builder
	rest, ok := strings.CutPrefix(OurArc, "1.2.840.113556.1.8000.2554.")
	parts := strings.Split(rest, ".")
	widths := []int{4, 4, 4, 4, 4, 6, 6}
	if !ok || len(parts) != len(widths) {
		t.Fatalf("OurArc %s is not 1.2.840.113556.1.8000.2554 and seven parts", OurArc)
	}
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil || n >= 1<<(4*widths[i]) {
			t.Fatalf("OurArc part %q: not a %d-digit hex number", p, widths[i])
		}
		fmt.Fprintf(&fromArc, "%0*x", widths[i], n)
	}
	if fromArc.String() != ns.String() {
		t.Errorf("guidNamespace %s is not OurArc %s (%s)", ns.String(), OurArc, fromArc.String())
	}
	guids := map[string]string{}
	for _, a := range Attributes() {
		g := SchemaIDGUID(a.Name, a.GUID)
		if _, err := GUIDBytes(g); err != nil {
			t.Errorf("%s: %v", a.Name, err)
		}
		if other, dup := guids[g]; dup {
			t.Errorf("%s and %s share schemaIDGUID %s", a.Name, other, g)
		}
		guids[g] = a.Name
	}
	for _, c := range Classes() {
		g := SchemaIDGUID(c.Name, c.GUID)
		if other, dup := guids[g]; dup {
			t.Errorf("class %s and %s share schemaIDGUID %s", c.Name, other, g)
		}
		guids[g] = c.Name
	}
}
