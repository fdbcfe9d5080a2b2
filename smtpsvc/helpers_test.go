package smtpsvc

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/metabase"
	"github.com/ds2mb/ds2mb/schema"
	"github.com/ds2mb/ds2mb/smtpsvc/status"
	"github.com/ds2mb/ds2mb/smtpsvc/watch"
	"github.com/emersion/go-smtp"
)

// freePort returns a loopback port nobody listens on.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// vsDef is one virtual server of a generated metabase.
type vsDef struct {
	n        int
	ports    []int
	fqdn     string
	maxRcpt  int
	off      bool // ServerAutoStart FALSE
	maxConns int
}

// tree builds a metabase: the service node, the virtual servers, and the
// local domain example.com on each.
func tree(version uint64, vss ...vsDef) *metabase.Tree {
	t := metabase.New()
	t.Version = version
	t.Ensure(schema.ServiceLocation, metabase.ClassService)
	for _, v := range vss {
		n := t.Ensure(schema.ServerLocation(v.n), metabase.ClassServer)
		var bs []string
		for _, p := range v.ports {
			bs = append(bs, addr(p)+":")
		}
		n.Set("ServerBindings", strings.Join(bs, "\n"))
		if v.fqdn != "" {
			n.Set("FullyQualifiedDomainName", v.fqdn)
		}
		if v.maxRcpt > 0 {
			n.Set("MaxRecipients", fmt.Sprint(v.maxRcpt))
		}
		if v.maxConns > 0 {
			n.Set("MaxConnections", fmt.Sprint(v.maxConns))
		}
		if v.off {
			n.Set("ServerAutoStart", "FALSE")
		}
		t.Ensure(schema.DomainLocation(v.n, "example.com"), metabase.ClassDomain).Set("RouteAction", "16")
	}
	return t
}

// write puts a metabase in place the way the replicator does.
func write(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := metabase.WriteFileAtomic(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// worker starts a Worker on dir/MetaBase.xml (which the caller writes).
type testWorker struct {
	*Worker
	path string
	dir  string
	stop func()
}

func startWorker(t testing.TB, initial []byte, mod func(*Options)) *testWorker {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "MetaBase.xml")
	if initial != nil {
		write(t, path, initial)
	}
	o := Options{
		Metabase: path, Hostname: "worker.test", StatusAddr: "127.0.0.1:0",
		StatusFile: filepath.Join(dir, "status.json"), ShutdownTimeout: 5 * time.Second,
		Watch:  watch.Options{Poll: 200 * time.Millisecond},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if testing.Verbose() {
		o.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if mod != nil {
		mod(&o)
	}
	w, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	tw := &testWorker{Worker: w, path: path, dir: dir}
	var once sync.Once
	stopNow := func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("Run did not return 30 s after its context ended")
		}
	}
	tw.stop = func() { once.Do(stopNow) }
	t.Cleanup(tw.stop)
	return tw
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// waitStatus polls the worker's status until cond holds.
func (w *testWorker) waitStatus(t testing.TB, what string, cond func(status.Status) bool) status.Status {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := w.Status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(st, "", "  ")
			t.Fatalf("waiting for %s: status still %s", what, b)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (w *testWorker) waitVersion(t testing.TB, v uint64) status.Status {
	t.Helper()
	return w.waitStatus(t, fmt.Sprintf("version %d running", v), func(st status.Status) bool { return st.Running && st.Version == v })
}

// greeting connects and returns the 220 banner line.
func greeting(a string) (string, error) {
	c, err := net.DialTimeout("tcp", a, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return textproto.NewReader(bufio.NewReader(c)).ReadLine()
}

// sendOne runs one transaction on an open client.
func sendOne(c *smtp.Client, i int) error {
	if err := c.Mail("sender@example.net", nil); err != nil {
		return fmt.Errorf("MAIL: %w", err)
	}
	if err := c.Rcpt(fmt.Sprintf("user%d@example.com", i%7), nil); err != nil {
		return fmt.Errorf("RCPT: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	fmt.Fprintf(w, "From: sender@example.net\r\nTo: user@example.com\r\nSubject: message %d\r\n\r\nbody %d\r\n", i, i)
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of DATA: %w", err)
	}
	return nil
}

// smtpSession dials, sends n messages and quits.
func smtpSession(a string, n int) error {
	c, err := smtp.Dial(a)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	for i := range n {
		if err := sendOne(c, i); err != nil {
			return err
		}
	}
	return c.Quit()
}

func httpGet(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
