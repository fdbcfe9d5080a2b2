package queue_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/metabase"
	"github.com/ds2mb/ds2mb/schema"
	"github.com/ds2mb/ds2mb/smtpsvc/config"
	"github.com/ds2mb/ds2mb/smtpsvc/internal/testnet"
	"github.com/ds2mb/ds2mb/smtpsvc/queue"
	"github.com/ds2mb/ds2mb/smtpsvc/spool"
)

// unit is one metabase "minute" in these tests.
const unit = 50 * time.Millisecond

// env is one test's world: a DNS server, a virtual server's configuration
// whose remote port and DNS point at loopback, and a running manager.
type env struct {
	t    testing.TB
	dns  *testnet.DNS
	base string
	tree *metabase.Tree
	vs   *metabase.Node
	cfg  *config.Config
	q    *queue.Manager
	stop func()
	port int
}

// newEnv builds a virtual server 1 with local domain example.com; port is
// RemoteSmtpPort (the sinks' common port).
func newEnv(t testing.TB, port int) *env {
	t.Helper()
	e := &env{t: t, dns: testnet.StartDNS(t), base: t.TempDir(), port: port}
	e.tree = metabase.New()
	e.tree.Version = 1
	e.tree.Ensure(schema.ServiceLocation, metabase.ClassService)
	e.vs = e.tree.Ensure(schema.ServerLocation(1), metabase.ClassServer)
	e.vs.Set("ServerBindings", "127.0.0.1:25:")
	e.vs.Set("FullyQualifiedDomainName", "mail.example.com")
	e.vs.Set("RemoteSmtpPort", fmt.Sprint(port))
	e.vs.Set("ExternalDnsServers", e.dns.Addr)
	e.vs.Set("RemoteTimeout", "10")
	e.vs.Set("SmtpRemoteProgressiveRetry", "1")
	e.vs.Set("LocalRetryInterval", "1")
	e.tree.Ensure(schema.DomainLocation(1, "example.com"), metabase.ClassDomain).Set("RouteAction", "16")
	return e
}

// set sets a property of the virtual server.
func (e *env) set(name, value string) { e.vs.Set(name, value) }

// domain adds a domain node.
func (e *env) domain(name string, props ...string) {
	n := e.tree.Ensure(schema.DomainLocation(1, name), metabase.ClassDomain)
	for i := 0; i+1 < len(props); i += 2 {
		n.Set(props[i], props[i+1])
	}
}

// build makes the configuration.
func (e *env) build() *config.Config {
	e.t.Helper()
	cfg, err := config.Build(e.tree, config.Options{BaseDir: e.base, Hostname: "mail.example.com", Minute: unit})
	if err != nil {
		e.t.Fatalf("config: %v", err)
	}
	e.cfg = cfg
	return cfg
}

// start builds the configuration and runs a manager on it.
func (e *env) start(mod func(*queue.Options)) *env {
	e.t.Helper()
	cfg := e.build()
	o := queue.Options{Logger: testLogger(e.t), NoJitter: true, Linger: 100 * time.Millisecond}
	if mod != nil {
		mod(&o)
	}
	e.q = queue.New(o)
	e.q.Update(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.q.Run(ctx, 5*time.Second) }()
	stopped := false
	e.stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	e.t.Cleanup(e.stop)
	return e
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// vs1 is the built virtual server 1.
func (e *env) vs1() *config.VirtualServer { return e.cfg.Server(1) }

// spoolMsg writes a message into virtual server 1's queue as a session
// would, without telling the manager.
func (e *env) spoolMsg(from string, to []string, toParams []string, fromParams, body string) string {
	e.t.Helper()
	s, err := spool.Open(e.vs1().QueueDir)
	if err != nil {
		e.t.Fatal(err)
	}
	defer s.Close()
	m, err := s.Create(&spool.Envelope{From: from, FromParams: fromParams, To: to, ToParams: toParams, ReceivedAt: time.Now(), Instance: 1})
	if err != nil {
		e.t.Fatal(err)
	}
	m.WriteString(body)
	path, err := m.Commit()
	if err != nil {
		e.t.Fatal(err)
	}
	return path
}

// send spools a message and hands it to the manager.
func (e *env) send(from string, to []string, body string) string {
	return e.sendP(from, to, nil, "", body)
}

func (e *env) sendP(from string, to, toParams []string, fromParams, body string) string {
	e.t.Helper()
	p := e.spoolMsg(from, to, toParams, fromParams, body)
	e.q.EnqueueFile(1, p)
	return p
}

// waitEmpty waits until the queue holds no message.
func (e *env) waitEmpty(deadline time.Duration) {
	e.t.Helper()
	end := time.Now().Add(deadline)
	for e.q.Len() > 0 {
		if time.Now().After(end) {
			e.t.Fatalf("queue still holds %d messages after %v: %+v", e.q.Len(), deadline, e.q.List())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Nothing of a finished message stays behind: spool file, state file.
	if left := append(files(e.t, e.vs1().QueueDir, ".eml"), files(e.t, e.vs1().QueueDir, ".qst")...); len(left) > 0 {
		e.t.Fatalf("queue empty but its folder still holds %v", left)
	}
}

// files lists the names in a folder ending in suffix.
func files(t testing.TB, dir, suffix string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if strings.HasSuffix(e.Name(), suffix) && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

// sinks starts one sink per loopback host on one common port.
func sinks(t testing.TB, hosts ...string) (int, []*testnet.Sink) {
	t.Helper()
	port, ls := testnet.SamePort(t, hosts...)
	var out []*testnet.Sink
	for _, l := range ls {
		out = append(out, testnet.ServeSink(t, l))
	}
	return port, out
}

// unusedHost is a loopback address with nothing listening on port.
func unusedHost(t *testing.T, host string, port int) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, fmt.Sprint(port)))
	if err != nil {
		t.Fatalf("%s:%d is taken: %v", host, port, err)
	}
	l.Close()
	return host
}

const body = "From: sender@sender.test\r\nTo: rcpt@remote.test\r\nSubject: test\r\nMessage-ID: <m1@sender.test>\r\n\r\nhello\r\n"
