// Package config turns one MetaBase.xml tree into the SMTP worker's immutable
// runtime configuration: one VirtualServer per /LM/SmtpSvc/<n> node, every
// setting resolved to its effective value (the node's own, else the service's
// when the property inherits, else the catalogue default), domains read by
// their RouteAction flags, the relay list decoded, TLS certificates loaded.
//
// A domain node that sets RelayIpList or RelayForAuth itself (REFERENCE.md
// §1.5) gets Domain.RelayOverride and the effective values at its own
// Location (the node's, else its virtual server's, the service's, the
// default), which package policy uses for that domain instead of the
// virtual server's. Settings read but not applied as written (a
// RelayIpList not in the single-host grant layout, which grants nobody)
// are listed in VirtualServer.Notes for the log and status.
//
// IPSecurity (connection control) is read with the same single-host grant
// layout as RelayIpList: when it decodes, only the hosts it lists may
// connect (VirtualServer.ConnectionAllowed). A blob in any other layout is
// ignored, with a note, rather than read as "deny everyone": IIS's
// grant/deny mode bits are unsourced (REFERENCE.md §4), and one bad blob
// replicated from the directory must not lock every client out. (An empty
// list that does decode grants nobody: it says so. The layout holds IPv4
// hosts only, so under connection control an IPv6 client is refused.) MaxSmtpErrors 0 and
// 4294967295 both mean unlimited.
//
// SmtpConnectTimeout, SmtpHeloTimeout, SmtpMailFromTimeout,
// SmtpRcptToTimeout, SmtpDataTimeout, SmtpBdatTimeout and SmtpRsetTimeout
// (seconds; 0 = ConnectionTimeout) become VirtualServer.Timeouts. The
// other Smtp…Timeout properties (AUTH, SASL, TURN) are not read, their
// split of the AUTH exchange being unsourced: ConnectionTimeout applies
// there.
//
// SecureBindings (implicit TLS) need the virtual server's certificate
// (SslCertificateFile, SslKeyFile), and an address may not be in both
// ServerBindings and SecureBindings: Build refuses either at
// "Location: SecureBindings".
//
// Build refuses a tree whole: its error lists every problem as
// "Location: property: reason", and nothing of a refused tree is used.
//
// Directory values (QueueDirectory, LogFileDirectory, DropDirectory, …) may be
// written in IIS's Windows terms: backslashes become slashes and a drive
// letter ("C:") is dropped; a relative path is resolved against
// Options.BaseDir. An empty QueueDirectory, PickupDirectory,
// BadMailDirectory or MailStoreDirectory means "<BaseDir>/Mailroot/vsi
// <n>/Queue" (Pickup, Badmail, Mailbox), Exchange's layout. Build creates the
// queue folder (and checks it is a folder) so that a worker never accepts a
// configuration it cannot spool under.
package config

import (
	"cmp"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ds2mb/ds2mb/metabase"
	"github.com/ds2mb/ds2mb/schema"
	"github.com/ds2mb/ds2mb/smtpsvc/events"
)

// Config is one immutable runtime configuration built from one MetaBase.xml.
type Config struct {
	Version uint64           // metabase ChangeNumber
	Servers []*VirtualServer // by Instance, ascending
}

// Server returns the virtual server with the given instance number, or nil.
func (c *Config) Server(n int) *VirtualServer {
	for _, vs := range c.Servers {
		if vs.Instance == n {
			return vs
		}
	}
	return nil
}

// Options says how paths and names the metabase leaves open are resolved.
type Options struct {
	BaseDir  string // relative QueueDirectory etc. resolve against it; "" = current directory
	Hostname string // FullyQualifiedDomainName when the metabase has none; "" = os.Hostname()
	// Minute is how long one minute of the metabase's minute-valued
	// delivery settings (retry intervals, delay and expiry times) lasts;
	// 0 = time.Minute. Tests shorten it to run a day's schedule in seconds.
	Minute time.Duration
}

// Commands are the ESMTP extensions a virtual server offers inbound, from
// SmtpInboundCommandSupportOptions (REFERENCE.md §1.4; bits whose meaning is
// unsourced are ignored, and the verbs they might switch stay on).
type Commands struct {
	DSN        bool // 0x40
	Chunking   bool // 0x100000: CHUNKING and BDAT
	BinaryMIME bool // 0x200000 (needs Chunking)
	EightBit   bool // 0x400000: 8BITMIME
}

// CommandTimeouts are inactivity timeouts that follow particular commands
// (REFERENCE.md §1.3, "inactivity timeout after …"), from the Smtp…Timeout
// properties in seconds; 0 (and 4294967295) = ConnectionTimeout applies.
type CommandTimeouts struct {
	Connect  time.Duration // SmtpConnectTimeout: from the greeting to the first command
	Helo     time.Duration // SmtpHeloTimeout: after HELO/EHLO
	MailFrom time.Duration // SmtpMailFromTimeout: after MAIL FROM
	RcptTo   time.Duration // SmtpRcptToTimeout: after RCPT TO
	Data     time.Duration // SmtpDataTimeout: between reads of the message after DATA
	Bdat     time.Duration // SmtpBdatTimeout: after BDAT (the next chunk or command)
	Rset     time.Duration // SmtpRsetTimeout: after RSET
}

// Delivery is what the queue manager needs of a virtual server to deliver
// its queued mail (REFERENCE.md §1.3, §7), with minutes already turned into
// durations (Options.Minute).
type Delivery struct {
	RemoteRetry  []time.Duration // SmtpRemoteProgressiveRetry: wait before the 2nd, 3rd, … attempt; the last repeats
	LocalRetry   time.Duration   // LocalRetryInterval: wait between local delivery attempts
	RemoteDelay  time.Duration   // SmtpRemoteDelayExpireMinutes: a delay DSN once a remote recipient waits this long
	RemoteExpire time.Duration   // SmtpRemoteNDRExpireMinutes: an NDR once a remote recipient waits this long
	LocalDelay   time.Duration   // SmtpLocalDelayExpireMinutes
	LocalExpire  time.Duration   // SmtpLocalNDRExpireMinutes

	// SmartHosts (SmartHost) take remote mail: always when SmartHostType
	// is 2 or 0 (0 with a SmartHost set is read as "always": a smart host
	// nobody uses would be a surprise), after direct delivery failed when
	// it is 1. Empty: DNS MX only.
	SmartHosts    []string
	SmartHostType int
	RemotePort    int           // RemoteSmtpPort
	RemoteTimeout time.Duration // RemoteTimeout: per command of an outbound session

	MaxOut          int // MaxOutConnections; 0 = no limit
	MaxOutPerDomain int // MaxOutConnectionsPerDomain; 0 = no limit
	MaxBatched      int // MaxBatchedMessages: messages per outbound connection; 0 = no limit

	Masquerade string // MasqueradeDomain, when DoMasquerade is set: replaces the domain of MAIL FROM on remote delivery
	// Postmaster is the From of the DSNs this server writes:
	// PostmasterEmail, else postmaster@<MasqueradeDomain or FQDN>.
	Postmaster string
	SendNdrTo  string // a copy of every NDR
	SendBadTo  string // a notice of every message put in Badmail

	DNSServers []string // ExternalDnsServers (host:port); empty = the system's
	MailStore  string   // MailStoreDirectory (resolved), where local domains' Maildirs live
	LMTP       string   // LmtpServer: "unix:/path" or "host:port"; set = local mail goes over LMTP
	// LocalRecipients, when LocalRecipientsFile is set, are the addresses
	// (lower case) and whole domains ("@example.com") of local domains that
	// exist; nil = every address of a local domain exists.
	LocalRecipients map[string]bool `json:",omitempty"`
}

// LocalRecipientExists reports whether an address of a local domain is a
// known recipient (always, when no LocalRecipientsFile is set).
func (vs *VirtualServer) LocalRecipientExists(addr string) bool {
	l := vs.Delivery.LocalRecipients
	if l == nil {
		return true
	}
	addr = strings.ToLower(addr)
	if l[addr] {
		return true
	}
	at := strings.LastIndexByte(addr, '@')
	return at >= 0 && l[addr[at:]]
}

// Domain is one /LM/SmtpSvc/<n>/Domain/<name> node, read by its RouteAction
// flags.
type Domain struct {
	Name      string // lower case, without a leading "*."
	Wildcard  bool   // the node was "*.name": it matches every subdomain of Name (not Name itself)
	Local     bool   // SMTP_ALIAS: mail for it is ours
	Relay     bool   // SMTP_DOMAIN_RELAY: mail for it may be relayed by anyone
	SmartHost string // SMTP_SMARTHOST: RouteActionString
	Drop      string // SMTP_DROP: RouteActionString (resolved folder)
	Action    uint32 // the raw RouteAction

	// RelayOverride: the node sets RelayIpList or RelayForAuth itself
	// (REFERENCE.md §1.5, per-domain relay overrides). Then RelayIPs,
	// RelayIPNote and RelayForAuth hold the effective values at the node
	// (the node's own, else its virtual server's, the service's, the
	// default), and they, not the virtual server's, decide relay to this
	// domain. Without an override they are empty and the virtual server's
	// values apply.
	RelayOverride bool
	RelayIPs      []netip.Addr `json:",omitempty"`
	RelayIPNote   string       `json:",omitempty"`
	RelayForAuth  bool         `json:",omitempty"`
}

// RelayGranted reports whether the domain node's own RelayIpList (or the one
// it inherits) grants relay to a client address; only meaningful when
// RelayOverride is set.
func (d *Domain) RelayGranted(ip netip.Addr) bool {
	return granted(d.RelayIPs, ip)
}

// VirtualServer is everything one virtual server needs, with inheritance
// applied. It is immutable once built.
type VirtualServer struct {
	Instance       int
	Location       string // /LM/SmtpSvc/<n>
	AutoStart      bool
	Bindings       []schema.Binding
	SecureBindings []schema.Binding // implicit TLS ("SMTPS", RFC 8314): TLS from the first byte; needs TLSCertificate
	Fingerprint    string           // canonical form of every setting; equal => nothing changed
	MaxConnections int              // 0 = unlimited

	FQDN              string        // FullyQualifiedDomainName, else Options.Hostname
	ConnectionTimeout time.Duration // idle timeout of a session
	MaxMessageSize    int64         // bytes; 0 = no limit
	MaxSessionSize    int64         // bytes of message data per session; 0 = no limit
	MaxRecipients     int           // per message; 0 = no limit
	HopCount          int           // Received headers allowed; more is a loop
	ReverseDNS        bool          // EnableReverseDnsLookup
	Commands          Commands

	Domains      []Domain     // sorted by name
	RelayIPs     []netip.Addr // hosts granted relay by RelayIpList
	RelayIPNote  string       // why relay by IP is denied although RelayIpList is set ("" = decoded fine)
	RelayForAuth bool         // an authenticated client may relay

	// ConnectionControl: IPSecurity is set and decodes as a single-host
	// grant list; then only the hosts in ConnectionGrant may connect. An
	// IPSecurity blob in any other layout is ignored (with a note): IIS's
	// grant/deny mode bits are unsourced, and a blob misread as "deny all"
	// would lock every client out.
	ConnectionControl bool
	ConnectionGrant   []netip.Addr `json:",omitempty"`
	// MaxSmtpErrors: 4xx/5xx replies a session may get before it is
	// closed with 421 4.7.0; 0 = unlimited (MaxSmtpErrors 0 or 4294967295).
	MaxSmtpErrors int
	// Timeouts are the inactivity timeouts after particular commands; 0 =
	// ConnectionTimeout.
	Timeouts CommandTimeouts

	// Notes are settings read but not applied as written, one line each
	// ("Location: what and why"), for the log and status: a RelayIpList or
	// IPSecurity blob that is not in the single-host grant layout.
	Notes []string `json:",omitempty"`

	AuthBasic bool // AuthFlags has AuthBasic: AUTH PLAIN and LOGIN are offered
	// AuthAnonymous: AuthFlags has AuthAnonymous, so clients that did not
	// authenticate may send mail; without it MAIL needs AUTH first.
	AuthAnonymous bool
	RequireTLS    bool // AccessSSLFlags has AccessSSL: STARTTLS is required before MAIL
	TLSCertFile   string
	TLSKeyFile    string
	// TLSCertificate is the parsed certificate pair, nil when none is
	// configured (then STARTTLS is not offered).
	TLSCertificate *tls.Certificate `json:"-"`

	QueueDir  string // where accepted mail is spooled (exists after Build)
	PickupDir string
	// PickupDotStuffed: SmtpDotStuffPickupDirFiles, files in Pickup are
	// dot-stuffed as in SMTP DATA.
	PickupDotStuffed bool
	DropDir          string
	BadMailDir       string
	LogEnabled       bool   // LogType = 1 and LogFileDirectory set
	LogDir           string // LogFileDirectory (resolved); the log goes in LogDir/SMTPSVC<n>/
	LogFilePeriod    int    // 0 size, 1 daily, 2 weekly, 3 monthly, 4 hourly

	Delivery Delivery // how queued mail leaves this virtual server

	// EventBindings are the event bindings under …/EventManager, by
	// Location; the worker makes them a dispatcher with its sink classes.
	EventBindings []events.Binding `json:",omitempty"`

	exact map[string]int // domain name -> index in Domains, non-wildcard
	wild  map[string]int // wildcard base name -> index in Domains
}

// LookupDomain returns the domain node that governs a recipient domain: an
// exact node first, else the nearest wildcard node "*.parent" of one of its
// parents. ok is false when no node matches.
func (vs *VirtualServer) LookupDomain(domain string) (d *Domain, ok bool) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if i, has := vs.exact[domain]; has {
		return &vs.Domains[i], true
	}
	for rest := domain; ; {
		dot := strings.IndexByte(rest, '.')
		if dot < 0 {
			return nil, false
		}
		rest = rest[dot+1:]
		if i, has := vs.wild[rest]; has {
			return &vs.Domains[i], true
		}
	}
}

// ConnectionAllowed reports whether IPSecurity lets a client address
// connect: always when connection control is off.
func (vs *VirtualServer) ConnectionAllowed(ip netip.Addr) bool {
	return !vs.ConnectionControl || granted(vs.ConnectionGrant, ip)
}

// RelayGranted reports whether RelayIpList grants relay to a client address.
func (vs *VirtualServer) RelayGranted(ip netip.Addr) bool {
	return granted(vs.RelayIPs, ip)
}

func granted(list []netip.Addr, ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, g := range list {
		if g == ip {
			return true
		}
	}
	return false
}

// Build loads the whole tree into a Config, or refuses it whole: the error
// lists every problem as "Location: property: reason" (it runs Tree.Validate
// first). The error is a metabase.ValidationError.
func Build(t *metabase.Tree, o Options) (*Config, error) {
	if probs := t.Validate(); len(probs) > 0 {
		return nil, probs
	}
	if o.Hostname == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		o.Hostname = h
	}
	b := &builder{t: t, o: o}
	cfg := &Config{Version: t.Version}
	for _, n := range t.Nodes() {
		place, err := schema.Classify(n.Location)
		if err != nil || place.Kind != schema.NodeServer {
			continue
		}
		if vs := b.server(place.Instance, n.Location); vs != nil {
			cfg.Servers = append(cfg.Servers, vs)
		}
	}
	slices.SortFunc(cfg.Servers, func(a, b *VirtualServer) int { return cmp.Compare(a.Instance, b.Instance) })
	if len(b.probs) > 0 {
		return nil, b.probs
	}
	return cfg, nil
}

type builder struct {
	t     *metabase.Tree
	o     Options
	probs metabase.ValidationError
}

func (b *builder) add(loc, prop, format string, args ...any) {
	b.probs = append(b.probs, metabase.Problem{Location: loc, Property: prop, Reason: fmt.Sprintf(format, args...)})
}

// value returns the effective value of a property at loc.
func (b *builder) value(loc, name string) (schema.Value, bool) {
	v, _, ok, err := b.t.Effective(loc, name)
	if err != nil {
		b.add(loc, name, "%v", trimLoc(err, loc, name))
		return v, false
	}
	return v, ok
}

func trimLoc(err error, loc, name string) string {
	s := err.Error()
	s = strings.TrimPrefix(s, loc+": ")
	s = strings.TrimPrefix(s, schema.ServiceLocation+": ")
	return strings.TrimPrefix(s, name+": ")
}

func (b *builder) dword(loc, name string) uint32 {
	v, _ := b.value(loc, name)
	return v.DWord
}

func (b *builder) str(loc, name string) string {
	v, _ := b.value(loc, name)
	return strings.TrimSpace(v.Str)
}

// limit reads a byte or count limit where 0 and 0xFFFFFFFF mean none.
func (b *builder) limit(loc, name string) int64 {
	n := b.dword(loc, name)
	if n == 0xFFFFFFFF {
		return 0
	}
	return int64(n)
}

// path resolves a directory value written in IIS or Unix terms.
func (b *builder) path(p string) string {
	p = strings.TrimSpace(p)
	if p == "" {
		return ""
	}
	p = strings.ReplaceAll(p, `\`, "/")
	if len(p) >= 2 && p[1] == ':' && (p[0]|0x20) >= 'a' && (p[0]|0x20) <= 'z' {
		p = strings.TrimLeft(p[2:], "/")
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(b.o.BaseDir, p)
	}
	return filepath.Clean(p)
}

func (b *builder) server(n int, loc string) *VirtualServer {
	before := len(b.probs)
	vs := &VirtualServer{Instance: n, Location: loc}
	vs.AutoStart = b.dword(loc, "ServerAutoStart") != 0

	if v, ok := b.value(loc, "ServerBindings"); ok {
		bs, err := schema.ParseBindings(v.Multi)
		if err != nil {
			b.add(loc, "ServerBindings", "%v", err)
		}
		vs.Bindings = bs
	}
	if v, ok := b.value(loc, "SecureBindings"); ok {
		for _, s := range v.Multi {
			if strings.TrimSpace(s) == "" {
				continue
			}
			sb, err := schema.ParseSecureBinding(s)
			if err != nil {
				b.add(loc, "SecureBindings", "%v", err)
				continue
			}
			vs.SecureBindings = append(vs.SecureBindings, sb)
		}
	}
	mc := b.dword(loc, "MaxConnections")
	if mc != 0 && mc < 2000000000 && uint64(mc) <= uint64(int(^uint(0)>>1)) {
		vs.MaxConnections = int(mc)
	}

	vs.FQDN = b.str(loc, "FullyQualifiedDomainName")
	if vs.FQDN == "" {
		vs.FQDN = b.o.Hostname
	}
	ct := b.dword(loc, "ConnectionTimeout")
	if ct == 0 || ct == 0xFFFFFFFF {
		ct = 600
	}
	vs.ConnectionTimeout = time.Duration(ct) * time.Second
	vs.MaxMessageSize = b.limit(loc, "MaxMessageSize")
	vs.MaxSessionSize = b.limit(loc, "MaxSessionSize")
	vs.MaxRecipients = int(b.limit(loc, "MaxRecipients"))
	vs.HopCount = int(b.dword(loc, "HopCount"))
	vs.ReverseDNS = b.dword(loc, "EnableReverseDnsLookup") != 0
	cmds := b.dword(loc, "SmtpInboundCommandSupportOptions")
	vs.Commands = Commands{
		DSN:        cmds&schema.CmdDSN != 0,
		Chunking:   cmds&schema.CmdChunking != 0,
		BinaryMIME: cmds&schema.CmdBinaryMIME != 0 && cmds&schema.CmdChunking != 0,
		EightBit:   cmds&schema.Cmd8BitMIME != 0,
	}

	vs.RelayIPs, vs.RelayIPNote = b.relayIPs(loc)
	if vs.RelayIPNote != "" {
		vs.Notes = append(vs.Notes, loc+": "+vs.RelayIPNote)
	}
	vs.RelayForAuth = b.dword(loc, "RelayForAuth") != 0
	if v, ok := b.value(loc, "IPSecurity"); ok && len(v.Bin) > 0 {
		l, err := schema.DecodeIPSecList(v.Bin)
		if err != nil {
			vs.Notes = append(vs.Notes, loc+": IPSecurity not in the single-host grant layout, ignored (every client may connect): "+err.Error())
		} else {
			vs.ConnectionControl, vs.ConnectionGrant = true, l.Grant
		}
	}
	vs.MaxSmtpErrors = int(min(b.limit(loc, "MaxSmtpErrors"), 1<<31-1))
	secs := func(name string) time.Duration { return time.Duration(b.limit(loc, name)) * time.Second }
	vs.Timeouts = CommandTimeouts{Connect: secs("SmtpConnectTimeout"), Helo: secs("SmtpHeloTimeout"),
		MailFrom: secs("SmtpMailFromTimeout"), RcptTo: secs("SmtpRcptToTimeout"), Data: secs("SmtpDataTimeout"),
		Bdat: secs("SmtpBdatTimeout"), Rset: secs("SmtpRsetTimeout")}
	auth := b.dword(loc, "AuthFlags")
	vs.AuthBasic, vs.AuthAnonymous = auth&schema.AuthBasic != 0, auth&schema.AuthAnonymous != 0
	vs.RequireTLS = b.dword(loc, "AccessSSLFlags")&schema.AccessSSL != 0

	vs.TLSCertFile = b.path(b.str(loc, "SslCertificateFile"))
	vs.TLSKeyFile = b.path(b.str(loc, "SslKeyFile"))
	certSum := ""
	switch {
	case vs.TLSCertFile != "" && vs.TLSKeyFile != "":
		certPEM, err1 := os.ReadFile(vs.TLSCertFile)
		keyPEM, err2 := os.ReadFile(vs.TLSKeyFile)
		if err := errors.Join(err1, err2); err != nil {
			b.add(loc, "SslCertificateFile", "cannot read the certificate or key: %v", err)
			break
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			b.add(loc, "SslCertificateFile", "certificate and key (SslKeyFile) do not load: %v", err)
			break
		}
		vs.TLSCertificate = &cert
		h := sha256.New()
		h.Write(certPEM)
		h.Write(keyPEM)
		certSum = hex.EncodeToString(h.Sum(nil))
	case vs.TLSCertFile != "":
		b.add(loc, "SslKeyFile", "SslCertificateFile is set but SslKeyFile is not")
	case vs.TLSKeyFile != "":
		b.add(loc, "SslCertificateFile", "SslKeyFile is set but SslCertificateFile is not")
	}
	if len(vs.SecureBindings) > 0 && vs.TLSCertificate == nil && len(b.probs) == before {
		b.add(loc, "SecureBindings", "secure bindings serve implicit TLS but no certificate is configured (SslCertificateFile, SslKeyFile)")
	}
	for _, sb := range vs.SecureBindings {
		if slices.ContainsFunc(vs.Bindings, func(p schema.Binding) bool { return p.Addr() == sb.Addr() }) {
			b.add(loc, "SecureBindings", "%s is also in ServerBindings: an address is either plain or secure", sb.Addr())
		}
	}
	if vs.RequireTLS && vs.TLSCertificate == nil && len(b.probs) == before {
		b.add(loc, "AccessSSLFlags", "AccessSSL requires TLS but no certificate is configured (SslCertificateFile, SslKeyFile)")
	}

	vs.QueueDir = b.path(b.str(loc, "QueueDirectory"))
	if vs.QueueDir == "" {
		vs.QueueDir = b.path(fmt.Sprintf("Mailroot/vsi %d/Queue", n))
	}
	if err := os.MkdirAll(vs.QueueDir, 0o750); err != nil {
		b.add(loc, "QueueDirectory", "cannot create the queue folder: %v", err)
	} else if fi, err := os.Stat(vs.QueueDir); err != nil || !fi.IsDir() {
		b.add(loc, "QueueDirectory", "%s is not a folder", vs.QueueDir)
	}
	vs.PickupDir = b.path(b.str(loc, "PickupDirectory"))
	if vs.PickupDir == "" {
		vs.PickupDir = b.path(fmt.Sprintf("Mailroot/vsi %d/Pickup", n))
	}
	vs.PickupDotStuffed = b.dword(loc, "SmtpDotStuffPickupDirFiles") != 0
	vs.DropDir = b.path(b.str(loc, "DropDirectory"))
	vs.BadMailDir = b.path(b.str(loc, "BadMailDirectory"))
	if vs.BadMailDir == "" {
		vs.BadMailDir = b.path(fmt.Sprintf("Mailroot/vsi %d/Badmail", n))
	}
	vs.LogDir = b.path(b.str(loc, "LogFileDirectory"))
	vs.LogEnabled = b.dword(loc, "LogType") == 1 && vs.LogDir != ""
	vs.LogFilePeriod = int(b.dword(loc, "LogFilePeriod"))

	b.delivery(vs)
	b.domains(vs)
	b.eventBindings(vs)
	if len(b.probs) > before {
		return nil
	}
	vs.Fingerprint = fingerprint(vs, certSum)
	return vs
}

// delivery reads the settings of queued mail's delivery.
func (b *builder) delivery(vs *VirtualServer) {
	loc := vs.Location
	minute := b.o.Minute
	if minute <= 0 {
		minute = time.Minute
	}
	mins := func(name string) time.Duration { return time.Duration(b.dword(loc, name)) * minute }
	d := &vs.Delivery
	if list, err := schema.ParseRetryList(b.str(loc, "SmtpRemoteProgressiveRetry")); err == nil {
		for _, m := range list {
			d.RemoteRetry = append(d.RemoteRetry, time.Duration(m)*minute)
		}
	} else {
		b.add(loc, "SmtpRemoteProgressiveRetry", "%v", err)
	}
	d.LocalRetry = max(mins("LocalRetryInterval"), minute/60)
	d.RemoteDelay, d.RemoteExpire = mins("SmtpRemoteDelayExpireMinutes"), mins("SmtpRemoteNDRExpireMinutes")
	d.LocalDelay, d.LocalExpire = mins("SmtpLocalDelayExpireMinutes"), mins("SmtpLocalNDRExpireMinutes")
	if sh := b.str(loc, "SmartHost"); sh != "" {
		hosts, err := schema.ParseSmartHost(sh)
		if err != nil {
			b.add(loc, "SmartHost", "%v", err)
		}
		for _, h := range hosts {
			d.SmartHosts = append(d.SmartHosts, h.String())
		}
	}
	d.SmartHostType = int(b.dword(loc, "SmartHostType"))
	d.RemotePort = int(b.dword(loc, "RemoteSmtpPort"))
	rt := b.dword(loc, "RemoteTimeout")
	if rt == 0 || rt == 0xFFFFFFFF {
		rt = 600
	}
	d.RemoteTimeout = time.Duration(rt) * time.Second
	d.MaxOut = int(min(b.limit(loc, "MaxOutConnections"), 1<<31-1))
	d.MaxOutPerDomain = int(min(b.limit(loc, "MaxOutConnectionsPerDomain"), 1<<31-1))
	d.MaxBatched = int(min(b.limit(loc, "MaxBatchedMessages"), 1<<31-1))
	if b.dword(loc, "DoMasquerade") != 0 {
		d.Masquerade = strings.ToLower(b.str(loc, "MasqueradeDomain"))
	}
	d.Postmaster = b.str(loc, "PostmasterEmail")
	switch {
	case d.Postmaster == "" && d.Masquerade != "":
		d.Postmaster = "postmaster@" + d.Masquerade
	case d.Postmaster == "":
		d.Postmaster = "postmaster@" + vs.FQDN
	case !strings.Contains(d.Postmaster, "@"):
		d.Postmaster += "@" + vs.FQDN
	}
	d.SendNdrTo = b.address(loc, "SendNdrTo", vs.FQDN)
	d.SendBadTo = b.address(loc, "SendBadTo", vs.FQDN)
	for _, s := range strings.FieldsFunc(b.str(loc, "ExternalDnsServers"), func(r rune) bool { return r == ' ' || r == ',' || r == ';' }) {
		if _, _, err := net.SplitHostPort(s); err != nil {
			if ip, perr := netip.ParseAddr(strings.Trim(s, "[]")); perr == nil {
				s = netip.AddrPortFrom(ip, 53).String()
			} else {
				s = net.JoinHostPort(s, "53")
			}
		}
		d.DNSServers = append(d.DNSServers, s)
	}
	d.MailStore = b.path(b.str(loc, "MailStoreDirectory"))
	if d.MailStore == "" {
		d.MailStore = b.path(fmt.Sprintf("Mailroot/vsi %d/Mailbox", vs.Instance))
	}
	d.LMTP = b.str(loc, "LmtpServer")
	if d.LMTP != "" && !strings.HasPrefix(d.LMTP, "unix:") {
		if _, _, err := net.SplitHostPort(d.LMTP); err != nil {
			b.add(loc, "LmtpServer", "want unix:/path/to/socket or host:port, not %q", d.LMTP)
		}
	}
	if f := b.path(b.str(loc, "LocalRecipientsFile")); f != "" {
		l, err := readRecipients(f)
		if err != nil {
			b.add(loc, "LocalRecipientsFile", "%v", err)
		}
		d.LocalRecipients = l
	}
}

// address reads an address property; a bare local part gets @fqdn.
func (b *builder) address(loc, name, fqdn string) string {
	a := b.str(loc, name)
	if a != "" && !strings.Contains(a, "@") {
		a += "@" + fqdn
	}
	return a
}

// readRecipients reads a LocalRecipientsFile: one address or "@domain" per
// line; blank lines and lines starting with '#' are skipped.
func readRecipients(path string) (map[string]bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the recipient list: %v", err)
	}
	out := map[string]bool{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		at := strings.LastIndexByte(line, '@')
		if at < 0 || at == len(line)-1 || strings.ContainsAny(line, " \t<>") {
			return nil, fmt.Errorf("%s:%d: %q is not an address or @domain", path, i+1, line)
		}
		out[strings.ToLower(line)] = true
	}
	return out, nil
}

// domains reads the virtual server's domain nodes.
func (b *builder) domains(vs *VirtualServer) {
	vs.exact = map[string]int{}
	vs.wild = map[string]int{}
	for _, n := range b.t.Below(vs.Location + "/Domain") {
		place, err := schema.Classify(n.Location)
		if err != nil || place.Kind != schema.NodeDomain {
			continue
		}
		d := Domain{Name: place.Domain}
		if rest, ok := strings.CutPrefix(d.Name, "*."); ok {
			d.Name, d.Wildcard = rest, true
		}
		d.Action = b.own(n, "RouteAction").DWord
		target := strings.TrimSpace(b.own(n, "RouteActionString").Str)
		d.Local = d.Action&schema.RouteAlias != 0
		d.Relay = d.Action&schema.RouteDomainRelay != 0
		if d.Action&schema.RouteSmartHost != 0 {
			if target == "" {
				b.add(n.Location, "RouteActionString", "SMTP_SMARTHOST needs a smart host in RouteActionString")
			}
			d.SmartHost = target
		}
		if d.Action&schema.RouteDrop != 0 {
			d.Drop = b.path(target)
			if d.Drop == "" {
				d.Drop = vs.DropDir
			}
			if d.Drop == "" {
				b.add(n.Location, "RouteActionString", "SMTP_DROP needs a folder: RouteActionString, or the virtual server's DropDirectory")
			}
		}
		_, ownIPs := n.Get("RelayIpList")
		_, ownAuth := n.Get("RelayForAuth")
		if ownIPs || ownAuth {
			d.RelayOverride = true
			d.RelayIPs, d.RelayIPNote = b.relayIPs(n.Location)
			d.RelayForAuth = b.dword(n.Location, "RelayForAuth") != 0
			if d.RelayIPNote != "" {
				vs.Notes = append(vs.Notes, n.Location+": "+d.RelayIPNote)
			}
		}
		vs.Domains = append(vs.Domains, d)
	}
	slices.SortFunc(vs.Domains, func(a, b Domain) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), boolCmp(a.Wildcard, b.Wildcard))
	})
	for i, d := range vs.Domains {
		if d.Wildcard {
			vs.wild[d.Name] = i
		} else {
			vs.exact[d.Name] = i
		}
	}
}

// eventBindings reads the virtual server's event bindings
// (REFERENCE.md §5.7): each …/Bindings/{ID} node with its SourceProperties
// (Priority, Rule) and SinkProperties children.
func (b *builder) eventBindings(vs *VirtualServer) {
	for _, n := range b.t.Below(vs.Location + "/EventManager") {
		place, err := schema.Classify(n.Location)
		if err != nil || place.Kind != schema.NodeBinding {
			continue
		}
		ev, ok := events.Lookup(place.Event)
		if !ok {
			b.add(n.Location, "", "unknown event type %s", place.Event)
			continue
		}
		eb := events.Binding{Location: n.Location, Event: ev, ID: strings.ToUpper(place.Binding),
			DisplayName: b.own(n, "DisplayName").Str, SinkClass: strings.TrimSpace(b.own(n, "SinkClass").Str),
			Enabled: b.own(n, "Enabled").DWord != 0, MaxFirings: int(b.own(n, "MaxFirings").DWord),
			Priority: schema.DefaultPriority, Props: map[string]string{}}
		if eb.SinkClass == "" {
			b.add(n.Location, "SinkClass", "a binding needs a sink class")
		}
		if src := b.t.Node(n.Location + "/SourceProperties"); src != nil {
			eb.Priority = int(b.own(src, "Priority").DWord)
			rule, err := events.ParseRule(b.own(src, "Rule").Str)
			if err != nil {
				b.add(src.Location, "Rule", "%v", err)
			}
			eb.Rule = rule
		}
		if sink := b.t.Node(n.Location + "/SinkProperties"); sink != nil {
			for _, p := range sink.Props() {
				eb.Props[p.Name] = p.Text
			}
		}
		vs.EventBindings = append(vs.EventBindings, eb)
	}
	slices.SortFunc(vs.EventBindings, func(a, b events.Binding) int { return strings.Compare(a.Location, b.Location) })
}

// relayIPs reads the effective RelayIpList at loc: the granted hosts, or a
// note saying why relay by address is denied although the list is set.
func (b *builder) relayIPs(loc string) ([]netip.Addr, string) {
	v, ok := b.value(loc, "RelayIpList")
	if !ok || len(v.Bin) == 0 {
		return nil, ""
	}
	l, err := schema.DecodeIPSecList(v.Bin)
	if err != nil {
		return nil, "RelayIpList not in the single-host grant layout, relay by address denied: " + err.Error()
	}
	return l.Grant, ""
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// own reads a property set on the node itself (domain nodes do not inherit
// from the service), or its catalogue default.
func (b *builder) own(n *metabase.Node, name string) schema.Value {
	p, _ := schema.Lookup(name)
	if prop, has := n.Get(name); has {
		v, err := p.Parse(prop.Text)
		if err != nil {
			b.add(n.Location, name, "%v", err)
		}
		return v
	}
	v, _ := p.DefaultValue()
	return v
}

// fingerprint is a hash of the canonical JSON form of every setting (plus
// the certificate and key contents).
func fingerprint(vs *VirtualServer, certSum string) string {
	data, err := json.Marshal(struct {
		V    *VirtualServer
		Cert string
	}{vs, certSum})
	if err != nil { // cannot happen: plain data
		panic(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
