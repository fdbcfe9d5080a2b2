package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/ds2mb/ds2mb/smtpsvc/delivery"
)

// DefaultLMTPTimeout is the per-command deadline of LMTP when
// LMTP.Timeout is 0 (RFC 5321 §4.5.3.2's five minutes).
const DefaultLMTPTimeout = 5 * time.Minute

// LMTP delivers to a local LMTP server (RFC 2033): one connection and one
// transaction per job, LHLO, MAIL, a RCPT per recipient, DATA, QUIT.
//
// The MAIL command carries SIZE, and SMTPUTF8 when the job has it and the
// server advertises it (BODY=8BITMIME is added by the client when the
// server advertises 8BITMIME). DSN parameters are not passed on: the LMTP
// hop is final delivery and this server's queue already reports on it.
//
// Each recipient's result is the server's own reply (FromRemote true,
// RemoteMTA = Addr): its RCPT refusal, or the per-recipient reply after
// DATA, or the reply to MAIL or DATA for all the recipients that reached
// it. A server that cannot be reached or greets or answers LHLO with an
// error gives every recipient 451 4.4.1; a connection lost in the middle
// gives 451 4.4.2 to those without a final reply yet. The message is
// never ended (final ".") unless it was read whole from the spool.
type LMTP struct {
	// Addr is the server: "unix:/path/to/socket" or "host:port" (TCP).
	Addr string
	// HeloName is the name sent with LHLO; "" = this machine's host name.
	HeloName string
	// Timeout bounds connecting and each command, and is the inactivity
	// limit while the message is sent; 0 = DefaultLMTPTimeout.
	Timeout time.Duration
}

// network splits Addr into a network and an address for net.Dial.
func (l *LMTP) network() (network, addr string) {
	if p, ok := strings.CutPrefix(l.Addr, "unix:"); ok {
		return "unix", p
	}
	return "tcp", l.Addr
}

// Deliver sends the job to the LMTP server and returns one result per
// recipient, in order.
func (l *LMTP) Deliver(ctx context.Context, job *delivery.Job) []delivery.Result {
	res := make([]delivery.Result, len(job.Rcpts))
	if len(job.Rcpts) == 0 {
		return res
	}
	remote := l.Addr
	all := func(r delivery.Result) []delivery.Result {
		r.RemoteMTA = remote
		return delivery.All(job, r)
	}
	network, addr := l.network()
	if addr == "" {
		return all(delivery.TempFail("", "4.3.5", "no LMTP server is configured"))
	}
	if badEnvelope(job.From) {
		return all(delivery.PermFail("", "5.1.7", "the sender %q cannot be sent in MAIL FROM", job.From))
	}
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = DefaultLMTPTimeout
	}
	helo := l.HeloName
	if helo == "" {
		helo, _ = os.Hostname()
		if helo == "" {
			helo = "localhost"
		}
	}

	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return all(cancelled("", cerr))
		}
		return all(delivery.TempFail("", "4.4.1", "cannot connect to the LMTP server %s: %v", remote, err))
	}
	// ctx ending closes the connection, which ends whatever waits on it.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	c.CommandTimeout, c.SubmissionTimeout = timeout, timeout

	// fromErr reads an error as a result, cancellation first.
	fromErr := func(rcpt string, err error) delivery.Result {
		if cerr := ctx.Err(); cerr != nil {
			r := cancelled(rcpt, cerr)
			r.RemoteMTA = remote
			return r
		}
		return delivery.FromError(rcpt, remote, err)
	}

	if err := c.Hello(helo); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return all(cancelled("", cerr))
		}
		return all(delivery.TempFail("", "4.4.1", "LMTP server %s: no session: %v", remote, err))
	}
	opts := &smtp.MailOptions{Size: job.Size}
	if _, ok := job.Param("SMTPUTF8"); ok {
		opts.UTF8, _ = c.Extension("SMTPUTF8")
	}
	if opts.Size < 0 {
		opts.Size = 0
	}
	if err := c.Mail(job.From, opts); err != nil {
		for i, rc := range job.Rcpts {
			res[i] = fromErr(rc, err)
		}
		return res
	}

	// RCPT, once per distinct recipient: the client keys the replies to
	// DATA by address, so a repeated one follows its first.
	first := map[string]int{}
	dup := map[int]int{}
	var accepted []int
	for i, rc := range job.Rcpts {
		if f, ok := first[rc]; ok {
			dup[i] = f
			continue
		}
		first[rc] = i
		if badEnvelope(rc) {
			res[i] = delivery.PermFail(rc, "5.1.3", "the recipient %q cannot be sent in RCPT TO", rc)
			continue
		}
		if err := c.Rcpt(rc, nil); err != nil {
			res[i] = fromErr(rc, err)
			continue
		}
		accepted = append(accepted, i)
	}
	defer func() {
		for i, f := range dup {
			res[i] = res[f]
			res[i].Rcpt = job.Rcpts[i]
		}
	}()
	if len(accepted) == 0 {
		c.Quit()
		return res
	}
	failAccepted := func(mk func(rcpt string) delivery.Result) []delivery.Result {
		for _, i := range accepted {
			res[i] = mk(job.Rcpts[i])
		}
		return res
	}

	msg, err := openMessage(job)
	if err != nil {
		c.Reset()
		c.Quit()
		return failAccepted(func(rc string) delivery.Result {
			r := delivery.TempFail(rc, "4.3.0", "cannot read the message: %v", err)
			r.RemoteMTA = remote
			return r
		})
	}
	defer msg.Close()
	w, err := c.Data()
	if err != nil {
		return failAccepted(func(rc string) delivery.Result { return fromErr(rc, err) })
	}
	// The client sets no deadline while the message is written: each
	// write gets Timeout, so a server that stops reading cannot hang us.
	dw := deadlineWriter{w: w, conn: conn, timeout: timeout}
	if _, err := io.Copy(dw, ctxReader{ctx, msg}); err != nil {
		// Do not end the message: a truncated one must not be delivered.
		conn.Close()
		var werr writeError
		if errors.As(err, &werr) {
			return failAccepted(func(rc string) delivery.Result { return fromErr(rc, werr.err) })
		}
		return failAccepted(func(rc string) delivery.Result {
			if cerr := ctx.Err(); cerr != nil {
				r := cancelled(rc, cerr)
				r.RemoteMTA = remote
				return r
			}
			r := delivery.TempFail(rc, "4.3.0", "cannot read the message: %v", err)
			r.RemoteMTA = remote
			return r
		})
	}
	conn.SetDeadline(time.Now().Add(timeout)) // for the final "."
	replies, err := w.CloseWithLMTPResponse()
	var perRcpt smtp.LMTPDataError
	errors.As(err, &perRcpt)
	for _, i := range accepted {
		rc := job.Rcpts[i]
		switch {
		case replies[rc] != nil:
			res[i] = lmtpDelivered(rc, remote, replies[rc].StatusText)
		case perRcpt[rc] != nil:
			res[i] = fromErr(rc, perRcpt[rc])
		default:
			// Not fromErr: the joined error holds other recipients' replies.
			res[i] = fromErr(rc, transportErr(err))
		}
	}
	c.Quit()
	return res
}

// lmtpDelivered is the result of a 2xx reply after DATA; the reply's
// enhanced code, when it has one, is the status.
func lmtpDelivered(rcpt, remote, text string) delivery.Result {
	r := delivery.Result{Rcpt: rcpt, Code: 250, Status: "2.0.0", Text: text, RemoteMTA: remote, FromRemote: true}
	if code, rest, ok := strings.Cut(text, " "); ok && isEnhancedCode(code, '2') {
		r.Status, r.Text = code, rest
	} else if isEnhancedCode(text, '2') {
		r.Status, r.Text = text, ""
	}
	return r
}

// isEnhancedCode reports whether s is an enhanced status code "c.x.y"
// of class c.
func isEnhancedCode(s string, class byte) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || parts[0] != string(class) {
		return false
	}
	for _, p := range parts[1:] {
		if p == "" || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

// transportErr is the error that cut the replies after DATA short, out of
// what CloseWithLMTPResponse returned (possibly joined with the
// per-recipient replies); never an *smtp.SMTPError.
func transportErr(err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		if _, lmtp := err.(smtp.LMTPDataError); !lmtp {
			for _, e := range j.Unwrap() {
				if _, lmtp := e.(smtp.LMTPDataError); !lmtp {
					return transportErr(e)
				}
			}
		}
	} else if err != nil {
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			return err
		}
	}
	return errors.New("the LMTP server sent no reply for this recipient")
}

// deadlineWriter renews conn's deadline before each write to w and marks
// write errors, to tell them from errors reading the message.
type deadlineWriter struct {
	w       io.Writer
	conn    net.Conn
	timeout time.Duration
}

// writeError is an error writing to the server.
type writeError struct{ err error }

func (e writeError) Error() string { return fmt.Sprintf("sending the message: %v", e.err) }
func (e writeError) Unwrap() error { return e.err }

func (d deadlineWriter) Write(p []byte) (int, error) {
	d.conn.SetDeadline(time.Now().Add(d.timeout))
	n, err := d.w.Write(p)
	if err != nil {
		err = writeError{err}
	}
	return n, err
}
