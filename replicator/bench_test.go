package replicator_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ds2mb/ds2mb/deploy/localdir"
	"github.com/ds2mb/ds2mb/replicator"
)

// BenchmarkLatency measures, over 500 changes, the time from a directory
// Modify returning to the new MetaBase.xml being in place (renamed over the
// old one) with the new value; it reports p50 and p99 in ms.
//
//	go test -run '^$' -bench BenchmarkLatency -benchtime 1x ./replicator/
func BenchmarkLatency(b *testing.B) {
	srv := localdir.StartT(b, localdir.Options{})
	mb := filepath.Join(b.TempDir(), "MetaBase.xml")
	rn := start(b, srv, mb, "syncrepl")
	waitProp(b, mb, vs1, "MaxRecipients", "100")
	conn, err := srv.Dial()
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	lat := measureLatency(b, 500, mb, func(v string) error {
		m := ldap.NewModifyRequest(localdir.SampleVSDN("SERVER01", 1), nil)
		m.Replace("msExchSmtpMaxRecipients", []string{v})
		return conn.Modify(m)
	})
	reportPercentiles(b, lat)
	b.Logf("saves %d for %d changes", rn.r.Stats().Saves, len(lat))
}

// measureLatency makes changes×b.N modifications of vs1's MaxRecipients
// (modify sets msExchSmtpMaxRecipients to v) and returns, sorted, the
// times from each modify returning to the metabase file holding the value.
func measureLatency(b *testing.B, changes int, mb string, modify func(v string) error) []time.Duration {
	var lat []time.Duration
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		for i := 0; i < changes; i++ {
			v := strconv.Itoa(100000 + it*changes + i)
			want := []byte(`MaxRecipients="` + v + `"`)
			if err := modify(v); err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			for {
				data, _ := os.ReadFile(mb)
				if bytes.Contains(data, want) {
					break
				}
				if time.Since(t0) > waitLimit {
					b.Fatalf("change %d never reached the file", i)
				}
				time.Sleep(50 * time.Microsecond)
			}
			lat = append(lat, time.Since(t0))
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	return lat
}

// reportPercentiles reports p50, p99 and the maximum of sorted latencies
// in ms.
func reportPercentiles(b *testing.B, lat []time.Duration) {
	p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(p(0.5), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
	b.ReportMetric(p(1), "max-ms")
	b.ReportMetric(0, "ns/op")
}

// bulkLDIF is n extra virtual servers of SERVER01 (numbers 1001…), for slapadd.
func bulkLDIF(n int) string { return bulkLDIFAt(n, localdir.SampleVSDN) }

// bulkLDIFAt is bulkLDIF with the DNs vsDN gives.
func bulkLDIFAt(n int, vsDN func(server string, n int) string) string {
	var sb strings.Builder
	for i := 0; i < n; i++ {
		num := 1001 + i
		fmt.Fprintf(&sb, "dn: %s\nobjectClass: protocolCfgSMTPServer\ncn: %d\nmsExchServerBindings: 127.0.0.%d:%d:\n"+
			"msExchSmtpMaxRecipients: %d\nmsExchSmtpFullyQualifiedDomainName: vs%d.example.com\nmsExchServerAutoStart: TRUE\n\n",
			vsDN("SERVER01", num), num, 1+num/60000, 1024+num%60000, num, num)
	}
	return sb.String()
}

// BenchmarkFullReplication10k: a full replication (no state) of 10,000
// extra virtual-server objects into an empty metabase, with --once; it
// reports the seconds per replication and the Go heap in use afterwards.
//
//	go test -run '^$' -bench BenchmarkFullReplication10k -benchtime 3x ./replicator/
func BenchmarkFullReplication10k(b *testing.B) {
	const n = 10000
	srv := localdir.StartT(b, localdir.Options{ExtraLDIF: []string{bulkLDIF(n)}})
	benchFullReplication(b, n, srv.ConfigDN, func() replicator.Source { return newSource(srv, "syncrepl", true) })
}

// benchFullReplication times b.N full replications (no state, a new
// metabase each) from a directory holding the sample and n bulkLDIF
// virtual servers, and checks that each holds them all.
func benchFullReplication(b *testing.B, n int, base string, src func() replicator.Source) {
	last := fmt.Sprintf("/LM/SmtpSvc/%d", 1000+n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		mb := filepath.Join(b.TempDir(), "MetaBase.xml")
		r, err := replicator.New(replicator.Options{Metabase: mb, Server: "SERVER01", Base: base, Source: src()})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err = r.Run(ctx)
		cancel()
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if got := r.Stats().Objects; got < n {
			b.Fatalf("%d objects replicated, want ≥ %d", got, n)
		}
		if load(mb).Node(last) == nil {
			b.Fatalf("virtual server %s missing", last)
		}
		b.StartTimer()
	}
}
