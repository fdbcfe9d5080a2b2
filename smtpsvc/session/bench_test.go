package session_test

import (
	"bytes"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// message4K is a 4 KB message.
var message4K = func() []byte {
	var b bytes.Buffer
	b.WriteString("From: sender@example.org\r\nTo: rcpt@example.com\r\nSubject: benchmark\r\n\r\n")
	for b.Len() < 4096-78 {
		b.WriteString("0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123\r\n")
	}
	return b.Bytes()
}()

// BenchmarkAccept4K: 20 parallel sessions on one virtual server, each
// sending 4 KB messages (MAIL, RCPT, DATA) back to back over loopback, with
// the durable spool. It reports messages per second and the latency from
// MAIL to the final 250 (p50, p99).
func BenchmarkAccept4K(b *testing.B) { benchAccept(b, 20) }

// BenchmarkAccept4KOneSession is the one-session latency.
func BenchmarkAccept4KOneSession(b *testing.B) { benchAccept(b, 1) }

func benchAccept(b *testing.B, sessions int) {
	f := startProps(b, nil, nil, nil)
	runClients(b, f.addr, sessions)
}

// runClients sends b.N 4 KB messages over the given number of sessions and
// reports msgs/s and the MAIL-to-250 latency.
func runClients(b *testing.B, addr string, sessions int) {
	clients := make([]*smtp.Client, sessions)
	for i := range clients {
		c, err := smtp.Dial(addr)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Hello("bench.test"); err != nil {
			b.Fatal(err)
		}
		clients[i] = c
	}
	var next atomic.Int64
	lat := make([][]time.Duration, sessions)
	var wg sync.WaitGroup
	b.SetBytes(int64(len(message4K)))
	b.ResetTimer()
	start := time.Now()
	for i, c := range clients {
		wg.Add(1)
		go func(i int, c *smtp.Client) {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := c.Mail("sender@example.org", nil); err != nil {
					b.Error(err)
					return
				}
				if err := c.Rcpt("rcpt@example.com", nil); err != nil {
					b.Error(err)
					return
				}
				w, err := c.Data()
				if err != nil {
					b.Error(err)
					return
				}
				w.Write(message4K)
				if err := w.Close(); err != nil {
					b.Error(err)
					return
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		}(i, c)
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	for _, c := range clients {
		c.Quit()
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) > 0 {
		b.ReportMetric(float64(len(all))/el.Seconds(), "msgs/s")
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	}
}
