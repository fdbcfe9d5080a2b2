package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/deploy/localdir"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitStatus polls /status until cond holds.
func waitStatus(t *testing.T, addr, what string, cond func(statusJSON) bool) statusJSON {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		var st statusJSON
		if _, body, err := get("http://" + addr + "/status"); err == nil && json.Unmarshal([]byte(body), &st) == nil && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStatusEndpoints: --status-addr serves /status with the version
// written and a refused directory value (DN, attribute, reason), /healthz
// (200 once replicated, 503 while the directory is away), the change
// stamp of a good edit, and /metrics with its latency observation.
func TestStatusEndpoints(t *testing.T) {
	srv := localdir.StartT(t, localdir.Options{})
	bin := buildBinary(t)
	mb := filepath.Join(t.TempDir(), "MetaBase.xml")
	addr := freeAddr(t)
	d := startDaemon(t, bin, args(srv, mb, "--status-addr", addr, "--mode", "syncrepl"), srv.Password)
	st := waitStatus(t, addr, "a replicated version", func(s statusJSON) bool { return s.Replicated && s.Version > 0 })
	if !st.Connected || st.Mode != "syncrepl" || st.Objects == 0 || st.Server != "SERVER01" {
		t.Errorf("status %+v", st)
	}
	if code, body, _ := get("http://" + addr + "/healthz"); code != 200 {
		t.Errorf("healthz %d %q, want 200", code, body)
	}

	vs := localdir.SampleVSDN("SERVER01", 1)
	if err := srv.AddLDIF("dn: " + vs + "\nchangetype: modify\nreplace: msExchSmtpMaxRecipients\nmsExchSmtpMaxRecipients: many\n-"); err != nil {
		// The directory's own syntax check may refuse it first; use an out-of-range value then.
		if err := srv.AddLDIF("dn: " + vs + "\nchangetype: modify\nreplace: msExchSmtpMaxRecipients\nmsExchSmtpMaxRecipients: -5\n-"); err != nil {
			t.Fatal(err)
		}
	}
	st = waitStatus(t, addr, "a refused value", func(s statusJSON) bool { return s.ValuesRefused > 0 })
	if r := st.LastRefused; r == nil || !strings.EqualFold(r.DN, vs) || r.Attribute != "msExchSmtpMaxRecipients" || r.Reason == "" {
		t.Errorf("last refusal %+v, want DN %s attribute msExchSmtpMaxRecipients and a reason", st.LastRefused, vs)
	}

	// A good edit while ds2mb follows: a new version, a newer change
	// stamp, and one latency observation.
	before := st
	if err := srv.AddLDIF("dn: " + vs + "\nchangetype: modify\nreplace: msExchSmtpMaxRecipients\nmsExchSmtpMaxRecipients: 321\n-"); err != nil {
		t.Fatal(err)
	}
	st = waitStatus(t, addr, "the good edit written", func(s statusJSON) bool { return s.Version > before.Version })
	if st.Stamp == "" || st.Stamp <= before.Stamp {
		t.Errorf("change stamp %q after the edit, was %q: want a newer entryCSN", st.Stamp, before.Stamp)
	}

	code, body, err := get("http://" + addr + "/metrics")
	if err != nil || code != 200 {
		t.Fatalf("metrics: %d %v", code, err)
	}
	for _, want := range []string{"ds2mb_connected 1", fmt.Sprintf("ds2mb_metabase_version %d", st.Version), "ds2mb_values_refused_total 1", "ds2mb_change_to_file_seconds_count 1"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}

	srv.Stop()
	waitStatus(t, addr, "the lost connection", func(s statusJSON) bool { return !s.Connected })
	if code, body, _ := get("http://" + addr + "/healthz"); code != 503 || !strings.Contains(body, "not connected") {
		t.Errorf("healthz with the directory down: %d %q, want 503", code, body)
	}
	_ = d
}
