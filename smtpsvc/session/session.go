// Package session is what one SMTP virtual server does on the wire: a
// go-smtp server configured from a config.VirtualServer (banner, EHLO
// keywords, limits, timeouts, relay policy, AUTH, STARTTLS), whose sessions
// spool accepted mail durably before the 250 reply, and write the protocol
// log.
package session

import (
	"crypto/tls"
	"log/slog"
	"sync/atomic"

	"github.com/emersion/go-smtp"

	"github.com/ds2mb/ds2mb/smtpsvc/auth"
	"github.com/ds2mb/ds2mb/smtpsvc/config"
	"github.com/ds2mb/ds2mb/smtpsvc/rdns"
)

// Stats are counters shared by every session of a process (or of one virtual
// server, as the caller chooses); all fields atomic.
type Stats struct {
	SessionsOpen                      atomic.Int64
	MessagesAccepted, MessagesRefused atomic.Uint64
	Replies                           [6]atomic.Uint64 // transactions by final reply class: index 2 = 2xx, 4 = 4xx, 5 = 5xx
	AuthFailures                      atomic.Uint64
}

// Env is what sessions need from the process.
type Env struct {
	Logger   *slog.Logger  // nil = slog.Default()
	Stats    *Stats        // nil = counters are kept but not shared
	Auth     auth.Checker  // may be nil: AUTH not offered
	Resolver rdns.Resolver // may be nil: no reverse lookups
	TLS      *tls.Config   // may be nil: the virtual server's own certificate (if any) is used
	// AllowInsecureAuth offers AUTH without TLS, but only to clients on a
	// loopback address (for tests and the local demo). Otherwise AUTH is
	// offered only over TLS.
	AllowInsecureAuth bool
	// Limiter rate-limits failed AUTH attempts per client address; nil = a
	// limiter of the server's own (so share one across generations to keep
	// the counts over a reload).
	Limiter *auth.Limiter
}

// NewServer returns a configured go-smtp server for one virtual server of one
// configuration generation, not yet serving. The caller owns listeners: it
// calls srv.Serve(l) with a listener of its own and srv.Shutdown(ctx) to
// drain.
func NewServer(vs *config.VirtualServer, env *Env) *smtp.Server {
	return newServer(vs, env)
}
