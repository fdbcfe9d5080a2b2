package sinks

import (
	"context"
	"fmt"
	"strings"

	"github.com/ds2mb/ds2mb/smtpsvc/events"
)

func customVerbClass() events.Class {
	return events.Class{
		Name:   "ds2mb.CustomVerb",
		Events: []events.Type{events.InboundCommand},
		Doc:    "answers a custom SMTP verb (X-LINK2STATE style) and advertises it in the EHLO reply",
		Properties: map[string]string{
			"Verb":  "the verb (letters, digits, '-'); default X-LINK2STATE",
			"Reply": "the answer, CODE X.Y.Z text or CODE text; default 250 2.0.0 <Verb> OK",
		},
		New: func(props map[string]string) (events.Sink, error) {
			verb := strings.ToUpper(strings.TrimSpace(optional(props, "Verb", "X-LINK2STATE")))
			for _, c := range verb {
				if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
					return nil, fmt.Errorf("property Verb %q: only letters, digits and '-' make a verb", verb)
				}
			}
			reply, err := parseReply(optional(props, "Reply", "250 2.0.0 "+verb+" OK"))
			if err != nil {
				return nil, fmt.Errorf("property Reply: %w", err)
			}
			return &customVerb{verb: verb, reply: reply}, nil
		},
	}
}

// customVerb is a ds2mb.CustomVerb sink.
type customVerb struct {
	verb  string
	reply events.Reply
}

// CustomVerbKey is the Session.Values key under which the CustomVerb
// sink counts a session's uses of verb (an int).
func CustomVerbKey(verb string) string { return "ds2mb.CustomVerb " + strings.ToUpper(verb) }

// Fire implements events.Sink.
func (s *customVerb) Fire(_ context.Context, ev *events.Event) events.Result {
	c := ev.Command
	if c == nil {
		return events.Result{}
	}
	switch {
	case c.Verb == "EHLO" && len(c.EHLO) > 0:
		for _, l := range c.EHLO[1:] {
			if f := strings.Fields(l); len(f) > 0 && strings.EqualFold(f[0], s.verb) {
				return events.Result{}
			}
		}
		// Before a closing "OK" line (IIS ends its EHLO reply so), else last.
		n := len(c.EHLO)
		if n > 1 && strings.EqualFold(c.EHLO[n-1], "OK") {
			c.EHLO = append(c.EHLO[:n-1:n-1], s.verb, "OK")
		} else {
			c.EHLO = append(c.EHLO, s.verb)
		}
	case c.Verb == s.verb:
		r := s.reply
		ev.Reply = &r
		if ev.Session != nil {
			if ev.Session.Values == nil {
				ev.Session.Values = map[string]any{}
			}
			n, _ := ev.Session.Values[CustomVerbKey(s.verb)].(int)
			ev.Session.Values[CustomVerbKey(s.verb)] = n + 1
		}
	}
	return events.Result{}
}
