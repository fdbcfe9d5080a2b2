package outbound_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"slices"
	"strings"
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
// are delivered, and the connection takes another transaction; with
// PIPELINING and CHUNKING (one write per transaction), with PIPELINING
// alone (DATA) and with neither (one command at a time).
func TestSendPerRecipientAndReuse(t *testing.T) {
	for name, configure := range map[string]func(*smtp.Server){
		"pipelining+chunking": func(*smtp.Server) {},
		"pipelining":          func(s *smtp.Server) { s.DisableCHUNKING = true },
		"one at a time":       func(s *smtp.Server) { s.DisableCHUNKING, s.DisablePIPELINING = true, true },
	} {
		t.Run(name, func(t *testing.T) { testSendPerRecipientAndReuse(t, configure) })
	}
}

func testSendPerRecipientAndReuse(t *testing.T, configure func(*smtp.Server)) {
	port, ls := testnet.SamePort(t, "127.0.0.2")
	sink := testnet.ServeSinkWith(t, ls[0], configure)
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
	// Every recipient refused: with CHUNKING the message went along as a
	// BDAT chunk the server must read and drop; either way the session
	// goes on in step with the server.
	job.Rcpts = []string{"no@remote.test"}
	if r := conn.Send(context.Background(), job); r[0].Status != "5.1.1" || !conn.Usable() {
		t.Fatalf("every recipient refused: %+v, usable %v", r, conn.Usable())
	}
	job.Rcpts = []string{"again@remote.test"}
	if r := conn.Send(context.Background(), job); !r[0].OK() {
		t.Fatalf("the transaction after: %+v", r)
	}
	if sink.Count() != 2 {
		t.Errorf("sink got %d messages, want 2", sink.Count())
	}
	if m := sink.Messages(); len(m) == 2 && (string(m[1].Data) != msg || len(m[1].To) != 1 || m[1].To[0] != "again@remote.test") {
		t.Errorf("second message %q to %v, want the job's message to again@", m[1].Data, m[1].To)
	}
}

// scripted serves one SMTP session on a loopback socket: a greeting, an
// EHLO reply offering keywords, then session, which reads and answers as
// the test needs. What session returns reaches the test through the
// channel when the session ends.
func scripted(t *testing.T, keywords []string, session func(c *textproto.Conn) []string) (port int, seen <-chan []string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ch := make(chan []string, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			ch <- nil
			return
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(30 * time.Second))
		c := textproto.NewConn(nc)
		c.PrintfLine("220 scripted.test ESMTP")
		if l, err := c.ReadLine(); err != nil || !strings.HasPrefix(l, "EHLO ") {
			ch <- []string{"no EHLO: " + l}
			return
		}
		c.PrintfLine("250-scripted.test Hello")
		for _, k := range keywords {
			c.PrintfLine("250-%s", k)
		}
		c.PrintfLine("250 HELP")
		ch <- session(c)
	}()
	return l.Addr().(*net.TCPAddr).Port, ch
}

// lines reads n command lines.
func lines(c *textproto.Conn, n int) []string {
	var got []string
	for range n {
		l, err := c.ReadLine()
		if err != nil {
			return append(got, "read: "+err.Error())
		}
		got = append(got, l)
	}
	return got
}

// answer writes replies.
func answer(c *textproto.Conn, replies ...string) {
	for _, r := range replies {
		c.PrintfLine("%s", r)
	}
}

// quit reads the client's last commands (RSET, QUIT) until it leaves.
func quit(c *textproto.Conn) []string {
	var got []string
	for {
		l, err := c.ReadLine()
		if err != nil {
			return got
		}
		got = append(got, l)
		if l == "QUIT" {
			answer(c, "221 2.0.0 bye")
			return got
		}
		answer(c, "250 2.0.0 ok")
	}
}

func dialScripted(t *testing.T, port int) *outbound.Conn {
	t.Helper()
	// A client that waited for a reply between pipelined commands would
	// wait for ever (the server answers only once it has the whole
	// group): it gives up after 5 s and the test sees a 4.4.2.
	c := &outbound.Client{HeloName: "out.test", Port: port, Timeout: 5 * time.Second}
	conn, err := c.Dial(context.Background(), outbound.Target{SmartHost: "[127.0.0.1]"})
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

func job(msg string, rcpts ...string) *delivery.Job {
	return &delivery.Job{ID: "1", From: "a@sender.test", Rcpts: rcpts, Size: int64(len(msg)), Open: testnet.Opener(msg)}
}

// TestPipelinedChunk: to a server offering PIPELINING and CHUNKING, MAIL,
// both RCPTs and the message as one BDAT LAST chunk arrive before the
// server has answered anything (RFC 2920, RFC 3030), and the replies,
// read in order, land on the right recipients.
func TestPipelinedChunk(t *testing.T) {
	msg := "Subject: chunk\r\n\r\nbody\r\n"
	port, seen := scripted(t, []string{"PIPELINING", "CHUNKING", "SIZE 1000000"}, func(c *textproto.Conn) []string {
		got := lines(c, 4)
		body := make([]byte, len(msg))
		if _, err := io.ReadFull(c.R, body); err != nil {
			return append(got, "body: "+err.Error())
		}
		got = append(got, string(body))
		answer(c, "250 2.1.0 sender ok", "250 2.1.5 ok", "550 5.1.1 no such user", "250 2.0.0 queued as X")
		return append(got, quit(c)...)
	})
	conn := dialScripted(t, port)
	res := conn.Send(context.Background(), job(msg, "yes@remote.test", "no@remote.test"))
	if !res[0].OK() || !res[1].Permanent() || res[1].Status != "5.1.1" {
		t.Errorf("results %+v: want yes@ delivered, no@ 550 5.1.1", res)
	}
	if !conn.Usable() {
		t.Error("connection not usable after a clean transaction")
	}
	conn.Close()
	want := []string{fmt.Sprintf("MAIL FROM:<a@sender.test> SIZE=%d", len(msg)), "RCPT TO:<yes@remote.test>", "RCPT TO:<no@remote.test>",
		fmt.Sprintf("BDAT %d LAST", len(msg)), msg, "QUIT"}
	if got := <-seen; !slices.Equal(got, want) {
		t.Errorf("server read %q\nwant %q", got, want)
	}
}

// TestPipelinedData: with PIPELINING but no CHUNKING (and with CHUNKING
// for a message above MaxChunk), MAIL, RCPT and DATA arrive before any
// reply, the message follows the 354, dot-stuffed.
func TestPipelinedData(t *testing.T) {
	small := "Subject: data\r\n\r\n.leading dot\r\n"
	big := "Subject: big\r\n\r\n" + strings.Repeat("x", 998) + "\r\n"
	big += strings.Repeat(strings.Repeat("y", 998)+"\r\n", outbound.MaxChunk/1000+1)
	for name, tc := range map[string]struct {
		keywords []string
		msg      string
	}{
		"no CHUNKING":    {[]string{"PIPELINING"}, small},
		"above MaxChunk": {[]string{"PIPELINING", "CHUNKING"}, big},
	} {
		t.Run(name, func(t *testing.T) {
			port, seen := scripted(t, tc.keywords, func(c *textproto.Conn) []string {
				got := lines(c, 3)
				answer(c, "250 2.1.0 sender ok", "250 2.1.5 ok", "354 go ahead")
				body, err := c.ReadDotBytes()
				if err != nil {
					return append(got, "body: "+err.Error())
				}
				got = append(got, string(body))
				answer(c, "250 2.0.0 queued")
				return append(got, quit(c)...)
			})
			conn := dialScripted(t, port)
			if res := conn.Send(context.Background(), job(tc.msg, "yes@remote.test")); !res[0].OK() {
				t.Errorf("result %+v, want delivered", res[0])
			}
			conn.Close()
			want := []string{"MAIL FROM:<a@sender.test>", "RCPT TO:<yes@remote.test>", "DATA", strings.ReplaceAll(tc.msg, "\r\n", "\n"), "QUIT"}
			if got := <-seen; !slices.Equal(got, want) {
				t.Errorf("server read %.200q\nwant %.200q", got, want)
			}
		})
	}
}

// TestPipelinedRefusals: a refused MAIL fails every recipient with its
// reply even though the RCPTs were sent with it; a server that accepts
// DATA after refusing every RCPT gets an empty message (RFC 2920 §3.1),
// not the message; either way the client says RSET and the connection
// stays usable.
func TestPipelinedRefusals(t *testing.T) {
	msg := "Subject: refused\r\n\r\nbody\r\n"
	t.Run("MAIL refused", func(t *testing.T) {
		port, seen := scripted(t, []string{"PIPELINING", "CHUNKING"}, func(c *textproto.Conn) []string {
			got := lines(c, 4)
			io.CopyN(io.Discard, c.R, int64(len(msg)))
			answer(c, "550 5.7.1 sender refused", "503 5.5.1 MAIL first", "503 5.5.1 MAIL first", "503 5.5.1 RCPT first")
			return append(got, quit(c)...)
		})
		conn := dialScripted(t, port)
		res := conn.Send(context.Background(), job(msg, "a@remote.test", "b@remote.test"))
		for _, r := range res {
			if r.Status != "5.7.1" || !r.Permanent() {
				t.Errorf("result %+v: want the MAIL reply, 550 5.7.1", r)
			}
		}
		if !conn.Usable() {
			t.Error("connection not usable after a refused MAIL")
		}
		conn.Close()
		// RSET keeps the greeting: no second EHLO.
		want := []string{"MAIL FROM:<a@sender.test>", "RCPT TO:<a@remote.test>", "RCPT TO:<b@remote.test>", fmt.Sprintf("BDAT %d LAST", len(msg)),
			"RSET", "QUIT"}
		if got := <-seen; !slices.Equal(got, want) {
			t.Errorf("server read %q\nwant %q", got, want)
		}
	})
	t.Run("DATA accepted with no recipient", func(t *testing.T) {
		port, seen := scripted(t, []string{"PIPELINING"}, func(c *textproto.Conn) []string {
			got := lines(c, 3)
			answer(c, "250 2.1.0 sender ok", "550 5.1.1 no such user", "354 go ahead anyway")
			got = append(got, lines(c, 1)...)
			answer(c, "554 5.5.1 no valid recipients")
			return append(got, quit(c)...)
		})
		conn := dialScripted(t, port)
		res := conn.Send(context.Background(), job(msg, "no@remote.test"))
		if res[0].Status != "5.1.1" {
			t.Errorf("result %+v: want the RCPT reply, 550 5.1.1", res[0])
		}
		if !conn.Usable() {
			t.Error("connection not usable")
		}
		conn.Close()
		want := []string{"MAIL FROM:<a@sender.test>", "RCPT TO:<no@remote.test>", "DATA", ".", "RSET", "QUIT"}
		if got := <-seen; !slices.Equal(got, want) {
			t.Errorf("server read %q\nwant %q", got, want)
		}
	})
}
