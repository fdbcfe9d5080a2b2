// Package delivery holds what the queue manager and the delivery agents
// (local store, LMTP, Drop folder, remote SMTP) share: a Job, the message of
// one attempt for some of its recipients, and a Result per recipient, read
// as an SMTP reply with an enhanced status code (RFC 3463).
//
// An agent never decides whether a message is retried, bounced or kept:
// it reports what happened to each recipient, and the queue manager acts on
// the reply class (2xx delivered, 4xx try again later, 5xx failed for good).
package delivery

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-smtp"
)

// Job is one delivery attempt of one message to some of its recipients.
type Job struct {
	ID   string // queue id of the message
	From string // envelope sender as it leaves this server; "" = null reverse path

	// Rcpts are the recipients to deliver to in this attempt, in RCPT
	// order; RcptParams, when present, their ESMTP parameters in SMTP form
	// ("NOTIFY=FAILURE ORCPT=rfc822;a@example.com").
	Rcpts      []string
	RcptParams []string

	// Params are the MAIL parameters the message was received with
	// ("BODY=8BITMIME RET=HDRS ENVID=x SMTPUTF8"), in SMTP form.
	Params string

	// Size is the length of the message in bytes (as Open yields it).
	Size int64
	// Open returns the message, headers and body, CRLF line ends, from its
	// first byte. Each call returns a new reader; the caller closes it.
	Open func() (io.ReadCloser, error)
}

// Param returns the value of one MAIL parameter ("BODY", "RET", "ENVID"),
// case-insensitively; ok is false when it is absent. A parameter without a
// value ("SMTPUTF8") has value "".
func (j *Job) Param(name string) (value string, ok bool) {
	return param(j.Params, name)
}

// RcptParam returns the value of one RCPT parameter of recipient i.
func (j *Job) RcptParam(i int, name string) (value string, ok bool) {
	if i >= len(j.RcptParams) {
		return "", false
	}
	return param(j.RcptParams[i], name)
}

func param(params, name string) (string, bool) {
	for _, f := range strings.Fields(params) {
		k, v, _ := strings.Cut(f, "=")
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// Result is what happened to one recipient of a Job.
type Result struct {
	Rcpt string
	// Code is the SMTP reply code (250, 451, 550, …); agents that are not
	// SMTP (Maildir, Drop) answer in SMTP's terms too.
	Code int
	// Status is the enhanced status code "x.y.z" (RFC 3463).
	Status string
	// Text is the diagnostic: the remote reply text, or the local error.
	Text string
	// RemoteMTA names the host that answered ("mx1.example.com [127.0.0.2]");
	// "" when the recipient was handled here.
	RemoteMTA string
	// FromRemote: Code and Text are the remote host's own reply (a DSN
	// quotes them as "smtp; 550 5.1.1 …"); false when this server made the
	// result up (a lookup or connection failure, a local write error).
	FromRemote bool
	// DSNPassed: the next hop offered DSN (RFC 3461) and took the
	// recipient's NOTIFY and ORCPT, so it reports success itself and this
	// server does not send a "relayed" notification.
	DSNPassed bool `json:",omitempty"`
}

// OK reports a delivered recipient (2xx).
func (r Result) OK() bool { return r.Code >= 200 && r.Code < 300 }

// Temporary reports a failure worth retrying (4xx, or no reply at all).
func (r Result) Temporary() bool { return !r.OK() && !r.Permanent() }

// Permanent reports a failure for good (5xx).
func (r Result) Permanent() bool { return r.Code >= 500 && r.Code < 600 }

// String is the result as an SMTP reply line: "550 5.1.1 No such user".
func (r Result) String() string {
	s := fmt.Sprintf("%d", r.Code)
	if r.Status != "" {
		s += " " + r.Status
	}
	if r.Text != "" {
		s += " " + r.Text
	}
	return s
}

// Delivered is the result of a successful delivery.
func Delivered(rcpt, text string) Result {
	return Result{Rcpt: rcpt, Code: 250, Status: "2.0.0", Text: text}
}

// TempFail is a temporary failure this server made up (status 4.x.x).
func TempFail(rcpt, status, format string, args ...any) Result {
	return Result{Rcpt: rcpt, Code: 451, Status: status, Text: fmt.Sprintf(format, args...)}
}

// PermFail is a permanent failure this server made up (status 5.x.x).
func PermFail(rcpt, status, format string, args ...any) Result {
	return Result{Rcpt: rcpt, Code: 550, Status: status, Text: fmt.Sprintf(format, args...)}
}

// All returns one copy of r for each recipient of the job.
func All(j *Job, r Result) []Result {
	out := make([]Result, len(j.Rcpts))
	for i, rc := range j.Rcpts {
		out[i] = r
		out[i].Rcpt = rc
	}
	return out
}

// FromError reads an error as a result for rcpt: an *smtp.SMTPError is the
// remote's reply (its code and enhanced code); anything else (a broken
// connection, a timeout, a local I/O error) is a temporary failure with
// status 4.4.2 ("bad connection") unless the error says otherwise.
func FromError(rcpt, remote string, err error) Result {
	if err == nil {
		return Result{Rcpt: rcpt, Code: 250, Status: "2.0.0", RemoteMTA: remote, FromRemote: remote != ""}
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		r := Result{Rcpt: rcpt, Code: se.Code, Text: se.Message, RemoteMTA: remote, FromRemote: true}
		if se.EnhancedCode != (smtp.EnhancedCode{}) && se.EnhancedCode != smtp.NoEnhancedCode {
			r.Status = fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
		} else {
			r.Status = ClassStatus(se.Code)
		}
		if r.Code < 200 || r.Code >= 600 {
			r.Code, r.Status = 451, "4.5.0"
		}
		return r
	}
	return Result{Rcpt: rcpt, Code: 451, Status: "4.4.2", Text: err.Error(), RemoteMTA: remote}
}

// ClassStatus is the enhanced status code a reply code implies when the
// reply carried none: 2.0.0, 4.0.0 or 5.0.0.
func ClassStatus(code int) string {
	switch {
	case code >= 200 && code < 300:
		return "2.0.0"
	case code >= 500 && code < 600:
		return "5.0.0"
	}
	return "4.0.0"
}
