package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/deploy/localdir"
	"github.com/ds2mb/ds2mb/metabase"
)

const waitLimit = 30 * time.Second

func args(srv *localdir.Server, mb string, extra ...string) []string {
	return append([]string{"--ldap-url", srv.URL, "--bind-dn", srv.BindDN, "--base-dn", srv.ConfigDN,
		"--server", "SERVER01", "--metabase", mb}, extra...)
}

// TestOnce: --once replicates and exits 0, with the password from the
// environment, in both modes; the password never reaches the log.
func TestOnce(t *testing.T) {
	srv := localdir.StartT(t, localdir.Options{})
	t.Setenv("DS2MB_BIND_PASSWORD", srv.Password)
	for _, mode := range []string{"auto", "syncrepl", "poll"} {
		t.Run(mode, func(t *testing.T) {
			mb := filepath.Join(t.TempDir(), "MetaBase.xml")
			var log bytes.Buffer
			if code := run(args(srv, mb, "--once", "--mode", mode, "--log-level", "debug"), &log); code != 0 {
				t.Fatalf("exit %d:\n%s", code, log.String())
			}
			tr, err := metabase.Load(mb)
			if err != nil {
				t.Fatal(err)
			}
			if got := tr.Node("/LM/SmtpSvc/1").Text("ServerBindings"); got != "127.0.0.1:2525:" {
				t.Errorf("ServerBindings %q", got)
			}
			if probs := tr.Validate(); probs != nil {
				t.Error(probs)
			}
			if strings.Contains(log.String(), srv.Password) {
				t.Errorf("log holds the password")
			}
			if mode == "auto" && !strings.Contains(log.String(), "mode=syncrepl") {
				t.Errorf("auto did not choose syncrepl:\n%s", log.String())
			}
		})
	}
}

// TestConsumerAccount: the read-only consumer account (no rootdn
// privileges, unlimited size limit) is enough.
func TestConsumerAccount(t *testing.T) {
	srv := localdir.StartT(t, localdir.Options{})
	t.Setenv("DS2MB_BIND_PASSWORD", localdir.SampleConsumerPassword)
	mb := filepath.Join(t.TempDir(), "MetaBase.xml")
	a := []string{"--ldap-url", srv.URL, "--bind-dn", localdir.SampleConsumerDN, "--base-dn", srv.ConfigDN,
		"--server", "SERVER02", "--metabase", mb, "--once"}
	var log bytes.Buffer
	if code := run(a, &log); code != 0 {
		t.Fatalf("exit %d:\n%s", code, log.String())
	}
	tr, err := metabase.Load(mb)
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.Node("/LM/SmtpSvc/1").Text("ServerBindings"); got != "127.0.0.1:2625:" {
		t.Errorf("SERVER02's virtual server 1: ServerBindings %q", got)
	}
	if tr.Node("/LM/SmtpSvc/2") != nil || tr.Node("/LM/SmtpSvc/1/Domain/*.contoso.com") != nil {
		t.Errorf("SERVER01's objects replicated for SERVER02")
	}
	if tr.Node("/LM/SmtpSvc/1/Domain/example.com") == nil {
		t.Errorf("organisation-wide policy domain missing on SERVER02")
	}
}

// TestPasswordFileAndFlags: --bind-password-file works; a wrong password
// fails --once with an error that does not hold it; bad flags exit 2.
func TestPasswordFileAndFlags(t *testing.T) {
	srv := localdir.StartT(t, localdir.Options{})
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte(srv.Password+"\n"), 0o600)
	mb := filepath.Join(dir, "new", "folder", "MetaBase.xml") // created
	var log bytes.Buffer
	if code := run(args(srv, mb, "--once", "--bind-password-file", pw), &log); code != 0 {
		t.Fatalf("exit %d:\n%s", code, log.String())
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("Wr0ng-Pa55-XYZ"), 0o600)
	log.Reset()
	if code := run(args(srv, filepath.Join(dir, "b.xml"), "--once", "--mode", "syncrepl", "--bind-password-file", bad), &log); code == 0 {
		// --once with syncrepl keeps retrying a failed bind; it must not succeed.
		t.Fatalf("wrong password succeeded")
	}
	if strings.Contains(log.String(), "Wr0ng-Pa55-XYZ") {
		t.Errorf("log holds the password:\n%s", log.String())
	}
	for _, a := range [][]string{{"--mode", "nope", "--metabase", mb, "--server", "S", "--base-dn", "x"}, {"--metabase", mb}, {"--log-level", "loud"}} {
		if code := run(a, &log); code != 2 {
			t.Errorf("%v: exit %d, want 2", a, code)
		}
	}
	log.Reset()
	if code := run([]string{"--version"}, &log); code != 0 || !strings.Contains(log.String(), "ds2mb") {
		t.Errorf("--version: %d %q", code, log.String())
	}
}

// buildBinary builds ds2mb into a temporary folder.
func buildBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ds2mb")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// daemon is the ds2mb binary running.
type daemon struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	log bytes.Buffer
}

func startDaemon(t testing.TB, bin string, a []string, password string) *daemon {
	t.Helper()
	d := &daemon{cmd: exec.Command(bin, a...)}
	d.cmd.Env = append(os.Environ(), "DS2MB_BIND_PASSWORD="+password)
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			d.mu.Lock()
			d.log.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
		}
	}()
	t.Cleanup(func() { d.cmd.Process.Kill(); d.cmd.Wait() })
	return d
}

func (d *daemon) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

func waitFile(t testing.TB, mb, want string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		b, _ := os.ReadFile(mb)
		if bytes.Contains(b, []byte(want)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never held %q", mb, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDaemon: the binary follows the directory and stops cleanly on SIGTERM.
func TestDaemon(t *testing.T) {
	srv := localdir.StartT(t, localdir.Options{})
	bin := buildBinary(t)
	mb := filepath.Join(t.TempDir(), "MetaBase.xml")
	d := startDaemon(t, bin, args(srv, mb), srv.Password)
	waitFile(t, mb, `MaxRecipients="100"`)
	err := srv.AddLDIF("dn: " + localdir.SampleVSDN("SERVER01", 1) + "\nchangetype: modify\nreplace: msExchSmtpMaxRecipients\nmsExchSmtpMaxRecipients: 55\n-")
	if err != nil {
		t.Fatal(err)
	}
	waitFile(t, mb, `MaxRecipients="55"`)
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, d.output())
		}
	case <-time.After(waitLimit):
		t.Fatalf("no exit after SIGTERM")
	}
	out := d.output()
	for _, want := range []string{"event=1000", "event=1009", "event=1014"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, srv.Password) {
		t.Errorf("log holds the password")
	}
}

// BenchmarkRSS10k runs the ds2mb binary against 10,000 extra virtual
// servers and reports its resident memory: VmRSS of the running daemon
// once the file holds them all, and the peak (ru_maxrss) of a --once run.
//
//	go test -run '^$' -bench BenchmarkRSS10k -benchtime 1x ./cmd/ds2mb/
func BenchmarkRSS10k(b *testing.B) {
	const n = 10000
	var sb strings.Builder
	for i := 0; i < n; i++ {
		num := 1001 + i
		fmt.Fprintf(&sb, "dn: %s\nobjectClass: protocolCfgSMTPServer\ncn: %d\nmsExchServerBindings: 127.0.0.%d:%d:\nmsExchSmtpMaxRecipients: %d\n\n",
			localdir.SampleVSDN("SERVER01", num), num, 1+num/60000, 1024+num%60000, num)
	}
	srv := localdir.StartT(b, localdir.Options{ExtraLDIF: []string{sb.String()}})
	bin := buildBinary(b)
	for i := 0; i < b.N; i++ {
		mb := filepath.Join(b.TempDir(), "MetaBase.xml")
		d := startDaemon(b, bin, args(srv, mb), srv.Password)
		waitFile(b, mb, `Location ="/LM/SmtpSvc/11000"`)
		time.Sleep(rssSettle) // the state file is written after the metabase; the scavenger returns memory
		status, err := os.ReadFile("/proc/" + strconv.Itoa(d.cmd.Process.Pid) + "/status")
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && (f[0] == "VmRSS:" || f[0] == "VmHWM:") {
				kb, _ := strconv.Atoi(f[1])
				b.ReportMetric(float64(kb)/1024, strings.TrimSuffix(f[0], ":")+"-MB")
			}
		}
		d.cmd.Process.Signal(syscall.SIGTERM)
		d.cmd.Wait()

		once := exec.Command(bin, append(args(srv, filepath.Join(b.TempDir(), "MetaBase.xml")), "--once")...)
		once.Env = append(os.Environ(), "DS2MB_BIND_PASSWORD="+srv.Password)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_ = ctx
		if out, err := once.CombinedOutput(); err != nil {
			cancel()
			b.Fatalf("--once: %v\n%s", err, out)
		}
		cancel()
		if ru, ok := once.ProcessState.SysUsage().(*syscall.Rusage); ok {
			b.ReportMetric(float64(ru.Maxrss)/1024, "once-maxrss-MB")
		}
	}
	b.ReportMetric(0, "ns/op")
}

// rssSettle is how long BenchmarkRSS10k lets the daemon settle before reading VmRSS.
var rssSettle = 5 * time.Second
