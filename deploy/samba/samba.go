// Package samba runs a throw-away Samba Active Directory domain controller
// for tests and trials, following DIRECTORIES.md §4: a fresh provision into
// a private folder, the smb.conf lines that matter, samba in single-process
// mode (millisecond change notifications) inside a network namespace of its
// own (its LDAP ports cannot be moved off 389), the Exchange schema
// extension of deploy/ad loaded online, and the sample organisation of
// deploy/openldap moved under the AD configuration naming context.
//
// The DC is reached through a proxy on a host loopback port that dials
// 127.0.0.1:389 inside the namespace, so clients need no `ip netns exec`.
// It needs root (network namespaces) and the Debian packages samba,
// samba-ad-dc, samba-ad-provision and ldb-tools, which deploy/ensure-deps.sh
// installs.
package samba

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"golang.org/x/sys/unix"

	"github.com/ds2mb/ds2mb/deploy/localdir"
	"github.com/ds2mb/ds2mb/deploy/openldap"
	"github.com/ds2mb/ds2mb/schema"
)

// The domain every DC of this package serves.
const (
	// Realm is the Kerberos realm and DNS domain.
	Realm = "EXAMPLE.TEST"
	// DomainDN is the domain naming context.
	DomainDN = "DC=example,DC=test"
	// ConfigDN is the configuration naming context: the replicator's base.
	ConfigDN = "CN=Configuration," + DomainDN
	// AdminDN is the Administrator account.
	AdminDN = "CN=Administrator,CN=Users," + DomainDN
	// AdminPassword is the Administrator's password.
	AdminPassword = "Ds2mb-Admin-1"
	// ConsumerDN is an ordinary user, as a replicator's read-only account
	// would be: it may read the configuration but not DirSync, nor see
	// Deleted Objects.
	ConsumerDN = "CN=ds2mb,CN=Users," + DomainDN
	// ConsumerPassword is ConsumerDN's password.
	ConsumerPassword = "Ds2mb-Reader-1"
)

// Options configure Start.
type Options struct {
	Dir      string // DC folder; "" = a new temporary folder
	NoSample bool   // schema only, no sample organisation
}

// DC is a running (or stopped) Samba AD domain controller.
type DC struct {
	URL      string // ldap://127.0.0.1:<port>, the host side of the proxy
	BindDN   string // AdminDN
	Password string // AdminPassword
	ConfigDN string // ConfigDN
	Dir      string
	NS       string // network namespace name

	tempDir bool
	proxy   net.Listener
	conns   sync.WaitGroup

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	out  *localdir.OutputBuffer // samba's output, quoted in errors
}

var seq atomic.Int64

// ErrNoSamba is returned (wrapped) when samba or samba-tool is missing.
var ErrNoSamba = errors.New("samba not found: `make test` installs it (deploy/ensure-deps.sh), or apt-get install -y samba samba-ad-dc samba-ad-provision ldb-tools")

// readyTimeout only exists to fail instead of hanging.
const readyTimeout = 90 * time.Second

// Start provisions a DC, starts it and loads the schema and, unless told
// otherwise, the sample organisation.
func Start(ctx context.Context, o Options) (dc *DC, err error) {
	for _, tool := range []string{"samba", "samba-tool", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			if _, serr := os.Stat("/usr/sbin/" + tool); serr != nil {
				return nil, fmt.Errorf("samba: %s: %w", tool, ErrNoSamba)
			}
		}
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("samba: a network namespace needs root (run the AD tests as root, as CI does)")
	}
	d := &DC{BindDN: AdminDN, Password: AdminPassword, ConfigDN: ConfigDN, Dir: o.Dir,
		NS: fmt.Sprintf("ds2mb-%d-%d", os.Getpid(), seq.Add(1))}
	if d.Dir == "" {
		if d.Dir, err = os.MkdirTemp("", "ds2mb-samba-"); err != nil {
			return nil, fmt.Errorf("samba: %w", err)
		}
		d.tempDir = true
	}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if err := run(ctx, "ip", "netns", "add", d.NS); err != nil {
		return nil, err
	}
	if err := run(ctx, "ip", "netns", "exec", d.NS, "ip", "link", "set", "lo", "up"); err != nil {
		return nil, err
	}
	if err := d.provision(ctx); err != nil {
		return nil, err
	}
	if d.proxy, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("samba: proxy: %w", err)
	}
	d.URL = "ldap://" + d.proxy.Addr().String()
	go d.serveProxy()
	if err := d.start(ctx); err != nil {
		return nil, err
	}
	if err := d.ApplyLDIF(SchemaLDIF()); err != nil {
		return nil, fmt.Errorf("samba: load the Exchange schema: %w%s", err, d.diagnose())
	}
	if !o.NoSample {
		if err := d.ApplyLDIF(SampleLDIF()); err != nil {
			return nil, fmt.Errorf("samba: load the sample organisation: %w%s", err, d.diagnose())
		}
	}
	return d, nil
}

// StartT is Start for a test: it fails the test on error and closes the DC
// when the test ends.
func StartT(t testing.TB, o Options) *DC {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*readyTimeout)
	defer cancel()
	d, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// SchemaLDIF is deploy/ad/exchange-schema.ldif for this package's domain.
func SchemaLDIF() string {
	return strings.ReplaceAll(string(schema.ADSchemaLDIF()), "DC=X", DomainDN)
}

// SampleLDIF is the sample organisation of deploy/openldap/sample.ldif
// under this domain's configuration naming context: the same objects and
// values, without the entries AD has already (the domain root,
// cn=Configuration, cn=Services) and the OpenLDAP consumer account.
func SampleLDIF() string {
	skip := map[string]bool{
		localdir.SampleSuffix: true, localdir.SampleConsumerDN: true, localdir.SampleConfigDN: true,
		"cn=Services," + localdir.SampleConfigDN: true,
	}
	var out []string
	for _, block := range strings.Split(string(openldap.SampleLDIF()), "\n\n") {
		var lines []string
		for _, l := range strings.Split(block, "\n") {
			if l != "" && !strings.HasPrefix(l, "#") {
				lines = append(lines, l)
			}
		}
		if len(lines) == 0 || skip[strings.TrimPrefix(lines[0], "dn: ")] {
			continue
		}
		out = append(out, strings.ReplaceAll(strings.Join(lines, "\n"), ","+localdir.SampleSuffix, ","+DomainDN))
	}
	return strings.Join(out, "\n\n") + "\n"
}

// MoveDN turns a DN of the OpenLDAP sample (…,dc=example,dc=com) into the
// same object's DN on this DC.
func MoveDN(dn string) string {
	return strings.TrimSuffix(dn, localdir.SampleSuffix) + DomainDN
}

func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("samba: %s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func (d *DC) confPath() string { return filepath.Join(d.Dir, "etc", "smb.conf") }

// provision runs samba-tool domain provision and patches smb.conf
// (DIRECTORIES.md §4: simple binds allowed, schema updates on, every path
// under Dir, LDAP only).
func (d *DC) provision(ctx context.Context) error {
	if err := run(ctx, "samba-tool", "domain", "provision", "--use-rfc2307", "--realm="+Realm, "--domain=EXAMPLE",
		"--server-role=dc", "--dns-backend=NONE", "--adminpass="+AdminPassword, "--targetdir="+d.Dir,
		"--host-name=DC1", "--host-ip=127.0.0.1", "--option=interfaces=lo", "--option=bind interfaces only=yes"); err != nil {
		return err
	}
	for _, sub := range []string{"log", "run"} {
		if err := os.MkdirAll(filepath.Join(d.Dir, sub), 0o700); err != nil {
			return fmt.Errorf("samba: %w", err)
		}
	}
	conf, err := os.ReadFile(d.confPath())
	if err != nil {
		return fmt.Errorf("samba: %w", err)
	}
	var b strings.Builder
	for _, l := range strings.Split(string(conf), "\n") {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "log file") || strings.HasPrefix(t, "server services") {
			continue
		}
		b.WriteString(l + "\n")
		if t == "[global]" {
			for _, add := range []string{
				"log file = " + filepath.Join(d.Dir, "log", "log.%m"),
				"server services = ldap",
				"ldap server require strong auth = no",
				"dsdb:schema update allowed = true",
				"pid directory = " + filepath.Join(d.Dir, "run"),
				"ncalrpc dir = " + filepath.Join(d.Dir, "run", "ncalrpc"),
				"winbindd socket directory = " + filepath.Join(d.Dir, "run", "winbindd"),
				"ntp signd socket directory = " + filepath.Join(d.Dir, "run", "ntp_signd"),
			} {
				b.WriteString("\t" + add + "\n")
			}
		}
	}
	if err := os.WriteFile(d.confPath(), []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("samba: %w", err)
	}
	// The consumer account, offline (a password over plain LDAP is refused).
	return run(ctx, "samba-tool", "user", "create", "ds2mb", ConsumerPassword, "-s", d.confPath(),
		"-H", filepath.Join(d.Dir, "private", "sam.ldb"))
}

// start runs samba in the namespace and waits for a simple bind.
func (d *DC) start(ctx context.Context) error {
	d.mu.Lock()
	cmd := exec.Command("ip", "netns", "exec", d.NS, "samba", "-F", "-M", "single", "-s", d.confPath(), "--debug-stdout", "-d1")
	d.out = &localdir.OutputBuffer{Max: 1 << 20}
	cmd.Stdout, cmd.Stderr = d.out, d.out
	// No Pdeathsig: Linux sends it when the OS thread that started the
	// child ends, which Go does not control (dialInNS moves threads between
	// namespaces); Close stops the whole process group instead.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		d.mu.Unlock()
		return fmt.Errorf("samba: start: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	d.cmd, d.done = cmd, done
	d.mu.Unlock()
	deadline := time.Now().Add(readyTimeout)
	for {
		c, err := d.Dial()
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("samba: exited during start: %s", strconv.Quote(d.out.String()))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("samba: no bind within %v: %v; output: %s", readyTimeout, err, strconv.Quote(d.out.String()))
		}
	}
}

// diagnose says whether samba still runs, with its output, for an error.
func (d *DC) diagnose() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	state := "running"
	if d.done != nil {
		select {
		case <-d.done:
			state = "exited: " + d.cmd.ProcessState.String()
		default:
		}
	}
	return "; samba " + state + "; its output: " + strconv.Quote(d.out.String())
}

// Dial connects through the proxy and binds as the Administrator.
func (d *DC) Dial() (*ldap.Conn, error) {
	c, err := ldap.DialURL(d.URL, ldap.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}))
	if err != nil {
		return nil, err
	}
	if err := c.Bind(d.BindDN, d.Password); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// ApplyLDIF applies ldapmodify-style LDIF as the Administrator.
func (d *DC) ApplyLDIF(text string) error {
	c, err := d.Dial()
	if err != nil {
		return err
	}
	defer c.Close()
	return localdir.ApplyLDIF(c, text)
}

// Stop stops samba with SIGTERM and waits for every process of it to go.
func (d *DC) Stop() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return nil
	}
	cmd, done := d.cmd, d.done
	d.cmd, d.done = nil, nil
	syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	// Children of samba may outlive the main process for a moment.
	for i := 0; i < 50 && syscall.Kill(-cmd.Process.Pid, 0) == nil; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// Restart stops samba and starts it again on the same data.
func (d *DC) Restart(ctx context.Context) error {
	if err := d.Stop(); err != nil {
		return err
	}
	return d.start(ctx)
}

// Close stops samba, removes the namespace and, if Start made it, the
// folder.
func (d *DC) Close() error {
	err := d.Stop()
	if d.proxy != nil {
		d.proxy.Close()
	}
	exec.Command("ip", "netns", "delete", d.NS).Run()
	if d.tempDir {
		os.RemoveAll(d.Dir)
	}
	return err
}

// serveProxy pipes each host-side connection to 127.0.0.1:389 in the
// namespace.
func (d *DC) serveProxy() {
	for {
		c, err := d.proxy.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			up, err := dialInNS("/var/run/netns/"+d.NS, "127.0.0.1:389")
			if err != nil {
				return
			}
			defer up.Close()
			go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
			io.Copy(c, up)
		}()
	}
}

// dialInNS dials addr from inside the network namespace at nsPath: the
// socket is made on an OS thread moved into the namespace, and a socket
// stays in the namespace it was made in whichever thread uses it later. The
// thread is moved back before it is unlocked; should that fail it stays
// locked and ends with its goroutine.
func dialInNS(nsPath, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer unix.Close(home)
		fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("setns %s: %w", nsPath, err)}
			return
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if unix.Setns(home, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}
