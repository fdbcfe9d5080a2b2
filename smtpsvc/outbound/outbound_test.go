package outbound_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/smtpsvc/delivery"
	"github.com/ds2mb/ds2mb/smtpsvc/internal/testnet"
	"github.com/ds2mb/ds2mb/smtpsvc/outbound"
	"github.com/emersion/go-smtp"
)

// TestDialFailures: null MX, NXDOMAIN, SERVFAIL and a host without an
// address each give the result RFC 7505 / RFC 3463 call for.
func TestDialFailures(t *testing.T) {
	d := testnet.StartDNS(t)
	d.Add(t, "nullmx.test. 60 IN MX 0 .")
	d.Add(t, "noaddr.test. 60 IN MX 10 ghost.noaddr.test.")
	d.ServFail("broken.test")
	c := &outbound.Client{Resolver: outbound.NewDNSResolver([]string{d.Addr}, 2*time.Second), HeloName: "out.test", Port: 1}
	for domain, want := range map[string]string{"nullmx.test": "5.1.10", "gone.test": "5.1.2", "broken.test": "4.4.3", "noaddr.test": "4.4.4"} {
		_, err := c.Dial(context.Background(), outbound.Target{Domain: domain})
		var de *outbound.DialError
		if !errors.As(err, &de) || de.Result.Status != want {
			t.Errorf("%s: %v, want status %s", domain, err, want)
		}
	}
}

// TestSendPerRecipientAndReuse: one refused RCPT fails alone, the others
// are delivered, and the connection takes another transaction.
func TestSendPerRecipientAndReuse(t *testing.T) {
	port, ls := testnet.SamePort(t, "127.0.0.2")
	sink := testnet.ServeSink(t, ls[0])
	sink.Rcpt = func(to string) *smtp.SMTPError {
		if to == "no@remote.test" {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	}
	d := testnet.StartDNS(t)
	d.MX(t, "remote.test", 10, "mx.remote.test", "127.0.0.2")
	c := &outbound.Client{Resolver: outbound.NewDNSResolver([]string{d.Addr}, 2*time.Second), HeloName: "out.test", Port: port}
	conn, err := c.Dial(context.Background(), outbound.Target{Domain: "remote.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msg := "Subject: x\r\n\r\nbody\r\n"
	job := &delivery.Job{ID: "1", From: "a@sender.test", Rcpts: []string{"yes@remote.test", "no@remote.test"}, Size: int64(len(msg)),
		Open: testnet.Opener(msg)}
	res := conn.Send(context.Background(), job)
	if !res[0].OK() || !res[1].Permanent() || res[1].Status != "5.1.1" || !res[1].FromRemote {
		t.Fatalf("results %+v: want yes@ delivered, no@ 550 5.1.1 from the remote", res)
	}
	if !conn.Usable() {
		t.Fatal("connection not usable after a clean transaction")
	}
	job.Rcpts = []string{"again@remote.test"}
	if r := conn.Send(context.Background(), job); !r[0].OK() {
		t.Fatalf("second transaction: %+v", r)
	}
	if sink.Count() != 2 {
		t.Errorf("sink got %d messages, want 2", sink.Count())
	}
}
