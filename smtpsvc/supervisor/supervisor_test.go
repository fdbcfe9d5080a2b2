package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/schema"
	"github.com/emersion/go-smtp"
)

// sink is a backend that accepts every message and counts them.
type sink struct{ msgs atomic.Int64 }

func (b *sink) NewSession(*smtp.Conn) (smtp.Session, error) { return &sinkSession{b: b}, nil }

type sinkSession struct{ b *sink }

func (s *sinkSession) Reset()                               {}
func (s *sinkSession) Logout() error                        { return nil }
func (s *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *sinkSession) Data(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	s.b.msgs.Add(1)
	return err
}

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func binding(t *testing.T, addr string) schema.Binding {
	t.Helper()
	b, err := schema.ParseBinding(addr + ":")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// spec is a virtual server whose banner names the generation.
func spec(inst int, gen string, be smtp.Backend, bindings ...schema.Binding) Spec {
	return Spec{
		Instance: inst, AutoStart: true, Bindings: bindings, Fingerprint: gen,
		New: func() (Server, error) {
			s := smtp.NewServer(be)
			s.Domain = gen
			s.ErrorLog = discardLogger{}
			s.AllowInsecureAuth = true
			return s, nil
		},
	}
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...interface{}) {}
func (discardLogger) Println(...interface{})        {}

// banner connects and returns the 220 line.
func banner(t *testing.T, addr string) (string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return textproto.NewReader(bufioReader(c)).ReadLine()
}

func send(c *smtp.Client, n int) error {
	if err := c.Mail("a@example.com", nil); err != nil {
		return err
	}
	if err := c.Rcpt("b@example.com", nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "Subject: %d\r\n\r\nhello\r\n", n)
	return w.Close()
}

func newSup(t *testing.T, o Options) *Supervisor {
	s := New(o)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s
}

func TestSwapKeepsStartedSessionsOnTheirGeneration(t *testing.T) {
	be := &sink{}
	a := freeAddr(t)
	s := newSup(t, Options{})
	if _, err := s.Apply(1, []Spec{spec(1, "gen1", be, binding(t, a))}); err != nil {
		t.Fatal(err)
	}
	old, err := smtp.Dial(a)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := old.Hello("client"); err != nil {
		t.Fatal(err)
	}
	// Start a transaction on gen1, then swap to gen2 in its middle.
	if err := old.Mail("a@example.com", nil); err != nil {
		t.Fatal(err)
	}
	res, err := s.Apply(2, []Spec{spec(1, "gen2", be, binding(t, a))})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Started) != 1 || len(res.Retired) != 1 || len(res.Bound) != 0 || len(res.Released) != 0 {
		t.Fatalf("result %+v: want one started, one retired, the listener kept", res)
	}
	if l, err := banner(t, a); err != nil || !strings.Contains(l, "gen2") {
		t.Fatalf("new connection after the swap: banner %q, %v; want gen2", l, err)
	}
	if err := old.Rcpt("b@example.com", nil); err != nil {
		t.Fatalf("started session after the swap: RCPT: %v", err)
	}
	w, err := old.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "Subject: x\r\n\r\nbody\r\n")
	if err := w.Close(); err != nil {
		t.Fatalf("started session after the swap: DATA: %v", err)
	}
	// The old session still runs on gen1: a second message, then QUIT.
	if err := send(old, 2); err != nil {
		t.Fatalf("second message on the old session: %v", err)
	}
	if err := old.Quit(); err != nil {
		t.Fatal(err)
	}
	if got := be.msgs.Load(); got != 2 {
		t.Fatalf("messages accepted = %d, want 2", got)
	}
	if st := waitDrained(t, s); st.Version != 2 {
		t.Fatalf("state version %d, want 2", st.Version)
	}
}

func waitDrained(t *testing.T, s *Supervisor) State {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := s.State()
		if st.Draining == 0 {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("retired generations still draining: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMovedBindingBindsNewFirstAndDrainsOld(t *testing.T) {
	be := &sink{}
	a, b := freeAddr(t), freeAddr(t)
	s := newSup(t, Options{})
	if _, err := s.Apply(1, []Spec{spec(1, "gen1", be, binding(t, a))}); err != nil {
		t.Fatal(err)
	}
	old, err := smtp.Dial(a)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := old.Hello("client"); err != nil {
		t.Fatal(err)
	}
	res, err := s.Apply(2, []Spec{spec(1, "gen2", be, binding(t, b))})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Bound) != fmt.Sprint([]string{b}) || fmt.Sprint(res.Released) != fmt.Sprint([]string{a}) {
		t.Fatalf("result %+v: want %s bound and %s released", res, b, a)
	}
	if l, err := banner(t, b); err != nil || !strings.Contains(l, "gen2") {
		t.Fatalf("new binding: banner %q, %v", l, err)
	}
	if _, err := net.DialTimeout("tcp", a, time.Second); err == nil {
		t.Fatalf("old binding %s still accepts connections", a)
	}
	if err := send(old, 1); err != nil {
		t.Fatalf("session started on the old binding: %v", err)
	}
	old.Quit()
	waitDrained(t, s)
}

func TestBindFailureRefusesWholeConfiguration(t *testing.T) {
	be := &sink{}
	a := freeAddr(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0") // another process's port
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	s := newSup(t, Options{})
	if _, err := s.Apply(1, []Spec{spec(1, "gen1", be, binding(t, a))}); err != nil {
		t.Fatal(err)
	}
	extra := freeAddr(t)
	_, err = s.Apply(2, []Spec{
		spec(1, "gen2", be, binding(t, a)),
		spec(2, "gen2", be, binding(t, extra), binding(t, taken.Addr().String())),
	})
	var be2 *BindError
	if !errors.As(err, &be2) || be2.Instance != 2 || !strings.Contains(err.Error(), "/LM/SmtpSvc/2: ServerBindings") {
		t.Fatalf("Apply with a taken port: %v; want a BindError naming /LM/SmtpSvc/2", err)
	}
	if st := s.State(); st.Version != 1 || len(st.Servers) != 1 {
		t.Fatalf("state after the refusal %+v: want version 1 with one virtual server", st)
	}
	if l, err := banner(t, a); err != nil || !strings.Contains(l, "gen1") {
		t.Fatalf("after the refusal: banner %q, %v; want gen1 still", l, err)
	}
	if _, err := net.DialTimeout("tcp", extra, time.Second); err == nil {
		t.Fatalf("address %s bound by the refused configuration is still listening", extra)
	}
}

func TestUnchangedFingerprintKeepsServer(t *testing.T) {
	be := &sink{}
	a := freeAddr(t)
	s := newSup(t, Options{})
	if _, err := s.Apply(1, []Spec{spec(1, "same", be, binding(t, a))}); err != nil {
		t.Fatal(err)
	}
	sp := spec(1, "same", be, binding(t, a))
	sp.New = func() (Server, error) { return nil, errors.New("must not be rebuilt") }
	res, err := s.Apply(2, []Spec{sp})
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed() || len(res.Kept) != 1 {
		t.Fatalf("result %+v: want the virtual server kept", res)
	}
	if st := s.State(); st.Version != 2 {
		t.Fatalf("version %d, want 2", st.Version)
	}
}

func TestAutoStartFalseNotStarted(t *testing.T) {
	be := &sink{}
	a, b := freeAddr(t), freeAddr(t)
	s := newSup(t, Options{})
	off := spec(2, "off", be, binding(t, b))
	off.AutoStart = false
	res, err := s.Apply(1, []Spec{spec(1, "on", be, binding(t, a)), off})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Stopped) != "[2]" {
		t.Fatalf("result %+v: want virtual server 2 stopped", res)
	}
	if _, err := net.DialTimeout("tcp", b, time.Second); err == nil {
		t.Fatalf("virtual server 2 (ServerAutoStart false) accepts on %s", b)
	}
	st := s.State()
	if len(st.Servers) != 2 || st.Servers[1].Running || !st.Servers[0].Running {
		t.Fatalf("state %+v: want 1 running, 2 present but stopped", st)
	}
	// Switching it on starts it.
	on := spec(2, "on2", be, binding(t, b))
	if _, err := s.Apply(2, []Spec{spec(1, "on", be, binding(t, a)), on}); err != nil {
		t.Fatal(err)
	}
	if l, err := banner(t, b); err != nil || !strings.Contains(l, "on2") {
		t.Fatalf("virtual server 2 after ServerAutoStart true: %q, %v", l, err)
	}
}

func TestRemovedVirtualServerDrains(t *testing.T) {
	be := &sink{}
	a, b := freeAddr(t), freeAddr(t)
	s := newSup(t, Options{})
	if _, err := s.Apply(1, []Spec{spec(1, "g", be, binding(t, a)), spec(2, "g", be, binding(t, b))}); err != nil {
		t.Fatal(err)
	}
	c, err := smtp.Dial(b)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("x"); err != nil {
		t.Fatal(err)
	}
	res, err := s.Apply(2, []Spec{spec(1, "g", be, binding(t, a))})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Retired) != "[2]" || fmt.Sprint(res.Kept) != "[1]" {
		t.Fatalf("result %+v", res)
	}
	if _, err := net.DialTimeout("tcp", b, time.Second); err == nil {
		t.Fatal("removed virtual server still accepts")
	}
	if err := send(c, 1); err != nil {
		t.Fatalf("session of the removed virtual server: %v", err)
	}
	c.Quit()
	waitDrained(t, s)
}

func TestMaxConnections(t *testing.T) {
	be := &sink{}
	a := freeAddr(t)
	s := newSup(t, Options{})
	sp := spec(1, "g", be, binding(t, a))
	sp.MaxConnections = 2
	if _, err := s.Apply(1, []Spec{sp}); err != nil {
		t.Fatal(err)
	}
	var held []*smtp.Client
	for range 2 {
		c, err := smtp.Dial(a)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Hello("x"); err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	l, err := banner(t, a)
	if err != nil || !strings.HasPrefix(l, "421 4.3.2 ") {
		t.Fatalf("third connection: %q, %v; want 421 4.3.2", l, err)
	}
	held[0].Quit()
	deadline := time.Now().Add(5 * time.Second)
	for s.CountersFor(1).Open.Load() > 1 {
		if time.Now().After(deadline) {
			t.Fatal("closed session still counted")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if l, err := banner(t, a); err != nil || !strings.HasPrefix(l, "220 ") {
		t.Fatalf("after one left: %q, %v; want 220", l, err)
	}
	if got := s.CountersFor(1).Refused.Load(); got != 1 {
		t.Fatalf("refused counter %d, want 1", got)
	}
}

func TestShutdownDrainsWithDeadline(t *testing.T) {
	be := &sink{}
	a := freeAddr(t)
	s := New(Options{})
	if _, err := s.Apply(1, []Spec{spec(1, "g", be, binding(t, a))}); err != nil {
		t.Fatal(err)
	}
	idle, err := net.Dial("tcp", a)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	r := bufioReader(idle)
	if _, err := textproto.NewReader(r).ReadLine(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = s.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with an idle session: %v; want the deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(r); err != nil {
		t.Fatalf("idle session after the deadline: %v; want it closed", err)
	}
	if _, err := net.DialTimeout("tcp", a, time.Second); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
	if _, err := s.Apply(2, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Apply after Shutdown: %v", err)
	}
}

func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

func TestBuildFailureRefusesWholeConfiguration(t *testing.T) {
	be := &sink{}
	a, b := freeAddr(t), freeAddr(t)
	s := newSup(t, Options{})
	if _, err := s.Apply(1, []Spec{spec(1, "gen1", be, binding(t, a))}); err != nil {
		t.Fatal(err)
	}
	broken := spec(2, "gen2", be, binding(t, b))
	broken.New = func() (Server, error) { return nil, errors.New("certificate unreadable") }
	_, err := s.Apply(2, []Spec{spec(1, "gen2", be, binding(t, a)), broken})
	var bu *BuildError
	if !errors.As(err, &bu) || bu.Instance != 2 || !strings.Contains(err.Error(), "/LM/SmtpSvc/2: certificate unreadable") {
		t.Fatalf("Apply with a server that cannot be built: %v", err)
	}
	if l, err := banner(t, a); err != nil || !strings.Contains(l, "gen1") {
		t.Fatalf("after the refusal: banner %q, %v; want gen1 still", l, err)
	}
	if _, err := net.DialTimeout("tcp", b, time.Second); err == nil {
		t.Fatalf("%s of the refused configuration listens", b)
	}
	if st := s.State(); st.Version != 1 {
		t.Fatalf("version %d after the refusal, want 1", st.Version)
	}
}
