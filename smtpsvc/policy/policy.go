// Package policy decides whether a virtual server takes a recipient: mail for
// a local (SMTP_ALIAS) or drop (SMTP_DROP) domain is accepted, mail for a
// relay domain is accepted for relay, and mail for any other domain only
// when RelayIpList grants the client's address or the client authenticated
// and RelayForAuth is on. Everything else is refused with 550 5.7.1: the
// server is never an open relay.
//
// A relay domain is a domain node with SMTP_DOMAIN_RELAY (a non-authoritative
// recipient policy, or a connector address space without a smart host) or
// with SMTP_SMARTHOST (a connector address space routed to its smart host):
// DESIGN.md and the issue count every connector address space as a relay
// domain, and the replicator writes SMTP_SMARTHOST alone for a connector with
// a smart host. (IIS itself would want SMTP_DOMAIN_RELAY on such a node too;
// a hand-written "remote domain" with a smart host is relayed here.)
//
// Per-domain relay overrides (REFERENCE.md §1.5): a domain node that is
// neither local, drop, relay nor smart host but sets RelayIpList or RelayForAuth itself
// decides relay to its domain with its effective values (its own, else its
// virtual server's, the service's, the default) instead of the virtual
// server's: such a node may open relay to one domain for authenticated
// clients, or for hosts its list grants, or close it where the virtual
// server would relay. An undecodable RelayIpList on the node grants nobody.
//
// Address tricks never relay, whoever the client is: a local part holding
// '%' (the percent hack, "user%other.com@local.com"), '!' (bang paths) or
// '@' (a quoted local part, "\"user@other.com\"@local.com"), and a domain
// that is not a plain DNS name or address literal, are refused with
// 550 5.7.1. Source routes ("<@a,@b:user@c>") are refused before the
// recipient reaches this package (session sets go-smtp's
// RejectSourceRoutes).
package policy

import (
	"net/netip"
	"strings"

	"github.com/ds2mb/ds2mb/smtpsvc/config"
)

// Client is what the policy knows about the connected client.
type Client struct {
	IP            netip.Addr
	Authenticated bool
}

// Verdict is how a recipient is taken.
type Verdict int

// Verdicts.
const (
	Refused Verdict = iota // not taken; see the Refusal
	Local                  // a local (or drop) domain of this server
	Relay                  // another domain, relayed
)

// Refusal is a recipient refused with an SMTP reply.
type Refusal struct {
	Code     int    // 550, 553…
	Enhanced [3]int // 5.7.1…
	Text     string
}

func (r *Refusal) Error() string { return r.Text }

// RelayProhibited is the reply for a recipient this server may not relay to.
var RelayProhibited = &Refusal{Code: 550, Enhanced: [3]int{5, 7, 1}, Text: "Relaying prohibited"}

// UnknownRecipient is the reply for an address of a local domain that the
// virtual server's LocalRecipientsFile does not list.
var UnknownRecipient = &Refusal{Code: 550, Enhanced: [3]int{5, 1, 1}, Text: "Recipient address rejected: no such user here"}

// Recipient decides about one RCPT TO address (as go-smtp parsed it: source
// route removed, quoted local part unquoted).
func Recipient(vs *config.VirtualServer, rcpt string, c Client) (Verdict, *Refusal) {
	at := strings.LastIndexByte(rcpt, '@')
	if at <= 0 || at == len(rcpt)-1 {
		return Refused, &Refusal{Code: 550, Enhanced: [3]int{5, 1, 3}, Text: "Recipient address must be user@domain"}
	}
	local, domain := rcpt[:at], rcpt[at+1:]
	if i := strings.IndexAny(local, "%!@"); i >= 0 {
		return Refused, &Refusal{Code: 550, Enhanced: [3]int{5, 7, 1},
			Text: "Relaying prohibited: '" + local[i:i+1] + "' in the local part is not accepted"}
	}
	if !plainDomain(domain) {
		return Refused, &Refusal{Code: 550, Enhanced: [3]int{5, 7, 1}, Text: "Relaying prohibited: malformed domain"}
	}
	if domain[0] != '[' {
		if d, ok := vs.LookupDomain(domain); ok {
			switch {
			case d.Local && d.Drop == "" && !vs.LocalRecipientExists(rcpt):
				return Refused, UnknownRecipient
			case d.Local || d.Drop != "":
				return Local, nil
			case d.Relay || d.SmartHost != "":
				return Relay, nil
			case d.RelayOverride:
				// The domain node's own relay settings decide, not the
				// virtual server's.
				if c.IP.IsValid() && d.RelayGranted(c.IP) || c.Authenticated && d.RelayForAuth {
					return Relay, nil
				}
				return Refused, RelayProhibited
			}
		}
	}
	if c.IP.IsValid() && vs.RelayGranted(c.IP) {
		return Relay, nil
	}
	if c.Authenticated && vs.RelayForAuth {
		return Relay, nil
	}
	return Refused, RelayProhibited
}

// plainDomain reports whether d is a DNS name (letters, digits, '-', '.')
// or an address literal "[1.2.3.4]".
func plainDomain(d string) bool {
	if d == "" {
		return false
	}
	if d[0] == '[' {
		if d[len(d)-1] != ']' {
			return false
		}
		inner := d[1 : len(d)-1]
		inner = strings.TrimPrefix(inner, "IPv6:")
		_, err := netip.ParseAddr(inner)
		return err == nil
	}
	for i := 0; i < len(d); i++ {
		ch := d[i]
		switch {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9', ch == '-', ch == '.':
		default:
			return false
		}
	}
	return d[0] != '.' && !strings.Contains(d, "..")
}
