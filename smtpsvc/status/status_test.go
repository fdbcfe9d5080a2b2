package status

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func sample() Status {
	var tm Timer
	tm.Observe(3 * time.Millisecond)
	tm.Observe(40 * time.Millisecond)
	st := Status{
		Metabase: "/x/MetaBase.xml", Running: true, Version: 7,
		Refused: &Refusal{Version: 8, VersionKnown: true, Reason: "bad", Problems: []Problem{{Location: "/LM/SmtpSvc/1", Property: "MaxRecipients", Reason: "not a number"}}},
		Servers: []Server{{Instance: 1, Location: "/LM/SmtpSvc/1", AutoStart: true, Running: true, Bindings: []string{"127.0.0.1:2525"}, SessionsOpen: 3, MessagesAccepted: 10, MessagesRefused: 2}},
		Reloads: Reloads{Applied: 2, Refused: 1, Duration: tm.Snapshot()},
	}
	st.Servers[0].Replies[2], st.Servers[0].Replies[5] = 10, 2
	return st
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	var mu sync.Mutex
	st := Status{}
	srv := httptest.NewServer(Handler(func() Status { mu.Lock(); defer mu.Unlock(); return st }))
	defer srv.Close()

	if code, body := get(t, srv.URL+"/healthz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/healthz before a configuration runs: %d %q; want 503", code, body)
	}
	mu.Lock()
	st = sample()
	mu.Unlock()
	if code, body := get(t, srv.URL+"/healthz"); code != 200 || !strings.Contains(body, "version 7") {
		t.Fatalf("/healthz: %d %q", code, body)
	}

	code, body := get(t, srv.URL+"/status")
	var got Status
	if code != 200 || json.Unmarshal([]byte(body), &got) != nil {
		t.Fatalf("/status: %d %q", code, body)
	}
	if got.Version != 7 || got.Refused == nil || got.Refused.Version != 8 || got.Refused.Problems[0].Property != "MaxRecipients" ||
		len(got.Servers) != 1 || got.Servers[0].Bindings[0] != "127.0.0.1:2525" || got.Servers[0].SessionsOpen != 3 {
		t.Fatalf("/status decoded to %+v", got)
	}

	_, body = get(t, srv.URL+"/metrics")
	for _, want := range []string{
		"smtpsvc_metabase_version 7\n",
		"smtpsvc_metabase_refused_version 8\n",
		`smtpsvc_reloads_total{result="applied"} 2` + "\n",
		`smtpsvc_reloads_total{result="refused"} 1` + "\n",
		`smtpsvc_reload_duration_seconds_bucket{le="0.005"} 1` + "\n",
		`smtpsvc_reload_duration_seconds_bucket{le="0.05"} 2` + "\n",
		`smtpsvc_reload_duration_seconds_bucket{le="+Inf"} 2` + "\n",
		"smtpsvc_reload_duration_seconds_count 2\n",
		`smtpsvc_sessions_open{vs="1"} 3` + "\n",
		`smtpsvc_transactions_total{vs="1",class="2xx"} 10` + "\n",
		`smtpsvc_transactions_total{vs="1",class="5xx"} 2` + "\n",
		`smtpsvc_messages_total{vs="1",result="refused"} 2` + "\n",
		"# TYPE smtpsvc_reload_duration_seconds histogram\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}

func TestWriteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status.json")
	if err := WriteFile(path, sample()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got Status
	if err := json.Unmarshal(b, &got); err != nil || got.Version != 7 || got.Refused.Reason != "bad" {
		t.Fatalf("status file %s: %v %+v", b, err, got)
	}
}
