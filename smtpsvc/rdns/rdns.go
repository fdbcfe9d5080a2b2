// Package rdns looks up the PTR name of a connecting client for the SMTP
// worker's Received header (EnableReverseDnsLookup), with a miekg/dns client
// against a configured resolver address.
package rdns

import (
	"context"
	"net/netip"
)

// Resolver returns the PTR name of an address (without the trailing dot).
type Resolver interface {
	LookupPTR(ctx context.Context, ip netip.Addr) (string, error)
}
