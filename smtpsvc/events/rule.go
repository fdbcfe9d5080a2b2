package events

import (
	"strings"

	"github.com/ds2mb/ds2mb/schema"
)

// Rule is a compiled binding rule (REFERENCE.md §5.4): clauses
// "command=pattern" joined by ";" must all match (AND); patterns of one
// clause joined by "," are alternatives (OR). ASSUMPTION(U): the sources
// do not say whether ";" means and or or; AND lets a rule narrow a binding
// to a sender and a recipient at once, which is what the documented
// example "mail from=*@contoso.com;rcpt to=*@example.com" reads as. An
// empty rule matches every event.
//
// Patterns are case-insensitive; "*" matches any run of characters, "?"
// one. EHLO and HELO clauses match the client's HELO/EHLO name, MAIL FROM
// the envelope sender, RCPT TO the recipient of OnPerRecipient or, for
// other events, any recipient of the message. A clause about something
// the event does not know yet (RCPT TO at session start) does not match.
type Rule struct {
	clauses []clause
	text    string
}

type clause struct {
	field    string   // "EHLO", "MAIL FROM", "RCPT TO"
	patterns []string // lower case
}

// ParseRule compiles a rule; the grammar is schema.ParseRule's.
func ParseRule(s string) (Rule, error) {
	cs, err := schema.ParseRule(s)
	if err != nil {
		return Rule{}, err
	}
	r := Rule{text: s}
	for _, c := range cs {
		f := c.Command
		if f == "HELO" {
			f = "EHLO"
		}
		var pats []string
		for _, p := range strings.Split(c.Pattern, ",") {
			if p = strings.ToLower(strings.TrimSpace(p)); p != "" {
				pats = append(pats, p)
			}
		}
		r.clauses = append(r.clauses, clause{field: f, patterns: pats})
	}
	return r, nil
}

// MarshalText writes the rule as written (configuration fingerprints and
// status show it).
func (r Rule) MarshalText() ([]byte, error) { return []byte(r.text), nil }

// String is the rule as written.
func (r Rule) String() string { return r.text }

// Match reports whether the rule matches an event.
func (r Rule) Match(ev *Event) bool {
	for _, c := range r.clauses {
		if !c.match(ev) {
			return false
		}
	}
	return true
}

func (c clause) match(ev *Event) bool {
	switch c.field {
	case "EHLO":
		helo := ""
		if ev.Session != nil {
			helo = ev.Session.HELO
		}
		if ev.Command != nil && (ev.Command.Verb == "EHLO" || ev.Command.Verb == "HELO") {
			helo = ev.Command.Arg
		}
		return helo != "" && c.any(helo)
	case "MAIL FROM":
		switch {
		case ev.Command != nil && ev.Command.Verb == "MAIL":
			return c.any(commandAddress(ev.Command.Arg, "FROM:"))
		case ev.Msg != nil:
			return c.any(ev.Msg.From)
		case ev.Session != nil && (ev.Session.InTx || ev.Session.MailFrom != ""):
			return c.any(ev.Session.MailFrom)
		}
		return false
	case "RCPT TO":
		if ev.Command != nil && ev.Command.Verb == "RCPT" {
			return c.any(commandAddress(ev.Command.Arg, "TO:"))
		}
		if ev.Rcpt != "" {
			return c.any(ev.Rcpt)
		}
		var rcpts []string
		if ev.Msg != nil {
			rcpts = ev.Msg.To
		} else if ev.Session != nil {
			rcpts = ev.Session.Rcpts
		}
		for _, r := range rcpts {
			if c.any(r) {
				return true
			}
		}
		return false
	}
	return false
}

// commandAddress is the address of a MAIL or RCPT argument
// ("FROM:<a@example.com> SIZE=10" → "a@example.com"): an OnInboundCommand
// rule matches the command being given, not the transaction before it.
func commandAddress(arg, prefix string) string {
	arg = strings.TrimSpace(arg)
	if len(arg) >= len(prefix) && strings.EqualFold(arg[:len(prefix)], prefix) {
		arg = strings.TrimSpace(arg[len(prefix):])
	}
	if rest, ok := strings.CutPrefix(arg, "<"); ok {
		addr, _, _ := strings.Cut(rest, ">")
		return addr
	}
	addr, _, _ := strings.Cut(arg, " ")
	return addr
}

// any reports whether one of the patterns matches v.
func (c clause) any(v string) bool {
	v = strings.ToLower(v)
	for _, p := range c.patterns {
		if glob(p, v) {
			return true
		}
	}
	return false
}

// glob matches s against a pattern of literal bytes, "*" (any run) and
// "?" (one byte), with the classic backtracking to the last star.
func glob(p, s string) bool {
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
