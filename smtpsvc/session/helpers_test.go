package session_test

import (
	"crypto/tls"
	"net"
	"net/netip"
	"net/textproto"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/metabase"
	"github.com/ds2mb/ds2mb/schema"
	"github.com/ds2mb/ds2mb/smtpsvc/config"
	"github.com/ds2mb/ds2mb/smtpsvc/session"
)

// props are metabase properties as text, by name.
type props map[string]string

// fixture is one virtual server (instance 1) served on 127.0.0.1:0.
type fixture struct {
	dir   string
	addr  string
	vs    *config.VirtualServer
	stats *session.Stats
}

// baseTree is a service node, virtual server 1 and its domains:
// example.com local, partner.example.org relay, *.contoso.com smart host
// (with relay), drop.example.net drop.
func baseTree(dir string, svc, vs props) *metabase.Tree {
	t := metabase.New()
	s := t.Ensure(schema.ServiceLocation, metabase.ClassService)
	s.Set("FullyQualifiedDomainName", "mail.example.com")
	for k, v := range svc {
		s.Set(k, v)
	}
	n := t.Ensure(schema.ServerLocation(1), metabase.ClassServer)
	n.Set("ServerBindings", "127.0.0.1:2525:")
	n.Set("QueueDirectory", filepath.Join(dir, "Queue"))
	for k, v := range vs {
		n.Set(k, v)
	}
	dom := func(name, action, target string) {
		d := t.Ensure(schema.DomainLocation(1, name), metabase.ClassDomain)
		d.Set("RouteAction", action)
		if target != "" {
			d.Set("RouteActionString", target)
		}
	}
	dom("example.com", "SMTP_ALIAS", "")
	dom("partner.example.org", "SMTP_DOMAIN_RELAY", "")
	dom("*.contoso.com", "SMTP_SMARTHOST | SMTP_DOMAIN_RELAY", "smarthost.example.net")
	dom("smarthost-only.example", "SMTP_SMARTHOST", "smarthost.example.net")
	dom("drop.example.net", "SMTP_DROP", filepath.Join(dir, "Drop"))
	return t
}

// start builds the tree and serves virtual server 1.
func start(t testing.TB, tree *metabase.Tree, env *session.Env) *fixture {
	t.Helper()
	cfg, err := config.Build(tree, config.Options{BaseDir: t.TempDir(), Hostname: "host.test"})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	vs := cfg.Server(1)
	if env == nil {
		env = &session.Env{}
	}
	if env.Stats == nil {
		env.Stats = new(session.Stats)
	}
	srv := session.NewServer(vs, env)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return &fixture{addr: l.Addr().String(), vs: vs, stats: env.Stats}
}

// startProps is start(baseTree(...)).
func startProps(t testing.TB, svc, vs props, env *session.Env) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := start(t, baseTree(dir, svc, vs), env)
	f.dir = dir
	return f
}

// raw is a line-level SMTP client, to see replies exactly.
type raw struct {
	t    *testing.T
	c    net.Conn
	tp   *textproto.Conn
	code int
	msg  string
}

func dialRaw(t *testing.T, addr string) *raw {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := &raw{t: t, c: c, tp: textproto.NewConn(c)}
	t.Cleanup(func() { c.Close() })
	r.read()
	return r
}

// read reads one (possibly multi-line) reply.
func (r *raw) read() (int, string) {
	r.t.Helper()
	code, msg, err := r.tp.ReadResponse(0)
	if err != nil && code == 0 {
		r.t.Fatalf("reading reply: %v", err)
	}
	r.code, r.msg = code, msg
	return code, msg
}

// cmd sends a line and reads the reply.
func (r *raw) cmd(line string) (int, string) {
	r.t.Helper()
	if err := r.tp.PrintfLine("%s", line); err != nil {
		r.t.Fatal(err)
	}
	return r.read()
}

// expect sends a line and checks the reply starts with want ("250 2.0.0").
func (r *raw) expect(line, want string) string {
	r.t.Helper()
	code, msg := r.cmd(line)
	got := itoa(code) + " " + msg
	if !strings.HasPrefix(got, want) {
		r.t.Fatalf("%s: got %q, want %q…", line, got, want)
	}
	return msg
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// send writes a whole message with DATA and returns the final reply.
func (r *raw) data(body string) (int, string) {
	r.t.Helper()
	if code, msg := r.cmd("DATA"); code != 354 {
		r.t.Fatalf("DATA: %d %s", code, msg)
	}
	body = strings.ReplaceAll(body, "\r\n", "\n")
	body = strings.ReplaceAll(body, "\n", "\r\n")
	if !strings.HasSuffix(body, "\r\n") {
		body += "\r\n"
	}
	if _, err := r.c.Write([]byte(body + ".\r\n")); err != nil {
		r.t.Fatal(err)
	}
	return r.read()
}

// ehloKeywords returns the keywords of an EHLO reply (after the first line).
func ehloKeywords(msg string) []string {
	lines := strings.Split(msg, "\n")
	return lines[1:]
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// spooled lists the messages in the queue folder.
func spooled(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".eml") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out
}

// clientTLS trusts nothing but is fine for a test's self-signed server.
func clientTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, ServerName: "mail.example.com"}
}

// relayBlob is a RelayIpList granting the given hosts.
func relayBlob(t *testing.T, hosts ...string) string {
	t.Helper()
	var l schema.IPSecList
	for _, h := range hosts {
		l.Grant = append(l.Grant, netip.MustParseAddr(h))
	}
	b, err := schema.EncodeIPSecList(l)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := schema.Lookup("RelayIpList")
	return p.Render(schema.BinaryValue(b))
}
