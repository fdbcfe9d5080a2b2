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

// Client is a Resolver asking one DNS server (over UDP, retrying over TCP
// when the answer is truncated).
type Client struct {
	Server  string        // "127.0.0.1:53"
	Timeout time.Duration // per query; 0 = 2 s
}

// New returns a Client for a DNS server address ("host:port").
func New(server string) *Client { return &Client{Server: server} }

// LookupPTR implements Resolver. It returns the first PTR name of ip, an
// error when there is none or the query fails.
func (c *Client) LookupPTR(ctx context.Context, ip netip.Addr) (string, error) {
	name, err := dns.ReverseAddr(ip.Unmap().String())
	if err != nil {
		return "", err
	}
	to := c.Timeout
	if to <= 0 {
		to = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, to)
	defer cancel()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypePTR)
	cl := &dns.Client{Timeout: to}
	in, _, err := cl.ExchangeContext(ctx, m, c.Server)
	if err == nil && in.Truncated {
		cl.Net = "tcp"
		in, _, err = cl.ExchangeContext(ctx, m, c.Server)
	}
	if err != nil {
		return "", fmt.Errorf("PTR %s: %w", name, err)
	}
	if in.Rcode != dns.RcodeSuccess {
		return "", fmt.Errorf("PTR %s: %s", name, dns.RcodeToString[in.Rcode])
	}
	for _, rr := range in.Answer {
		if p, ok := rr.(*dns.PTR); ok {
			return strings.TrimSuffix(p.Ptr, "."), nil
		}
	}
	return "", fmt.Errorf("PTR %s: no answer", name)
}
