// Package rdns looks up the PTR name of a connecting client for the SMTP
// worker's Received header (EnableReverseDnsLookup), with a miekg/dns client
// against a configured resolver address.
package rdns

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Resolver returns the PTR name of an address (without the trailing dot).
type Resolver interface {
	LookupPTR(ctx context.Context, ip netip.Addr) (string, error)
}

// ForwardResolver is a Resolver that can also look a name's addresses up,
// which Verify uses to confirm a PTR name.
type ForwardResolver interface {
	Resolver
	LookupAddrs(ctx context.Context, name string) ([]netip.Addr, error)
}

// Verify looks up ip's PTR name and, when r is a ForwardResolver, checks
// that the name resolves back to ip. verified is false when the name does
// not resolve back, or r cannot tell (not a ForwardResolver).
func Verify(ctx context.Context, r Resolver, ip netip.Addr) (name string, verified bool, err error) {
	name, err = r.LookupPTR(ctx, ip)
	if err != nil {
		return "", false, err
	}
	fr, ok := r.(ForwardResolver)
	if !ok {
		return name, false, nil
	}
	addrs, err := fr.LookupAddrs(ctx, name)
	if err != nil {
		return name, false, nil
	}
	for _, a := range addrs {
		if a.Unmap() == ip.Unmap() {
			return name, true, nil
		}
	}
	return name, false, nil
}

// Client is a Resolver asking one DNS server (over UDP, retrying over TCP
// when the answer is truncated).
type Client struct {
	Server  string        // "127.0.0.1:53"
	Timeout time.Duration // per query; 0 = 2 s
}

// New returns a Client for a DNS server address ("host:port").
func New(server string) *Client { return &Client{Server: server} }

// LookupAddrs implements ForwardResolver: the A and AAAA records of name.
func (c *Client) LookupAddrs(ctx context.Context, name string) ([]netip.Addr, error) {
	var out []netip.Addr
	var firstErr error
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		in, err := c.exchange(ctx, dns.Fqdn(name), qt)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		for _, rr := range in.Answer {
			switch v := rr.(type) {
			case *dns.A:
				if a, ok := netip.AddrFromSlice(v.A.To4()); ok {
					out = append(out, a)
				}
			case *dns.AAAA:
				if a, ok := netip.AddrFromSlice(v.AAAA); ok {
					out = append(out, a)
				}
			}
		}
	}
	if len(out) == 0 && firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

// exchange asks one question, over TCP again when the UDP answer is
// truncated.
func (c *Client) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	to := c.Timeout
	if to <= 0 {
		to = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, to)
	defer cancel()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	cl := &dns.Client{Timeout: to}
	in, _, err := cl.ExchangeContext(ctx, m, c.Server)
	if err == nil && in.Truncated {
		cl.Net = "tcp"
		in, _, err = cl.ExchangeContext(ctx, m, c.Server)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", dns.TypeToString[qtype], name, err)
	}
	if in.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("%s %s: %s", dns.TypeToString[qtype], name, dns.RcodeToString[in.Rcode])
	}
	return in, nil
}

// LookupPTR implements Resolver. It returns the first PTR name of ip, an
// error when there is none or the query fails.
func (c *Client) LookupPTR(ctx context.Context, ip netip.Addr) (string, error) {
	name, err := dns.ReverseAddr(ip.Unmap().String())
	if err != nil {
		return "", err
	}
	in, err := c.exchange(ctx, name, dns.TypePTR)
	if err != nil {
		return "", err
	}
	for _, rr := range in.Answer {
		if p, ok := rr.(*dns.PTR); ok {
			return strings.TrimSuffix(p.Ptr, "."), nil
		}
	}
	return "", fmt.Errorf("PTR %s: no answer", name)
}
