package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/deploy/localdir"
	"github.com/ds2mb/ds2mb/smtpsvc/queue"
)

// run runs a command and returns its exit code and output.
func run(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	return 0, string(out)
}

// systemStatus is the part of `mbctl status --json` the test reads.
type systemStatus struct {
	Replicator *struct {
		Version uint64 `json:"version"`
		Stamp   string `json:"stamp"`
	} `json:"replicator"`
	MetabaseVersion uint64 `json:"metabaseVersion"`
	Worker          *struct {
		Version uint64 `json:"version"`
	} `json:"worker"`
	InStep bool `json:"inStep"`
}

// TestOperatorTour is the quick start's tour as a test, with the real
// binaries: `mbctl dir set` refuses a bad value before writing, applies a
// good one, `mbctl status` shows it reach the worker (the test prints the
// edit-to-serving time), `mbctl explain` names the DN and attribute of the
// replicated value and "local" for a binding added with mbctl, a message
// sent afterwards is delivered into the local store, and `mbctl queue`
// lists, retries and deletes a message its smart host cannot take.
func TestOperatorTour(t *testing.T) {
	sp := startSpine(t)
	mbctl := build(t, sp.bin, "cmd/mbctl")
	conn := []string{"--ldap-url", sp.srv.URL, "--bind-dn", sp.srv.BindDN, "--bind-password-file", sp.password,
		"--base-dn", localdir.SampleConfigDN, "--server", "SERVER01"}
	dir := func(args ...string) (int, string) {
		return run(t, mbctl, append(append([]string{"dir", args[0]}, conn...), args[1:]...)...)
	}
	status := func() (systemStatus, string) {
		_, out := run(t, mbctl, "status", "--json", "--metabase", sp.mb, "--replicator", sp.replAddr, "--worker", sp.workerAddr)
		var st systemStatus
		json.Unmarshal([]byte(out), &st)
		return st, out
	}

	// Refused before anything is written.
	if code, out := dir("set", "--vs", "1", "MaxRecipients", "0"); code != 1 || !strings.Contains(out, "out of range") || !strings.Contains(out, "nothing written") {
		t.Errorf("dir set MaxRecipients 0: exit %d, %q; want a refusal naming the range", code, out)
	}
	if code, out := dir("set", "--vs", "1", "msExchSmtpMaxRecipients", "lots"); code != 1 || !strings.Contains(out, "not an integer") {
		t.Errorf("dir set msExchSmtpMaxRecipients lots: exit %d, %q", code, out)
	}
	if code, out := dir("set", "--vs", "1", "NoSuchProperty", "1"); code != 1 || !strings.Contains(out, "neither a metabase property nor a directory attribute") {
		t.Errorf("dir set NoSuchProperty: exit %d, %q", code, out)
	}
	if code, out := dir("get", "--vs", "1", "MaxRecipients"); code != 0 || !strings.Contains(out, "msExchSmtpMaxRecipients = 100\n") {
		t.Errorf("after the refusals the directory holds: exit %d, %q; want the sample's 100", code, out)
	}

	before, out := status()
	if before.Worker == nil || before.Replicator == nil {
		t.Fatalf("mbctl status before the edit:\n%s", out)
	}
	t0 := time.Now()
	if code, out := dir("set", "--vs", "1", "MaxRecipients", "42"); code != 0 {
		t.Fatalf("dir set MaxRecipients 42: exit %d, %s", code, out)
	}
	var after systemStatus
	for {
		after, out = status()
		if after.InStep && after.Worker.Version > before.Worker.Version {
			break
		}
		if time.Since(t0) > 30*time.Second {
			t.Fatalf("mbctl status never showed the worker serving the edit:\n%s\nds2mb:\n%s", out, sp.repl.tail())
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("mbctl dir set → mbctl status shows the worker serving version %d: %v (mbctl status polled as a person would)",
		after.Worker.Version, time.Since(t0).Round(time.Millisecond))
	if after.Replicator.Stamp == "" || after.Replicator.Stamp <= before.Replicator.Stamp {
		t.Errorf("directory change stamp %q after the edit, %q before", after.Replicator.Stamp, before.Replicator.Stamp)
	}
	if code, out := run(t, mbctl, "status", "--metabase", sp.mb, "--replicator", sp.replAddr, "--worker", sp.workerAddr); code != 0 ||
		!strings.Contains(out, "in step: the worker serves version") || !strings.Contains(out, "smtpsvc") {
		t.Errorf("mbctl status table: exit %d\n%s", code, out)
	}

	code, out := dir("get", "--json", "--vs", "1", "MaxRecipients")
	var dg struct {
		Command, DN, Attribute, Location, Property string
		Values                                     []string
	}
	if err := json.Unmarshal([]byte(out), &dg); code != 0 || err != nil || dg.Command != "get" || !strings.EqualFold(dg.DN, sp.vs1) ||
		dg.Attribute != "msExchSmtpMaxRecipients" || dg.Location != "/LM/SmtpSvc/1" || dg.Property != "MaxRecipients" ||
		len(dg.Values) != 1 || dg.Values[0] != "42" {
		t.Errorf("dir get --json MaxRecipients: exit %d, %v\n%s", code, err, out)
	}

	code, out = run(t, mbctl, "explain", "--metabase", sp.mb, "/LM/SmtpSvc/1", "MaxRecipients")
	if code != 0 || !strings.Contains(out, "MaxRecipients = 42: from attribute msExchSmtpMaxRecipients of ") ||
		!strings.Contains(strings.ToLower(out), strings.ToLower(sp.vs1)) {
		t.Errorf("explain MaxRecipients: exit %d\n%s", code, out)
	}
	code, out = run(t, mbctl, "explain", "--json", "--metabase", sp.mb, "/LM/SmtpSvc/1", "MaxRecipients")
	var ex struct {
		Origin, DN string
		Properties []struct{ Name, Value, Origin, Attribute, DN string }
	}
	if err := json.Unmarshal([]byte(out), &ex); code != 0 || err != nil || ex.Origin != "replicated" || !strings.EqualFold(ex.DN, sp.vs1) ||
		len(ex.Properties) != 1 || ex.Properties[0].Value != "42" || ex.Properties[0].Origin != "replicated" ||
		ex.Properties[0].Attribute != "attribute msExchSmtpMaxRecipients" {
		t.Errorf("explain --json MaxRecipients: exit %d, %v\n%s", code, err, out)
	}
	code, out = run(t, mbctl, "bindings", "add", "--metabase", sp.mb, "--instance", "1", "--event", "OnArrival",
		"--class", "ds2mb.HeaderStamp", "--sink", "Name=X-Local", "--sink", "Value=yes")
	if code != 0 {
		t.Fatalf("bindings add: %s", out)
	}
	id := strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
	loc := "/LM/SmtpSvc/1/EventManager/EventTypes/{FF3CAA23-00B9-11D2-9DFB-00C04FA322BA}/Bindings/" + id
	if code, out := run(t, mbctl, "explain", "--metabase", sp.mb, loc); code != 0 || !strings.Contains(out, loc+": local") {
		t.Errorf("explain of the binding added with mbctl: exit %d\n%s", code, out)
	}

	// dir add: a second binding for virtual server 1, checked with the
	// values it joins, and the worker listens on it; the connection comes
	// from a config file this time (ds2mb.env's KEY=VALUE lines).
	config := writeConfig(t, "# as ds2mb.service reads it\nDS2MB_LDAP_URL="+sp.srv.URL+"\nDS2MB_BIND_DN=\""+sp.srv.BindDN+
		"\"\nDS2MB_BIND_PASSWORD_FILE="+sp.password+"\nDS2MB_BASE_DN="+localdir.SampleConfigDN+"\nDS2MB_SERVER=SERVER01\n")
	dirConf := func(args ...string) (int, string) {
		return run(t, mbctl, append([]string{"dir", args[0], "--config", config}, args[1:]...)...)
	}
	if code, out := dirConf("add", "--vs", "1", "ServerBindings", "127.0.0.1:99999:"); code != 1 || !strings.Contains(out, "nothing written") || !strings.Contains(out, "99999") {
		t.Errorf("dir add of a bad binding: exit %d, %q", code, out)
	}
	if code, out := dirConf("add", "--vs", "1", "ServerBindings", sp.a1+":"); code != 1 || !strings.Contains(out, "already holds") {
		t.Errorf("dir add of a binding already there: exit %d, %q", code, out)
	}
	if code, out := dirConf("add", "--vs", "1", "MaxRecipients", "5"); code != 1 || !strings.Contains(out, "use mbctl dir set") {
		t.Errorf("dir add to a single-valued attribute: exit %d, %q", code, out)
	}
	a2 := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	if code, out := dirConf("add", "--vs", "1", "ServerBindings", a2+":"); code != 0 || !strings.Contains(out, "now 2 values") {
		t.Fatalf("dir add ServerBindings %s: exit %d, %q", a2, code, out)
	}
	if code, out := dirConf("get", "--vs", "1", "ServerBindings"); code != 0 || !strings.Contains(out, "msExchServerBindings = "+a2+":\n") {
		t.Errorf("dir get after dir add: exit %d, %q", code, out)
	}
	for t0 := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		if l, err := banner(a2); err == nil && strings.HasPrefix(l, "220 ") {
			break
		}
		if time.Since(t0) > 30*time.Second {
			t.Fatalf("virtual server 1 never answered on the binding added with mbctl dir add (%s)\nsmtpsvc:\n%s", a2, sp.wrk.tail())
		}
	}
	if code, out := run(t, mbctl, "get", "--metabase", sp.mb, "/LM/SmtpSvc/1", "ServerBindings"); code != 0 || !strings.Contains(out, a2+":") {
		t.Errorf("mbctl get ServerBindings after dir add: exit %d, %q", code, out)
	}

	sendTo(t, sp.a1, "alice@example.com", "bob@example.com", "Subject: tour\r\n\r\ndelivered?\r\n")
	got := delivered(t, filepath.Join(filepath.Dir(sp.mb), "Mailroot", "vsi 1", "Mailbox", "example.com", "bob"), "tour")
	if !strings.Contains(got, "delivered?") {
		t.Errorf("delivered message:\n%s", got)
	}

	// mbctl queue: a message for the relay domain partner.example.org, sent
	// through a smart host on a loopback port nobody listens on, waits in
	// the queue with its last error; retry and delete act on it.
	st0, _ := status()
	if code, out := dir("set", "--vs", "1", "SmartHost", "[127.0.0.1]"); code != 0 {
		t.Fatalf("dir set SmartHost: exit %d, %s", code, out)
	}
	if code, out := dir("set", "--vs", "1", "RemoteSmtpPort", fmt.Sprint(freePort(t))); code != 0 {
		t.Fatalf("dir set RemoteSmtpPort: exit %d, %s", code, out)
	}
	for t0 := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		if st, _ := status(); st.InStep && st.Worker != nil && st.Worker.Version > st0.Worker.Version {
			if code, out := run(t, mbctl, "get", "--metabase", sp.mb, "/LM/SmtpSvc/1", "RemoteSmtpPort"); code == 0 && !strings.Contains(out, "= 25") {
				break
			}
		}
		if time.Since(t0) > 30*time.Second {
			t.Fatalf("the worker never served the smart host edit\nsmtpsvc:\n%s", sp.wrk.tail())
		}
	}
	sendTo(t, sp.a1, "alice@example.com", "carol@partner.example.org", "Subject: waits\r\n\r\nqueued\r\n")
	listQueue := func() []queue.Info {
		t.Helper()
		code, out := run(t, mbctl, "queue", "--json", "--worker", sp.workerAddr)
		var list []queue.Info
		if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil {
			t.Fatalf("queue --json: exit %d, %v\n%s", code, err, out)
		}
		return list
	}
	var waiting queue.Info
	for t0 := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		if list := listQueue(); len(list) == 1 && list[0].Attempts >= 1 && list[0].State == "queued" {
			waiting = list[0]
			break
		}
		if time.Since(t0) > 30*time.Second {
			t.Fatalf("the message never waited in the queue after a failed attempt: %+v\nsmtpsvc:\n%s", listQueue(), sp.wrk.tail())
		}
	}
	t.Logf("queued after attempt %d: %s", waiting.Attempts, waiting.LastError)
	if !strings.Contains(waiting.LastError, "451 4.4.1 cannot connect to [127.0.0.1]: ") || waiting.NextAttempt.Before(time.Now().Add(time.Minute)) || len(waiting.Recipients) != 1 ||
		waiting.Recipients[0].Address != "carol@partner.example.org" || waiting.Recipients[0].Status != "pending" {
		t.Errorf("queued message: %+v; want the refused connection as last error, the next attempt minutes ahead, carol pending", waiting)
	}
	if code, out := run(t, mbctl, "queue", "--worker", sp.workerAddr); code != 0 || !strings.Contains(out, waiting.ID) ||
		!strings.Contains(out, "1 (1 pending)") || !strings.Contains(out, "LAST ERROR") {
		t.Errorf("queue table: exit %d\n%s", code, out)
	}
	if code, out := run(t, mbctl, "queue", "--worker", sp.workerAddr, "retry", waiting.ID); code != 0 || out != waiting.ID+": due now\n" {
		t.Errorf("queue retry: exit %d, %q", code, out)
	}
	for t0 := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		if list := listQueue(); len(list) == 1 && list[0].Attempts > waiting.Attempts && list[0].State == "queued" {
			break
		}
		if time.Since(t0) > 30*time.Second {
			t.Fatalf("queue retry did not bring an attempt: %+v", listQueue())
		}
	}
	if code, out := run(t, mbctl, "queue", "--worker", sp.workerAddr, "delete", "no-such-id"); code != 1 || !strings.Contains(out, "no-such-id") {
		t.Errorf("queue delete of an unknown id: exit %d, %q", code, out)
	}
	if code, out := run(t, mbctl, "queue", "--worker", sp.workerAddr, "delete", waiting.ID); code != 0 || out != waiting.ID+": deleted\n" {
		t.Errorf("queue delete: exit %d, %q", code, out)
	}
	if code, out := run(t, mbctl, "queue", "--worker", sp.workerAddr); code != 0 || out != "the queue is empty\n" {
		t.Errorf("queue after delete: exit %d, %q", code, out)
	}
}

// writeConfig writes an mbctl/ds2mb settings file.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ds2mb.env")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
