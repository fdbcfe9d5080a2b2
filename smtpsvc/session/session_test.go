package session_test

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	netsmtp "net/smtp"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/smtpsvc/config"
	"github.com/ds2mb/ds2mb/smtpsvc/session"
	"github.com/ds2mb/ds2mb/smtpsvc/spool"
)

func TestBannerAndEHLO(t *testing.T) {
	f := startProps(t, nil, nil, nil)
	r := dialRaw(t, f.addr)
	m := regexp.MustCompile(`^mail\.example\.com ds2mb ESMTP ready at (.+)$`).FindStringSubmatch(r.msg)
	if r.code != 220 || m == nil {
		t.Fatalf("banner %d %q", r.code, r.msg)
	}
	when, err := time.Parse(time.RFC1123Z, m[1])
	if err != nil {
		t.Fatalf("banner date %q is not RFC 5322: %v", m[1], err)
	}
	if d := time.Since(when); d < -2*time.Second || d > time.Minute {
		t.Errorf("banner date %v is not now", when)
	}
	msg := r.expect("EHLO client.test", "250 mail.example.com Hello [127.0.0.1]")
	kw := ehloKeywords(msg)
	for _, want := range []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING", "BINARYMIME", "DSN", "SIZE 33554432"} {
		if !has(kw, want) {
			t.Errorf("EHLO lacks %q: %q", want, kw)
		}
	}
	for _, absent := range []string{"STARTTLS", "AUTH PLAIN LOGIN"} {
		if has(kw, absent) {
			t.Errorf("EHLO offers %q without a certificate / checker: %q", absent, kw)
		}
	}
	r.expect("HELO client.test", "250 2.0.0 mail.example.com Hello [127.0.0.1]")
	r.expect("NOOP", "250 2.0.0")
	r.expect("QUIT", "221 2.0.0")
}

// TestEnhancedCodes: replies to mistakes carry enhanced status codes too.
func TestEnhancedCodes(t *testing.T) {
	f := startProps(t, nil, nil, nil)
	r := dialRaw(t, f.addr)
	r.expect("MAIL FROM:<a@example.org>", "502 5.5.1")
	r.expect("EHLO client.test", "250")
	r.expect("RCPT TO:<b@example.com>", "502 5.5.1")
	r.expect("MAIL FROM:<a@example.org>", "250 2.0.0")
	r.expect("MAIL FROM:<a@example.org>", "503 5.5.1")
	r.expect("DATA", "502 5.5.1")
	r.expect("RCPT TO:<not an address>", "501 5.5.2")
	r.expect("VRFY b@example.com", "252 2.5.0")
	r.expect("RSET", "250 2.0.0")
	r.expect("XYZZY", "500 5.5.2")
	r.expect("FOOB", "500 5.5.2")
}

// TestCommandSupportOptions: SmtpInboundCommandSupportOptions switches
// DSN, CHUNKING, BINARYMIME and 8BITMIME.
func TestCommandSupportOptions(t *testing.T) {
	const all = 0x40 | 0x100000 | 0x200000 | 0x400000
	cases := []struct {
		mask      uint32
		on, off   []string
		bdatReply string
	}{
		{all, []string{"DSN", "CHUNKING", "BINARYMIME", "8BITMIME"}, nil, "250 2.6.0"},
		{0, []string{"PIPELINING", "ENHANCEDSTATUSCODES"}, []string{"DSN", "CHUNKING", "BINARYMIME", "8BITMIME"}, "502 5.5.1"},
		{all &^ 0x40, []string{"CHUNKING", "BINARYMIME", "8BITMIME"}, []string{"DSN"}, "250 2.6.0"},
		{all &^ 0x100000, []string{"DSN", "8BITMIME"}, []string{"CHUNKING", "BINARYMIME"}, "502 5.5.1"},
		{all &^ 0x200000, []string{"DSN", "CHUNKING", "8BITMIME"}, []string{"BINARYMIME"}, "250 2.6.0"},
		{all &^ 0x400000, []string{"DSN", "CHUNKING", "BINARYMIME"}, []string{"8BITMIME"}, "250 2.6.0"},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("0x%x", c.mask), func(t *testing.T) {
			f := startProps(t, nil, props{"SmtpInboundCommandSupportOptions": fmt.Sprint(c.mask)}, nil)
			r := dialRaw(t, f.addr)
			kw := ehloKeywords(r.expect("EHLO client.test", "250 "))
			for _, w := range c.on {
				if !has(kw, w) {
					t.Errorf("missing %s in %q", w, kw)
				}
			}
			for _, w := range c.off {
				if has(kw, w) {
					t.Errorf("%s offered in %q", w, kw)
				}
			}
			r.expect("MAIL FROM:<a@example.org>", "250 2.0.0")
			r.expect("RCPT TO:<b@example.com>", "250 2.0.0")
			body := "Subject: bdat\r\n\r\nhello\r\n"
			r.tp.PrintfLine("BDAT %d LAST", len(body))
			if !strings.HasPrefix(c.bdatReply, "502") {
				r.c.Write([]byte(body)) // a client sends no chunk for a refused BDAT
			}
			code, msg := r.read()
			if got := fmt.Sprintf("%d %s", code, msg); !strings.HasPrefix(got, c.bdatReply) {
				t.Errorf("BDAT: %q, want %q", got, c.bdatReply)
			}
			if c.off != nil && has(c.off, "DSN") {
				r.expect("RSET", "250")
				r.expect("MAIL FROM:<a@example.org> RET=HDRS", "504 5.5.4")
			}
			if c.off != nil && has(c.off, "8BITMIME") {
				r.expect("RSET", "250")
				r.expect("MAIL FROM:<a@example.org> BODY=8BITMIME", "555 5.5.4")
			}
		})
	}
}

func TestMaxMessageSize(t *testing.T) {
	t.Run("limit", func(t *testing.T) {
		f := startProps(t, nil, props{"MaxMessageSize": "1000"}, nil)
		r := dialRaw(t, f.addr)
		if kw := ehloKeywords(r.expect("EHLO c.test", "250")); !has(kw, "SIZE 1000") {
			t.Errorf("EHLO: %q", kw)
		}
		r.expect("MAIL FROM:<a@example.org> SIZE=2000", "552 5.3.4")
		r.expect("MAIL FROM:<a@example.org>", "250")
		r.expect("RCPT TO:<b@example.com>", "250")
		code, msg := r.data("Subject: big\r\n\r\n" + lines(2000))
		if code != 552 || !strings.HasPrefix(msg, "5.3.4") {
			t.Fatalf("big message: %d %s", code, msg)
		}
		r.expect("MAIL FROM:<a@example.org>", "250")
		r.expect("RCPT TO:<b@example.com>", "250")
		if code, msg := r.data("Subject: small\r\n\r\nsmall"); code != 250 {
			t.Fatalf("small message: %d %s", code, msg)
		}
		if n := len(spooled(t, f.vs.QueueDir)); n != 1 {
			t.Errorf("%d messages spooled, want 1", n)
		}
	})
	t.Run("unlimited", func(t *testing.T) {
		f := startProps(t, nil, props{"MaxMessageSize": "0"}, nil)
		r := dialRaw(t, f.addr)
		kw := ehloKeywords(r.expect("EHLO c.test", "250"))
		if !has(kw, "SIZE") {
			t.Errorf("EHLO: want SIZE without a value: %q", kw)
		}
		r.expect("MAIL FROM:<a@example.org> SIZE=40000000", "250")
		r.expect("RCPT TO:<b@example.com>", "250")
		if code, msg := r.data("Subject: big\r\n\r\n" + lines(1<<20)); code != 250 {
			t.Fatalf("1 MiB message: %d %s", code, msg)
		}
	})
}

func TestMaxSessionSize(t *testing.T) {
	f := startProps(t, nil, props{"MaxSessionSize": "3000"}, nil)
	r := dialRaw(t, f.addr)
	r.expect("EHLO c.test", "250")
	msg := "Subject: s\r\n\r\n" + lines(1200)
	for i := 0; i < 2; i++ {
		r.expect("MAIL FROM:<a@example.org>", "250")
		r.expect("RCPT TO:<b@example.com>", "250")
		if code, m := r.data(msg); code != 250 {
			t.Fatalf("message %d: %d %s", i, code, m)
		}
	}
	r.expect("MAIL FROM:<a@example.org>", "250")
	r.expect("RCPT TO:<b@example.com>", "250")
	if code, m := r.data(msg); code != 552 || !strings.HasPrefix(m, "5.3.4") {
		t.Fatalf("third message: %d %s, want 552 5.3.4", code, m)
	}
	r.expect("MAIL FROM:<a@example.org> SIZE=1000", "552 5.3.4")
}

func TestMaxRecipients(t *testing.T) {
	f := startProps(t, nil, props{"MaxRecipients": "2"}, nil)
	r := dialRaw(t, f.addr)
	r.expect("EHLO c.test", "250")
	r.expect("MAIL FROM:<a@example.org>", "250")
	r.expect("RCPT TO:<b1@example.com>", "250 2.0.0")
	r.expect("RCPT TO:<b2@example.com>", "250 2.0.0")
	r.expect("RCPT TO:<b3@example.com>", "452 4.5.3 Too many recipients")
	if code, m := r.data("Subject: x\r\n\r\nx"); code != 250 {
		t.Fatalf("DATA: %d %s", code, m)
	}
	files := spooled(t, f.vs.QueueDir)
	env := readEnvelope(t, files[0])
	if len(env.To) != 2 {
		t.Errorf("spooled recipients %q, want 2", env.To)
	}
}

func TestHopCount(t *testing.T) {
	f := startProps(t, nil, props{"HopCount": "3"}, nil)
	r := dialRaw(t, f.addr)
	r.expect("EHLO c.test", "250")
	hops := func(n int) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "Received: from h%d.example by h%d.example; Thu, 26 Nov 2026 01:00:00 +0000\r\n", i, i+1)
		}
		return b.String() + "Subject: loop?\r\n\r\nbody\r\nReceived: in the body does not count\r\n"
	}
	r.expect("MAIL FROM:<a@example.org>", "250")
	r.expect("RCPT TO:<b@example.com>", "250")
	if code, m := r.data(hops(3)); code != 250 {
		t.Fatalf("3 hops: %d %s", code, m)
	}
	r.expect("MAIL FROM:<a@example.org>", "250")
	r.expect("RCPT TO:<b@example.com>", "250")
	if code, m := r.data(hops(4)); code != 554 || !strings.HasPrefix(m, "5.4.6 Hop count exceeded") {
		t.Fatalf("4 hops: %d %s, want 554 5.4.6", code, m)
	}
	if n := len(spooled(t, f.vs.QueueDir)); n != 1 {
		t.Errorf("%d spooled, want 1", n)
	}
	ents, _ := os.ReadDir(f.vs.QueueDir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("refused message left %s behind", e.Name())
		}
	}
}

func TestConnectionTimeout(t *testing.T) {
	f := startProps(t, nil, props{"ConnectionTimeout": "1"}, nil)
	r := dialRaw(t, f.addr)
	r.expect("EHLO c.test", "250")
	start := time.Now()
	code, msg := r.read() // nothing sent: the server times out
	if code != 421 || !strings.HasPrefix(msg, "4.4.2") {
		t.Fatalf("idle: %d %s, want 421 4.4.2", code, msg)
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 10*time.Second {
		t.Errorf("timed out after %v, want about 1 s", d)
	}
	if _, err := r.tp.ReadLine(); err == nil {
		t.Error("connection still open after the timeout")
	}
}

func TestSpoolSeveralPerSession(t *testing.T) {
	f := startProps(t, nil, nil, nil)
	r := dialRaw(t, f.addr)
	r.expect("EHLO client.test", "250")
	for i := 0; i < 5; i++ {
		r.expect("MAIL FROM:<sender@example.org> RET=HDRS ENVID=env"+fmt.Sprint(i), "250")
		r.expect("RCPT TO:<r1@example.com> NOTIFY=FAILURE", "250")
		r.expect("RCPT TO:<r2@partner.example.org>", "250")
		body := fmt.Sprintf("Subject: m%d\r\n\r\n..leading dot\r\nline %d\r\n", i, i)
		if code, m := r.data(body); code != 250 || !strings.HasPrefix(m, "2.6.0 <") || !strings.HasSuffix(m, "@mail.example.com> Queued mail for delivery") {
			t.Fatalf("message %d: %d %s", i, code, m)
		}
		// The 250 has been read: the message must be on disk, complete.
		files := spooled(t, f.vs.QueueDir)
		if len(files) != i+1 {
			t.Fatalf("after message %d: %d files", i, len(files))
		}
		var found bool
		for _, p := range files {
			data, _ := os.ReadFile(p)
			if strings.Contains(string(data), fmt.Sprintf("Subject: m%d\r\n\r\n.leading dot\r\nline %d\r\n", i, i)) {
				found = true
				env := readEnvelope(t, p)
				if env.From != "sender@example.org" || len(env.To) != 2 || env.To[0] != "r1@example.com" ||
					env.To[1] != "r2@partner.example.org" || env.FromParams != fmt.Sprintf("RET=HDRS ENVID=env%d", i) ||
					env.ToParams[0] != "NOTIFY=FAILURE" || env.Instance != 1 {
					t.Errorf("envelope %+v", env)
				}
				if !strings.Contains(string(data), "Received: from client.test ([127.0.0.1])\r\n\tby mail.example.com with ESMTP id ") {
					t.Errorf("Received header missing:\n%s", data)
				}
			}
		}
		if !found {
			t.Fatalf("message %d not found complete in the spool", i)
		}
	}
	if got := f.stats.MessagesAccepted.Load(); got != 5 {
		t.Errorf("MessagesAccepted = %d", got)
	}
	if got := f.stats.Replies[2].Load(); got != 5 {
		t.Errorf("Replies[2] = %d", got)
	}
	if got := f.stats.SessionsOpen.Load(); got != 1 {
		t.Errorf("SessionsOpen = %d", got)
	}
	r.expect("QUIT", "221")
	deadline := time.Now().Add(10 * time.Second)
	for f.stats.SessionsOpen.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := f.stats.SessionsOpen.Load(); got != 0 {
		t.Errorf("SessionsOpen after QUIT = %d", got)
	}
}

func readEnvelope(t *testing.T, path string) *spool.Envelope {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	env, err := spool.Read(bufio.NewReader(fh))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// lines is n bytes of body in 78-byte lines.
func lines(n int) string {
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(strings.Repeat("x", 76) + "\r\n")
	}
	return b.String()[:n]
}

// TestBDATReset: RSET or a dropped connection in the middle of a BDAT
// transfer discards the message (nothing spooled, nothing left behind) and
// the session goes on.
func TestBDATReset(t *testing.T) {
	f := startProps(t, nil, nil, nil)
	r := dialRaw(t, f.addr)
	r.expect("EHLO c.test", "250")
	r.expect("MAIL FROM:<a@example.org>", "250")
	r.expect("RCPT TO:<b@example.com>", "250")
	chunk := "Subject: part\r\n\r\nfirst chunk\r\n"
	r.tp.PrintfLine("BDAT %d", len(chunk))
	r.c.Write([]byte(chunk))
	r.read()
	if r.code != 250 {
		t.Fatalf("first chunk: %d %s", r.code, r.msg)
	}
	r.expect("RSET", "250")
	r.expect("MAIL FROM:<a@example.org>", "250")
	r.expect("RCPT TO:<b@example.com>", "250")
	whole := "Subject: whole\r\n\r\nbody\r\n"
	r.tp.PrintfLine("BDAT %d LAST", len(whole))
	r.c.Write([]byte(whole))
	if code, msg := r.read(); code != 250 {
		t.Fatalf("BDAT LAST: %d %s", code, msg)
	}
	// A transfer cut by the client going away.
	r2 := dialRaw(t, f.addr)
	r2.expect("EHLO c.test", "250")
	r2.expect("MAIL FROM:<a@example.org>", "250")
	r2.expect("RCPT TO:<b@example.com>", "250")
	r2.tp.PrintfLine("BDAT %d", len(chunk))
	r2.c.Write([]byte(chunk))
	r2.read()
	r2.c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for f.stats.SessionsOpen.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	files := spooled(t, f.vs.QueueDir)
	if len(files) != 1 || !strings.Contains(readFile(t, files[0]), "Subject: whole") {
		t.Fatalf("spooled %v, want only the whole message", files)
	}
	ents, _ := os.ReadDir(f.vs.QueueDir)
	if len(ents) != 1 {
		t.Errorf("queue folder holds %d entries", len(ents))
	}
}

// TestBDATCutShort: a client that announces "BDAT 1000 LAST", sends part of
// the chunk and half-closes (or drops) the connection gets no 250, and
// nothing is spooled: a truncated message is never taken as a whole one.
func TestBDATCutShort(t *testing.T) {
	f := startProps(t, nil, nil, nil)
	for _, halfClose := range []bool{true, false} {
		r := dialRaw(t, f.addr)
		r.expect("EHLO c.test", "250")
		r.expect("MAIL FROM:<a@example.org>", "250")
		r.expect("RCPT TO:<b@example.com>", "250")
		part := "Subject: cut\r\n\r\nonly part of it\r\n"
		r.tp.PrintfLine("BDAT 1000 LAST")
		r.c.Write([]byte(part))
		if halfClose {
			r.c.(*net.TCPConn).CloseWrite()
			code, msg, _ := r.tp.ReadResponse(0)
			if code == 250 {
				t.Fatalf("half-closed inside a chunk: got %d %s, want no 250", code, msg)
			}
		} else {
			r.c.Close()
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for f.stats.SessionsOpen.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if files := spooled(t, f.vs.QueueDir); len(files) != 0 {
		t.Fatalf("spooled %v from transfers cut inside a chunk", files)
	}
	if got := f.stats.MessagesAccepted.Load(); got != 0 {
		t.Fatalf("MessagesAccepted = %d, want 0", got)
	}
}

// TestNetSMTPClient: the standard library's client sends through the
// server (several messages on one connection), each spooled before its 250.
func TestNetSMTPClient(t *testing.T) {
	f := startProps(t, nil, nil, nil)
	c, err := netsmtp.Dial(f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("stdlib.test"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := c.Mail("sender@example.org"); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt("rcpt@example.com"); err != nil {
			t.Fatal(err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(w, "Subject: stdlib %d\r\n\r\n.dot-stuffed by the client\r\n", i)
		if err := w.Close(); err != nil { // reads the final reply
			t.Fatal(err)
		}
		if n := len(spooled(t, f.vs.QueueDir)); n != i+1 {
			t.Fatalf("after message %d: %d spooled", i, n)
		}
	}
	if err := c.Rcpt("x@elsewhere.example"); err == nil {
		t.Error("RCPT without MAIL accepted")
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	data := readFile(t, spooled(t, f.vs.QueueDir)[0])
	if !strings.Contains(data, "\r\n\r\n.dot-stuffed by the client\r\n") {
		t.Errorf("dot-stuffing not undone:\n%s", data)
	}
}

// TestFQDNInheritance: the banner and EHLO name follow
// FullyQualifiedDomainName, the virtual server's own over the service's.
func TestFQDNInheritance(t *testing.T) {
	cases := []struct {
		svc, vs props
		want    string
	}{
		{props{"FullyQualifiedDomainName": "svc.example.net"}, nil, "svc.example.net"},
		{props{"FullyQualifiedDomainName": "svc.example.net"}, props{"FullyQualifiedDomainName": "vs.example.net"}, "vs.example.net"},
	}
	for _, c := range cases {
		f := startProps(t, c.svc, c.vs, nil)
		r := dialRaw(t, f.addr)
		if !strings.HasPrefix(r.msg, c.want+" ds2mb ESMTP ready at ") {
			t.Errorf("banner %q, want %s", r.msg, c.want)
		}
		r.expect("EHLO c.test", "250 "+c.want+" Hello [127.0.0.1]")
	}
}

// TestQueueUnavailable: when the queue folder cannot be used, mail is
// refused with a temporary 451 4.3.0 (never accepted and lost).
func TestQueueUnavailable(t *testing.T) {
	dir := t.TempDir()
	tree := baseTree(dir, nil, nil)
	cfg, err := config.Build(tree, config.Options{BaseDir: dir, Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	vs := cfg.Server(1)
	os.RemoveAll(vs.QueueDir)
	os.WriteFile(vs.QueueDir, nil, 0o600) // a file where the folder was
	srv := session.NewServer(vs, &session.Env{Logger: slog.New(slog.DiscardHandler)})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	r := dialRaw(t, l.Addr().String())
	r.expect("EHLO c.test", "250")
	r.expect("MAIL FROM:<a@example.org>", "451 4.3.0")
}
