package session_test

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/ds2mb/ds2mb/schema"
	"github.com/ds2mb/ds2mb/smtpsvc/events"
	"github.com/ds2mb/ds2mb/smtpsvc/session"
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
// MAIL to the final 250 (p50, p99), and the CPU time of the process
// (server and clients) per message.
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
	cpu0 := processCPU()
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
	cpu := processCPU() - cpu0
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
		// CPU is steadier than msgs/s, which follows the disk's fsyncs.
		b.ReportMetric(float64(cpu.Microseconds())/float64(len(all)), "cpu-µs/msg")
	}
}

// processCPU is the user and system CPU time the test process has used:
// server and clients, which run in it.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAccept4KBindings10 is BenchmarkAccept4K with ten event bindings
// on the path of every message, sinks that only answer Continue: two on
// OnInboundCommand (every command), one each on OnMessageStart,
// OnPerRecipient, OnBeforeData and OnServerResponse (every reply), and
// four on the transport chain (OnArrival ×2, OnPreCategorize,
// OnPostCategorize). It measures what the dispatcher itself costs;
// BenchmarkAccept4KBindings10Stamp has the four transport sinks rewrite
// the message.
func BenchmarkAccept4KBindings10(b *testing.B) { benchBindings(b, false) }

// BenchmarkAccept4KBindings10Stamp: the same ten bindings, the four
// transport ones each adding a header, so every message is read back and
// spooled again with the sinks' changes before the 250.
func BenchmarkAccept4KBindings10Stamp(b *testing.B) { benchBindings(b, true) }

func benchBindings(b *testing.B, rewrite bool) {
	reg := events.NewRegistry()
	reg.Register(events.Class{Name: "bench.Continue", New: func(map[string]string) (events.Sink, error) {
		return events.SinkFunc(func(context.Context, *events.Event) events.Result { return events.Result{} }), nil
	}})
	reg.Register(events.Class{Name: "bench.Stamp", New: func(map[string]string) (events.Sink, error) {
		return events.SinkFunc(func(_ context.Context, ev *events.Event) events.Result {
			d, err := ev.Msg.Data()
			if err != nil {
				return events.Result{Err: err}
			}
			ev.Msg.SetData(append([]byte("X-Bench: stamped\r\n"), d...))
			return events.Result{}
		}), nil
	}})
	transport := "bench.Continue"
	if rewrite {
		transport = "bench.Stamp"
	}
	var bs []events.Binding
	for i, t := range []events.Type{events.InboundCommand, events.InboundCommand, events.MessageStart, events.PerRecipient,
		events.BeforeData, events.ServerResponse, events.Submission, events.Submission, events.PreCategorize, events.PostCategorize} {
		class := "bench.Continue"
		if t.Kind == schema.TransportEvent {
			class = transport
		}
		rule, _ := events.ParseRule("MAIL FROM=*@example.org")
		if t.Kind == schema.ProtocolEvent {
			rule, _ = events.ParseRule("")
		}
		id := fmt.Sprintf("{00000000-0000-0000-0000-%012d}", i)
		bs = append(bs, events.Binding{Location: schema.BindingLocation(1, t.CATID, id), Event: t, ID: id,
			SinkClass: class, Enabled: true, Priority: 100 + i, Rule: rule})
	}
	d, probs := events.Build(bs, events.Options{Registry: reg})
	if len(probs) > 0 {
		b.Fatal(probs)
	}
	f := startProps(b, nil, nil, &session.Env{Events: d})
	runClients(b, f.addr, 20)
}
