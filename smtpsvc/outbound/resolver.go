// Package outbound delivers queued mail to other servers over SMTP: by the
// recipient domain's MX records (RFC 5321 §5.1, null MX of RFC 7505
// respected, implicit MX from A/AAAA) or to a smart host, with
// opportunistic STARTTLS, and with one round trip per transaction where
// the server offers PIPELINING (and CHUNKING). It is the only package of the worker that
// resolves DNS with miekg/dns, behind the small Resolver interface.
package outbound

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// MX is one mail exchanger of a domain.
type MX struct {
	Host string
	Pref uint16
}

// Resolver answers the lookups remote delivery needs.
type Resolver interface {
	// LookupMX returns a domain's MX records by preference (ties in random
	// order). (nil, nil): the domain exists without MX (implicit MX).
	// ErrNullMX: the domain accepts no mail. IsNotFound(err): NXDOMAIN.
	LookupMX(ctx context.Context, domain string) ([]MX, error)
	// LookupIP returns a host's A and AAAA addresses.
	LookupIP(ctx context.Context, host string) ([]netip.Addr, error)
}

// ErrNullMX is a domain that publishes a null MX (RFC 7505).
var ErrNullMX = errors.New("the domain accepts no mail (null MX)")

// notFound is an NXDOMAIN answer.
type notFound struct{ name string }

func (e *notFound) Error() string { return e.name + ": no such domain" }

// IsNotFound reports whether a lookup error says the name does not exist.
func IsNotFound(err error) bool {
	var nf *notFound
	return errors.As(err, &nf)
}

// dnsResolver asks DNS servers with miekg/dns, caching answers for their TTL.
type dnsResolver struct {
	servers []string
	client  *dns.Client
	tcp     *dns.Client

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	msg     *dns.Msg
	expires time.Time
}

const maxCache = 10000

// NewDNSResolver asks servers ("host:port") in turn over UDP, and over TCP
// when an answer is truncated.
func NewDNSResolver(servers []string, timeout time.Duration) Resolver {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	return &dnsResolver{servers: servers, client: &dns.Client{Net: "udp", Timeout: timeout},
		tcp: &dns.Client{Net: "tcp", Timeout: timeout}, cache: map[string]cached{}}
}

// SystemServers reads the nameservers of a resolv.conf as host:port;
// 127.0.0.1:53 when there are none.
func SystemServers(resolvConf string) []string {
	data, err := os.ReadFile(resolvConf)
	var out []string
	if err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && f[0] == "nameserver" {
				out = append(out, net.JoinHostPort(f[1], "53"))
			}
		}
	}
	if len(out) == 0 {
		out = []string{"127.0.0.1:53"}
	}
	return out
}

func (r *dnsResolver) query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	name = dns.Fqdn(strings.ToLower(name))
	key := fmt.Sprintf("%s/%d", name, qtype)
	now := time.Now()
	r.mu.Lock()
	if c, ok := r.cache[key]; ok && now.Before(c.expires) {
		r.mu.Unlock()
		return c.msg, nil
	}
	r.mu.Unlock()
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.RecursionDesired = true
	var lastErr error
	for _, srv := range r.servers {
		in, _, err := r.client.ExchangeContext(ctx, q, srv)
		if err == nil && in.Truncated {
			in, _, err = r.tcp.ExchangeContext(ctx, q, srv)
		}
		if err != nil {
			lastErr = err
			continue
		}
		switch in.Rcode {
		case dns.RcodeSuccess, dns.RcodeNameError:
			ttl := uint32(300)
			for _, rr := range in.Answer {
				ttl = min(ttl, rr.Header().Ttl)
			}
			if in.Rcode == dns.RcodeNameError {
				ttl = 60
			}
			r.mu.Lock()
			if len(r.cache) >= maxCache {
				r.cache = map[string]cached{}
			}
			r.cache[key] = cached{msg: in, expires: now.Add(time.Duration(ttl) * time.Second)}
			r.mu.Unlock()
			return in, nil
		}
		lastErr = fmt.Errorf("%s: %s from %s", strings.TrimSuffix(name, "."), dns.RcodeToString[in.Rcode], srv)
	}
	if lastErr == nil {
		lastErr = errors.New("no DNS server configured")
	}
	return nil, lastErr
}

// LookupMX implements Resolver.
func (r *dnsResolver) LookupMX(ctx context.Context, domain string) ([]MX, error) {
	in, err := r.query(ctx, domain, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	if in.Rcode == dns.RcodeNameError {
		return nil, &notFound{domain}
	}
	var out []MX
	for _, rr := range in.Answer {
		if mx, ok := rr.(*dns.MX); ok {
			out = append(out, MX{Host: strings.TrimSuffix(mx.Mx, "."), Pref: mx.Preference})
		}
	}
	if len(out) == 1 && out[0].Host == "" {
		return nil, ErrNullMX
	}
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	sort.SliceStable(out, func(i, j int) bool { return out[i].Pref < out[j].Pref })
	return out, nil
}

// LookupIP implements Resolver.
func (r *dnsResolver) LookupIP(ctx context.Context, host string) ([]netip.Addr, error) {
	var out []netip.Addr
	var firstErr error
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		in, err := r.query(ctx, host, t)
		if err != nil {
			firstErr = cmpErr(firstErr, err)
			continue
		}
		if in.Rcode == dns.RcodeNameError {
			firstErr = cmpErr(firstErr, &notFound{host})
			continue
		}
		for _, rr := range in.Answer {
			switch a := rr.(type) {
			case *dns.A:
				if ip, ok := netip.AddrFromSlice(a.A.To4()); ok {
					out = append(out, ip)
				}
			case *dns.AAAA:
				if ip, ok := netip.AddrFromSlice(a.AAAA); ok {
					out = append(out, ip)
				}
			}
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	return nil, firstErr
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
