package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// BenchmarkEditToServing measures, over 100 directory edits, the time from
// an LDAP Modify being sent to the worker answering a new connection with
// the edited configuration (virtual server 1's banner shows the new FQDN):
// slapd → ds2mb → MetaBase.xml → smtpsvc → the socket, with the real
// binaries. It reports p50, p99 and max in ms.
//
//	go test -run '^$' -bench BenchmarkEditToServing -benchtime 1x ./deploy/e2e/
func BenchmarkEditToServing(b *testing.B) {
	sp := startSpine(b)
	conn, err := sp.srv.Dial()
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	const edits = 100
	var lat []time.Duration
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		lat = lat[:0]
		for i := 0; i < edits; i++ {
			fqdn := fmt.Sprintf("edit%d-%d.server01.example.com", it, i)
			m := ldap.NewModifyRequest(sp.vs1, nil)
			m.Replace("msExchSmtpFullyQualifiedDomainName", []string{fqdn})
			t0 := time.Now()
			if err := conn.Modify(m); err != nil {
				b.Fatal(err)
			}
			for {
				l, err := banner(sp.a1)
				if err != nil {
					b.Fatalf("edit %d: virtual server 1 stopped answering: %v", i, err)
				}
				if strings.HasPrefix(l, "220 "+fqdn+" ") {
					break
				}
				if time.Since(t0) > 30*time.Second {
					b.Fatalf("edit %d never reached the socket; the banner is %q", i, l)
				}
				time.Sleep(200 * time.Microsecond)
			}
			lat = append(lat, time.Since(t0))
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(p(0.5), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
	b.ReportMetric(p(1), "max-ms")
	b.ReportMetric(0, "ns/op")
}
