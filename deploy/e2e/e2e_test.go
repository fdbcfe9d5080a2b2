package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/deploy/localdir"
	"github.com/emersion/go-smtp"
)

// goTool finds the go command.
func goTool(t testing.TB) string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/local/go/bin/go"); err == nil {
		return "/usr/local/go/bin/go"
	}
	t.Fatal("the go command is not in PATH nor /usr/local/go/bin: it is needed to build the binaries under test")
	return ""
}

// build compiles a main package of this module into dir.
func build(t testing.TB, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command(goTool(t), "build", "-o", out, "github.com/ds2mb/ds2mb/"+pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// daemon runs a binary in the background with its output in a log file;
// it is stopped with SIGTERM at the end of the test, and must exit cleanly.
type daemon struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan error
}

func start(t testing.TB, dir, name string, args ...string) *daemon {
	t.Helper()
	d := &daemon{name: name, log: filepath.Join(dir, name+".log"), done: make(chan error, 1)}
	f, err := os.Create(d.log)
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(args[0], args[1:]...)
	d.cmd.Stdout, d.cmd.Stderr = f, f
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { d.done <- d.cmd.Wait(); f.Close() }()
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-d.done:
			if err != nil {
				t.Errorf("%s exited after SIGTERM: %v\n%s", name, err, d.tail())
			}
		case <-time.After(30 * time.Second):
			d.cmd.Process.Kill()
			t.Errorf("%s did not stop within 30 s of SIGTERM\n%s", name, d.tail())
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, d.tail())
		}
	})
	return d
}

func (d *daemon) tail() string {
	b, _ := os.ReadFile(d.log)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// alive fails the test when the daemon has exited.
func (d *daemon) alive(t testing.TB) {
	t.Helper()
	select {
	case err := <-d.done:
		d.done <- err
		t.Fatalf("%s exited: %v\n%s", d.name, err, d.tail())
	default:
	}
}

// workerStatus is the part of smtpsvc's /status the test reads.
type workerStatus struct {
	Running bool   `json:"running"`
	Version uint64 `json:"version"`
	Refused *struct {
		Reason string `json:"reason"`
	} `json:"lastRefused"`
	Servers []struct {
		Instance int      `json:"instance"`
		FQDN     string   `json:"fqdn"`
		Running  bool     `json:"running"`
		Bindings []string `json:"bindings"`
	} `json:"virtualServers"`
}

func getStatus(url string) (workerStatus, error) {
	var st workerStatus
	resp, err := http.Get(url)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

func banner(a string) (string, error) {
	c, err := net.DialTimeout("tcp", a, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return textproto.NewReader(bufio.NewReader(c)).ReadLine()
}

// ldapmodify applies LDIF changes with the ldapmodify command when it is
// installed (as the quick start tells an operator to), else over LDAP.
func ldapmodify(t testing.TB, srv *localdir.Server, ldif string) string {
	t.Helper()
	if p, err := exec.LookPath("ldapmodify"); err == nil {
		cmd := exec.Command(p, "-x", "-H", srv.URL, "-D", srv.BindDN, "-w", srv.Password)
		cmd.Stdin = strings.NewReader(ldif)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ldapmodify: %v\n%s", err, b)
		}
		return "ldapmodify"
	}
	if err := srv.AddLDIF(ldif); err != nil {
		t.Fatalf("LDAP modify: %v", err)
	}
	return "an LDAP modify (ldapmodify is not installed)"
}

// spine is the whole system running from the real binaries, as `make
// demo` runs it: slapd with the sample organisation, ds2mb for SERVER01 and
// smtpsvc on its MetaBase.xml, virtual server 1 on a free port.
type spine struct {
	srv        *localdir.Server
	bin, work  string
	mb         string // MetaBase.xml
	statusURL  string
	a1         string // virtual server 1's address
	vs1        string // its DN
	repl, wrk  *daemon
	first      workerStatus
	password   string // the bind password file
	replAddr   string // ds2mb's --status-addr
	workerAddr string // smtpsvc's --status-addr
}

// startSpine starts the system and waits until the worker serves the first
// replication.
func startSpine(t testing.TB) *spine {
	t.Helper()
	bin := t.TempDir()
	ds2mb := build(t, bin, "cmd/ds2mb")
	smtpsvc := build(t, bin, "cmd/smtpsvc")

	srv := localdir.StartT(t, localdir.Options{})
	vs1 := localdir.SampleVSDN("SERVER01", 1)
	vs2 := localdir.SampleVSDN("SERVER01", 2)
	// The sample's fixed ports (2525, 2526) could be taken by other tests
	// running at the same time: move both virtual servers to free ports.
	p1, p2, statusPort, replPort := freePort(t), freePort(t), freePort(t), freePort(t)
	if err := srv.AddLDIF(fmt.Sprintf("dn: %s\nchangetype: modify\nreplace: msExchServerBindings\nmsExchServerBindings: 127.0.0.1:%d:\n\n"+
		"dn: %s\nchangetype: modify\nreplace: msExchServerBindings\nmsExchServerBindings: 127.0.0.1:%d:\n", vs1, p1, vs2, p2)); err != nil {
		t.Fatal(err)
	}

	work := t.TempDir()
	mbDir := filepath.Join(work, "metabase")
	if err := os.MkdirAll(mbDir, 0o755); err != nil {
		t.Fatal(err)
	}
	mb := filepath.Join(mbDir, "MetaBase.xml")
	pw := filepath.Join(work, "bind-password")
	if err := os.WriteFile(pw, []byte(srv.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	repl := start(t, work, "ds2mb", ds2mb, "--ldap-url", srv.URL, "--bind-dn", srv.BindDN, "--bind-password-file", pw,
		"--base-dn", localdir.SampleConfigDN, "--server", "SERVER01", "--metabase", mb, "--status-addr", fmt.Sprintf("127.0.0.1:%d", replPort))
	worker := start(t, work, "smtpsvc", smtpsvc, "--metabase", mb, "--status-addr", fmt.Sprintf("127.0.0.1:%d", statusPort),
		"--status-file", filepath.Join(work, "status.json"), "--dns-server", "none")
	statusURL := fmt.Sprintf("http://127.0.0.1:%d/status", statusPort)
	a1 := fmt.Sprintf("127.0.0.1:%d", p1)

	// The first replication reaches the socket.
	var st workerStatus
	deadline := time.Now().Add(60 * time.Second)
	for {
		repl.alive(t)
		worker.alive(t)
		var err error
		st, err = getStatus(statusURL)
		if err == nil && st.Running && len(st.Servers) == 2 && st.Servers[0].Running && len(st.Servers[0].Bindings) == 1 && st.Servers[0].Bindings[0] == a1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker never served SERVER01's virtual servers: status %+v, %v\nds2mb:\n%s\nsmtpsvc:\n%s", st, err, repl.tail(), worker.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.Refused != nil {
		t.Fatalf("the worker refused a metabase written by ds2mb: %s", st.Refused.Reason)
	}
	if l, err := banner(a1); err != nil || !strings.HasPrefix(l, "220 server01.example.com ") {
		t.Fatalf("virtual server 1 banner: %q, %v; want the sample's FQDN server01.example.com", l, err)
	}
	t.Logf("replicated and serving: metabase version %d, virtual server 1 on %s", st.Version, a1)
	return &spine{srv: srv, bin: bin, work: work, mb: mb, statusURL: statusURL, a1: a1, vs1: vs1, repl: repl, wrk: worker, first: st,
		password: pw, replAddr: fmt.Sprintf("127.0.0.1:%d", replPort), workerAddr: fmt.Sprintf("127.0.0.1:%d", statusPort)}
}

// TestDirectoryEditReachesTheSocket is the whole spine: directory → ds2mb →
// MetaBase.xml → smtpsvc → a listening socket that answers with the edited
// configuration.
func TestDirectoryEditReachesTheSocket(t *testing.T) {
	sp := startSpine(t)
	srv, vs1, a1, statusURL, work, repl, worker, st := sp.srv, sp.vs1, sp.a1, sp.statusURL, sp.work, sp.repl, sp.wrk, sp.first

	// Edit the directory; wait until a new connection sees the edit.
	const newFQDN = "edited.server01.example.com"
	edit := fmt.Sprintf("dn: %s\nchangetype: modify\nreplace: msExchSmtpFullyQualifiedDomainName\nmsExchSmtpFullyQualifiedDomainName: %s\n-\n"+
		"replace: msExchSmtpMaxRecipients\nmsExchSmtpMaxRecipients: 7\n-\n", vs1, newFQDN)
	before := st.Version
	t0 := time.Now()
	how := ldapmodify(t, srv, edit)
	modified := time.Since(t0)
	var seen time.Duration
	for {
		l, err := banner(a1)
		if err != nil {
			t.Fatalf("virtual server 1 stopped answering during the reload: %v", err)
		}
		if strings.HasPrefix(l, "220 "+newFQDN+" ") {
			seen = time.Since(t0)
			break
		}
		if time.Since(t0) > 30*time.Second {
			t.Fatalf("30 s after the directory edit the banner is still %q\nds2mb:\n%s\nsmtpsvc:\n%s", l, repl.tail(), worker.tail())
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("directory edit (%s, returned after %v) → new configuration serving on %s: %v",
		how, modified.Round(time.Microsecond), a1, seen.Round(time.Microsecond))

	// Status is updated right after the swap: poll it briefly.
	for {
		st, err := getStatus(statusURL)
		if err == nil && st.Version > before && st.Servers[0].FQDN == newFQDN {
			if st.Refused != nil {
				t.Fatalf("status after the edit shows a refusal: %s", st.Refused.Reason)
			}
			break
		}
		if time.Since(t0) > 30*time.Second {
			t.Fatalf("status after the edit: %+v, %v; want a version above %d with FQDN %s", st, err, before, newFQDN)
		}
		time.Sleep(5 * time.Millisecond)
	}

	// MaxRecipients 7 is served too: the eighth recipient gets 452 4.5.3.
	c, err := smtp.Dial(a1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("e2e.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("someone@example.net", nil); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 7; i++ {
		if err := c.Rcpt(fmt.Sprintf("user%d@example.com", i), nil); err != nil {
			t.Fatalf("recipient %d of 7: %v", i, err)
		}
	}
	err = c.Rcpt("user8@example.com", nil)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 452 || se.EnhancedCode != (smtp.EnhancedCode{4, 5, 3}) {
		t.Fatalf("eighth recipient with MaxRecipients 7: %v; want 452 4.5.3", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "Subject: e2e\r\n\r\nthrough the whole spine\r\n")
	if err := w.Close(); err != nil {
		t.Fatalf("message to 7 recipients: %v", err)
	}
	c.Quit()

	// The status file tells the same story.
	for {
		b, err := os.ReadFile(filepath.Join(work, "status.json"))
		if err == nil && bytes.Contains(b, []byte(newFQDN)) {
			break
		}
		if time.Since(t0) > 30*time.Second {
			t.Fatalf("status file: %v\n%s", err, b)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
