package smtpsvc

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// TestShutdownLetsStartedSessionsFinish: when Run's context ends (SIGTERM in
// cmd/smtpsvc) the worker stops accepting at once, a session in the middle
// of a transaction still completes it, and Run returns once it has quit.
func TestShutdownLetsStartedSessionsFinish(t *testing.T) {
	p1 := freePort(t)
	w := startWorker(t, tree(1, vsDef{n: 1, ports: []int{p1}, fqdn: "one.example.com"}).Bytes(), nil)
	w.waitVersion(t, 1)
	c, err := smtp.Dial(addr(p1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("a@example.net", nil); err != nil {
		t.Fatal(err)
	}

	stopped := make(chan struct{})
	go func() { w.stop(); close(stopped) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr(p1), time.Second)
		if err != nil {
			break // no longer accepting
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting 10 s after the shutdown began")
		}
		time.Sleep(2 * time.Millisecond)
	}
	select {
	case <-stopped:
		t.Fatal("Run returned while a session was in the middle of a transaction")
	default:
	}
	if err := c.Rcpt("user@example.com", nil); err != nil {
		t.Fatalf("RCPT during the drain: %v", err)
	}
	wc, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(wc, "Subject: drain\r\n\r\nfinished during the shutdown\r\n")
	if err := wc.Close(); err != nil {
		t.Fatalf("DATA during the drain: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the last session quit")
	}
}
