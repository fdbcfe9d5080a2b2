package spool

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestGroupSyncCovers: every caller of groupSync.do returns only after a
// run that started after it called, however the callers interleave, and
// concurrent callers share runs (fewer runs than callers) — the property
// that makes a shared directory fsync as durable as one per message.
func TestGroupSyncCovers(t *testing.T) {
	var g groupSync
	var clock atomic.Int64
	type span struct{ start, end int64 }
	var mu sync.Mutex
	var runs []span
	run := func() error {
		s := clock.Add(1)
		time.Sleep(200 * time.Microsecond) // an fsync takes a while
		mu.Lock()
		runs = append(runs, span{s, clock.Add(1)})
		mu.Unlock()
		return nil
	}
	const callers, rounds = 20, 50
	calls := make([][]span, callers)
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for range rounds {
				t0 := clock.Add(1)
				if err := g.do(run); err != nil {
					t.Error(err)
				}
				calls[c] = append(calls[c], span{t0, clock.Add(1)})
			}
		})
	}
	wg.Wait()
	for c, cs := range calls {
		for _, call := range cs {
			covered := false
			for _, r := range runs {
				if r.start > call.start && r.end < call.end {
					covered = true
					break
				}
			}
			if !covered {
				t.Fatalf("caller %d: call %v returned with no run inside it (runs %v)", c, call, runs)
			}
		}
	}
	if len(runs) >= callers*rounds {
		t.Errorf("%d runs for %d calls: concurrent callers did not share", len(runs), callers*rounds)
	}
	t.Logf("%d calls, %d runs", callers*rounds, len(runs))
}

// TestGroupSyncError: a failed run's error reaches the callers it covered,
// and a later caller gets the next run's answer.
func TestGroupSyncError(t *testing.T) {
	var g groupSync
	boom := errors.New("fsync: I/O error")
	if err := g.do(func() error { return boom }); err != boom {
		t.Fatalf("failed run: %v, want %v", err, boom)
	}
	if err := g.do(func() error { return nil }); err != nil {
		t.Fatalf("the next run succeeded, but do said %v", err)
	}
}
