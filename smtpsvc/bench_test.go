package smtpsvc

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/metabase"
	"github.com/ds2mb/ds2mb/schema"
	"github.com/ds2mb/ds2mb/smtpsvc/watch"
)

// domainsTree is a metabase with two virtual servers and n domain nodes on
// virtual server 1 (local, relay, smart-host and drop domains in turn).
func domainsTree(version uint64, port1, port2, n int, fqdn string) *metabase.Tree {
	t := tree(version, vsDef{n: 1, ports: []int{port1}, fqdn: fqdn}, vsDef{n: 2, ports: []int{port2}, fqdn: "two.example.com"})
	for d := range n {
		node := t.Ensure(schema.DomainLocation(1, fmt.Sprintf("d%d.example%d.org", d, d%17)), metabase.ClassDomain)
		switch d % 4 {
		case 0:
			node.Set("RouteAction", "16")
		case 1:
			node.Set("RouteAction", "4096")
		case 2:
			node.Set("RouteAction", "2")
			node.Set("RouteActionString", "[127.0.0.1]")
		case 3:
			node.Set("RouteAction", "1")
			node.Set("RouteActionString", "Drop")
		}
	}
	return t
}

// benchReload measures the time from a new MetaBase.xml renamed into place
// to the new configuration serving (the worker reports the new version,
// which it does only once the swapped routing table serves it), with 1,000
// domain nodes. Each round changes virtual server 1's FQDN; the banner of a
// new connection is checked (outside the timer) to show the new
// configuration really serves.
func benchReload(b *testing.B, wo watch.Options) {
	const domains = 1000
	p1, p2 := freePort(b), freePort(b)
	w := startWorker(b, domainsTree(0, p1, p2, domains, "v0.example.com").Bytes(), func(o *Options) { o.Watch = wo })
	w.waitVersion(b, 0)
	// Render the files beforehand: the replicator's rendering is not ours.
	files := make([][]byte, b.N)
	for i := range b.N {
		files[i] = domainsTree(uint64(i+1), p1, p2, domains, fmt.Sprintf("v%d.example.com", i+1)).Bytes()
	}
	b.SetBytes(int64(len(files[0])))
	b.ResetTimer()
	var total time.Duration
	for i := range b.N {
		t0 := time.Now()
		write(b, w.path, files[i])
		want := uint64(i + 1)
		for w.cfg.Load().Version != want {
			if time.Since(t0) > 20*time.Second {
				b.Fatalf("version %d not serving after 20 s", want)
			}
			time.Sleep(50 * time.Microsecond)
		}
		total += time.Since(t0)
		b.StopTimer()
		if l, err := greeting(addr(p1)); err != nil || !strings.Contains(l, fmt.Sprintf("v%d.example.com", want)) {
			b.Fatalf("after version %d: banner %q, %v", want, l, err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	h := w.Status().Reloads.Duration
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/write-to-serving")
	if h.Count > 0 {
		b.ReportMetric(h.Sum*1000/float64(h.Count), "ms/load-build-apply")
	}
}

// BenchmarkReload1000Domains uses the worker's default watch options (20 ms
// quiet period to coalesce bursts). Goal: under 50 ms from the file in place
// to the new configuration serving.
func BenchmarkReload1000Domains(b *testing.B) { benchReload(b, watch.Options{}) }

// BenchmarkReload1000DomainsQuiet1ms is the same with a 1 ms quiet period,
// to show what the coalescing costs.
func BenchmarkReload1000DomainsQuiet1ms(b *testing.B) {
	benchReload(b, watch.Options{Quiet: time.Millisecond})
}
