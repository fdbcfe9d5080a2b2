package smtpsvc

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/smtpsvc/status"
	"github.com/emersion/go-smtp"
)

// TestStatusEndpoint checks what /status, /healthz, /metrics and the status
// file report for a running worker: the version, each virtual server with
// its bindings and state, sessions open and messages accepted.
func TestStatusEndpoint(t *testing.T) {
	p1, p2 := freePort(t), freePort(t)
	w := startWorker(t, tree(5,
		vsDef{n: 1, ports: []int{p1}, fqdn: "one.example.com"},
		vsDef{n: 2, ports: []int{p2}, off: true},
	).Bytes(), nil)
	w.waitVersion(t, 5)
	for range 3 {
		if err := smtpSession(addr(p1), 1); err != nil {
			t.Fatal(err)
		}
	}
	open, err := smtp.Dial(addr(p1))
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if err := open.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	w.waitStatus(t, "one open session, three messages", func(st status.Status) bool {
		return len(st.Servers) == 2 && st.Servers[0].SessionsOpen == 1 && st.Servers[0].MessagesAccepted == 3
	})

	base := "http://" + w.StatusAddr()
	code, body := httpGet(t, base+"/status")
	var st status.Status
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
		t.Fatalf("/status: %d %s", code, body)
	}
	if st.Version != 5 || !st.Running || st.Refused != nil || st.Metabase != w.path {
		t.Fatalf("/status: %s", body)
	}
	s1, s2 := st.Servers[0], st.Servers[1]
	if s1.Instance != 1 || s1.Location != "/LM/SmtpSvc/1" || !s1.Running || s1.FQDN != "one.example.com" ||
		len(s1.Bindings) != 1 || s1.Bindings[0] != addr(p1) || s1.SessionsOpen != 1 || s1.MessagesAccepted != 3 ||
		s1.Replies[2] < 3 || s1.Connections != 4 {
		t.Errorf("/status virtual server 1: %+v", s1)
	}
	if s2.Instance != 2 || s2.Running || s2.AutoStart {
		t.Errorf("/status virtual server 2 (ServerAutoStart FALSE): %+v", s2)
	}
	if st.Reloads.Applied != 1 || st.Reloads.Duration.Count != 1 {
		t.Errorf("/status reloads: %+v", st.Reloads)
	}

	if code, body := httpGet(t, base+"/healthz"); code != 200 || !strings.Contains(body, "version 5") {
		t.Errorf("/healthz: %d %q", code, body)
	}
	_, metrics := httpGet(t, base+"/metrics")
	for _, want := range []string{
		"smtpsvc_metabase_version 5\n",
		`smtpsvc_sessions_open{vs="1"} 1` + "\n",
		`smtpsvc_messages_total{vs="1",result="accepted"} 3` + "\n",
		`smtpsvc_virtual_server_running{vs="2"} 0` + "\n",
		`smtpsvc_reloads_total{result="applied"} 1` + "\n",
		"smtpsvc_reload_duration_seconds_count 1\n",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// The status file is written (with fsyncs) just after each reload.
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(w.o.StatusFile)
		var fst status.Status
		if err == nil && json.Unmarshal(b, &fst) == nil && fst.Version == 5 && len(fst.Servers) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status file: %v %s", err, b)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
