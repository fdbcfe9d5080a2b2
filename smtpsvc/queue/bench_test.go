package queue_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// BenchmarkRelay: 1,000 messages of 4 KiB already in the spool, to 10
// remote domains whose MX (looked up in a DNS server of the test) is one
// sink on loopback, delivered with the default limits. It reports
// messages per second from the first attempt to the last delivery.
//
//	go test -run '^$' -bench Relay -benchtime 3x ./smtpsvc/queue
func BenchmarkRelay(b *testing.B) {
	for range b.N {
		b.StopTimer()
		port, s := sinks(b, "127.0.0.2")
		e := newEnv(b, port)
		for d := range 10 {
			e.dns.MX(b, fmt.Sprintf("d%d.test", d), 10, fmt.Sprintf("mx.d%d.test", d), "127.0.0.2")
		}
		if v := os.Getenv("BENCH_PER_DOMAIN"); v != "" {
			e.set("MaxOutConnectionsPerDomain", v)
		}
		e.build()
		n := benchN
		msg := body + strings.Repeat(strings.Repeat("x", 62)+"\r\n", 64) // 4 KiB in lines of 64 bytes
		paths := make([]string, 0, n)
		for i := range n {
			paths = append(paths, e.spoolMsg("sender@sender.test", []string{fmt.Sprintf("r%d@d%d.test", i, i%10)}, nil, "", msg))
		}
		e.start(nil)
		b.StartTimer()
		start := time.Now()
		for _, p := range paths {
			e.q.EnqueueFile(1, p)
		}
		s[0].Wait(b, n, 2*time.Minute)
		el := time.Since(start)
		b.StopTimer()
		e.stop()
		b.ReportMetric(float64(n)/el.Seconds(), "msgs/s")
		b.ReportMetric(float64(e.q.Stats().Connection.Load()), "conns")
		b.StartTimer()
	}
}

// benchN is the number of messages of BenchmarkRelay.
var benchN = 1000
