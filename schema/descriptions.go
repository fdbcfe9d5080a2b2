package schema

// descriptions says, per property of the catalogue (keyed by Property.Name),
// what the setting controls in IIS or Exchange SMTP and what ds2mb's SMTP
// worker (smtpsvc) does with it. README's configuration reference shows it
// in its "What it does" column; a test keeps the keys and the catalogue in
// step. Units, defaults, grades and assumptions belong to the other columns.
var descriptions = map[string]string{
	// Connections and bindings.
	"ConnectionTimeout": "How long an inbound client may stay idle before the server hangs up. The worker closes an idle session with 421 4.4.2, and also bounds the TLS handshake on SecureBindings with it.",
	"MaxConnections":    "Caps the simultaneous inbound connections of the virtual server. The worker's accept loop answers clients past the cap with 421 4.3.2 and closes them.",
	"ServerAutoStart":   "Whether the virtual server starts with the service. The worker does not listen for a virtual server set to FALSE and lists it as stopped in its status.",
	"ServerBindings":    "The addresses and ports the virtual server listens on for plain SMTP. The worker listens on each (the host-name part is ignored) and refuses a file in which two virtual servers claim one binding.",
	"SecureBindings":    "The addresses and ports the virtual server serves over SSL/TLS. The worker speaks TLS on them from the first byte with the SslCertificateFile certificate; an address may not also be in ServerBindings.",

	// Protocol log.
	"LogType":             "Switches the virtual server's protocol log on or off. The worker writes its log only when this is 1 and LogFileDirectory is set.",
	"LogFileDirectory":    "The folder of the protocol log. The worker writes W3C extended log files into its SMTPSVC<n> subfolder, one line per logged command.",
	"LogFilePeriod":       "How often the protocol log starts a new file. The worker names and rolls its log files by this period, treating 0 (by size) as daily.",
	"LogFileTruncateSize": "The size at which IIS starts a new log file when LogFilePeriod is 0. Not used by the worker, which rolls a by-size log daily instead.",
	"SmtpCommandLogMask":  "Which SMTP commands IIS writes to the protocol log. Not used by the worker, whose log always records the same fixed set of commands.",

	// Authentication and TLS.
	"AuthFlags":                 "Which client authentication methods the virtual server accepts. The worker reads AuthAnonymous and AuthBasic: without AuthAnonymous, MAIL from a client that has not authenticated gets 530 5.7.0; with AuthBasic and a credentials checker, AUTH PLAIN and LOGIN are offered over TLS.",
	"AccessSSLFlags":            "Whether clients must use an encrypted channel. With AccessSSL the worker answers MAIL before STARTTLS with 530 5.7.0; AccessSSL128 is ignored.",
	"NTAuthenticationProviders": "The Windows integrated authentication packages (GSSAPI, NTLM) offered to AUTH. Not used by the worker, which offers no integrated authentication; replicated and kept in the file.",
	"DefaultDomain":             "The Windows domain that Basic (cleartext) AUTH logs users on to when they name none. Not used by the worker, whose credentials checker takes the name as given; replicated and kept in the file.",
	"SaslLogonDomain":           "The logon domain for clients that authenticate with SASL (AUTH). Not used by the worker; replicated and kept in the file.",
	"SslCertificateFile":        "The virtual server's TLS certificate (IIS kept it in the Windows certificate store). The worker loads it with SslKeyFile for STARTTLS and SecureBindings, and refuses a configuration it cannot load.",
	"SslKeyFile":                "The private key of SslCertificateFile. The worker loads the two as a pair; either one set without the other refuses the configuration.",

	// Connection control and relay.
	"IPSecurity":       "Connection control: the client addresses that may connect to the virtual server at all. The worker checks every new connection against it before the greeting.",
	"RelayIpList":      "The client addresses allowed to relay through the virtual server (to one domain, on a domain node). The worker accepts recipients outside its local and relay domains from the hosts it grants.",
	"RelayForAuth":     "Whether clients that authenticated may relay. When it is non-zero the worker accepts recipients outside its local and relay domains from any client that passed AUTH.",
	"SmtpDisableRelay": "A relay switch for the whole virtual server, whose documented sense is reversed. Ignored by the worker.",

	// Limits on inbound sessions.
	"MaxMessageSize": "The largest message the virtual server accepts. The worker advertises it with EHLO SIZE, answers a bigger message (MAIL SIZE= or DATA) with 552 5.3.4, and moves a bigger Pickup file to Badmail.",
	"MaxSessionSize": "Caps the message data of one connection, all its messages together. The worker adds up what a session sends and answers 552 5.3.4 once the total would pass the cap.",
	"MaxRecipients":  "The most recipients one message may have. The worker answers each RCPT beyond it with 452 4.5.3 Too many recipients.",
	"MaxSmtpErrors":  "Limits the failed commands one SMTP session may make. The worker's sessions count their own 4xx and 5xx replies and hang up once past the limit.",
	"HopCount":       "How many hops a message may have made before it counts as a mail loop. The worker counts the Received headers of mail arriving over SMTP and refuses more than this with 554 5.4.6.",
	"MaxMailObjects": "A debugging limit on how many inbound messages IIS holds at one time. Not used by the worker.",

	// Per-command timeouts.
	"SmtpConnectTimeout":  "How long a new connection may stay silent after the greeting. The worker closes it with 421 4.4.2 if no first command comes in time.",
	"SmtpHeloTimeout":     "How long the client may stay idle after HELO or EHLO. The worker closes the session with 421 4.4.2 when no command follows in time.",
	"SmtpMailFromTimeout": "How long the client may stay idle after MAIL FROM. The worker closes the session with 421 4.4.2 when no command follows in time.",
	"SmtpRcptToTimeout":   "How long the client may stay idle after RCPT TO. The worker closes the session with 421 4.4.2 when no command follows in time.",
	"SmtpDataTimeout":     "How long the client may pause while sending the message after DATA. The worker applies it to each read of the message and closes a stalled session with 421 4.4.2.",
	"SmtpBdatTimeout":     "How long the client may stay idle after BDAT. The worker applies it to the reads of the next chunk or command and closes a stalled session with 421 4.4.2.",
	"SmtpRsetTimeout":     "How long the client may stay idle after RSET. The worker closes the session with 421 4.4.2 when no command follows in time.",
	"SmtpAuthTimeout":     "How long the client may stay idle during AUTH. Not read by the worker: ConnectionTimeout bounds the AUTH exchange.",
	"SmtpSaslTimeout":     "How long the client may stay idle during a SASL exchange after AUTH. Not read by the worker: ConnectionTimeout bounds the AUTH exchange.",
	"SmtpTurnTimeout":     "How long the client may stay idle after TURN. Not read by the worker, which does not offer TURN.",

	// ESMTP commands.
	"SmtpInboundCommandSupportOptions":  "Which ESMTP extensions the virtual server offers to clients. The worker offers DSN, CHUNKING with BDAT, BINARYMIME and 8BITMIME only when their bits are set; ETRN and TURN are never offered.",
	"SmtpOutboundCommandSupportOptions": "Which ESMTP extensions the virtual server uses when it sends. Not used by the worker, whose outbound client goes by what the remote server advertises.",
	"SmtpHeloNoDomain":                  "Reserved for Exchange: whether HELO without a domain is accepted. Not used by the worker, which answers a HELO or EHLO without an argument with 501 5.5.2.",
	"SmtpDomainValidationFlags":         "Whether the domain given in HELO or EHLO is checked for being well formed. Not used by the worker, which accepts any non-empty argument.",
	"EtrnDays":                          "Used by Exchange for ETRN; its meaning is undocumented. Not used by the worker, which does not offer ETRN.",

	// Folders.
	"QueueDirectory":             "The folder where accepted mail waits for delivery. The worker creates it, spools every accepted message there (synced to disk) before it replies 250, and takes up again what it finds there on start.",
	"PickupDirectory":            "A folder whose message files are sent as mail. The worker watches it and queues each file put there, its envelope from x-sender and x-receiver lines or the headers; unreadable files go to Badmail.",
	"SmtpDotStuffPickupDirFiles": "Whether Pickup files are dot-stuffed as SMTP DATA is. When set the worker removes the extra dot of lines that start with one and lets a line of a single dot end the file.",
	"DropDirectory":              "The folder that mail for drop domains is written into as files. The worker uses it for a domain node with SMTP_DROP whose RouteActionString names no folder.",
	"BadMailDirectory":           "The folder for mail that can be neither delivered nor returned. The worker stores such messages there as .BAD, .BDR (the reason) and .BDP (the envelope) files, and unreadable Pickup files too.",
	"MailStoreDirectory":         "Where mail for local domains is stored; Exchange delivered it to its mailbox store instead. The worker writes a copy for each local recipient into that recipient's Maildir under it.",
	"LmtpServer":                 "A local delivery agent to hand mail for local domains to. The worker delivers local mail to it in one LMTP transaction per message (its FullyQualifiedDomainName in LHLO, RemoteTimeout per command).",
	"LocalRecipientsFile":        "The addresses that exist in local domains, standing in for Exchange's directory lookup. The worker reads it on each configuration load and refuses unlisted local recipients at RCPT.",

	// Remote delivery.
	"SmartHostType":              "Whether and when remote mail goes to the smart host. The worker sends through SmartHost always for 2, after direct delivery failed for 1, and (ds2mb's reading) always for 0 when a SmartHost is set.",
	"SmartHost":                  "The host remote mail is forwarded to instead of the recipient domain's MX. The worker tries the hosts listed in turn, on RemoteSmtpPort unless a host names its own port; SmartHostType says when.",
	"RemoteSmtpPort":             "The TCP port used to connect to remote servers. The worker dials MX hosts and smart hosts on it, except a smart host written with its own port.",
	"RemoteSmtpSecurePort":       "The port for SSL connections to remote servers, documented as obsolete. Not used by the worker, which uses opportunistic STARTTLS on RemoteSmtpPort; replicated and kept in the file.",
	"RemoteTimeout":              "How long an outbound session may wait on the remote server. The worker applies it to each command of its outbound SMTP sessions and of LMTP delivery.",
	"MaxOutConnections":          "Caps the simultaneous outbound connections of the virtual server. The worker shares this many connection slots among all its remote delivery lanes; local delivery does not count.",
	"MaxOutConnectionsPerDomain": "Caps the simultaneous outbound connections to one remote destination. The worker runs at most this many connections per delivery lane (one recipient domain, or one set of smart hosts).",
	"MaxBatchedMessages":         "Limits how many messages go over one outbound connection. The worker closes a connection after this many messages and opens another for the rest.",
	"LimitRemoteConnections":     "Whether inbound remote connections are limited. Not used by the worker, which applies MaxConnections whatever this says.",
	"SmtpMaxRemoteQThreads":      "A debugging limit on IIS's remote queue threads. Not used by the worker, whose outbound concurrency follows MaxOutConnections and MaxOutConnectionsPerDomain.",
	"NameResolutionType":         "Which resolver IIS uses for host names (uncached DNS, gethostbyname, or both). Not used by the worker, which always asks DNS itself (ExternalDnsServers or the system's servers).",
	"SmtpUseTcpDns":              "Whether DNS queries go over UDP, TCP, or UDP then TCP. Not used by the worker, whose resolver asks over UDP and again over TCP when an answer is truncated.",
	"ExternalDnsServers":         "The DNS servers the virtual server asks for remote delivery. The worker's outbound delivery resolves MX records and host addresses through them, in turn.",

	// Queue, retries and notifications.
	"SmtpRemoteProgressiveRetry":   "The waits before the first, second, third and later retries of remote delivery. The worker schedules pending remote recipients by it, the last interval repeating, plus up to 10% jitter.",
	"LocalRetryInterval":           "The wait between attempts to deliver local mail again. The worker retries pending local recipients (Maildir, LMTP, drop folder) after it, plus up to 10% jitter.",
	"LocalRetryAttempts":           "Used by Exchange; how it counts local retries is undocumented. Not used by the worker, which retries local mail every LocalRetryInterval until SmtpLocalNDRExpireMinutes.",
	"RemoteRetryAttempts":          "Reserved for Exchange; undocumented. Not used by the worker, which retries remote mail by SmtpRemoteProgressiveRetry until SmtpRemoteNDRExpireMinutes.",
	"RemoteRetryInterval":          "Reserved for Exchange; undocumented. Not used by the worker, which takes remote retry intervals from SmtpRemoteProgressiveRetry.",
	"SmtpRemoteRetryThreshold":     "Reserved for Exchange; undocumented. Not used by the worker.",
	"SmtpLocalDelayExpireMinutes":  "How long local mail may wait before its sender is told it is delayed. The worker sends one delay DSN per recipient pending that long, unless its NOTIFY excludes delays.",
	"SmtpLocalNDRExpireMinutes":    "How long local mail may stay undelivered before it is given up. The worker then fails the recipient with status 4.4.7 and returns an NDR.",
	"SmtpRemoteDelayExpireMinutes": "How long remote mail may wait before its sender is told it is delayed. The worker sends one delay DSN per recipient pending that long, unless its NOTIFY excludes delays.",
	"SmtpRemoteNDRExpireMinutes":   "How long remote mail may stay undelivered before it is given up. The worker then fails the recipient with status 4.4.7 and returns an NDR.",
	"SmtpDSNLanguageID":            "The language of the text of generated DSNs. Not used by the worker, which writes its DSNs in English.",
	"SendNdrTo":                    "An address that gets a copy of every NDR. The worker adds it as a second recipient of each failure DSN it sends, unless it is the sender itself.",
	"SendBadTo":                    "Who is told when a message is put in Badmail. The worker sends this address a notice naming the message, its sender, the folder and the reason.",
	"PostmasterEmail":              "Reserved for Exchange: the postmaster's address. The worker writes its DSNs and Badmail notices from it, else from postmaster at the masquerade domain or FullyQualifiedDomainName.",
	"PostmasterName":               "Reserved for Exchange: the postmaster's name. Not used by the worker, which takes its postmaster from PostmasterEmail.",

	// Identity and masquerading.
	"FullyQualifiedDomainName": "The host name the virtual server calls itself. The worker puts it in its banner, HELO and EHLO replies, outbound EHLO, the Received headers it adds and its DSNs.",
	"MasqueradeDomain":         "A domain for the sender address of outgoing mail. With DoMasquerade the worker swaps it in for a local-domain sender's domain on remote delivery; it also names the default postmaster.",
	"DoMasquerade":             "Switches masquerading on. The worker applies MasqueradeDomain only when this is set.",
	"EnableReverseDnsLookup":   "Whether the client's address is looked up in reverse DNS. The worker writes the PTR name into the Received header it adds, marked unverified when it does not resolve back, or RDNS failed.",
	"SmtpServer":               "The SMTP server that NNTP sends mail for newsgroup moderators through. Not used by the SMTP worker.",

	// Exchange-reserved lists and flags.
	"LocalDomains":          "Reserved for Exchange; undocumented. Not used by the worker, which takes its local domains from Domain nodes with SMTP_ALIAS.",
	"DomainRouting":         "Reserved for Exchange; undocumented. Not used by the worker, which routes by the Domain nodes' RouteAction.",
	"SmtpIpRestrictionFlag": "Reserved for Exchange; undocumented. Not used by the worker.",
	"RoutingSources":        "The obsolete list of IIS's LDAP routing sources. Not used by the worker; known so that a file holding it validates.",

	// Domain nodes.
	"RouteAction":       "How mail for a domain node's domain is handled. ds2mb writes SMTP_ALIAS, SMTP_DOMAIN_RELAY or SMTP_SMARTHOST from policies and connectors; the worker acts on those and SMTP_DROP, on domain nodes only.",
	"RouteActionString": "The target of a domain node's RouteAction. The worker relays SMTP_SMARTHOST mail to the hosts it lists, in turn, and writes SMTP_DROP mail as files into the folder it names.",
	"RouteUserName":     "The account used to authenticate to the remote server of a domain or connector. Not used by the worker, whose outbound client never authenticates.",
	"RoutePassword":     "The password of RouteUserName. Not used by the worker; mbctl never prints it in clear.",
	"AuthTurnList":      "The accounts allowed to collect the domain's mail with TURN or ATRN. Not used by the worker, which does not offer TURN or ATRN.",
	"CSideEtrnDomains":  "The domains this server names when it issues ETRN as a client for the domain. Not used by the worker, which never sends ETRN.",

	// RoutingSources node (obsolete LDAP routing).
	"SmtpRoutingTableType":  "Obsolete: the kind of routing table (an LDAP directory) the SMTP service looked recipients up in. Not used by the worker.",
	"SmtpDsDataDirectory":   "Obsolete: the data folder of the LDAP routing source. Not used by the worker.",
	"SmtpDsDefaultMailRoot": "Obsolete: the default mail root of the LDAP routing source. Not used by the worker.",
	"SmtpDsAccount":         "Obsolete: the account that binds to the LDAP routing source's server. Not used by the worker.",
	"SmtpDsDomain":          "Obsolete: the domain of the account that authenticates to the LDAP routing source's server. Not used by the worker.",
	"SmtpDsUseCat":          "Obsolete: whether the categorizer uses the LDAP routing source. Not used by the worker.",
	"SmtpDsPort":            "Obsolete: the port of the LDAP routing source's server. Not used by the worker.",
	"SmtpDsFlags":           "Obsolete: flags of the connection to the LDAP routing source. Not used by the worker.",

	// Event bindings.
	"DisplayName": "The event binding's name for people. The worker names the binding by it (else by its ID) in its log and its reports of sink failures.",
	"SinkClass":   "Which sink the event binding runs. The worker creates a sink of that registered class with the binding's SinkProperties; an unknown class or bad properties leave the binding out, with a note.",
	"Enabled":     "Whether the event binding is active. The worker keeps a disabled binding loaded but never fires it.",
	"MaxFirings":  "How many times the event binding may fire. The worker stops firing it after that many times, counting across configuration reloads.",
	"Priority":    "The order in which the bindings of one event run. The worker runs lower values first, ties by binding ID, until a sink answers Stop.",
	"Rule":        "A filter on the HELO name, MAIL FROM and RCPT TO addresses that decides when the binding fires. The worker fires the binding only for events the rule matches; no rule matches every event.",
}

// Description says in a sentence or two what the property does and what ds2mb's SMTP worker does with it.
func (p *Property) Description() string { return descriptions[p.Name] }
