package smtpsvc

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// TestReloadUnderLoad keeps 20 SMTP sessions sending without pause while the
// metabase is rewritten 100 times: every rewrite changes settings (the FQDN
// and MaxRecipients of virtual server 1, sometimes virtual server 2's), and
// along the way a binding is added and removed (virtual server 1's second
// port), a binding moves (virtual server 2 between two ports) and a virtual
// server is removed and re-added (3). Each rewrite is waited for until it
// serves, so there are 100 real swaps under load.
//
// It asserts zero failed transactions anywhere (a session that started on a
// generation that was then replaced, moved or removed finishes there), and
// zero refused connections on bindings that exist both in the configuration
// serving and in the one about to be written.
func TestReloadUnderLoad(t *testing.T) {
	const (
		rewrites   = 100
		clients    = 20
		perSession = 3
	)
	p1, p2, p3, p4, p5, p6 := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
	gen := func(i int) []vsDef {
		vs1 := vsDef{n: 1, ports: []int{p1}, fqdn: fmt.Sprintf("v%d.vs1.example.com", i), maxRcpt: 100 + i}
		if (i/5)%2 == 1 {
			vs1.ports = append(vs1.ports, p2) // a binding added, later removed
		}
		vs2 := vsDef{n: 2, ports: []int{p6, p3}, fqdn: fmt.Sprintf("v%d.vs2.example.com", i/3)}
		if (i/10)%2 == 1 {
			vs2.ports = []int{p6, p4} // a binding moved
		}
		out := []vsDef{vs1, vs2}
		if (i/7)%2 == 0 {
			out = append(out, vsDef{n: 3, ports: []int{p5}, fqdn: "vs3.example.com"}) // removed and re-added
		}
		return out
	}
	bindings := func(i int) map[string]bool {
		m := map[string]bool{}
		for _, v := range gen(i) {
			for _, p := range v.ports {
				m[addr(p)] = true
			}
		}
		return m
	}

	w := startWorker(t, tree(0, gen(0)...).Bytes(), nil)
	w.waitVersion(t, 0)

	// present holds the bindings a client may rely on now; the writer
	// changes it only while no client is dialling.
	var pmu sync.RWMutex
	present := bindings(0)

	stable := []string{addr(p1), addr(p6)}
	moving := []string{addr(p2), addr(p3), addr(p4), addr(p5)}
	var (
		messages, sessions             atomic.Int64
		failedTx, refusedPresent       atomic.Int64
		refusedGone, acceptedOnChanged atomic.Int64
		resetGone, spanned             atomic.Int64
		firstErr                       atomic.Value
	)
	fail := func(counter *atomic.Int64, err error) {
		counter.Add(1)
		firstErr.CompareAndSwap(nil, err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				a := stable[c%len(stable)]
				if c >= 14 {
					a = moving[(c+k)%len(moving)]
				}
				pmu.RLock()
				must := present[a]
				conn, err := net.DialTimeout("tcp", a, 5*time.Second)
				pmu.RUnlock()
				if err != nil {
					if must {
						fail(&refusedPresent, fmt.Errorf("connection to %s refused while the binding exists: %w", a, err))
					} else {
						refusedGone.Add(1)
						time.Sleep(time.Millisecond)
					}
					continue
				}
				if !slices.Contains(stable, a) {
					acceptedOnChanged.Add(1)
				}
				sessions.Add(1)
				v0 := w.cfg.Load().Version
				err = run(conn, perSession, &messages)
				if w.cfg.Load().Version != v0 {
					spanned.Add(1) // a reload happened during this session
				}
				if err != nil {
					var greetErr greetingError
					if errors.As(err, &greetErr) && !must {
						// The kernel completed the handshake just as the
						// listener of a binding being removed closed: a
						// refused connection on a binding that goes away.
						resetGone.Add(1)
						continue
					}
					fail(&failedTx, fmt.Errorf("session on %s: %w", a, err))
				}
			}
		})
	}

	start := time.Now()
	var applyTotal time.Duration
	for i := 1; i <= rewrites; i++ {
		pmu.Lock()
		next := bindings(i)
		for a := range present {
			if !next[a] {
				delete(present, a) // going away: a refusal from now on is expected
			}
		}
		pmu.Unlock()
		t0 := time.Now()
		write(t, w.path, tree(uint64(i), gen(i)...).Bytes())
		w.waitVersion(t, uint64(i))
		applyTotal += time.Since(t0)
		pmu.Lock()
		present = next
		pmu.Unlock()
	}
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()

	st := w.Status()
	t.Logf("%d rewrites in %v (mean %v from write to serving); %d sessions (%d spanning a reload), %d messages accepted; "+
		"%d failed transactions, %d refused connections on existing bindings; "+
		"%d connections to a binding being removed refused and %d reset before the greeting (allowed), %d sessions on changing bindings; reloads applied %d, refused %d",
		rewrites, elapsed.Round(time.Millisecond), (applyTotal / rewrites).Round(time.Microsecond),
		sessions.Load(), spanned.Load(), messages.Load(), failedTx.Load(), refusedPresent.Load(),
		refusedGone.Load(), resetGone.Load(), acceptedOnChanged.Load(), st.Reloads.Applied, st.Reloads.Refused)
	if err := firstErr.Load(); err != nil {
		t.Errorf("first failure: %v", err)
	}
	if failedTx.Load() != 0 || refusedPresent.Load() != 0 {
		t.Fatalf("%d failed transactions and %d refused connections on existing bindings; want none", failedTx.Load(), refusedPresent.Load())
	}
	if st.Reloads.Applied < rewrites || st.Reloads.Refused != 0 {
		t.Fatalf("reloads applied %d, refused %d; want %d applied", st.Reloads.Applied, st.Reloads.Refused, rewrites)
	}
	if messages.Load() == 0 || acceptedOnChanged.Load() == 0 || spanned.Load() == 0 {
		t.Fatalf("the load did not run: %d messages, %d sessions on changing bindings, %d sessions spanning a reload",
			messages.Load(), acceptedOnChanged.Load(), spanned.Load())
	}
	var accepted uint64
	for _, s := range st.Servers {
		accepted += s.MessagesAccepted
	}
	// Virtual server 3 was removed and re-added: its counters live on, so
	// the per-server sums cover every message.
	if accepted != uint64(messages.Load()) {
		t.Errorf("status counts %d messages accepted, the clients %d", accepted, messages.Load())
	}
}

// run speaks SMTP on conn: EHLO, n transactions, QUIT.
func run(conn net.Conn, n int, messages *atomic.Int64) error {
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			// No reply at all: the connection was closed before the greeting.
			return greetingError{err}
		}
		return fmt.Errorf("greeting/EHLO: %w", err)
	}
	for i := range n {
		if err := sendOne(c, i); err != nil {
			return err
		}
		messages.Add(1)
	}
	return c.Quit()
}

// greetingError is a connection closed before the server said anything.
type greetingError struct{ err error }

func (e greetingError) Error() string { return "closed before the greeting: " + e.err.Error() }
func (e greetingError) Unwrap() error { return e.err }
