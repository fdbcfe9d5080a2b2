// Command ds2mb replicates one server's SMTP configuration one way from an
// LDAP directory into an IIS 6-style MetaBase.xml: the analogue of Exchange
// 2003's DS2MB (Metabase Update service).
//
//	ds2mb --ldap-url ldap://127.0.0.1:3389 --bind-dn cn=admin,dc=example,dc=com \
//	      --bind-password-file FILE --base-dn cn=Configuration,dc=example,dc=com \
//	      --server SERVER01 --metabase /var/lib/ds2mb/MetaBase.xml \
//	      [--mode auto|syncrepl|adnotify|poll] [--poll-interval 1s] [--once] [--resync 15m] \
//	      [--ca-file ca.pem] [--starttls] [--log-level info] [--status-addr 127.0.0.1:8026]
//
// The password comes from --bind-password-file or the DS2MB_BIND_PASSWORD
// environment variable, never from the command line. With --once it
// replicates and exits; otherwise it follows the directory until SIGINT or
// SIGTERM. TLS: an ldaps:// URL, or an ldap:// URL with --starttls, verifies
// the directory's certificate against --ca-file (PEM) or, without it, the
// system roots; the host name of the URL must be in the certificate.
// --starttls with ldaps://, and --ca-file with neither, are usage errors.
// Events are logged with log/slog (see replicator/events.go); on a
// terminal a progress line follows a full replication (objects read, rate,
// remaining), and nothing is drawn elsewhere. With
// --status-addr it serves /status, /healthz and /metrics (status.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ds2mb/ds2mb/replicator"
	"github.com/ds2mb/ds2mb/replicator/source"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("ds2mb", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ldapURL := fs.String("ldap-url", "ldap://127.0.0.1:389", "directory URL (ldap:// or ldaps://)")
	bindDN := fs.String("bind-dn", "", "DN to bind as (empty: anonymous)")
	pwFile := fs.String("bind-password-file", "", "file holding the bind password (else $DS2MB_BIND_PASSWORD)")
	baseDN := fs.String("base-dn", "", "configuration base DN, e.g. cn=Configuration,dc=example,dc=com")
	searchBase := fs.String("search-base", "", "search base (default: cn=Microsoft Exchange,cn=Services,<base-dn>)")
	server := fs.String("server", "", "the server whose SMTP configuration is replicated, e.g. SERVER01")
	mbPath := fs.String("metabase", "", "path of MetaBase.xml")
	mode := fs.String("mode", "auto", "auto (syncrepl when the root DSE offers it, adnotify for Active Directory, else poll), syncrepl, adnotify or poll")
	pollInterval := fs.Duration("poll-interval", time.Second, "interval between polls in poll mode")
	once := fs.Bool("once", false, "replicate once and exit")
	resync := fs.Duration("resync", 15*time.Minute, "re-render and save this often without a directory change, setting back local edits (0: never)")
	caFile := fs.String("ca-file", "", "PEM CA certificates for ldaps:// and --starttls")
	startTLS := fs.Bool("starttls", false, "upgrade the ldap:// connection with StartTLS")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	statusAddr := fs.String("status-addr", "", "HTTP status address (/status, /healthz, /metrics), e.g. 127.0.0.1:8026; empty = none")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stderr, "ds2mb", version)
		return 0
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "ds2mb: --log-level %q: want debug, info, warn or error\n", *logLevel)
		return 2
	}
	// On a terminal a progress line follows a full replication; the log
	// writes through it. Elsewhere (a service, a pipe) nothing is drawn.
	var prog *progress
	logOut := stderr
	if isTerminal(stderr) {
		prog = newProgress(stderr, nil)
		logOut = prog
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))
	fail := func(format string, a ...any) int {
		log.Error(fmt.Sprintf(format, a...))
		return 1
	}
	if *baseDN == "" || *server == "" || *mbPath == "" {
		fmt.Fprintln(stderr, "ds2mb: --base-dn, --server and --metabase are required")
		fs.Usage()
		return 2
	}
	switch *mode {
	case "auto", "syncrepl", "adnotify", "poll":
	default:
		fmt.Fprintf(stderr, "ds2mb: --mode %q: want auto, syncrepl, adnotify or poll\n", *mode)
		return 2
	}
	if msg := checkTLSFlags(*ldapURL, *startTLS, *caFile); msg != "" {
		fmt.Fprintln(stderr, "ds2mb: "+msg)
		return 2
	}
	if err := os.MkdirAll(filepath.Dir(*mbPath), 0o755); err != nil {
		return fail("--metabase: %v", err)
	}
	password, err := readPassword(*pwFile)
	if err != nil {
		return fail("bind password: %v", err)
	}
	cfg := source.Config{URL: *ldapURL, BindDN: *bindDN, Password: password, StartTLS: *startTLS, Once: *once,
		BaseDN: *searchBase}
	if cfg.BaseDN == "" {
		cfg.BaseDN = source.SearchBase(*baseDN)
	}
	if *caFile != "" {
		tc, err := source.TLSConfig(*caFile)
		if err != nil {
			return fail("--ca-file: %v", err)
		}
		cfg.TLS = tc
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	st := &status{started: time.Now(), server: *server, metabase: *mbPath, mode: *mode}
	if *statusAddr != "" {
		l, err := serveStatus(*statusAddr, st)
		if err != nil {
			return fail("--status-addr: %v", err)
		}
		defer l.Close()
		log.Info("status served", "addr", "http://"+l.Addr().String()+"/status")
	}
	m := *mode
	if m == "auto" {
		var err error
		m, err = detect(ctx, &cfg, log)
		if ctx.Err() != nil {
			return 0 // stopped by a signal while the directory was away
		}
		if err != nil {
			return fail("mode auto: %v", err)
		}
		log.Info("mode chosen", "mode", m)
	}
	var src replicator.Source
	switch m {
	case "syncrepl":
		src = source.NewSyncrepl(cfg)
	case "adnotify":
		src = source.NewADNotify(cfg)
	default:
		src = source.NewPoll(cfg, *pollInterval)
	}
	if prog != nil {
		prog.count = cfg.CountObjects
		src = prog.wrap(src)
	}
	st.setMode(m)
	r, err := replicator.New(replicator.Options{Metabase: *mbPath, Server: *server, Base: *baseDN, Source: src,
		Resync: *resync, Events: func(e replicator.Event) { st.observe(e); logEvent(log, e) }})
	if err != nil {
		return fail("%v", err)
	}
	st.setStats(r.Stats)

	if err := r.Run(ctx); err != nil {
		return fail("%v", err)
	}
	rs := r.Stats()
	log.Info("exiting", "saves", rs.Saves, "objects", rs.Objects)
	return 0
}

// checkTLSFlags refuses TLS flags that cannot mean what they say: StartTLS
// on an ldaps:// connection (already encrypted), and a CA file for a plain
// ldap:// connection without --starttls, which would bind in clear text.
func checkTLSFlags(rawURL string, startTLS bool, caFile string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "" // the dial reports it (go-ldap also takes ldapi:// URLs net/url refuses)
	}
	switch {
	case u.Scheme == "ldaps" && startTLS:
		return "--starttls: an ldaps:// connection is already encrypted; give an ldap:// URL or drop --starttls"
	case u.Scheme == "ldap" && !startTLS && caFile != "":
		return "--ca-file is used only with ldaps:// or --starttls; without them the connection would not be encrypted"
	}
	return ""
}

// detect asks the root DSE which source suits the directory, retrying
// while it is unreachable (the daemon may start before it).
func detect(ctx context.Context, cfg *source.Config, log *slog.Logger) (string, error) {
	delay := 100 * time.Millisecond
	for {
		m, err := source.DetectMode(ctx, cfg)
		if err == nil {
			return m, nil
		}
		if cfg.Once {
			return "", err
		}
		log.Warn("cannot read the root DSE; retrying", "reason", err.Error())
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

func readPassword(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	if pw, ok := os.LookupEnv("DS2MB_BIND_PASSWORD"); ok {
		return pw, nil
	}
	return "", errors.New("give --bind-password-file or set DS2MB_BIND_PASSWORD (empty for anonymous)")
}

func logEvent(log *slog.Logger, e replicator.Event) {
	level := slog.LevelInfo
	switch e.Severity {
	case replicator.SevDebug:
		level = slog.LevelDebug
	case replicator.SevWarning:
		level = slog.LevelWarn
	case replicator.SevError:
		level = slog.LevelError
	}
	if !log.Enabled(context.Background(), level) {
		return
	}
	attrs := []slog.Attr{slog.Int("event", int(e.ID))}
	for _, f := range e.Fields() {
		attrs = append(attrs, slog.String(f.Key, f.Value))
	}
	log.LogAttrs(context.Background(), level, e.Message, attrs...)
}
