package auth

import (
	"net/netip"
	"sync"
	"time"
)

// Limiter rate-limits failed authentication attempts per client address
// with a token bucket: a client may fail Burst times in a row, then one
// more time per Refill interval. Successes cost nothing. A nil *Limiter
// allows everything.
type Limiter struct {
	Burst  int              // failures allowed in a row
	Refill time.Duration    // one failure more is allowed after each interval
	Now    func() time.Time // clock; nil = time.Now

	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewLimiter returns a limiter allowing burst failures in a row per client,
// then one per refill.
func NewLimiter(burst int, refill time.Duration) *Limiter {
	return &Limiter{Burst: burst, Refill: refill}
}

func (l *Limiter) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// take returns the client's bucket, refilled up to now. l.mu is held.
func (l *Limiter) take(ip netip.Addr) *bucket {
	if l.buckets == nil {
		l.buckets = map[netip.Addr]*bucket{}
	}
	now := l.now()
	b := l.buckets[ip]
	if b == nil {
		b = &bucket{tokens: float64(l.Burst), last: now}
		if len(l.buckets) > 10000 {
			l.prune(now)
		}
		l.buckets[ip] = b
		return b
	}
	if l.Refill > 0 {
		b.tokens += float64(now.Sub(b.last)) / float64(l.Refill)
	}
	if b.tokens > float64(l.Burst) {
		b.tokens = float64(l.Burst)
	}
	b.last = now
	return b
}

// prune forgets clients whose bucket is full again.
func (l *Limiter) prune(now time.Time) {
	for ip, b := range l.buckets {
		if l.Refill > 0 && b.tokens+float64(now.Sub(b.last))/float64(l.Refill) >= float64(l.Burst) {
			delete(l.buckets, ip)
		}
	}
}

// Allow reports whether the client may try to authenticate now.
func (l *Limiter) Allow(ip netip.Addr) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.take(ip.Unmap()).tokens >= 1
}

// Fail records a failed attempt of the client.
func (l *Limiter) Fail(ip netip.Addr) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.take(ip.Unmap())
	if b.tokens >= 1 {
		b.tokens--
	} else {
		b.tokens = 0
	}
}
