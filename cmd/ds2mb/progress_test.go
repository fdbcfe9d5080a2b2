package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/ds2mb/ds2mb/deploy/localdir"
	"github.com/ds2mb/ds2mb/replicator"
	"github.com/ds2mb/ds2mb/replicator/source"
)

// TestProgressOnTerminal: on a terminal (a pseudo-terminal here) a full
// replication draws a progress line and ends it with the number of objects
// read, which is what the directory holds under the filter; the log lines
// still arrive whole. Not on a terminal, nothing is drawn.
func TestProgressOnTerminal(t *testing.T) {
	srv := localdir.StartT(t, localdir.Options{})
	t.Setenv("DS2MB_BIND_PASSWORD", srv.Password)
	cfg := source.Config{URL: srv.URL, BindDN: srv.BindDN, Password: srv.Password, BaseDN: source.SearchBase(srv.ConfigDN)}
	want, err := cfg.CountObjects(context.Background())
	if err != nil || want < 5 {
		t.Fatalf("CountObjects: %d, %v; want the sample's objects", want, err)
	}

	ptm, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptm.Close()
	var screen bytes.Buffer
	read := make(chan struct{})
	go func() { io.Copy(&screen, ptm); close(read) }()
	mb := filepath.Join(t.TempDir(), "MetaBase.xml")
	code := run(args(srv, mb, "--once"), tty)
	tty.Close()
	<-read // the master reads until the terminal is closed
	out := screen.String()
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	m := regexp.MustCompile(`full replication: (\d+) objects read in \S+ \(\d+/s\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no progress summary on the terminal:\n%q", out)
	}
	if n, _ := strconv.Atoi(m[1]); n != want {
		t.Errorf("progress says %d objects read; the directory holds %d under the filter", n, want)
	}
	if !strings.Contains(out, "\r\033[Kfull replication: 0 objects read") && !strings.Contains(out, "\r\033[Kfull replication: 0 of ") {
		t.Errorf("no progress line drawn at the start:\n%q", out)
	}
	if !regexp.MustCompile(`(?m)^(\r\033\[K)?time=\S+ level=INFO msg="refresh complete" event=1011 count=\d+\r?$`).MatchString(out) {
		t.Errorf("the log line is not whole on its own line:\n%q", out)
	}

	// Not a terminal: no progress line, no control characters.
	var log bytes.Buffer
	if code := run(args(srv, filepath.Join(t.TempDir(), "MetaBase.xml"), "--once"), &log); code != 0 {
		t.Fatalf("exit %d:\n%s", code, log.String())
	}
	if strings.Contains(log.String(), "full replication: ") || strings.ContainsAny(log.String(), "\r\033") {
		t.Errorf("progress drawn into a log that is not a terminal:\n%q", log.String())
	}
}

// TestProgressRemaining: once the objects are counted the line says how
// many remain and about how long they take.
func TestProgressRemaining(t *testing.T) {
	var screen bytes.Buffer
	counted := make(chan struct{})
	p := newProgress(&screen, func(context.Context) (int, error) { defer close(counted); return 4, nil })
	p.every = 0
	ctx := context.Background()
	p.observe(ctx, replicator.Change{Kind: replicator.ChangeRefreshBegin, Full: true})
	<-counted
	for p.mu.Lock(); p.total < 0; p.mu.Lock() {
		p.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	p.mu.Unlock()
	time.Sleep(2 * time.Millisecond) // a rate above zero
	p.observe(ctx, replicator.Change{Kind: replicator.ChangeUpsert})
	if !regexp.MustCompile(`\r\033\[Kfull replication: 1 of 4 objects read, \d+/s, 3 remaining \(about \S+\)$`).MatchString(screen.String()) {
		t.Fatalf("progress line after 1 of 4:\n%q", screen.String())
	}
	fmt.Fprintln(p, "a log line")
	if !strings.Contains(screen.String(), "\r\033[Ka log line\n\r\033[Kfull replication: 1 of 4 objects read, ") {
		t.Fatalf("a log line does not clear and redraw the progress line:\n%q", screen.String())
	}
	p.observe(ctx, replicator.Change{Kind: replicator.ChangePresent})
	p.observe(ctx, replicator.Change{Kind: replicator.ChangeRefreshEnd})
	if !regexp.MustCompile(`\r\033\[Kfull replication: 2 objects read in \S+ \(\d+/s\)\n$`).MatchString(screen.String()) {
		t.Fatalf("summary:\n%q", screen.String())
	}
	// A resumed (not full) refresh draws nothing.
	screen.Reset()
	p.observe(ctx, replicator.Change{Kind: replicator.ChangeRefreshBegin})
	p.observe(ctx, replicator.Change{Kind: replicator.ChangeUpsert})
	p.observe(ctx, replicator.Change{Kind: replicator.ChangeRefreshEnd})
	if screen.Len() != 0 {
		t.Fatalf("a resumed refresh drew %q", screen.String())
	}
}
