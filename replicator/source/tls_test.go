package source_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/deploy/localdir"
	"github.com/ds2mb/ds2mb/replicator"
	"github.com/ds2mb/ds2mb/replicator/source"
)

// TestTLS: both sources read the directory over ldaps:// and over StartTLS
// with Config.TLS trusting the local directory's CA (the server name comes
// from the URL); with the system roots the dial fails with the
// certificate's error, which never holds the password.
func TestTLS(t *testing.T) {
	srv := localdir.StartT(t, localdir.Options{TLS: true})
	trust, err := srv.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	base := source.Config{BindDN: srv.BindDN, Password: srv.Password, BaseDN: source.SearchBase(srv.ConfigDN), Once: true}
	ldaps, startTLS := base, base
	ldaps.URL, ldaps.TLS = srv.LDAPSURL, trust
	startTLS.URL, startTLS.TLS, startTLS.StartTLS = srv.URL, trust, true

	for name, cfg := range map[string]source.Config{"ldaps": ldaps, "starttls": startTLS} {
		t.Run(name, func(t *testing.T) {
			ok, err := source.SupportsSyncrepl(&cfg)
			if err != nil || !ok {
				t.Fatalf("root DSE over TLS: syncrepl %v, %v", ok, err)
			}
			conn, err := cfg.Dial()
			if err != nil {
				t.Fatal(err)
			}
			if st, ok := conn.TLSConnectionState(); !ok || !st.HandshakeComplete {
				t.Errorf("Dial gave a connection without TLS")
			}
			conn.Close()
			for _, src := range []replicator.Source{source.NewSyncrepl(cfg), source.NewPoll(cfg, time.Second)} {
				c := &collector{}
				ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
				err := src.Run(ctx, nil, c.emit)
				cancel()
				if err != nil {
					t.Fatalf("%s over %s: %v", src.Kind(), name, err)
				}
				n := 0
				for _, ch := range c.snapshot() {
					if ch.Kind == replicator.ChangeUpsert {
						n++
					}
				}
				if n != 9 {
					t.Errorf("%s over %s: %d objects, want the 9 of the sample", src.Kind(), name, n)
				}
			}
		})
	}

	untrusted := &tls.Config{MinVersion: tls.VersionTLS12}
	ldaps.TLS, startTLS.TLS = untrusted, untrusted
	for name, cfg := range map[string]source.Config{"untrusted-ldaps": ldaps, "untrusted-starttls": startTLS} {
		t.Run(name, func(t *testing.T) {
			conn, err := cfg.Dial()
			if err == nil {
				conn.Close()
				t.Fatal("a server signed by an unknown CA was trusted")
			}
			if !strings.Contains(err.Error(), "certificate signed by unknown authority") || strings.Contains(err.Error(), srv.Password) {
				t.Errorf("error %q: want the certificate's refusal, without the password", err)
			}
			if name == "untrusted-ldaps" {
				var ua x509.UnknownAuthorityError
				if !errors.As(err, &ua) {
					t.Errorf("error %v does not unwrap to x509.UnknownAuthorityError", err)
				}
			}
			if err := source.NewSyncrepl(cfg).Run(context.Background(), nil, func(replicator.Change) {}); err == nil {
				t.Errorf("a Once syncrepl run over an untrusted connection succeeded")
			}
		})
	}
}

// TestDialHungDirectory: a directory that accepts connections and then says
// nothing (slapd stopped with SIGSTOP: the kernel still completes the TCP
// handshake) holds a dial no longer than Config.DialTimeout, whether it
// hangs in the ldaps:// handshake, in StartTLS or in the bind; and a source
// dialling it stops at once when its context ends.
func TestDialHungDirectory(t *testing.T) {
	srv := localdir.StartT(t, localdir.Options{TLS: true, NoSample: true})
	trust, err := srv.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(srv.Dir, "slapd.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) }) // before StartT's Stop

	base := source.Config{BindDN: srv.BindDN, Password: srv.Password, BaseDN: source.SearchBase(srv.ConfigDN), TLS: trust,
		DialTimeout: 300 * time.Millisecond}
	ldaps, startTLS, plain := base, base, base
	ldaps.URL = srv.LDAPSURL
	startTLS.URL, startTLS.StartTLS = srv.URL, true
	plain.URL, plain.TLS = srv.URL, nil
	for name, cfg := range map[string]source.Config{"ldaps": ldaps, "starttls": startTLS, "plain-bind": plain} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			conn, err := cfg.Dial()
			took := time.Since(start)
			if err == nil {
				conn.Close()
				t.Fatal("dial to a stopped slapd succeeded")
			}
			t.Logf("%s: %v after %v", name, err, took)
			if took > 10*time.Second {
				t.Errorf("dial took %v; DialTimeout is %v", took, cfg.DialTimeout)
			}
			if strings.Contains(err.Error(), srv.Password) {
				t.Errorf("error holds the password")
			}
		})
	}

	// No DialTimeout (30 s): cancelling the context ends the dial and Run.
	startTLS.DialTimeout = 0
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- source.NewSyncrepl(startTLS).Run(ctx, nil, func(replicator.Change) {}) }()
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end when its context did, while dialling a stopped slapd")
	}
}
