package smtp

// ds2mb patch: a whole transaction with RFC 2920 pipelining, which
// upstream's client has no way to do (it writes one command and waits for
// its reply before the next).

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// TransactionReplies are the server's answers to one pipelined
// transaction.
type TransactionReplies struct {
	// Mail is the reply to MAIL FROM; nil = accepted. When it is not nil
	// the server refused the transaction and Rcpts and Data say so too.
	Mail error
	// Rcpts holds the reply to each RCPT TO, in order; nil = accepted.
	Rcpts []error
	// Data is the reply to DATA (or BDAT) and to the end of the message;
	// nil = the message was accepted for every recipient that was.
	Data error
	// Chunked reports that the message went as one BDAT LAST chunk.
	Chunked bool
}

// ErrNoRecipient is TransactionReplies.Data when no RCPT TO was accepted,
// so that no message was sent.
var ErrNoRecipient = errors.New("smtp: no recipient was accepted")

// SupportsPipelining reports whether the server offers PIPELINING, which
// SendPipelined needs.
func (c *Client) SupportsPipelining() bool {
	if err := c.hello(); err != nil {
		return false
	}
	_, ok := c.ext["PIPELINING"]
	return ok
}

// SendPipelined runs one transaction with as few round trips as the server
// allows (RFC 2920): MAIL FROM, every RCPT TO and DATA go in one write and
// their replies are read in order; the message follows when DATA gets 354.
// When chunk is true and the server also offers CHUNKING, the message goes
// in that same write as one "BDAT size LAST" chunk (RFC 3030), so the
// whole transaction is one write and one wait; size must then be exactly
// the number of bytes body yields.
//
// The server must offer PIPELINING (SupportsPipelining). The replies come
// back in TransactionReplies, each an *SMTPError when the server refused;
// the error returned is a failure of the session itself (a broken or timed
// out connection, a body shorter than size), after which the client must
// not be used for another transaction.
func (c *Client) SendPipelined(from string, opts *MailOptions, to []string, rcptOpts []*RcptOptions, body io.Reader, size int64, chunk bool) (*TransactionReplies, error) {
	if c.lmtp {
		return nil, errors.New("smtp: SendPipelined reads one reply to the message, not LMTP's one per recipient")
	}
	if !c.SupportsPipelining() {
		return nil, errors.New("smtp: server does not offer PIPELINING")
	}
	if len(to) == 0 {
		return nil, errors.New("smtp: no recipients")
	}
	if len(rcptOpts) != 0 && len(rcptOpts) != len(to) {
		return nil, errors.New("smtp: one RcptOptions per recipient")
	}
	_, canChunk := c.ext["CHUNKING"]
	chunk = chunk && canChunk
	lines := make([]string, 0, len(to)+2)
	line, err := c.mailCommand(from, opts)
	if err != nil {
		return nil, err
	}
	lines = append(lines, line)
	for i, rc := range to {
		var ro *RcptOptions
		if len(rcptOpts) != 0 {
			ro = rcptOpts[i]
		}
		line, err := c.rcptCommand(rc, ro)
		if err != nil {
			return nil, err
		}
		lines = append(lines, line)
	}
	if chunk {
		lines = append(lines, fmt.Sprintf("BDAT %d LAST", size))
	} else {
		lines = append(lines, "DATA")
	}

	c.conn.SetDeadline(time.Now().Add(c.CommandTimeout))
	defer c.conn.SetDeadline(time.Time{})
	w := c.text.W
	for _, l := range lines {
		if _, err := io.WriteString(w, l); err != nil {
			return nil, err
		}
		if _, err := w.WriteString("\r\n"); err != nil {
			return nil, err
		}
	}
	if chunk {
		n, err := io.CopyN(w, body, size)
		if err != nil {
			if err == io.EOF {
				err = fmt.Errorf("smtp: message is %d bytes, not %d", n, size)
			}
			return nil, err
		}
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}

	rep := &TransactionReplies{Rcpts: make([]error, len(to)), Chunked: chunk}
	// reply reads one reply; a refusal is an *SMTPError, anything else
	// ends the session.
	reply := func(expect int) (error, error) {
		_, _, err := c.readResponse(expect)
		var se *SMTPError
		if err != nil && !errors.As(err, &se) {
			return nil, err
		}
		return err, nil
	}
	if rep.Mail, err = reply(250); err != nil {
		return nil, err
	}
	c.rcpts = nil
	for i, rc := range to {
		if rep.Rcpts[i], err = reply(25); err != nil {
			return nil, err
		}
		if rep.Rcpts[i] == nil && rep.Mail == nil {
			c.rcpts = append(c.rcpts, rc)
		}
	}
	if chunk {
		c.conn.SetDeadline(time.Now().Add(c.SubmissionTimeout))
		if rep.Data, err = reply(250); err != nil {
			return nil, err
		}
		if rep.Data == nil && len(c.rcpts) == 0 {
			// A server that took a chunk with no recipient.
			rep.Data = ErrNoRecipient
		}
		return rep, nil
	}
	if rep.Data, err = reply(354); err != nil {
		return nil, err
	}
	if rep.Data != nil {
		return rep, nil
	}
	if len(c.rcpts) == 0 {
		// RFC 2920 §3.1: a server that accepted DATA although it refused
		// every recipient gets an empty message, whose reply says nothing.
		if _, err := w.WriteString(".\r\n"); err != nil {
			return nil, err
		}
		if err := w.Flush(); err != nil {
			return nil, err
		}
		if _, err := reply(250); err != nil {
			return nil, err
		}
		rep.Data = ErrNoRecipient
		return rep, nil
	}
	dw := c.text.DotWriter()
	if _, err := io.Copy(dw, body); err != nil {
		return nil, err
	}
	if err := dw.Close(); err != nil {
		return nil, err
	}
	c.conn.SetDeadline(time.Now().Add(c.SubmissionTimeout))
	if rep.Data, err = reply(250); err != nil {
		return nil, err
	}
	return rep, nil
}

// ResetTransaction sends RSET and keeps the session's greeting (ds2mb
// patch): Reset forgets it, so that the next command says EHLO again, a
// round trip a client that reuses its connection does not need.
func (c *Client) ResetTransaction() error {
	if err := c.Reset(); err != nil {
		return err
	}
	c.didHello = true // Reset said EHLO first if needed, and it succeeded
	return nil
}
