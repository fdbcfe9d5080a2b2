package schema

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParseBinding(t *testing.T) {
	cases := []struct {
		in   string
		ip   string // "" = all addresses
		port uint16
		host string
		addr string
	}{
		{":25:", "", 25, "", ":25"},
		{"127.0.0.1:2525:mail.example.com", "127.0.0.1", 2525, "mail.example.com", "127.0.0.1:2525"},
		{"[::1]:25:", "::1", 25, "", "[::1]:25"},
		{"127.0.0.1:2525:", "127.0.0.1", 2525, "", "127.0.0.1:2525"},
		{"127.0.0.1:465", "127.0.0.1", 465, "", "127.0.0.1:465"}, // SecureBindings form, no host
		{" :587: ", "", 587, "", ":587"},
		{"[::ffff:127.0.0.1]:25:", "127.0.0.1", 25, "", "127.0.0.1:25"},
		{":25:*.example.com", "", 25, "*.example.com", ":25"},
	}
	for _, c := range cases {
		b, err := ParseBinding(c.in)
		if err != nil {
			t.Errorf("ParseBinding(%q): %v", c.in, err)
			continue
		}
		ip := ""
		if b.IP.IsValid() {
			ip = b.IP.String()
		}
		if ip != c.ip || b.Port != c.port || b.Host != c.host || b.Addr() != c.addr {
			t.Errorf("ParseBinding(%q) = ip %q port %d host %q addr %q; want %q %d %q %q", c.in, ip, b.Port, b.Host, b.Addr(), c.ip, c.port, c.host, c.addr)
		}
		again, err := ParseBinding(b.String())
		if err != nil || again != b {
			t.Errorf("ParseBinding(%q).String() = %q does not parse back: %v, %v", c.in, b.String(), again, err)
		}
	}
	bad := []struct{ in, want string }{
		{"", "empty binding"},
		{"10.0.0.1:99999:", `port "99999" is not 1–65535`},
		{"10.0.0.1:0:", `port "0"`},
		{"10.0.0.1::", `port ""`},
		{"300.1.1.1:25:", `"300.1.1.1" is not an IP address`},
		{"[::1:25:", "unclosed ["},
		{"[::1]25:", "want IP:port:host"},
		{"abc", "want IP:port:host"},
		{"mail.example.com:25:", "is not an IP address"},
		{":25:bad host!", "host"},
		{"[fe80::1%eth0]:25:", "is not an IP address"},
	}
	for _, c := range bad {
		b, err := ParseBinding(c.in)
		if err == nil {
			t.Errorf("ParseBinding(%q) = %+v, want an error", c.in, b)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseBinding(%q): error %q does not say %q", c.in, err, c.want)
		}
		if c.in != "" && !strings.Contains(err.Error(), strings.TrimSpace(c.in)) {
			t.Errorf("ParseBinding(%q): error %q does not quote the binding", c.in, err)
		}
	}
	if _, err := ParseBindings([]string{":25:", "1.2.3.4:99999:"}); err == nil || !strings.Contains(err.Error(), "99999") {
		t.Errorf("ParseBindings with a bad second entry: %v", err)
	}
}

func TestParseRetryList(t *testing.T) {
	good := []struct {
		in   string
		want []uint32
	}{
		{"15,30,60,240", []uint32{15, 30, 60, 240}},
		{" 10, 10,10 ,15 ", []uint32{10, 10, 10, 15}},
		{"5", []uint32{5}},
		{"1,2,3,4,5,6,7,10080", []uint32{1, 2, 3, 4, 5, 6, 7, 10080}},
	}
	for _, c := range good {
		got, err := ParseRetryList(c.in)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("ParseRetryList(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	bad := []struct{ in, want string }{
		{"15,,60", `"" is not 1–10080 minutes`},
		{"", "want 1 to 8"},
		{"   ", "want 1 to 8"},
		{"0,15", `"0" is not`},
		{"15,abc", `"abc" is not`},
		{"10081", `"10081" is not`},
		{"-5,10", `"-5" is not`},
		{"1,2,3,4,5,6,7,8,9", "want 1 to 8"},
		{"15;30", `"15;30" is not`},
	}
	for _, c := range bad {
		got, err := ParseRetryList(c.in)
		if err == nil {
			t.Errorf("ParseRetryList(%q) = %v, want an error", c.in, got)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "retry list") {
			t.Errorf("ParseRetryList(%q): error %q does not say %q", c.in, err, c.want)
		}
	}
}

func TestParseSmartHost(t *testing.T) {
	type host struct {
		name string
		ip   string
		port uint16
	}
	good := []struct {
		in   string
		want []host
	}{
		{"smarthost.example.net", []host{{"smarthost.example.net", "", 0}}},
		{"Mail.Example.COM:587", []host{{"mail.example.com", "", 587}}},
		{"[10.0.0.1]", []host{{"", "10.0.0.1", 0}}},
		{"[127.0.0.1]:2525", []host{{"", "127.0.0.1", 2525}}},
		{"[::1]", []host{{"", "::1", 0}}},
		{"a.example.com;[127.0.0.1], b.example.com", []host{{"a.example.com", "", 0}, {"", "127.0.0.1", 0}, {"b.example.com", "", 0}}},
	}
	for _, c := range good {
		got, err := ParseSmartHost(c.in)
		if err != nil {
			t.Errorf("ParseSmartHost(%q): %v", c.in, err)
			continue
		}
		var hs []host
		for _, h := range got {
			ip := ""
			if h.Literal() {
				ip = h.IP.String()
			}
			hs = append(hs, host{h.Host, ip, h.Port})
		}
		if !slices.Equal(hs, c.want) {
			t.Errorf("ParseSmartHost(%q) = %+v, want %+v", c.in, hs, c.want)
		}
	}
	bad := []struct{ in, want string }{
		{"10.0.0.1", "must be written in brackets, [10.0.0.1]"},
		{"127.0.0.1:25", "must be written in brackets"},
		{"[10.0.0.1", "unclosed ["},
		{"[mail.example.com]", "is not an IP address"},
		{"[10.0.0.1]x", `unexpected "x"`},
		{"bad_host!", "not a domain name"},
		{"host.example.com:0", `port "0"`},
		{"host.example.com:99999", `port "99999"`},
		{"", "empty"},
		{" ; ", "empty"},
	}
	for _, c := range bad {
		got, err := ParseSmartHost(c.in)
		if err == nil {
			t.Errorf("ParseSmartHost(%q) = %+v, want an error", c.in, got)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "smart host") {
			t.Errorf("ParseSmartHost(%q): error %q does not say %q", c.in, err, c.want)
		}
	}
}

// ipsecBlob127 is the 84-byte IPSECLIST holding 127.0.0.1, built word by
// word from the layout of REFERENCE.md §4 (21 little-endian DWORDs, as in
// Salt's docstring).
func ipsecBlob127() []byte {
	words := []uint32{
		0x80000018, 0x80000020, 0x8000003C, 0x80000044, // offsets 0, 4, 8, 12
		1,    // 16
		0x4C, // 20: offset of the mask/address area
		0, 0, // 24, 28
		1,          // 32: one mask
		1,          // 36: n = 1 address
		2,          // 40
		2,          // 44: n + 1
		4,          // 48
		0,          // 52
		0x8000004C, // 56
		0, 0, 0, 0, // 60–72
		0xFFFFFFFF, // 76: mask 255.255.255.255
	}
	b := make([]byte, 0, 84)
	for _, w := range words {
		b = binary.LittleEndian.AppendUint32(b, w)
	}
	return append(b, 127, 0, 0, 1) // 80: the address, network order
}

func TestIPSecListLayout(t *testing.T) {
	want := ipsecBlob127()
	if len(want) != 84 {
		t.Fatalf("hand-built blob is %d bytes, want 84", len(want))
	}
	got, err := EncodeIPSecList(IPSecList{Grant: []netip.Addr{netip.MustParseAddr("127.0.0.1")}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("EncodeIPSecList(127.0.0.1) =\n% x\nwant (REFERENCE.md §4)\n% x", got, want)
	}
	l, err := DecodeIPSecList(want)
	if err != nil || len(l.Grant) != 1 || l.Grant[0] != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("DecodeIPSecList(hand-built blob) = %v, %v", l.Grant, err)
	}
}

func TestIPSecListRoundTrip(t *testing.T) {
	lists := [][]string{nil, {"127.0.0.1"}, {"127.0.0.1", "10.1.2.3", "192.0.2.200"}}
	for _, ips := range lists {
		var l IPSecList
		for _, s := range ips {
			l.Grant = append(l.Grant, netip.MustParseAddr(s))
		}
		b, err := EncodeIPSecList(l)
		if err != nil {
			t.Fatalf("%v: %v", ips, err)
		}
		if len(b) != 80+4*len(ips) {
			t.Errorf("%v: %d bytes, want %d", ips, len(b), 80+4*len(ips))
		}
		if n := binary.LittleEndian.Uint32(b[36:]); n != uint32(len(ips)) {
			t.Errorf("%v: count word %d", ips, n)
		}
		back, err := DecodeIPSecList(b)
		if err != nil || !slices.Equal(back.Grant, l.Grant) {
			t.Errorf("%v: decoded %v, %v", ips, back.Grant, err)
		}
		// The catalogue's check accepts what the encoder makes.
		p, _ := Lookup("RelayIpList")
		if err := p.Check(BinaryValue(b)); err != nil {
			t.Errorf("RelayIpList check of %v: %v", ips, err)
		}
	}
	if _, err := EncodeIPSecList(IPSecList{Grant: []netip.Addr{netip.MustParseAddr("::1")}}); err == nil ||
		!strings.Contains(err.Error(), "only IPv4") {
		t.Errorf("IPv6 host: %v", err)
	}
}

func TestDecodeIPSecListRefuses(t *testing.T) {
	good := ipsecBlob127()
	miscounted := slices.Clone(good)
	binary.LittleEndian.PutUint32(miscounted[36:], 2)
	denyMode := slices.Clone(good)
	binary.LittleEndian.PutUint32(denyMode[16:], 0)
	badMask := slices.Clone(good)
	binary.LittleEndian.PutUint32(badMask[76:], 0xFFFFFF00)
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "shorter than its 80-byte header"},
		{"short", good[:60], "60 bytes is shorter"},
		{"ragged", append(slices.Clone(good), 1, 2), "not a whole number"},
		{"miscounted", miscounted, "counts 2 hosts but holds 1"},
		{"other header", denyMode, "header word 4"},
		{"subnet mask", badMask, "header word 19"},
	}
	for _, c := range cases {
		l, err := DecodeIPSecList(c.b)
		if err == nil {
			t.Errorf("%s: decoded %v, want an error", c.name, l.Grant)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not say %q", c.name, err, c.want)
		}
	}
}

func TestParseRule(t *testing.T) {
	good := []struct {
		in   string
		want []RuleClause
	}{
		{"", nil},
		{" ; ", nil},
		{"EHLO=*.contoso.com;MAIL FROM=*@x.com", []RuleClause{{"EHLO", "*.contoso.com"}, {"MAIL FROM", "*@x.com"}}},
		{"mail from=*@contoso.com;rcpt to=*@example.com", []RuleClause{{"MAIL FROM", "*@contoso.com"}, {"RCPT TO", "*@example.com"}}},
		{"  rcpt   to = * ", []RuleClause{{"RCPT TO", "*"}}},
		{"helo=a,b;", []RuleClause{{"HELO", "a,b"}}},
		{"RCPT TO=a=b", []RuleClause{{"RCPT TO", "a=b"}}},
	}
	for _, c := range good {
		got, err := ParseRule(c.in)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("ParseRule(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	bad := []struct{ in, want string }{
		{"FOO=bar", `unknown command "FOO"`},
		{"EHLO", `clause "EHLO" has no '='`},
		{"EHLO=", "empty pattern for EHLO"},
		{"MAIL FROM=*@x.com;DATA=*", `unknown command "DATA"`},
		{"=x", `unknown command ""`},
	}
	for _, c := range bad {
		got, err := ParseRule(c.in)
		if err == nil {
			t.Errorf("ParseRule(%q) = %v, want an error", c.in, got)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "rule") {
			t.Errorf("ParseRule(%q): error %q does not say %q", c.in, err, c.want)
		}
	}
}

func TestCheckDomainGUIDAddress(t *testing.T) {
	for _, d := range []string{"example.com", "Mail.Example.COM", "*.contoso.com", "_msdcs.example.com", "localhost", "example.com.", "a-b.example"} {
		if err := CheckDomain(d); err != nil {
			t.Errorf("CheckDomain(%q): %v", d, err)
		}
	}
	for _, d := range []string{"", ".", "a..b", "-a.example", "a-.example", "exa mple.com", "ex@mple.com", strings.Repeat("a", 64) + ".com", strings.Repeat("a.", 127) + "com"} {
		if err := CheckDomain(d); err == nil {
			t.Errorf("CheckDomain(%q) accepted", d)
		}
	}
	for _, g := range []string{"{76719654-05A6-11D2-9DFD-00C04FA322BA}", "{76719654-05a6-11d2-9dfd-00c04fa322ba}"} {
		if err := CheckGUID(g); err != nil {
			t.Errorf("CheckGUID(%q): %v", g, err)
		}
	}
	for _, g := range []string{"", "76719654-05A6-11D2-9DFD-00C04FA322BA", "{76719654-05A6-11D2-9DFD-00C04FA322B}", "{76719654x05A6-11D2-9DFD-00C04FA322BA}", "{7671965G-05A6-11D2-9DFD-00C04FA322BA}"} {
		if err := CheckGUID(g); err == nil {
			t.Errorf("CheckGUID(%q) accepted", g)
		}
	}
	for _, a := range []string{"postmaster@example.com", "Postmaster", "first.last@mail.example.com"} {
		if err := CheckAddress(a); err != nil {
			t.Errorf("CheckAddress(%q): %v", a, err)
		}
	}
	for _, a := range []string{"", "@example.com", "a b@example.com", "<x@example.com>", "x@", "x@bad_domain!"} {
		if err := CheckAddress(a); err == nil {
			t.Errorf("CheckAddress(%q) accepted", a)
		}
	}
}

func TestClassify(t *testing.T) {
	const onArrival = "{FF3CAA23-00B9-11D2-9DFB-00C04FA322BA}"
	const id = "{0A1B2C3D-0000-1111-2222-333344445555}"
	cases := []struct {
		loc  string
		want Place
	}{
		{"/LM/SmtpSvc", Place{Kind: NodeService}},
		{"/lm/smtpsvc", Place{Kind: NodeService}},
		{"/LM/SmtpSvc/1", Place{Kind: NodeServer, Instance: 1}},
		{"/LM/SmtpSvc/42", Place{Kind: NodeServer, Instance: 42}},
		{"/LM/SmtpSvc/1/Domain", Place{Kind: NodeContainer, Instance: 1}},
		{"/LM/SmtpSvc/2/Domain/Example.COM", Place{Kind: NodeDomain, Instance: 2, Domain: "example.com"}},
		{"/LM/SmtpSvc/1/Domain/*.contoso.com", Place{Kind: NodeDomain, Instance: 1, Domain: "*.contoso.com"}},
		{"/LM/SmtpSvc/1/RoutingSources", Place{Kind: NodeRoutingSources, Instance: 1}},
		{"/LM/SmtpSvc/1/EventManager", Place{Kind: NodeContainer, Instance: 1}},
		{"/LM/SmtpSvc/1/EventManager/SourceTypes", Place{Kind: NodeContainer, Instance: 1}},
		{"/LM/SmtpSvc/1/EventManager/EventTypes/" + onArrival, Place{Kind: NodeContainer, Instance: 1, Event: onArrival}},
		{"/LM/SmtpSvc/1/EventManager/EventTypes/" + onArrival + "/Bindings", Place{Kind: NodeContainer, Instance: 1, Event: onArrival}},
		{"/LM/SmtpSvc/1/EventManager/EventTypes/" + strings.ToLower(onArrival) + "/Bindings/" + strings.ToLower(id),
			Place{Kind: NodeBinding, Instance: 1, Event: onArrival, Binding: id}},
		{"/LM/SmtpSvc/1/EventManager/EventTypes/" + onArrival + "/Bindings/" + id + "/SourceProperties",
			Place{Kind: NodeBindingSource, Instance: 1, Event: onArrival, Binding: id}},
		{"/LM/SmtpSvc/1/EventManager/EventTypes/" + onArrival + "/Bindings/" + id + "/SinkProperties",
			Place{Kind: NodeBindingSink, Instance: 1, Event: onArrival, Binding: id}},
		{"/LM/SmtpSvc/1/EventManager/EventTypes/" + onArrival + "/Bindings/" + id + "/SinkClass",
			Place{Kind: NodeContainer, Instance: 1, Event: onArrival, Binding: id}},
		{"/LM/SmtpSvc/Info", Place{Kind: NodeContainer}},
		{"/LM", Place{Kind: NodeContainer}},
		{"/LM/W3SVC/1", Place{Kind: NodeUnknown}},  // another IIS service: kept, not read
		{"/LM/SmtpSvcX", Place{Kind: NodeUnknown}}, // not below /LM/SmtpSvc
		{"/LM/NNTPSVC/1/Domain", Place{Kind: NodeUnknown}},
	}
	for _, c := range cases {
		got, err := Classify(c.loc)
		if err != nil || got != c.want {
			t.Errorf("Classify(%q) = %+v, %v; want %+v", c.loc, got, err, c.want)
		}
	}
	bad := []struct{ loc, want string }{
		{"/LM/SmtpSvc/0", "1–1048576"},
		{"/LM/SmtpSvc/01", "plain number"},
		{"/LM/SmtpSvc/-1", "1–1048576"},
		{"/LM/SmtpSvc/abc", `"abc" is not a virtual server number`},
		{"/LM/SmtpSvc/1/Domain/bad domain!", "domain node"},
		{"/LM/SmtpSvc/1/Domain/example.com/x", "nothing may live below a domain node"},
		{"/LM/SmtpSvc/1/EventManager/EventTypes/OnArrival", "event type"},
		{"/LM/SmtpSvc/1/EventManager/EventTypes/" + onArrival + "/Other", "want …/EventTypes/{CATID}/Bindings/{ID}"},
		{"/LM/SmtpSvc/1/EventManager/EventTypes/" + onArrival + "/Bindings/disclaimer", "binding ID"},
	}
	for _, c := range bad {
		got, err := Classify(c.loc)
		if err == nil {
			t.Errorf("Classify(%q) = %+v, want an error", c.loc, got)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.loc) {
			t.Errorf("Classify(%q): error %q does not name the Location and say %q", c.loc, err, c.want)
		}
	}
	// The Location builders produce what Classify reads back.
	if p, err := Classify(ServerLocation(3)); err != nil || p.Kind != NodeServer || p.Instance != 3 {
		t.Errorf("ServerLocation(3) = %s → %+v, %v", ServerLocation(3), p, err)
	}
	if p, err := Classify(DomainLocation(1, "Example.COM")); err != nil || p.Kind != NodeDomain || p.Domain != "example.com" {
		t.Errorf("DomainLocation → %+v, %v", p, err)
	}
	if p, err := Classify(BindingLocation(2, strings.ToLower(onArrival), strings.ToLower(id))); err != nil ||
		p.Kind != NodeBinding || p.Instance != 2 || p.Event != onArrival || p.Binding != id {
		t.Errorf("BindingLocation → %+v, %v", p, err)
	}
}

func TestLookupEvent(t *testing.T) {
	cases := []struct{ in, name string }{
		{"OnArrival", "OnArrival"},
		{"onarrival", "OnArrival"},
		{"OnTransportSubmission", "OnArrival"},
		{"{FF3CAA23-00B9-11d2-9DFB-00C04FA322BA}", "OnArrival"},
		{"ff3caa23-00b9-11d2-9dfb-00c04fa322ba", "OnArrival"},
		{"OnInboundCommand", "OnInboundCommand"},
		{"{76719654-05A6-11D2-9DFD-00C04FA322BA}", "OnPostCategorize"},
		{"MsgTrackLog", "MsgTrackLog"},
		{" OnSessionStart ", "OnSessionStart"},
	}
	for _, c := range cases {
		e, ok := LookupEvent(c.in)
		if !ok || e.Name != c.name {
			t.Errorf("LookupEvent(%q) = %v, %v; want %s", c.in, e, ok, c.name)
		}
	}
	// Interface method names are not smtpreg event names (REFERENCE.md 5.2).
	for _, in := range []string{"", "OnMsgTrackLog", "OnDnsResolveRecord", "OnMaxMsgSize", "OnGetMessageRouter", "{00000000-0000-0000-0000-000000000000}"} {
		if e, ok := LookupEvent(in); ok {
			t.Errorf("LookupEvent(%q) = %v, want not found", in, e)
		}
	}
	if len(EventTypes) != 16 {
		t.Errorf("%d event types, REFERENCE.md 5.2 lists 16", len(EventTypes))
	}
	seen := map[string]bool{}
	protocol := 0
	for _, e := range EventTypes {
		if err := CheckGUID(e.CATID); err != nil || e.CATID != strings.ToUpper(e.CATID) {
			t.Errorf("%s: CATID %s must be an upper-case {GUID}: %v", e.Name, e.CATID, err)
		}
		if seen[e.CATID] {
			t.Errorf("CATID %s listed twice", e.CATID)
		}
		seen[e.CATID] = true
		if e.Kind == ProtocolEvent {
			protocol++
		}
	}
	if protocol != 7 {
		t.Errorf("%d protocol events, REFERENCE.md 5.2 lists 7", protocol)
	}
}

func TestNodeSet(t *testing.T) {
	s := Of(NodeService, NodeDomain)
	if !s.Has(NodeService) || !s.Has(NodeDomain) || s.Has(NodeServer) {
		t.Errorf("Of(service, domain) = %b", s)
	}
	if k := s.Kinds(); !slices.Equal(k, []NodeKind{NodeService, NodeDomain}) {
		t.Errorf("Kinds() = %v", k)
	}
	if NodeBindingSource.String() != "binding-source" || NodeUnknown.String() != "unknown" {
		t.Error("NodeKind names")
	}
}
