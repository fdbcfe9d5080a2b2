package session

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/ds2mb/ds2mb/smtpsvc/auth"
	"github.com/ds2mb/ds2mb/smtpsvc/config"
	"github.com/ds2mb/ds2mb/smtpsvc/events"
	"github.com/ds2mb/ds2mb/smtpsvc/protolog"
	"github.com/ds2mb/ds2mb/smtpsvc/rdns"
	"github.com/ds2mb/ds2mb/smtpsvc/spool"
)

// Defaults for Env fields left zero.
const (
	// DefaultAuthBurst failed AUTH attempts in a row are allowed per client
	// address, then one more per DefaultAuthRefill.
	DefaultAuthBurst  = 5
	DefaultAuthRefill = 30 * time.Second
	// lookupTimeout bounds the reverse lookup of a client.
	lookupTimeout = 2 * time.Second
	// authTimeout bounds one credentials check.
	authTimeout = 10 * time.Second
)

// backend is one virtual server of one configuration generation.
type backend struct {
	vs       *config.VirtualServer
	env      Env
	log      *slog.Logger
	stats    *Stats
	limiter  *auth.Limiter
	spool    *spool.Spool
	spoolErr error
	plog     *protolog.Log // nil: no protocol log
	tls      bool          // STARTTLS offered
}

var (
	spoolMu sync.Mutex
	spools  = map[string]*spool.Spool{}
)

// openSpool returns the process's spool for a folder; generations share it.
func openSpool(dir string) (*spool.Spool, error) {
	spoolMu.Lock()
	defer spoolMu.Unlock()
	if s := spools[dir]; s != nil {
		if s.Current() {
			return s, nil
		}
		// The folder was replaced (moved, recreated) since: open the new one.
	}
	s, err := spool.Open(dir)
	if err != nil {
		return nil, err
	}
	spools[dir] = s
	return s, nil
}

func newServer(vs *config.VirtualServer, envp *Env) *Server {
	be := &backend{vs: vs}
	if envp != nil {
		be.env = *envp
	}
	be.log = be.env.Logger
	if be.log == nil {
		be.log = slog.Default()
	}
	be.log = be.log.With("instance", vs.Instance)
	be.stats = be.env.Stats
	if be.stats == nil {
		be.stats = new(Stats)
	}
	be.limiter = be.env.Limiter
	if be.limiter == nil {
		be.limiter = auth.NewLimiter(DefaultAuthBurst, DefaultAuthRefill)
	}
	be.spool, be.spoolErr = openSpool(vs.QueueDir)
	if be.spoolErr != nil {
		be.log.Error("queue folder unusable; mail is refused with 451", "err", be.spoolErr)
	}
	if vs.LogEnabled {
		be.plog = protolog.Open(vs.LogDir, vs.Instance, protolog.Options{Period: vs.LogFilePeriod})
	}

	s := smtp.NewServer(be)
	s.Domain = vs.FQDN
	s.ReadTimeout = vs.ConnectionTimeout
	s.WriteTimeout = vs.ConnectionTimeout
	s.MaxMessageBytes = vs.MaxMessageSize
	s.MaxRecipients = 0        // enforced by the session, with IIS's reply
	s.AllowInsecureAuth = true // the session decides per connection
	s.EnableDSN = vs.Commands.DSN
	s.EnableBINARYMIME = vs.Commands.BinaryMIME
	s.DisableCHUNKING = !vs.Commands.Chunking
	s.Disable8BITMIME = !vs.Commands.EightBit
	s.RejectSourceRoutes = true
	s.MaxErrors = vs.MaxSmtpErrors
	if to := vs.Timeouts; to != (config.CommandTimeouts{}) {
		s.CommandTimeout = func(verb string) time.Duration {
			switch verb {
			case "":
				return to.Connect
			case "HELO", "EHLO":
				return to.Helo
			case "MAIL":
				return to.MailFrom
			case "RCPT":
				return to.RcptTo
			case "DATA":
				return to.Data
			case "BDAT":
				return to.Bdat
			case "RSET":
				return to.Rset
			}
			return 0
		}
	}
	s.ErrorLog = errorLog{be.log}
	switch {
	case be.env.TLS != nil:
		s.TLSConfig = be.env.TLS
	case vs.TLSCertificate != nil:
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*vs.TLSCertificate}, MinVersion: tls.VersionTLS12}
	}
	be.tls = s.TLSConfig != nil
	be.hookEvents(s)
	fqdn := vs.FQDN
	s.Greeting = func(*smtp.Conn) string {
		return fqdn + " ds2mb ESMTP ready at " + time.Now().Format(time.RFC1123Z)
	}
	s.HelloReply = func(c *smtp.Conn, _ string) string {
		ip, _ := addrOf(c.Conn().RemoteAddr())
		return fqdn + " Hello " + addrLiteral(ip)
	}
	return &Server{Server: s, be: be}
}

// Server is one virtual server's SMTP server: go-smtp, behind IPSecurity's
// connection control when the virtual server has it. Admission wraps the
// listener, as go-smtp's maintainers advise, rather than living in go-smtp.
type Server struct {
	*smtp.Server
	be *backend
}

// Serve serves connections from l; with connection control, a client
// IPSecurity does not grant gets "554 5.7.1 Connection refused" instead of
// the greeting and is disconnected, without reaching go-smtp.
func (s *Server) Serve(l net.Listener) error {
	if s.be.vs.ConnectionControl {
		l = &admitListener{Listener: l, be: s.be}
	}
	return s.Server.Serve(l)
}

// admitListener hands on only the connections IPSecurity grants.
type admitListener struct {
	net.Listener
	be *backend
}

// Accept returns the next granted connection; refused ones are answered
// and closed in the background.
func (a *admitListener) Accept() (net.Conn, error) {
	for {
		c, err := a.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip, _ := addrOf(c.RemoteAddr())
		if a.be.vs.ConnectionAllowed(ip) {
			return c, nil
		}
		a.be.stats.ConnectionsDenied.Add(1)
		a.be.log.Debug("connection refused by IPSecurity", "client", ip)
		go func() {
			defer c.Close()
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(c, "%d %d.%d.%d %s\r\n", errConnRefused.Code, errConnRefused.EnhancedCode[0],
				errConnRefused.EnhancedCode[1], errConnRefused.EnhancedCode[2], errConnRefused.Message)
		}()
	}
}

// addrLiteral is an address in RFC 5321's literal form: "[192.0.2.1]",
// "[IPv6:2001:db8::1]".
func addrLiteral(ip netip.Addr) string {
	if ip.Is6() {
		return "[IPv6:" + ip.String() + "]"
	}
	return "[" + ip.String() + "]"
}

// addrOf splits a net.Addr into address and port.
func addrOf(a net.Addr) (netip.Addr, int) {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap(), ta.Port
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap(), int(ap.Port())
	}
	return netip.Addr{}, 0
}

// NewSession is called on the first HELO/EHLO of a connection (and again
// after STARTTLS).
func (be *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s := &session{be: be, conn: c, start: time.Now(), helo: c.Hostname()}
	s.ip, _ = addrOf(c.Conn().RemoteAddr())
	s.localIP, s.localPort = addrOf(c.Conn().LocalAddr())
	_, s.tls = c.TLSConnectionState()
	if be.vs.ReverseDNS && be.env.Resolver != nil {
		ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
		name, verified, err := rdns.Verify(ctx, be.env.Resolver, s.ip)
		cancel()
		switch {
		case err != nil:
			s.ptr = "RDNS failed"
		case verified:
			s.ptr = name
		default:
			s.ptr, s.ptrUnverified = name, true
		}
	}
	if be.env.Events.Has(events.SessionStart) {
		if r := s.fire(&events.Event{Type: events.SessionStart}); refused(r) {
			s.logCmd("EHLO", s.helo, r.Code)
			return nil, r
		}
	}
	be.stats.SessionsOpen.Add(1)
	s.logCmd("EHLO", s.helo, 250)
	return s, nil
}

// errorLog hands go-smtp's internal errors (failed handshakes, broken
// connections) to the logger at debug level.
type errorLog struct{ l *slog.Logger }

func (e errorLog) Printf(format string, v ...any) { e.l.Debug(fmt.Sprintf(format, v...)) }
func (e errorLog) Println(v ...any)               { e.l.Debug(fmt.Sprintln(v...)) }
