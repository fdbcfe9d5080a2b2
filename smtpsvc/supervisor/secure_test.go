package supervisor

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/schema"
	"github.com/ds2mb/ds2mb/smtpsvc/internal/testcert"
)

// TestSecureHandshakeOffAcceptLoop: a client that connects to a secure
// binding and never starts its handshake neither holds up the next
// client (the handshake is not done in the accept loop) nor stays
// connected past HandshakeTimeout; a connection still in its handshake
// is not counted against MaxConnections, a TLS session is, and its
// count ends with it.
func TestSecureHandshakeOffAcceptLoop(t *testing.T) {
	a := freeAddr(t)
	sp := spec(1, "gen1", &sink{})
	sp.SecureBindings = []schema.Binding{binding(t, a)}
	sp.TLSConfig = &tls.Config{Certificates: []tls.Certificate{testcert.New(t)}}
	sp.HandshakeTimeout = 500 * time.Millisecond
	sp.MaxConnections = 1
	s := New(Options{DrainTimeout: 5 * time.Second})
	defer s.Shutdown(context.Background())
	if _, err := s.Apply(1, []Spec{sp}); err != nil {
		t.Fatal(err)
	}

	silent, err := net.DialTimeout("tcp", a, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", a, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS client behind a silent one: %v", err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := textproto.NewReader(bufio.NewReader(c)).ReadLine()
	if err != nil || !strings.HasPrefix(line, "220 gen1") {
		t.Fatalf("banner over TLS: %q %v", line, err)
	}
	if n := s.CountersFor(1).Open.Load(); n != 1 {
		t.Errorf("open connections %d, want 1 (the TLS session, not the silent handshake)", n)
	}
	c.Close()

	// The silent client is closed at the handshake deadline.
	silent.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	_, err = silent.Read(buf)
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("silent client not closed at the handshake deadline: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.CountersFor(1).Open.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("open connections %d after the TLS session ended, want 0", s.CountersFor(1).Open.Load())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestSecureAndPlainSameAddress: an address both plain and secure is a
// BindError naming SecureBindings; a secure binding without TLSConfig is
// a BuildError; nothing is bound either way.
func TestSecureAndPlainSameAddress(t *testing.T) {
	a := freeAddr(t)
	s := New(Options{})
	defer s.Shutdown(context.Background())
	sp := spec(1, "g", &sink{}, binding(t, a))
	sp.SecureBindings = []schema.Binding{binding(t, a)}
	sp.TLSConfig = &tls.Config{Certificates: []tls.Certificate{testcert.New(t)}}
	_, err := s.Apply(1, []Spec{sp})
	var be *BindError
	if !errors.As(err, &be) || be.Property() != "SecureBindings" {
		t.Fatalf("Apply = %v, want a BindError on SecureBindings", err)
	}
	sp.Bindings, sp.TLSConfig = nil, nil
	_, err = s.Apply(1, []Spec{sp})
	var bu *BuildError
	if !errors.As(err, &bu) {
		t.Fatalf("Apply without TLSConfig = %v, want a BuildError", err)
	}
	if len(s.Addrs()) != 0 {
		t.Fatalf("listening on %v after refused configurations", s.Addrs())
	}
}

// TestPlainAddressBecomesSecure: a reload that turns a plain address into
// a secure one (same address, listener kept) serves TLS there from then
// on, and back.
func TestPlainAddressBecomesSecure(t *testing.T) {
	a := freeAddr(t)
	cfg := &tls.Config{Certificates: []tls.Certificate{testcert.New(t)}}
	s := New(Options{DrainTimeout: 5 * time.Second})
	defer s.Shutdown(context.Background())
	if _, err := s.Apply(1, []Spec{spec(1, "plain", &sink{}, binding(t, a))}); err != nil {
		t.Fatal(err)
	}
	if l, err := banner(t, a); err != nil || !strings.HasPrefix(l, "220 plain") {
		t.Fatalf("plain banner: %q %v", l, err)
	}
	sp := spec(1, "secure", &sink{})
	sp.SecureBindings, sp.TLSConfig = []schema.Binding{binding(t, a)}, cfg
	if _, err := s.Apply(2, []Spec{sp}); err != nil {
		t.Fatal(err)
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", a, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS on the address made secure: %v", err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := textproto.NewReader(bufio.NewReader(c)).ReadLine()
	c.Close()
	if err != nil || !strings.HasPrefix(line, "220 secure") {
		t.Fatalf("banner over TLS: %q %v", line, err)
	}
	if st := s.State(); len(st.Servers) != 1 || len(st.Servers[0].SecureBindings) != 1 || len(st.Servers[0].Bindings) != 0 {
		t.Errorf("State = %+v, want one secure binding and no plain one", st.Servers)
	}
	if _, err := s.Apply(3, []Spec{spec(1, "plain2", &sink{}, binding(t, a))}); err != nil {
		t.Fatal(err)
	}
	if l, err := banner(t, a); err != nil || !strings.HasPrefix(l, "220 plain2") {
		t.Fatalf("plain banner after going back: %q %v", l, err)
	}
}

// TestShutdownClosesPendingHandshakes: a client stuck in its TLS handshake
// is closed by Shutdown, not left until the handshake deadline.
func TestShutdownClosesPendingHandshakes(t *testing.T) {
	a := freeAddr(t)
	sp := spec(1, "gen1", &sink{})
	sp.SecureBindings = []schema.Binding{binding(t, a)}
	sp.TLSConfig = &tls.Config{Certificates: []tls.Certificate{testcert.New(t)}}
	sp.HandshakeTimeout = time.Hour
	s := New(Options{DrainTimeout: 5 * time.Second})
	if _, err := s.Apply(1, []Spec{sp}); err != nil {
		t.Fatal(err)
	}
	silent, err := net.DialTimeout("tcp", a, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// Wait until the supervisor has the connection in its handshake.
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.hmu.Lock()
		n := len(s.handshaking)
		s.hmu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("connection never reached its handshake")
		}
		time.Sleep(2 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	silent.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = silent.Read(make([]byte, 16))
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("client in its handshake not closed by Shutdown: %v", err)
	}
}
