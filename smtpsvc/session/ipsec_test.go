package session_test

import (
	"io"
	"strings"
	"testing"
	"time"
)

// closed checks that the server closed the connection (after any reply
// already read).
func (r *raw) closed() {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := r.tp.ReadLine()
	if err != io.EOF {
		r.t.Fatalf("connection still open: read %q, %v", line, err)
	}
}

// TestIPSecurity: IPSecurity, when it decodes as a grant list, admits only
// the hosts it lists; the others get 554 5.7.1 instead of the greeting and
// the connection is closed. A blob in another layout is ignored with a
// note.
func TestIPSecurity(t *testing.T) {
	cases := []struct {
		name     string
		svc, vs  props
		admitted bool
		note     string
	}{
		{"granted", nil, props{"IPSecurity": relayBlob(t, "192.0.2.1", "127.0.0.1")}, true, ""},
		{"another host granted", nil, props{"IPSecurity": relayBlob(t, "192.0.2.1")}, false, ""},
		{"empty grant list", nil, props{"IPSecurity": relayBlob(t)}, false, ""},
		{"inherited from the service", props{"IPSecurity": relayBlob(t, "192.0.2.1")}, nil, false, ""},
		{"own list over the service's", props{"IPSecurity": relayBlob(t, "192.0.2.1")}, props{"IPSecurity": relayBlob(t, "127.0.0.1")}, true, ""},
		{"undecodable: ignored", nil, props{"IPSecurity": strings.Repeat("00", 84)}, true, "/LM/SmtpSvc/1: IPSecurity not in the single-host grant layout, ignored"},
		{"not set", nil, nil, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := startProps(t, c.svc, c.vs, nil)
			if c.note != "" && (len(f.vs.Notes) != 1 || !strings.HasPrefix(f.vs.Notes[0], c.note)) {
				t.Errorf("Notes %q, want %q…", f.vs.Notes, c.note)
			}
			if c.note == "" && len(f.vs.Notes) != 0 {
				t.Errorf("Notes %q", f.vs.Notes)
			}
			r := dialRaw(t, f.addr)
			if !c.admitted {
				if got := itoa(r.code) + " " + r.msg; got != "554 5.7.1 Connection refused" {
					t.Fatalf("first reply %q, want 554 5.7.1 Connection refused", got)
				}
				r.closed()
				if n := f.stats.ConnectionsDenied.Load(); n != 1 {
					t.Errorf("ConnectionsDenied = %d", n)
				}
				return
			}
			if r.code != 220 {
				t.Fatalf("greeting %d %s", r.code, r.msg)
			}
			r.expect("EHLO client.test", "250")
			r.expect("MAIL FROM:<a@example.org>", "250")
			r.expect("RCPT TO:<user@example.com>", "250")
			if n := f.stats.ConnectionsDenied.Load(); n != 0 {
				t.Errorf("ConnectionsDenied = %d", n)
			}
		})
	}
}

// TestMaxSmtpErrors: with MaxSmtpErrors 3 the third 4xx/5xx reply of a
// session (refused recipient, unknown command, bad sequence alike; 2xx
// replies between do not reset the count) is followed by "421 4.7.0 Too
// many errors, closing connection" and the connection closes; a new
// connection starts afresh. Unlimited (the default) keeps the session
// open past many errors.
func TestMaxSmtpErrors(t *testing.T) {
	f := startProps(t, nil, props{"MaxSmtpErrors": "3"}, nil)
	if f.vs.MaxSmtpErrors != 3 {
		t.Fatalf("MaxSmtpErrors = %d", f.vs.MaxSmtpErrors)
	}
	r := dialRaw(t, f.addr)
	r.expect("EHLO client.test", "250")
	r.expect("MAIL FROM:<a@example.org>", "250")
	r.expect("RCPT TO:<user@elsewhere.example>", "550 5.7.1") // 1
	r.expect("RCPT TO:<user@example.com>", "250")
	r.expect("XYZZY", "500 5.5.2") // 2
	r.expect("NOOP", "250")
	r.expect("RCPT TO:<user@elsewhere.example>", "550 5.7.1") // 3
	if code, msg := r.read(); itoa(code)+" "+msg != "421 4.7.0 Too many errors, closing connection" {
		t.Fatalf("after the third error: %d %s", code, msg)
	}
	r.closed()

	again := dialRaw(t, f.addr)
	again.expect("EHLO client.test", "250")
	again.expect("RCPT TO:<user@example.com>", "502 5.5.1") // 1: no MAIL yet
	again.expect("MAIL FROM:<a@example.org>", "250")
	again.expect("RCPT TO:<user@example.com>", "250")
	if _, msg := again.data("Subject: x\n\nhello\n"); !strings.Contains(msg, "Queued") {
		t.Fatalf("DATA: %s", msg)
	}

	unlimited := startProps(t, nil, nil, nil)
	if unlimited.vs.MaxSmtpErrors != 0 {
		t.Fatalf("default MaxSmtpErrors = %d, want 0 (unlimited)", unlimited.vs.MaxSmtpErrors)
	}
	u := dialRaw(t, unlimited.addr)
	u.expect("EHLO client.test", "250")
	u.expect("MAIL FROM:<a@example.org>", "250")
	for range 20 {
		u.expect("RCPT TO:<user@elsewhere.example>", "550 5.7.1")
	}
	u.expect("RCPT TO:<user@example.com>", "250")
}
