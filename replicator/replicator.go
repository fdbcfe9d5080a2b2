package replicator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ds2mb/ds2mb/metabase"
)

// ChangeKind says what a Change reports.
type ChangeKind int

// The kinds of change a Source reports.
const (
	// ChangeUpsert: an object was added or modified (UUID, DN, Attrs; the
	// whole object, a rename keeps the UUID with the new DN).
	ChangeUpsert ChangeKind = iota + 1
	// ChangeDelete: the object with UUID is gone.
	ChangeDelete
	// ChangePresent: the object with UUID is unchanged and still there
	// (present phase of a refresh).
	ChangePresent
	// ChangeRefreshBegin: a refresh (initial content or resume) begins;
	// Full is true when it lists everything (no cookie).
	ChangeRefreshBegin
	// ChangeRefreshEnd: the refresh is complete; with Reconcile, every
	// object neither upserted nor present during it is deleted.
	ChangeRefreshEnd
	// ChangeCookie: only a new cookie.
	ChangeCookie
	// ChangeConnLost: the connection was lost (Reason); the source redials.
	ChangeConnLost
	// ChangeConnRestored: connected and bound again.
	ChangeConnRestored
	// ChangeCookieReset: the directory refused the cookie (Reason); a full
	// refresh follows.
	ChangeCookieReset
)

// Change is one report of a Source. A non-empty Cookie on any change is the
// resume point once that change is applied.
type Change struct {
	Kind      ChangeKind
	UUID      string // lower-case entryUUID
	DN        string
	Attrs     map[string][]string
	Full      bool
	Reconcile bool
	Cookie    []byte
	Reason    string // ConnLost, CookieReset; never holds a credential
	// Stamp is the directory's change stamp of an upserted object
	// (OpenLDAP's entryCSN), "" when the source did not read one. Stamps
	// of one directory order as strings.
	Stamp string
}

// Source is a directory source: it reports changes through emit, which
// never blocks, until ctx is cancelled (it then returns ctx.Err()), it
// finishes (a one-shot source returns nil after its first complete
// refresh), or it fails for good.
type Source interface {
	// Kind names the cookie's kind ("syncrepl", "poll"); a saved cookie of
	// another kind is not given back to the source.
	Kind() string
	Run(ctx context.Context, cookie []byte, emit func(Change)) error
}

// Options configure a Replicator.
type Options struct {
	Metabase string        // path of MetaBase.xml
	Server   string        // the server replicated, e.g. SERVER01
	Base     string        // configuration base DN (recorded in the state)
	Source   Source        // where changes come from
	Events   EventFunc     // receives events; nil = discard
	Quiet    time.Duration // save once no change came for this long; 0 = 1 ms
	MaxDelay time.Duration // ... or this long after the first unsaved change; 0 = 50 ms
	Retry    time.Duration // after a failed save; 0 = 1 s
	// Resync re-renders and saves this often even without a directory
	// change, so that local edits to replicated properties are set back
	// within that time; 0 = only on changes.
	Resync time.Duration
}

// Stats counts what a Replicator did.
type Stats struct {
	Saves   int64 // metabase versions written
	Renders int64 // renders (a render that changes nothing writes nothing)
	Changes int64 // changes applied
	Objects int   // objects in the mirror
}

// Replicator replicates one server's SMTP configuration into a metabase.
type Replicator struct {
	o     Options
	store *metabase.Store

	saves, renders, changes atomic.Int64
	objects                 atomic.Int64

	// Owned by the Run goroutine.
	mirror       Mirror
	owned        map[string]*OwnedNode
	cookie       []byte
	inRefresh    bool
	stamp        string // the highest change stamp applied
	fullRefresh  bool
	refreshes    int
	seen         map[string]bool
	lastRefusals map[string]bool
	lastIgnored  map[string]bool
	lastTree     *metabase.Tree // what the last save left on disk
	lastSig      fileSig        // the file it was saved as
}

// New checks the options and returns a Replicator.
func New(o Options) (*Replicator, error) {
	if o.Metabase == "" || o.Server == "" || o.Source == nil {
		return nil, errors.New("replicator: Metabase, Server and Source are required")
	}
	if o.Quiet <= 0 {
		o.Quiet = time.Millisecond
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 50 * time.Millisecond
	}
	if o.Retry <= 0 {
		o.Retry = time.Second
	}
	if o.Events == nil {
		o.Events = func(Event) {}
	}
	return &Replicator{o: o, store: metabase.Open(o.Metabase)}, nil
}

// Stats returns the counters; safe from any goroutine.
func (r *Replicator) Stats() Stats {
	return Stats{Saves: r.saves.Load(), Renders: r.renders.Load(), Changes: r.changes.Load(), Objects: int(r.objects.Load())}
}

func (r *Replicator) emit(e Event) { r.o.Events(e) }

// loadState restores mirror, ownership and cookie from the state file.
func (r *Replicator) loadState() {
	r.mirror, r.owned = Mirror{}, map[string]*OwnedNode{}
	st, err := LoadState(StatePath(r.o.Metabase))
	if err != nil {
		r.emit(Event{ID: EvStateDiscarded, Severity: SevWarning, Message: "state file unreadable; full replication", Reason: err.Error()})
		return
	}
	if st == nil {
		return
	}
	if st.Owned != nil {
		r.owned = st.Owned
	}
	var why string
	switch {
	case !strings.EqualFold(st.Server, r.o.Server):
		why = fmt.Sprintf("state is for server %s, not %s", st.Server, r.o.Server)
	case r.o.Base != "" && normDN(st.Base) != normDN(r.o.Base):
		why = fmt.Sprintf("state is for base %s, not %s", st.Base, r.o.Base)
	case st.Source != r.o.Source.Kind():
		why = fmt.Sprintf("state cookie is a %s cookie, the source is %s", st.Source, r.o.Source.Kind())
	}
	if why != "" {
		r.emit(Event{ID: EvStateDiscarded, Severity: SevWarning, Message: "saved state not usable; full replication (owned nodes kept for clean-up)", Reason: why})
		return
	}
	m, err := mirrorFromState(st.Objects)
	if err != nil {
		r.emit(Event{ID: EvStateDiscarded, Severity: SevWarning, Message: "state mirror unreadable; full replication", Reason: err.Error()})
		return
	}
	r.mirror, r.cookie, r.stamp = m, st.Cookie, st.Stamp
	r.objects.Store(int64(len(m)))
}

// queue is an unbounded FIFO of changes: the source never blocks on it.
type queue struct {
	mu     sync.Mutex
	items  []Change
	notify chan struct{}
}

func (q *queue) push(c Change) {
	q.mu.Lock()
	q.items = append(q.items, c)
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

func (q *queue) take() []Change {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items
}

// Run replicates until ctx is cancelled, the source finishes (a one-shot
// source), or the source fails. It saves a last time before returning, and
// returns nil unless the source failed or that last save did.
func (r *Replicator) Run(ctx context.Context) error {
	r.loadState()
	mode := "full replication"
	if len(r.cookie) > 0 {
		mode = "resume from cookie"
	}
	r.emit(Event{ID: EvStart, Severity: SevInfo, Message: fmt.Sprintf("replicator started: server %s, metabase %s, source %s, %s",
		r.o.Server, r.o.Metabase, r.o.Source.Kind(), mode)})
	if len(r.cookie) > 0 {
		r.emit(Event{ID: EvResume, Severity: SevInfo, Message: "resuming from the saved cookie", Count: len(r.mirror)})
	}

	q := &queue{notify: make(chan struct{}, 1)}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srcDone := make(chan error, 1)
	go func() { srcDone <- r.o.Source.Run(sctx, r.cookie, q.push) }()

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	dirty := false
	var dirtySince time.Time
	schedule := func(now time.Time) {
		if !dirty || r.inRefresh {
			return
		}
		if dirtySince.IsZero() {
			dirtySince = now
		}
		at := now.Add(r.o.Quiet)
		if max := dirtySince.Add(r.o.MaxDelay); max.Before(at) {
			at = max
		}
		timer.Reset(time.Until(at))
	}
	flush := func() error {
		if !dirty || r.inRefresh {
			return nil
		}
		if err := r.save(); err != nil {
			timer.Reset(r.o.Retry)
			return err
		}
		dirty, dirtySince = false, time.Time{}
		return nil
	}
	apply := func() {
		for _, c := range q.take() {
			if r.applyChange(c) {
				dirty = true
			}
		}
	}
	var resync <-chan time.Time
	if r.o.Resync > 0 {
		tk := time.NewTicker(r.o.Resync)
		defer tk.Stop()
		resync = tk.C
	}
	defer r.emit(Event{ID: EvStopped, Severity: SevInfo, Message: "replicator stopped"})
	for {
		select {
		case <-resync:
			if r.refreshes > 0 {
				dirty = true
				schedule(time.Now())
			}
		case <-q.notify:
			apply()
			schedule(time.Now())
		case <-timer.C:
			flush()
		case err := <-srcDone:
			apply()
			ferr := flush()
			if ctx.Err() != nil {
				return ferr
			}
			if err == nil {
				err = ferr
			}
			return err
		case <-ctx.Done():
			cancel()
			<-srcDone
			apply()
			return flush()
		}
	}
}

// applyChange updates the mirror; it reports whether a save is due.
func (r *Replicator) applyChange(c Change) bool {
	r.changes.Add(1)
	due := false
	switch c.Kind {
	case ChangeRefreshBegin:
		r.inRefresh, r.seen, r.fullRefresh = true, map[string]bool{}, c.Full
		if c.Full {
			r.emit(Event{ID: EvFullBegin, Severity: SevInfo, Message: "full replication begins"})
		}
	case ChangeUpsert:
		r.mirror[c.UUID] = &Object{DN: c.DN, Attrs: c.Attrs}
		if c.Stamp > r.stamp {
			r.stamp = c.Stamp
		}
		if r.inRefresh {
			r.seen[c.UUID] = true
		}
		r.emit(Event{ID: EvObjectReplicated, Severity: SevDebug, Message: "object replicated", DN: c.DN})
		due = true
	case ChangePresent:
		if r.inRefresh {
			r.seen[c.UUID] = true
		}
	case ChangeDelete:
		if o, ok := r.mirror[c.UUID]; ok {
			delete(r.mirror, c.UUID)
			r.emit(Event{ID: EvObjectDeleted, Severity: SevDebug, Message: "object deleted", DN: o.DN})
			due = true
		}
	case ChangeRefreshEnd:
		if r.inRefresh && c.Reconcile {
			for id, o := range r.mirror {
				if !r.seen[id] {
					delete(r.mirror, id)
					r.emit(Event{ID: EvObjectDeleted, Severity: SevDebug, Message: "object deleted (absent from the refresh)", DN: o.DN})
				}
			}
		}
		sev := SevDebug // the periodic delete-detection passes of polling
		if r.refreshes == 0 || r.fullRefresh {
			sev = SevInfo
		}
		r.refreshes++
		r.inRefresh, r.seen, r.fullRefresh = false, nil, false
		r.emit(Event{ID: EvFullDone, Severity: sev, Message: "refresh complete", Count: len(r.mirror)})
		due = true
	case ChangeConnLost:
		r.emit(Event{ID: EvConnectionLost, Severity: SevWarning, Message: "directory connection lost; redialling with backoff", Reason: c.Reason})
	case ChangeConnRestored:
		r.emit(Event{ID: EvConnectionRestored, Severity: SevInfo, Message: "directory connection restored"})
	case ChangeCookieReset:
		r.cookie = nil
		r.emit(Event{ID: EvCookieReset, Severity: SevWarning, Message: "the directory refused the resume cookie; full replication", Reason: c.Reason})
	}
	if len(c.Cookie) > 0 {
		// A cookie alone (a write elsewhere in the directory) is saved
		// with the next real change: resuming from an older cookie only
		// re-reads more.
		r.cookie = append([]byte(nil), c.Cookie...)
	}
	r.objects.Store(int64(len(r.mirror)))
	return due
}

// fileSig identifies a version of the metabase file on disk.
type fileSig struct {
	info os.FileInfo
}

func statSig(path string) fileSig {
	info, err := os.Stat(path)
	if err != nil {
		return fileSig{}
	}
	return fileSig{info: info}
}

func (a fileSig) same(b fileSig) bool {
	if a.info == nil || b.info == nil {
		return a.info == nil && b.info == nil
	}
	return os.SameFile(a.info, b.info) && a.info.ModTime().Equal(b.info.ModTime()) && a.info.Size() == b.info.Size()
}

// current returns the metabase as it is on disk: the tree this replicator
// saved last when the file is still that one, else the file parsed.
func (r *Replicator) current() (*metabase.Tree, fileSig, error) {
	sig := statSig(r.o.Metabase)
	if r.lastTree != nil && r.lastSig.info != nil && sig.same(r.lastSig) {
		return r.lastTree, sig, nil
	}
	t, err := r.store.Load()
	return t, sig, err
}

// save renders the mirror, merges it into the current metabase, saves it
// when it changed, then writes the state. Should the file change between
// reading and saving (an operator's mbctl), the merge is redone on the new
// file, so that a local edit is never lost to a race.
func (r *Replicator) save() error {
	r.renders.Add(1)
	var out *metabase.Tree
	var owned map[string]*OwnedNode
	var written bool
	for attempt := 0; ; attempt++ {
		rend := Render(r.mirror, r.o.Server) // Merge consumes it
		if attempt == 0 {
			r.report(rend)
		}
		cur, sig, err := r.current()
		if err != nil {
			r.emit(Event{ID: EvSaveFailed, Severity: SevError, Message: "cannot read the current metabase; not saving", Reason: err.Error()})
			return err
		}
		var evs []Event
		out, owned, evs, err = Merge(cur, rend, r.owned)
		if err != nil {
			for _, e := range evs {
				r.emit(e)
			}
			r.emit(Event{ID: EvSaveFailed, Severity: SevError, Message: "not saving", Reason: err.Error()})
			return err
		}
		if attempt < 3 && !statSig(r.o.Metabase).same(sig) {
			continue // changed under us: merge again
		}
		// Saved only over the version merged from: a save by another
		// writer in between (mbctl restore) is merged into, never undone.
		written, err = r.store.SaveOver(out, cur.Version)
		if errors.Is(err, metabase.ErrChanged) && attempt < 8 {
			r.lastTree = nil
			continue
		}
		if err != nil {
			r.lastTree = nil
			r.emit(Event{ID: EvSaveFailed, Severity: SevError, Message: "metabase save failed", Reason: err.Error()})
			return err
		}
		for _, e := range evs {
			r.emit(e)
		}
		break
	}
	if written {
		r.saves.Add(1)
		r.emit(Event{ID: EvSaved, Severity: SevInfo, Message: "metabase saved", Count: int(out.Version), Value: r.stamp})
	}
	r.lastTree, r.lastSig = out, statSig(r.o.Metabase)
	r.owned = owned
	st := &State{Server: r.o.Server, Base: r.o.Base, Source: r.o.Source.Kind(), Cookie: r.cookie, Metabase: out.Version, Stamp: r.stamp, Owned: owned}
	if err := saveState(StatePath(r.o.Metabase), st, r.mirror); err != nil {
		r.emit(Event{ID: EvSaveFailed, Severity: SevError, Message: "state save failed (the metabase was saved)", Reason: err.Error()})
		return err
	}
	return nil
}

// report raises refusal and ignore events, each once while it persists.
func (r *Replicator) report(rend *Rendered) {
	now := map[string]bool{}
	for _, f := range rend.Refused {
		k := f.Origin + "\x00" + f.Attribute + "\x00" + f.Value + "\x00" + f.Reason
		now[k] = true
		if r.lastRefusals[k] {
			continue
		}
		msg := "directory value refused; the property keeps its last good value or default"
		if f.Structural {
			msg = "directory object refused; its previous nodes are kept as they were"
		}
		r.emit(Event{ID: EvValueRefused, Severity: SevWarning, Message: msg, DN: f.DN, Attribute: f.Attribute, Value: f.Value,
			Reason: f.Reason, Location: f.Location, Property: f.Property})
	}
	r.lastRefusals = now
	ign := map[string]bool{}
	for _, g := range rend.Ignored {
		k := g.DN + "\x00" + g.Reason
		ign[k] = true
		if !r.lastIgnored[k] {
			r.emit(Event{ID: EvObjectIgnored, Severity: SevDebug, Message: "object not replicated", DN: g.DN, Reason: g.Reason})
		}
	}
	r.lastIgnored = ign
}
