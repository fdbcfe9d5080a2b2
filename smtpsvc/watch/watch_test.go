package watch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/metabase"
)

// recorder runs a watch and records what the file held at each call.
type recorder struct {
	mu    sync.Mutex
	seen  []string
	calls chan struct{}
}

func start(t *testing.T, path string, o Options) *recorder {
	t.Helper()
	r := &recorder{calls: make(chan struct{}, 1000)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, path, o, func() {
			b, _ := os.ReadFile(path)
			r.mu.Lock()
			r.seen = append(r.seen, string(b))
			r.mu.Unlock()
			r.calls <- struct{}{}
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	r.wait(t) // the initial call
	return r
}

func (r *recorder) wait(t *testing.T) {
	t.Helper()
	select {
	case <-r.calls:
	case <-time.After(10 * time.Second):
		t.Fatal("no change signalled within 10 s")
	}
}

// waitFor waits until a call saw want.
func (r *recorder) waitFor(t *testing.T, want string) int {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		n := len(r.seen)
		last := ""
		if n > 0 {
			last = r.seen[n-1]
		}
		r.mu.Unlock()
		if last == want {
			return n
		}
		select {
		case <-r.calls:
		case <-deadline:
			t.Fatalf("the watch never saw %q (last %q)", want, last)
		}
	}
}

func TestRenameIntoPlaceIsSeen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "MetaBase.xml")
	if err := os.WriteFile(path, []byte("v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := start(t, path, Options{Poll: -1})
	if err := metabase.WriteFileAtomic(path, []byte("v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "v2")
	// A file beside it is not ours.
	before := len(r.seen)
	os.WriteFile(filepath.Join(dir, "other.xml"), []byte("x"), 0o644)
	time.Sleep(200 * time.Millisecond)
	r.mu.Lock()
	after := len(r.seen)
	r.mu.Unlock()
	if after != before {
		t.Fatalf("a change to another file in the folder signalled %d times", after-before)
	}
}

func TestBurstIsCoalesced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "MetaBase.xml")
	r := start(t, path, Options{Poll: -1, Quiet: 50 * time.Millisecond, MaxDelay: time.Second})
	const writes = 50
	for i := range writes {
		if err := metabase.WriteFileAtomic(path, fmt.Appendf(nil, "v%d", i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n := r.waitFor(t, fmt.Sprintf("v%d", writes-1))
	if n-1 >= writes {
		t.Fatalf("%d writes gave %d signals; want them coalesced", writes, n-1)
	}
	t.Logf("%d atomic writes → %d signals", writes, n-1)
}

func TestPollFindsFileInFolderCreatedLater(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "later")
	path := filepath.Join(dir, "MetaBase.xml")
	r := start(t, path, Options{Poll: 50 * time.Millisecond, OnError: func(error) {}})
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "v1")
	// Later replacements are seen too.
	if err := metabase.WriteFileAtomic(path, []byte("v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "v2")
}
