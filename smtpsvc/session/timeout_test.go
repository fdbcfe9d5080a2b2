package session_test

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// idleOut reads the reply an idle session gets and checks the connection
// closes after it.
func (r *raw) idleOut() {
	r.t.Helper()
	if code, msg := r.read(); itoa(code)+" "+msg != "421 4.4.2 Idle timeout, bye bye" {
		r.t.Fatalf("idle session got %d %s, want 421 4.4.2", code, msg)
	}
	r.closed()
}

// slowly writes s in pieces with a pause before each, the pauses adding up
// to more than one second.
func (r *raw) slowly(s string, pieces int, pause time.Duration) {
	r.t.Helper()
	step := (len(s) + pieces - 1) / pieces
	for len(s) > 0 {
		time.Sleep(pause)
		n := min(step, len(s))
		if _, err := r.c.Write([]byte(s[:n])); err != nil {
			r.t.Fatal(err)
		}
		s = s[n:]
	}
}

// TestCommandTimeouts: each Smtp…Timeout (1 second here, ConnectionTimeout
// staying 600) closes a session idle after its command with 421 4.4.2,
// and does not apply after other commands; SmtpDataTimeout is an
// inactivity timeout (a message sent slowly but steadily is taken, one
// that stalls is not); without it, a short timeout of the command before
// DATA or BDAT does not cut the message, and ConnectionTimeout from the
// DATA or BDAT command does: a stalled message gets 421 4.4.2, the
// connection closes, nothing is spooled.
func TestCommandTimeouts(t *testing.T) {
	const pause = 1500 * time.Millisecond // longer than the 1 s timeouts
	msg := "Subject: slow\r\n\r\n" + strings.Repeat("line of the message\r\n", 20) + ".\r\n"
	cases := []struct {
		name string
		vs   props
		run  func(t *testing.T, r *raw)
	}{
		{"SmtpConnectTimeout", props{"SmtpConnectTimeout": "1"}, func(t *testing.T, r *raw) {
			r.idleOut()
		}},
		{"SmtpHeloTimeout", props{"SmtpHeloTimeout": "1"}, func(t *testing.T, r *raw) {
			time.Sleep(pause) // before HELO: ConnectionTimeout
			r.expect("EHLO client.test", "250")
			r.idleOut()
		}},
		{"SmtpMailFromTimeout", props{"SmtpMailFromTimeout": "1"}, func(t *testing.T, r *raw) {
			r.expect("EHLO client.test", "250")
			time.Sleep(pause)
			r.expect("MAIL FROM:<a@example.org>", "250")
			r.idleOut()
		}},
		{"SmtpRcptToTimeout", props{"SmtpRcptToTimeout": "1"}, func(t *testing.T, r *raw) {
			r.expect("EHLO client.test", "250")
			r.expect("MAIL FROM:<a@example.org>", "250")
			time.Sleep(pause)
			r.expect("RCPT TO:<user@example.com>", "250")
			r.idleOut()
		}},
		{"SmtpRcptToTimeout does not bound DATA", props{"SmtpRcptToTimeout": "1"}, func(t *testing.T, r *raw) {
			r.expect("EHLO client.test", "250")
			r.expect("MAIL FROM:<a@example.org>", "250")
			r.expect("RCPT TO:<user@example.com>", "250")
			r.expect("DATA", "354")
			r.slowly(msg, 4, 500*time.Millisecond)
			if code, m := r.read(); code != 250 {
				t.Fatalf("slow message: %d %s", code, m)
			}
		}},
		{"SmtpRcptToTimeout does not bound a BDAT chunk", props{"SmtpRcptToTimeout": "1"}, func(t *testing.T, r *raw) {
			r.expect("EHLO client.test", "250")
			r.expect("MAIL FROM:<a@example.org>", "250")
			r.expect("RCPT TO:<user@example.com>", "250")
			body := strings.TrimSuffix(msg, ".\r\n")
			r.tp.PrintfLine("BDAT %d LAST", len(body))
			r.slowly(body, 4, 500*time.Millisecond)
			if code, m := r.read(); code != 250 {
				t.Fatalf("slow chunk: %d %s", code, m)
			}
		}},
		{"ConnectionTimeout stalls DATA", props{"ConnectionTimeout": "1"}, func(t *testing.T, r *raw) {
			r.expect("EHLO client.test", "250")
			r.expect("MAIL FROM:<a@example.org>", "250")
			r.expect("RCPT TO:<user@example.com>", "250")
			r.expect("DATA", "354")
			r.c.Write([]byte("Subject: stalled\r\n\r\nthe rest never comes\r\n"))
			r.idleOut()
		}},
		{"ConnectionTimeout stalls a BDAT chunk", props{"ConnectionTimeout": "1"}, func(t *testing.T, r *raw) {
			r.expect("EHLO client.test", "250")
			r.expect("MAIL FROM:<a@example.org>", "250")
			r.expect("RCPT TO:<user@example.com>", "250")
			r.tp.PrintfLine("BDAT 1000 LAST")
			r.c.Write([]byte("Subject: stalled\r\n\r\nthe rest never comes\r\n"))
			r.idleOut()
		}},
		{"SmtpBdatTimeout", props{"SmtpBdatTimeout": "1"}, func(t *testing.T, r *raw) {
			r.expect("EHLO client.test", "250")
			r.expect("MAIL FROM:<a@example.org>", "250")
			r.expect("RCPT TO:<user@example.com>", "250")
			body := strings.TrimSuffix(msg, ".\r\n")
			r.tp.PrintfLine("BDAT %d", len(body))
			r.slowly(body, 5, 400*time.Millisecond) // 2 s in all, never idle 1 s
			if code, m := r.read(); code != 250 {
				t.Fatalf("slow but steady chunk: %d %s", code, m)
			}
			r.idleOut() // no next chunk
		}},
		{"SmtpRsetTimeout", props{"SmtpRsetTimeout": "1"}, func(t *testing.T, r *raw) {
			r.expect("EHLO client.test", "250")
			time.Sleep(pause)
			r.expect("RSET", "250")
			r.idleOut()
		}},
		{"SmtpDataTimeout", props{"SmtpDataTimeout": "1"}, func(t *testing.T, r *raw) {
			r.expect("EHLO client.test", "250")
			r.expect("MAIL FROM:<a@example.org>", "250")
			r.expect("RCPT TO:<user@example.com>", "250")
			r.expect("DATA", "354")
			r.slowly(msg, 5, 400*time.Millisecond) // 2 s in all, never idle 1 s
			if code, m := r.read(); code != 250 {
				t.Fatalf("slow but steady message: %d %s", code, m)
			}
			r.expect("MAIL FROM:<a@example.org>", "250")
			r.expect("RCPT TO:<user@example.com>", "250")
			r.expect("DATA", "354")
			r.c.Write([]byte("Subject: stalled\r\n\r\nthe rest never comes\r\n"))
			r.idleOut()
		}},
	}
	// The cases mostly wait; run them all at once (t.Run from several
	// goroutines, not t.Parallel, whose limit is GOMAXPROCS).
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(c.name, func(t *testing.T) { runTimeoutCase(t, c.vs, c.name, c.run) })
		}()
	}
}

// runTimeoutCase serves one case of TestCommandTimeouts.
func runTimeoutCase(t *testing.T, vs props, name string, run func(t *testing.T, r *raw)) {
	f := startProps(t, nil, vs, nil)
	run(t, dialRaw(t, f.addr))
	want := map[string]int{"SmtpDataTimeout": 1, "ConnectionTimeout stalls DATA": 0, "ConnectionTimeout stalls a BDAT chunk": 0, "SmtpBdatTimeout": 0}
	if n, ok := want[name]; ok {
		if got := len(spooled(t, f.dir+"/Queue")); got != n {
			t.Errorf("%d messages spooled, want %d (a stalled one is not)", got, n)
		}
	}
}
