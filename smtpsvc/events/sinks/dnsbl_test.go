package sinks

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/smtpsvc/events"
	"github.com/ds2mb/ds2mb/smtpsvc/internal/testnet"
)

// syncBuf is a log destination the lookups' goroutines may write to
// while the test reads it.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// blockList is a DNS server on loopback with a block list bl.test in the
// DNSBL convention, and the registry that asks it.
func blockList(t *testing.T) (*testnet.DNS, *events.Registry, *syncBuf) {
	d := testnet.StartDNS(t)
	d.Add(t,
		"2.0.0.127.bl.test. 60 IN A 127.0.0.2", // the test entry every list carries
		"2.0.0.127.bl.test. 60 IN TXT \"listed: see https://bl.test/127.0.0.2\"",
		"4.0.0.127.bl.test. 60 IN TXT \"a TXT record alone does not list\"",
		"6.0.0.127.bl.test. 60 IN A 127.255.255.254",                                                 // the list refuses the query
		"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.bl.test. 60 IN A 127.0.0.2", // ::1
		"9.0.0.127.zen.test. 60 IN A 127.0.0.4",
	)
	d.ServFail("5.0.0.127.bl.test")
	log := &syncBuf{}
	r := testRegistry(t, Options{DNSServers: []string{d.Addr}, Logger: slog.New(slog.NewTextHandler(log, nil))})
	return d, r, log
}

func session(ip string) *events.Session {
	return &events.Session{ID: "s1", Remote: netip.MustParseAddr(ip), HELO: "client.test", Values: map[string]any{}}
}

// command fires OnInboundCommand for a verb.
func command(s events.Sink, sess *events.Session, verb string) (*events.Reply, events.Status) {
	ev := &events.Event{Type: events.InboundCommand, Session: sess, Command: &events.Command{Verb: verb, Arg: "TO:<bob@fabrikam.example>"}}
	res := s.Fire(context.Background(), ev)
	return ev.Reply, res.Status
}

func TestDNSBL(t *testing.T) {
	d, r, log := blockList(t)
	cases := []struct {
		name  string
		ip    string
		props map[string]string
		want  string // the RCPT reply's text; "" = not refused
		log   string // in the log
	}{
		{"listed", "127.0.0.2", nil, "Service unavailable; client [127.0.0.2] blocked using bl.test", "client listed"},
		{"IPv4 in IPv6", "::ffff:127.0.0.2", nil, "Service unavailable; client [127.0.0.2] blocked using bl.test", ""},
		{"IPv6 nibbles", "::1", nil, "Service unavailable; client [::1] blocked using bl.test", ""},
		{"not listed (NXDOMAIN)", "127.0.0.3", nil, "", ""},
		{"a name without A records", "127.0.0.4", nil, "", ""},
		{"SERVFAIL fails open", "127.0.0.5", nil, "", "SERVFAIL"},
		{"a refused query is not a listing", "127.0.0.6", nil, "", "the list refused the query (127.255.255.254)"},
		{"second zone lists, own message", "127.0.0.2", map[string]string{"Zones": "zen.test, BL.test.", "Message": "550 5.7.1 {ip} is on {zone}"},
			"127.0.0.2 is on bl.test", ""},
		{"first zone lists", "127.0.0.9", map[string]string{"Zones": "zen.test,bl.test"}, "Service unavailable; client [127.0.0.9] blocked using zen.test", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			props := c.props
			if props == nil {
				props = map[string]string{"Zones": "bl.test"}
			}
			s := newSink(t, r, "ds2mb.DNSBL", props)
			sess := session(c.ip)
			start := &events.Event{Type: events.SessionStart, Session: sess}
			if res := s.Fire(context.Background(), start); res.Status != events.Continue || start.Reply != nil {
				t.Fatalf("session start: %+v, reply %v", res, start.Reply)
			}
			if v, ok := sess.Values[DNSBLKey].(map[string]*Verdict); !ok || v["bl.test"] == nil {
				t.Fatalf("no verdict kept: %#v", sess.Values)
			}
			if rep, _ := command(s, sess, "MAIL"); rep != nil {
				t.Errorf("MAIL refused: %+v", rep)
			}
			for i := 0; i < 2; i++ {
				rep, st := command(s, sess, "RCPT")
				switch {
				case c.want == "" && (rep != nil || st != events.Continue):
					t.Errorf("RCPT %d: %+v %v, want no reply", i, rep, st)
				case c.want != "" && (rep == nil || rep.Code != 554 && rep.Code != 550 || rep.Enhanced != "5.7.1" || rep.Text != c.want || st != events.Stop):
					t.Errorf("RCPT %d: %+v %v, want %q", i, rep, st, c.want)
				}
			}
			if c.log != "" && !strings.Contains(log.String(), c.log) {
				t.Errorf("log lacks %q:\n%s", c.log, log)
			}
		})
	}
	// One lookup a zone a session, however many commands and bindings.
	before := d.Queries()
	a := newSink(t, r, "ds2mb.DNSBL", map[string]string{"Zones": "bl.test"})
	b := newSink(t, r, "ds2mb.DNSBL", map[string]string{"Zones": "bl.test", "Verbs": "mail, rcpt"})
	sess := session("127.0.0.2")
	if rep, _ := command(b, sess, "MAIL"); rep == nil || rep.Code != 554 { // looked up here: no SessionStart binding
		t.Errorf("MAIL with Verbs MAIL,RCPT: %+v", rep)
	}
	for i := 0; i < 3; i++ {
		command(a, sess, "RCPT")
	}
	if n := d.Queries() - before; n != 1 {
		t.Errorf("%d queries, want 1", n)
	}
}

// A server that does not answer costs LookupTimeout, and the client is
// let through.
func TestDNSBLTimeout(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	log := &syncBuf{}
	r := testRegistry(t, Options{DNSServers: []string{pc.LocalAddr().String()}, Logger: slog.New(slog.NewTextHandler(log, nil))})
	s := newSink(t, r, "ds2mb.DNSBL", map[string]string{"Zones": "bl.test", "LookupTimeout": "150ms"})
	sess := session("127.0.0.2")
	t0 := time.Now()
	s.Fire(context.Background(), &events.Event{Type: events.SessionStart, Session: sess})
	rep, st := command(s, sess, "RCPT")
	took := time.Since(t0)
	if rep != nil || st != events.Continue {
		t.Errorf("RCPT refused on a timeout: %+v", rep)
	}
	if took < 100*time.Millisecond || took > 2*time.Second {
		t.Errorf("RCPT took %v with LookupTimeout 150ms", took)
	}
	if !strings.Contains(log.String(), "DNSBL lookup failed") {
		t.Errorf("the failure is not logged:\n%s", log)
	}
}

// The recommended bindings, through the dispatcher: one at session start,
// one at OnInboundCommand, both with an empty rule.
func TestDNSBLBindings(t *testing.T) {
	_, r, _ := blockList(t)
	var bs []events.Binding
	for i, ev := range []events.Type{events.SessionStart, events.InboundCommand} {
		id := "{0000000" + string(rune('1'+i)) + "-0000-0000-0000-000000000000}"
		bs = append(bs, events.Binding{Location: "/LM/SmtpSvc/1/EventManager/EventTypes/" + ev.CATID + "/Bindings/" + id,
			Event: ev, ID: id, DisplayName: "DNSBL " + ev.Name, SinkClass: "ds2mb.DNSBL", Enabled: true, Props: map[string]string{"Zones": "bl.test"}})
	}
	d, probs := events.Build(bs, events.Options{Registry: r, Logger: quiet})
	if len(probs) != 0 {
		t.Fatal(probs)
	}
	sess := session("127.0.0.2")
	d.Fire(context.Background(), &events.Event{Type: events.SessionStart, Session: sess})
	ev := &events.Event{Type: events.InboundCommand, Session: sess, Command: &events.Command{Verb: "RCPT", Arg: "TO:<bob@fabrikam.example>"}}
	out := d.Fire(context.Background(), ev)
	if out.StoppedBy != "DNSBL OnInboundCommand" || ev.Reply == nil || ev.Reply.Code != 554 {
		t.Errorf("outcome %+v reply %+v", out, ev.Reply)
	}
	// A rule on the recipient matches the RCPT command being given, the
	// first one included.
	bs[1].Rule, _ = events.ParseRule("RCPT TO=*@fabrikam.example")
	d, _ = events.Build(bs, events.Options{Registry: r, Logger: quiet})
	ev = &events.Event{Type: events.InboundCommand, Session: session("127.0.0.2"), Command: &events.Command{Verb: "RCPT", Arg: "TO:<bob@fabrikam.example>"}}
	if out := d.Fire(context.Background(), ev); out.StoppedBy != "DNSBL OnInboundCommand" || ev.Reply == nil || ev.Reply.Code != 554 {
		t.Errorf("a RCPT TO=*@fabrikam.example binding on the first RCPT: %+v, reply %+v", out, ev.Reply)
	}
	ev = &events.Event{Type: events.InboundCommand, Session: session("127.0.0.2"), Command: &events.Command{Verb: "RCPT", Arg: "TO:<bob@other.example>"}}
	if out := d.Fire(context.Background(), ev); len(out.Ran) != 0 || ev.Reply != nil {
		t.Errorf("a RCPT TO=*@fabrikam.example binding ran for bob@other.example: %+v", out)
	}
}
