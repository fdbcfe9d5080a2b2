// Command smtpsvc is the SMTP worker daemon: it runs every virtual server a
// MetaBase.xml describes and follows the file, swapping configurations
// without losing a session.
//
//	smtpsvc --metabase FILE [--status-addr 127.0.0.1:8025] [--status-file F] [--log-level info] [--debug-addr 127.0.0.1:6060]
//
// It delivers what it accepts (local Maildir store or LMTP, Drop folders,
// DNS MX or smart host), retries, sends DSNs, keeps Badmail and reads each
// virtual server's Pickup folder; --no-delivery only spools.
//
// SIGTERM or SIGINT stops accepting and drains the sessions for at most
// --shutdown-timeout.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ds2mb/ds2mb/smtpsvc"
	"github.com/ds2mb/ds2mb/smtpsvc/auth"
	"github.com/ds2mb/ds2mb/smtpsvc/events"
	"github.com/ds2mb/ds2mb/smtpsvc/events/sinks"
	"github.com/ds2mb/ds2mb/smtpsvc/rdns"
	"github.com/ds2mb/ds2mb/smtpsvc/watch"
)

func main() {
	var (
		o            smtpsvc.Options
		logLevel     string
		authFile     string
		ldapURL      string
		ldapBindDN   string
		ldapPassFile string
		ldapBase     string
		ldapAttrs    string
		dnsServer    string
		debugAddr    string
	)
	flag.StringVar(&o.Metabase, "metabase", "", "the MetaBase.xml to run and follow (required)")
	flag.StringVar(&o.StatusAddr, "status-addr", "127.0.0.1:8025", "HTTP status address (/status, /healthz, /metrics); empty = none")
	flag.StringVar(&o.StatusFile, "status-file", "", "JSON status file, rewritten atomically on each change; empty = none")
	flag.StringVar(&o.BaseDir, "base-dir", "", "where relative folders of the metabase resolve (default: the metabase's folder)")
	flag.StringVar(&o.Hostname, "hostname", "", "FQDN for virtual servers that name none (default: the host name)")
	flag.DurationVar(&o.DrainTimeout, "drain-timeout", 10*time.Minute, "how long sessions of a replaced configuration may run on after a reload")
	flag.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long sessions may run on after SIGTERM")
	flag.DurationVar(&o.Watch.Poll, "poll", watch.DefaultPoll, "safety-net stat interval of the metabase file")
	flag.BoolVar(&o.AllowInsecureAuth, "allow-insecure-auth", false, "offer AUTH without TLS to loopback clients (tests and the demo only)")
	flag.BoolVar(&o.NoDelivery, "no-delivery", false, "only spool accepted mail: no delivery, no Pickup (another process takes the queue folders)")
	flag.DurationVar(&o.Minute, "queue-minute", time.Minute, "how long one minute of the metabase's retry, delay and expiry settings lasts (shorten for tests)")
	flag.StringVar(&debugAddr, "debug-addr", "", "serve Go's profiler (/debug/pprof/) on this address, e.g. 127.0.0.1:6060; empty = none")
	flag.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	flag.StringVar(&authFile, "auth-file", "", `password file for AUTH: one "user:bcrypt-hash" per line`)
	flag.StringVar(&ldapURL, "auth-ldap-url", "", "check AUTH by an LDAP simple bind against this directory (ldap://host:port)")
	flag.StringVar(&ldapBindDN, "auth-ldap-bind-dn", "", "DN that searches for users (default: anonymous)")
	flag.StringVar(&ldapPassFile, "auth-ldap-password-file", "", "file holding the password of --auth-ldap-bind-dn")
	flag.StringVar(&ldapBase, "auth-ldap-base", "", "where users are searched")
	flag.StringVar(&ldapAttrs, "auth-ldap-attrs", "mail,userPrincipalName,uid", "attributes that name a user, comma-separated")
	flag.StringVar(&dnsServer, "dns-server", "", `resolver for reverse lookups and the DNSBL sink (host:port; default: the first nameserver of /etc/resolv.conf; "none" = no reverse lookups)`)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: smtpsvc --metabase FILE [flags]\n")
		flag.PrintDefaults()
	}
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "smtpsvc: --log-level: %v\n", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	o.Logger = log
	if o.Metabase == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}

	switch {
	case authFile != "" && ldapURL != "":
		fail(log, "give --auth-file or --auth-ldap-url, not both")
	case authFile != "":
		fc, err := auth.LoadFile(authFile)
		if err != nil {
			fail(log, "--auth-file", "err", err)
		}
		o.Auth = fc
	case ldapURL != "":
		lc := &auth.LDAPChecker{URL: ldapURL, BindDN: ldapBindDN, BaseDN: ldapBase}
		for _, a := range strings.Split(ldapAttrs, ",") {
			if a = strings.TrimSpace(a); a != "" {
				lc.Attributes = append(lc.Attributes, a)
			}
		}
		if ldapPassFile != "" {
			b, err := os.ReadFile(ldapPassFile)
			if err != nil {
				fail(log, "--auth-ldap-password-file", "err", err)
			}
			lc.Password = strings.TrimRight(string(b), "\r\n")
		}
		o.Auth = lc
	}

	switch dnsServer {
	case "none":
	case "":
		if ns := resolvConfServer("/etc/resolv.conf"); ns != "" {
			o.Resolver = rdns.New(ns)
		}
	default:
		o.Resolver = rdns.New(dnsServer)
	}

	// The sink classes bindings may name: the built-in ones, registered
	// here and nowhere else. A vendor's class is one more Register call.
	o.Sinks = events.NewRegistry()
	var sinkDNS []string
	if dnsServer != "" && dnsServer != "none" {
		sinkDNS = []string{dnsServer}
	}
	sinks.Register(o.Sinks, sinks.Options{Logger: log, DNSServers: sinkDNS})

	if debugAddr != "" {
		l, err := serveDebug(debugAddr)
		if err != nil {
			fail(log, "--debug-addr", "err", err)
		}
		defer l.Close()
		log.Info("profiler served", "addr", "http://"+l.Addr().String()+"/debug/pprof/")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	w, err := smtpsvc.New(o)
	if err != nil {
		fail(log, "cannot start", "err", err)
	}
	log.Info("smtpsvc starting", "metabase", o.Metabase, "status", w.StatusAddr(), "statusFile", o.StatusFile)
	if err := w.Run(ctx); err != nil {
		fail(log, "stopped", "err", err)
	}
	log.Info("smtpsvc stopped")
}

func fail(log *slog.Logger, msg string, args ...any) {
	log.Error(msg, args...)
	os.Exit(1)
}

// resolvConfServer returns the first nameserver of a resolv.conf as
// host:port, or "".
func resolvConfServer(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 2 && fs[0] == "nameserver" {
			h := fs[1]
			if strings.Contains(h, ":") {
				h = "[" + h + "]"
			}
			return h + ":53"
		}
	}
	return ""
}
