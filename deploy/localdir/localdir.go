// Package localdir runs a private OpenLDAP slapd on a loopback port for tests
// and the quick start: mdb with the syncprov overlay (RFC 4533 syncrepl), the
// Exchange schema of deploy/openldap and, unless told otherwise, the sample
// organisation of deploy/openldap/sample.ldif, loaded with slapadd before the
// first start. It follows DIRECTORIES.md §1.
//
// slapd and slapadd come from the system (PATH or /usr/sbin); `make test` and
// `make demo` install them (Debian packages slapd and ldap-utils).
package localdir

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ds2mb/ds2mb/deploy/openldap"
)

// The sample organisation (deploy/openldap/sample.ldif).
const (
	// SampleSuffix is the database suffix and root entry.
	SampleSuffix = "dc=example,dc=com"
	// SampleAdminDN is the rootdn; it may read and write everything.
	SampleAdminDN = "cn=admin," + SampleSuffix
	// SampleAdminPassword is the rootdn's password.
	SampleAdminPassword = "secret"
	// SampleConsumerDN is a read-only consumer account for the replicator,
	// without size or time limits.
	SampleConsumerDN = "cn=ds2mb," + SampleSuffix
	// SampleConsumerPassword is SampleConsumerDN's password.
	SampleConsumerPassword = "ds2mb-secret"
	// SampleConfigDN is the configuration base the replicator is given.
	SampleConfigDN = "cn=Configuration," + SampleSuffix
	// SampleOrgDN is the Exchange organisation.
	SampleOrgDN = "cn=Example,cn=Microsoft Exchange,cn=Services," + SampleConfigDN
	// SampleAdminGroupDN is the administrative group holding the servers.
	SampleAdminGroupDN = "cn=First Administrative Group,cn=Administrative Groups," + SampleOrgDN
	// SamplePoliciesDN is the recipient-policy container.
	SamplePoliciesDN = "cn=Recipient Policies," + SampleOrgDN
	// SampleConnectorDN is the SMTP connector (routingList SMTP:*.contoso.com;1,
	// smart host smarthost.example.net, bridgehead SERVER01's virtual server 1).
	SampleConnectorDN = "cn=Internet Connector,cn=Connections,cn=First Routing Group,cn=Routing Groups," + SampleAdminGroupDN
	// SampleBindingID is the ds2mbBindingID of the sample event binding.
	SampleBindingID = "{6B2E1D5A-3F4C-4E8B-9A7D-1C2B3E4F5A60}"
	// SampleEntries is the number of entries sample.ldif holds.
	SampleEntries = 26
)

// SampleServerDN returns the DN of a server of the sample organisation
// ("SERVER01", "SERVER02").
func SampleServerDN(name string) string {
	return "cn=" + ldap.EscapeDN(name) + ",cn=Servers," + SampleAdminGroupDN
}

// SampleSMTPDN returns the DN of a server's SMTP service object
// (protocolCfgSMTP, /LM/SmtpSvc).
func SampleSMTPDN(server string) string { return "cn=SMTP,cn=Protocols," + SampleServerDN(server) }

// SampleVSDN returns the DN of virtual server n of a server
// (protocolCfgSMTPServer, /LM/SmtpSvc/n).
func SampleVSDN(server string, n int) string {
	return "cn=" + strconv.Itoa(n) + "," + SampleSMTPDN(server)
}

// SampleBindingDN is the sample event binding, under SERVER01's virtual server 1.
func SampleBindingDN() string { return "cn=Header Stamp," + SampleVSDN("SERVER01", 1) }

// Options configure a local directory.
type Options struct {
	Dir        string   // instance folder; "" = a new temporary folder
	Port       int      // loopback port; 0 = a free one
	Checkpoint string   // syncprov-checkpoint "<ops> <minutes>"; "" = "100 10"
	NoSample   bool     // load only the suffix entry, not the sample organisation
	ExtraLDIF  []string // more LDIF, loaded after the sample (adds with slapadd, other changes over LDAP)
	// TLS also serves TLS: StartTLS on URL and ldaps:// on LDAPSURL (a
	// second free loopback port), with a server certificate for
	// 127.0.0.1/localhost signed by a throwaway CA written to CAFile.
	TLS bool
}

// Server is a running (or stopped) local slapd.
type Server struct {
	URL      string // ldap://127.0.0.1:<port>/
	BindDN   string // the rootdn, SampleAdminDN
	Password string // the rootdn's password
	Suffix   string // SampleSuffix
	ConfigDN string // SampleConfigDN
	Dir      string // instance folder: slapd.conf, exchange.schema, data/
	Port     int

	// With Options.TLS (else empty):
	LDAPSURL string // ldaps://127.0.0.1:<TLSPort>/
	TLSPort  int    // the ldaps:// port
	CAFile   string // PEM certificate of the CA that signed the server's; see TLSConfig

	certFile, keyFile string // the server's certificate and key (PEM), with TLS

	slapd   string
	tempDir bool // Dir was created by Start; Close removes it

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has been reaped
	stderr *OutputBuffer
}

// ErrNoSlapd is returned (wrapped) when no slapd binary can be found.
var ErrNoSlapd = errors.New("slapd not found in PATH or /usr/sbin: install it with `make test` (it runs deploy/ensure-deps.sh) or `apt-get install -y slapd ldap-utils`")

// readyTimeout bounds the wait for a started slapd to accept a bind; it only
// exists to fail instead of hanging.
const readyTimeout = 60 * time.Second

// findTool finds a slapd tool (slapd, slapadd) in PATH or the usual sbin folders.
func findTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/local/libexec", "/usr/libexec"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, ErrNoSlapd)
}

// Start prepares the instance folder (on the first start: configuration,
// schema and data loaded with slapadd), starts slapd on 127.0.0.1 and returns
// once an admin bind succeeds. ctx bounds the start only; slapd keeps running
// until Stop, Kill or Close.
func Start(ctx context.Context, o Options) (*Server, error) {
	slapd, err := findTool("slapd")
	if err != nil {
		return nil, err
	}
	s := &Server{BindDN: SampleAdminDN, Password: SampleAdminPassword, Suffix: SampleSuffix, ConfigDN: SampleConfigDN,
		Dir: o.Dir, Port: o.Port, slapd: slapd}
	if s.Dir == "" {
		if s.Dir, err = os.MkdirTemp("", "ds2mb-slapd-"); err != nil {
			return nil, fmt.Errorf("localdir: %w", err)
		}
		s.tempDir = true
	}
	if s.Dir, err = filepath.Abs(s.Dir); err != nil {
		return nil, fmt.Errorf("localdir: %w", err)
	}
	fail := func(err error) (*Server, error) {
		if s.tempDir {
			os.RemoveAll(s.Dir)
		}
		return nil, err
	}
	if o.TLS {
		if err := s.prepareTLS(); err != nil {
			return fail(err)
		}
	}
	late, err := s.prepare(o)
	if err != nil {
		return fail(err)
	}
	freePort := o.Port == 0
	for attempt := 0; ; attempt++ {
		if freePort {
			if s.Port, err = pickPort(); err != nil {
				return fail(err)
			}
		}
		s.URL = fmt.Sprintf("ldap://127.0.0.1:%d/", s.Port)
		if o.TLS {
			for s.TLSPort == 0 || s.TLSPort == s.Port {
				if s.TLSPort, err = pickPort(); err != nil {
					return fail(err)
				}
			}
			s.LDAPSURL = fmt.Sprintf("ldaps://127.0.0.1:%d/", s.TLSPort)
		}
		err = s.start(ctx)
		if err == nil {
			break
		}
		// A free port may be taken between picking and binding it: try
		// another (the ldaps:// port is always a free one).
		if !(freePort || o.TLS) || attempt == 4 || ctx.Err() != nil {
			return fail(err)
		}
		s.TLSPort = 0
	}
	if len(late) > 0 {
		if err := s.apply(late); err != nil {
			s.Stop()
			return fail(err)
		}
	}
	return s, nil
}

// StartT starts a local directory for a test, in a folder of t.TempDir() when
// o.Dir is "", and stops it when the test ends. It fails the test if slapd
// cannot start.
func StartT(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*readyTimeout)
	defer cancel()
	s, err := Start(ctx, o)
	if err != nil {
		t.Fatalf("localdir: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("localdir: stop: %v", err)
		}
	})
	return s
}

// pickPort asks the kernel for a free loopback port.
func pickPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("localdir: pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// prepare writes slapd.conf and exchange.schema and, on the first start,
// loads the data with slapadd. It returns the records that slapadd cannot
// load (changes other than adds), to apply over LDAP once slapd runs.
func (s *Server) prepare(o Options) ([]record, error) {
	checkpoint := o.Checkpoint
	if checkpoint == "" {
		checkpoint = "100 10"
	}
	if f := strings.Fields(checkpoint); len(f) != 2 {
		return nil, fmt.Errorf("localdir: checkpoint %q: want \"<ops> <minutes>\"", checkpoint)
	} else if n, err := strconv.Atoi(f[1]); err != nil || n < 1 {
		return nil, fmt.Errorf("localdir: checkpoint %q: minutes must be an integer >= 1", checkpoint)
	}
	data := filepath.Join(s.Dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, fmt.Errorf("localdir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "exchange.schema"), openldap.Schema(), 0o644); err != nil {
		return nil, fmt.Errorf("localdir: %w", err)
	}
	if err := os.WriteFile(s.confPath(), []byte(s.slapdConf(checkpoint)), 0o644); err != nil {
		return nil, fmt.Errorf("localdir: %w", err)
	}
	if _, err := os.Stat(filepath.Join(data, "data.mdb")); err == nil {
		return nil, nil // loaded before: a restart keeps the data
	}

	var recs []record
	if o.NoSample {
		recs = append(recs, record{line: 1, dn: SampleSuffix, changeType: "add", attrs: []attr{
			{"objectClass", []string{"dcObject", "organization"}}, {"dc", []string{"example"}}, {"o", []string{"Example"}}}})
	} else {
		r, err := parseLDIF(string(openldap.SampleLDIF()))
		if err != nil {
			return nil, fmt.Errorf("localdir: sample.ldif: %w", err)
		}
		recs = append(recs, r...)
	}
	for i, x := range o.ExtraLDIF {
		r, err := parseLDIF(x)
		if err != nil {
			return nil, fmt.Errorf("localdir: ExtraLDIF[%d]: %w", i, err)
		}
		if o.NoSample && len(r) > 0 && len(recs) == 1 && strings.EqualFold(r[0].dn, SampleSuffix) {
			recs = recs[:0] // the extra LDIF brings its own suffix entry
		}
		recs = append(recs, r...)
	}
	// Adds go to slapadd (fast); everything from the first other change on
	// goes over LDAP, in order.
	n := 0
	for n < len(recs) && recs[n].changeType == "add" {
		n++
	}
	var b strings.Builder
	for _, r := range recs[:n] {
		r.entryLDIF(&b)
	}
	ldifPath := filepath.Join(s.Dir, "load.ldif")
	if err := os.WriteFile(ldifPath, []byte(b.String()), 0o644); err != nil {
		return nil, fmt.Errorf("localdir: %w", err)
	}
	slapadd, err := findTool("slapadd")
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(slapadd, "-q", "-f", s.confPath(), "-l", ldifPath).CombinedOutput()
	if err != nil {
		os.Remove(filepath.Join(data, "data.mdb"))
		return nil, fmt.Errorf("localdir: slapadd %s: %v: %s", ldifPath, err, strings.TrimSpace(string(out)))
	}
	return recs[n:], nil
}

func (s *Server) confPath() string { return filepath.Join(s.Dir, "slapd.conf") }

func (s *Server) pidPath() string { return filepath.Join(s.Dir, "slapd.pid") }

// ownsPidFile checks that slapd's pid file names pid.
func (s *Server) ownsPidFile(pid int) error {
	b, err := os.ReadFile(s.pidPath())
	if err != nil {
		return fmt.Errorf("no pid file yet: %w", err)
	}
	if got := strings.TrimSpace(string(b)); got != strconv.Itoa(pid) {
		return fmt.Errorf("pid file names %q, not our slapd %d", got, pid)
	}
	return nil
}

// slapdConf renders slapd.conf (DIRECTORIES.md §1).
func (s *Server) slapdConf(checkpoint string) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("# slapd.conf written by github.com/ds2mb/ds2mb/deploy/localdir")
	w("include     /etc/ldap/schema/core.schema")
	w("include     /etc/ldap/schema/cosine.schema")
	w("include     %q", filepath.Join(s.Dir, "exchange.schema"))
	w("pidfile     %q", s.pidPath())
	w("argsfile    %q", filepath.Join(s.Dir, "slapd.args"))
	if s.CAFile != "" {
		w("TLSCACertificateFile  %q", s.CAFile)
		w("TLSCertificateFile    %q", s.certFile)
		w("TLSCertificateKeyFile %q", s.keyFile)
	}
	// Debian builds back_mdb and the overlays as modules; other builds may
	// have them compiled in.
	if st, err := os.Stat("/usr/lib/ldap"); err == nil && st.IsDir() {
		w("modulepath  /usr/lib/ldap")
		w("moduleload  back_mdb")
		w("moduleload  syncprov")
	}
	w("database    mdb")
	w("maxsize     1073741824")
	w("suffix      %q", SampleSuffix)
	w("rootdn      %q", SampleAdminDN)
	w("rootpw      %s", SampleAdminPassword)
	w("directory   %q", filepath.Join(s.Dir, "data"))
	w("index       objectClass eq")
	w("index       cn eq")
	w("index       entryCSN,entryUUID eq")
	w("limits      dn.exact=%q size=unlimited time=unlimited", SampleConsumerDN)
	w("overlay     syncprov")
	w("syncprov-checkpoint %s", checkpoint)
	w("syncprov-sessionlog 10000")
	return b.String()
}

// start runs slapd and waits until an admin bind works.
func (s *Server) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("localdir: slapd already running (pid %d)", s.cmd.Process.Pid)
	}
	os.Remove(s.pidPath()) // a stale one, from a killed slapd
	cmd := exec.Command(s.slapd, "-f", s.confPath(), "-h", s.listeners(), "-d", "0", "-s", "0")
	s.stderr = &OutputBuffer{}
	cmd.Stdout, cmd.Stderr = s.stderr, s.stderr
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("localdir: start %s: %w", s.slapd, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done

	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var err error
		select {
		case <-done:
		default:
			// slapd writes its pid file only after it has bound its
			// listener, so our pid there means the port is ours and the
			// probe does not talk to another slapd that took it first.
			if err = s.ownsPidFile(cmd.Process.Pid); err == nil {
				var c *ldap.Conn
				if c, err = s.dial(probeTimeout); err == nil {
					c.Close()
					return nil
				}
			}
		}
		select {
		case <-done:
			s.cmd, s.done = nil, nil
			return fmt.Errorf("localdir: slapd on %s exited before it was ready (%v): %s", s.URL, cmd.ProcessState, s.diagnose())
		case <-ctx.Done():
			cmd.Process.Kill()
			<-done
			s.cmd, s.done = nil, nil
			return fmt.Errorf("localdir: slapd on %s not ready: %v (last error: %v): %s", s.URL, ctx.Err(), err, strings.TrimSpace(s.stderr.String()))
		case <-tick.C:
		}
	}
}

// diagnose runs slapd again in the foreground with connection-level
// logging (-d 256) to learn why it exited: with -d 0 it says nothing.
// It gives up after a few seconds, and stops a slapd that does start.
func (s *Server) diagnose() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, s.slapd, "-f", s.confPath(), "-h", s.listeners(), "-d", "256", "-s", "0").CombinedOutput()
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		// Drop the "<time> <thread>" prefix and the banner.
		f := strings.SplitN(strings.TrimSpace(l), " ", 3)
		if len(f) == 3 && !strings.HasPrefix(l, "\t") && !strings.Contains(l, "$OpenLDAP:") && !strings.Contains(f[2], "nothing to destroy") {
			lines = append(lines, f[2])
		}
	}
	if len(lines) == 0 {
		return strings.TrimSpace(s.stderr.String())
	}
	return strings.Join(lines, "; ")
}

// listeners is slapd's -h argument: URL, and LDAPSURL with TLS.
func (s *Server) listeners() string {
	if s.LDAPSURL != "" {
		return s.URL + " " + s.LDAPSURL
	}
	return s.URL
}

func (s *Server) dial(timeout time.Duration) (*ldap.Conn, error) {
	c, err := ldap.DialURL(s.URL, ldap.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}))
	if err != nil {
		return nil, err
	}
	// Something that accepts connections but never answers (not slapd, or
	// a hung one) must not hang the caller: bound the bind, then leave the
	// connection without a request timeout (a timeout would cut syncrepl).
	c.SetTimeout(timeout)
	if err := c.Bind(s.BindDN, s.Password); err != nil {
		c.Close()
		return nil, err
	}
	c.SetTimeout(0)
	return c, nil
}

// Bounds of the admin bind of Dial and of the readiness probe.
const (
	bindTimeout  = 10 * time.Second
	probeTimeout = 2 * time.Second
)

// Dial connects to the directory bound as the admin (rootdn).
func (s *Server) Dial() (*ldap.Conn, error) {
	c, err := s.dial(bindTimeout)
	if err != nil {
		return nil, fmt.Errorf("localdir: dial %s as %s: %w", s.URL, s.BindDN, err)
	}
	return c, nil
}

// AddLDIF applies ldapadd/ldapmodify-style LDIF over LDAP as the admin:
// records without changetype are added; changetype add, modify, delete and
// modrdn are supported. It stops at the first failing record.
func (s *Server) AddLDIF(ldif string) error {
	recs, err := parseLDIF(ldif)
	if err != nil {
		return fmt.Errorf("localdir: %w", err)
	}
	return s.apply(recs)
}

func (s *Server) apply(recs []record) error {
	c, err := s.Dial()
	if err != nil {
		return err
	}
	defer c.Close()
	for _, r := range recs {
		if err := r.apply(c); err != nil {
			return fmt.Errorf("localdir: %w", err)
		}
	}
	return nil
}

// Stop stops slapd with SIGTERM (a clean shutdown that writes contextCSN)
// and waits for it to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() error { return s.signal(syscall.SIGTERM) }

// Kill stops slapd with SIGKILL, as a crash would, and waits for it to exit.
func (s *Server) Kill() error { return s.signal(syscall.SIGKILL) }

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	select {
	case <-done:
		return fmt.Errorf("localdir: slapd had exited by itself (%v): %s", cmd.ProcessState, strings.TrimSpace(s.stderr.String()))
	default:
	}
	if err := cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("localdir: signal slapd: %w", err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("localdir: slapd did not exit within 30 s of %v; killed", sig)
	}
}

// Restart starts slapd again with the same folder, data and port, stopping
// it first if it still runs.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.start(ctx)
}

// Running reports whether slapd is running.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Close stops slapd and removes the instance folder if Start created it.
func (s *Server) Close() error {
	err := s.Stop()
	if s.tempDir {
		if rerr := os.RemoveAll(s.Dir); err == nil {
			err = rerr
		}
	}
	return err
}

// OutputBuffer collects a child process's output for error messages: safe
// for the child's writes and our reads, it keeps the first Max bytes (64 KiB
// when Max is 0) and drops the rest, so that a chatty process cannot grow it
// without bound.
type OutputBuffer struct {
	Max int
	mu  sync.Mutex
	b   bytes.Buffer
}

func (b *OutputBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	max := b.Max
	if max == 0 {
		max = 64 << 10
	}
	if b.b.Len() > max {
		return len(p), nil
	}
	return b.b.Write(p)
}

// String is what was kept.
func (b *OutputBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
