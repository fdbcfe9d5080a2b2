package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/deploy/localdir"
	"github.com/ds2mb/ds2mb/metabase"
)

// tlsArgs are the flags for a TLS-serving local directory: url is its
// LDAPSURL or URL; extra follows.
func tlsArgs(srv *localdir.Server, url, mb string, extra ...string) []string {
	return append([]string{"--ldap-url", url, "--bind-dn", srv.BindDN, "--base-dn", srv.ConfigDN,
		"--server", "SERVER01", "--metabase", mb}, extra...)
}

func checkReplicated(t *testing.T, mb string) {
	t.Helper()
	tr, err := metabase.Load(mb)
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.Node("/LM/SmtpSvc/1").Text("ServerBindings"); got != "127.0.0.1:2525:" {
		t.Errorf("ServerBindings %q, want 127.0.0.1:2525:", got)
	}
	if tr.Node("/LM/SmtpSvc/1/Domain/example.com") == nil {
		t.Errorf("/LM/SmtpSvc/1/Domain/example.com missing")
	}
	if probs := tr.Validate(); probs != nil {
		t.Error(probs)
	}
}

// TestTLS: --ca-file with an ldaps:// URL, and with --starttls on the plain
// ldap:// URL, replicates (--once in every mode), and the daemon follows a
// modify over both; the password never reaches the log.
func TestTLS(t *testing.T) {
	srv := localdir.StartT(t, localdir.Options{TLS: true})
	t.Setenv("DS2MB_BIND_PASSWORD", srv.Password)
	ways := []struct {
		name string
		url  string
		tls  []string
	}{
		{"ldaps", srv.LDAPSURL, []string{"--ca-file", srv.CAFile}},
		{"starttls", srv.URL, []string{"--starttls", "--ca-file", srv.CAFile}},
	}
	for _, w := range ways {
		for _, mode := range []string{"auto", "syncrepl", "poll"} {
			t.Run(w.name+"/once/"+mode, func(t *testing.T) {
				mb := filepath.Join(t.TempDir(), "MetaBase.xml")
				var log bytes.Buffer
				a := tlsArgs(srv, w.url, mb, append([]string{"--once", "--mode", mode}, w.tls...)...)
				if code := run(a, &log); code != 0 {
					t.Fatalf("exit %d:\n%s", code, log.String())
				}
				checkReplicated(t, mb)
				if mode == "auto" && !strings.Contains(log.String(), "mode=syncrepl") {
					t.Errorf("auto did not choose syncrepl:\n%s", log.String())
				}
				if strings.Contains(log.String(), srv.Password) {
					t.Errorf("log holds the password")
				}
			})
		}
	}

	// Live: one daemon per way, one modify reaches both files.
	bin := buildBinary(t)
	var ds []*daemon
	var mbs []string
	for _, w := range ways {
		mb := filepath.Join(t.TempDir(), "MetaBase.xml")
		ds = append(ds, startDaemon(t, bin, tlsArgs(srv, w.url, mb, w.tls...), srv.Password))
		mbs = append(mbs, mb)
	}
	for _, mb := range mbs {
		waitFile(t, mb, `MaxRecipients="100"`)
	}
	err := srv.AddLDIF("dn: " + localdir.SampleVSDN("SERVER01", 1) + "\nchangetype: modify\nreplace: msExchSmtpMaxRecipients\nmsExchSmtpMaxRecipients: 77\n-")
	if err != nil {
		t.Fatal(err)
	}
	for i, mb := range mbs {
		waitFile(t, mb, `MaxRecipients="77"`)
		checkReplicated(t, mb)
		d := ds[i]
		d.cmd.Process.Signal(syscall.SIGTERM)
		if err := waitExit(d); err != nil {
			t.Errorf("%s daemon: exit after SIGTERM: %v\n%s", ways[i].name, err, d.output())
		}
		if out := d.output(); strings.Contains(out, srv.Password) {
			t.Errorf("%s daemon: log holds the password", ways[i].name)
		}
	}
}

// waitExit waits for a daemon that was signalled to exit.
func waitExit(d *daemon) error {
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(waitLimit):
		d.cmd.Process.Kill()
		return <-done
	}
}

// TestTLSUntrusted: without --ca-file (the system roots, which do not hold
// the local directory's throwaway CA) ds2mb refuses the server's
// certificate: --once exits non-zero in every mode with an error that names
// TLS and the certificate and never the password; the daemon keeps retrying
// and says why. A --ca-file that is missing or holds no certificate is
// refused before any connection.
func TestTLSUntrusted(t *testing.T) {
	srv := localdir.StartT(t, localdir.Options{TLS: true, NoSample: true})
	const pw = "Untrusted-Pa55-Q7"
	t.Setenv("DS2MB_BIND_PASSWORD", pw)
	for _, w := range []struct {
		name string
		url  string
		tls  []string
	}{{"ldaps", srv.LDAPSURL, nil}, {"starttls", srv.URL, []string{"--starttls"}}} {
		for _, mode := range []string{"auto", "syncrepl", "poll"} {
			t.Run(w.name+"/"+mode, func(t *testing.T) {
				mb := filepath.Join(t.TempDir(), "MetaBase.xml")
				var log bytes.Buffer
				a := tlsArgs(srv, w.url, mb, append([]string{"--once", "--mode", mode}, w.tls...)...)
				if code := run(a, &log); code == 0 {
					t.Fatalf("exit 0 without the CA:\n%s", log.String())
				}
				out := log.String()
				lower := strings.ToLower(out)
				if !strings.Contains(lower, "tls") || !strings.Contains(lower, "certificate signed by unknown authority") {
					t.Errorf("the error does not say TLS refused the certificate:\n%s", out)
				}
				if strings.Contains(out, pw) {
					t.Errorf("log holds the password:\n%s", out)
				}
				if _, err := os.Stat(mb); err == nil {
					t.Errorf("a metabase was written without a verified connection")
				}
			})
		}
	}

	t.Run("daemon", func(t *testing.T) {
		bin := buildBinary(t)
		mb := filepath.Join(t.TempDir(), "MetaBase.xml")
		d := startDaemon(t, bin, tlsArgs(srv, srv.LDAPSURL, mb), pw)
		deadline := time.Now().Add(waitLimit)
		for !strings.Contains(d.output(), "certificate signed by unknown authority") {
			if time.Now().After(deadline) {
				t.Fatalf("the daemon never said why it cannot connect:\n%s", d.output())
			}
			time.Sleep(10 * time.Millisecond)
		}
		// Still running: it exits 0 on SIGTERM (a daemon that had given up
		// would have exited 1 already).
		d.cmd.Process.Signal(syscall.SIGTERM)
		if err := waitExit(d); err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, d.output())
		}
		if strings.Contains(d.output(), pw) {
			t.Errorf("log holds the password")
		}
	})

	t.Run("bad-ca-file", func(t *testing.T) {
		dir := t.TempDir()
		notPEM := filepath.Join(dir, "ca.pem")
		os.WriteFile(notPEM, []byte("not a certificate\n"), 0o644)
		for _, ca := range []string{notPEM, filepath.Join(dir, "missing.pem")} {
			var log bytes.Buffer
			if code := run(tlsArgs(srv, srv.LDAPSURL, filepath.Join(dir, "mb.xml"), "--once", "--ca-file", ca), &log); code == 0 {
				t.Errorf("--ca-file %s: exit 0", ca)
			}
			if !strings.Contains(log.String(), "--ca-file") || !strings.Contains(log.String(), ca) {
				t.Errorf("--ca-file %s: the error does not name the flag and file:\n%s", ca, log.String())
			}
		}
	})
}

// TestTLSFlagMisuse: --starttls with ldaps:// and --ca-file with a plain
// ldap:// URL without --starttls (which would bind in clear text) are usage
// errors (exit 2) that say why.
func TestTLSFlagMisuse(t *testing.T) {
	mb := filepath.Join(t.TempDir(), "MetaBase.xml")
	base := []string{"--bind-dn", "cn=admin,dc=example,dc=com", "--base-dn", "cn=Configuration,dc=example,dc=com",
		"--server", "SERVER01", "--metabase", mb, "--once"}
	for _, c := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--ldap-url", "ldaps://127.0.0.1:1/", "--starttls"}, "already encrypted"},
		{[]string{"--ldap-url", "ldap://127.0.0.1:1/", "--ca-file", "ca.pem"}, "--ca-file is used only with ldaps:// or --starttls"},
	} {
		var log bytes.Buffer
		if code := run(append(c.flags, base...), &log); code != 2 {
			t.Errorf("%v: exit %d, want 2:\n%s", c.flags, code, log.String())
		}
		if !strings.Contains(log.String(), c.want) {
			t.Errorf("%v: the error lacks %q:\n%s", c.flags, c.want, log.String())
		}
	}
}
