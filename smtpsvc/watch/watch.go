// Package watch tells the SMTP worker when its MetaBase.xml may have
// changed. It watches the file's folder with fsnotify (the replicator
// replaces the file by renaming a new one over it, which a watch on the file
// itself would lose), waits for a short quiet period so that a burst of
// events becomes one signal, and checks the file's identity (inode, size,
// modification time) on a slow timer as a safety net for missed events and
// for folders that cannot be watched.
//
// It is level-triggered: a signal only says "look again"; the caller loads
// the whole file and decides whether anything changed.
package watch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Defaults for Options.
const (
	DefaultQuiet    = 20 * time.Millisecond
	DefaultMaxDelay = 250 * time.Millisecond
	DefaultPoll     = 2 * time.Second
)

// Options tune a watch.
type Options struct {
	Quiet    time.Duration // wait this long without events before signalling; 0 = DefaultQuiet
	MaxDelay time.Duration // but never delay a signal longer than this under a steady stream; 0 = DefaultMaxDelay
	Poll     time.Duration // stat the file this often as a safety net; 0 = DefaultPoll, <0 = never
	// OnError, when set, is told of watcher errors that Run survives
	// (fsnotify queue overflow, a folder that cannot be watched yet). A
	// folder that stays unwatchable is reported once, not on every retry.
	OnError func(error)
}

// Run calls changed once at the start and then every time the file at path
// may have changed, until ctx ends. Calls are made one at a time from Run's
// goroutine; events that arrive during a call lead to one more call after
// it. Run returns nil when ctx ends, or an error when fsnotify cannot be
// used at all.
func Run(ctx context.Context, path string, o Options, changed func()) error {
	if o.Quiet <= 0 {
		o.Quiet = DefaultQuiet
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = DefaultMaxDelay
	}
	if o.MaxDelay < o.Quiet {
		o.MaxDelay = o.Quiet
	}
	if o.Poll == 0 {
		o.Poll = DefaultPoll
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	dir, base := filepath.Dir(abs), filepath.Base(abs)

	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	watching := false
	lastAddErr := ""
	addWatch := func() {
		if watching {
			return
		}
		if err := w.Add(dir); err != nil {
			if o.OnError != nil && err.Error() != lastAddErr {
				o.OnError(fmt.Errorf("watch %s: %w (checking every poll interval)", dir, err))
			}
			lastAddErr = err.Error()
			return
		}
		watching, lastAddErr = true, ""
	}
	addWatch()

	var pollC <-chan time.Time
	if o.Poll > 0 {
		t := time.NewTicker(o.Poll)
		defer t.Stop()
		pollC = t.C
	}

	last := identify(abs)
	fire := func() {
		last = identify(abs)
		changed()
	}
	fire()

	// Coalescing: the first event arms both timers; each further event
	// re-arms the quiet timer; whichever fires first signals.
	var quiet, maxd *time.Timer
	var quietC, maxC <-chan time.Time
	disarm := func() {
		if quiet != nil {
			quiet.Stop()
			maxd.Stop()
		}
		quiet, maxd, quietC, maxC = nil, nil, nil, nil
	}
	defer disarm()
	arm := func() {
		if quiet == nil {
			quiet, maxd = time.NewTimer(o.Quiet), time.NewTimer(o.MaxDelay)
			quietC, maxC = quiet.C, maxd.C
			return
		}
		quiet.Reset(o.Quiet)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("watch: fsnotify closed its event channel")
			}
			if ev.Name == abs || filepath.Base(ev.Name) == base && filepath.Dir(ev.Name) == dir {
				arm()
			} else if ev.Name == dir && ev.Has(fsnotify.Remove|fsnotify.Rename) {
				// The folder itself went away: watch it again when it is back.
				watching = false
				arm()
			}
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("watch: fsnotify closed its error channel")
			}
			if o.OnError != nil {
				o.OnError(err)
			}
			arm() // an overflow may have lost our event
		case <-quietC:
			disarm()
			fire()
		case <-maxC:
			disarm()
			fire()
		case <-pollC:
			addWatch()
			if id := identify(abs); id != last {
				disarm()
				fire()
			}
		}
	}
}

// identity is what the safety-net poll compares.
type identity struct {
	exists bool
	dev    uint64
	ino    uint64
	size   int64
	mtime  time.Time
}

func identify(path string) identity {
	fi, err := os.Stat(path)
	if err != nil {
		return identity{}
	}
	id := identity{exists: true, size: fi.Size(), mtime: fi.ModTime()}
	id.dev, id.ino = fileID(fi)
	return id
}
