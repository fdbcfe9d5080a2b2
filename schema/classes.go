package schema

// Class is one directory object class of the catalogue.
type Class struct {
	Name       string
	OID        string
	Sup        string
	Auxiliary  bool
	Must       []string
	May        []string
	GUID       string // AD schemaIDGUID; "" = derived from the name
	PossSup    []string
	Note       string
	Structural bool
}

const msExchClass = "1.2.840.113556.1.5.7000.62."

// The class names the replicator reads.
const (
	ClassContainer        = "container"
	ClassProtocolCfg      = "protocolCfg"
	ClassSMTPContainer    = "msExchProtocolCfgSMTPContainer"
	ClassSMTP             = "protocolCfgSMTP"
	ClassSMTPServer       = "protocolCfgSMTPServer"
	ClassRecipientPolicy  = "msExchRecipientPolicy"
	ClassSMTPConnector    = "msExchRoutingSMTPConnector"
	ClassEventBinding     = "ds2mbEventBinding"
	AttrGatewayProxy      = "gatewayProxy"
	AttrNonAuthoritative  = "msExchNonAuthoritativeDomains"
	AttrRoutingList       = "routingList"
	AttrSmartHost         = "msExchSmtpSmartHost"
	AttrSourceBridgeheads = "msExchSourceBridgeheadServersDN"
)

// serverAttributes are the attributes a protocolCfgSMTP or
// protocolCfgSMTPServer object may hold: every one mapped to a service or
// server property, plus those of the seed table that have no property.
func serverAttributes() []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range properties {
		if p.Attribute != "" && (p.Nodes.Has(NodeService) || p.Nodes.Has(NodeServer)) && !seen[p.Attribute] {
			seen[p.Attribute] = true
			out = append(out, p.Attribute)
		}
	}
	for _, a := range []string{"msExchSmtpOutboundSecurityFlag", "msExchSmtpOutboundSecurityUserName", "msExchSmtpOutboundSecurityPassword",
		"msExchBridgeheadedLocalConnectorsDNBL", "msExchBridgeheadedRemoteConnectorsDNBL", "msExchSmtpEnableVRFY", "msExchSmtpEnableEXPN",
		"msExchSmtpExternalDNSServers", "msExchBasicAuthenticationDomain", "msExchAdminACL", "msExchAccessFlags",
		"msExchSmtpMaxOutboundMsgPerDomainFlag", "msExchSmtpDsPort", "msExchSmtpEnableLdapRouting"} {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// Classes returns the object classes of the catalogue, superclasses first.
// The OpenLDAP tree uses plain container for the nodes above CN=SMTP
// (DIRECTORIES.md §2); real Active Directory has richer classes there.
func Classes() []Class {
	return []Class{
		{Name: ClassContainer, OID: "1.2.840.113556.1.3.23", Sup: "top", Structural: true, Must: []string{"cn"}, May: []string{"adminDisplayName", "description"},
			GUID: "bf967a8b-0de6-11d0-a285-00aa003049e2"},
		{Name: ClassProtocolCfg, OID: "1.2.840.113556.1.3.68", Sup: "top", Structural: true, Must: []string{"cn"},
			May: []string{"adminDisplayName", "description", "msExchDS2MBOptions"}, GUID: "a8df74c0-c5ea-11d1-bbcb-0080c76670c0", PossSup: []string{ClassContainer}},
		{Name: ClassSMTPContainer, OID: msExchClass + "5010", Sup: ClassContainer, Structural: true, GUID: "93bb9552-b09e-11d2-aa06-00c04f8eedd8", PossSup: []string{ClassContainer},
			Note: "the SMTP protocol container of real Exchange trees; simplified: real AD derives it from msExchProtocolCfgSharedContainer"},
		{Name: ClassSMTP, OID: msExchClass + "5001", Sup: ClassProtocolCfg, Structural: true, May: serverAttributes(),
			GUID: "33f98980-a982-11d2-a9ff-00c04f8eedd8", PossSup: []string{ClassContainer}, Note: "CN=SMTP under a server's CN=Protocols: the service node. ASSUMPTION(G, REFERENCE.md 3.2): class of CN=SMTP unsourced; DESIGN.md fixes protocolCfgSMTP"},
		{Name: ClassSMTPServer, OID: msExchClass + "5002", Sup: ClassSMTP, Structural: true, May: serverAttributes(),
			GUID: "3378ca84-a982-11d2-a9ff-00c04f8eedd8", PossSup: []string{ClassSMTP, ClassSMTPContainer}, Note: "CN=<n>: virtual server n"},
		{Name: ClassRecipientPolicy, OID: msExchClass + "50024", Sup: "top", Structural: true, Must: []string{"cn"},
			May:  []string{"adminDisplayName", AttrGatewayProxy, "disabledGatewayProxy", AttrNonAuthoritative},
			GUID: "e32977d8-1d31-11d3-aa5e-00c04f8eedd8", PossSup: []string{ClassContainer},
			Note: "simplified: real AD derives it from msExchGenericPolicy"},
		{Name: ClassSMTPConnector, OID: msExchClass + "12008", Sup: "top", Structural: true, Must: []string{"cn"},
			May: []string{"adminDisplayName", AttrRoutingList, AttrSmartHost, AttrSourceBridgeheads, "msExchTargetBridgeheadServersDN",
				"msExchSmtpOutboundSecurityFlag", "msExchSmtpOutboundSecurityUserName", "msExchSmtpOutboundSecurityPassword",
				"msExchSmtpTRNSmartHost", "msExchRoutingETRNDomains", "msExchSmtpAuthorizedTRNAccounts"},
			GUID: "89baf7be-b09e-11d2-aa06-00c04f8eedd8", PossSup: []string{ClassContainer},
			Note: "simplified: real AD derives it from mailGateway, which must have homeMTA and deliveryMechanism"},
		{Name: ClassEventBinding, OID: OurArc + ".2.1", Sup: "top", Structural: true, Must: []string{"cn", "ds2mbEventType", "ds2mbSinkClass"},
			May:     []string{"adminDisplayName", "ds2mbBindingID", "ds2mbBindingEnabled", "ds2mbMaxFirings", "ds2mbPriority", "ds2mbRule", "ds2mbSinkProperty"},
			PossSup: []string{ClassSMTPServer}, Note: "ds2mb extension: a centrally managed event binding, child of its virtual server"},
	}
}

// DN shapes (DESIGN.md "The directory side"; REFERENCE.md §3.2). Every DN is
// below the configuration base the replicator is given
// ("cn=Configuration,dc=example,dc=com").
const (
	// ExchangeRDN is the container of the Exchange configuration below the base.
	ExchangeRDN = "cn=Microsoft Exchange,cn=Services"
	// ServerDNFormat, with the server name, the organisation and the
	// administrative group, gives a server's DN below ExchangeRDN.
	ServerDNFormat = "cn=%s,cn=Servers,cn=%s,cn=Administrative Groups,cn=%s"
	// SMTPRDN is the SMTP protocol container below a server.
	SMTPRDN = "cn=SMTP,cn=Protocols"
	// PoliciesRDN is the recipient-policy container below an organisation.
	PoliciesRDN = "cn=Recipient Policies"
)
