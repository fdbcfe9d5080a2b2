package session

import (
	"bytes"
	"context"
	"fmt"
	"strconv"

	"sync/atomic"

	"github.com/emersion/go-smtp"

	"github.com/ds2mb/ds2mb/smtpsvc/badmail"
	"github.com/ds2mb/ds2mb/smtpsvc/events"
	"github.com/ds2mb/ds2mb/smtpsvc/spool"
)

// Where the session fires the event types (REFERENCE.md §5.2):
//
//	OnSessionStart    the first HELO/EHLO (go-smtp makes the session then);
//	                  a sink's reply of 4xx/5xx refuses the HELO/EHLO
//	OnInboundCommand  every command before it is handled (HELO/EHLO: once
//	                  the reply lines are ready, which sinks may rewrite;
//	                  BDAT: not fired); a sink's reply answers the command
//	OnServerResponse  every reply before it is written; sinks may change it
//	OnMessageStart    MAIL, once the server accepts it; a reply refuses it
//	OnPerRecipient    RCPT, once the relay policy accepts it; a reply
//	                  refuses that recipient
//	OnBeforeData      DATA (for BDAT: when the message arrives); a reply
//	                  refuses the message
//	OnSessionEnd      when the connection ends
//	transport chain   OnArrival, OnPreCategorize, OnCategorize,
//	                  OnPostCategorize, OnTransportRouter, in that order,
//	                  once the message is on disk and before the 250; then
//	                  the message's status decides: deliver (committed,
//	                  with the sinks' changes), discard, or Badmail — the
//	                  client gets 250 in all three, as with IIS.

var sessionSeq atomic.Uint64

// evSession returns the session's face to sinks, made on first use.
func (s *session) evSession() *events.Session {
	if s.ev == nil {
		s.ev = &events.Session{ID: strconv.FormatUint(sessionSeq.Add(1), 10), Remote: s.ip, Values: map[string]any{}}
	}
	s.ev.HELO, s.ev.TLS, s.ev.AuthUser = s.helo, s.tls, s.authUser
	s.ev.MailFrom, s.ev.InTx, s.ev.Rcpts = s.from, s.inTx, s.rcpts
	return s.ev
}

// fire runs an event through the dispatcher and returns the reply a sink
// set, if any.
func (s *session) fire(ev *events.Event) *smtp.SMTPError {
	ev.Instance = s.be.vs.Instance
	if ev.Session == nil {
		ev.Session = s.evSession()
	}
	s.be.env.Events.Fire(context.Background(), ev)
	return replyOf(ev.Reply)
}

// replyOf turns a sink's reply into go-smtp's.
func replyOf(r *events.Reply) *smtp.SMTPError {
	if r == nil {
		return nil
	}
	e := &smtp.SMTPError{Code: r.Code, Message: r.Text, EnhancedCode: smtp.NoEnhancedCode}
	if r.Enhanced != "" {
		var a, b, c int
		if n, _ := fmt.Sscanf(r.Enhanced, "%d.%d.%d", &a, &b, &c); n == 3 {
			e.EnhancedCode = smtp.EnhancedCode{a, b, c}
		}
	} else if cls := r.Code / 100; cls == 2 || cls == 4 || cls == 5 {
		e.EnhancedCode = smtp.EnhancedCode{cls, 0, 0}
	}
	return e
}

// refused reports whether a sink's reply refuses (4xx or 5xx).
func refused(e *smtp.SMTPError) bool { return e != nil && e.Code >= 400 }

// hookEvents installs the go-smtp hooks the bindings need; none when the
// virtual server has no bindings for them, so that a server without sinks
// pays nothing.
func (be *backend) hookEvents(srv *smtp.Server) {
	d := be.env.Events
	sessionOf := func(c *smtp.Conn) *session {
		s, _ := c.Session().(*session)
		return s
	}
	if d.Has(events.InboundCommand) || d.Has(events.BeforeData) {
		srv.Command = func(c *smtp.Conn, verb, arg string) *smtp.SMTPError {
			s := sessionOf(c)
			if s == nil {
				return nil // before HELO/EHLO: go-smtp answers
			}
			if d.Has(events.InboundCommand) {
				if r := s.fire(&events.Event{Type: events.InboundCommand, Command: &events.Command{Verb: verb, Arg: arg}}); r != nil {
					return r
				}
			}
			if verb == "DATA" && s.inTx && len(s.rcpts) > 0 && d.Has(events.BeforeData) {
				s.beforeDataFired = true
				if r := s.fire(&events.Event{Type: events.BeforeData, Command: &events.Command{Verb: verb, Arg: arg}}); refused(r) {
					return r
				}
			}
			return nil
		}
	}
	if d.Has(events.InboundCommand) {
		srv.EHLOReply = func(c *smtp.Conn, lines []string) []string {
			s := sessionOf(c)
			if s == nil {
				return lines
			}
			s.helo = c.Hostname()
			ev := &events.Event{Type: events.InboundCommand, Command: &events.Command{Verb: "EHLO", Arg: s.helo, EHLO: lines}}
			s.fire(ev)
			return ev.Command.EHLO
		}
	}
	if d.Has(events.ServerResponse) {
		srv.Response = func(c *smtp.Conn, code int, ec smtp.EnhancedCode, text []string) (int, smtp.EnhancedCode, []string) {
			s := sessionOf(c)
			if s == nil {
				return code, ec, text
			}
			enh := ""
			if ec != smtp.NoEnhancedCode && ec != smtp.EnhancedCodeNotSet {
				enh = fmt.Sprintf("%d.%d.%d", ec[0], ec[1], ec[2])
			}
			ev := &events.Event{Type: events.ServerResponse, Response: &events.Response{Code: code, Enhanced: enh, Text: text}}
			s.fire(ev)
			r := ev.Response
			if r.Enhanced != enh {
				if e := replyOf(&events.Reply{Code: r.Code, Enhanced: r.Enhanced}); e != nil {
					ec = e.EnhancedCode
				}
			}
			return r.Code, ec, r.Text
		}
	}
}

// transport runs the transport chain on a message written to the spool
// but not committed. It returns the message to commit (msg itself, or a
// new one carrying the sinks' changes), or nil when the message is not to
// be queued (discarded or put in Badmail); the reply is then 250 anyway.
func (s *session) transport(msg *spool.Message, env *spool.Envelope) (*spool.Message, error) {
	m := events.NewMailMsg(env.From, append([]string(nil), env.To...), msg.Content)
	m.FromParams, m.ToParams = env.FromParams, append([]string(nil), env.ToParams...)
	m.Fields["clientipaddress"] = s.ip.String()
	m.Fields["arrivaltime"] = env.ReceivedAt.Format("2006-01-02T15:04:05.000Z07:00")
	m.Fields["queueid"] = msg.ID()
	s.be.env.Events.RunTransport(context.Background(), s.be.vs.Instance, s.evSession(), m)
	switch m.Status {
	case events.Discard:
		s.be.log.Info("message discarded by an event sink", "id", msg.ID(), "from", env.From, "reason", m.Reason)
		s.be.stats.Discarded.Add(1)
		return nil, nil
	case events.Badmail:
		data, err := m.Data()
		if err != nil {
			return nil, err
		}
		reason := "an event sink set the message status to Badmail"
		if m.Reason != "" {
			reason += ": " + m.Reason
		}
		if err := badmail.Write(s.be.vs.BadMailDir, badmail.Entry{ID: msg.ID(), Envelope: env, Reason: reason}, bytes.NewReader(data)); err != nil {
			return nil, err
		}
		s.be.log.Info("message put in Badmail by an event sink", "id", msg.ID(), "from", env.From, "reason", m.Reason)
		s.be.stats.Badmailed.Add(1)
		return nil, nil
	}
	if len(m.To) == 0 {
		s.be.log.Info("message discarded: event sinks removed every recipient", "id", msg.ID())
		s.be.stats.Discarded.Add(1)
		return nil, nil
	}
	envChanged := m.From != env.From || m.FromParams != env.FromParams || !equal(m.To, env.To) || !equal(m.ToParams, env.ToParams)
	if !m.Changed() && !envChanged {
		return msg, nil
	}
	data, err := m.Data()
	if err != nil {
		return nil, err
	}
	nenv := *env
	nenv.From, nenv.FromParams, nenv.To, nenv.ToParams = m.From, m.FromParams, m.To, m.ToParams
	nm, err := s.be.spool.Create(&nenv)
	if err != nil {
		return nil, err
	}
	if _, err := nm.Write(data); err != nil {
		nm.Abort()
		return nil, err
	}
	return nm, nil
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
