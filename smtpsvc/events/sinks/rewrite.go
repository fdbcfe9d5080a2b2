package sinks

import (
	"context"
	"fmt"
	"strings"

	"github.com/ds2mb/ds2mb/smtpsvc/events"
)

// addrPattern is a RecipientRewrite From or To: an exact address, or any
// local part at a domain ("*@example.com").
type addrPattern struct {
	anyLocal bool
	local    string // exact only
	domain   string
}

// parseAddrPattern reads "*@domain" or "local@domain".
func parseAddrPattern(prop, s string) (addrPattern, error) {
	s = strings.TrimSpace(s)
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return addrPattern{}, fmt.Errorf("property %s %q is neither an address nor *@domain", prop, s)
	}
	local, domain := s[:at], s[at+1:]
	if strings.Contains(domain, "*") || strings.Contains(local, "*") && local != "*" {
		return addrPattern{}, fmt.Errorf("property %s %q: only a whole local part may be *", prop, s)
	}
	if strings.ContainsAny(s, " \t\r\n<>") {
		return addrPattern{}, fmt.Errorf("property %s %q holds spaces or brackets", prop, s)
	}
	return addrPattern{anyLocal: local == "*", local: local, domain: domain}, nil
}

// match reports whether an address is one the pattern names.
func (p addrPattern) match(addr string) bool {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || !strings.EqualFold(addr[at+1:], p.domain) {
		return false
	}
	return p.anyLocal || strings.EqualFold(addr[:at], p.local)
}

// rewrite gives the replacement of an address that matched From.
func (p addrPattern) rewrite(addr string) string {
	if !p.anyLocal {
		return p.local + "@" + p.domain
	}
	return addr[:strings.LastIndexByte(addr, '@')] + "@" + p.domain
}

func recipientRewriteClass() events.Class {
	return events.Class{
		Name:   "ds2mb.RecipientRewrite",
		Events: events.TransportChain,
		Doc:    "rewrites envelope recipients of one address or domain to another (header fields unchanged)",
		Properties: map[string]string{
			"From": "the recipients to rewrite: *@old.example or an exact address; required",
			"To":   "the replacement: *@new.example keeps the local part, an exact address replaces it; required",
		},
		New: func(props map[string]string) (events.Sink, error) {
			var pats [2]addrPattern
			for i, name := range []string{"From", "To"} {
				v, err := required(props, name)
				if err != nil {
					return nil, err
				}
				if pats[i], err = parseAddrPattern(name, v); err != nil {
					return nil, err
				}
			}
			return &recipientRewrite{from: pats[0], to: pats[1]}, nil
		},
	}
}

// recipientRewrite is a ds2mb.RecipientRewrite sink.
type recipientRewrite struct{ from, to addrPattern }

// Fire implements events.Sink.
func (s *recipientRewrite) Fire(_ context.Context, ev *events.Event) events.Result {
	m := ev.Msg
	if m == nil {
		return events.Result{}
	}
	aligned := m.ToParams != nil
	to := make([]string, 0, len(m.To))
	var params []string
	seen := map[string]bool{}
	changed := false
	for i, r := range m.To {
		if s.from.match(r) {
			if nr := s.to.rewrite(r); nr != r {
				r, changed = nr, true
			}
		}
		k := strings.ToLower(r)
		if seen[k] {
			changed = true
			continue
		}
		seen[k] = true
		to = append(to, r)
		if aligned {
			p := ""
			if i < len(m.ToParams) {
				p = m.ToParams[i]
			}
			params = append(params, p)
		}
	}
	if changed {
		m.To = to
		if aligned {
			m.ToParams = params
		}
	}
	return events.Result{}
}
