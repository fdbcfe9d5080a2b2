package outbound

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/ds2mb/ds2mb/smtpsvc/delivery"
)

// Client opens outbound SMTP connections for one virtual server.
type Client struct {
	Resolver       Resolver
	HeloName       string        // EHLO name: the virtual server's FQDN
	Port           int           // RemoteSmtpPort; 0 = 25
	Timeout        time.Duration // RemoteTimeout, per command; 0 = 10 min
	ConnectTimeout time.Duration // per address; 0 = 30 s
	// TLS is used for opportunistic STARTTLS when the server offers it;
	// nil = encrypt without authenticating the server (RFC 7435), since an
	// MX host's certificate cannot be checked against anything here.
	TLS *tls.Config
}

// Target is where a connection goes.
type Target struct {
	Domain    string // the recipient domain
	SmartHost string // "" = MX of Domain; else a host or [address] literal, optionally ":port"
}

// DialError is a failed Dial, read as the result its recipients get.
type DialError struct{ Result delivery.Result }

func (e *DialError) Error() string { return e.Result.String() }

func dialErr(code int, status, format string, a ...any) *DialError {
	return &DialError{delivery.Result{Code: code, Status: status, Text: fmt.Sprintf(format, a...)}}
}

// Conn is one open outbound SMTP session.
type Conn struct {
	c       *smtp.Client
	nc      net.Conn
	host    string
	tls     bool
	usable  bool
	timeout time.Duration
}

// host is one candidate server.
type host struct {
	name string
	ip   netip.Addr // set for a literal
	port int
}

// Dial connects to the first host of the target that greets and accepts
// EHLO (HELO after a 5xx to EHLO): MX hosts by preference, each host's
// addresses in turn.
func (c *Client) Dial(ctx context.Context, t Target) (*Conn, error) {
	port := c.Port
	if port <= 0 {
		port = 25
	}
	var hosts []host
	if t.SmartHost != "" {
		h, err := parseHost(t.SmartHost, port)
		if err != nil {
			return nil, dialErr(451, "4.4.3", "smart host %q: %v", t.SmartHost, err)
		}
		hosts = []host{h}
	} else {
		mxs, err := c.Resolver.LookupMX(ctx, t.Domain)
		switch {
		case errors.Is(err, ErrNullMX):
			return nil, dialErr(556, "5.1.10", "%s: Recipient address has null MX (RFC 7505)", t.Domain)
		case IsNotFound(err):
			return nil, dialErr(550, "5.1.2", "%s: no such domain (NXDOMAIN)", t.Domain)
		case err != nil:
			return nil, dialErr(451, "4.4.3", "MX lookup of %s failed: %v", t.Domain, err)
		}
		if len(mxs) == 0 {
			hosts = []host{{name: t.Domain, port: port}}
		}
		for _, mx := range mxs {
			hosts = append(hosts, host{name: mx.Host, port: port})
		}
	}
	var last *DialError
	for _, h := range hosts {
		ips := []netip.Addr{h.ip}
		if !h.ip.IsValid() {
			var err error
			ips, err = c.Resolver.LookupIP(ctx, h.name)
			if err != nil || len(ips) == 0 {
				if last == nil {
					last = dialErr(451, "4.4.4", "no address for %s: %v", h.name, err)
				}
				continue
			}
		}
		for _, ip := range ips {
			conn, derr := c.connect(ctx, h, ip)
			if derr == nil {
				return conn, nil
			}
			if last == nil || last.Result.Status == "4.4.4" || derr.Result.Permanent() && !last.Result.Permanent() || !derr.Result.Permanent() && !last.Result.Permanent() {
				last = derr
			}
			if ctx.Err() != nil {
				return nil, dialErr(451, "4.3.2", "stopped: %v", ctx.Err())
			}
		}
	}
	if last == nil {
		last = dialErr(451, "4.4.4", "%s: no host to connect to", t.Domain)
	}
	return nil, last
}

func parseHost(s string, port int) (host, error) {
	h := host{port: port}
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return h, errors.New("unclosed [")
		}
		lit := strings.TrimPrefix(s[1:end], "IPv6:")
		ip, err := netip.ParseAddr(lit)
		if err != nil {
			return h, err
		}
		h.ip, h.name = ip, s[:end+1]
		s = s[end+1:]
	} else {
		name := s
		if i := strings.LastIndexByte(s, ':'); i >= 0 {
			name = s[:i]
		}
		h.name = name
		s = s[len(name):]
	}
	if p, ok := strings.CutPrefix(s, ":"); ok {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return h, fmt.Errorf("bad port %q", p)
		}
		h.port = n
	}
	return h, nil
}

// connect opens one session with one address.
func (c *Client) connect(ctx context.Context, h host, ip netip.Addr) (*Conn, *DialError) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	ct := c.ConnectTimeout
	if ct <= 0 {
		ct = 30 * time.Second
	}
	addr := netip.AddrPortFrom(ip, uint16(h.port)).String()
	name := fmt.Sprintf("%s [%s]", h.name, ip)
	if h.ip.IsValid() { // an address literal: its name is "[ip]" already
		name = "[" + ip.String() + "]"
	}
	d := net.Dialer{Timeout: ct}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, dialErr(451, "4.4.1", "cannot connect to %s: %v", name, err)
	}
	nc.SetDeadline(time.Now().Add(timeout))
	sc := smtp.NewClient(nc)
	sc.CommandTimeout, sc.SubmissionTimeout = timeout, timeout
	fail := func(err error) (*Conn, *DialError) {
		sc.Close()
		r := delivery.FromError("", name, err)
		if !r.FromRemote {
			r.Status = "4.4.2"
		}
		return nil, &DialError{r}
	}
	if err := sc.Hello(c.HeloName); err != nil {
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			return fail(err)
		}
		return fail(err)
	}
	cn := &Conn{c: sc, nc: nc, host: name, usable: true, timeout: timeout}
	if ok, _ := sc.Extension("STARTTLS"); ok {
		cfg := c.TLS
		if cfg == nil {
			cfg = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} // opportunistic (RFC 7435)
		}
		cfg = cfg.Clone()
		if cfg.ServerName == "" && !h.ip.IsValid() {
			cfg.ServerName = h.name
		}
		if err := sc.StartTLS(cfg); err != nil {
			return fail(fmt.Errorf("STARTTLS with %s: %w", name, err))
		}
		cn.tls = true
	}
	return cn, nil
}

// Host names the server: "mx1.example.com [127.0.0.2]".
func (cn *Conn) Host() string { return cn.host }

// TLS reports whether the session is encrypted.
func (cn *Conn) TLS() bool { return cn.tls }

// Usable reports whether another transaction may be sent.
func (cn *Conn) Usable() bool { return cn.usable }

// Close says QUIT and closes the connection.
func (cn *Conn) Close() error {
	cn.nc.SetDeadline(time.Now().Add(10 * time.Second))
	err := cn.c.Quit()
	cn.c.Close()
	return err
}

// Send runs one transaction and returns one result per recipient of the
// job. SIZE, BODY=8BITMIME, SMTPUTF8 and the DSN parameters go along when
// the server offers them; a message above the server's SIZE limit fails
// here with 552 5.3.4.
func (cn *Conn) Send(ctx context.Context, job *delivery.Job) []delivery.Result {
	results := make([]delivery.Result, len(job.Rcpts))
	all := func(r delivery.Result) []delivery.Result { return delivery.All(job, r) }
	if err := ctx.Err(); err != nil {
		return all(delivery.TempFail("", "4.3.2", "stopped: %v", err))
	}
	cn.nc.SetDeadline(time.Now().Add(cn.timeout))
	opts := &smtp.MailOptions{}
	if max, ok := cn.c.MaxMessageSize(); ok && max > 0 && job.Size > int64(max) {
		return all(delivery.Result{Code: 552, Status: "5.3.4", Text: fmt.Sprintf("message of %d bytes is above %s's limit of %d", job.Size, cn.host, max), RemoteMTA: cn.host})
	}
	if ok, _ := cn.c.Extension("SIZE"); ok {
		opts.Size = job.Size
	}
	if v, ok := job.Param("BODY"); ok && strings.EqualFold(v, "8BITMIME") {
		if ok, _ := cn.c.Extension("8BITMIME"); ok {
			opts.Body = smtp.Body8BitMIME
		}
	}
	if _, ok := job.Param("SMTPUTF8"); ok {
		if ok, _ := cn.c.Extension("SMTPUTF8"); !ok {
			return all(delivery.Result{Code: 553, Status: "5.6.7", Text: cn.host + " does not offer SMTPUTF8", RemoteMTA: cn.host})
		}
		opts.UTF8 = true
	}
	dsnOK, _ := cn.c.Extension("DSN")
	if dsnOK {
		if v, ok := job.Param("RET"); ok {
			opts.Return = smtp.DSNReturn(strings.ToUpper(v))
		}
		if v, ok := job.Param("ENVID"); ok {
			opts.EnvelopeID = decodeXtext(v)
		}
	}
	if cn.c.SupportsPipelining() {
		return cn.sendPipelined(job, opts, dsnOK)
	}
	broken := func(err error) bool {
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			cn.usable = false
			return true
		}
		return false
	}
	if err := cn.c.Mail(job.From, opts); err != nil {
		broken(err)
		cn.reset()
		return all(delivery.FromError("", cn.host, err))
	}
	var accepted []int
	for i, rc := range job.Rcpts {
		var ro *smtp.RcptOptions
		if dsnOK {
			ro = rcptOptions(job, i)
		}
		if err := cn.c.Rcpt(rc, ro); err != nil {
			results[i] = delivery.FromError(rc, cn.host, err)
			if broken(err) {
				for k := i + 1; k < len(job.Rcpts); k++ {
					results[k] = delivery.FromError(job.Rcpts[k], cn.host, err)
				}
				return results
			}
			continue
		}
		accepted = append(accepted, i)
	}
	if len(accepted) == 0 {
		cn.reset()
		return results
	}
	dataErr := func(err error) []delivery.Result {
		broken(err)
		for _, i := range accepted {
			results[i] = delivery.FromError(job.Rcpts[i], cn.host, err)
		}
		if cn.usable {
			cn.reset()
		}
		return results
	}
	w, err := cn.c.Data()
	if err != nil {
		return dataErr(err)
	}
	r, err := job.Open()
	if err != nil {
		w.Close()
		cn.usable = false
		return dataErr(fmt.Errorf("the queued message cannot be read: %w", err))
	}
	_, err = copyTimed(cn, w, r)
	r.Close()
	if err != nil {
		cn.usable = false
		return dataErr(err)
	}
	if err := w.Close(); err != nil {
		return dataErr(err)
	}
	for _, i := range accepted {
		results[i] = cn.queued(job.Rcpts[i], dsnOK)
	}
	return results
}

// MaxChunk is the largest message sent as one BDAT chunk in the same write
// as its envelope, when the server offers PIPELINING and CHUNKING. A
// larger one goes with DATA, after the RCPT replies, so that a refused
// transaction does not cost its upload.
const MaxChunk = 1 << 20

// sendPipelined is Send to a server that offers PIPELINING: the envelope
// (and a message up to MaxChunk with BDAT) in one write, the replies read
// in order.
func (cn *Conn) sendPipelined(job *delivery.Job, opts *smtp.MailOptions, dsnOK bool) []delivery.Result {
	results := make([]delivery.Result, len(job.Rcpts))
	r, err := job.Open()
	if err != nil {
		return delivery.All(job, delivery.TempFail("", "4.3.0", "the queued message cannot be read: %v", err))
	}
	defer r.Close()
	var ro []*smtp.RcptOptions
	if dsnOK {
		for i := range job.Rcpts {
			ro = append(ro, rcptOptions(job, i))
		}
	}
	rep, err := cn.c.SendPipelined(job.From, opts, job.Rcpts, ro, timedReader{cn, r}, job.Size, job.Size <= MaxChunk)
	if err != nil {
		cn.usable = false
		return delivery.All(job, delivery.FromError("", cn.host, err))
	}
	if rep.Mail != nil {
		cn.reset()
		return delivery.All(job, delivery.FromError("", cn.host, rep.Mail))
	}
	var accepted []int
	for i, rerr := range rep.Rcpts {
		if rerr != nil {
			results[i] = delivery.FromError(job.Rcpts[i], cn.host, rerr)
			continue
		}
		accepted = append(accepted, i)
	}
	if len(accepted) == 0 {
		cn.reset()
		return results
	}
	if rep.Data != nil {
		for _, i := range accepted {
			results[i] = delivery.FromError(job.Rcpts[i], cn.host, rep.Data)
		}
		cn.reset()
		return results
	}
	for _, i := range accepted {
		results[i] = cn.queued(job.Rcpts[i], dsnOK)
	}
	return results
}

// timedReader renews the connection's deadline as the message is read into
// it, so that a long upload is timed per write, not as a whole.
type timedReader struct {
	cn *Conn
	r  io.Reader
}

func (t timedReader) Read(p []byte) (int, error) {
	t.cn.nc.SetDeadline(time.Now().Add(t.cn.timeout))
	return t.r.Read(p)
}

// queued is the result of a recipient the server took the message for;
// dsn says the DSN request went along.
func (cn *Conn) queued(rcpt string, dsn bool) delivery.Result {
	return delivery.Result{Rcpt: rcpt, Code: 250, Status: "2.0.0", Text: "queued by " + cn.host,
		RemoteMTA: cn.host, FromRemote: true, DSNPassed: dsn}
}

func (cn *Conn) reset() {
	if err := cn.c.ResetTransaction(); err != nil {
		cn.usable = false
	}
}

// copyTimed copies the message, renewing the deadline as data goes.
func copyTimed(cn *Conn, w interface{ Write([]byte) (int, error) }, r interface{ Read([]byte) (int, error) }) (int64, error) {
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, rerr := r.Read(buf)
		if k > 0 {
			cn.nc.SetDeadline(time.Now().Add(cn.timeout))
			m, werr := w.Write(buf[:k])
			n += int64(m)
			if werr != nil {
				return n, werr
			}
		}
		if rerr != nil {
			if rerr.Error() == "EOF" {
				return n, nil
			}
			return n, rerr
		}
	}
}

func rcptOptions(job *delivery.Job, i int) *smtp.RcptOptions {
	ro := &smtp.RcptOptions{}
	if v, ok := job.RcptParam(i, "NOTIFY"); ok {
		for _, n := range strings.Split(strings.ToUpper(v), ",") {
			ro.Notify = append(ro.Notify, smtp.DSNNotify(n))
		}
	}
	if v, ok := job.RcptParam(i, "ORCPT"); ok {
		typ, addr, found := strings.Cut(v, ";")
		if found {
			ro.OriginalRecipientType = smtp.DSNAddressType(strings.ToUpper(typ))
			ro.OriginalRecipient = decodeXtext(addr)
		}
	}
	return ro
}

// decodeXtext decodes RFC 3461 xtext ("+2B" is "+").
func decodeXtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '+' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
