package queue

import (
	"strings"

	"github.com/ds2mb/ds2mb/smtpsvc/config"
	"github.com/ds2mb/ds2mb/smtpsvc/delivery"
)

// Destination kinds.
const (
	kindMaildir   = "maildir"   // the virtual server's Maildir store
	kindLMTP      = "lmtp"      // the LmtpServer
	kindDrop      = "drop"      // a Drop folder
	kindMX        = "mx"        // DNS MX of the recipient domain (then the smart host, with SmartHostType 1)
	kindSmartHost = "smarthost" // a smart host: the virtual server's or a connector's
)

// laneKey names one destination of one virtual server.
type laneKey struct {
	instance int
	kind     string
	target   string // domain (mx), hosts (smarthost), folder (drop), address (lmtp)
}

// dest is where one recipient goes.
type dest struct {
	key laneKey
	// hosts are the smart hosts to try in order (kindSmartHost; with
	// kindMX, the fallback of SmartHostType 1).
	hosts  []string
	domain string // recipient domain
}

func (d dest) local() bool {
	return d.key.kind == kindMaildir || d.key.kind == kindLMTP || d.key.kind == kindDrop
}

// route decides where a recipient goes, following the domain nodes'
// RouteAction (REFERENCE.md §1.4, §1.5) and the virtual server's smart
// host settings:
//
//   - a domain with SMTP_DROP: its Drop folder (RouteActionString, else DropDirectory);
//   - a local domain (SMTP_ALIAS): LmtpServer when set, else the Maildir
//     store under MailStoreDirectory;
//   - a domain with SMTP_SMARTHOST (a connector's address space): its smart host;
//   - anything else: the virtual server's SmartHost when SmartHostType is 2
//     (or 0 with a SmartHost set), else DNS MX of the domain, falling back
//     to the smart host when SmartHostType is 1.
//
// A recipient that cannot be routed (no domain) gets a permanent result.
func route(vs *config.VirtualServer, rcpt string) (dest, *delivery.Result) {
	at := strings.LastIndexByte(rcpt, '@')
	if at <= 0 || at == len(rcpt)-1 {
		r := delivery.PermFail(rcpt, "5.1.3", "Recipient address has no domain")
		return dest{}, &r
	}
	domain := strings.ToLower(strings.TrimSuffix(rcpt[at+1:], "."))
	d := dest{domain: domain}
	key := func(kind, target string) laneKey { return laneKey{instance: vs.Instance, kind: kind, target: target} }
	del := &vs.Delivery
	if nd, ok := vs.LookupDomain(domain); ok {
		switch {
		case nd.Drop != "":
			d.key = key(kindDrop, nd.Drop)
			return d, nil
		case nd.Local:
			if del.LMTP != "" {
				d.key = key(kindLMTP, del.LMTP)
			} else {
				d.key = key(kindMaildir, del.MailStore)
			}
			return d, nil
		case nd.SmartHost != "":
			d.hosts = splitHosts(nd.SmartHost)
			d.key = key(kindSmartHost, strings.Join(d.hosts, ";"))
			return d, nil
		}
	}
	if len(del.SmartHosts) > 0 && del.SmartHostType != 1 {
		d.hosts = del.SmartHosts
		d.key = key(kindSmartHost, strings.Join(d.hosts, ";"))
		return d, nil
	}
	if del.SmartHostType == 1 {
		d.hosts = del.SmartHosts
	}
	d.key = key(kindMX, domain)
	return d, nil
}

// splitHosts splits a RouteActionString smart host list.
func splitHosts(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == ',' || r == ' ' })
}
