package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
)

// sinkOptions are the flags of sink mode (-sink).
type sinkOptions struct {
	addr    string        // where to listen, e.g. 127.0.0.1:2626
	expect  int64         // stop after this many messages (0 = only on a signal)
	timeout time.Duration // give up after this long (0 = never)
}

// sink is a discard-like SMTP server for delivery benchmarks: it accepts
// every sender and recipient, reads each message to the end and throws it
// away, and counts what it was given. A message counts once its 250 has
// been written, so a sender that sees the 250 finds it counted.
type sink struct {
	srv        *smtp.Server
	ln         net.Listener
	expect     int64
	messages   atomic.Int64
	recipients atomic.Int64
	bytes      atomic.Int64
	first      atomic.Int64 // Unix nanoseconds of the first counted message, 0 = none yet
	last       atomic.Int64 // Unix nanoseconds of the last counted message
	reachedOne sync.Once
	reached    chan struct{} // closed when expect messages have arrived
}

// startSink listens on addr and serves until close; with expect > 0,
// reached is closed when that many messages have been counted.
func startSink(addr string, expect int64) (*sink, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	k := &sink{ln: ln, expect: expect, reached: make(chan struct{})}
	k.srv = smtp.NewServer(k)
	k.srv.Domain = "sink.smtpload.test"
	k.srv.MaxMessageBytes = 64 << 20 // advertised as SIZE
	k.srv.EnableDSN = true           // so that NOTIFY= and RET= are taken too
	k.srv.EnableSMTPUTF8 = true
	k.srv.ReadTimeout = 5 * time.Minute
	k.srv.WriteTimeout = time.Minute
	k.srv.ErrorLog = discardLog{}
	go k.srv.Serve(ln)
	return k, nil
}

// Addr is the address the sink listens on.
func (k *sink) Addr() string { return k.ln.Addr().String() }

// close stops listening and drops the connections.
func (k *sink) close() { k.srv.Close() }

// summary is the one-line count: messages, recipients, bytes, the time
// from the first message to the last and the sink's own CPU time (so that
// a benchmark can say what the sink took from the machine).
func (k *sink) summary() string {
	span := 0.0
	if f := k.first.Load(); f != 0 {
		span = time.Duration(k.last.Load() - f).Seconds()
	}
	return fmt.Sprintf("sink %s: %d messages, %d recipients, %d bytes; first to last %.2fs; sink CPU %.2fs",
		k.Addr(), k.messages.Load(), k.recipients.Load(), k.bytes.Load(), span, cpuSeconds())
}

// cpuSeconds is this process's user and system CPU time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// counted records one message whose 250 has been written.
func (k *sink) counted(rcpts int, size int64) {
	now := time.Now().UnixNano()
	k.first.CompareAndSwap(0, now)
	k.last.Store(now)
	k.recipients.Add(int64(rcpts))
	k.bytes.Add(size)
	if n := k.messages.Add(1); k.expect > 0 && n >= k.expect {
		k.reachedOne.Do(func() { close(k.reached) })
	}
}

// NewSession starts a session (smtp.Backend).
func (k *sink) NewSession(*smtp.Conn) (smtp.Session, error) { return &sinkSession{sink: k}, nil }

// sinkSession is one connection to the sink.
type sinkSession struct {
	sink  *sink
	rcpts int   // recipients of the transaction under way
	size  int64 // bytes of the message read by Data
	done  bool  // Data read the whole message: count it at the next Reset
}

// Mail accepts every sender.
func (s *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }

// Rcpt accepts every recipient.
func (s *sinkSession) Rcpt(string, *smtp.RcptOptions) error { s.rcpts++; return nil }

// Data reads the message and throws it away.
func (s *sinkSession) Data(r io.Reader) error {
	n, err := io.Copy(io.Discard, r)
	if err != nil {
		return err
	}
	s.size, s.done = n, true
	return nil
}

// Reset ends the transaction. go-smtp calls it after it has written the
// reply to the end of DATA, which is when a message that Data took counts.
func (s *sinkSession) Reset() {
	if s.done {
		s.sink.counted(s.rcpts, s.size)
	}
	s.rcpts, s.size, s.done = 0, 0, false
}

// Logout ends the session.
func (s *sinkSession) Logout() error { return nil }

// discardLog drops go-smtp's log lines (a dropped connection is normal here).
type discardLog struct{}

// Printf drops the line.
func (discardLog) Printf(string, ...any) {}

// Println drops the line.
func (discardLog) Println(...any) {}

// runSink runs sink mode until SIGTERM or SIGINT, -expect messages or
// -sink-timeout, then prints the count on out. It fails when the timeout
// passed before the expected messages arrived.
func runSink(o sinkOptions, out io.Writer) error {
	k, err := startSink(o.addr, o.expect)
	if err != nil {
		return err
	}
	defer k.close()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	var timeout <-chan time.Time
	if o.timeout > 0 {
		t := time.NewTimer(o.timeout)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-k.reached:
		fmt.Fprintln(out, k.summary())
	case s := <-sig:
		fmt.Fprintf(out, "%s (%v)\n", k.summary(), s)
	case <-timeout:
		fmt.Fprintf(out, "%s (timeout after %v)\n", k.summary(), o.timeout)
		if o.expect > 0 {
			return errors.New("fewer messages than -expect before -sink-timeout")
		}
	}
	return nil
}
