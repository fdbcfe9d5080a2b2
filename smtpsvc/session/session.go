// Package session is what one SMTP virtual server does on the wire: a
// go-smtp server configured from a config.VirtualServer (banner, EHLO
// keywords, limits, timeouts, relay policy, AUTH, STARTTLS), whose sessions
// spool accepted mail durably before the 250 reply, and write the protocol
// log.
//
// Behaviour, property by property:
//
//   - Banner "220 <FullyQualifiedDomainName> ds2mb ESMTP ready at <RFC 5322
//     date>"; the HELO/EHLO reply starts "<FQDN> Hello [<client IP>]".
//   - EHLO keywords: PIPELINING, ENHANCEDSTATUSCODES, SIZE (with
//     MaxMessageSize; bare when it is 0), and per
//     SmtpInboundCommandSupportOptions DSN (0x40), CHUNKING and BDAT
//     (0x100000), BINARYMIME (0x200000, with CHUNKING), 8BITMIME
//     (0x400000); STARTTLS when a certificate is configured (never on a
//     connection that is TLS already); AUTH PLAIN LOGIN (see below).
//   - SecureBindings (implicit TLS): the supervisor does the handshake and
//     hands over a *tls.Conn; such a session is TLS from its greeting, for
//     AUTH and AccessSSL alike, and is not offered STARTTLS.
//   - ConnectionTimeout: idle time before "421 4.4.2". Per command
//     (0 = ConnectionTimeout): SmtpConnectTimeout from the greeting to the
//     first command, SmtpHeloTimeout after HELO/EHLO, SmtpMailFromTimeout
//     after MAIL, SmtpRcptToTimeout after RCPT, SmtpBdatTimeout after BDAT
//     (the next command, or the next chunk), SmtpRsetTimeout after RSET,
//     SmtpDataTimeout between
//     reads of the message after DATA (an idle client mid-message gets
//     "421 4.4.2" and is disconnected; without SmtpDataTimeout the
//     ConnectionTimeout counted from the DATA command bounds the message,
//     and from the BDAT command its chunk). SmtpAuthTimeout,
//     SmtpSaslTimeout and SmtpTurnTimeout are not read.
//   - MaxMessageSize: "552 5.3.4" (also for MAIL SIZE=); MaxSessionSize:
//     bytes of message data over the session, "552 5.3.4" past it;
//     MaxRecipients: "452 4.5.3 Too many recipients"; HopCount: more
//     Received headers than that in the arriving header section is
//     "554 5.4.6 Hop count exceeded".
//   - EnableReverseDnsLookup: the client's PTR name (Env.Resolver) goes in
//     the Received header the server adds: "from <helo> (<ptr> [<ip>])" when
//     the name resolves back to the address, "(<ptr> [<ip>] unverified)"
//     when it does not, "(RDNS failed [<ip>])" when there is no PTR.
//   - Recipients: package policy (local, relay, RelayIpList, RelayForAuth,
//     a domain node's own RelayIpList and RelayForAuth deciding relay to
//     its domain, address tricks refused, "550 5.7.1 Relaying
//     prohibited").
//   - IPSecurity (when it decodes as a grant list, see package config): a
//     client whose address it does not list gets "554 5.7.1 Connection
//     refused" instead of the greeting, and the connection is closed.
//   - MaxSmtpErrors: after that many 4xx/5xx replies in one connection
//     (refused commands, bad syntax, refused recipients alike), "421 4.7.0
//     Too many errors, closing connection" and the connection is closed.
//   - AccessSSLFlags with AccessSSL: MAIL before STARTTLS is
//     "530 5.7.0 Must issue a STARTTLS command first".
//   - AuthFlags without AuthAnonymous: MAIL before a successful AUTH is
//     "530 5.7.0 Authentication required".
//   - AUTH PLAIN and LOGIN are offered when AuthFlags has AuthBasic and
//     Env.Auth is set, only over TLS — except to loopback clients when
//     Env.AllowInsecureAuth is set (tests and the local demo). AUTH in clear
//     otherwise gets "538 5.7.11". Wrong credentials: "535 5.7.8"; after
//     too many failures from one address (Env.Limiter): "454 4.7.0 Too many
//     failed attempts, try later".
//   - An accepted message is spooled (package spool: file and folder
//     synced) before the reply "250 2.6.0 <id@FQDN> Queued mail for
//     delivery"; a spool failure is "451 4.3.0".
//   - Every reply but the greeting, the EHLO reply and the 334/354
//     continuations carries an enhanced status code (RFC 2034).
//
// go-smtp v0.25.1 fixes its greeting and EHLO first line and always offers
// PIPELINING, 8BITMIME and CHUNKING, and silently drops source routes; the
// module is replaced by a copy with small opt-in hooks (gosmtp/PATCHES.md).
package session

import (
	"crypto/tls"
	"log/slog"
	"sync/atomic"

	"github.com/ds2mb/ds2mb/smtpsvc/auth"
	"github.com/ds2mb/ds2mb/smtpsvc/config"
	"github.com/ds2mb/ds2mb/smtpsvc/events"
	"github.com/ds2mb/ds2mb/smtpsvc/rdns"
	"github.com/ds2mb/ds2mb/smtpsvc/spool"
)

// Stats are counters shared by every session of a process (or of one virtual
// server, as the caller chooses); all fields atomic.
//
// SessionsOpen counts sessions from their first HELO/EHLO to their end
// (connections that never greet are not counted; the supervisor counts
// connections). A transaction is counted once, by its final reply: the DATA
// reply, or the refusal that ended it (a refused MAIL, or RCPTs refused and
// the transaction reset or the session closed without DATA).
type Stats struct {
	SessionsOpen                      atomic.Int64
	MessagesAccepted, MessagesRefused atomic.Uint64
	Replies                           [6]atomic.Uint64 // transactions by final reply class: index 2 = 2xx, 4 = 4xx, 5 = 5xx
	AuthFailures                      atomic.Uint64
	ConnectionsDenied                 atomic.Uint64 // refused by IPSecurity before the greeting
	// Discarded and Badmailed count accepted messages that event sinks
	// dropped or put in Badmail instead of queueing them.
	Discarded, Badmailed atomic.Uint64
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
	// Events dispatches the virtual server's event bindings; nil = none.
	Events *events.Dispatcher
	// Queue is told of every message the server has spooled (the 250 is
	// on its way); nil = messages wait in the queue folder for whoever
	// scans it.
	Queue Queue
}

// Queue takes spooled messages for delivery.
type Queue interface {
	// Enqueue is called with a message just committed to the spool, as
	// its Commit describes it (spool.Message.Stored).
	Enqueue(instance int, st *spool.Stored)
}

// NewServer returns a configured go-smtp server for one virtual server of one
// configuration generation, not yet serving. The caller owns listeners: it
// calls srv.Serve(l) with a listener of its own and srv.Shutdown(ctx) to
// drain.
func NewServer(vs *config.VirtualServer, env *Env) *Server {
	return newServer(vs, env)
}
