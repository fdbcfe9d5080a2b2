package session_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/ds2mb/ds2mb/smtpsvc/protolog"
	"github.com/ds2mb/ds2mb/smtpsvc/rdns"
	"github.com/ds2mb/ds2mb/smtpsvc/session"
)

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// startDNS serves PTR 127.0.0.1 -> name, and name -> forward (A), on a
// UDP port of 127.0.0.1.
func startDNS(t *testing.T, name, forward string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := dns.NewServeMux()
	mux.HandleFunc(name, func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		if q.Question[0].Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A: net.ParseIP(forward)})
		}
		w.WriteMsg(m)
	})
	mux.HandleFunc("in-addr.arpa.", func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		if q.Question[0].Name == "1.0.0.127.in-addr.arpa." && q.Question[0].Qtype == dns.TypePTR {
			m.Answer = append(m.Answer, &dns.PTR{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypePTR,
				Class: dns.ClassINET, Ttl: 60}, Ptr: name})
		} else {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	srv := &dns.Server{PacketConn: pc, Handler: mux}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

func TestReverseDNS(t *testing.T) {
	resolver := rdns.New(startDNS(t, "client.ptr.example.", "127.0.0.1"))
	forged := rdns.New(startDNS(t, "forged.example.", "192.0.2.66"))
	cases := []struct {
		name, enable, want, notWant string
		env                         *session.Env
	}{
		{"on", "TRUE", "Received: from helo.test (client.ptr.example [127.0.0.1])", "", &session.Env{Resolver: resolver}},
		{"on, PTR does not resolve back", "TRUE", "Received: from helo.test (forged.example [127.0.0.1] unverified)", "", &session.Env{Resolver: forged}},
		{"off", "FALSE", "Received: from helo.test ([127.0.0.1])", "client.ptr.example", &session.Env{Resolver: resolver}},
		{"on, lookup fails", "TRUE", "Received: from helo.test (RDNS failed [127.0.0.1])", "",
			&session.Env{Resolver: &rdns.Client{Server: "127.0.0.1:1", Timeout: 300 * time.Millisecond}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := startProps(t, nil, props{"EnableReverseDnsLookup": c.enable}, c.env)
			r := dialRaw(t, f.addr)
			r.expect("EHLO helo.test", "250")
			r.expect("MAIL FROM:<a@example.org>", "250")
			r.expect("RCPT TO:<b@example.com>", "250")
			if code, m := r.data("Subject: rdns\r\n\r\nx\r\n"); code != 250 {
				t.Fatalf("DATA: %d %s", code, m)
			}
			data := readFile(t, spooled(t, f.vs.QueueDir)[0])
			if !strings.Contains(data, c.want) || (c.notWant != "" && strings.Contains(data, c.notWant)) {
				t.Errorf("want %q (not %q) in:\n%s", c.want, c.notWant, data)
			}
		})
	}
}

func TestProtocolLog(t *testing.T) {
	logDir := t.TempDir()
	f := startProps(t, nil, props{"LogType": "1", "LogFileDirectory": logDir}, nil)
	r := dialRaw(t, f.addr)
	r.expect("EHLO helo.test", "250")
	r.expect("MAIL FROM:<a@example.org>", "250")
	r.expect("RCPT TO:<b@example.com>", "250")
	r.expect("RCPT TO:<c@elsewhere.example>", "550")
	if code, m := r.data("Subject: log\r\n\r\nx\r\n"); code != 250 {
		t.Fatalf("DATA: %d %s", code, m)
	}
	r.expect("QUIT", "221")
	path := filepath.Join(logDir, "SMTPSVC1", "ex"+time.Now().UTC().Format("060102")+".log")
	var data string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) { // QUIT is logged when the session ends
		if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), " QUIT ") {
			data = string(b)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if data == "" {
		t.Fatalf("no complete log at %s", path)
	}
	lines := strings.Split(strings.TrimRight(data, "\r\n"), "\r\n")
	if lines[0] != "#Software: ds2mb smtpsvc" || lines[1] != "#Version: 1.0" || !strings.HasPrefix(lines[2], "#Date: ") ||
		lines[3] != "#Fields: "+protolog.Fields {
		t.Fatalf("directives:\n%s", data)
	}
	want := []string{
		" 127.0.0.1 helo.test SMTPSVC1 ",
		" EHLO helo.test 250 ",
		" MAIL FROM:<a@example.org> 250 ",
		" RCPT TO:<b@example.com> 250 ",
		" RCPT TO:<c@elsewhere.example> 550 ",
		" DATA <a@example.org> 250 ",
		" QUIT - 240 ",
	}
	for _, w := range want {
		if !strings.Contains(data, w) {
			t.Errorf("log lacks %q:\n%s", w, data)
		}
	}
	for _, l := range lines[4:] {
		if n := len(strings.Fields(l)); n != len(strings.Fields(protolog.Fields)) {
			t.Errorf("line has %d fields, want %d: %q", n, len(strings.Fields(protolog.Fields)), l)
		}
	}
}

func TestProtocolLogOff(t *testing.T) {
	logDir := t.TempDir()
	f := startProps(t, nil, props{"LogType": "0", "LogFileDirectory": logDir}, nil)
	r := dialRaw(t, f.addr)
	r.expect("EHLO helo.test", "250")
	r.expect("QUIT", "221")
	time.Sleep(50 * time.Millisecond)
	if ents, _ := os.ReadDir(logDir); len(ents) != 0 {
		t.Errorf("LogType 0 wrote %v", ents)
	}
}
