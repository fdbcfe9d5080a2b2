package protolog_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/smtpsvc/protolog"
)

// clock is an injectable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func TestDailyRotation(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 11, 26, 23, 59, 58, 0, time.UTC)}
	l := protolog.Open(dir, 3, protolog.Options{Period: 1, Computer: "HOST1", Now: c.now})
	defer protolog.Unregister(l)
	if l2 := protolog.Open(dir, 3, protolog.Options{}); l2 != l {
		t.Error("second Open of the same log is a different Log")
	}
	write := func(method, query string, status int) {
		if err := l.Write(&protolog.Entry{ClientIP: "192.0.2.1", Username: "client.example", ServerIP: "127.0.0.1",
			ServerPort: 25, Method: method, Query: query, Status: status, BytesRecv: 42, TimeTaken: 15 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	write("EHLO", "client.example", 250)
	write("MAIL", "FROM:<a b@example.org>", 250)
	c.set(time.Date(2026, 11, 27, 0, 0, 1, 0, time.UTC))
	write("QUIT", "", 240)

	day1 := read(t, filepath.Join(dir, "SMTPSVC3", "ex261126.log"))
	day2 := read(t, filepath.Join(dir, "SMTPSVC3", "ex261127.log"))
	want1 := "#Software: ds2mb smtpsvc\r\n#Version: 1.0\r\n#Date: 2026-11-26 23:59:58\r\n#Fields: " + protolog.Fields + "\r\n" +
		"2026-11-26 23:59:58 192.0.2.1 client.example SMTPSVC3 HOST1 127.0.0.1 25 EHLO client.example 250 0 42 15\r\n" +
		"2026-11-26 23:59:58 192.0.2.1 client.example SMTPSVC3 HOST1 127.0.0.1 25 MAIL FROM:<a+b@example.org> 250 0 42 15\r\n"
	if day1 != want1 {
		t.Errorf("day 1:\n%q\nwant\n%q", day1, want1)
	}
	if !strings.HasPrefix(day2, "#Software: ds2mb smtpsvc\r\n#Version: 1.0\r\n#Date: 2026-11-27 00:00:01\r\n") ||
		!strings.HasSuffix(day2, "2026-11-27 00:00:01 192.0.2.1 client.example SMTPSVC3 HOST1 127.0.0.1 25 QUIT - 240 0 42 15\r\n") {
		t.Errorf("day 2:\n%s", day2)
	}
}

func TestFileNames(t *testing.T) {
	at := time.Date(2026, 11, 26, 7, 0, 0, 0, time.UTC)
	for period, want := range map[int]string{0: "ex261126.log", 1: "ex261126.log", 2: "ex26114.log", 3: "ex2611.log", 4: "ex26112607.log"} {
		dir := t.TempDir()
		l := protolog.Open(dir, 1, protolog.Options{Period: period})
		if got := l.FileName(at); got != want {
			t.Errorf("period %d: %s, want %s", period, got, want)
		}
		protolog.Unregister(l)
	}
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPeriodChangeOnReopen(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 11, 26, 7, 0, 0, 0, time.UTC)
	l := protolog.Open(dir, 9, protolog.Options{Period: 1, Now: func() time.Time { return at }})
	defer protolog.Unregister(l)
	l.Write(&protolog.Entry{Method: "EHLO"})
	protolog.Open(dir, 9, protolog.Options{Period: 4})
	l.Write(&protolog.Entry{Method: "EHLO"})
	for _, name := range []string{"ex261126.log", "ex26112607.log"} {
		if _, err := os.Stat(filepath.Join(dir, "SMTPSVC9", name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestWriteFailureReportedOnce(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	os.WriteFile(blocker, nil, 0o600) // the log folder would have to live below a file
	l := protolog.Open(blocker, 1, protolog.Options{})
	defer protolog.Unregister(l)
	if err := l.Write(&protolog.Entry{Method: "EHLO"}); err == nil {
		t.Fatal("first failing write: no error")
	}
	if err := l.Write(&protolog.Entry{Method: "MAIL"}); err != nil {
		t.Errorf("second failing write reported again: %v", err)
	}
}
