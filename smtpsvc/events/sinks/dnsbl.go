package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/ds2mb/ds2mb/smtpsvc/events"
)

// DNSBLKey is the Session.Values key under which the DNSBL sink keeps
// its verdicts: a map[string]*Verdict by zone.
const DNSBLKey = "ds2mb.DNSBL"

// Verdict is one zone's answer for a session's client, filled in the
// background.
type Verdict struct {
	done   chan struct{}
	listed bool
	answer netip.Addr // the A record that lists the client
	err    error
}

// Wait waits for the lookup (or ctx) and reports whether the client is
// listed; err is a failed lookup, which counts as not listed.
func (v *Verdict) Wait(ctx context.Context) (listed bool, err error) {
	select {
	case <-v.done:
		return v.listed, v.err
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

func dnsblClass(o Options) events.Class {
	return events.Class{
		Name:   "ds2mb.DNSBL",
		Events: []events.Type{events.SessionStart, events.InboundCommand},
		Doc:    "refuses commands (RCPT) of clients listed in DNS block lists, looked up from session start",
		Properties: map[string]string{
			"Zones":         "comma-separated DNS block list zones; required",
			"Message":       "the reply, CODE X.Y.Z text with {ip} and {zone}; default 554 5.7.1 Service unavailable; client [{ip}] blocked using {zone}",
			"Verbs":         "comma-separated commands refused for a listed client; default RCPT",
			"LookupTimeout": "how long the lookups of a session may take (Go duration); default 2s",
		},
		New: func(props map[string]string) (events.Sink, error) {
			zs, err := required(props, "Zones")
			if err != nil {
				return nil, err
			}
			s := &dnsbl{servers: o.DNSServers, log: o.Logger, verbs: map[string]bool{}, timeout: 2 * time.Second}
			for _, z := range strings.Split(zs, ",") {
				z = strings.Trim(strings.ToLower(strings.TrimSpace(z)), ".")
				if z == "" {
					continue
				}
				if _, ok := dns.IsDomainName(z); !ok || strings.Contains(z, "*") {
					return nil, fmt.Errorf("property Zones: %q is not a DNS zone", z)
				}
				s.zones = append(s.zones, z)
			}
			if len(s.zones) == 0 {
				return nil, errors.New("property Zones is required")
			}
			msg := optional(props, "Message", "554 5.7.1 Service unavailable; client [{ip}] blocked using {zone}")
			if s.reply, err = parseReply(msg); err != nil {
				return nil, fmt.Errorf("property Message: %w", err)
			}
			if s.reply.Code < 400 {
				return nil, fmt.Errorf("property Message: %d does not refuse (4xx or 5xx)", s.reply.Code)
			}
			for _, v := range strings.Split(optional(props, "Verbs", "RCPT"), ",") {
				if v = strings.ToUpper(strings.TrimSpace(v)); v != "" {
					s.verbs[v] = true
				}
			}
			if t := optional(props, "LookupTimeout", ""); t != "" {
				if s.timeout, err = time.ParseDuration(t); err != nil || s.timeout <= 0 {
					return nil, fmt.Errorf("property LookupTimeout %q is not a positive duration (2s, 500ms)", t)
				}
			}
			return s, nil
		},
	}
}

// dnsbl is a ds2mb.DNSBL sink.
type dnsbl struct {
	zones   []string
	servers []string
	reply   events.Reply // with {ip} and {zone}
	verbs   map[string]bool
	timeout time.Duration
	log     *slog.Logger
}

// Fire implements events.Sink.
func (s *dnsbl) Fire(ctx context.Context, ev *events.Event) events.Result {
	sess := ev.Session
	if sess == nil || !sess.Remote.IsValid() {
		return events.Result{}
	}
	verdicts := s.start(sess)
	if ev.Type.CATID != events.InboundCommand.CATID || ev.Command == nil || !s.verbs[ev.Command.Verb] {
		return events.Result{}
	}
	ip := sess.Remote.Unmap()
	for _, z := range s.zones {
		if listed, _ := verdicts[z].Wait(ctx); listed {
			r := s.reply
			rp := strings.NewReplacer("{ip}", ip.String(), "{zone}", z)
			r.Text = rp.Replace(r.Text)
			ev.Reply = &r
			return events.Result{Status: events.Stop}
		}
	}
	return events.Result{}
}

// start makes sure every zone of the sink has a verdict in the session,
// starting the lookups that no binding has started yet.
func (s *dnsbl) start(sess *events.Session) map[string]*Verdict {
	if sess.Values == nil {
		sess.Values = map[string]any{}
	}
	verdicts, _ := sess.Values[DNSBLKey].(map[string]*Verdict)
	if verdicts == nil {
		verdicts = map[string]*Verdict{}
		sess.Values[DNSBLKey] = verdicts
	}
	ip, id := sess.Remote.Unmap(), sess.ID
	for _, z := range s.zones {
		if verdicts[z] != nil {
			continue
		}
		v := &Verdict{done: make(chan struct{})}
		verdicts[z] = v
		go func() {
			defer close(v.done)
			ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
			defer cancel()
			v.listed, v.answer, v.err = s.lookup(ctx, ip, z)
			switch {
			case v.err != nil:
				s.log.Warn("DNSBL lookup failed; client taken as not listed", "zone", z, "ip", ip, "session", id, "err", v.err)
			case v.listed:
				s.log.Info("client listed in a DNSBL", "zone", z, "ip", ip, "session", id, "answer", v.answer)
			}
		}()
	}
	return verdicts
}

// listing is the block-list convention: an answer in 127.0.0.0/8 lists,
// but 127.255.255.0/24 is how list operators refuse a query.
var (
	listing = netip.MustParsePrefix("127.0.0.0/8")
	refusal = netip.MustParsePrefix("127.255.255.0/24")
)

// lookup asks the servers in turn for the A records of ip in zone.
func (s *dnsbl) lookup(ctx context.Context, ip netip.Addr, zone string) (bool, netip.Addr, error) {
	rev, err := dns.ReverseAddr(ip.String())
	if err != nil {
		return false, netip.Addr{}, err
	}
	rev = strings.TrimSuffix(strings.TrimSuffix(rev, "in-addr.arpa."), "ip6.arpa.")
	name := rev + zone + "."
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeA)
	q.RecursionDesired = true
	cl := &dns.Client{Timeout: s.timeout}
	err = errors.New("no DNS servers")
	for _, srv := range s.servers {
		in, _, e := cl.ExchangeContext(ctx, q, srv)
		if e == nil && in.Truncated {
			tcp := &dns.Client{Net: "tcp", Timeout: s.timeout}
			in, _, e = tcp.ExchangeContext(ctx, q, srv)
		}
		switch {
		case e != nil:
			err = fmt.Errorf("%s: %w", name, e)
		case in.Rcode == dns.RcodeNameError:
			return false, netip.Addr{}, nil
		case in.Rcode != dns.RcodeSuccess:
			err = fmt.Errorf("%s: %s from %s", name, dns.RcodeToString[in.Rcode], srv)
		default:
			var refused netip.Addr
			for _, rr := range in.Answer {
				a, ok := rr.(*dns.A)
				if !ok {
					continue
				}
				addr, _ := netip.AddrFromSlice(a.A.To4())
				switch {
				case refusal.Contains(addr):
					refused = addr
				case listing.Contains(addr):
					return true, addr, nil
				}
			}
			if refused.IsValid() {
				return false, netip.Addr{}, fmt.Errorf("%s: the list refused the query (%s)", name, refused)
			}
			return false, netip.Addr{}, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return false, netip.Addr{}, err
}
