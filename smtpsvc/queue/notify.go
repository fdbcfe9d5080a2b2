package queue

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ds2mb/ds2mb/smtpsvc/badmail"
	"github.com/ds2mb/ds2mb/smtpsvc/delivery"
	"github.com/ds2mb/ds2mb/smtpsvc/dsn"
	"github.com/ds2mb/ds2mb/smtpsvc/spool"
)

// Kinds of mail the server writes itself (spool.Envelope.Kind).
const (
	kindDSN           = "dsn"
	kindBadmailNotice = "badmail-notice"
)

// notifyWants reports whether a recipient's NOTIFY parameter asks for a
// notification of this kind ("FAILURE", "DELAY", "SUCCESS"). Without
// NOTIFY, failures and delays are reported (RFC 3461 §4.1 leaves the
// default to the MTA; Exchange reported both).
func notifyWants(params, what string) bool {
	j := delivery.Job{RcptParams: []string{params}}
	v, ok := j.RcptParam(0, "NOTIFY")
	if !ok {
		return what != "SUCCESS"
	}
	for _, n := range strings.Split(strings.ToUpper(v), ",") {
		if n == what {
			return true
		}
	}
	return false
}

// notify writes the DSNs of one settlement: failures, delays and
// successes, each to the envelope sender for the recipients that asked for
// it. A message with a null reverse path gets none: its failures go to
// Badmail.
func (m *Manager) notify(srv *server, msg *message, fails, delays, oks []int, now time.Time) {
	env := msg.stored.Envelope
	if env.From == "" {
		if len(fails) > 0 {
			var b strings.Builder
			b.WriteString("undeliverable, and a message with a null reverse path gets no DSN:")
			for _, i := range fails {
				fmt.Fprintf(&b, " <%s> %s;", msg.state.Rcpts[i].Addr, msg.state.Rcpts[i].Last)
			}
			m.badmail(srv, msg, env, strings.TrimSuffix(b.String(), ";"))
		}
		return
	}
	param := func(i int) string {
		if i < len(env.ToParams) {
			return env.ToParams[i]
		}
		return ""
	}
	pick := func(idx []int, what string) []int {
		var out []int
		for _, i := range idx {
			if notifyWants(param(i), what) {
				out = append(out, i)
			}
		}
		return out
	}
	if f := pick(fails, "FAILURE"); len(f) > 0 {
		m.report(srv, msg, f, "failed", now)
	}
	if d := pick(delays, "DELAY"); len(d) > 0 {
		m.report(srv, msg, d, "delayed", now)
	}
	// A next hop that took the DSN parameters reports success itself
	// (RFC 3461 §6.2.2); "relayed" is for one that did not.
	var ours []int
	for _, i := range oks {
		if last := msg.state.Rcpts[i].Last; last == nil || !last.DSNPassed {
			ours = append(ours, i)
		}
	}
	if s := pick(ours, "SUCCESS"); len(s) > 0 {
		m.report(srv, msg, s, "", now)
	}
}

// report writes one DSN about some recipients of a message and queues it.
// If it cannot be written or queued, the message goes to Badmail.
func (m *Manager) report(srv *server, msg *message, idx []int, action string, now time.Time) {
	m.mu.Lock()
	vs := srv.vs
	m.mu.Unlock()
	env := msg.stored.Envelope
	r := &dsn.Report{ReportingMTA: vs.FQDN, From: vs.Delivery.Postmaster, To: env.From, ArrivalDate: env.ReceivedAt, Now: now}
	j := delivery.Job{Params: env.FromParams}
	r.EnvelopeID, _ = j.Param("ENVID")
	r.Return, _ = j.Param("RET")
	for _, i := range idx {
		rs := msg.state.Rcpts[i]
		rec := dsn.Recipient{Address: rs.Addr, Action: action, LastAttempt: now}
		jr := delivery.Job{RcptParams: env.ToParams}
		rec.Original, _ = jr.RcptParam(i, "ORCPT")
		if rs.Last != nil {
			rec.Status = rs.Last.Status
			if rs.Last.RemoteMTA != "" {
				rec.RemoteMTA = hostOnly(rs.Last.RemoteMTA)
			}
			if rs.Last.FromRemote || action == "delayed" || action == "failed" {
				rec.Diagnostic = fmt.Sprintf("%d %s %s", rs.Last.Code, rs.Last.Status, rs.Last.Text)
			}
		}
		switch {
		case action == "delayed":
			rec.WillRetryUntil = env.ReceivedAt.Add(vs.Delivery.RemoteExpire)
			if msg.local[i] {
				rec.WillRetryUntil = env.ReceivedAt.Add(vs.Delivery.LocalExpire)
			}
			if rec.Status == "" || rec.Status[0] != '4' {
				rec.Status = "4.0.0"
			}
		case action == "failed":
			if rec.Status == "" || rec.Status[0] == '2' {
				rec.Status = "5.0.0"
			}
		default: // success
			rec.Action = "relayed"
			if msg.local[i] {
				rec.Action = "delivered"
			}
			rec.Status = "2.0.0"
		}
		r.Recipients = append(r.Recipients, rec)
	}
	orig, err := msg.stored.Open()
	if err == nil {
		defer orig.Close()
		r.Original = orig
	}
	data, err := dsn.Build(r)
	if err != nil {
		m.badmail(srv, msg, env, "the delivery status notification could not be written: "+err.Error())
		return
	}
	to := []string{env.From}
	if action == "failed" && vs.Delivery.SendNdrTo != "" && !strings.EqualFold(vs.Delivery.SendNdrTo, env.From) {
		to = append(to, vs.Delivery.SendNdrTo)
	}
	denv := &spool.Envelope{From: "", To: to, Client: "ds2mb dsn", Kind: kindDSN}
	if eightBit(data) {
		denv.FromParams = "BODY=8BITMIME" // the returned original has 8-bit text
	}
	if _, err := m.Submit(msg.instance, denv, bytes.NewReader(data)); err != nil {
		m.badmail(srv, msg, env, "the delivery status notification could not be queued: "+err.Error())
		return
	}
	m.stats.DSNs.Add(1)
}

// eightBit reports whether data has a byte above 127.
func eightBit(data []byte) bool {
	for _, b := range data {
		if b >= 0x80 {
			return true
		}
	}
	return false
}

// hostOnly is the host name of a RemoteMTA ("mx.example.com [127.0.0.2]").
func hostOnly(remote string) string {
	h, _, _ := strings.Cut(remote, " ")
	return h
}

// badmail puts a message in the virtual server's BadMailDirectory with the
// reason and sends SendBadTo a notice; it reports whether the message is
// kept there. Without a BadMailDirectory the message is lost, which the
// log says loudly.
func (m *Manager) badmail(srv *server, msg *message, env *spool.Envelope, reason string) bool {
	m.mu.Lock()
	vs := srv.vs
	m.mu.Unlock()
	dir := vs.BadMailDir
	if dir == "" {
		m.log.Error("message undeliverable and no BadMailDirectory is set: it is dropped", "vs", vs.Instance, "id", msg.id, "reason", reason)
		return true
	}
	f, err := os.Open(msg.path)
	if err != nil {
		m.log.Error("Badmail: the message cannot be read", "id", msg.id, "err", err)
		return false
	}
	defer f.Close()
	if err := badmail.Write(dir, badmail.Entry{ID: msg.id, Envelope: env, Reason: reason, At: m.now()}, f); err != nil {
		m.log.Error("Badmail: the message cannot be stored", "id", msg.id, "dir", dir, "err", err)
		return false
	}
	m.stats.Badmail.Add(1)
	m.log.Warn("message put in Badmail", "vs", vs.Instance, "id", msg.id, "reason", reason)
	if to := vs.Delivery.SendBadTo; to != "" && env.Kind != kindBadmailNotice {
		text := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: Message %s put in Badmail\r\nDate: %s\r\nAuto-Submitted: auto-generated\r\n"+
			"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"+
			"The message %s (from <%s>) could neither be delivered nor returned to its sender.\r\n"+
			"It is kept in %s.\r\n\r\nReason: %s\r\n",
			vs.Delivery.Postmaster, to, msg.id, m.now().Format(time.RFC1123Z), msg.id, env.From, dir, reason)
		nenv := &spool.Envelope{From: "", To: []string{to}, Client: "ds2mb badmail", Kind: kindBadmailNotice}
		if _, err := m.Submit(msg.instance, nenv, strings.NewReader(text)); err != nil {
			m.log.Error("Badmail notice not queued", "to", to, "err", err)
		}
	}
	return true
}
