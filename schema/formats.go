package schema

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Binding is one ServerBindings or SecureBindings entry, "IP:port:host".
// An empty IP means every address; an empty Host any host name.
type Binding struct {
	IP   netip.Addr // invalid (zero) = all addresses
	Port uint16
	Host string
}

// Addr is the listen address of the binding ("127.0.0.1:25", ":25").
func (b Binding) Addr() string {
	if !b.IP.IsValid() {
		return ":" + strconv.Itoa(int(b.Port))
	}
	return netip.AddrPortFrom(b.IP, b.Port).String()
}

// String is the binding in IIS form.
func (b Binding) String() string {
	ip := ""
	if b.IP.IsValid() {
		ip = b.IP.String()
		if b.IP.Is6() {
			ip = "[" + ip + "]"
		}
	}
	return ip + ":" + strconv.Itoa(int(b.Port)) + ":" + b.Host
}

// ParseBinding reads one "IP:port:host" binding. An IPv6 address is written
// in brackets ("[::1]:25:").
func ParseBinding(s string) (Binding, error) {
	var b Binding
	rest := strings.TrimSpace(s)
	if rest == "" {
		return b, errors.New("empty binding")
	}
	var ip string
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]")
		if end < 0 {
			return b, fmt.Errorf("binding %q: unclosed [", abbrev(s))
		}
		ip, rest = rest[1:end], rest[end+1:]
		if !strings.HasPrefix(rest, ":") {
			return b, fmt.Errorf("binding %q: want IP:port:host", abbrev(s))
		}
		rest = rest[1:]
	} else {
		i := strings.Index(rest, ":")
		if i < 0 {
			return b, fmt.Errorf("binding %q: want IP:port:host", abbrev(s))
		}
		ip, rest = rest[:i], rest[i+1:]
	}
	port, host, _ := strings.Cut(rest, ":")
	if ip != "" {
		a, err := netip.ParseAddr(ip)
		if err != nil || a.Zone() != "" {
			return b, fmt.Errorf("binding %q: %q is not an IP address", abbrev(s), ip)
		}
		b.IP = a.Unmap()
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return b, fmt.Errorf("binding %q: port %q is not 1–65535", abbrev(s), port)
	}
	b.Port = uint16(n)
	if host != "" {
		if err := CheckDomain(host); err != nil {
			return b, fmt.Errorf("binding %q: host: %v", abbrev(s), err)
		}
	}
	b.Host = host
	return b, nil
}

// ParseBindings reads every binding of a MULTISZ value.
func ParseBindings(lines []string) ([]Binding, error) {
	out := make([]Binding, 0, len(lines))
	for _, l := range lines {
		b, err := ParseBinding(l)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// ParseSecureBinding reads one "IP:port" secure binding; a trailing ":host"
// is tolerated, as IIS writes "IP:port:" too.
func ParseSecureBinding(s string) (Binding, error) { return ParseBinding(s) }

// ParseRetryList reads a progressive retry list, "15,30,60,240": minutes before
// the first, second, third and every later retry (REFERENCE.md §2.3). One to
// eight entries of 1–10080 minutes (a week) each: bounds of ds2mb's choosing,
// IIS documents none.
func ParseRetryList(s string) ([]uint32, error) {
	parts := strings.Split(strings.TrimSpace(s), ",")
	if len(parts) < 1 || len(parts) > 8 || strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("retry list %q: want 1 to 8 comma-separated minutes, like 15,30,60,240", abbrev(s))
	}
	out := make([]uint32, 0, len(parts))
	for _, p := range parts {
		n, err := strconv.ParseUint(strings.TrimSpace(p), 10, 32)
		if err != nil || n == 0 || n > 10080 {
			return nil, fmt.Errorf("retry list %q: %q is not 1–10080 minutes", abbrev(s), strings.TrimSpace(p))
		}
		out = append(out, uint32(n))
	}
	return out, nil
}

// SmartHost is a parsed smart host: a host name, or an IP literal in brackets.
type SmartHost struct {
	Host string     // host name, when not a literal
	IP   netip.Addr // the literal's address
	Port uint16     // 0 = the default port
}

// String is the smart host in its written form: "mail.example.com",
// "[192.0.2.1]", "[2001:db8::1]", with ":port" when one is given; what
// ParseSmartHost reads back.
func (h SmartHost) String() string {
	s := h.Host
	if h.Literal() {
		s = "[" + h.IP.String() + "]"
	}
	if h.Port != 0 {
		s += ":" + strconv.Itoa(int(h.Port))
	}
	return s
}

// Literal reports whether the smart host is an [IP] literal.
func (h SmartHost) Literal() bool { return h.IP.IsValid() }

// ParseSmartHost reads a smart host: "mail.example.com", "[192.0.2.1]",
// optionally followed by ":port". Several hosts may be separated by ";" or
// "," (Exchange connector form); each is checked.
// ASSUMPTION(G, REFERENCE.md 2.3): square brackets mark an IP literal, as in
// the Exchange/IIS UI, so a bare IP address is refused.
func ParseSmartHost(s string) ([]SmartHost, error) {
	var out []SmartHost
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == ',' || r == ' ' }) {
		h, err := parseOneSmartHost(part)
		if err != nil {
			return nil, fmt.Errorf("smart host %q: %v", abbrev(s), err)
		}
		out = append(out, h)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("smart host %q: empty", abbrev(s))
	}
	return out, nil
}

func parseOneSmartHost(s string) (SmartHost, error) {
	var h SmartHost
	hostPart, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 {
			return h, errors.New("unclosed [")
		}
		a, err := netip.ParseAddr(s[1:end])
		if err != nil {
			return h, fmt.Errorf("%q is not an IP address", s[1:end])
		}
		h.IP = a
		rest := s[end+1:]
		if rest != "" {
			if !strings.HasPrefix(rest, ":") {
				return h, fmt.Errorf("unexpected %q after ]", rest)
			}
			port = rest[1:]
		}
	} else {
		if i := strings.LastIndex(s, ":"); i >= 0 {
			hostPart, port = s[:i], s[i+1:]
		}
		if _, err := netip.ParseAddr(hostPart); err == nil {
			return h, fmt.Errorf("IP address %s must be written in brackets, [%s]", hostPart, hostPart)
		}
		if err := CheckDomain(hostPart); err != nil {
			return h, err
		}
		h.Host = strings.ToLower(hostPart)
	}
	if port != "" {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return h, fmt.Errorf("port %q is not 1–65535", port)
		}
		h.Port = uint16(n)
	}
	return h, nil
}

// CheckDomain checks a DNS domain name (RFC 1035 with underscores allowed,
// as in _msdcs names); a leading "*." wildcard is allowed.
func CheckDomain(s string) error {
	d := strings.TrimSuffix(strings.TrimPrefix(s, "*."), ".")
	if d == "" || len(d) > 253 {
		return fmt.Errorf("%q is not a domain name", abbrev(s))
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("%q is not a domain name (empty or long label)", abbrev(s))
		}
		for i, r := range label {
			ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' ||
				r == '-' && i > 0 && i < len(label)-1
			if !ok {
				return fmt.Errorf("%q is not a domain name (character %q)", abbrev(s), r)
			}
		}
	}
	return nil
}

// CheckGUID checks a braced GUID, "{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}".
func CheckGUID(s string) error {
	if len(s) != 38 || s[0] != '{' || s[37] != '}' {
		return fmt.Errorf("%q is not a {GUID}", abbrev(s))
	}
	for i, r := range s[1:37] {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if r != '-' {
				return fmt.Errorf("%q is not a {GUID}", s)
			}
			continue
		}
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return fmt.Errorf("%q is not a {GUID}", s)
		}
	}
	return nil
}

// CheckAddress checks a mailbox ("postmaster@example.com") or a bare local part.
func CheckAddress(s string) error {
	local, domain, found := strings.Cut(s, "@")
	if local == "" || strings.ContainsAny(local, " <>()[]\\,;:\"") {
		return fmt.Errorf("%q is not an e-mail address", abbrev(s))
	}
	if found {
		return CheckDomain(domain)
	}
	return nil
}

// IPSecList is the decoded single-host form of an IPSECLIST blob: a grant
// list of IPv4 hosts. ASSUMPTION(G, REFERENCE.md 4): the layout is the one
// public scripts observed, not a Microsoft specification; grant/deny mode,
// subnet masks and domain entries are unsourced and refused.
type IPSecList struct {
	Grant []netip.Addr
}

const ipsecHeaderLen = 80

// Layout constants observed in public scripts (REFERENCE.md §4).
var ipsecHeader = [20]uint32{0x80000018, 0x80000020, 0x8000003C, 0x80000044, 1, 0x4C, 0, 0, 1, 0, 2, 0, 4, 0, 0x8000004C, 0, 0, 0, 0, 0xFFFFFFFF}

// EncodeIPSecList builds the blob for a grant list of single IPv4 hosts.
func EncodeIPSecList(l IPSecList) ([]byte, error) {
	buf := make([]byte, ipsecHeaderLen, ipsecHeaderLen+4*len(l.Grant))
	for i, w := range ipsecHeader {
		binary.LittleEndian.PutUint32(buf[4*i:], w)
	}
	n := uint32(len(l.Grant))
	binary.LittleEndian.PutUint32(buf[36:], n)
	binary.LittleEndian.PutUint32(buf[44:], n+1)
	for _, a := range l.Grant {
		if !a.Is4() {
			return nil, fmt.Errorf("%v: only IPv4 hosts fit the IPSECLIST layout ds2mb knows", a)
		}
		b := a.As4()
		buf = append(buf, b[:]...)
	}
	return buf, nil
}

// DecodeIPSecList reads a blob of the single-host grant layout. Anything
// else is an error, and the caller must deny relay.
func DecodeIPSecList(b []byte) (IPSecList, error) {
	var l IPSecList
	if len(b) < ipsecHeaderLen {
		return l, fmt.Errorf("IPSECLIST of %d bytes is shorter than its %d-byte header", len(b), ipsecHeaderLen)
	}
	if (len(b)-ipsecHeaderLen)%4 != 0 {
		return l, fmt.Errorf("IPSECLIST of %d bytes: address area is not a whole number of IPv4 addresses", len(b))
	}
	n := binary.LittleEndian.Uint32(b[36:])
	if int(n) != (len(b)-ipsecHeaderLen)/4 || binary.LittleEndian.Uint32(b[44:]) != n+1 {
		return l, fmt.Errorf("IPSECLIST counts %d hosts but holds %d", n, (len(b)-ipsecHeaderLen)/4)
	}
	for i, w := range ipsecHeader {
		if i == 9 || i == 11 {
			continue // the counts, checked above
		}
		if binary.LittleEndian.Uint32(b[4*i:]) != w {
			return l, fmt.Errorf("IPSECLIST header word %d is 0x%08x, not the single-host grant layout (0x%08x)", i, binary.LittleEndian.Uint32(b[4*i:]), w)
		}
	}
	for off := ipsecHeaderLen; off < len(b); off += 4 {
		l.Grant = append(l.Grant, netip.AddrFrom4([4]byte(b[off:off+4])))
	}
	return l, nil
}

// RuleClause is one "<command>=<pattern>" clause of a binding rule.
type RuleClause struct {
	Command string // upper case: EHLO, HELO, MAIL FROM, RCPT TO
	Pattern string // case-insensitive, '*' any run, '?' one character
}

// ParseRule reads an event-binding rule: clauses "command=pattern" joined by
// ';' (REFERENCE.md §5.4). An empty rule matches everything.
// ASSUMPTION(U, REFERENCE.md 5.4): clauses are ANDed; several patterns for
// one command may be separated by ',' and are ORed.
func ParseRule(s string) ([]RuleClause, error) {
	var out []RuleClause
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		cmd, pat, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("rule %q: clause %q has no '='", abbrev(s), part)
		}
		cmd = strings.ToUpper(strings.Join(strings.Fields(cmd), " "))
		switch cmd {
		case "EHLO", "HELO", "MAIL FROM", "RCPT TO":
		default:
			return nil, fmt.Errorf("rule %q: unknown command %q (want EHLO, HELO, MAIL FROM or RCPT TO)", abbrev(s), cmd)
		}
		pat = strings.TrimSpace(pat)
		if pat == "" {
			return nil, fmt.Errorf("rule %q: empty pattern for %s", abbrev(s), cmd)
		}
		out = append(out, RuleClause{Command: cmd, Pattern: pat})
	}
	return out, nil
}

// CheckFormat checks a value against a structured format.
func CheckFormat(f Format, v Value) error {
	var err error
	switch f {
	case FormatBindings:
		if len(v.Multi) == 0 {
			return errors.New("no binding")
		}
		_, err = ParseBindings(v.Multi)
	case FormatSecureBindings:
		for _, s := range v.Multi {
			if _, err = ParseSecureBinding(s); err != nil {
				break
			}
		}
	case FormatRetryList:
		_, err = ParseRetryList(v.Str)
	case FormatSmartHost:
		if v.Str != "" {
			_, err = ParseSmartHost(v.Str)
		}
	case FormatIPSecList:
		if len(v.Bin) < ipsecHeaderLen {
			err = fmt.Errorf("IPSECLIST of %d bytes is shorter than its %d-byte header", len(v.Bin), ipsecHeaderLen)
		}
	case FormatDomain:
		if v.Str != "" {
			err = CheckDomain(v.Str)
		}
	case FormatRule:
		_, err = ParseRule(v.Str)
	case FormatGUID:
		err = CheckGUID(v.Str)
	case FormatAddress:
		if v.Str != "" {
			err = CheckAddress(v.Str)
		}
	}
	return err
}
