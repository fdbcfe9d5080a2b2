package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/ds2mb/ds2mb/replicator"
)

// isTerminal reports whether w is a terminal (a person watching), where
// ds2mb draws a progress line during a full replication.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress draws one line on a terminal while a full replication reads the
// directory: objects read, rate and, once counted, how many remain. The log
// writes through it, so that a log line clears the progress line and the
// progress line is drawn again below it.
type progress struct {
	w     io.Writer
	count func(context.Context) (int, error) // the objects a full refresh reads
	every time.Duration                      // least time between two draws

	mu      sync.Mutex
	active  bool
	shown   bool // the line is on the screen
	read    int
	total   int // -1 while not counted
	started time.Time
	drawn   time.Time
}

func newProgress(w io.Writer, count func(context.Context) (int, error)) *progress {
	return &progress{w: w, count: count, every: 100 * time.Millisecond, total: -1}
}

// Write writes a log line: the progress line is cleared first and drawn
// again after it.
func (p *progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	n, err := p.w.Write(b)
	if p.active {
		p.draw(time.Now())
	}
	return n, err
}

// wrap returns src reporting its full refreshes to p.
func (p *progress) wrap(src replicator.Source) replicator.Source {
	return &progressSource{Source: src, p: p}
}

type progressSource struct {
	replicator.Source
	p *progress
}

func (s *progressSource) Run(ctx context.Context, cookie []byte, emit func(replicator.Change)) error {
	return s.Source.Run(ctx, cookie, func(c replicator.Change) {
		s.p.observe(ctx, c)
		emit(c)
	})
}

// observe follows a source's changes; it never blocks for long (emit
// must not).
func (p *progress) observe(ctx context.Context, c replicator.Change) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	switch {
	case c.Kind == replicator.ChangeRefreshBegin && c.Full:
		p.active, p.read, p.total, p.started = true, 0, -1, now
		go p.countObjects(ctx)
		p.draw(now)
	case !p.active:
	case c.Kind == replicator.ChangeUpsert || c.Kind == replicator.ChangePresent:
		p.read++
		if now.Sub(p.drawn) >= p.every {
			p.draw(now)
		}
	case c.Kind == replicator.ChangeRefreshEnd:
		p.active = false
		p.clear()
		took := now.Sub(p.started)
		fmt.Fprintf(p.w, "full replication: %d objects read in %v (%.0f/s)\n", p.read, took.Round(time.Millisecond), rate(p.read, took))
	}
}

// countObjects counts the objects the refresh will read, for "remaining";
// without the count the line shows what was read and the rate.
func (p *progress) countObjects(ctx context.Context) {
	n, err := p.count(ctx)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.total = n
	p.mu.Unlock()
}

// draw writes the progress line; p.mu is held.
func (p *progress) draw(now time.Time) {
	p.drawn = now
	took := now.Sub(p.started)
	r := rate(p.read, took)
	line := fmt.Sprintf("full replication: %d objects read, %.0f/s", p.read, r)
	if p.total >= 0 {
		left := max(p.total-p.read, 0)
		line = fmt.Sprintf("full replication: %d of %d objects read, %.0f/s, %d remaining", p.read, p.total, r, left)
		if r > 0 && left > 0 {
			line += fmt.Sprintf(" (about %v)", time.Duration(float64(left)/r*float64(time.Second)).Round(100*time.Millisecond))
		}
	}
	fmt.Fprintf(p.w, "\r\033[K%s", line)
	p.shown = true
}

// clear removes the progress line; p.mu is held.
func (p *progress) clear() {
	if p.shown {
		io.WriteString(p.w, "\r\033[K")
		p.shown = false
	}
}

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
