package schema

import (
	"encoding/base64"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDefaultsParseAndCheck: every default parses as its property's type,
// passes its own check, and survives Render → Parse unchanged.
func TestDefaultsParseAndCheck(t *testing.T) {
	n := 0
	for i := range Properties() {
		p := &Properties()[i]
		if p.Default == "" {
			continue
		}
		n++
		v, err := p.Parse(p.Default)
		if err != nil {
			t.Errorf("%s: default %q does not parse: %v", p.Name, p.Default, err)
			continue
		}
		if err := p.Check(v); err != nil {
			t.Errorf("%s: default %q fails its check: %v", p.Name, p.Default, err)
		}
		dv, ok := p.DefaultValue()
		if !ok || !dv.Equal(v) {
			t.Errorf("%s: DefaultValue() = %v, %v; want %v", p.Name, dv, ok, v)
		}
		back, err := p.Parse(p.Render(v))
		if err != nil || !back.Equal(v) {
			t.Errorf("%s: Render %q does not parse back to %v: %v, %v", p.Name, p.Render(v), v, back, err)
		}
	}
	if n < 50 {
		t.Errorf("only %d properties have a default; the catalogue lost its defaults", n)
	}
}

func TestIDsAndNamesUnique(t *testing.T) {
	ids := map[uint32]string{}
	names := map[string]bool{}
	for _, p := range Properties() {
		if other, dup := ids[p.ID]; dup {
			t.Errorf("ID %d used by %s and %s", p.ID, other, p.Name)
		}
		ids[p.ID] = p.Name
		k := strings.ToLower(p.Name)
		if names[k] {
			t.Errorf("property name %s used twice (case-insensitively)", p.Name)
		}
		names[k] = true
		if p.ID == 0 {
			t.Errorf("%s has no ID", p.Name)
		}
	}
	attrs := map[string]bool{}
	oids := map[string]string{}
	for _, a := range Attributes() {
		k := strings.ToLower(a.Name)
		if attrs[k] {
			t.Errorf("attribute %s listed twice", a.Name)
		}
		attrs[k] = true
		if other, dup := oids[a.OID]; dup {
			t.Errorf("OID %s used by %s and %s", a.OID, other, a.Name)
		}
		oids[a.OID] = a.Name
		if !regexp.MustCompile(`^[0-9]+(\.[0-9]+)+$`).MatchString(a.OID) {
			t.Errorf("%s: OID %q is not dotted decimal", a.Name, a.OID)
		}
	}
	for _, c := range Classes() {
		if other, dup := oids[c.OID]; dup {
			t.Errorf("OID %s used by class %s and %s", c.OID, c.Name, other)
		}
		oids[c.OID] = c.Name
	}
}

// TestPropertyRanges: node kinds, types and the private ID block.
func TestPropertyShape(t *testing.T) {
	for _, p := range Properties() {
		if len(p.Nodes.Kinds()) == 0 {
			t.Errorf("%s lives on no node", p.Name)
		}
		if p.Type < DWORD || p.Type > EXPANDSZ {
			t.Errorf("%s: bad type %v", p.Name, p.Type)
		}
		if (p.Bool || p.HasRange || len(p.Symbols) > 0) && p.Type != DWORD {
			t.Errorf("%s: BOOL, range or symbols on a %v", p.Name, p.Type)
		}
		if p.Bool && (!p.HasRange || p.Max != 1) {
			t.Errorf("%s: a BOOL must be range-checked 0–1", p.Name)
		}
		if p.UserType == "" || !strings.HasPrefix(p.UserType, "IIS_MD_UT_") {
			t.Errorf("%s: user type %q", p.Name, p.UserType)
		}
		if p.Grade != GradeD && p.Grade != GradeN && p.Grade != GradeG && p.Grade != GradeU {
			t.Errorf("%s: grade %q", p.Name, p.Grade)
		}
		if p.ID >= privateIDBase && p.Grade != GradeU {
			t.Errorf("%s: private ID %d but grade %s; an unsourced ID is U", p.Name, p.ID, p.Grade)
		}
	}
}

// TestReferenceIDsAndTypes pins the IDs and types of REFERENCE.md table 1.3
// (IIS 6 metabase property reference).
func TestReferenceIDsAndTypes(t *testing.T) {
	type row struct {
		name string
		id   uint32
		typ  MDType
		bool bool
	}
	rows := []row{
		{"ConnectionTimeout", 1013, DWORD, false}, {"MaxConnections", 1014, DWORD, false},
		{"ServerAutoStart", 1017, DWORD, true}, {"ServerBindings", 1023, MULTISZ, false},
		{"SecureBindings", 2021, MULTISZ, false}, {"LogType", 4000, DWORD, false},
		{"LogFileDirectory", 4001, EXPANDSZ, false}, {"LogFilePeriod", 4003, DWORD, false},
		{"AuthFlags", 6000, DWORD, false}, {"IPSecurity", 6019, BINARY, false}, {"AccessSSLFlags", 6030, DWORD, false},
		{"SmtpCommandLogMask", 36864, DWORD, false}, {"MaxBatchedMessages", 36871, DWORD, false},
		{"MaxMailObjects", 36873, DWORD, false}, {"QueueDirectory", 36875, STRING, false},
		{"PickupDirectory", 36880, STRING, false}, {"DropDirectory", 36882, STRING, false},
		{"NameResolutionType", 36885, DWORD, false}, {"HopCount", 36886, DWORD, false},
		{"MaxSmtpErrors", 36887, DWORD, false}, {"MaxMessageSize", 36891, DWORD, false},
		{"MaxSessionSize", 36892, DWORD, false}, {"MaxOutConnections", 36894, DWORD, false},
		{"MaxRecipients", 36895, DWORD, false}, {"LocalRetryAttempts", 36896, DWORD, false},
		{"LocalRetryInterval", 36897, DWORD, false}, {"RemoteRetryAttempts", 36898, DWORD, false},
		{"RemoteRetryInterval", 36899, DWORD, false}, {"SmartHostType", 36905, DWORD, false},
		{"SmartHost", 36906, STRING, false}, {"DefaultDomain", 36908, STRING, false},
		{"BadMailDirectory", 36909, STRING, false}, {"RoutingSources", 36910, MULTISZ, false},
		{"MasqueradeDomain", 36912, STRING, false}, {"DoMasquerade", 36913, DWORD, true},
		{"RemoteSmtpPort", 36914, DWORD, false}, {"PostmasterEmail", 36917, STRING, false},
		{"EtrnDays", 36918, DWORD, false}, {"LocalDomains", 36919, MULTISZ, false},
		{"DomainRouting", 36920, MULTISZ, false}, {"RemoteTimeout", 36921, DWORD, false},
		{"SendBadTo", 36923, STRING, false}, {"MaxOutConnectionsPerDomain", 36925, DWORD, false},
		{"LimitRemoteConnections", 36926, DWORD, true}, {"RemoteSmtpSecurePort", 36929, DWORD, false},
		{"SaslLogonDomain", 36940, STRING, false}, {"RouteAction", 36946, DWORD, false},
		{"RouteActionString", 36947, STRING, false}, {"RouteUserName", 36948, STRING, false},
		{"RoutePassword", 36949, STRING, false}, {"SmtpRoutingTableType", 36950, STRING, false},
		{"SmtpDsDataDirectory", 36951, STRING, false}, {"SmtpDsDefaultMailRoot", 36952, STRING, false},
		{"SmtpDsAccount", 36957, STRING, false}, {"SmtpMaxRemoteQThreads", 36964, DWORD, false},
		{"AuthTurnList", 36966, MULTISZ, false}, {"CSideEtrnDomains", 36968, STRING, false},
		{"RelayIpList", 36970, BINARY, false}, {"RelayForAuth", 36973, DWORD, false},
		{"SmtpDisableRelay", 36974, DWORD, true}, {"SmtpHeloNoDomain", 36981, DWORD, true},
		{"SmtpDomainValidationFlags", 36992, DWORD, false}, {"SmtpDsDomain", 36993, STRING, false},
		{"SmtpDsUseCat", 36994, DWORD, false}, {"SmtpRemoteRetryThreshold", 36995, DWORD, false},
		{"SmtpRemoteProgressiveRetry", 36996, STRING, false}, {"SmtpUseTcpDns", 36997, DWORD, false},
		{"SmtpInboundCommandSupportOptions", 36998, DWORD, false}, {"SmtpOutboundCommandSupportOptions", 36999, DWORD, false},
		{"SmtpConnectTimeout", 37001, DWORD, false}, {"SmtpMailFromTimeout", 37002, DWORD, false},
		{"SmtpRcptToTimeout", 37003, DWORD, false}, {"SmtpDataTimeout", 37004, DWORD, false},
		{"SmtpBdatTimeout", 37005, DWORD, false}, {"SmtpAuthTimeout", 37006, DWORD, false},
		{"SmtpSaslTimeout", 37007, DWORD, false}, {"SmtpTurnTimeout", 37009, DWORD, false},
		{"SmtpRsetTimeout", 37010, DWORD, false}, {"SmtpHeloTimeout", 37012, DWORD, false},
		{"SmtpLocalDelayExpireMinutes", 37017, DWORD, false}, {"SmtpLocalNDRExpireMinutes", 37018, DWORD, false},
		{"SmtpRemoteDelayExpireMinutes", 37019, DWORD, false}, {"SmtpRemoteNDRExpireMinutes", 37020, DWORD, false},
		{"SmtpDSNLanguageID", 37022, DWORD, false}, {"SmtpDsPort", 37023, DWORD, false},
		{"SmtpDsFlags", 37024, DWORD, false}, {"SmtpDotStuffPickupDirFiles", 37030, DWORD, true},
		{"SmtpIpRestrictionFlag", 37031, DWORD, false}, {"SmtpServer", 45059, STRING, false},
	}
	for _, r := range rows {
		p, ok := Lookup(r.name)
		if !ok {
			t.Errorf("%s (ID %d) is missing from the catalogue", r.name, r.id)
			continue
		}
		if p.ID != r.id || p.Type != r.typ || p.Bool != r.bool {
			t.Errorf("%s: ID %d type %v bool %v; REFERENCE.md 1.3 says %d %v bool %v", r.name, p.ID, p.Type, p.Bool, r.id, r.typ, r.bool)
		}
		if q, ok := LookupID(r.id); !ok || q.Name != p.Name {
			t.Errorf("LookupID(%d) = %v, %v; want %s", r.id, q, ok, p.Name)
		}
	}
	// NO_ATTRIBUTES properties of table 1.3; everything else there is INHERIT.
	for _, name := range []string{"ServerAutoStart", "ServerBindings", "SecureBindings"} {
		if p, _ := Lookup(name); p.Inherit {
			t.Errorf("%s is NO_ATTRIBUTES in IIS, not INHERIT", name)
		}
	}
	for _, name := range []string{"IPSecurity", "AccessSSLFlags", "AuthFlags", "MaxBatchedMessages", "RelayIpList"} {
		if p, _ := Lookup(name); p.UserType != UTFile {
			t.Errorf("%s: user type %s, REFERENCE.md 1.3 says IIS_MD_UT_FILE", name, p.UserType)
		}
	}
	if p, _ := Lookup("RoutePassword"); !p.Secure {
		t.Error("RoutePassword must be SECURE")
	}
	if p, _ := Lookup("RoutingSources"); p.UserType != "IIS_MD_UT_WAM" {
		t.Errorf("RoutingSources user type %s, want IIS_MD_UT_WAM", p.UserType)
	}
}

// TestNodePlacement checks where REFERENCE.md 1.3 and 1.5 put properties.
func TestNodePlacement(t *testing.T) {
	cases := []struct {
		name    string
		on, off []NodeKind
	}{
		{"ServerBindings", []NodeKind{NodeServer}, []NodeKind{NodeService, NodeDomain}},
		{"SecureBindings", []NodeKind{NodeServer}, []NodeKind{NodeService, NodeDomain}},
		{"MaxMessageSize", []NodeKind{NodeService, NodeServer}, []NodeKind{NodeDomain, NodeBinding}},
		{"RouteAction", []NodeKind{NodeService, NodeServer, NodeDomain}, nil},
		{"RouteActionString", []NodeKind{NodeDomain}, []NodeKind{NodeService, NodeServer}},
		{"RelayIpList", []NodeKind{NodeService, NodeServer, NodeDomain}, nil},
		{"RelayForAuth", []NodeKind{NodeService, NodeServer, NodeDomain}, nil},
		{"AuthTurnList", []NodeKind{NodeDomain}, []NodeKind{NodeServer}},
		{"CSideEtrnDomains", []NodeKind{NodeDomain}, []NodeKind{NodeServer}},
		{"FullyQualifiedDomainName", []NodeKind{NodeService, NodeServer}, nil}, // on the service in seeds/004's sample
		{"DisplayName", []NodeKind{NodeBinding}, []NodeKind{NodeServer}},
		{"SinkClass", []NodeKind{NodeBinding}, nil},
		{"Enabled", []NodeKind{NodeBinding}, nil},
		{"MaxFirings", []NodeKind{NodeBinding}, nil},
		{"Priority", []NodeKind{NodeBindingSource}, []NodeKind{NodeBinding}},
		{"Rule", []NodeKind{NodeBindingSource}, []NodeKind{NodeBinding}},
		{"SmtpDsPort", []NodeKind{NodeRoutingSources}, []NodeKind{NodeServer}},
	}
	for _, c := range cases {
		p, ok := Lookup(c.name)
		if !ok {
			t.Errorf("%s missing", c.name)
			continue
		}
		for _, k := range c.on {
			if !p.Nodes.Has(k) {
				t.Errorf("%s must be allowed on %v nodes", c.name, k)
			}
		}
		for _, k := range c.off {
			if p.Nodes.Has(k) {
				t.Errorf("%s must not be allowed on %v nodes", c.name, k)
			}
		}
	}
	// The eight IIsSmtpDomainSetting properties of REFERENCE.md 1.5 all live on domain nodes.
	for _, name := range []string{"RouteAction", "RouteActionString", "RouteUserName", "RoutePassword", "RelayIpList", "RelayForAuth", "AuthTurnList", "CSideEtrnDomains"} {
		if p, ok := Lookup(name); !ok || !p.Nodes.Has(NodeDomain) {
			t.Errorf("%s must live on domain nodes", name)
		}
	}
}

// seedAttributes is the table "SMTP 虚拟服务器的重要 Active Directory 属性"
// (important AD attributes of an SMTP virtual server) of seeds/004, in its order.
var seedAttributes = []string{
	"msExchServerBindings", "msExchAuthenticationFlags", "msExchMaxIncomingConnections", "msExchLogType",
	"msExchAccessSSLFlags", "msExchServerAutoStart", "msExchNTAuthenticationProviders", "msExchIncomingConnectionTimeout",
	"msExchSmtpMaxOutgoingConnections", "msExchSmtpOutgoingConnectionTimeout", "msExchSmtpMaxOutgoingConnectionsPerDomain",
	"msExchSmtpOutgoingPort", "msExchSmtpOutgoingSecurePort", "msExchSmtpMaxHopCount", "msExchSmtpMaxMessageSize",
	"msExchSmtpMaxSessionSize", "msExchSmtpMaxRecipients", "msExchSmtpLocalQueueExpirationTimeout",
	"msExchSmtpLocalQueueDelayNotification", "msExchSmtpRemoteQueueExpirationTimeout", "msExchSmtpRemoteQueueDelayNotification",
	"msExchSmtpSmartHost", "msExchSmtpSmartHostType", "msExchSmtpMaxOutboundMsgPerDomain", "msExchSmtpOutboundSecurityFlag",
	"msExchSmtpInboundCommandSupportOptions", "msExchSmtpRelayForAuth", "msExchSmtpPerformReverseDnsLookup",
	"msExchSmtpDoMasquerade", "msExchSmtpBadMailDirectory", "msExchSmtpSendBadmailTo", "msExchSmtpFullyQualifiedDomainName",
	"msExchSmtpPickupDirectory", "msExchSmtpQueueDirectory", "msExchSmtpRemoteQueueRetries", "msExchSmtpRelayIpList",
	"msExchBridgeheadedLocalConnectorsDNBL", "msExchBridgeheadedRemoteConnectorsDNBL",
}

// TestSeedAttributesCovered: each of the 38 attributes of the seed table is
// in the catalogue, may be held by a virtual server object, and either maps
// to a service/server property or says in its Description why it has none.
func TestSeedAttributesCovered(t *testing.T) {
	if len(seedAttributes) != 38 {
		t.Fatalf("seed table has 38 attributes, list holds %d", len(seedAttributes))
	}
	var vs Class
	for _, c := range Classes() {
		if c.Name == ClassSMTPServer {
			vs = c
		}
	}
	may := map[string]bool{}
	for _, m := range vs.May {
		may[m] = true
	}
	mapped := 0
	for _, name := range seedAttributes {
		a, ok := LookupAttribute(name)
		if !ok {
			t.Errorf("%s (seed table) is not in schema.Attributes()", name)
			continue
		}
		if a.Name != name {
			t.Errorf("%s is spelt %s in the catalogue", name, a.Name)
		}
		if !may[name] {
			t.Errorf("%s is not in protocolCfgSMTPServer's MAY list", name)
		}
		if p, ok := ForAttribute(name); ok {
			mapped++
			if !p.Nodes.Has(NodeServer) {
				t.Errorf("%s maps to %s, which cannot live on a virtual server", name, p.Name)
			}
			continue
		}
		if !strings.Contains(strings.ToLower(a.Description), "no metabase property") &&
			!strings.Contains(a.Description, "ASSUMPTION(") {
			t.Errorf("%s has no property and its Description does not say why: %q", name, a.Description)
		}
	}
	if mapped != 35 {
		t.Errorf("%d of the 38 seed attributes map to a property; expected 35 (all but msExchSmtpOutboundSecurityFlag and the two bridgehead back-links)", mapped)
	}
}

// TestAttributesOfProperties: every Property.Attribute exists, at most one
// property per attribute, and every attribute has a description.
func TestAttributesOfProperties(t *testing.T) {
	seen := map[string]string{}
	for _, p := range Properties() {
		if p.Attribute == "" {
			continue
		}
		if _, ok := LookupAttribute(p.Attribute); !ok {
			t.Errorf("%s: attribute %s is not in Attributes()", p.Name, p.Attribute)
		}
		if other, dup := seen[strings.ToLower(p.Attribute)]; dup {
			t.Errorf("attribute %s feeds both %s and %s", p.Attribute, other, p.Name)
		}
		seen[strings.ToLower(p.Attribute)] = p.Name
		if q, ok := ForAttribute(strings.ToUpper(p.Attribute)); !ok || q.Name != p.Name {
			t.Errorf("ForAttribute(%s) = %v, want %s", p.Attribute, q, p.Name)
		}
	}
	for _, a := range Attributes() {
		if a.Description == "" {
			t.Errorf("attribute %s has no Description", a.Name)
		}
		if a.LinkID%2 == 1 && !a.Multi {
			t.Errorf("back-link %s must be multi-valued", a.Name)
		}
	}
}

var assumptionRE = regexp.MustCompile(`ASSUMPTION\((G|U), REFERENCE\.md [0-9]+(\.[0-9]+)?\): \S`)

// TestAssumptionsMarked: a G or U property says what it assumed, in the
// ASSUMPTION(G|U, REFERENCE.md x.y): form; every ASSUMPTION is well formed.
func TestAssumptionsMarked(t *testing.T) {
	for _, p := range Properties() {
		if (p.Grade == GradeG || p.Grade == GradeU) && !assumptionRE.MatchString(p.Note) {
			t.Errorf("%s is graded %s but its Note has no ASSUMPTION(%s, REFERENCE.md x.y): … : %q", p.Name, p.Grade, p.Grade, p.Note)
		}
		if strings.Contains(p.Note, "ASSUMPTION") && len(assumptionRE.FindAllString(p.Note, -1)) != strings.Count(p.Note, "ASSUMPTION") {
			t.Errorf("%s: malformed ASSUMPTION in %q", p.Name, p.Note)
		}
	}
	for _, a := range Attributes() {
		if strings.Contains(a.Description, "ASSUMPTION") && !assumptionRE.MatchString(a.Description) {
			t.Errorf("%s: malformed ASSUMPTION in %q", a.Name, a.Description)
		}
	}
}

// goodDirectoryValue gives a representative directory value for the
// attribute of p, in the attribute's syntax and p's format.
func goodDirectoryValue(t *testing.T, p *Property, a *Attribute) []string {
	t.Helper()
	switch a.Syntax {
	case SyntaxInteger:
		switch {
		case p.Default != "":
			v, err := p.Parse(p.Default)
			if err != nil {
				t.Fatalf("%s: %v", p.Name, err)
			}
			return []string{v.Text()}
		case p.HasRange:
			return []string{Value{Type: DWORD, DWord: p.Min}.Text()}
		}
		return []string{"7"}
	case SyntaxBoolean:
		return []string{"TRUE"}
	case SyntaxOctet:
		b, err := EncodeIPSecList(IPSecList{Grant: []netip.Addr{netip.MustParseAddr("127.0.0.1")}})
		if err != nil {
			t.Fatal(err)
		}
		return []string{string(b)}
	}
	switch p.Format {
	case FormatBindings:
		return []string{":25:", "127.0.0.1:2525:mail.example.com"}
	case FormatSecureBindings:
		return []string{"127.0.0.1:465:"}
	case FormatRetryList:
		return []string{"10,10,10,15"}
	case FormatSmartHost:
		return []string{"[127.0.0.1]"}
	case FormatDomain:
		return []string{"mail.example.com"}
	case FormatAddress:
		return []string{"postmaster@example.com"}
	case FormatRule:
		return []string{"MAIL FROM=*@example.com;RCPT TO=*"}
	}
	return []string{`C:\Program Files\Exchsrvr\Mailroot\vsi 1\Queue`}
}

// TestFromDirectoryRoundTrip: for every mapped attribute a representative
// value converts to the property's type, passes its check, and survives the
// trip through MetaBase.xml text (Render → Parse).
func TestFromDirectoryRoundTrip(t *testing.T) {
	n := 0
	for i := range Properties() {
		p := &Properties()[i]
		if p.Attribute == "" {
			continue
		}
		a, ok := LookupAttribute(p.Attribute)
		if !ok {
			continue // reported by TestAttributesOfProperties
		}
		n++
		vals := goodDirectoryValue(t, p, a)
		v, err := p.FromDirectory(vals)
		if err != nil {
			t.Errorf("%s ← %s %q: %v", p.Name, a.Name, vals, err)
			continue
		}
		if v.Type != p.Type {
			t.Errorf("%s ← %s: type %v, want %v", p.Name, a.Name, v.Type, p.Type)
		}
		switch a.Syntax {
		case SyntaxBoolean:
			if v.DWord != 1 {
				t.Errorf("%s ← TRUE gave %d, want 1", p.Name, v.DWord)
			}
		case SyntaxInteger:
			if v.Text() != vals[0] {
				t.Errorf("%s ← %q gave %q", p.Name, vals[0], v.Text())
			}
		case SyntaxOctet:
			if string(v.Bin) != vals[0] {
				t.Errorf("%s: blob changed on the way", p.Name)
			}
		default:
			if p.Type == MULTISZ && strings.Join(v.Multi, "\n") != strings.Join(vals, "\n") ||
				p.Type != MULTISZ && v.Str != vals[0] {
				t.Errorf("%s ← %q gave %v", p.Name, vals, v)
			}
		}
		back, err := p.Parse(p.Render(v))
		if err != nil || !back.Equal(v) {
			t.Errorf("%s: %v → %q → %v, %v", p.Name, v, p.Render(v), back, err)
		}
	}
	if n < 40 {
		t.Errorf("only %d mapped properties", n)
	}
}

// TestFromDirectoryRefusesBadValues: bad directory values are refused with a
// message naming the value and what was wanted.
func TestFromDirectoryRefusesBadValues(t *testing.T) {
	cases := []struct {
		attr string
		vals []string
		want []string // substrings of the error
	}{
		{"msExchSmtpMaxRecipients", []string{"-5"}, []string{"-5", "out of range"}},
		{"msExchSmtpMaxRecipients", []string{"0"}, []string{"0", "out of range 1"}},
		{"msExchSmtpMaxHopCount", []string{"abc"}, []string{`"abc"`, "not an integer"}},
		{"msExchSmtpMaxMessageSize", []string{"10MB"}, []string{`"10MB"`, "not an integer"}},
		{"msExchSmtpMaxMessageSize", []string{"4294967296"}, []string{"4294967296", "out of range"}},
		{"msExchServerAutoStart", []string{"yes"}, []string{`"yes"`, "TRUE or FALSE"}},
		{"msExchSmtpDoMasquerade", []string{"1"}, []string{`"1"`, "TRUE or FALSE"}},
		{"msExchServerBindings", []string{"10.0.0.1:99999:"}, []string{"10.0.0.1:99999:", "port", "1–65535"}},
		{"msExchServerBindings", []string{":25:", "abc"}, []string{`"abc"`, "IP:port:host"}},
		{"msExchSecureBindings", []string{"300.1.1.1:465"}, []string{"300.1.1.1", "not an IP address"}},
		{"msExchSmtpRemoteQueueRetries", []string{"15,,60"}, []string{"15,,60", "minutes"}},
		{"msExchSmtpSmartHost", []string{"10.0.0.1"}, []string{"10.0.0.1", "brackets", "[10.0.0.1]"}},
		{"msExchSmtpSmartHostType", []string{"3"}, []string{"3", "out of range 0–2"}},
		{"msExchAuthenticationFlags", []string{"8"}, []string{"unknown flag bits 0x8"}},
		{"msExchSmtpMaxRecipients", []string{"5", "6"}, []string{"2 values", "single-valued"}},
		{"msExchSmtpMaxRecipients", nil, []string{"no value"}},
		{"msExchSmtpRelayIpList", []string{"short"}, []string{"5 bytes", "header"}},
		{"msExchSmtpFullyQualifiedDomainName", []string{"bad host!"}, []string{"bad host!", "not a domain name"}},
		{"msExchSmtpSendBadmailTo", []string{"a b@example.com"}, []string{"not an e-mail address"}},
		{"ds2mbPriority", []string{"40000"}, []string{"40000", "out of range 0–32767"}},
		{"ds2mbRule", []string{"FOO=bar"}, []string{`"FOO"`, "unknown command"}},
	}
	for _, c := range cases {
		p, ok := ForAttribute(c.attr)
		if !ok {
			t.Errorf("%s maps to no property", c.attr)
			continue
		}
		v, err := p.FromDirectory(c.vals)
		if err == nil {
			t.Errorf("%s %q: accepted as %v, want an error", c.attr, c.vals, v)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s %q: error %q does not say %q", c.attr, c.vals, err, w)
			}
		}
	}
}

// TestParseDWordSymbols: the text forms of a DWORD in MetaBase.xml.
func TestParseDWordSymbols(t *testing.T) {
	auth, _ := Lookup("AuthFlags")
	route, _ := Lookup("RouteAction")
	cases := []struct {
		text    string
		symbols []Symbol
		want    uint32
	}{
		{"AuthBasic | AuthAnonymous | AuthNTLM", auth.Symbols, 7},
		{"authbasic|authntlm", auth.Symbols, 6},
		{"AuthAnonymous", auth.Symbols, 1},
		{"SMTP_SMARTHOST | SMTP_SSL", route.Symbols, 6},
		{"SMTP_ALIAS", route.Symbols, 0x10},
		{"TRUE", nil, 1},
		{"true", nil, 1},
		{"FALSE", nil, 0},
		{"0x10", nil, 16},
		{"0X1000", nil, 0x1000},
		{"-1", nil, 4294967295},
		{"4294967295", nil, 4294967295},
		{" 600 ", nil, 600},
		{"2 | 0x10", nil, 0x12},
	}
	for _, c := range cases {
		v, err := ParseValue(DWORD, c.text, c.symbols)
		if err != nil || v.DWord != c.want || v.Type != DWORD {
			t.Errorf("ParseValue(DWORD, %q) = %v, %v; want %d", c.text, v, err, c.want)
		}
	}
	for _, bad := range []string{"", "abc", "AuthBogus", "4294967296", "-2147483649", "0x1FFFFFFFF", "1 |", "1.5"} {
		if v, err := ParseValue(DWORD, bad, auth.Symbols); err == nil {
			t.Errorf("ParseValue(DWORD, %q) = %v, want an error", bad, v)
		} else if bad != "" && !strings.Contains(err.Error(), bad) {
			t.Errorf("ParseValue(DWORD, %q): error %q does not name the value", bad, err)
		}
	}
}

func TestParseValueOtherTypes(t *testing.T) {
	v, err := ParseValue(MULTISZ, "\n\t\t:25:\n\t\t127.0.0.1:2525:\n", nil)
	if err != nil || len(v.Multi) != 2 || v.Multi[0] != ":25:" || v.Multi[1] != "127.0.0.1:2525:" {
		t.Errorf("MULTISZ: %q, %v", v.Multi, err)
	}
	v, err = ParseValue(BINARY, "0a ff\n00", nil)
	if err != nil || string(v.Bin) != "\x0a\xff\x00" || v.Text() != "0aff00" {
		t.Errorf("BINARY: %x, %v", v.Bin, err)
	}
	if _, err := ParseValue(BINARY, "xyz", nil); err == nil || !strings.Contains(err.Error(), "not hexadecimal") {
		t.Errorf("BINARY xyz: %v", err)
	}
	v, err = ParseValue(EXPANDSZ, `%windir%\system32\logfiles`, nil)
	if err != nil || v.Type != EXPANDSZ || v.Str != `%windir%\system32\logfiles` {
		t.Errorf("EXPANDSZ: %v, %v", v, err)
	}
	for _, n := range []string{"DWORD", "string", " MultiSZ ", "BINARY", "EXPANDSZ"} {
		if _, err := ParseMDType(n); err != nil {
			t.Errorf("ParseMDType(%q): %v", n, err)
		}
	}
	if _, err := ParseMDType("IPSECLIST"); err == nil {
		t.Error("ParseMDType(IPSECLIST) accepted")
	}
}

// TestCheckFlags: a flag property refuses bits it does not know, whatever
// their numeric size.
func TestCheckFlags(t *testing.T) {
	auth, _ := Lookup("AuthFlags")
	if err := auth.Check(DWordValue(7)); err != nil {
		t.Errorf("AuthFlags 7: %v", err)
	}
	if err := auth.Check(DWordValue(0x28)); err == nil || !strings.Contains(err.Error(), "0x28") {
		t.Errorf("AuthFlags 0x28 (unknown bits under the highest known one): %v", err)
	}
	route, _ := Lookup("RouteAction")
	if err := route.Check(DWordValue(RouteSmartHost | RouteDomainRelay | RouteUseHELO)); err != nil {
		t.Errorf("RouteAction: %v", err)
	}
	if err := route.Check(DWordValue(0x800000)); err == nil {
		t.Error("RouteAction 0x800000 accepted")
	}
	hop, _ := Lookup("HopCount")
	if err := hop.Check(DWordValue(0)); err == nil || !strings.Contains(err.Error(), "out of range 1–256") {
		t.Errorf("HopCount 0: %v", err)
	}
	if err := hop.Check(StringValue("15")); err == nil || !strings.Contains(err.Error(), "want DWORD") {
		t.Errorf("HopCount as STRING: %v", err)
	}
}

func TestLookupCaseInsensitive(t *testing.T) {
	for _, n := range []string{"MaxMessageSize", "maxmessagesize", "MAXMESSAGESIZE"} {
		if p, ok := Lookup(n); !ok || p.Name != "MaxMessageSize" {
			t.Errorf("Lookup(%q) = %v, %v", n, p, ok)
		}
	}
	if _, ok := Lookup("NoSuchProperty"); ok {
		t.Error("Lookup(NoSuchProperty) found something")
	}
	if _, ok := LookupID(1); ok {
		t.Error("LookupID(1) found something")
	}
	if a, ok := LookupAttribute("MSEXCHSMTPMAXMESSAGESIZE"); !ok || a.OID != "1.2.840.113556.1.4.7000.102.5007" {
		t.Errorf("LookupAttribute: %v, %v", a, ok)
	}
	if p, ok := ForAttribute("msexchsmtpmaxmessagesize"); !ok || p.Name != "MaxMessageSize" {
		t.Errorf("ForAttribute: %v, %v", p, ok)
	}
	if _, ok := ForAttribute("routingList"); ok {
		t.Error("routingList maps to a property; it is read for routing only")
	}
}

// TestClasses: superclasses and possible superiors come first, and every
// attribute a class names is defined.
func TestClasses(t *testing.T) {
	builtin := map[string]bool{"top": true, "cn": true, "description": true}
	defined := map[string]bool{"top": true}
	for _, c := range Classes() {
		if !defined[c.Sup] {
			t.Errorf("class %s: superclass %s is not defined before it", c.Name, c.Sup)
		}
		defined[c.Name] = true
	}
	for _, c := range Classes() {
		for _, ps := range c.PossSup {
			if !defined[ps] {
				t.Errorf("class %s: possible superior %s is not a class of the catalogue", c.Name, ps)
			}
		}
		for _, n := range append(append([]string{}, c.Must...), c.May...) {
			if _, ok := LookupAttribute(n); !ok && !builtin[n] {
				t.Errorf("class %s names attribute %s, which is not defined", c.Name, n)
			}
		}
		if !strings.HasPrefix(c.OID, "1.2.840.113556.") && !strings.HasPrefix(c.OID, OurArc+".") {
			t.Errorf("class %s: OID %s is neither Microsoft's nor ours", c.Name, c.OID)
		}
	}
	// REFERENCE.md 3.1 governsIDs.
	want := map[string]string{
		ClassProtocolCfg: "1.2.840.113556.1.3.68", ClassSMTP: "1.2.840.113556.1.5.7000.62.5001",
		ClassSMTPServer: "1.2.840.113556.1.5.7000.62.5002", ClassSMTPContainer: "1.2.840.113556.1.5.7000.62.5010",
		ClassRecipientPolicy: "1.2.840.113556.1.5.7000.62.50024", ClassSMTPConnector: "1.2.840.113556.1.5.7000.62.12008",
	}
	for _, c := range Classes() {
		if w, ok := want[c.Name]; ok && c.OID != w {
			t.Errorf("class %s: OID %s, REFERENCE.md 3.1 says %s", c.Name, c.OID, w)
		}
		delete(want, c.Name)
	}
	for n := range want {
		t.Errorf("class %s missing", n)
	}
}

// TestSyntaxFitsType: an attribute's syntax and multiplicity fit the
// metabase type of the property it feeds.
func TestSyntaxFitsType(t *testing.T) {
	for _, p := range Properties() {
		a, ok := LookupAttribute(p.Attribute)
		if !ok {
			continue
		}
		var fits bool
		switch a.Syntax {
		case SyntaxInteger, SyntaxBoolean:
			fits = p.Type == DWORD && !a.Multi
		case SyntaxOctet:
			fits = p.Type == BINARY && !a.Multi
		case SyntaxString, SyntaxCIString:
			fits = a.Multi == (p.Type == MULTISZ) && p.Type != DWORD && p.Type != BINARY
		}
		if !fits {
			t.Errorf("%s (%v, multi %v) does not fit %s (%v)", a.Name, a.Syntax, a.Multi, p.Name, p.Type)
		}
		if a.Syntax == SyntaxBoolean && !p.Bool && p.Name != "RelayForAuth" {
			t.Errorf("%s is Boolean but %s is not a BOOL", a.Name, p.Name)
		}
	}
}

// TestSampleDirectoryAccepted reads the sample organisation the local
// directory loads (deploy/openldap/sample.ldif) and checks that the
// catalogue knows every class and attribute it uses and accepts every value
// it replicates.
func TestSampleDirectoryAccepted(t *testing.T) {
	data, err := os.ReadFile("../deploy/openldap/sample.ldif")
	if err != nil {
		t.Fatalf("sample organisation: %v", err)
	}
	standard := map[string]bool{"objectclass": true, "cn": true, "dc": true, "o": true, "ou": true, "description": true, "userpassword": true}
	standardClasses := map[string]bool{"top": true, "dcobject": true, "organization": true, "organizationalunit": true, "organizationalrole": true,
		"simplesecurityobject": true, "applicationprocess": true}
	classes := map[string]bool{}
	for _, c := range Classes() {
		classes[strings.ToLower(c.Name)] = true
	}
	entries := parseSampleLDIF(t, string(data))
	if len(entries) < 10 {
		t.Fatalf("sample has %d entries", len(entries))
	}
	checked := 0
	for _, e := range entries {
		for name, vals := range e.attrs {
			lname := strings.ToLower(name)
			if lname == "objectclass" {
				for _, c := range vals {
					if !classes[strings.ToLower(c)] && !standardClasses[strings.ToLower(c)] {
						t.Errorf("%s: class %s is not in the catalogue", e.dn, c)
					}
				}
				continue
			}
			if standard[lname] {
				continue
			}
			if _, ok := LookupAttribute(name); !ok {
				t.Errorf("%s: attribute %s is not in the catalogue", e.dn, name)
				continue
			}
			if p, ok := ForAttribute(name); ok {
				checked++
				if _, err := p.FromDirectory(vals); err != nil {
					t.Errorf("%s: %s %q refused for %s: %v", e.dn, name, vals, p.Name, err)
				}
			}
		}
	}
	if checked < 20 {
		t.Errorf("only %d replicated values in the sample", checked)
	}
	t.Logf("%d sample entries, %d replicated attributes accepted", len(entries), checked)
}

type sampleEntry struct {
	dn    string
	attrs map[string][]string
}

// parseSampleLDIF reads RFC 2849 content records: comments, folded lines
// and base64 values.
func parseSampleLDIF(t *testing.T, s string) []sampleEntry {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
		if strings.HasPrefix(l, " ") && len(lines) > 0 && lines[len(lines)-1] != "" {
			lines[len(lines)-1] += l[1:]
			continue
		}
		if strings.HasPrefix(l, "#") {
			continue
		}
		lines = append(lines, l)
	}
	var out []sampleEntry
	var cur *sampleEntry
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			cur = nil
			continue
		}
		name, val, ok := strings.Cut(l, ":")
		if !ok {
			t.Fatalf("sample LDIF line without colon: %q", l)
		}
		if strings.HasPrefix(val, ":") {
			b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(val[1:]))
			if err != nil {
				t.Fatalf("sample LDIF: bad base64 in %q", l)
			}
			val = string(b)
		} else {
			val = strings.TrimLeft(val, " ")
		}
		if cur == nil {
			if name != "dn" {
				t.Fatalf("sample LDIF record starts with %q", l)
			}
			out = append(out, sampleEntry{dn: val, attrs: map[string][]string{}})
			cur = &out[len(out)-1]
			continue
		}
		if name == "changetype" {
			continue
		}
		cur.attrs[name] = append(cur.attrs[name], val)
	}
	return out
}

// TestEveryPropertyHasDescription: every property of the catalogue says what
// it does, in a sentence ending with a period, and every description names
// a property of the catalogue, so the map cannot drift from the table.
func TestEveryPropertyHasDescription(t *testing.T) {
	names := map[string]bool{}
	for i := range Properties() {
		p := &Properties()[i]
		names[p.Name] = true
		d := p.Description()
		switch {
		case strings.TrimSpace(d) == "":
			t.Errorf("%s: no description", p.Name)
		case !strings.HasSuffix(d, "."):
			t.Errorf("%s: description does not end with a period: %q", p.Name, d)
		case strings.Contains(d, "|"):
			t.Errorf("%s: description holds a '|': %q", p.Name, d)
		}
	}
	for name := range descriptions {
		if !names[name] {
			t.Errorf("description for %q, which is not a property of the catalogue", name)
		}
	}
}
