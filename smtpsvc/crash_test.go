package smtpsvc_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/metabase"
	"github.com/ds2mb/ds2mb/schema"
	"github.com/ds2mb/ds2mb/smtpsvc/internal/testnet"
	"github.com/emersion/go-smtp"
)

// TestCrashDuringLoadLosesNothing: the real smtpsvc binary relays a load of
// 2,000 messages to a remote domain (MX from a DNS server of the test, a
// sink SMTP server); it is killed with SIGKILL in the middle and started
// again on the same spool, and the clients send again what never got a
// 250. Every message that got a 250 must reach the sink; the test prints
// how many were lost (must be 0) and delivered twice (a delivery whose
// removal from the queue the kill cut off).
func TestCrashDuringLoadLosesNothing(t *testing.T) {
	dir := t.TempDir()
	bin := buildWorker(t, dir)

	dnsSrv := testnet.StartDNS(t)
	port, ls := testnet.SamePort(t, "127.0.0.2")
	sink := testnet.ServeSink(t, ls[0])
	dnsSrv.MX(t, "remote.test", 10, "mx.remote.test", "127.0.0.2")

	smtpPort := freePort(t)
	tr := metabase.New()
	tr.Version = 1
	tr.Ensure(schema.ServiceLocation, metabase.ClassService)
	vs := tr.Ensure(schema.ServerLocation(1), metabase.ClassServer)
	vs.Set("ServerBindings", fmt.Sprintf("127.0.0.1:%d:", smtpPort))
	vs.Set("FullyQualifiedDomainName", "crash.test")
	vs.Set("RemoteSmtpPort", fmt.Sprint(port))
	vs.Set("ExternalDnsServers", dnsSrv.Addr)
	vs.Set("SmtpRemoteProgressiveRetry", "1")
	tr.Ensure(schema.DomainLocation(1, "remote.test"), metabase.ClassDomain).Set("RouteAction", "4096")
	mb := filepath.Join(dir, "MetaBase.xml")
	if err := metabase.WriteFileAtomic(mb, tr.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	run := func(n int) *exec.Cmd {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("smtpsvc-%d.log", n)))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "--metabase", mb, "--status-addr", "", "--queue-minute", "1s")
		cmd.Stdout, cmd.Stderr = f, f
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); f.Close() })
		waitListening(t, fmt.Sprintf("127.0.0.1:%d", smtpPort))
		return cmd
	}
	worker := run(1)

	const total, clients = 2000, 8
	var acked sync.Map // message number -> true
	var nacked atomic.Int64
	next := make(chan int, total)
	for i := range total {
		next <- i
	}
	close(next)
	retry := make(chan int, total)
	// send runs the clients over the numbers of queue. In the first round
	// (again != nil) a message whose connection breaks or cannot be made
	// goes to again, for the round after the restart.
	send := func(queue <-chan int, again chan<- int, stopAt time.Time) {
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var c *smtp.Client
				for i := range queue {
					for {
						if time.Now().After(stopAt) {
							t.Errorf("message %d never accepted", i)
							return
						}
						if c == nil {
							var err error
							if c, err = smtp.Dial(fmt.Sprintf("127.0.0.1:%d", smtpPort)); err != nil {
								if again != nil {
									again <- i
									break
								}
								time.Sleep(20 * time.Millisecond)
								continue
							}
							if err = c.Hello("load.test"); err != nil {
								c.Close()
								c = nil
								continue
							}
						}
						if err := sendNumbered(c, i); err != nil {
							c.Close()
							c = nil
							if _, ok := err.(*smtp.SMTPError); !ok && again != nil {
								// The connection broke (the kill): the message may
								// not be acknowledged; send it again later.
								again <- i
								break
							}
							time.Sleep(20 * time.Millisecond)
							continue
						}
						acked.Store(i, true)
						nacked.Add(1)
						break
					}
				}
				if c != nil {
					c.Quit()
				}
			}()
		}
		wg.Wait()
	}

	// Kill the worker once a third of the load is acknowledged.
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		for nacked.Load() < total/3 {
			time.Sleep(time.Millisecond)
		}
		worker.Process.Signal(syscall.SIGKILL)
		worker.Wait()
	}()
	send(next, retry, time.Now().Add(5*time.Minute))
	<-killed
	atAck := nacked.Load()
	run(2)
	close(retry)
	send(retry, nil, time.Now().Add(5*time.Minute))
	t.Logf("acknowledged before the kill: about %d; after the restart, in all: %d", atAck, nacked.Load())

	// Wait for the sink to hold every acknowledged message.
	want := map[int]bool{}
	acked.Range(func(k, _ any) bool { want[k.(int)] = true; return true })
	id := regexp.MustCompile(`Message-ID: <(\d+)@load\.test>`)
	deadline := time.Now().Add(2 * time.Minute)
	var lost, dups int
	for {
		seen := map[int]int{}
		for _, m := range sink.Messages() {
			if g := id.FindSubmatch(m.Data); g != nil {
				var n int
				fmt.Sscan(string(g[1]), &n)
				seen[n]++
			}
		}
		lost, dups = 0, 0
		for n := range want {
			if seen[n] == 0 {
				lost++
			}
		}
		for _, c := range seen {
			if c > 1 {
				dups += c - 1
			}
		}
		if lost == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Printf("crash test: %d messages acknowledged, lost %d, duplicated %d\n", len(want), lost, dups)
	if lost != 0 {
		t.Errorf("%d acknowledged messages never delivered", lost)
	}
	if len(want) != total {
		t.Errorf("%d of %d messages acknowledged; the clients should have sent them all", len(want), total)
	}
}

func sendNumbered(c *smtp.Client, i int) error {
	if err := c.Mail("sender@example.com", nil); err != nil {
		return err
	}
	if err := c.Rcpt(fmt.Sprintf("r%d@remote.test", i%10), nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "From: sender@example.com\r\nTo: r@remote.test\r\nMessage-ID: <%d@load.test>\r\nSubject: load %d\r\n\r\n%s\r\n", i, i, strings.Repeat("x", 1000))
	return w.Close()
}

// buildWorker builds cmd/smtpsvc into dir.
func buildWorker(t *testing.T, dir string) string {
	t.Helper()
	gobin := "go"
	if _, err := exec.LookPath(gobin); err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	out := filepath.Join(dir, "smtpsvc")
	if b, err := exec.Command(gobin, "build", "-o", out, "github.com/ds2mb/ds2mb/cmd/smtpsvc").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitListening waits until an SMTP server greets on addr.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "220") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing greets on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
