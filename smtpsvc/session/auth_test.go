package session_test

import (
	"crypto/tls"
	"encoding/base64"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/ds2mb/ds2mb/smtpsvc/auth"
	"github.com/ds2mb/ds2mb/smtpsvc/internal/testcert"
	"github.com/ds2mb/ds2mb/smtpsvc/session"
)

// startTLS upgrades a raw connection with STARTTLS.
func (r *raw) startTLS() {
	r.t.Helper()
	r.expect("STARTTLS", "220 2.0.0")
	tc := tls.Client(r.c, clientTLS())
	if err := tc.Handshake(); err != nil {
		r.t.Fatalf("TLS handshake: %v", err)
	}
	r.c = tc
	r.tp = textproto.NewConn(tc)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestAuthOverTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := testcert.Files(t, dir)
	env := &session.Env{Auth: mapChecker{"alice@example.com": "wonderland"}, Limiter: auth.NewLimiter(3, time.Hour)}
	f := startProps(t, nil, props{"AuthFlags": "AuthBasic | AuthAnonymous", "SslCertificateFile": cert, "SslKeyFile": key}, env)

	r := dialRaw(t, f.addr)
	kw := ehloKeywords(r.expect("EHLO client.test", "250"))
	if !has(kw, "STARTTLS") {
		t.Fatalf("STARTTLS not offered with a certificate: %q", kw)
	}
	for _, k := range kw {
		if strings.HasPrefix(k, "AUTH") {
			t.Fatalf("AUTH offered in clear: %q", kw)
		}
	}
	r.expect("AUTH PLAIN "+plain("alice@example.com", "wonderland"), "538 5.7.11")
	r.startTLS()
	kw = ehloKeywords(r.expect("EHLO client.test", "250 mail.example.com Hello [127.0.0.1]"))
	if !has(kw, "AUTH PLAIN LOGIN") || has(kw, "STARTTLS") {
		t.Fatalf("after STARTTLS: %q", kw)
	}
	r.expect("AUTH PLAIN "+plain("alice@example.com", "wrong"), "535 5.7.8")
	// LOGIN, challenge by challenge.
	r.expect("AUTH LOGIN", "334 "+b64("Username:"))
	r.expect(b64("alice@example.com"), "334 "+b64("Password:"))
	r.expect(b64("wrong again"), "535 5.7.8")
	r.expect("AUTH LOGIN "+b64("alice@example.com"), "334 "+b64("Password:"))
	r.expect(b64("wonderland"), "235 2.0.0")
	r.expect("AUTH PLAIN "+plain("alice@example.com", "wonderland"), "503 5.5.1")
	if got := f.stats.AuthFailures.Load(); got != 2 {
		t.Errorf("AuthFailures = %d, want 2", got)
	}

	// A second connection from the same address: one failure left of 3.
	r2 := dialRaw(t, f.addr)
	r2.expect("EHLO client.test", "250")
	r2.startTLS()
	r2.expect("EHLO client.test", "250")
	r2.expect("AUTH PLAIN "+plain("alice@example.com", "bad"), "535 5.7.8")
	r2.expect("AUTH PLAIN "+plain("alice@example.com", "wonderland"), "454 4.7.0 Too many failed attempts")
	r2.expect("AUTH LOGIN", "454 4.7.0 Too many failed attempts")
}

// TestAuthClients uses go-smtp's client with go-sasl's PLAIN and LOGIN
// clients over STARTTLS, then sends a message.
func TestAuthClients(t *testing.T) {
	dir := t.TempDir()
	cert, key := testcert.Files(t, dir)
	env := &session.Env{Auth: mapChecker{"bob": "builder"}}
	f := startProps(t, nil, props{"AuthFlags": "AuthBasic", "RelayForAuth": "1", "SslCertificateFile": cert, "SslKeyFile": key}, env)
	for _, mech := range []string{"PLAIN", "LOGIN"} {
		t.Run(mech, func(t *testing.T) {
			c, err := smtp.DialStartTLS(f.addr, clientTLS())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			bad := sasl.NewPlainClient("", "bob", "nope")
			good := sasl.NewPlainClient("", "bob", "builder")
			if mech == "LOGIN" {
				bad, good = sasl.NewLoginClient("bob", "nope"), sasl.NewLoginClient("bob", "builder")
			}
			var se *smtp.SMTPError
			if err := c.Auth(bad); err == nil || !asSMTP(err, &se) || se.Code != 535 {
				t.Fatalf("bad password: %v", err)
			}
			if err := c.Auth(good); err != nil {
				t.Fatalf("good password: %v", err)
			}
			if err := c.SendMail("bob@example.org", []string{"someone@elsewhere.example"},
				strings.NewReader("Subject: relayed\r\n\r\nvia AUTH\r\n")); err != nil {
				t.Fatalf("relay after AUTH: %v", err)
			}
		})
	}
	files := spooled(t, f.vs.QueueDir)
	if len(files) != 2 {
		t.Fatalf("%d spooled, want 2", len(files))
	}
	env0 := readEnvelope(t, files[0])
	if !strings.Contains(env0.Client, "auth=bob") || !strings.Contains(env0.Client, " tls") {
		t.Errorf("client line %q", env0.Client)
	}
}

func asSMTP(err error, se **smtp.SMTPError) bool {
	e, ok := err.(*smtp.SMTPError)
	if ok {
		*se = e
	}
	return ok
}

func TestAuthNotOffered(t *testing.T) {
	cases := []struct {
		name string
		vs   props
		env  *session.Env
	}{
		{"AuthFlags without AuthBasic", props{"AuthFlags": "AuthAnonymous"}, &session.Env{Auth: mapChecker{"a": "b"}, AllowInsecureAuth: true}},
		{"no checker", props{"AuthFlags": "AuthBasic"}, &session.Env{AllowInsecureAuth: true}},
		{"clear text, not allowed", props{"AuthFlags": "AuthBasic"}, &session.Env{Auth: mapChecker{"a": "b"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := startProps(t, nil, c.vs, c.env)
			r := dialRaw(t, f.addr)
			for _, k := range ehloKeywords(r.expect("EHLO c.test", "250")) {
				if strings.HasPrefix(k, "AUTH") {
					t.Fatalf("AUTH offered: %q", k)
				}
			}
			code, msg := r.cmd("AUTH PLAIN " + plain("a", "b"))
			if code/100 != 5 || !strings.HasPrefix(msg, "5.") {
				t.Fatalf("AUTH: %d %s, want a 5xx with an enhanced code", code, msg)
			}
		})
	}
}

// TestAnonymousNotAllowed: AuthFlags without AuthAnonymous (anonymous
// access unchecked) refuses MAIL from a client that did not authenticate,
// with 530 5.7.0, and serves one that did; with AuthAnonymous, and by
// default, anonymous clients are served.
func TestAnonymousNotAllowed(t *testing.T) {
	env := &session.Env{Auth: mapChecker{"alice": "wonderland"}, AllowInsecureAuth: true}
	f := startProps(t, nil, props{"AuthFlags": "AuthBasic"}, env)
	r := dialRaw(t, f.addr)
	r.expect("EHLO c.test", "250")
	r.expect("MAIL FROM:<a@example.org>", "530 5.7.0 Authentication required")
	r.expect("RCPT TO:<user@example.com>", "502 5.5.1")
	r.expect("AUTH PLAIN "+plain("alice", "wonderland"), "235 2.0.0")
	r.expect("MAIL FROM:<a@example.org>", "250")
	r.expect("RCPT TO:<user@example.com>", "250")
	for _, vs := range []props{{"AuthFlags": "AuthAnonymous | AuthBasic"}, nil} {
		f := startProps(t, nil, vs, env)
		r := dialRaw(t, f.addr)
		r.expect("EHLO c.test", "250")
		r.expect("MAIL FROM:<a@example.org>", "250")
	}
}

func TestAccessSSLRequiresTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := testcert.Files(t, dir)
	f := startProps(t, nil, props{"AccessSSLFlags": "AccessSSL", "SslCertificateFile": cert, "SslKeyFile": key}, nil)
	r := dialRaw(t, f.addr)
	r.expect("EHLO c.test", "250")
	r.expect("MAIL FROM:<a@example.org>", "530 5.7.0")
	r.startTLS()
	r.expect("EHLO c.test", "250")
	r.expect("MAIL FROM:<a@example.org>", "250 2.0.0")
	r.expect("RCPT TO:<b@example.com>", "250 2.0.0")
	if code, m := r.data("Subject: tls\r\n\r\nsecret\r\n"); code != 250 {
		t.Fatalf("DATA: %d %s", code, m)
	}
	data := readFile(t, spooled(t, f.vs.QueueDir)[0])
	if !strings.Contains(data, "with ESMTPS id") {
		t.Errorf("Received header does not say ESMTPS:\n%s", data)
	}
}
