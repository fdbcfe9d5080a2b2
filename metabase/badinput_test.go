package metabase

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// doc wraps node elements in a MetaBase.xml document; the first node
// element starts on line 4.
func doc(nodes string) string {
	return "<?xml version =\"1.0\"?>\n<configuration xmlns=\"urn:microsoft-catalog:XML_Metabase_V64_0\">\n<MBProperty>\n" +
		nodes + "\n</MBProperty>\n</configuration>\n"
}

const goodServers = `<IIsSmtpService	Location ="/LM/SmtpSvc"
		MaxMessageSize="2097152"
	>
</IIsSmtpService>
<IIsSmtpServer	Location ="/LM/SmtpSvc/1"
		ServerBindings="127.0.0.1:2525:"
	>
</IIsSmtpServer>
`

func TestMalformedXMLNamesTheLine(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"unclosed element", doc(goodServers + "<IIsSmtpServer Location =\"/LM/SmtpSvc/2\">\n"), "line 14"},
		{"mismatched end tag", doc("<IIsSmtpServer Location =\"/LM/SmtpSvc/1\">\n</IIsSmtpDomain>"), "line 5"},
		{"bad attribute syntax", doc("<IIsSmtpServer Location =\"/LM/SmtpSvc/1\"\n\t\tMaxRecipients=100\n>\n</IIsSmtpServer>"), "line 5"},
		{"unescaped ampersand", doc("\n\n<IIsSmtpServer Location =\"/LM/SmtpSvc/1\" ServerComment=\"a & b\">\n</IIsSmtpServer>"), "line 6"},
		{"truncated", doc(goodServers)[:150], "line "},
		{"two roots", "<IIsSmtpService Location =\"/LM/SmtpSvc\"/>\n<IIsSmtpServer Location =\"/LM/SmtpSvc/1\"/>\n", "line 2"},
		{"empty", "", "malformed XML"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if err == nil {
				t.Fatal("parsed without error")
			}
			if !strings.Contains(err.Error(), "malformed XML") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

func TestStructureErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"duplicate Location", doc(goodServers + "<IIsSmtpServer Location =\"/lm/smtpsvc/1/\"></IIsSmtpServer>"), "Location /lm/smtpsvc/1/ appears twice"},
		{"duplicate property", doc("<IIsSmtpServer Location =\"/LM/SmtpSvc/1\" HopCount=\"1\" HopCount=\"2\"></IIsSmtpServer>"), "/LM/SmtpSvc/1: property HopCount appears twice"},
		{"Custom without ID", doc("<IIsSmtpServer Location =\"/LM/SmtpSvc/1\"><Custom Name=\"X\" Value=\"1\" Type=\"DWORD\"/></IIsSmtpServer>"), `/LM/SmtpSvc/1: <Custom Name="X">: ID "" is not a number`},
		{"Custom bad Type", doc("<IIsSmtpServer Location =\"/LM/SmtpSvc/1\"><Custom Name=\"X\" ID=\"1\" Value=\"1\" Type=\"QWORD\"/></IIsSmtpServer>"), "unknown metabase type"},
		{"relative Location", doc("<IIsSmtpServer Location =\"LM/SmtpSvc/1\"></IIsSmtpServer>"), "must start with /"},
		{"bad ChangeNumber", doc("<IIS_Global Location =\".\" ChangeNumber=\"x\"></IIS_Global>"), "ChangeNumber"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestBadValuesRefused checks that each invalid value is reported with its
// Location and property, and that Store.Save writes nothing.
func TestBadValuesRefused(t *testing.T) {
	for _, tc := range []struct{ name, nodes, want string }{
		{"DWORD not a number", strings.Replace(goodServers, `MaxMessageSize="2097152"`, `MaxMessageSize="two megabytes"`, 1),
			`/LM/SmtpSvc: MaxMessageSize: DWORD "two megabytes" is not a number or a known flag name`},
		{"DWORD overflow", strings.Replace(goodServers, `MaxMessageSize="2097152"`, `MaxMessageSize="4294967296"`, 1),
			`/LM/SmtpSvc: MaxMessageSize: DWORD "4294967296"`},
		{"MaxRecipients zero", goodServers + "<IIsSmtpServer Location =\"/LM/SmtpSvc/2\" ServerBindings=\"127.0.0.1:2526:\" MaxRecipients=\"0\"></IIsSmtpServer>",
			"/LM/SmtpSvc/2: MaxRecipients: 0 is out of range 1–4294967295"},
		{"Priority too big", goodServers + `<IIsConfigObject Location ="/LM/SmtpSvc/1/EventManager/EventTypes/{FF3CAA23-00B9-11D2-9DFB-00C04FA322BA}/Bindings/{6A1D5C1E-3F2B-4C8D-9E0F-1A2B3C4D5E6F}/SourceProperties" Priority="40000"></IIsConfigObject>`,
			"/LM/SmtpSvc/1/EventManager/EventTypes/{FF3CAA23-00B9-11D2-9DFB-00C04FA322BA}/Bindings/{6A1D5C1E-3F2B-4C8D-9E0F-1A2B3C4D5E6F}/SourceProperties: Priority: 40000 is out of range 0–32767"},
		{"bad binding port", strings.Replace(goodServers, "127.0.0.1:2525:", "10.0.0.1:99999:", 1),
			`/LM/SmtpSvc/1: ServerBindings: binding "10.0.0.1:99999:": port "99999" is not 1–65535`},
		{"bad binding address", strings.Replace(goodServers, "127.0.0.1:2525:", "10.0.0.300:25:", 1),
			`/LM/SmtpSvc/1: ServerBindings: binding "10.0.0.300:25:": "10.0.0.300" is not an IP address`},
		{"property on the wrong node kind", goodServers + "<IIsSmtpServer Location =\"/LM/SmtpSvc/2\" ServerBindings=\"127.0.0.1:2526:\" RouteActionString=\"[127.0.0.1]\"></IIsSmtpServer>",
			"/LM/SmtpSvc/2: RouteActionString: does not belong on a server node"},
		{"binding on the service", strings.Replace(goodServers, `MaxMessageSize="2097152"`, `ServerBindings="127.0.0.1:25:"`, 1),
			"/LM/SmtpSvc: ServerBindings: does not belong on a service node"},
		{"duplicate bindings", goodServers + "<IIsSmtpServer Location =\"/LM/SmtpSvc/2\" ServerBindings=\"127.0.0.1:2525:\"></IIsSmtpServer>",
			"/LM/SmtpSvc/2: ServerBindings: binding 127.0.0.1:2525: is also used by /LM/SmtpSvc/1"},
		{"all-addresses binding takes the port", goodServers + "<IIsSmtpServer Location =\"/LM/SmtpSvc/2\" ServerBindings=\":2525:\"></IIsSmtpServer>",
			"/LM/SmtpSvc/2: ServerBindings: binding :2525: is also used by /LM/SmtpSvc/1 (127.0.0.1:2525:)"},
		{"binding listed twice", strings.Replace(goodServers, `ServerBindings="127.0.0.1:2525:"`, `ServerBindings="127.0.0.1:2525:&#xA;127.0.0.1:2525:"`, 1),
			"/LM/SmtpSvc/1: ServerBindings: binding 127.0.0.1:2525: is listed twice"},
		{"unknown flag name", goodServers + "<IIsSmtpDomain Location =\"/LM/SmtpSvc/1/Domain/example.com\" RouteAction=\"SMTP_ALIAS | SMTP_TELEPORT\"></IIsSmtpDomain>",
			`/LM/SmtpSvc/1/Domain/example.com: RouteAction: DWORD "SMTP_ALIAS | SMTP_TELEPORT" is not a number or a known flag name`},
		{"bad retry list", strings.Replace(goodServers, `MaxMessageSize="2097152"`, `SmtpRemoteProgressiveRetry="15,0,60"`, 1),
			`/LM/SmtpSvc: SmtpRemoteProgressiveRetry: retry list "15,0,60": "0" is not 1–10080 minutes`},
		{"bad smart host", strings.Replace(goodServers, `MaxMessageSize="2097152"`, `SmartHost="10.0.0.1"`, 1),
			"/LM/SmtpSvc: SmartHost: smart host \"10.0.0.1\": IP address 10.0.0.1 must be written in brackets"},
		{"wrong element for a domain", goodServers + "<IIsSmtpServer Location =\"/LM/SmtpSvc/1/Domain/example.com\" RouteAction=\"16\"></IIsSmtpServer>",
			"/LM/SmtpSvc/1/Domain/example.com: element <IIsSmtpServer> should be <IIsSmtpDomain> for a domain node"},
		{"bad virtual server number", goodServers + "<IIsSmtpServer Location =\"/LM/SmtpSvc/one\"></IIsSmtpServer>",
			`/LM/SmtpSvc/one: "one" is not a virtual server number`},
		{"Custom DWORD not a number", goodServers + "<IIsSmtpServer Location =\"/LM/SmtpSvc/3\" ServerBindings=\"127.0.0.1:2527:\"><Custom Name=\"Vendor\" ID=\"70001\" Value=\"lots\" Type=\"DWORD\" UserType=\"IIS_MD_UT_SERVER\" Attributes=\"NO_ATTRIBUTES\"/></IIsSmtpServer>",
			`/LM/SmtpSvc/3: Vendor: DWORD "lots" is not a number`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := Parse([]byte(doc(tc.nodes)))
			if err != nil {
				t.Fatalf("Parse: %v (values are checked by Validate, not Parse)", err)
			}
			probs := tr.Validate()
			if probs == nil {
				t.Fatal("Validate found nothing")
			}
			found := false
			for _, p := range probs {
				found = found || strings.Contains(p.Error(), tc.want)
			}
			if !found {
				t.Fatalf("problems %q; want one containing %q", probs.Error(), tc.want)
			}

			// The store refuses it whole: file and history unchanged.
			dir := t.TempDir()
			s := Open(filepath.Join(dir, "MetaBase.xml"))
			good, err := Parse([]byte(doc(goodServers)))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Save(good); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(s.Path)
			wrote, err := s.Save(tr)
			if err == nil || wrote || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Save of an invalid tree: wrote=%v err=%v", wrote, err)
			}
			after, _ := os.ReadFile(s.Path)
			if !bytes.Equal(before, after) {
				t.Fatal("the refused save changed MetaBase.xml")
			}
			if vs, _ := s.Versions(); !slices.Equal(vs, []uint64{1}) {
				t.Fatalf("history %v after a refused save", vs)
			}
			ents, _ := os.ReadDir(dir)
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			if strings.Join(names, " ") != ".MetaBase.xml.lock MetaBase.xml history" {
				t.Fatalf("folder holds %v after a refused save, want the lock file, MetaBase.xml and history", names)
			}
		})
	}
}

func TestBindingsThatDoNotCollide(t *testing.T) {
	tr, err := Parse([]byte(doc(goodServers +
		"<IIsSmtpServer Location =\"/LM/SmtpSvc/2\" ServerBindings=\"127.0.0.2:2525:&#xA;127.0.0.1:2526:\"></IIsSmtpServer>\n" +
		"<IIsSmtpServer Location =\"/LM/SmtpSvc/3\" ServerBindings=\":2527:&#xA;127.0.0.1:2527:mx.example.com\"></IIsSmtpServer>")))
	if err != nil {
		t.Fatal(err)
	}
	if probs := tr.Validate(); probs != nil {
		t.Fatalf("distinct addresses or ports reported as a clash: %v", probs)
	}
}

// TestValidateRefusesTextXMLCannotHold checks that a value MetaBase.xml
// cannot carry (invalid UTF-8, a forbidden control character) is refused by
// name, so no writer (ds2mb, mbctl) can produce an unparsable file.
func TestValidateRefusesTextXMLCannotHold(t *testing.T) {
	for name, text := range map[string]string{"invalid UTF-8": "mail\xffexample", "control character": "mail\x01example"} {
		tr := New()
		tr.Ensure("/LM/SmtpSvc/1", ClassServer).Set("FullyQualifiedDomainName", text)
		probs := tr.Validate()
		if len(probs) != 1 || probs[0].Location != "/LM/SmtpSvc/1" || probs[0].Property != "FullyQualifiedDomainName" {
			t.Errorf("%s: Validate() = %v, want one problem naming /LM/SmtpSvc/1 FullyQualifiedDomainName", name, probs)
		}
	}
}
