package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ds2mb/ds2mb/metabase"
	"github.com/ds2mb/ds2mb/schema"
)

// mbctlBin is the real command, built once by TestMain.
var mbctlBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mbctl-test-")
	if err != nil {
		panic(err)
	}
	mbctlBin = filepath.Join(dir, "mbctl")
	build := exec.Command("go", "build", "-o", mbctlBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		panic("building mbctl: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const sample = "../../metabase/testdata/sample.xml"

func mbctl(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const badFile = `<?xml version ="1.0"?>
<configuration xmlns="urn:microsoft-catalog:XML_Metabase_V64_0">
<MBProperty>
<IIsSmtpService	Location ="/LM/SmtpSvc"
		MaxMessageSize="lots"
	>
</IIsSmtpService>
<IIsSmtpServer	Location ="/LM/SmtpSvc/1"
		MaxRecipients="0"
		ServerBindings="127.0.0.1:25:"
	>
</IIsSmtpServer>
<IIsSmtpServer	Location ="/LM/SmtpSvc/2"
		ServerBindings="10.0.0.1:99999:"
	>
</IIsSmtpServer>
</MBProperty>
</configuration>
`

func TestValidate(t *testing.T) {
	code, out, _ := mbctl(t, "validate", sample)
	if code != 0 || !strings.Contains(out, "valid (version 41") || !strings.Contains(out, "2 nodes of other IIS services kept unread") {
		t.Fatalf("valid sample: exit %d, %q", code, out)
	}

	code, out, errOut := mbctl(t, "validate", writeFile(t, "MetaBase.xml", badFile))
	want := "/LM/SmtpSvc: MaxMessageSize: DWORD \"lots\" is not a number or a known flag name\n" +
		"/LM/SmtpSvc/1: MaxRecipients: 0 is out of range 1–4294967295\n" +
		"/LM/SmtpSvc/2: ServerBindings: binding \"10.0.0.1:99999:\": port \"99999\" is not 1–65535\n"
	if code != 1 || out != want || !strings.Contains(errOut, "3 problem(s)") {
		t.Fatalf("invalid file: exit %d\nstdout:\n%s\nwant:\n%s\nstderr: %s", code, out, want, errOut)
	}

	code, _, errOut = mbctl(t, "validate", writeFile(t, "MetaBase.xml", "<configuration>\n<MBProperty>\n<IIsSmtpServer Location=\"/LM/SmtpSvc/1\">\n</MBProperty>\n</configuration>\n"))
	if code != 1 || !strings.Contains(errOut, "malformed XML: line 4") {
		t.Fatalf("malformed file: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = mbctl(t, "validate", filepath.Join(t.TempDir(), "missing.xml"))
	if code != 1 || !strings.Contains(errOut, "no such file") {
		t.Fatalf("missing file: exit %d, stderr %q", code, errOut)
	}
	if code, _, _ = mbctl(t, "validate"); code != 2 {
		t.Fatalf("validate without FILE: exit %d, want 2", code)
	}

	code, out, _ = mbctl(t, "validate", "--json", writeFile(t, "MetaBase.xml", badFile))
	var v struct {
		Valid    bool
		Problems []struct{ Location, Property, Reason string }
	}
	if err := json.Unmarshal([]byte(out), &v); code != 1 || err != nil || v.Valid || len(v.Problems) != 3 ||
		v.Problems[1].Location != "/LM/SmtpSvc/1" || v.Problems[1].Property != "MaxRecipients" || !strings.Contains(v.Problems[1].Reason, "out of range") {
		t.Fatalf("validate --json of the invalid file: exit %d, %v\n%s", code, err, out)
	}
	code, out, _ = mbctl(t, "validate", "--json", sample)
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil || !v.Valid || len(v.Problems) != 0 {
		t.Fatalf("validate --json of the sample: exit %d, %v\n%s", code, err, out)
	}
}

func TestShow(t *testing.T) {
	code, out, _ := mbctl(t, "show", "--metabase", sample)
	if code != 0 {
		t.Fatalf("listing: exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 17 || lines[0] != "/\tIIS_ROOT" || lines[2] != "/LM/SmtpSvc\tIIsSmtpService" || !strings.Contains(out, "/LM/W3SVC\tIIsWebService\n") {
		t.Fatalf("listing of %d lines:\n%s", len(lines), out)
	}

	// Properties of one node, as set; the Location is case-insensitive.
	code, out, _ = mbctl(t, "show", "--metabase", sample, "/lm/smtpsvc/1")
	for _, want := range []string{
		"/LM/SmtpSvc/1\tIIsSmtpServer\n",
		"  AuthFlags = AuthBasic | AuthAnonymous | AuthNTLM  [Custom ID=6000 Type=DWORD UserType=IIS_MD_UT_SERVER Attributes=INHERIT]\n",
		"  MaxRecipients = 64000\n",
		`  ServerBindings = "127.0.0.1:2525:\n\t\t\t127.0.0.2:2525:"` + "\n",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("show node: exit %d, output lacks %q:\n%s", code, want, out)
		}
	}

	// Secure values are masked, as set and as effective.
	code, out, _ = mbctl(t, "show", "--metabase", sample, "/LM/SmtpSvc/1/Domain/*.contoso.com")
	if code != 0 || strings.Contains(out, "p4ssw0rd") || !strings.Contains(out, "  RoutePassword = ********\n") {
		t.Fatalf("secure value shown:\n%s", out)
	}

	// Effective values: set, inherited, default; every catalogue property of a server.
	code, out, _ = mbctl(t, "show", "--effective", "--metabase", sample, "/LM/SmtpSvc/2")
	for _, want := range []string{
		"  AuthFlags = 1 (inherited)\n", "  MaxMessageSize = 10485760 (inherited)\n", "  MaxRecipients = 100 (default)\n",
		"  DoMasquerade = TRUE (set)\n", "  ServerAutoStart = TRUE (default)\n", "  ServerBindings = 127.0.0.1:2526: (set)\n",
		"  RoutePassword = ******** (inherited)\n", "  SmartHost (unset)\n",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("show --effective: exit %d, output lacks %q:\n%s", code, want, out)
		}
	}
	for i := range schema.Properties() {
		p := &schema.Properties()[i]
		if p.Nodes.Has(schema.NodeServer) && !regexp.MustCompile(`(?m)^  `+regexp.QuoteMeta(p.Name)+`( =| \(unset\))`).MatchString(out) {
			t.Errorf("show --effective omits the server property %s", p.Name)
		}
	}
	if strings.Contains(out, "s3cret") {
		t.Fatal("secure value shown by --effective")
	}
	// A binding's source properties.
	code, out, _ = mbctl(t, "show", "--effective", "--metabase", sample,
		"/LM/SmtpSvc/1/EventManager/EventTypes/{FF3CAA23-00B9-11D2-9DFB-00C04FA322BA}/Bindings/{6A1D5C1E-3F2B-4C8D-9E0F-1A2B3C4D5E6F}/SourceProperties")
	if code != 0 || !strings.Contains(out, "  Priority = 8192 (set)\n") || !strings.Contains(out, "  Rule = MAIL FROM=*@example.com;RCPT TO=* (set)\n") {
		t.Fatalf("binding source properties:\n%s", out)
	}

	// --metabase defaults to $DS2MB_METABASE.
	t.Setenv("DS2MB_METABASE", sample)
	if code, out, _ = mbctl(t, "show", "/LM/SmtpSvc"); code != 0 || !strings.Contains(out, "  DefaultDomain = mail.example.com\n") {
		t.Fatalf("show with $DS2MB_METABASE: exit %d\n%s", code, out)
	}
	if code, _, errOut := mbctl(t, "show", "/LM/SmtpSvc/9"); code != 1 || !strings.Contains(errOut, "/LM/SmtpSvc/9: no node") {
		t.Fatalf("missing node: exit %d, %q", code, errOut)
	}
}

// saveVersions writes three versions of the sample to a store and returns its path.
func saveVersions(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "MetaBase.xml")
	s := metabase.Open(path)
	tr, err := metabase.Load(sample)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []string{"1000000", "2000000", "3000000"} {
		tr.Node(schema.ServiceLocation).Set("MaxMessageSize", size)
		if _, err := s.Save(tr); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func TestDiffHistoryRestore(t *testing.T) {
	path := saveVersions(t)
	code, out, _ := mbctl(t, "history", "--metabase", path)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "1\t") || !strings.HasSuffix(lines[2], "(current)") {
		t.Fatalf("history: exit %d\n%s", code, out)
	}

	code, out, _ = mbctl(t, "diff", "--metabase", path, "v1", "v3")
	if code != 1 || out != "~ /LM/SmtpSvc: MaxMessageSize: \"1000000\" -> \"3000000\"\n" {
		t.Fatalf("diff v1 v3: exit %d\n%s", code, out)
	}
	if code, out, _ = mbctl(t, "diff", "--metabase", path, "v3", path); code != 0 || out != "" {
		t.Fatalf("diff of equal content: exit %d %q", code, out)
	}
	code, out, _ = mbctl(t, "diff", sample, path)
	if code != 1 || !strings.Contains(out, "~ /LM/SmtpSvc: MaxMessageSize: \"10485760\" -> \"3000000\"\n") {
		t.Fatalf("diff of files: exit %d\n%s", code, out)
	}

	code, out, _ = mbctl(t, "restore", "--metabase", path, "1")
	if code != 0 || !strings.HasPrefix(out, "restored version 1 as version 4\n") || !strings.Contains(out, "local pin: the next replication") {
		t.Fatalf("restore: exit %d %q", code, out)
	}
	cur, err := metabase.Load(path)
	if err != nil || cur.Version != 4 || cur.Node(schema.ServiceLocation).Text("MaxMessageSize") != "1000000" {
		t.Fatalf("after restore: %v version %d", err, cur.Version)
	}
	if code, out, _ = mbctl(t, "restore", "--metabase", path, "4"); code != 0 || !strings.Contains(out, "nothing written") {
		t.Fatalf("restore of the current content: exit %d %q", code, out)
	}
	code, out, _ = mbctl(t, "restore", "--json", "--metabase", path, "2")
	var r struct {
		Restored, Version uint64
		Written           bool
		Note              string
	}
	if err := json.Unmarshal([]byte(out), &r); code != 0 || err != nil || r.Restored != 2 || r.Version != 5 || !r.Written || !strings.Contains(r.Note, "local pin") {
		t.Fatalf("restore --json 2: exit %d, %v %q", code, err, out)
	}
	if code, _, errOut := mbctl(t, "restore", "--metabase", path, "99"); code != 1 || !strings.Contains(errOut, "version 99 is not in the history folder") {
		t.Fatalf("restore of a missing version: exit %d %q", code, errOut)
	}
	if code, _, _ := mbctl(t, "restore", "--metabase", path, "x"); code != 2 {
		t.Fatalf("restore x: exit %d, want 2", code)
	}
}

func TestDiffVersionAndJSON(t *testing.T) {
	path := saveVersions(t)
	// --version N: from version N to the current file.
	code, out, errOut := mbctl(t, "diff", "--metabase", path, "--version", "1")
	if code != 1 || out != "~ /LM/SmtpSvc: MaxMessageSize: \"1000000\" -> \"3000000\"\n" || !strings.Contains(errOut, "from version 1 to the current file (version 3)") {
		t.Fatalf("diff --version 1: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ = mbctl(t, "diff", "--metabase", path, "--version", "3"); code != 0 || out != "" {
		t.Fatalf("diff --version of the current version: exit %d %q", code, out)
	}
	if code, _, errOut = mbctl(t, "diff", "--metabase", path, "--version", "7"); code != 1 || !strings.Contains(errOut, "version 7 is not in the history folder") {
		t.Fatalf("diff --version of a missing version: exit %d %q", code, errOut)
	}
	if code, _, _ = mbctl(t, "diff", "--metabase", path, "--version", "1", "v2", "v3"); code != 2 {
		t.Fatalf("diff --version with A B: exit %d, want 2", code)
	}
	if code, _, _ = mbctl(t, "diff", "--metabase", path, "--version", "x"); code != 2 {
		t.Fatalf("diff --version x: exit %d, want 2", code)
	}

	var changes []changeJSON
	code, out, _ = mbctl(t, "diff", "--json", "--metabase", path, "v1", "v2")
	if err := json.Unmarshal([]byte(out), &changes); code != 1 || err != nil || len(changes) != 1 ||
		changes[0] != (changeJSON{Kind: "property changed", Location: "/LM/SmtpSvc", Property: "MaxMessageSize", Old: "1000000", New: "2000000"}) {
		t.Fatalf("diff --json: exit %d %v\n%s", code, err, out)
	}
	var versions []versionJSON
	code, out, _ = mbctl(t, "history", "--json", "--metabase", path)
	if err := json.Unmarshal([]byte(out), &versions); code != 0 || err != nil || len(versions) != 3 ||
		versions[0].Version != 1 || versions[0].Current || !versions[2].Current || versions[2].Bytes == 0 {
		t.Fatalf("history --json: exit %d %v\n%s", code, err, out)
	}
	var nodes []nodeJSON
	code, out, _ = mbctl(t, "show", "--json", "--metabase", sample)
	if err := json.Unmarshal([]byte(out), &nodes); code != 0 || err != nil || len(nodes) != 17 || nodes[2].Location != "/LM/SmtpSvc" || nodes[2].Class != "IIsSmtpService" {
		t.Fatalf("show --json: exit %d %v\n%s", code, err, out)
	}
	var node nodeJSON
	code, out, _ = mbctl(t, "show", "--json", "--effective", "--metabase", sample, "/LM/SmtpSvc/2")
	if err := json.Unmarshal([]byte(out), &node); code != 0 || err != nil || node.Class != "IIsSmtpServer" {
		t.Fatalf("show --json --effective: exit %d %v\n%s", code, err, out)
	}
	got := map[string]propJSON{}
	for _, p := range node.Properties {
		got[p.Name] = p
	}
	if got["MaxRecipients"].Value != "100" || got["MaxRecipients"].Source != "default" || got["RoutePassword"].Value != metabase.Masked ||
		got["SmartHost"].Source != "unset" || got["DoMasquerade"].Source != "set" || strings.Contains(out, "s3cret") {
		t.Fatalf("show --json --effective values:\n%s", out)
	}
}

func TestGet(t *testing.T) {
	// The value alone on stdout, its source on stderr: set, inherited, default.
	for _, c := range []struct{ loc, prop, value, source string }{
		{"/LM/SmtpSvc/1", "MaxRecipients", "64000", "set"},
		{"/lm/smtpsvc/2", "maxmessagesize", "10485760", "inherited"},
		{"/LM/SmtpSvc/2", "MaxRecipients", "100", "default"},
		{"/LM/SmtpSvc/1", "ServerBindings", "127.0.0.1:2525:\n127.0.0.2:2525:", "set"},
		{"/LM/SmtpSvc/1/Domain/*.contoso.com", "RoutePassword", metabase.Masked, "set"},
	} {
		code, out, errOut := mbctl(t, "get", "--metabase", sample, c.loc, c.prop)
		if code != 0 || out != c.value+"\n" || !strings.HasSuffix(errOut, "("+c.source+")\n") {
			t.Errorf("get %s %s: exit %d, %q, %q; want %q (%s)", c.loc, c.prop, code, out, errOut, c.value, c.source)
		}
	}
	var p propJSON
	code, out, _ := mbctl(t, "get", "--json", "--metabase", sample, "/LM/SmtpSvc/2", "MaxMessageSize")
	if err := json.Unmarshal([]byte(out), &p); code != 0 || err != nil ||
		p != (propJSON{Location: "/LM/SmtpSvc/2", Name: "MaxMessageSize", Value: "10485760", Source: "inherited", Catalogue: true}) {
		t.Fatalf("get --json: exit %d %v\n%s", code, err, out)
	}
	// No value: exit 1 with the reason; unknown names and nodes likewise.
	for _, c := range []struct{ loc, prop, want string }{
		{"/LM/SmtpSvc/2", "SmartHost", "SmartHost is not set, not inherited and has no default"},
		{"/LM/SmtpSvc/1", "NoSuchThing", "NoSuchThing is neither set on this node nor a catalogue property"},
		{"/LM/SmtpSvc/9", "MaxRecipients", "/LM/SmtpSvc/9: no node"},
	} {
		if code, out, errOut := mbctl(t, "get", "--metabase", sample, c.loc, c.prop); code != 1 || out != "" || !strings.Contains(errOut, c.want) {
			t.Errorf("get %s %s: exit %d, %q, %q; want exit 1 and %q", c.loc, c.prop, code, out, errOut, c.want)
		}
	}
	if code, _, errOut := mbctl(t, "get", "--metabase", writeFile(t, "MetaBase.xml", badFile), "/LM/SmtpSvc/1", "MaxRecipients"); code != 1 || !strings.Contains(errOut, "MaxRecipients: invalid") {
		t.Fatalf("get of an invalid value: exit %d %q", code, errOut)
	}
	if code, _, _ := mbctl(t, "get", "--metabase", sample, "/LM/SmtpSvc/1"); code != 2 {
		t.Fatalf("get without PROPERTY: exit %d, want 2", code)
	}
}

func TestUsage(t *testing.T) {
	if code, _, errOut := mbctl(t); code != 2 || !strings.Contains(errOut, "Usage:") {
		t.Fatalf("no command: exit %d", code)
	}
	if code, _, errOut := mbctl(t, "frobnicate"); code != 2 || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: exit %d %q", code, errOut)
	}
	if code, _, _ := mbctl(t, "show", "--nope"); code != 2 {
		t.Fatalf("unknown flag: exit %d", code)
	}
	if code, out, _ := mbctl(t, "version"); code != 0 || !strings.HasPrefix(out, "mbctl ") {
		t.Fatalf("version: exit %d %q", code, out)
	}
}

// TestExecutable runs the built command: exit codes and output reach the
// caller through a real process.
func TestExecutable(t *testing.T) {
	cmd := exec.Command(mbctlBin, "validate", writeFile(t, "MetaBase.xml", badFile))
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || strings.Count(string(out), "\n") != 3 || !strings.Contains(string(out), "/LM/SmtpSvc/1: MaxRecipients: ") {
		t.Fatalf("mbctl validate of a bad file: %v\n%s", err, out)
	}
	cmd = exec.Command(mbctlBin, "show", "--effective", "/LM/SmtpSvc/1")
	cmd.Env = append(os.Environ(), "DS2MB_METABASE="+sample)
	out, err = cmd.Output()
	if err != nil || !strings.Contains(string(out), "  AuthFlags = 7 (set)\n") {
		t.Fatalf("mbctl show --effective: %v\n%s", err, out)
	}
	path := saveVersions(t)
	out, err = exec.Command(mbctlBin, "restore", "--metabase", path, "2").Output()
	if err != nil || !strings.HasPrefix(string(out), "restored version 2 as version 4\n") {
		t.Fatalf("mbctl restore: %v %q", err, out)
	}
}
