package main

import (
	"fmt"
	"net/smtp"
	"strings"
	"testing"
	"time"
)

// dialSink starts a sink on a free loopback port and connects to it; both
// are closed when the test ends.
func dialSink(t *testing.T, expect int64) (*sink, *smtp.Client) {
	t.Helper()
	k, err := startSink("127.0.0.1:0", expect)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.close)
	c, err := smtp.Dial(k.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return k, c
}

// TestSinkCounts sends messages to a sink with net/smtp, one of them with
// two recipients, and checks the counts and that -expect is reached.
func TestSinkCounts(t *testing.T) {
	k, c := dialSink(t, 4)
	if err := c.Hello("test.example"); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{"PIPELINING", "8BITMIME", "SIZE"} {
		if ok, _ := c.Extension(ext); !ok {
			t.Errorf("EHLO does not offer %s", ext)
		}
	}
	for i := range 4 {
		rcpts := []string{"a@example.com"}
		if i == 0 {
			rcpts = append(rcpts, "b@example.org")
		}
		if err := c.Mail("load@example.net"); err != nil {
			t.Fatal(err)
		}
		for _, r := range rcpts {
			if err := c.Rcpt(r); err != nil {
				t.Fatal(err)
			}
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(w, "Subject: %d\r\n\r\nbody\r\n", i)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			select {
			case <-k.reached:
				t.Fatal("expect reached after 3 of 4 messages")
			default:
			}
		}
	}
	select {
	case <-k.reached:
	case <-time.After(5 * time.Second):
		t.Fatalf("expect not reached: %s", k.summary())
	}
	c.Quit()
	if m, r := k.messages.Load(), k.recipients.Load(); m != 4 || r != 5 {
		t.Errorf("counted %d messages, %d recipients; want 4, 5", m, r)
	}
	if s := k.summary(); !strings.Contains(s, ": 4 messages, 5 recipients,") {
		t.Errorf("summary %q", s)
	}
}

// TestSinkReset checks that a transaction abandoned by RSET, and one whose
// DATA never came, are not counted.
func TestSinkReset(t *testing.T) {
	k, c := dialSink(t, 0)
	if err := c.Mail("load@example.net"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("a@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("load@example.net"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("a@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	if m := k.messages.Load(); m != 0 {
		t.Errorf("counted %d messages, want 0", m)
	}
}

// TestRunSinkTimeout checks that sink mode prints its count and fails when
// -sink-timeout passes before -expect messages arrived.
func TestRunSinkTimeout(t *testing.T) {
	var out strings.Builder
	err := runSink(sinkOptions{addr: "127.0.0.1:0", expect: 1, timeout: 50 * time.Millisecond}, &out)
	if err == nil {
		t.Error("no error after the timeout")
	}
	if s := out.String(); !strings.Contains(s, ": 0 messages, 0 recipients,") || !strings.Contains(s, "timeout after 50ms") {
		t.Errorf("printed %q", s)
	}
}
