// Package testnet starts the network peers the delivery tests talk to, all
// on loopback: a DNS server (miekg/dns) serving a zone the test writes,
// and sink SMTP servers (go-smtp) that record what they receive, count
// their concurrent connections and answer as the test says.
package testnet

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"
)

// DNS is a DNS server on 127.0.0.1 (UDP and TCP, one port).
type DNS struct {
	Addr string // host:port

	mu       sync.Mutex
	records  map[string][]dns.RR // by lower-case FQDN
	servfail map[string]bool
	queries  atomic.Int64
	udp, tcp *dns.Server
}

// StartDNS starts a DNS server that answers from records added with Add.
// A name with no records is NXDOMAIN unless another record lives below it.
func StartDNS(t testing.TB) *DNS {
	t.Helper()
	d := &DNS{records: map[string][]dns.RR{}, servfail: map[string]bool{}}
	for try := 0; ; try++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			if try < 10 {
				continue
			}
			t.Fatal(err)
		}
		d.Addr = pc.LocalAddr().String()
		d.udp = &dns.Server{PacketConn: pc, Handler: d}
		d.tcp = &dns.Server{Listener: l, Handler: d}
		break
	}
	var started sync.WaitGroup
	started.Add(2)
	d.udp.NotifyStartedFunc = started.Done
	d.tcp.NotifyStartedFunc = started.Done
	go d.udp.ActivateAndServe()
	go d.tcp.ActivateAndServe()
	started.Wait()
	t.Cleanup(func() { d.udp.Shutdown(); d.tcp.Shutdown() })
	return d
}

// Add adds records in zone-file form: "example.com. 60 IN MX 10 mx1.example.com.".
func (d *DNS) Add(t testing.TB, rrs ...string) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("record %q: %v", s, err)
		}
		name := strings.ToLower(rr.Header().Name)
		d.records[name] = append(d.records[name], rr)
	}
}

// MX adds MX records for a domain, each host with its address:
// MX(t, "example.com", 10, "mx1.example.com", "127.0.0.2", 20, …).
func (d *DNS) MX(t testing.TB, domain string, prefHostAddr ...any) {
	t.Helper()
	for i := 0; i+2 < len(prefHostAddr); i += 3 {
		pref, host, addr := prefHostAddr[i].(int), prefHostAddr[i+1].(string), prefHostAddr[i+2].(string)
		d.Add(t, fmt.Sprintf("%s. 60 IN MX %d %s.", domain, pref, host))
		if addr != "" {
			d.Add(t, fmt.Sprintf("%s. 60 IN A %s", host, addr))
		}
	}
}

// ServFail makes queries for a name answer SERVFAIL.
func (d *DNS) ServFail(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.servfail[strings.ToLower(dns.Fqdn(name))] = true
}

// Queries counts the queries answered.
func (d *DNS) Queries() int64 { return d.queries.Load() }

// ServeDNS answers one query.
func (d *DNS) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	d.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if len(r.Question) == 1 {
		q := r.Question[0]
		name := strings.ToLower(q.Name)
		d.mu.Lock()
		rrs, known := d.records[name]
		fail := d.servfail[name]
		if !known {
			for n := range d.records {
				if strings.HasSuffix(n, "."+name) {
					known = true
				}
			}
		}
		d.mu.Unlock()
		switch {
		case fail:
			m.Rcode = dns.RcodeServerFailure
		case !known:
			m.Rcode = dns.RcodeNameError
		default:
			for _, rr := range rrs {
				if rr.Header().Rrtype == q.Qtype {
					m.Answer = append(m.Answer, dns.Copy(rr))
				}
			}
		}
	}
	w.WriteMsg(m)
}

// Message is one message a sink received.
type Message struct {
	From string
	To   []string
	Data []byte
	At   time.Time
	// Notify is each recipient's NOTIFY parameter as the sink got it
	// ("SUCCESS,FAILURE"; "" when none was sent).
	Notify []string
	Host   string // the sink's address
	Conns  int    // connections the sink had open when it arrived
}

// Sink is an SMTP server that records what it receives.
type Sink struct {
	Addr string
	// Rcpt decides each RCPT: nil accepts. Set before mail arrives.
	Rcpt func(to string) *smtp.SMTPError
	// Data decides each DATA once the message is read: nil accepts.
	Data func(from string, to []string, data []byte) *smtp.SMTPError

	srv      *smtp.Server
	mu       sync.Mutex
	msgs     []Message
	open     atomic.Int64
	maxOpen  atomic.Int64
	accepted atomic.Int64
	notify   chan struct{}
}

// StartSink starts a sink on addr ("127.0.0.2:2525"; port 0 = any).
func StartSink(t testing.TB, addr string) *Sink {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("sink on %s: %v", addr, err)
	}
	return ServeSink(t, l)
}

// ServeSink serves a sink on a listener the caller opened.
func ServeSink(t testing.TB, l net.Listener) *Sink { return serve(t, l, false, true, nil) }

// ServeSinkWith serves a sink whose server configure may change before it
// serves (switch PIPELINING or CHUNKING off, …).
func ServeSinkWith(t testing.TB, l net.Listener, configure func(*smtp.Server)) *Sink {
	return serve(t, l, false, true, configure)
}

// ServeSinkNoDSN serves a sink that does not offer the DSN extension, as
// a next hop that cannot take NOTIFY.
func ServeSinkNoDSN(t testing.TB, l net.Listener) *Sink { return serve(t, l, false, false, nil) }

// ServeLMTP serves an LMTP sink (RFC 2033) on a listener, a unix socket
// or a TCP one.
func ServeLMTP(t testing.TB, l net.Listener) *Sink { return serve(t, l, true, true, nil) }

func serve(t testing.TB, l net.Listener, lmtp, dsn bool, configure func(*smtp.Server)) *Sink {
	s := &Sink{Addr: l.Addr().String(), notify: make(chan struct{}, 1)}
	s.srv = smtp.NewServer(s)
	s.srv.LMTP = lmtp
	s.srv.Domain = "sink.test"
	s.srv.ReadTimeout = 30 * time.Second
	s.srv.WriteTimeout = 30 * time.Second
	s.srv.AllowInsecureAuth = true
	s.srv.EnableDSN = dsn
	s.srv.ErrorLog = log.New(io.Discard, "", 0)
	if configure != nil {
		configure(s.srv)
	}
	go s.srv.Serve(&countingListener{Listener: l, s: s})
	t.Cleanup(func() { s.srv.Close() })
	return s
}

// Close stops the sink.
func (s *Sink) Close() { s.srv.Close() }

// Messages returns what the sink has received.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Count is the number of messages received.
func (s *Sink) Count() int { return int(s.accepted.Load()) }

// MaxConns is the most connections the sink had open at once.
func (s *Sink) MaxConns() int { return int(s.maxOpen.Load()) }

// Wait waits until the sink has n messages or the deadline passes.
func (s *Sink) Wait(t testing.TB, n int, deadline time.Duration) []Message {
	t.Helper()
	end := time.Now().Add(deadline)
	for s.Count() < n {
		if time.Now().After(end) {
			t.Fatalf("sink %s: %d messages after %v, want %d", s.Addr, s.Count(), deadline, n)
		}
		select {
		case <-s.notify:
		case <-time.After(10 * time.Millisecond):
		}
	}
	return s.Messages()
}

// NewSession implements smtp.Backend.
func (s *Sink) NewSession(c *smtp.Conn) (smtp.Session, error) { return &sinkSession{s: s}, nil }

type sinkSession struct {
	s      *Sink
	from   string
	to     []string
	notify []string
}

func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}

func (ss *sinkSession) Rcpt(to string, o *smtp.RcptOptions) error {
	if f := ss.s.Rcpt; f != nil {
		if e := f(to); e != nil {
			return e
		}
	}
	ss.to = append(ss.to, to)
	var n []string
	if o != nil {
		for _, v := range o.Notify {
			n = append(n, string(v))
		}
	}
	ss.notify = append(ss.notify, strings.Join(n, ","))
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	var b bytes.Buffer
	if _, err := io.Copy(&b, r); err != nil {
		return err
	}
	if f := ss.s.Data; f != nil {
		if e := f(ss.from, ss.to, b.Bytes()); e != nil {
			return e
		}
	}
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, Message{From: ss.from, To: append([]string(nil), ss.to...), Notify: append([]string(nil), ss.notify...), Data: b.Bytes(),
		At: time.Now(), Host: ss.s.Addr, Conns: int(ss.s.open.Load())})
	ss.s.mu.Unlock()
	ss.s.accepted.Add(1)
	select {
	case ss.s.notify <- struct{}{}:
	default:
	}
	return nil
}

func (ss *sinkSession) Reset()        { ss.from, ss.to, ss.notify = "", nil, nil }
func (ss *sinkSession) Logout() error { return nil }

// countingListener counts the sink's open connections.
type countingListener struct {
	net.Listener
	s *Sink
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	n := l.s.open.Add(1)
	for {
		m := l.s.maxOpen.Load()
		if n <= m || l.s.maxOpen.CompareAndSwap(m, n) {
			break
		}
	}
	return &countedConn{Conn: c, s: l.s}, nil
}

type countedConn struct {
	net.Conn
	s    *Sink
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.s.open.Add(-1) })
	return c.Conn.Close()
}

// SamePort opens listeners on the same free port on each of the loopback
// addresses given ("127.0.0.2", "127.0.0.3"), for servers that stand for
// several hosts reached on one RemoteSmtpPort.
func SamePort(t testing.TB, hosts ...string) (int, []net.Listener) {
	t.Helper()
	for try := 0; try < 20; try++ {
		first, err := net.Listen("tcp", net.JoinHostPort(hosts[0], "0"))
		if err != nil {
			t.Fatal(err)
		}
		port := first.Addr().(*net.TCPAddr).Port
		ls := []net.Listener{first}
		ok := true
		for _, h := range hosts[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(h, fmt.Sprint(port)))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		if ok {
			return port, ls
		}
		for _, l := range ls {
			l.Close()
		}
	}
	t.Fatal("no port free on every address")
	return 0, nil
}

// Opener returns a delivery.Job Open function over a fixed message.
func Opener(msg string) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(msg)), nil }
}
