package schema

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// MDType is the IIS metabase data type of a property.
type MDType int

// The metabase data types, as IIS names them in MetaBase.xml's Type attribute.
const (
	DWORD MDType = iota + 1
	STRING
	MULTISZ
	BINARY
	EXPANDSZ
)

var mdTypeNames = map[MDType]string{DWORD: "DWORD", STRING: "STRING", MULTISZ: "MULTISZ", BINARY: "BINARY", EXPANDSZ: "EXPANDSZ"}

// String returns the IIS spelling of the type ("DWORD", "STRING", …).
func (t MDType) String() string {
	if s, ok := mdTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("MDType(%d)", int(t))
}

// ParseMDType reads an IIS type name, case-insensitively.
func ParseMDType(s string) (MDType, error) {
	for t, n := range mdTypeNames {
		if strings.EqualFold(n, strings.TrimSpace(s)) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown metabase type %q (want DWORD, STRING, MULTISZ, BINARY or EXPANDSZ)", s)
}

// Syntax is the LDAP syntax of a directory attribute.
type Syntax int

// Directory attribute syntaxes, with their Active Directory attributeSyntax in comments.
const (
	SyntaxInteger  Syntax = iota + 1 // 2.5.5.9
	SyntaxString                     // 2.5.5.12 Unicode string
	SyntaxBoolean                    // 2.5.5.8
	SyntaxOctet                      // 2.5.5.10
	SyntaxDN                         // 2.5.5.1
	SyntaxCIString                   // 2.5.5.4 case-insensitive (Teletex) string; Directory String in OpenLDAP
)

// LDAPOID returns the RFC 4517 syntax OID used in the OpenLDAP schema.
func (s Syntax) LDAPOID() string {
	switch s {
	case SyntaxInteger:
		return "1.3.6.1.4.1.1466.115.121.1.27"
	case SyntaxBoolean:
		return "1.3.6.1.4.1.1466.115.121.1.7"
	case SyntaxOctet:
		return "1.3.6.1.4.1.1466.115.121.1.40"
	case SyntaxDN:
		return "1.3.6.1.4.1.1466.115.121.1.12"
	default:
		return "1.3.6.1.4.1.1466.115.121.1.15"
	}
}

// ADSyntax returns the Active Directory attributeSyntax and oMSyntax.
func (s Syntax) ADSyntax() (attributeSyntax string, oMSyntax int) {
	switch s {
	case SyntaxInteger:
		return "2.5.5.9", 2
	case SyntaxBoolean:
		return "2.5.5.8", 1
	case SyntaxOctet:
		return "2.5.5.10", 4
	case SyntaxDN:
		return "2.5.5.1", 127
	case SyntaxCIString:
		return "2.5.5.4", 20
	default:
		return "2.5.5.12", 64
	}
}

// Equality returns the OpenLDAP EQUALITY matching rule of the syntax.
func (s Syntax) Equality() string {
	switch s {
	case SyntaxInteger:
		return "integerMatch"
	case SyntaxBoolean:
		return "booleanMatch"
	case SyntaxOctet:
		return "octetStringMatch"
	case SyntaxDN:
		return "distinguishedNameMatch"
	default:
		return "caseIgnoreMatch"
	}
}

// NodeKind says which kind of metabase node a Location names.
type NodeKind int

// The node kinds of the SMTP part of the metabase.
const (
	NodeUnknown        NodeKind = iota
	NodeService                 // /LM/SmtpSvc
	NodeServer                  // /LM/SmtpSvc/N
	NodeDomain                  // /LM/SmtpSvc/N/Domain/<name>
	NodeBinding                 // /LM/SmtpSvc/N/EventManager/EventTypes/{CATID}/Bindings/{ID}
	NodeBindingSource           // …/Bindings/{ID}/SourceProperties
	NodeBindingSink             // …/Bindings/{ID}/SinkProperties
	NodeContainer               // structural nodes: /LM, …/Domain, …/EventManager, …/EventTypes/{CATID}, …/Bindings
	NodeRoutingSources          // /LM/SmtpSvc/N/RoutingSources
)

var nodeKindNames = map[NodeKind]string{
	NodeUnknown: "unknown", NodeService: "service", NodeServer: "server", NodeDomain: "domain",
	NodeBinding: "binding", NodeBindingSource: "binding-source", NodeBindingSink: "binding-sink",
	NodeContainer: "container", NodeRoutingSources: "routing-sources",
}

// String names the node kind.
func (k NodeKind) String() string { return nodeKindNames[k] }

// NodeSet is a set of node kinds a property may live on.
type NodeSet uint32

// Of builds a NodeSet.
func Of(kinds ...NodeKind) NodeSet {
	var s NodeSet
	for _, k := range kinds {
		s |= 1 << uint(k)
	}
	return s
}

// Has reports whether k is in the set.
func (s NodeSet) Has(k NodeKind) bool { return s&(1<<uint(k)) != 0 }

// Kinds lists the set's members in order.
func (s NodeSet) Kinds() []NodeKind {
	var out []NodeKind
	for k := NodeService; k <= NodeRoutingSources; k++ {
		if s.Has(k) {
			out = append(out, k)
		}
	}
	return out
}

// Grade is REFERENCE.md's confidence grade for a fact: D stated by a source,
// N very likely, G guessed from names, U unsourced.
type Grade string

// The grades of REFERENCE.md.
const (
	GradeD Grade = "D"
	GradeN Grade = "N"
	GradeG Grade = "G"
	GradeU Grade = "U"
)

// Value is one typed metabase value.
type Value struct {
	Type  MDType
	DWord uint32   // DWORD
	Str   string   // STRING, EXPANDSZ
	Multi []string // MULTISZ
	Bin   []byte   // BINARY
}

// DWordValue makes a DWORD value.
func DWordValue(n uint32) Value { return Value{Type: DWORD, DWord: n} }

// StringValue makes a STRING value.
func StringValue(s string) Value { return Value{Type: STRING, Str: s} }

// MultiValue makes a MULTISZ value.
func MultiValue(ss ...string) Value { return Value{Type: MULTISZ, Multi: ss} }

// BinaryValue makes a BINARY value.
func BinaryValue(b []byte) Value { return Value{Type: BINARY, Bin: b} }

// Equal reports whether two values are the same.
func (v Value) Equal(o Value) bool {
	if v.Type != o.Type {
		return false
	}
	switch v.Type {
	case DWORD:
		return v.DWord == o.DWord
	case MULTISZ:
		return slices.Equal(v.Multi, o.Multi)
	case BINARY:
		return bytes.Equal(v.Bin, o.Bin)
	default:
		return v.Str == o.Str
	}
}

// Text is the value's plain text form in MetaBase.xml: DWORDs in decimal,
// MULTISZ one string per line, BINARY in lower-case hex.
func (v Value) Text() string {
	switch v.Type {
	case DWORD:
		return strconv.FormatUint(uint64(v.DWord), 10)
	case MULTISZ:
		return strings.Join(v.Multi, "\n")
	case BINARY:
		return hex.EncodeToString(v.Bin)
	default:
		return v.Str
	}
}

// String is Text, for printing.
func (v Value) String() string { return v.Text() }

// ParseValue reads the text form of a value of type t. Symbols are the flag or
// enum names a DWORD may be written with ("AuthBasic | AuthNTLM", "TRUE").
func ParseValue(t MDType, text string, symbols []Symbol) (Value, error) {
	switch t {
	case DWORD:
		n, err := parseDWord(text, symbols)
		return Value{Type: DWORD, DWord: n}, err
	case MULTISZ:
		return Value{Type: MULTISZ, Multi: splitMulti(text)}, nil
	case BINARY:
		s := strings.Join(strings.Fields(text), "")
		b, err := hex.DecodeString(s)
		if err != nil {
			return Value{}, fmt.Errorf("binary value %q is not hexadecimal", abbrev(text))
		}
		return Value{Type: BINARY, Bin: b}, nil
	case STRING, EXPANDSZ:
		return Value{Type: t, Str: text}, nil
	}
	return Value{}, fmt.Errorf("unknown type %v", t)
}

// splitMulti splits a MULTISZ text on line breaks (and NULs), trimming the
// indentation IIS puts before each string, and drops empty lines.
func splitMulti(text string) []string {
	f := func(r rune) bool { return r == '\n' || r == '\r' || r == 0 }
	var out []string
	for _, s := range strings.FieldsFunc(text, f) {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Symbol is a named DWORD value: a flag bit or an enum member.
type Symbol struct {
	Name  string
	Value uint32
}

func parseDWord(text string, symbols []Symbol) (uint32, error) {
	s := strings.TrimSpace(text)
	if s == "" {
		return 0, fmt.Errorf("empty DWORD")
	}
	switch strings.ToUpper(s) {
	case "TRUE":
		return 1, nil
	case "FALSE":
		return 0, nil
	}
	var total uint32
	for _, part := range strings.Split(s, "|") {
		part = strings.TrimSpace(part)
		n, err := parseNumber(part)
		if err != nil {
			found := false
			for _, sym := range symbols {
				if strings.EqualFold(sym.Name, part) {
					n, found = sym.Value, true
					break
				}
			}
			if !found {
				return 0, fmt.Errorf("DWORD %q is not a number or a known flag name", abbrev(text))
			}
		}
		total |= n
	}
	return total, nil
}

func parseNumber(s string) (uint32, error) {
	if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		n, err := strconv.ParseUint(h, 16, 32)
		return uint32(n), err
	}
	if strings.HasPrefix(s, "-") {
		// Older IIS writes "unlimited" as -1; store its 32-bit pattern.
		n, err := strconv.ParseInt(s, 10, 32)
		return uint32(int32(n)), err
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err
}

func abbrev(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}
