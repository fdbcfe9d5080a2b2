package smtpsvc

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/ds2mb/ds2mb/metabase"
	"github.com/ds2mb/ds2mb/schema"
	"github.com/ds2mb/ds2mb/smtpsvc/auth"
	"github.com/ds2mb/ds2mb/smtpsvc/config"
	"github.com/ds2mb/ds2mb/smtpsvc/internal/testcert"
	"github.com/ds2mb/ds2mb/smtpsvc/status"
)

// secureTree is tree() with SecureBindings on virtual server 1, AUTH
// basic, AccessSSL, and the certificate.
func secureTree(version uint64, plain []int, secure []int, cert, key string) *metabase.Tree {
	tr := tree(version, vsDef{n: 1, ports: plain, fqdn: "secure.example.com"})
	n := tr.Node(schema.ServerLocation(1))
	var sb []string
	for _, p := range secure {
		sb = append(sb, addr(p)+":")
	}
	if len(sb) > 0 {
		n.Set("SecureBindings", strings.Join(sb, "\n"))
	}
	if cert != "" {
		n.Set("SslCertificateFile", cert)
		n.Set("SslKeyFile", key)
	}
	n.Set("AuthFlags", "AuthAnonymous | AuthBasic")
	n.Set("AccessSSLFlags", "AccessSSL")
	return tr
}

type userChecker map[string]string

func (m userChecker) Check(_ context.Context, user, pass string) error {
	if p, ok := m[user]; ok && p == pass {
		return nil
	}
	return auth.ErrBadCredentials
}

func dialSMTPS(t *testing.T, a string) *smtp.Client {
	t.Helper()
	c, err := smtp.DialTLS(a, &tls.Config{InsecureSkipVerify: true, ServerName: "mail.example.com"})
	if err != nil {
		t.Fatalf("SMTPS dial %s: %v", a, err)
	}
	return c
}

// TestSecureBindingServesImplicitTLS: a client that speaks TLS from the
// first byte gets the banner, EHLO without STARTTLS, AUTH (offered over
// TLS only here), and a message spooled though AccessSSL requires TLS
// before MAIL; a plain TCP client on the same port gets no SMTP at all;
// status lists the secure binding.
func TestSecureBindingServesImplicitTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := testcert.Files(t, dir)
	plain, secure := freePort(t), freePort(t)
	w := startWorker(t, secureTree(1, []int{plain}, []int{secure}, cert, key).Bytes(), func(o *Options) {
		o.Auth = userChecker{"alice": "wonderland"}
		// The message must stay in the queue for the count below: a
		// delivery could take it out before the count.
		o.NoDelivery = true
	})
	st := w.waitVersion(t, 1)
	if got := st.Servers[0].SecureBindings; !slices.Equal(got, []string{addr(secure)}) {
		t.Fatalf("status secureBindings = %v, want [%s]", got, addr(secure))
	}
	if got := st.Servers[0].Bindings; !slices.Equal(got, []string{addr(plain)}) {
		t.Fatalf("status bindings = %v, want [%s]", got, addr(plain))
	}

	code, body := httpGet(t, "http://"+w.StatusAddr()+"/status")
	var js struct {
		Servers []struct {
			SecureBindings []string `json:"secureBindings"`
		} `json:"virtualServers"`
	}
	if err := json.Unmarshal([]byte(body), &js); code != 200 || err != nil || len(js.Servers) != 1 || !slices.Equal(js.Servers[0].SecureBindings, []string{addr(secure)}) {
		t.Fatalf("/status %d (%v) does not list the secure binding: %s", code, err, body)
	}

	c := dialSMTPS(t, addr(secure))
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatalf("EHLO: %v", err)
	}
	if _, isTLS := c.TLSConnectionState(); !isTLS {
		t.Fatal("client does not see TLS")
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS offered on an implicit-TLS connection")
	}
	if ok, mechs := c.Extension("AUTH"); !ok || !strings.Contains(mechs, "PLAIN") {
		t.Fatalf("AUTH PLAIN not offered over implicit TLS (AUTH %v %q)", ok, mechs)
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice", "wonderland")); err != nil {
		t.Fatalf("AUTH PLAIN over implicit TLS: %v", err)
	}
	queue := filepath.Join(w.dir, "Mailroot", "vsi 1", "Queue")
	before := countEML(t, queue)
	if err := sendOne(c, 1); err != nil {
		t.Fatalf("transaction over implicit TLS: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatalf("QUIT: %v", err)
	}
	if got := countEML(t, queue); got != before+1 {
		t.Fatalf("queue holds %d messages, want %d", got, before+1)
	}

	// The plain binding still offers STARTTLS and AccessSSL still refuses MAIL in clear.
	pc, err := smtp.Dial(addr(plain))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := pc.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := pc.Extension("STARTTLS"); !ok {
		t.Error("STARTTLS not offered on the plain binding")
	}
	var se *smtp.SMTPError
	if err := pc.Mail("sender@example.net", nil); !errors.As(err, &se) || se.Code != 530 {
		t.Errorf("MAIL in clear on the plain binding = %v, want 530", err)
	}

	// A plain TCP client on the secure port: no banner, the server ends
	// the connection once the handshake fails.
	raw, err := net.DialTimeout("tcp", addr(secure), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	raw.Write([]byte("EHLO client.test\r\n"))
	line, err := textproto.NewReader(bufio.NewReader(raw)).ReadLine()
	if strings.HasPrefix(line, "220") || strings.HasPrefix(line, "250") || strings.Contains(line, "ESMTP") {
		t.Fatalf("plain client on the secure port got SMTP: %q", line)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("plain client on the secure port: connection not closed (%v)", err)
	}
}

func countEML(t *testing.T, dir string) int {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	n := 0
	for _, e := range es {
		if strings.HasSuffix(e.Name(), ".eml") {
			n++
		}
	}
	return n
}

// TestSecureBindingNeedsCertificate: Build refuses a virtual server with
// secure bindings and no certificate, naming SecureBindings and the missing
// SslCertificateFile; an address both plain and secure is refused too.
func TestSecureBindingNeedsCertificate(t *testing.T) {
	p := freePort(t)
	_, err := config.Build(secureTree(1, []int{freePort(t)}, []int{p}, "", ""), config.Options{BaseDir: t.TempDir(), Hostname: "h"})
	var ve metabase.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Build = %v, want a ValidationError", err)
	}
	found := false
	for _, pr := range ve {
		if pr.Location == schema.ServerLocation(1) && pr.Property == "SecureBindings" && strings.Contains(pr.Reason, "SslCertificateFile") {
			found = true
		}
	}
	if !found {
		t.Fatalf("Build error %v does not name %s: SecureBindings: … SslCertificateFile", err, schema.ServerLocation(1))
	}

	cert, key := testcert.Files(t, t.TempDir())
	_, err = config.Build(secureTree(1, []int{p}, []int{p}, cert, key), config.Options{BaseDir: t.TempDir(), Hostname: "h"})
	if err == nil || !strings.Contains(err.Error(), "SecureBindings") || !strings.Contains(err.Error(), "also in ServerBindings") {
		t.Fatalf("Build of an address both plain and secure = %v", err)
	}
}

// TestSecureBindingRefusedKeepsLastGood: a file adding a secure binding
// without a certificate is refused whole and the running configuration
// stays.
func TestSecureBindingRefusedKeepsLastGood(t *testing.T) {
	plain, secure := freePort(t), freePort(t)
	w := startWorker(t, tree(1, vsDef{n: 1, ports: []int{plain}}).Bytes(), nil)
	w.waitVersion(t, 1)
	write(t, w.path, secureTree(2, []int{plain}, []int{secure}, "", "").Bytes())
	st := w.waitStatus(t, "version 2 refused", func(st status.Status) bool { return st.Refused != nil && st.Refused.Version == 2 })
	if st.Version != 1 {
		t.Fatalf("running version %d, want 1 kept", st.Version)
	}
	if !strings.Contains(st.Refused.Reason, "SecureBindings") {
		t.Errorf("refusal %q does not name SecureBindings", st.Refused.Reason)
	}
	if l, err := greeting(addr(plain)); err != nil || !strings.HasPrefix(l, "220") {
		t.Errorf("last good binding: %q %v", l, err)
	}
	if c, err := net.DialTimeout("tcp", addr(secure), 2*time.Second); err == nil {
		c.Close()
		t.Error("secure binding of a refused file is listening")
	}
}

// TestSecureBindingReload: a reload that adds a secure binding serves it;
// one that moves it serves the new port and stops the old; one that
// removes it stops accepting there, while the plain binding serves
// throughout.
func TestSecureBindingReload(t *testing.T) {
	dir := t.TempDir()
	cert, key := testcert.Files(t, dir)
	plain, s1, s2 := freePort(t), freePort(t), freePort(t)
	w := startWorker(t, secureTree(1, []int{plain}, nil, cert, key).Bytes(), nil)
	w.waitVersion(t, 1)
	if c, err := net.DialTimeout("tcp", addr(s1), 2*time.Second); err == nil {
		c.Close()
		t.Fatal("secure port listening before it is configured")
	}

	banner := func(a string) (string, error) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", a, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return textproto.NewReader(bufio.NewReader(c)).ReadLine()
	}
	closed := func(a string) bool {
		c, err := net.DialTimeout("tcp", a, 2*time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	}

	write(t, w.path, secureTree(2, []int{plain}, []int{s1}, cert, key).Bytes())
	w.waitVersion(t, 2)
	if l, err := banner(addr(s1)); err != nil || !strings.HasPrefix(l, "220 secure.example.com") {
		t.Fatalf("added secure binding: %q %v", l, err)
	}

	write(t, w.path, secureTree(3, []int{plain}, []int{s2}, cert, key).Bytes())
	w.waitVersion(t, 3)
	if l, err := banner(addr(s2)); err != nil || !strings.HasPrefix(l, "220 ") {
		t.Fatalf("moved secure binding: %q %v", l, err)
	}
	if !closed(addr(s1)) {
		t.Error("old secure binding still accepting after the move")
	}

	write(t, w.path, secureTree(4, []int{plain}, nil, cert, key).Bytes())
	w.waitVersion(t, 4)
	if !closed(addr(s2)) {
		t.Error("removed secure binding still accepting")
	}
	if l, err := greeting(addr(plain)); err != nil || !strings.HasPrefix(l, "220 ") {
		t.Errorf("plain binding after the reloads: %q %v", l, err)
	}
}

// TestSecureSessionSpansReload: a session open on a secure binding when
// the virtual server is replaced finishes its transaction on its own
// generation, and the next connection gets the new one.
func TestSecureSessionSpansReload(t *testing.T) {
	dir := t.TempDir()
	cert, key := testcert.Files(t, dir)
	plain, secure := freePort(t), freePort(t)
	w := startWorker(t, secureTree(1, []int{plain}, []int{secure}, cert, key).Bytes(), nil)
	w.waitVersion(t, 1)
	c := dialSMTPS(t, addr(secure))
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}

	next := secureTree(2, []int{plain}, []int{secure}, cert, key)
	next.Node(schema.ServerLocation(1)).Set("FullyQualifiedDomainName", "next.example.com")
	write(t, w.path, next.Bytes())
	w.waitVersion(t, 2)

	if err := sendOne(c, 1); err != nil {
		t.Fatalf("transaction on the old generation after the reload: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr(secure), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if l, err := textproto.NewReader(bufio.NewReader(tc)).ReadLine(); err != nil || !strings.HasPrefix(l, "220 next.example.com") {
		t.Fatalf("banner after the reload: %q %v", l, err)
	}
}
