package session

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/ds2mb/ds2mb/smtpsvc/auth"
	"github.com/ds2mb/ds2mb/smtpsvc/events"
	"github.com/ds2mb/ds2mb/smtpsvc/policy"
	"github.com/ds2mb/ds2mb/smtpsvc/protolog"
	"github.com/ds2mb/ds2mb/smtpsvc/spool"
)

// Replies the sessions give (every one with an enhanced status code).
var (
	errTLSRequired     = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Must issue a STARTTLS command first"}
	errAuthRequired    = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	errTooManyRcpts    = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: "Too many recipients"}
	errSessionSize     = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Session size limit exceeded"}
	errHopCount        = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 4, 6}, Message: "Hop count exceeded - possible mail loop"}
	errQueue           = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Queue unavailable, try later"}
	errAuthRateLimited = &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many failed attempts, try later"}
	errAuthInvalid     = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
	errAuthTemporary   = &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Temporary authentication failure"}
	errAuthEncryption  = &smtp.SMTPError{Code: 538, EnhancedCode: smtp.EnhancedCode{5, 7, 11}, Message: "Encryption required for requested authentication mechanism"}
	errAuthNotOffered  = &smtp.SMTPError{Code: 504, EnhancedCode: smtp.EnhancedCode{5, 7, 4}, Message: "Unrecognized authentication type"}
	errAuthTwice       = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "Already authenticated"}
	errConnRefused     = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Connection refused"}
	errNestedMail      = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "Sender already specified"}
)

// session is one SMTP session of a connection.
type session struct {
	// mu is held by Data for its whole run: with BDAT, go-smtp runs Data in
	// a goroutine of its own and may call Reset or Logout (RSET, a dropped
	// connection) while it runs; they wait until Data has seen the closed
	// chunk pipe and returned.
	mu sync.Mutex

	be    *backend
	conn  *smtp.Conn
	start time.Time

	ip        netip.Addr
	localIP   netip.Addr
	localPort int
	helo      string
	ptr       string // reverse lookup result ("" = not looked up, "RDNS failed")
	// ptrUnverified: ptr does not resolve back to the client's address
	ptrUnverified bool
	tls           bool
	authUser      string

	sessionBytes int64 // message data received in this session

	// the current transaction
	inTx       bool
	from       string
	fromParams string
	rcpts      []string
	rcptParams []string
	refusal    int // class (4 or 5) of the last refused step of this transaction, 0 = none

	ev              *events.Session // what sinks see of the session; nil until an event fires
	beforeDataFired bool            // OnBeforeData fired for this transaction (at DATA)
}

func (s *session) logCmd(method, query string, status int) {
	if s.be.plog == nil {
		return
	}
	user := s.authUser
	if user == "" {
		user = s.helo
	}
	lip := ""
	if s.localIP.IsValid() {
		lip = s.localIP.String()
	}
	cip := ""
	if s.ip.IsValid() {
		cip = s.ip.String()
	}
	err := s.be.plog.Write(&protolog.Entry{ClientIP: cip, Username: user, ServerIP: lip, ServerPort: s.localPort,
		Method: method, Query: query, Status: status})
	if err != nil {
		s.be.log.Warn("protocol log", "err", err)
	}
}

// Reset discards the current transaction.
func (s *session) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endTx()
}

// endTx counts a transaction that ends without DATA after a refusal.
func (s *session) endTx() {
	if s.inTx && s.refusal != 0 {
		s.be.stats.MessagesRefused.Add(1)
		s.be.stats.Replies[s.refusal].Add(1)
	}
	s.inTx, s.from, s.fromParams, s.refusal, s.beforeDataFired = false, "", "", 0, false
	s.rcpts, s.rcptParams = s.rcpts[:0], s.rcptParams[:0]
}

// Logout ends the session.
func (s *session) Logout() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endTx()
	s.be.stats.SessionsOpen.Add(-1)
	s.logCmd("QUIT", "", 240)
	if s.be.env.Events.Has(events.SessionEnd) {
		s.fire(&events.Event{Type: events.SessionEnd})
	}
	return nil
}

func (s *session) refuse(method, query string, e *smtp.SMTPError) error {
	if s.inTx {
		s.refusal = e.Code / 100
	} else {
		s.be.stats.MessagesRefused.Add(1)
		s.be.stats.Replies[e.Code/100].Add(1)
	}
	s.logCmd(method, query, e.Code)
	return e
}

// Mail starts a transaction.
func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	q := "FROM:<" + from + ">"
	if s.inTx {
		s.logCmd("MAIL", q, errNestedMail.Code)
		return errNestedMail
	}
	if s.be.vs.RequireTLS && !s.tls {
		return s.refuse("MAIL", q, errTLSRequired)
	}
	if !s.be.vs.AuthAnonymous && s.authUser == "" {
		return s.refuse("MAIL", q, errAuthRequired)
	}
	if s.be.spool == nil {
		return s.refuse("MAIL", q, errQueue)
	}
	if max := s.be.vs.MaxSessionSize; max > 0 && opts != nil && s.sessionBytes+opts.Size > max {
		return s.refuse("MAIL", q, errSessionSize)
	}
	s.inTx, s.from, s.refusal = true, from, 0
	s.fromParams = mailParams(opts)
	if s.be.env.Events.Has(events.MessageStart) {
		m := events.NewMailMsg(from, nil, nil)
		m.FromParams = s.fromParams
		if r := s.fire(&events.Event{Type: events.MessageStart, Msg: m}); refused(r) {
			s.inTx, s.from, s.fromParams = false, "", ""
			return s.refuse("MAIL", q, r)
		}
	}
	s.logCmd("MAIL", q, 250)
	return nil
}

// mailParams renders the MAIL parameters the spool keeps.
func mailParams(o *smtp.MailOptions) string {
	if o == nil {
		return ""
	}
	var p []string
	if o.Body != "" {
		p = append(p, "BODY="+string(o.Body))
	}
	if o.Size > 0 {
		p = append(p, "SIZE="+strconv.FormatInt(o.Size, 10))
	}
	if o.Return != "" {
		p = append(p, "RET="+string(o.Return))
	}
	if o.EnvelopeID != "" {
		p = append(p, "ENVID="+xtext(o.EnvelopeID))
	}
	if o.UTF8 {
		p = append(p, "SMTPUTF8")
	}
	return strings.Join(p, " ")
}

func rcptParams(o *smtp.RcptOptions) string {
	if o == nil {
		return ""
	}
	var p []string
	if len(o.Notify) > 0 {
		n := make([]string, len(o.Notify))
		for i, v := range o.Notify {
			n[i] = string(v)
		}
		p = append(p, "NOTIFY="+strings.Join(n, ","))
	}
	if o.OriginalRecipient != "" {
		t := string(o.OriginalRecipientType)
		if t == "" {
			t = "rfc822"
		}
		p = append(p, "ORCPT="+t+";"+xtext(o.OriginalRecipient))
	}
	return strings.Join(p, " ")
}

// xtext encodes a DSN parameter value (RFC 3461 §4).
func xtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '!' || c > '~' || c == '+' || c == '=' {
			b.WriteString("+" + strings.ToUpper(strconv.FormatUint(uint64(c), 16)))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Rcpt adds a recipient, after the relay policy.
func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	q := "TO:<" + to + ">"
	if max := s.be.vs.MaxRecipients; max > 0 && len(s.rcpts) >= max {
		return s.refuse("RCPT", q, errTooManyRcpts)
	}
	_, ref := policy.Recipient(s.be.vs, to, policy.Client{IP: s.ip, Authenticated: s.authUser != ""})
	if ref != nil {
		return s.refuse("RCPT", q, &smtp.SMTPError{Code: ref.Code,
			EnhancedCode: smtp.EnhancedCode{ref.Enhanced[0], ref.Enhanced[1], ref.Enhanced[2]}, Message: ref.Text})
	}
	if s.be.env.Events.Has(events.PerRecipient) {
		if r := s.fire(&events.Event{Type: events.PerRecipient, Rcpt: to}); refused(r) {
			return s.refuse("RCPT", q, r)
		}
	}
	s.rcpts = append(s.rcpts, to)
	s.rcptParams = append(s.rcptParams, rcptParams(opts))
	s.logCmd("RCPT", q, 250)
	return nil
}

// readerPool recycles the buffered readers messages are read through.
var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 32<<10) }}

// Data spools the message durably; the 250 reply follows only once it is on
// disk.
func (s *session) Data(r io.Reader) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := time.Now()
	var id string
	var err error
	if !s.beforeDataFired && s.be.env.Events.Has(events.BeforeData) {
		// BDAT: no DATA command went by the Command hook.
		if rep := s.fire(&events.Event{Type: events.BeforeData, Command: &events.Command{Verb: "BDAT"}}); refused(rep) {
			io.Copy(io.Discard, r) // the rest of the chunks, so the session stays in step
			err = rep
		}
	}
	if err == nil {
		id, err = s.data(r)
	}
	status := 250
	var se *smtp.SMTPError
	switch {
	case err == nil:
		s.be.stats.MessagesAccepted.Add(1)
		s.be.stats.Replies[2].Add(1)
		// go-smtp writes a returned *SMTPError as the reply, whatever its
		// code: this is how the 250 names the queue id, as IIS's does.
		err = &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 6, 0},
			Message: "<" + id + "@" + s.be.vs.FQDN + "> Queued mail for delivery"}
	case errors.As(err, &se):
		status = se.Code
	default:
		status = 554
	}
	if status != 250 {
		s.be.stats.MessagesRefused.Add(1)
		s.be.stats.Replies[status/100].Add(1)
	}
	s.refusal = 0 // counted here, not again at the end of the transaction
	if s.be.plog != nil {
		s.logCmdTimed("DATA", start, status)
	}
	return err
}

func (s *session) logCmdTimed(method string, start time.Time, status int) {
	user := s.authUser
	if user == "" {
		user = s.helo
	}
	err := s.be.plog.Write(&protolog.Entry{ClientIP: s.ip.String(), Username: user, ServerIP: s.localIP.String(),
		ServerPort: s.localPort, Method: method, Query: "<" + s.from + ">", Status: status, BytesRecv: s.sessionBytes,
		TimeTaken: time.Since(start)})
	if err != nil {
		s.be.log.Warn("protocol log", "err", err)
	}
}

// countingReader counts message bytes against the session limit.
type countingReader struct {
	r   io.Reader
	s   *session
	max int64 // 0 = no limit
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.s.sessionBytes += int64(n)
	if c.max > 0 && c.s.sessionBytes > c.max {
		return n, errSessionSize
	}
	return n, err
}

// data spools the message and returns its queue id.
func (s *session) data(r io.Reader) (string, error) {
	vs := s.be.vs
	if s.be.spool == nil {
		return "", errQueue
	}
	now := time.Now()
	env := spool.Envelope{From: s.from, FromParams: s.fromParams, To: s.rcpts, ToParams: s.rcptParams,
		Client: s.clientLine(), ReceivedAt: now, Instance: vs.Instance}
	msg, err := s.be.spool.Create(&env)
	if err != nil {
		s.be.log.Error("spool", "err", err)
		return "", errQueue
	}
	committed := false
	defer func() {
		if !committed {
			msg.Abort()
		}
	}()
	msg.WriteString(s.receivedHeader(msg.ID(), now))

	br := readerPool.Get().(*bufio.Reader)
	br.Reset(&countingReader{r: r, s: s, max: vs.MaxSessionSize})
	defer func() { br.Reset(nil); readerPool.Put(br) }()

	// The header section, line by line, counting Received headers.
	hops, lineStart := 0, true
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if lineStart {
				if len(line) >= 9 && strings.EqualFold(string(line[:9]), "received:") {
					hops++
				}
				if line[0] == '\r' || line[0] == '\n' {
					msg.Write(line)
					break // end of the header section
				}
			}
			msg.Write(line)
			lineStart = line[len(line)-1] == '\n'
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", readErr(err)
		}
	}
	if hops > vs.HopCount {
		return "", errHopCount
	}
	if _, err := br.WriteTo(msg); err != nil {
		return "", readErr(err)
	}
	if s.be.env.Events.HasTransport() {
		next, err := s.transport(msg, &env)
		if err != nil {
			s.be.log.Error("event sinks: the message could not be rewritten", "id", msg.ID(), "err", err)
			return "", errQueue
		}
		if next == nil {
			return msg.ID(), nil // discarded or in Badmail: msg is aborted by the deferred call
		}
		if next != msg {
			msg.Abort()
			msg = next
		}
	}
	if _, err := msg.Commit(); err != nil {
		committed = true // Commit cleaned up
		s.be.log.Error("spool", "err", err)
		return "", errQueue
	}
	committed = true
	if q := s.be.env.Queue; q != nil {
		q.Enqueue(vs.Instance, msg.Stored())
	}
	return msg.ID(), nil
}

// readErr turns a failure while reading DATA into the reply.
func readErr(err error) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se
	}
	if errors.Is(err, errSessionSize) {
		return errSessionSize
	}
	return err
}

func (s *session) clientLine() string {
	var b strings.Builder
	b.WriteString(addrLiteral(s.ip) + " helo=" + s.helo)
	if s.ptr != "" {
		b.WriteString(" ptr=" + strings.ReplaceAll(s.ptr, " ", "-"))
		if s.ptrUnverified {
			b.WriteString(" ptr-unverified")
		}
	}
	if s.authUser != "" {
		b.WriteString(" auth=" + s.authUser)
	}
	if s.tls {
		b.WriteString(" tls")
	}
	return b.String()
}

// receivedHeader is the trace header the server adds (RFC 5321 §4.4), with
// the reverse lookup result when EnableReverseDnsLookup is on.
func (s *session) receivedHeader(id string, now time.Time) string {
	with := "ESMTP"
	if s.tls {
		with += "S"
	}
	if s.authUser != "" {
		with += "A"
	}
	var b strings.Builder
	b.Grow(160)
	b.WriteString("Received: from ")
	b.WriteString(s.helo)
	b.WriteString(" (")
	if s.ptr != "" {
		b.WriteString(s.ptr)
		b.WriteByte(' ')
	}
	b.WriteString(addrLiteral(s.ip))
	if s.ptrUnverified {
		b.WriteString(" unverified")
	}
	b.WriteString(")\r\n\tby ")
	b.WriteString(s.be.vs.FQDN)
	b.WriteString(" with ")
	b.WriteString(with)
	b.WriteString(" id ")
	b.WriteString(id)
	b.WriteString(";\r\n\t")
	b.WriteString(now.Format(time.RFC1123Z))
	b.WriteString("\r\n")
	return b.String()
}

// AuthMechanisms lists the SASL mechanisms offered in EHLO: PLAIN and LOGIN
// when AuthFlags has AuthBasic and a checker is configured, over TLS only
// (or in clear on loopback when Env.AllowInsecureAuth).
func (s *session) AuthMechanisms() []string {
	if !s.authOffered() || !s.authSecure() {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

func (s *session) authOffered() bool { return s.be.vs.AuthBasic && s.be.env.Auth != nil }

func (s *session) authSecure() bool {
	return s.tls || (s.be.env.AllowInsecureAuth && s.ip.IsLoopback())
}

// Auth starts a SASL exchange.
func (s *session) Auth(mech string) (sasl.Server, error) {
	q := mech
	switch {
	case s.authUser != "":
		return nil, errAuthTwice
	case !s.authOffered():
		s.logCmd("AUTH", q, errAuthNotOffered.Code)
		return nil, errAuthNotOffered
	case !s.authSecure():
		s.logCmd("AUTH", q, errAuthEncryption.Code)
		return nil, errAuthEncryption
	case !s.be.limiter.Allow(s.ip):
		s.be.stats.AuthFailures.Add(1)
		s.logCmd("AUTH", q, errAuthRateLimited.Code)
		return nil, errAuthRateLimited
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return s.authFailed(q, errAuthInvalid)
			}
			return s.check(q, username, password)
		}), nil
	case sasl.Login:
		return &loginServer{check: func(u, p string) error { return s.check(q, u, p) }}, nil
	}
	s.logCmd("AUTH", q, errAuthNotOffered.Code)
	return nil, errAuthNotOffered
}

func (s *session) authFailed(q string, e *smtp.SMTPError) error {
	s.be.stats.AuthFailures.Add(1)
	s.be.limiter.Fail(s.ip)
	s.logCmd("AUTH", q, e.Code)
	return e
}

// check asks the checker; a wrong password costs the client a token.
func (s *session) check(q, username, password string) error {
	ctx, cancel := context.WithTimeout(context.Background(), authTimeout)
	defer cancel()
	err := s.be.env.Auth.Check(ctx, username, password)
	switch {
	case err == nil:
		s.authUser = username
		s.logCmd("AUTH", q, 235)
		return nil
	case errors.Is(err, auth.ErrBadCredentials):
		return s.authFailed(q, errAuthInvalid)
	}
	s.be.log.Warn("authentication checker failed", "err", err)
	s.logCmd("AUTH", q, errAuthTemporary.Code)
	return errAuthTemporary
}

// loginServer is the server side of the LOGIN mechanism
// (draft-murchison-sasl-login): "Username:", then "Password:".
type loginServer struct {
	state    int
	username string
	check    func(username, password string) error
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.state {
	case 0:
		l.state = 1
		if response == nil {
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		l.username = string(response)
		l.state = 2
		return []byte("Password:"), false, nil
	case 2:
		l.state = 3
		return nil, true, l.check(l.username, string(response))
	}
	return nil, false, errors.New("unexpected client response")
}
