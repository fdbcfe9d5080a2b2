package schema

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// Format names a structured string format a property's value must follow.
type Format int

// The value formats the catalogue checks.
const (
	FormatNone           Format = iota
	FormatBindings              // ServerBindings: "IP:port:host" per line
	FormatSecureBindings        // SecureBindings: "IP:port" per line
	FormatRetryList             // "15,30,60,240" minutes
	FormatSmartHost             // host name or [IP literal]
	FormatIPSecList             // IPSECLIST blob
	FormatDomain                // a DNS domain name
	FormatRule                  // event-binding rule "EHLO=*.x.com;MAIL FROM=*@y"
	FormatGUID                  // {XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}
	FormatAddress               // an e-mail address or local part
)

// Property is one metabase property: its IIS identity, where it lives, its
// default and check, and the directory attribute it is replicated from.
type Property struct {
	Name     string  // IIS property name, the XML attribute name in MetaBase.xml
	ID       uint32  // metabase ID
	Type     MDType  // metabase data type
	Bool     bool    // a BOOL stored as DWORD, written TRUE/FALSE
	UserType string  // IIS_MD_UT_SERVER, IIS_MD_UT_FILE, …
	Inherit  bool    // INHERIT: a virtual server inherits the service's value
	Secure   bool    // SECURE: never printed in clear
	Nodes    NodeSet // node kinds the property may live on
	Default  string  // default in text form; "" = none
	Unit     string  // unit of the metabase value ("seconds", "bytes", …)

	Min, Max uint32   // DWORD range, when HasRange; for Flags, Max is the mask of the known bits
	HasRange bool     // Min and Max apply
	Symbols  []Symbol // flag or enum names accepted in text form
	Flags    bool     // Symbols are OR-able flag bits (else an enum)
	Format   Format   // structured string format

	Attribute string // directory attribute it is replicated from; "" = none
	Grade     Grade  // REFERENCE.md grade of the attribute ⇄ property pairing or ID
	Note      string // where a choice was made, what and why
}

// Attribute is one directory attribute the system knows.
type Attribute struct {
	Name        string
	OID         string
	Syntax      Syntax
	Multi       bool
	GUID        string // AD schemaIDGUID; "" = derived from the name
	RangeUpper  int    // AD rangeUpper; 0 = none
	LinkID      int    // AD linkID of a linked attribute (odd = back-link, computed by AD); 0 = not linked
	Description string // what it holds and where it goes; adminDescription in the AD schema
}

// UserType names used in the catalogue.
const (
	UTServer = "IIS_MD_UT_SERVER"
	UTFile   = "IIS_MD_UT_FILE"
)

var (
	svcServer       = Of(NodeService, NodeServer)
	svcServerDomain = Of(NodeService, NodeServer, NodeDomain)
	serverOnly      = Of(NodeServer)
	domainOnly      = Of(NodeDomain)
	routingSources  = Of(NodeRoutingSources)
	// PrivateIDBase starts the block of IDs this project assigns to
	// properties whose IIS ID is unsourced (REFERENCE.md §9). IIS leaves
	// 61440 and above unused by the SMTP service.
	privateIDBase uint32 = 0xF100
)

func boolProp(name string, id uint32, def string, nodes NodeSet, attr string, g Grade, note string) Property {
	return Property{Name: name, ID: id, Type: DWORD, Bool: true, UserType: UTServer, Inherit: true, Nodes: nodes,
		Default: def, HasRange: true, Min: 0, Max: 1, Attribute: attr, Grade: g, Note: note}
}

func dword(name string, id uint32, def string, nodes NodeSet, attr string, g Grade, unit string) Property {
	return Property{Name: name, ID: id, Type: DWORD, UserType: UTServer, Inherit: true, Nodes: nodes,
		Default: def, Attribute: attr, Grade: g, Unit: unit}
}

func ranged(p Property, min, max uint32) Property {
	p.HasRange, p.Min, p.Max = true, min, max
	return p
}

func str(name string, id uint32, nodes NodeSet, attr string, g Grade, f Format) Property {
	return Property{Name: name, ID: id, Type: STRING, UserType: UTServer, Inherit: true, Nodes: nodes,
		Attribute: attr, Grade: g, Format: f}
}

func noted(p Property, note string) Property { p.Note = note; return p }

func fileUT(p Property) Property { p.UserType = UTFile; return p }

func routing(p Property, def string) Property {
	if def != "" {
		p.Default = def
	}
	p.Note = "obsolete LDAP routing source setting; not replicated"
	return p
}

// Notes shared by several entries.
const (
	timeoutNote   = "ASSUMPTION(U, REFERENCE.md 1.3): unit unsourced, taken as seconds like ConnectionTimeout; 0 = no timeout of its own, ConnectionTimeout applies"
	bindingIDNote = "ASSUMPTION(U, REFERENCE.md 5.7): property IDs under binding keys are unsourced, private ID used"
)

// AuthFlags bits (REFERENCE.md §1.4).
const (
	AuthAnonymous uint32 = 0x1
	AuthBasic     uint32 = 0x2
	AuthNTLM      uint32 = 0x4
)

// AccessSSLFlags bits.
const (
	AccessSSL    uint32 = 0x8
	AccessSSL128 uint32 = 0x100
)

// RouteAction flag bits of a domain node (REFERENCE.md §1.4; community
// table, grade G for the meanings beyond the names).
const (
	RouteNoAction       uint32 = 0x0
	RouteDrop           uint32 = 0x1
	RouteSmartHost      uint32 = 0x2
	RouteSSL            uint32 = 0x4
	RouteSASL           uint32 = 0x8
	RouteAlias          uint32 = 0x10
	RouteDeliver        uint32 = 0x20
	RouteDefault        uint32 = 0x40
	RouteAuthNTLM       uint32 = 0x80
	RouteAuthCleartext  uint32 = 0x100
	RouteETRNCmd        uint32 = 0x200
	RouteIPRelay        uint32 = 0x400
	RouteAuthRelay      uint32 = 0x800
	RouteDomainRelay    uint32 = 0x1000
	RouteCSideTurn      uint32 = 0x2000
	RouteCSideETRN      uint32 = 0x4000
	RouteDisableETRN    uint32 = 0x8000
	RouteChunking       uint32 = 0x10000
	RouteDisableChunk   uint32 = 0x20000
	RouteDisableBMIME   uint32 = 0x40000
	RouteDisableDSN     uint32 = 0x80000
	RouteDisablePipe    uint32 = 0x100000
	RouteAuthKerberos   uint32 = 0x200000
	RouteUseHELO        uint32 = 0x400000
	routeActionAllFlags uint32 = 0x7FFFFF
)

// RouteActionSymbols are the names of the RouteAction bits.
var RouteActionSymbols = []Symbol{
	{"SMTP_DROP", RouteDrop}, {"SMTP_SMARTHOST", RouteSmartHost}, {"SMTP_SSL", RouteSSL}, {"SMTP_SASL", RouteSASL},
	{"SMTP_ALIAS", RouteAlias}, {"SMTP_DELIVER", RouteDeliver}, {"SMTP_DEFAULT", RouteDefault},
	{"SMTP_AUTH_NTLM", RouteAuthNTLM}, {"SMTP_AUTH_CLEARTEXT", RouteAuthCleartext}, {"SMTP_ETRN_CMD", RouteETRNCmd},
	{"SMTP_IP_RELAY", RouteIPRelay}, {"SMTP_AUTH_RELAY", RouteAuthRelay}, {"SMTP_DOMAIN_RELAY", RouteDomainRelay},
	{"SMTP_CSIDE_TURN", RouteCSideTurn}, {"SMTP_CSIDE_ETRN", RouteCSideETRN}, {"SMTP_DISABLE_ETRN", RouteDisableETRN},
	{"SMTP_CHUNKING", RouteChunking}, {"SMTP_DISABLE_CHUNK", RouteDisableChunk}, {"SMTP_DISABLE_BMIME", RouteDisableBMIME},
	{"SMTP_DISABLE_DSN", RouteDisableDSN}, {"SMTP_DISABLE_PIPELINE", RouteDisablePipe},
	{"SMTP_AUTH_KERBEROS", RouteAuthKerberos}, {"SMTP_USE_HELO", RouteUseHELO},
}

// Inbound command-support bits whose meaning REFERENCE.md §1.4 knows (a
// secondary source). The other default bits are unsourced (U) and ignored.
const (
	CmdDSN        uint32 = 0x40
	CmdETRN       uint32 = 0x80
	CmdTURN       uint32 = 0x400
	CmdChunking   uint32 = 0x100000
	CmdBinaryMIME uint32 = 0x200000
	Cmd8BitMIME   uint32 = 0x400000
)

// DefaultPriority is the default event-binding priority (REFERENCE.md §5.3).
const DefaultPriority = 24575

// properties is the catalogue of metabase properties. Defaults follow IIS 6
// unless the note says otherwise; every choice is listed in README's
// configuration reference, generated from this table.
var properties = []Property{
	noted(ranged(dword("ConnectionTimeout", 1013, "600", svcServer, "msExchIncomingConnectionTimeout", GradeN, "seconds"), 1, 0xFFFFFFFF),
		"ASSUMPTION(U, REFERENCE.md 2.3): directory value copied verbatim as seconds; default 600 from Exchange's sample MetaBase.xml (IIS schema says 900, KB 321757 says 1500)"),
	noted(dword("MaxConnections", 1014, "2000000000", svcServer, "msExchMaxIncomingConnections", GradeN, "connections"),
		"default 2000000000, Exchange's 'unlimited' (both stores). ASSUMPTION(U, REFERENCE.md 1.3): 0 also means unlimited (IIS's schema default is 0, its internal default 4294967295)"),
	{Name: "ServerAutoStart", ID: 1017, Type: DWORD, Bool: true, UserType: UTServer, Nodes: svcServer, Default: "TRUE",
		HasRange: true, Max: 1, Attribute: "msExchServerAutoStart", Grade: GradeN},
	{Name: "ServerBindings", ID: 1023, Type: MULTISZ, UserType: UTServer, Nodes: serverOnly, Default: ":25:",
		Format: FormatBindings, Attribute: "msExchServerBindings", Grade: GradeN,
		Note: "default \":25:\" (KB 321757); IIS's schema has none"},
	{Name: "SecureBindings", ID: 2021, Type: MULTISZ, UserType: UTServer, Nodes: serverOnly,
		Format: FormatSecureBindings, Attribute: "msExchSecureBindings", Grade: GradeN},
	noted(ranged(dword("LogType", 4000, "1", svcServer, "msExchLogType", GradeN, ""), 0, 1),
		"0 off, 1 on; default 1 is IIS's (Exchange writes 0 to the directory, KB 321757)"),
	{Name: "LogFileDirectory", ID: 4001, Type: EXPANDSZ, UserType: UTServer, Inherit: true, Nodes: svcServer, Grade: GradeD,
		Note: "no default: protocol logging is off until a directory is set"},
	noted(ranged(dword("LogFilePeriod", 4003, "1", svcServer, "", GradeD, ""), 0, 4), "0 size, 1 daily, 2 weekly, 3 monthly, 4 hourly"),
	noted(dword("LogFileTruncateSize", 4004, "20480000", svcServer, "", GradeU, "bytes"),
		"ASSUMPTION(U, REFERENCE.md 1.3): ID 4004 (generic IIS MD_LOGFILE_TRUNCATE_SIZE) unsourced"),
	{Name: "AuthFlags", ID: 6000, Type: DWORD, UserType: UTFile, Inherit: true, Nodes: svcServer, Default: "AuthAnonymous",
		Symbols: []Symbol{{"AuthAnonymous", AuthAnonymous}, {"AuthBasic", AuthBasic}, {"AuthNTLM", AuthNTLM}, {"AuthMD5", 0x10}, {"AuthPassport", 0x40}},
		Flags:   true, HasRange: true, Max: 0x57, Attribute: "msExchAuthenticationFlags", Grade: GradeN,
		Note: "default AuthAnonymous (IIS); Exchange writes 7 = AuthAnonymous | AuthBasic | AuthNTLM. User type IIS_MD_UT_FILE (IIS SDK); Exchange's sample MetaBase.xml writes IIS_MD_UT_SERVER in its Custom element"},
	{Name: "IPSecurity", ID: 6019, Type: BINARY, UserType: UTFile, Inherit: true, Nodes: svcServer,
		Format: FormatIPSecList, Attribute: "msExchIPSecurity", Grade: GradeN,
		Note: "the worker reads the single-host grant layout (REFERENCE.md §4, G): only the hosts listed may connect (554 5.7.1 to others); a blob in any other layout is ignored with a note in the log and status, so that a misread blob cannot lock every client out"},
	{Name: "AccessSSLFlags", ID: 6030, Type: DWORD, UserType: UTFile, Inherit: true, Nodes: svcServer, Default: "0",
		Symbols: []Symbol{{"AccessSSL", AccessSSL}, {"AccessSSL128", AccessSSL128}}, Flags: true,
		HasRange: true, Max: 0x1FF, Attribute: "msExchAccessSSLFlags", Grade: GradeN},
	noted(str("NTAuthenticationProviders", 6032, svcServer, "msExchNTAuthenticationProviders", GradeU, FormatNone),
		"ASSUMPTION(U, REFERENCE.md 2.2): ID 6032 unsourced"),
	dword("SmtpCommandLogMask", 36864, "", svcServer, "", GradeD, ""),
	noted(fileUT(dword("MaxBatchedMessages", 36871, "0", svcServer, "msExchSmtpMaxOutboundMsgPerDomain", GradeG, "messages")),
		"ASSUMPTION(G, REFERENCE.md 2.2): pairing with msExchSmtpMaxOutboundMsgPerDomain guessed from the UI text; 0 = no limit (IIS's default; Exchange writes 20)"),
	dword("MaxMailObjects", 36873, "4294967295", svcServer, "", GradeD, ""),
	str("QueueDirectory", 36875, svcServer, "msExchSmtpQueueDirectory", GradeN, FormatNone),
	str("PickupDirectory", 36880, svcServer, "msExchSmtpPickupDirectory", GradeN, FormatNone),
	str("DropDirectory", 36882, svcServer, "msExchSmtpDropDirectory", GradeN, FormatNone),
	noted(ranged(dword("NameResolutionType", 36885, "1", svcServer, "", GradeD, ""), 1, 0xFFFFFFFF), "default 1 (WS2003 page; the SDK says 4294967295)"),
	noted(ranged(dword("HopCount", 36886, "15", svcServer, "msExchSmtpMaxHopCount", GradeD, "hops"), 1, 256),
		"default 15 (Exchange 2000 and the observed IIS value; IIS schema says 10, ExBPA 30 for Exchange 2003)"),
	noted(dword("MaxSmtpErrors", 36887, "4294967295", svcServer, "", GradeD, "errors"),
		"4xx/5xx replies in one session before 421 4.7.0 and disconnection; 4294967295 and (ds2mb's choice) 0 mean unlimited"),
	noted(dword("MaxMessageSize", 36891, "33554432", svcServer, "msExchSmtpMaxMessageSize", GradeN, "bytes"),
		"ASSUMPTION(U, REFERENCE.md 2.3): directory value taken as bytes, verbatim as DS2MB copies; 0 = no limit (Exchange's directory default); default is IIS 6's schema value (2097152 is observed on later Windows)"),
	noted(dword("MaxSessionSize", 36892, "268435456", svcServer, "msExchSmtpMaxSessionSize", GradeD, "bytes"),
		"ASSUMPTION(U, REFERENCE.md 2.3): directory value taken as bytes, verbatim as DS2MB copies (Exchange's Chinese transport guide, seeds/004, calls it KB); 0 = no limit (Exchange's directory default); default is IIS 6's schema value (10485760 is observed on later Windows)"),
	noted(dword("MaxOutConnections", 36894, "1000", svcServer, "msExchSmtpMaxOutgoingConnections", GradeN, "connections"),
		"default 1000 (Exchange, in both stores); IIS's schema says 0"),
	noted(ranged(dword("MaxRecipients", 36895, "100", svcServer, "msExchSmtpMaxRecipients", GradeN, "recipients"), 1, 0xFFFFFFFF),
		"default 100 (IIS); Exchange writes 64000 to the directory"),
	dword("LocalRetryAttempts", 36896, "48", svcServer, "", GradeD, ""),
	dword("LocalRetryInterval", 36897, "60", svcServer, "", GradeD, "minutes"),
	dword("RemoteRetryAttempts", 36898, "48", svcServer, "", GradeD, ""),
	dword("RemoteRetryInterval", 36899, "60", svcServer, "", GradeD, "minutes"),
	{Name: "SmartHostType", ID: 36905, Type: DWORD, UserType: UTServer, Inherit: true, Nodes: svcServer, Default: "0",
		HasRange: true, Max: 2, Attribute: "msExchSmtpSmartHostType", Grade: GradeN,
		Note: "0 none, 1 try DNS first, 2 always the smart host"},
	str("SmartHost", 36906, svcServer, "msExchSmtpSmartHost", GradeN, FormatSmartHost),
	str("DefaultDomain", 36908, svcServer, "msExchDefaultDomain", GradeN, FormatDomain),
	str("BadMailDirectory", 36909, svcServer, "msExchSmtpBadMailDirectory", GradeN, FormatNone),
	{Name: "RoutingSources", ID: 36910, Type: MULTISZ, UserType: "IIS_MD_UT_WAM", Inherit: true, Nodes: svcServer, Grade: GradeD},
	noted(str("MasqueradeDomain", 36912, svcServer, "msExchSmtpMasqueradeDomain", GradeN, FormatDomain),
		"sources conflict on its meaning (REFERENCE.md §9): we replace the domain of MAIL FROM on outgoing mail when DoMasquerade is set"),
	boolProp("DoMasquerade", 36913, "FALSE", svcServer, "msExchSmtpDoMasquerade", GradeN, ""),
	ranged(dword("RemoteSmtpPort", 36914, "25", svcServer, "msExchSmtpOutgoingPort", GradeN, ""), 1, 65535),
	str("PostmasterEmail", 36917, svcServer, "", GradeD, FormatAddress),
	dword("EtrnDays", 36918, "0", svcServer, "", GradeD, "days"),
	{Name: "LocalDomains", ID: 36919, Type: MULTISZ, UserType: UTServer, Inherit: true, Nodes: svcServer, Grade: GradeD},
	{Name: "DomainRouting", ID: 36920, Type: MULTISZ, UserType: UTServer, Inherit: true, Nodes: svcServer, Grade: GradeD},
	noted(dword("RemoteTimeout", 36921, "600", svcServer, "msExchSmtpOutgoingConnectionTimeout", GradeN, "seconds"),
		"default 600 (Exchange, in both stores; the UI shows 10 minutes); IIS's schema says 0"),
	noted(str("SendBadTo", 36923, svcServer, "msExchSmtpSendBadmailTo", GradeN, FormatAddress),
		"treated as INHERIT (IIS 6 SDK page), though the WS2003 page says NO_ATTRIBUTES"),
	noted(dword("MaxOutConnectionsPerDomain", 36925, "100", svcServer, "msExchSmtpMaxOutgoingConnectionsPerDomain", GradeN, "connections"),
		"default 100 (Exchange; 10 on SBS); IIS's schema says 0"),
	boolProp("LimitRemoteConnections", 36926, "FALSE", svcServer, "", GradeD, ""),
	noted(ranged(dword("RemoteSmtpSecurePort", 36929, "465", svcServer, "msExchSmtpOutgoingSecurePort", GradeG, ""), 1, 65535),
		"ASSUMPTION(G, REFERENCE.md 2.2): documented as obsolete"),
	str("SaslLogonDomain", 36940, svcServer, "msExchSaslLogonDomain", GradeN, FormatNone),
	{Name: "RouteAction", ID: 36946, Type: DWORD, UserType: UTServer, Inherit: true, Nodes: svcServerDomain, Default: "0",
		Symbols: RouteActionSymbols, Flags: true, HasRange: true, Max: routeActionAllFlags, Grade: GradeG,
		Note: "ASSUMPTION(G, REFERENCE.md 1.4): bit values from a community table"},
	noted(str("RouteActionString", 36947, domainOnly, "", GradeG, FormatNone),
		"ASSUMPTION(G, REFERENCE.md 1.5): smart host for SMTP_SMARTHOST, drop folder for SMTP_DROP"),
	noted(str("RouteUserName", 36948, svcServerDomain, "", GradeD, FormatNone),
		"not replicated: its pairing with msExchSmtpOutboundSecurityUserName is G (REFERENCE.md 2.2)"),
	{Name: "RoutePassword", ID: 36949, Type: STRING, UserType: UTServer, Inherit: true, Secure: true, Nodes: svcServerDomain, Grade: GradeD,
		Note: "SECURE; not replicated: its pairing with msExchSmtpOutboundSecurityPassword is G (REFERENCE.md 2.2)"},
	dword("SmtpMaxRemoteQThreads", 36964, "4294967295", svcServer, "", GradeD, ""),
	{Name: "AuthTurnList", ID: 36966, Type: MULTISZ, UserType: UTServer, Inherit: true, Nodes: domainOnly, Grade: GradeD,
		Note: "not replicated: its pairing with msExchSmtpAuthorizedTRNAccounts is G (REFERENCE.md 2.2)"},
	noted(str("CSideEtrnDomains", 36968, domainOnly, "", GradeD, FormatNone),
		"not replicated: its pairing with msExchRoutingETRNDomains is G (REFERENCE.md 2.2)"),
	{Name: "RelayIpList", ID: 36970, Type: BINARY, UserType: UTFile, Inherit: true, Nodes: svcServerDomain,
		Format: FormatIPSecList, Attribute: "msExchSmtpRelayIpList", Grade: GradeN,
		Note: "copied verbatim from the directory; the worker reads the single-host grant layout (REFERENCE.md §4, G) and denies relay on anything else; set on a domain node, it (with RelayForAuth, inherited when the node does not set it) decides relay to that domain instead of the virtual server's"},
	{Name: "RelayForAuth", ID: 36973, Type: DWORD, UserType: UTServer, Inherit: true, Nodes: svcServerDomain, Default: "0",
		Attribute: "msExchSmtpRelayForAuth", Grade: GradeN,
		Note: "directory TRUE becomes 1; any non-zero value (IIS writes -1 or 1) means enabled; set on a domain node, it decides relay to that domain for authenticated clients"},
	boolProp("SmtpDisableRelay", 36974, "TRUE", svcServer, "", GradeD, "not used by the worker: relay follows RelayIpList and RelayForAuth"),
	boolProp("SmtpHeloNoDomain", 36981, "TRUE", svcServer, "", GradeD, ""),
	dword("SmtpDomainValidationFlags", 36992, "4294967295", svcServer, "", GradeD, ""),
	dword("SmtpRemoteRetryThreshold", 36995, "3", svcServer, "", GradeD, ""),
	{Name: "SmtpRemoteProgressiveRetry", ID: 36996, Type: STRING, UserType: UTServer, Inherit: true, Nodes: svcServer,
		Default: "15,30,60,240", Format: FormatRetryList, Attribute: "msExchSmtpRemoteQueueRetries", Grade: GradeN, Unit: "minutes",
		Note: "ASSUMPTION(U, REFERENCE.md 2.3): default is IIS's 15,30,60,240; Exchange's directory default is unsourced (10,10,10,15 is often quoted)"},
	dword("SmtpUseTcpDns", 36997, "4294967295", svcServer, "", GradeD, ""),
	noted(dword("SmtpInboundCommandSupportOptions", 36998, "7697601", svcServer, "msExchSmtpInboundCommandSupportOptions", GradeN, ""),
		"bits DSN 0x40, CHUNKING 0x100000, BINARYMIME 0x200000, 8BITMIME 0x400000 (secondary source); other bits U and ignored"),
	dword("SmtpOutboundCommandSupportOptions", 36999, "7697601", svcServer, "", GradeD, ""),
	noted(dword("SmtpConnectTimeout", 37001, "0", svcServer, "", GradeD, "seconds"), timeoutNote),
	noted(dword("SmtpMailFromTimeout", 37002, "0", svcServer, "", GradeD, "seconds"), timeoutNote),
	noted(dword("SmtpRcptToTimeout", 37003, "0", svcServer, "", GradeD, "seconds"), timeoutNote),
	noted(dword("SmtpDataTimeout", 37004, "0", svcServer, "", GradeD, "seconds"), timeoutNote),
	noted(dword("SmtpBdatTimeout", 37005, "0", svcServer, "", GradeD, "seconds"), timeoutNote),
	noted(dword("SmtpAuthTimeout", 37006, "0", svcServer, "", GradeD, "seconds"), timeoutNote),
	noted(dword("SmtpSaslTimeout", 37007, "0", svcServer, "", GradeD, "seconds"), timeoutNote),
	noted(dword("SmtpTurnTimeout", 37009, "0", svcServer, "", GradeD, "seconds"), timeoutNote),
	noted(dword("SmtpRsetTimeout", 37010, "0", svcServer, "", GradeD, "seconds"), timeoutNote),
	noted(dword("SmtpHeloTimeout", 37012, "0", svcServer, "", GradeD, "seconds"), timeoutNote),
	noted(dword("SmtpLocalDelayExpireMinutes", 37017, "720", svcServer, "msExchSmtpLocalQueueDelayNotification", GradeN, "minutes"),
		"default 720 (Exchange; IIS's schema says 60)"),
	dword("SmtpLocalNDRExpireMinutes", 37018, "2880", svcServer, "msExchSmtpLocalQueueExpirationTimeout", GradeN, "minutes"),
	noted(dword("SmtpRemoteDelayExpireMinutes", 37019, "720", svcServer, "msExchSmtpRemoteQueueDelayNotification", GradeN, "minutes"),
		"default 720 (Exchange; IIS's schema says 60)"),
	dword("SmtpRemoteNDRExpireMinutes", 37020, "2880", svcServer, "msExchSmtpRemoteQueueExpirationTimeout", GradeN, "minutes"),
	dword("SmtpDSNLanguageID", 37022, "", svcServer, "", GradeD, ""),
	boolProp("SmtpDotStuffPickupDirFiles", 37030, "TRUE", svcServer, "", GradeD, ""),
	dword("SmtpIpRestrictionFlag", 37031, "0", svcServer, "", GradeD, ""),
	noted(str("SmtpServer", 45059, svcServer, "", GradeD, FormatNone), "NNTP's server for mail to moderators; kept, unused by the SMTP worker"),

	// RoutingSources (/LM/SmtpSvc/N/RoutingSources): obsolete LDAP routing
	// settings, known so that a MetaBase.xml holding them validates. Not
	// replicated: their msExchSmtpDs*/msExchSmtpLdap* attributes live on
	// protocolCfgSMTPRoutingSources objects, which ds2mb does not read.
	routing(str("SmtpRoutingTableType", 36950, routingSources, "", GradeD, FormatNone), "ldap"),
	routing(str("SmtpDsDataDirectory", 36951, routingSources, "", GradeD, FormatNone), ""),
	routing(str("SmtpDsDefaultMailRoot", 36952, routingSources, "", GradeD, FormatNone), ""),
	routing(str("SmtpDsAccount", 36957, routingSources, "", GradeD, FormatNone), ""),
	routing(str("SmtpDsDomain", 36993, routingSources, "", GradeD, FormatNone), ""),
	routing(dword("SmtpDsUseCat", 36994, "", routingSources, "", GradeD, ""), ""),
	routing(dword("SmtpDsPort", 37023, "0", routingSources, "", GradeD, ""), ""),
	routing(dword("SmtpDsFlags", 37024, "0", routingSources, "", GradeD, ""), ""),

	// Properties whose IIS ID is unsourced get IDs from our private block.
	boolProp("EnableReverseDnsLookup", privateIDBase+1, "FALSE", svcServer, "msExchSmtpPerformReverseDnsLookup", GradeU,
		"ASSUMPTION(U, REFERENCE.md 1.3): metabase ID unsourced, private ID used"),
	noted(str("FullyQualifiedDomainName", privateIDBase+2, svcServer, "msExchSmtpFullyQualifiedDomainName", GradeU, FormatDomain),
		"ASSUMPTION(U, REFERENCE.md 1.3): metabase ID unsourced; default is the host's name"),
	noted(str("SendNdrTo", privateIDBase+3, svcServer, "msExchSmtpSendNDRTo", GradeU, FormatAddress),
		"ASSUMPTION(U, REFERENCE.md 1.3): metabase ID unsourced"),
	noted(str("PostmasterName", privateIDBase+4, svcServer, "", GradeU, FormatNone), "ASSUMPTION(U, REFERENCE.md 1.3): metabase ID unsourced, private ID used"),
	noted(str("SslCertificateFile", privateIDBase+5, svcServer, "", GradeU, FormatNone),
		"ASSUMPTION(U, REFERENCE.md 6): ds2mb extension with a private ID (IIS keeps certificates outside the metabase): PEM certificate chain; STARTTLS is offered when it and SslKeyFile are set"),
	noted(str("SslKeyFile", privateIDBase+6, svcServer, "", GradeU, FormatNone),
		"ASSUMPTION(U, REFERENCE.md 6): ds2mb extension with a private ID: PEM private key for SslCertificateFile"),

	noted(str("ExternalDnsServers", privateIDBase+7, svcServer, "msExchSmtpExternalDNSServers", GradeU, FormatNone),
		"ASSUMPTION(U, REFERENCE.md 2.2): metabase property unsourced, a property of ours (private ID) for the virtual server's external DNS servers; host or host:port, separated by spaces, commas or semicolons; empty = the system's resolvers (/etc/resolv.conf)"),
	noted(str("MailStoreDirectory", privateIDBase+8, svcServer, "", GradeU, FormatNone),
		"ASSUMPTION(U, REFERENCE.md 7): ds2mb extension (private ID), Exchange delivered to its store: mail for a local domain is delivered into a Maildir per recipient under this folder (<folder>/<domain>/<local part>/); empty = <base>/Mailroot/vsi <n>/Mailbox, unless LmtpServer is set"),
	noted(str("LmtpServer", privateIDBase+9, svcServer, "", GradeU, FormatNone),
		"ASSUMPTION(U, REFERENCE.md 7): ds2mb extension (private ID): hand mail for local domains to a local delivery agent (Dovecot, …) over LMTP instead of the Maildir store: unix:/path/to/socket or host:port"),
	noted(str("LocalRecipientsFile", privateIDBase+10, svcServer, "", GradeU, FormatNone),
		"ASSUMPTION(U, REFERENCE.md 7): ds2mb extension (private ID), Exchange looked recipients up in the directory: a file listing the addresses of local domains that exist, one per line ('@domain' accepts a whole domain, '#' starts a comment); when set, other recipients in local domains get 550 5.1.1 at RCPT; empty = every address of a local domain is accepted"),

	// Event bindings (DESIGN.md "Event sinks"; REFERENCE.md §5.7). IDs unsourced.
	{Name: "DisplayName", ID: privateIDBase + 0x20, Type: STRING, UserType: UTServer, Nodes: Of(NodeBinding), Grade: GradeU, Attribute: "adminDisplayName",
		Note: bindingIDNote},
	{Name: "SinkClass", ID: privateIDBase + 0x21, Type: STRING, UserType: UTServer, Nodes: Of(NodeBinding), Grade: GradeU, Attribute: "ds2mbSinkClass",
		Note: bindingIDNote + "; the Go sink type registered under this name (a ProgID in IIS)"},
	{Name: "Enabled", ID: privateIDBase + 0x22, Type: DWORD, Bool: true, UserType: UTServer, Nodes: Of(NodeBinding), Default: "TRUE",
		HasRange: true, Max: 1, Grade: GradeU, Attribute: "ds2mbBindingEnabled", Note: bindingIDNote},
	{Name: "MaxFirings", ID: privateIDBase + 0x23, Type: DWORD, UserType: UTServer, Nodes: Of(NodeBinding), Default: "0", Grade: GradeU,
		Attribute: "ds2mbMaxFirings", Note: bindingIDNote + "; 0 = no limit"},
	{Name: "Priority", ID: privateIDBase + 0x24, Type: DWORD, UserType: UTServer, Nodes: Of(NodeBindingSource), Default: strconv.Itoa(DefaultPriority),
		HasRange: true, Max: 32767, Grade: GradeU, Attribute: "ds2mbPriority",
		Note: bindingIDNote + "; 0 highest … 32767 lowest, default 24575 (smtpreg.vbs, REFERENCE.md 5.3)"},
	{Name: "Rule", ID: privateIDBase + 0x25, Type: STRING, UserType: UTServer, Nodes: Of(NodeBindingSource), Format: FormatRule, Grade: GradeU,
		Attribute: "ds2mbRule", Note: bindingIDNote + "; ASSUMPTION(U, REFERENCE.md 5.4): clauses joined by ';' are ANDed, patterns of one command joined by ',' are ORed"},
}

var (
	indexOnce  sync.Once
	byName     map[string]*Property
	byAttr     map[string]*Property
	attrByName map[string]*Attribute
)

func buildIndex() {
	byName = make(map[string]*Property, len(properties))
	byAttr = make(map[string]*Property)
	for i := range properties {
		p := &properties[i]
		byName[strings.ToLower(p.Name)] = p
		if p.Attribute != "" {
			byAttr[strings.ToLower(p.Attribute)] = p
		}
	}
	attrByName = make(map[string]*Attribute, len(attributes))
	for i := range attributes {
		attrByName[strings.ToLower(attributes[i].Name)] = &attributes[i]
	}
}

// Properties returns every property of the catalogue, in catalogue order.
// The slice must not be modified.
func Properties() []Property { return properties }

// Lookup finds a property by its IIS name, case-insensitively.
func Lookup(name string) (*Property, bool) {
	indexOnce.Do(buildIndex)
	p, ok := byName[strings.ToLower(name)]
	return p, ok
}

// LookupID finds a property by metabase ID.
func LookupID(id uint32) (*Property, bool) {
	for i := range properties {
		if properties[i].ID == id {
			return &properties[i], true
		}
	}
	return nil, false
}

// ForAttribute finds the property a directory attribute replicates into.
func ForAttribute(attr string) (*Property, bool) {
	indexOnce.Do(buildIndex)
	p, ok := byAttr[strings.ToLower(attr)]
	return p, ok
}

// Attributes returns every directory attribute of the catalogue.
func Attributes() []Attribute { return attributes }

// LookupAttribute finds a directory attribute by name, case-insensitively.
func LookupAttribute(name string) (*Attribute, bool) {
	indexOnce.Do(buildIndex)
	a, ok := attrByName[strings.ToLower(name)]
	return a, ok
}

// DefaultValue returns the property's default as a Value, if it has one.
func (p *Property) DefaultValue() (Value, bool) {
	if p.Default == "" {
		return Value{}, false
	}
	v, err := p.Parse(p.Default)
	if err != nil {
		panic(fmt.Sprintf("schema: default of %s does not parse: %v", p.Name, err)) // caught by the catalogue test
	}
	return v, true
}

// Parse reads the property's text form as written in MetaBase.xml and checks it.
func (p *Property) Parse(text string) (Value, error) {
	v, err := ParseValue(p.Type, text, p.Symbols)
	if err != nil {
		return Value{}, err
	}
	return v, p.Check(v)
}

// Check validates a value against the property's type, range and format.
func (p *Property) Check(v Value) error {
	if v.Type != p.Type {
		return fmt.Errorf("type %v, want %v", v.Type, p.Type)
	}
	if p.HasRange && p.Flags {
		// Max is the mask of the known bits.
		if unknown := v.DWord &^ p.Max; unknown != 0 {
			return fmt.Errorf("%d (0x%x) sets unknown flag bits 0x%x (known: 0x%x)", v.DWord, v.DWord, unknown, p.Max)
		}
	} else if p.HasRange && (v.DWord < p.Min || v.DWord > p.Max) {
		return fmt.Errorf("%d is out of range %d–%d", v.DWord, p.Min, p.Max)
	}
	return CheckFormat(p.Format, v)
}

// Render returns the property's value in the text form ds2mb writes:
// TRUE/FALSE for BOOLs, decimal for other DWORDs.
func (p *Property) Render(v Value) string {
	if p.Bool && v.Type == DWORD {
		if v.DWord != 0 {
			return "TRUE"
		}
		return "FALSE"
	}
	return v.Text()
}

// FromDirectory converts the values of the property's directory attribute to
// a metabase value and checks it. The error says what was wrong with the
// value; the caller adds the DN and attribute.
func (p *Property) FromDirectory(vals []string) (Value, error) {
	a, ok := LookupAttribute(p.Attribute)
	if !ok {
		return Value{}, fmt.Errorf("attribute %s is not in the catalogue", p.Attribute)
	}
	if len(vals) == 0 {
		return Value{}, fmt.Errorf("no value")
	}
	if !a.Multi && len(vals) > 1 {
		return Value{}, fmt.Errorf("%d values for a single-valued attribute", len(vals))
	}
	var v Value
	switch a.Syntax {
	case SyntaxInteger:
		n, err := strconv.ParseInt(strings.TrimSpace(vals[0]), 10, 64)
		if err != nil {
			return Value{}, fmt.Errorf("%q is not an integer", abbrev(vals[0]))
		}
		if n < 0 || n > 0xFFFFFFFF {
			return Value{}, fmt.Errorf("%d is out of range 0–4294967295", n)
		}
		v = DWordValue(uint32(n))
	case SyntaxBoolean:
		switch strings.ToUpper(strings.TrimSpace(vals[0])) {
		case "TRUE":
			v = DWordValue(1)
		case "FALSE":
			v = DWordValue(0)
		default:
			return Value{}, fmt.Errorf("%q is not TRUE or FALSE", abbrev(vals[0]))
		}
	case SyntaxOctet:
		v = BinaryValue([]byte(vals[0]))
	default:
		if p.Type == MULTISZ {
			v = MultiValue(vals...)
		} else {
			v = Value{Type: p.Type, Str: vals[0]}
		}
	}
	if v.Type != p.Type {
		return Value{}, fmt.Errorf("directory syntax does not fit metabase type %v", p.Type)
	}
	return v, p.Check(v)
}
