package localdir_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ds2mb/ds2mb/deploy/localdir"
)

// tlsBindSearch binds as the admin on an encrypted connection, reads the
// suffix entry and returns the server's certificate.
func tlsBindSearch(t *testing.T, s *localdir.Server, c *ldap.Conn) *x509.Certificate {
	t.Helper()
	st, ok := c.TLSConnectionState()
	if !ok || !st.HandshakeComplete || len(st.PeerCertificates) == 0 {
		t.Fatalf("connection is not TLS (ok=%v)", ok)
	}
	if err := c.Bind(s.BindDN, s.Password); err != nil {
		t.Fatalf("bind over TLS: %v", err)
	}
	if e := search(t, c, s.Suffix, ldap.ScopeBaseObject, "(objectClass=*)", "dc"); len(e) != 1 || e[0].GetAttributeValue("dc") != "example" {
		t.Fatalf("suffix over TLS: %v", e)
	}
	return st.PeerCertificates[0]
}

// TestTLS: with Options.TLS, slapd serves ldaps:// on LDAPSURL and StartTLS
// on URL with a certificate for 127.0.0.1 and localhost that verifies
// against CAFile; a client that does not trust the CA is refused, both
// ways; plain LDAP still works; a restart and a new Start on the same folder
// keep the CA.
func TestTLS(t *testing.T) {
	s := localdir.StartT(t, localdir.Options{TLS: true, NoSample: true})
	if !strings.HasPrefix(s.LDAPSURL, "ldaps://127.0.0.1:") || s.TLSPort == 0 || s.TLSPort == s.Port {
		t.Fatalf("LDAPSURL %q, TLS port %d, port %d", s.LDAPSURL, s.TLSPort, s.Port)
	}
	st, err := os.Stat(s.CAFile)
	if err != nil {
		t.Fatalf("CAFile: %v", err)
	}
	if st.Mode().Perm()&0o044 == 0 {
		t.Errorf("CA file mode %v: want it readable", st.Mode())
	}
	keys, _ := os.ReadDir(s.Dir)
	for _, f := range keys {
		if strings.HasSuffix(f.Name(), ".key") {
			info, _ := f.Info()
			if info.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %v, want 0600", f.Name(), info.Mode().Perm())
			}
		}
	}
	cfg, err := s.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("ldaps", func(t *testing.T) {
		c, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(cfg))
		if err != nil {
			t.Fatalf("ldaps with the CA: %v", err)
		}
		defer c.Close()
		leaf := tlsBindSearch(t, s, c)
		if leaf.VerifyHostname("127.0.0.1") != nil || leaf.VerifyHostname("localhost") != nil {
			t.Errorf("certificate names %v %v, want 127.0.0.1 and localhost", leaf.IPAddresses, leaf.DNSNames)
		}
	})
	t.Run("ldaps-localhost-name", func(t *testing.T) {
		named := cfg.Clone()
		named.ServerName = "localhost"
		c, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(named))
		if err != nil {
			t.Fatalf("ldaps to 127.0.0.1 verified as localhost: %v", err)
		}
		defer c.Close()
		tlsBindSearch(t, s, c)
	})
	t.Run("starttls", func(t *testing.T) {
		c, err := ldap.DialURL(s.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		withName := cfg.Clone()
		withName.ServerName = "127.0.0.1"
		if err := c.StartTLS(withName); err != nil {
			t.Fatalf("StartTLS with the CA: %v", err)
		}
		tlsBindSearch(t, s, c)
	})
	t.Run("plain-still-works", func(t *testing.T) {
		c, err := s.Dial()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, ok := c.TLSConnectionState(); ok {
			t.Errorf("Dial gave a TLS connection; want plain LDAP on URL")
		}
		search(t, c, s.Suffix, ldap.ScopeBaseObject, "(objectClass=*)", "dc")
	})
	t.Run("untrusted-ldaps", func(t *testing.T) {
		c, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12}))
		if err == nil {
			c.Close()
			t.Fatal("ldaps without the CA (system roots) was accepted")
		}
		var ua x509.UnknownAuthorityError
		if !errors.As(err, &ua) {
			t.Errorf("ldaps without the CA: %v; want x509.UnknownAuthorityError", err)
		}
	})
	t.Run("untrusted-starttls", func(t *testing.T) {
		c, err := ldap.DialURL(s.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		err = c.StartTLS(&tls.Config{ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
		if err == nil {
			t.Fatal("StartTLS without the CA (system roots) was accepted")
		}
		// go-ldap formats the handshake error with %v: match its text.
		if !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Errorf("StartTLS without the CA: %v; want an unknown-authority refusal", err)
		}
	})
	t.Run("wrong-name", func(t *testing.T) {
		other := cfg.Clone()
		other.ServerName = "ldap.example.com"
		c, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(other))
		if err == nil {
			c.Close()
			t.Fatal("certificate accepted for ldap.example.com")
		}
		var he x509.HostnameError
		if !errors.As(err, &he) {
			t.Errorf("wrong name: %v; want x509.HostnameError", err)
		}
	})

	// A restart serves the same certificate on the same ports; a new Start
	// on the same folder keeps the CA a client already holds.
	ca, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(cfg))
	if err != nil {
		t.Fatalf("ldaps after Restart: %v", err)
	}
	tlsBindSearch(t, s, c)
	c.Close()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	s2, err := localdir.Start(ctx, localdir.Options{Dir: s.Dir, TLS: true, NoSample: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Stop()
	if ca2, _ := os.ReadFile(s2.CAFile); !bytes.Equal(ca, ca2) {
		t.Errorf("a new Start on the same folder replaced the CA")
	}
	c, err = ldap.DialURL(s2.LDAPSURL, ldap.DialWithTLSConfig(cfg))
	if err != nil {
		t.Fatalf("ldaps after a new Start, with the first CA: %v", err)
	}
	tlsBindSearch(t, s2, c)
	c.Close()
}

// TestNoTLSByDefault: without Options.TLS there is no ldaps:// listener and
// no CA.
func TestNoTLSByDefault(t *testing.T) {
	s := localdir.StartT(t, localdir.Options{NoSample: true})
	if s.LDAPSURL != "" || s.CAFile != "" || s.TLSPort != 0 {
		t.Errorf("LDAPSURL %q, CAFile %q, TLSPort %d without Options.TLS", s.LDAPSURL, s.CAFile, s.TLSPort)
	}
	if _, err := s.TLSConfig(); err == nil {
		t.Errorf("TLSConfig without Options.TLS succeeded")
	}
	c, err := ldap.DialURL(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.StartTLS(&tls.Config{ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}); err == nil {
		t.Errorf("StartTLS succeeded on a server without TLS")
	}
}
