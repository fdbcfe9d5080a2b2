// Package sinks holds the built-in event sink classes of the SMTP worker:
// Go sinks that a binding selects by its SinkClass value, configured by
// its SinkProperties (REFERENCE.md §5). Register adds them to a Registry.
//
// Every class refuses a binding whose properties it cannot use, naming the
// property: a missing required one, a bad value, or a property it does
// not know (a typo would otherwise be ignored silently). The dispatcher's
// own property Timeout is allowed on every binding. Property names are
// case-insensitive.
//
// # ds2mb.Disclaimer
//
// Events: OnArrival, OnPreCategorize, OnCategorize, OnPostCategorize,
// OnTransportRouter, StoreDriver. Appends a disclaimer to the message
// body, as Exchange's CDO disclaimer sample did (KB 317680).
//
//	Text       plain text for text/plain parts; "\n" (backslash, n)
//	           stands for a line break. Required unless HTML is given;
//	           with HTML alone, text/plain parts get nothing.
//	HTML       HTML inserted in text/html parts before </body> (else at
//	           the end); default: Text, escaped, in a <p>.
//	Separator  a line written between the body and Text (e.g. "-- ");
//	           default: none (a blank line only).
//
// Where it goes: a single text/plain or text/html body; both parts of a
// multipart/alternative (and the HTML root of a multipart/related in it);
// the first body part of a multipart/mixed or multipart/related when that
// part is text or an alternative and not an attachment. The part is
// decoded (7bit, 8bit, binary, quoted-printable, base64), the disclaimer
// added, and the part encoded again in its encoding; everything else in
// the message stays byte for byte as it was. A non-ASCII Text turns a
// us-ascii part into utf-8 (and a 7bit part, or an 8bit one in mail not
// sent with BODY=8BITMIME, into quoted-printable); in HTML parts that are
// not utf-8, non-ASCII characters are written as character references.
// A part in a charset that cannot hold the text is left alone (logged).
//
// It leaves alone mail that is signed or encrypted (multipart/signed,
// multipart/encrypted, application/pkcs7-mime and x-pkcs7-mime,
// application/pgp-encrypted, and inline PGP: a body holding
// "-----BEGIN PGP SIGNED MESSAGE-----" or "-----BEGIN PGP MESSAGE-----"),
// and reports (multipart/report: DSNs and MDNs) and other structures. A
// message it changes gets the header field "X-DS2MB-Disclaimer: added"
// at the top; a message carrying that field (from any binding, at any
// event, or from another ds2mb server) is not changed again.
//
// # ds2mb.HeaderStamp
//
// Events: the transport chain and StoreDriver. Adds a header field at the
// top of the header section.
//
//	Name   the field name (RFC 5322 ftext: printable ASCII but ':'); required.
//	Value  the field body; required; no CR or LF (header injection). It
//	       may hold {instance} (virtual server number), {from} (envelope
//	       sender, "<>" for the null one), {rcpts} (number of envelope
//	       recipients), {client} (client IP address, "" when unknown) and
//	       {date} (RFC 5322 date of the firing).
//
// # ds2mb.RecipientRewrite
//
// Events: the transport chain. Rewrites envelope recipients (ev.Msg.To);
// the header fields (To, Cc) are not changed. Recipients that become equal
// (case-insensitively) are kept once, with the RCPT parameters of the
// first; ToParams stays aligned with To. At StoreDriver the queue ignores
// envelope changes, so the class does not bind there.
//
//	From  the recipients to rewrite: "*@old.example" (any local part, the
//	      domain case-insensitive) or an exact address; required.
//	To    the replacement: "*@new.example" keeps the local part, an exact
//	      address replaces the whole address; required.
//
// # ds2mb.DNSBL
//
// Events: OnSessionStart, OnInboundCommand. Refuses clients listed in DNS
// block lists. The client's address is looked up in each zone the usual
// way (IPv4 reversed, "2.0.0.127.zone"; IPv6 in reversed nibbles); an A
// record in 127.0.0.0/8 lists it, but 127.255.255.0/24, which list
// operators answer for refused queries, does not.
//
// At OnSessionStart the lookups start in the background and their
// verdicts are kept in the session: Session.Values["ds2mb.DNSBL"] holds a
// map[string]*Verdict by zone, shared by every DNSBL binding of the
// session, and no reply is set (a reply there would refuse the EHLO). At
// OnInboundCommand for a verb of Verbs it waits for the verdicts (looking
// up first if no SessionStart binding did) and, when the client is
// listed, sets ev.Reply and answers Stop. The recommended bindings are
// one at OnSessionStart and one at OnInboundCommand, both with an empty
// rule; a rule "RCPT TO=*@example.com" at OnInboundCommand checks only
// mail to those recipients (it matches the RCPT command given). A lookup that
// fails (SERVFAIL, timeout) counts as not listed and is logged.
//
//	Zones          comma-separated DNS zones ("zen.example.org"); required.
//	Message        the reply, "CODE X.Y.Z text", {ip} and {zone} replaced;
//	               default "554 5.7.1 Service unavailable; client [{ip}]
//	               blocked using {zone}".
//	Verbs          comma-separated commands refused for a listed client;
//	               default "RCPT".
//	LookupTimeout  how long the lookups of a session may take (a Go
//	               duration); default 2s.
//
// # ds2mb.EventLog
//
// Events: any. Logs one structured line per event through the logger:
// event, instance, session ID, remote address, HELO name, command verb
// and argument (an AUTH argument is not logged), reply code of
// OnServerResponse, recipient of OnPerRecipient, envelope sender and
// recipient count and status of a message, and the record of MsgTrackLog.
//
//	Level  debug, info or warn; default info.
//
// # ds2mb.CustomVerb
//
// Events: OnInboundCommand. A custom SMTP verb in the style of Exchange's
// X-LINK2STATE (REFERENCE.md §6): it is advertised in the EHLO reply and
// answered with a fixed reply; the number of times a session used it is
// kept in Session.Values["ds2mb.CustomVerb "+Verb] (an int).
//
//	Verb   the verb (letters, digits, '-'); default X-LINK2STATE.
//	Reply  the answer, "CODE X.Y.Z text" or "CODE text"; default
//	       "250 2.0.0 <Verb> OK".
package sinks

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/ds2mb/ds2mb/smtpsvc/events"
)

// Options hold what the sinks need from the process.
type Options struct {
	// Logger receives the EventLog lines and the sinks' own notes (failed
	// DNSBL lookups); nil = slog.Default().
	Logger *slog.Logger
	// DNSServers are the resolvers the DNSBL sink asks, "host:port", in
	// turn; empty = the nameservers of /etc/resolv.conf (127.0.0.1:53 when
	// it has none).
	DNSServers []string
	// Now is the clock of HeaderStamp's {date}; nil = time.Now.
	Now func() time.Time
}

// Register adds the built-in sink classes to r.
func Register(r *events.Registry, o Options) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if len(o.DNSServers) == 0 {
		o.DNSServers = systemServers("/etc/resolv.conf")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	for _, c := range []events.Class{
		disclaimerClass(o), headerStampClass(o), recipientRewriteClass(),
		dnsblClass(o), eventLogClass(o), customVerbClass(),
	} {
		c.New = checked(c, c.New)
		r.Register(c)
	}
}

// transport is where the content sinks bind: the transport chain and
// local delivery.
var transport = append(append([]events.Type(nil), events.TransportChain...), events.StoreDriver)

// contentSink is a sink of message content: it does nothing on events
// without a message, and gets the content loaded.
type contentSink func(ev *events.Event, data []byte) error

// Fire implements events.Sink.
func (f contentSink) Fire(_ context.Context, ev *events.Event) events.Result {
	if ev.Msg == nil {
		return events.Result{}
	}
	data, err := ev.Msg.Data()
	if err != nil {
		return events.Result{Err: fmt.Errorf("reading the message: %w", err)}
	}
	return events.Result{Err: f(ev, data)}
}

// systemServers reads the nameservers of a resolv.conf as host:port.
func systemServers(path string) []string {
	cfg, err := dns.ClientConfigFromFile(path)
	if err != nil || len(cfg.Servers) == 0 {
		return []string{"127.0.0.1:53"}
	}
	out := make([]string, 0, len(cfg.Servers))
	for _, s := range cfg.Servers {
		out = append(out, net.JoinHostPort(s, cfg.Port))
	}
	return out
}

// checked wraps a factory so that a binding with a property the class
// does not document is refused, naming it.
func checked(c events.Class, f events.Factory) events.Factory {
	return func(props map[string]string) (events.Sink, error) {
		for k := range props {
			if strings.EqualFold(k, "Timeout") {
				continue
			}
			if _, ok := lookupFold(c.Properties, k); !ok {
				var known []string
				for n := range c.Properties {
					known = append(known, n)
				}
				sort.Strings(known)
				return nil, fmt.Errorf("unknown property %s (%s reads %s)", k, c.Name, strings.Join(known, ", "))
			}
		}
		return f(props)
	}
}

func lookupFold(m map[string]string, name string) (string, bool) {
	for k, v := range m {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// required reads a property that must be present and not blank.
func required(props map[string]string, name string) (string, error) {
	v, _ := events.Prop(props, name)
	if strings.TrimSpace(v) == "" {
		return "", fmt.Errorf("property %s is required", name)
	}
	return v, nil
}

// optional reads a property, def when it is absent or blank.
func optional(props map[string]string, name, def string) string {
	if v, ok := events.Prop(props, name); ok && strings.TrimSpace(v) != "" {
		return v
	}
	return def
}

// parseReply reads an SMTP reply written "CODE X.Y.Z text" or "CODE
// text": a code from 200 to 599 and, when given, an enhanced status code
// of the same class (RFC 3463).
func parseReply(s string) (events.Reply, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return events.Reply{}, fmt.Errorf("empty reply")
	}
	code, err := strconv.Atoi(f[0])
	if err != nil || len(f[0]) != 3 || code < 200 || code > 599 {
		return events.Reply{}, fmt.Errorf("reply %q does not start with a code from 200 to 599", s)
	}
	r := events.Reply{Code: code}
	rest := f[1:]
	if len(rest) > 0 && strings.Count(rest[0], ".") == 2 && rest[0][0] >= '0' && rest[0][0] <= '9' {
		var a, b, c int
		if n, _ := fmt.Sscanf(rest[0], "%d.%d.%d", &a, &b, &c); n != 3 || fmt.Sprintf("%d.%d.%d", a, b, c) != rest[0] {
			return events.Reply{}, fmt.Errorf("reply %q: %q is not an enhanced status code X.Y.Z", s, rest[0])
		}
		if a != code/100 {
			return events.Reply{}, fmt.Errorf("reply %q: enhanced code %s does not match the class of %d", s, rest[0], code)
		}
		r.Enhanced = rest[0]
		rest = rest[1:]
	}
	r.Text = strings.Join(rest, " ")
	return r, nil
}
