package schema

// msExchAt is the arc of Exchange's attribute OIDs.
const msExchAt = "1.2.840.113556.1.4.7000.102."

// OurArc is the OID arc of ds2mb's own schema extension (event bindings): a
// UUID-based OID under 2.25 (ITU-T X.667), so no registration is needed.
const OurArc = "2.25.258222143727791187541467995426579940336"

func at(n, oid string, syn Syntax, multi bool, guid string) Attribute {
	return Attribute{Name: n, OID: oid, Syntax: syn, Multi: multi, GUID: guid}
}

func ex(n, num string, syn Syntax, guid string) Attribute {
	return at(n, msExchAt+num, syn, false, guid)
}

// attributes is every directory attribute ds2mb reads (REFERENCE.md §2.2,
// OpenChange's copy of the Exchange 2003 schema) plus ds2mb's own.
var attributes = []Attribute{
	{Name: "msExchServerBindings", OID: msExchAt + "2001", Syntax: SyntaxString, Multi: true, RangeUpper: 512, GUID: "2201ae3e-b098-11d2-aa06-00c04f8eedd8",
		Description: "IP:port:host bindings of plain SMTP (the Exchange LDIF's description is swapped with SecureBindings)"},
	{Name: "msExchSecureBindings", OID: msExchAt + "2002", Syntax: SyntaxString, Multi: true, RangeUpper: 512, GUID: "216ddc72-b098-11d2-aa06-00c04f8eedd8"},
	ex("msExchAuthenticationFlags", "2003", SyntaxInteger, "91f5ddfa-b093-11d2-aa06-00c04f8eedd8"),
	ex("msExchMaxIncomingConnections", "2004", SyntaxInteger, "a808632e-b093-11d2-aa06-00c04f8eedd8"),
	ex("msExchLogType", "2005", SyntaxInteger, "a75a5784-b093-11d2-aa06-00c04f8eedd8"),
	ex("msExchAccessSSLFlags", "2006", SyntaxInteger, "903f2d4a-b093-11d2-aa06-00c04f8eedd8"),
	ex("msExchServerAutoStart", "2007", SyntaxBoolean, "21cf9cdc-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSaslLogonDomain", "2008", SyntaxString, "209c0d82-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchNTAuthenticationProviders", "2009", SyntaxString, "15278116-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchBasicAuthenticationDomain", "2010", SyntaxString, "94262698-b093-11d2-aa06-00c04f8eedd8"),
	ex("msExchAdminACL", "2011", SyntaxString, "90c975ae-b093-11d2-aa06-00c04f8eedd8"),
	ex("msExchDefaultDomain", "2012", SyntaxString, "9d22e3da-b093-11d2-aa06-00c04f8eedd8"),
	ex("msExchIPSecurity", "2013", SyntaxOctet, "a68fafa2-b093-11d2-aa06-00c04f8eedd8"),
	ex("msExchIncomingConnectionTimeout", "2015", SyntaxInteger, "a64cedca-b093-11d2-aa06-00c04f8eedd8"),
	ex("msExchAccessFlags", "2016", SyntaxInteger, "901b6a04-b093-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpMaxOutgoingConnections", "5001", SyntaxInteger, "41d9363c-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpOutgoingConnectionTimeout", "5002", SyntaxInteger, "436037e4-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpMaxOutgoingConnectionsPerDomain", "5003", SyntaxInteger, "420b479e-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpOutgoingPort", "5004", SyntaxInteger, "43b3aa32-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpOutgoingSecurePort", "5005", SyntaxInteger, "43f1a756-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpMaxHopCount", "5006", SyntaxInteger, "411817c2-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpMaxMessageSize", "5007", SyntaxInteger, "4147c6ca-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpMaxSessionSize", "5008", SyntaxInteger, "426aa5ae-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpMaxRecipients", "5009", SyntaxInteger, "423af6a6-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpLocalQueueExpirationTimeout", "5010", SyntaxInteger, "40bd7e66-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpLocalQueueDelayNotification", "5011", SyntaxInteger, "2f9f5c3a-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpRemoteQueueExpirationTimeout", "5012", SyntaxInteger, "4501736a-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpRemoteQueueDelayNotification", "5013", SyntaxInteger, "44ddb024-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpSmartHostType", "5014", SyntaxInteger, "46008f08-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpMaxOutboundMsgPerDomain", "5015", SyntaxInteger, "417775d2-b098-11d2-aa06-00c04f8eedd8"),
	{Name: "msExchSmtpOutboundSecurityFlag", OID: msExchAt + "5016", Syntax: SyntaxInteger, GUID: "429cb710-b098-11d2-aa06-00c04f8eedd8",
		Description: "ASSUMPTION(G, REFERENCE.md 2.2): outbound auth/TLS bits of RouteAction; read on connectors only"},
	ex("msExchSmtpDsPort", "5017", SyntaxInteger, "2d92d6e2-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpInboundCommandSupportOptions", "5018", SyntaxInteger, "2e40e28c-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpEnableLdapRouting", "5019", SyntaxInteger, "2dce71ac-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpRelayForAuth", "5020", SyntaxBoolean, "449164e4-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpPerformReverseDnsLookup", "5021", SyntaxBoolean, "441ef404-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpDoMasquerade", "5022", SyntaxBoolean, "2b949fa6-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpMaxOutboundMsgPerDomainFlag", "5023", SyntaxBoolean, "41a724da-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpSmartHost", "5024", SyntaxString, "45e19076-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpBadMailDirectory", "5025", SyntaxString, "2b5904dc-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpMasqueradeDomain", "5026", SyntaxString, "40eacb14-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpSendNDRTo", "5027", SyntaxString, "45bb6ad6-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpSendBadmailTo", "5028", SyntaxString, "4586f71a-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpFullyQualifiedDomainName", "5029", SyntaxString, "2e0547c2-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpPickupDirectory", "5030", SyntaxString, "444054f0-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpQueueDirectory", "5031", SyntaxString, "4468dcea-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpDropDirectory", "5032", SyntaxString, "2c260f18-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpDomainString", "5033", SyntaxString, "2bd03a70-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpOutboundSecurityUserName", "5034", SyntaxString, "43249d1a-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpOutboundSecurityPassword", "5035", SyntaxString, "42edc704-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpRemoteQueueRetries", "5046", SyntaxString, "4527990a-b098-11d2-aa06-00c04f8eedd8"),
	at("msExchSmtpAuthorizedTRNAccounts", msExchAt+"5047", SyntaxString, true, "2b164304-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpRelayIpList", "5048", SyntaxOctet, "44b5282a-b098-11d2-aa06-00c04f8eedd8"),
	ex("msExchSmtpExternalDNSServers", "5056", SyntaxString, "a1826432-f85e-42b6-b55d-1249ed2f78a3"),
	ex("msExchSmtpTRNSmartHost", "12531", SyntaxString, "be41789c-2da8-11d3-aa6b-00c04f8eedd8"),
	at("msExchRoutingETRNDomains", msExchAt+"12530", SyntaxString, true, "62a383c0-2d9d-11d3-aa6b-00c04f8eedd8"),
	ex("msExchSmtpEnableVRFY", "12536", SyntaxBoolean, "e24d7a80-439d-11d3-aa72-00c04f8eedd8"),
	ex("msExchSmtpEnableEXPN", "12537", SyntaxBoolean, "e24d7a86-439d-11d3-aa72-00c04f8eedd8"),
	{Name: "msExchBridgeheadedLocalConnectorsDNBL", OID: msExchAt + "12515", Syntax: SyntaxDN, Multi: true, GUID: "944c4c38-b093-11d2-aa06-00c04f8eedd8",
		Description: "back-link of msExchSourceBridgeheadServersDN; routing only, no metabase property"},
	{Name: "msExchBridgeheadedRemoteConnectorsDNBL", OID: msExchAt + "12516", Syntax: SyntaxDN, Multi: true, GUID: "946dad24-b093-11d2-aa06-00c04f8eedd8",
		Description: "back-link of msExchTargetBridgeheadServersDN; routing only, no metabase property"},
	at("msExchSourceBridgeheadServersDN", msExchAt+"12511", SyntaxDN, true, "206f4094-b099-11d2-aa06-00c04f8eedd8"),
	at("msExchTargetBridgeheadServersDN", msExchAt+"12514", SyntaxDN, true, "20da8a66-b099-11d2-aa06-00c04f8eedd8"),
	ex("msExchDS2MBOptions", "14001", SyntaxInteger, "974c99da-33fc-11d3-aa6e-00c04f8eedd8"),
	{Name: "msExchNonAuthoritativeDomains", OID: msExchAt + "50084", Syntax: SyntaxString, Multi: true, RangeUpper: 1123, GUID: "ef2c7c70-f874-4280-8643-2334f2d3340c",
		Description: "SMTP domains of a recipient policy the organisation is not authoritative for"},
	{Name: "gatewayProxy", OID: "1.2.840.113556.1.2.302", Syntax: SyntaxString, Multi: true, RangeUpper: 1123, GUID: "16775802-47f3-11d1-a9c3-0000f80367c1",
		Description: "address templates of a recipient policy, e.g. SMTP:@example.com"},
	{Name: "disabledGatewayProxy", OID: "1.2.840.113556.1.2.541", Syntax: SyntaxString, Multi: true, RangeUpper: 1024, GUID: "a8df73c0-c5ea-11d1-bbcb-0080c76670c0",
		Description: "address templates of a recipient policy that are switched off; not replicated"},
	{Name: "routingList", OID: "1.2.840.113556.1.2.354", Syntax: SyntaxString, Multi: true, RangeUpper: 2243, GUID: "a8df7467-c5ea-11d1-bbcb-0080c76670c0",
		Description: "address spaces of a connector, e.g. SMTP:*.contoso.com;1 (stored form G/U)"},
	{Name: "adminDisplayName", OID: "1.2.840.113556.1.2.194", Syntax: SyntaxString, GUID: "bf96791a-0de6-11d0-a285-00aa003049e2"},

	// ds2mb's own attributes for centrally managed event bindings.
	{Name: "ds2mbEventType", OID: OurArc + ".1.1", Syntax: SyntaxString, Description: "event type: smtpreg name (OnArrival) or CATID"},
	{Name: "ds2mbBindingID", OID: OurArc + ".1.2", Syntax: SyntaxString, Description: "binding GUID, {XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}"},
	{Name: "ds2mbSinkClass", OID: OurArc + ".1.3", Syntax: SyntaxString, Description: "registered sink class name"},
	{Name: "ds2mbBindingEnabled", OID: OurArc + ".1.4", Syntax: SyntaxBoolean, Description: "binding enabled (default TRUE)"},
	{Name: "ds2mbMaxFirings", OID: OurArc + ".1.5", Syntax: SyntaxInteger, Description: "notifications before the binding disables itself; 0 = no limit"},
	{Name: "ds2mbPriority", OID: OurArc + ".1.6", Syntax: SyntaxInteger, Description: "0 highest … 32767 lowest, default 24575"},
	{Name: "ds2mbRule", OID: OurArc + ".1.7", Syntax: SyntaxString, Description: "rule, e.g. MAIL FROM=*@example.com;RCPT TO=*"},
	{Name: "ds2mbSinkProperty", OID: OurArc + ".1.8", Syntax: SyntaxString, Multi: true, Description: "sink property, Name=Value"},
}
