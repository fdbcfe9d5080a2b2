package metabase

import (
	"bytes"
	"cmp"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ds2mb/ds2mb/schema"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const (
	bindingLoc = "/LM/SmtpSvc/1/EventManager/EventTypes/{FF3CAA23-00B9-11D2-9DFB-00C04FA322BA}/Bindings/{6A1D5C1E-3F2B-4C8D-9E0F-1A2B3C4D5E6F}"
)

// roundTrip loads a hand-written input, compares its first save with the
// golden file, and checks that the golden file loads to an equal tree and
// saves byte-identically.
func roundTrip(t *testing.T, input, golden string) *Tree {
	t.Helper()
	in, err := os.ReadFile(filepath.Join("testdata", input))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Parse(in)
	if err != nil {
		t.Fatalf("%s: %v", input, err)
	}
	if probs := tr.Validate(); probs != nil {
		t.Fatalf("%s does not validate: %v", input, probs)
	}
	out := tr.Bytes()
	gpath := filepath.Join("testdata", golden)
	if *update {
		if err := os.WriteFile(gpath, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(gpath)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(out, want) {
		t.Fatalf("first save of %s differs from %s:\n%s", input, golden, out)
	}
	again, err := Parse(out)
	if err != nil {
		t.Fatalf("saved form does not load: %v", err)
	}
	if !again.Equal(tr) || again.Version != tr.Version {
		t.Fatalf("saved form loads to a different tree: %v", Diff(tr, again))
	}
	if d := Diff(tr, again); len(d) != 0 {
		t.Fatalf("Diff of equal trees: %v", d)
	}
	if out2 := again.Bytes(); !bytes.Equal(out2, out) {
		t.Fatalf("second save is not byte-identical to the first:\n%s", out2)
	}
	return tr
}

func mustEffective(t *testing.T, tr *Tree, loc, name string, want uint32, wantSrc Source) {
	t.Helper()
	v, src, ok, err := tr.Effective(loc, name)
	if err != nil || !ok {
		t.Fatalf("Effective(%s, %s): ok=%v err=%v", loc, name, ok, err)
	}
	if v.DWord != want || src != wantSrc {
		t.Fatalf("Effective(%s, %s) = %d from %v, want %d from %v", loc, name, v.DWord, src, want, wantSrc)
	}
}

func TestSeed004Fragment(t *testing.T) {
	tr := roundTrip(t, "seed004.xml", "seed004.golden.xml")
	svc := tr.Node(schema.ServiceLocation)
	if svc == nil || svc.Class != ClassService {
		t.Fatalf("service node: %+v", svc)
	}
	for name, want := range map[string]string{
		"ConnectionTimeout": "600", "DefaultDomain": "server01.TailspinToys.com", "DomainRouting": "",
		"EnableReverseDnsLookup": "FALSE", "FullyQualifiedDomainName": "server01.TailspinToys.com",
		"SmtpRemoteProgressiveRetry": "15,30,60,240", "SmtpRemoteRetryThreshold": "3",
	} {
		p, ok := svc.Get(name)
		if !ok || p.Text != want || p.Custom {
			t.Errorf("%s = %+v, want attribute %q", name, p, want)
		}
	}
	auth, ok := svc.Get("AuthFlags")
	wantAuth := Property{Name: "AuthFlags", Text: "AuthBasic | AuthAnonymous | AuthNTLM", Custom: true, ID: 6000,
		Type: schema.DWORD, UserType: "IIS_MD_UT_SERVER", Attributes: "INHERIT"}
	if !ok || auth != wantAuth {
		t.Errorf("AuthFlags = %+v, want %+v", auth, wantAuth)
	}
	unk, ok := svc.Get("UnknownName_61537")
	wantUnk := Property{Name: "UnknownName_61537", Text: "0", Custom: true, ID: 61537, Type: schema.DWORD,
		UserType: "IIS_MD_UT_SERVER", Attributes: "NO_ATTRIBUTES"}
	if !ok || unk != wantUnk {
		t.Errorf("UnknownName_61537 = %+v, want %+v", unk, wantUnk)
	}
	mustEffective(t, tr, schema.ServiceLocation, "AuthFlags", 7, FromNode)
	// A virtual server that does not set AuthFlags inherits the service's.
	tr.Ensure(schema.ServerLocation(1), ClassServer).Set("ServerBindings", "127.0.0.1:2525:")
	mustEffective(t, tr, schema.ServerLocation(1), "AuthFlags", schema.AuthBasic|schema.AuthAnonymous|schema.AuthNTLM, FromService)
	mustEffective(t, tr, schema.ServerLocation(1), "SmtpRemoteRetryThreshold", 3, FromService)
	mustEffective(t, tr, schema.ServerLocation(1), "EnableReverseDnsLookup", 0, FromService)
	mustEffective(t, tr, schema.ServerLocation(1), "HopCount", 15, FromDefault)
}

func TestFullSampleRoundTrip(t *testing.T) {
	tr := roundTrip(t, "sample.xml", "sample.golden.xml")
	if tr.Version != 41 {
		t.Errorf("Version = %d, want the file's ChangeNumber 41", tr.Version)
	}
	out := string(tr.Bytes())
	for _, keep := range []string{
		`<IIsWebService	Location ="/LM/W3SVC"`, `AppPoolId="DefaultAppPool"`, `<IIsWebServer	Location ="/LM/W3SVC/1"`,
		`<IIsSmtpVendorWidget Colour="blue">`, `<Gear Teeth="12"/>`, `<AdminNote Author="ops">kept as it was</AdminNote>`,
		`<MBSchema>`, `SessionKey="496344627000000024d680000000000000000000"`, `<IIS_ROOT	Location ="/"`,
	} {
		if !strings.Contains(out, keep) {
			t.Errorf("saved file lost %s", keep)
		}
	}
	if n := tr.Node("/LM/W3SVC"); n == nil || n.Class != "IIsWebService" || n.Text("AuthFlags") != "AuthAnonymous | AuthNTLM" {
		t.Errorf("IIsWebService node: %+v", n)
	}

	var unread []string
	for _, n := range tr.Unread() {
		unread = append(unread, n.Class+" "+n.Location)
	}
	if strings.Join(unread, ", ") != "IIsWebService /LM/W3SVC, IIsWebServer /LM/W3SVC/1" {
		t.Errorf("Unread() = %v", unread)
	}

	vs1, vs2 := schema.ServerLocation(1), schema.ServerLocation(2)
	// Own value, inherited value, default.
	mustEffective(t, tr, vs1, "AuthFlags", 7, FromNode)
	mustEffective(t, tr, vs2, "AuthFlags", schema.AuthAnonymous, FromService)
	mustEffective(t, tr, vs1, "MaxRecipients", 64000, FromNode)
	mustEffective(t, tr, vs2, "MaxRecipients", 100, FromDefault)
	mustEffective(t, tr, vs2, "MaxMessageSize", 10485760, FromService)
	mustEffective(t, tr, vs2, "DoMasquerade", 1, FromNode)
	// ServerAutoStart is not inheritable: the service's FALSE does not apply.
	mustEffective(t, tr, vs2, "ServerAutoStart", 1, FromDefault)
	mustEffective(t, tr, schema.ServiceLocation, "ServerAutoStart", 0, FromNode)
	// ServerBindings is not inheritable either; each server has its own.
	v, src, ok, err := tr.Effective(vs1, "ServerBindings")
	if err != nil || !ok || src != FromNode || len(v.Multi) != 2 || v.Multi[0] != "127.0.0.1:2525:" || v.Multi[1] != "127.0.0.2:2525:" {
		t.Errorf("ServerBindings of %s = %q from %v (%v)", vs1, v.Multi, src, err)
	}
	tr.Node(vs2).Remove("ServerBindings")
	tr.Node(schema.ServiceLocation).Set("ServerBindings", "127.0.0.1:2600:") // wrong node, but must not be inherited
	if v, src, _, _ := tr.Effective(vs2, "ServerBindings"); src != FromDefault || v.Text() != ":25:" {
		t.Errorf("ServerBindings of %s without its own = %q from %v, want the default", vs2, v.Text(), src)
	}

	// Domains: flags written symbolically or as numbers.
	for loc, want := range map[string]uint32{
		"/LM/SmtpSvc/1/Domain/example.com":                                             schema.RouteAlias,
		"/LM/SmtpSvc/1/Domain/partner.example.org":                                     schema.RouteDomainRelay,
		"/LM/SmtpSvc/1/Domain/*.contoso.com":                                           schema.RouteSmartHost | schema.RouteSSL,
		"/LM/SmtpSvc/1/Domain/705260ab-46c4-454d-bfdd-96b9c605364c._msdcs.example.com": schema.RouteDrop,
	} {
		mustEffective(t, tr, loc, "RouteAction", want, FromNode)
	}
	if s := tr.Node("/LM/SmtpSvc/1/Domain/*.contoso.com").Text("RouteActionString"); s != "[127.0.0.1]" {
		t.Errorf("smart host = %q", s)
	}
	// Event binding and its property nodes.
	mustEffective(t, tr, bindingLoc, "Enabled", 1, FromNode)
	mustEffective(t, tr, bindingLoc+"/SourceProperties", "Priority", 8192, FromNode)
	if r := tr.Node(bindingLoc + "/SourceProperties").Text("Rule"); r != "MAIL FROM=*@example.com;RCPT TO=*" {
		t.Errorf("Rule = %q", r)
	}
	sink := tr.Node(bindingLoc + "/SinkProperties")
	if p, _ := sink.Get("Text"); !p.Custom || p.Type != schema.STRING || p.Text != "This message is confidential & for the addressee only." {
		t.Errorf("sink property Text = %+v", p)
	}
	if got := len(tr.Below(schema.ServerLocation(1) + "/EventManager")); got != 4 {
		t.Errorf("%d nodes below EventManager, want 4", got)
	}
}

func TestNodesOrder(t *testing.T) {
	tr := New()
	for _, loc := range []string{"/LM/SmtpSvc/10", "/LM/SmtpSvc/2/Domain/b.com", "/LM/SmtpSvc", "/LM/SmtpSvc/2", "/LM/SmtpSvc/2/Domain/A.com", "/LM/SmtpSvc/1", "/LM", "/LM/W3SVC"} {
		tr.Ensure(loc, "X")
	}
	var got []string
	for _, n := range tr.Nodes() {
		got = append(got, n.Location)
	}
	want := "/LM /LM/SmtpSvc /LM/SmtpSvc/1 /LM/SmtpSvc/2 /LM/SmtpSvc/2/Domain/A.com /LM/SmtpSvc/2/Domain/b.com /LM/SmtpSvc/10 /LM/W3SVC"
	if strings.Join(got, " ") != want {
		t.Fatalf("order:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if CompareLocations("/LM/SmtpSvc/9", "/LM/SmtpSvc/10") >= 0 || CompareLocations("/lm/smtpsvc", "/LM/SmtpSvc") != 0 {
		t.Fatal("CompareLocations: numeric or case-insensitive order broken")
	}
}

// TestSortKeyMatchesCompareLocations checks that the precomputed sort keys
// Nodes uses order Locations exactly as CompareLocations does.
func TestSortKeyMatchesCompareLocations(t *testing.T) {
	segs := []string{"", "LM", "lm", "SmtpSvc", "smtpsvc", "1", "01", "2", "10", "9", "0", "00", "Domain", "*.contoso.com",
		"Ä.example", "ä.example", "-x", "a", "ab", "abc", "Ab", "18446744073709551615", "123456789012345678", "12345678901234567890"}
	r := rand.New(rand.NewPCG(1, 2))
	loc := func() string {
		n := r.IntN(5) + 1
		parts := make([]string, n)
		for i := range parts {
			parts[i] = segs[r.IntN(len(segs))]
		}
		return strings.Join(parts, "/")
	}
	sign := func(c int) int { return cmp.Compare(c, 0) }
	for range 20000 {
		a, b := loc(), loc()
		if got, want := sign(strings.Compare(sortKey(a), sortKey(b))), sign(CompareLocations(a, b)); got != want {
			t.Fatalf("%q vs %q: sort keys say %d, CompareLocations %d", a, b, got, want)
		}
	}
}

// TestWindowsLineEndsAndBOM loads the sample as Windows would store it:
// UTF-8 byte order mark and CRLF line ends, with the same result.
func TestWindowsLineEndsAndBOM(t *testing.T) {
	lf, err := os.ReadFile("testdata/sample.xml")
	if err != nil {
		t.Fatal(err)
	}
	crlf := append([]byte("\xef\xbb\xbf"), bytes.ReplaceAll(lf, []byte("\n"), []byte("\r\n"))...)
	a, err := Parse(lf)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse(crlf)
	if err != nil {
		t.Fatalf("CRLF + BOM: %v", err)
	}
	if !a.Equal(b) || a.Version != b.Version {
		t.Fatalf("CRLF + BOM reads differently: %v", Diff(a, b))
	}
	// Our own files, in CRLF, too (they take the general reader).
	own := bigTree(2, 6).Bytes()
	c, err := Parse(bytes.ReplaceAll(own, []byte("\n"), []byte("\r\n")))
	if err != nil || !c.Equal(bigTree(2, 6)) {
		t.Fatalf("CRLF copy of a saved file: %v", err)
	}
}

// TestDomainInheritsFromItsServer checks that inheritance walks the path as
// IIS does: a domain node takes its virtual server's value before the
// service's, and the service's when the server has none.
func TestDomainInheritsFromItsServer(t *testing.T) {
	tr := New()
	tr.Ensure(schema.ServiceLocation, ClassService).Set("RelayForAuth", "0")
	tr.Ensure(schema.ServerLocation(1), ClassServer).Set("RelayForAuth", "1")
	tr.Ensure(schema.ServerLocation(2), ClassServer)
	tr.Ensure(schema.DomainLocation(1, "example.com"), ClassDomain)
	tr.Ensure(schema.DomainLocation(2, "example.com"), ClassDomain)
	mustEffective(t, tr, schema.DomainLocation(1, "example.com"), "RelayForAuth", 1, FromService)
	mustEffective(t, tr, schema.DomainLocation(2, "example.com"), "RelayForAuth", 0, FromService)
}
