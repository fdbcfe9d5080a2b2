// Command smtpload is a load generator for SMTP servers: N parallel sessions
// send messages of a given size, without pause, for a duration or a count,
// and it prints the accepted messages per second and the latency from MAIL
// to the final 250 (p50, p99).
//
//	smtpload -addr 127.0.0.1:2525 -sessions 20 -size 4096 -duration 10s
//	smtpload -addr 127.0.0.1:2525 -sessions 1 -count 2000        # one-session latency
//	smtpload -addr 127.0.0.1:2525 -idle 10000 -hold 10s -pid PID # RSS with idle sessions
//
// With -idle it instead opens that many sessions, says EHLO on each, holds
// them open for -hold and reports how many stayed open (and, with -pid, the
// server's resident memory at that point, from /proc).
//
// With -sink it is instead a discard-like SMTP server, the far end of
// delivery benchmarks: it accepts every MAIL and RCPT (EHLO offers
// PIPELINING, 8BITMIME and SIZE), reads each message and throws it away,
// counting messages and recipients. It prints one line with the counts (and
// its own CPU time) on SIGTERM or SIGINT, or once -expect messages have
// arrived, and exits 0; when -sink-timeout passes first it prints the line
// and exits 1.
//
//	smtpload -sink 127.0.0.1:2626 -expect 4000 -sink-timeout 120s
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// options are the flags of load and idle mode.
type options struct {
	addr       string
	sessions   int
	size       int
	duration   time.Duration
	count      int64
	perSession int
	from, to   string
	helo       string
	idle       int
	hold       time.Duration
	pid        int
	timeout    time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "127.0.0.1:2525", "server address")
	flag.IntVar(&o.sessions, "sessions", 20, "parallel sessions")
	flag.IntVar(&o.size, "size", 4096, "message size in bytes (headers included)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long to send (ignored with -count)")
	flag.Int64Var(&o.count, "count", 0, "send this many messages in all, then stop (0 = use -duration)")
	flag.IntVar(&o.perSession, "per-session", 0, "messages per connection before QUIT and a new connection (0 = one connection per session)")
	flag.StringVar(&o.from, "from", "load@example.net", "envelope sender")
	flag.StringVar(&o.to, "to", "user@example.com", "envelope recipient")
	flag.StringVar(&o.helo, "helo", "smtpload.test", "EHLO name")
	flag.IntVar(&o.idle, "idle", 0, "open this many idle sessions instead of sending")
	flag.DurationVar(&o.hold, "hold", 5*time.Second, "with -idle: how long to hold the sessions")
	flag.IntVar(&o.pid, "pid", 0, "with -idle: report this process's resident memory while the sessions are open")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Second, "per-command timeout")
	var so sinkOptions
	flag.StringVar(&so.addr, "sink", "", "be a discard sink listening on this address instead of sending")
	flag.Int64Var(&so.expect, "expect", 0, "with -sink: print the count and exit once this many messages arrived (0 = wait for a signal)")
	flag.DurationVar(&so.timeout, "sink-timeout", 0, "with -sink: print the count and exit after this long (exit 1 if -expect was not reached; 0 = no limit)")
	flag.Parse()
	var err error
	if so.addr != "" {
		err = runSink(so, os.Stdout)
	} else if o.idle > 0 {
		err = idle(o)
	} else {
		err = load(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "smtpload:", err)
		os.Exit(1)
	}
}

// message builds a message of about size bytes.
func message(o options) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: <%s>\r\nTo: <%s>\r\nSubject: smtpload\r\nMessage-ID: <load@smtpload.test>\r\n\r\n", o.from, o.to)
	line := strings.Repeat("abcdefghijklmnopqrstuvwxyz0123456789", 3)[:76] + "\r\n"
	for b.Len()+len(line) <= o.size {
		b.WriteString(line)
	}
	for b.Len() < o.size-2 {
		b.WriteByte('x')
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// result is what one sending session measured: the latency of each
// accepted message and its errors.
type result struct {
	lat  []time.Duration
	errs int
	err  error
}

// load sends messages over o.sessions parallel sessions and prints the
// rate and latency line.
func load(o options) error {
	if o.sessions < 1 {
		return errors.New("-sessions must be at least 1")
	}
	msg := message(o)
	var claimed atomic.Int64
	claim := func() bool {
		if o.count <= 0 {
			return true
		}
		return claimed.Add(1) <= o.count
	}
	deadline := time.Now().Add(o.duration)
	if o.count > 0 {
		deadline = time.Now().Add(24 * time.Hour)
	}
	results := make([]result, o.sessions)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range o.sessions {
		wg.Go(func() {
			r := &results[i]
			for time.Now().Before(deadline) {
				more, err := connection(o, msg, deadline, claim, r)
				if err != nil {
					r.errs++
					if r.err == nil {
						r.err = err
					}
					time.Sleep(10 * time.Millisecond)
				}
				if !more {
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var lat []time.Duration
	errs := 0
	var first error
	for _, r := range results {
		lat = append(lat, r.lat...)
		errs += r.errs
		if first == nil {
			first = r.err
		}
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		i := int(float64(len(lat)-1) * p)
		return lat[i]
	}
	fmt.Printf("addr %s sessions %d size %d: %d messages in %.2fs = %.0f msgs/s; MAIL→250 p50 %.3fms p99 %.3fms max %.3fms; errors %d\n",
		o.addr, o.sessions, len(msg), len(lat), elapsed.Seconds(), float64(len(lat))/elapsed.Seconds(),
		ms(pct(0.50)), ms(pct(0.99)), ms(pct(1)), errs)
	if first != nil {
		fmt.Printf("first error: %v\n", first)
	}
	if len(lat) == 0 {
		return errors.New("no message was accepted")
	}
	return nil
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// connection runs one SMTP connection; more is false when the work is done.
func connection(o options, msg []byte, deadline time.Time, claim func() bool, r *result) (more bool, err error) {
	conn, err := net.DialTimeout("tcp", o.addr, o.timeout)
	if err != nil {
		return true, err
	}
	c := smtp.NewClient(conn)
	c.CommandTimeout, c.SubmissionTimeout = o.timeout, o.timeout
	defer c.Close()
	if err := c.Hello(o.helo); err != nil {
		return true, fmt.Errorf("EHLO: %w", err)
	}
	for n := 0; o.perSession == 0 || n < o.perSession; n++ {
		if !time.Now().Before(deadline) || !claim() {
			c.Quit()
			return false, nil
		}
		t0 := time.Now()
		if err := c.Mail(o.from, nil); err != nil {
			return true, fmt.Errorf("MAIL: %w", err)
		}
		if err := c.Rcpt(o.to, nil); err != nil {
			return true, fmt.Errorf("RCPT: %w", err)
		}
		w, err := c.Data()
		if err != nil {
			return true, fmt.Errorf("DATA: %w", err)
		}
		if _, err := w.Write(msg); err != nil {
			return true, fmt.Errorf("DATA: %w", err)
		}
		if err := w.Close(); err != nil {
			return true, fmt.Errorf("end of DATA: %w", err)
		}
		r.lat = append(r.lat, time.Since(t0))
	}
	return true, c.Quit()
}

// idle opens o.idle sessions and holds them.
func idle(o options) error {
	conns := make([]*smtp.Client, o.idle)
	var failed atomic.Int64
	var first atomic.Value
	sem := make(chan struct{}, 200) // connect at most 200 at a time
	var wg sync.WaitGroup
	start := time.Now()
	for i := range o.idle {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			conn, err := net.DialTimeout("tcp", o.addr, o.timeout)
			if err == nil {
				c := smtp.NewClient(conn)
				c.CommandTimeout = o.timeout
				if err = c.Hello(o.helo); err == nil {
					conns[i] = c
					return
				}
				c.Close()
			}
			failed.Add(1)
			first.CompareAndSwap(nil, err)
		})
	}
	wg.Wait()
	opened := o.idle - int(failed.Load())
	fmt.Printf("idle sessions: %d of %d open after %.2fs", opened, o.idle, time.Since(start).Seconds())
	if err, ok := first.Load().(error); ok {
		fmt.Printf(" (first error: %v)", err)
	}
	fmt.Println()
	time.Sleep(o.hold / 2)
	if o.pid > 0 {
		rss, err := vmRSS(o.pid)
		if err != nil {
			fmt.Printf("RSS of %d: %v\n", o.pid, err)
		} else {
			fmt.Printf("RSS of pid %d with %d idle sessions: %.1f MiB\n", o.pid, opened, float64(rss)/1024)
		}
	}
	time.Sleep(o.hold - o.hold/2)
	alive := 0
	for _, c := range conns {
		if c == nil {
			continue
		}
		if err := c.Noop(); err == nil {
			alive++
		}
		c.Close()
	}
	fmt.Printf("idle sessions still answering after %v: %d\n", o.hold, alive)
	if opened == 0 {
		return errors.New("no session opened")
	}
	return nil
}

// vmRSS reads a process's resident set size in KiB from /proc.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kb int64
			_, err := fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb, err
		}
	}
	return 0, errors.New("no VmRSS line")
}
