// Package queue is the SMTP worker's queue manager: it delivers what the
// sessions, the Pickup folder and the server itself put into the spool,
// retries what could not go yet, and writes the delivery status
// notifications (RFC 3464) that tell senders what happened.
//
// # Lifecycle of a message
//
// A message is a spool file "<id>.eml" (package spool) in its virtual
// server's QueueDirectory. On start, and whenever a configuration names a
// queue folder not seen before, the manager scans the folder and takes up
// every message in it again, so a crash loses nothing the server
// acknowledged with 250. Sessions tell it of new messages at once
// (session.Queue).
//
// Each recipient has its own state: pending, delivered or failed. An
// attempt routes every pending recipient (Route) and hands the recipients
// of one destination to that destination's lane as one job; a lane owns
// the connections to its destination, at most MaxOutConnectionsPerDomain of
// them (and MaxOutConnections over all remote lanes of a virtual server),
// and sends up to MaxBatchedMessages messages over one connection. When
// every job of the attempt has answered, the message is settled: 2xx
// replies are delivered, 5xx failed, 4xx (and no reply) stay pending.
// Pending recipients are tried again after the next interval of
// SmtpRemoteProgressiveRetry (the last one repeats) or LocalRetryInterval,
// plus up to 10% jitter. A recipient pending for longer than
// Smtp{Remote,Local}DelayExpireMinutes gets one delay DSN; one pending
// longer than Smtp{Remote,Local}NDRExpireMinutes fails with 4.4.7.
//
// A message leaves the spool only when no recipient is pending: its file
// is removed then. What happened before that lives in "<id>.qst" beside it
// (JSON, written atomically), written only when an attempt leaves
// something pending, so a message delivered at its first attempt costs no
// write besides its spool file. A crash between a delivery and the write
// that records it makes that delivery happen again: mail is delivered at
// least once, never lost.
//
// # Notifications and Badmail
//
// Failed recipients whose NOTIFY asks for it (NOTIFY absent means
// FAILURE,DELAY), delays and, with NOTIFY=SUCCESS, deliveries are reported
// to the envelope sender in one DSN per kind and settlement, from the
// virtual server's postmaster with a null reverse path, with a copy of
// failure reports to SendNdrTo. A message with a null reverse path (a DSN
// among them) never gets a DSN: a failure of its recipients puts it in
// BadMailDirectory with the reason, and SendBadTo gets a notice.
package queue

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ds2mb/ds2mb/smtpsvc/config"
	"github.com/ds2mb/ds2mb/smtpsvc/delivery"
	"github.com/ds2mb/ds2mb/smtpsvc/events"
	"github.com/ds2mb/ds2mb/smtpsvc/outbound"
	"github.com/ds2mb/ds2mb/smtpsvc/spool"
)

// Options configure a Manager.
type Options struct {
	Logger *slog.Logger // nil = slog.Default()
	// Resolver answers the MX and address lookups of remote delivery; nil =
	// a resolver per virtual server over its ExternalDnsServers, else the
	// servers of ResolvConf.
	Resolver   outbound.Resolver
	ResolvConf string        // "" = /etc/resolv.conf
	DNSTimeout time.Duration // per query; 0 = 5 s
	// Events returns the event-sink dispatcher of a virtual server (the
	// StoreDriver event before local delivery, MsgTrackLog on every
	// recipient outcome); nil, or a nil result, = no sinks.
	Events func(instance int) *events.Dispatcher
	// Linger is how long an idle outbound connection waits for another
	// message of its destination before it says QUIT; 0 = 1 s.
	Linger time.Duration
	// LocalWorkers is how many deliveries into the Maildir store, the Drop
	// folders or LMTP run at once per destination; 0 = 4.
	LocalWorkers int
	// NoJitter turns the retry jitter off (tests that check a schedule).
	NoJitter bool
	Now      func() time.Time // nil = time.Now
}

// Manager delivers the mail of every virtual server's queue folder.
type Manager struct {
	o   Options
	log *slog.Logger
	now func() time.Time

	ctx     context.Context
	cancel  context.CancelFunc
	started chan struct{}

	mu      sync.Mutex
	servers map[int]*server     // by instance; kept after a virtual server goes, for its queued mail
	dirs    map[string]bool     // queue folders scanned
	msgs    map[string]*message // by spool file path
	byID    map[string]*message
	sched   schedule
	lanes   map[laneKey]*lane

	wake     chan struct{}
	workers  sync.WaitGroup
	stopping atomic.Bool // Run's context ended: idle connections close

	stats Stats
}

// Stats count what the manager did since it started.
type Stats struct {
	Delivered  atomic.Uint64 // recipients delivered
	Failed     atomic.Uint64 // recipients failed for good
	Deferred   atomic.Uint64 // recipient attempts that will be retried
	DSNs       atomic.Uint64 // notifications written
	Badmail    atomic.Uint64 // messages put in Badmail
	Attempts   atomic.Uint64 // message attempts
	Connection atomic.Uint64 // outbound connections opened
}

// message is one queued message.
type message struct {
	path, id string
	instance int
	stored   *spool.Stored
	state    state

	next    time.Time
	index   int  // in the schedule; -1 = not scheduled
	running bool // an attempt is under way
	deleted bool // removed by an operator while running
	// hasState: a ".qst" file may exist (one was found or written), so
	// removing the message removes it too; a message that never had one
	// costs no lookups for it.
	hasState bool

	// The current attempt.
	outstanding int
	results     map[int]delivery.Result // recipient index -> result
	local       map[int]bool            // recipient index -> routed to a local destination
}

// New returns a Manager that delivers nothing until Run.
func New(o Options) *Manager {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Linger <= 0 {
		o.Linger = time.Second
	}
	if o.LocalWorkers <= 0 {
		o.LocalWorkers = 4
	}
	if o.DNSTimeout <= 0 {
		o.DNSTimeout = 5 * time.Second
	}
	if o.ResolvConf == "" {
		o.ResolvConf = "/etc/resolv.conf"
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{o: o, log: o.Logger, now: o.Now, ctx: ctx, cancel: cancel, started: make(chan struct{}),
		servers: map[int]*server{}, dirs: map[string]bool{}, msgs: map[string]*message{}, byID: map[string]*message{},
		lanes: map[laneKey]*lane{}, wake: make(chan struct{}, 1)}
}

// Stats returns the manager's counters.
func (m *Manager) Stats() *Stats { return &m.stats }

// Update gives the manager a new configuration: the settings of each
// virtual server apply to attempts that start from now on, and a queue
// folder not seen before is scanned for messages.
func (m *Manager) Update(cfg *config.Config) {
	var scan []string
	m.mu.Lock()
	for _, vs := range cfg.Servers {
		srv := m.servers[vs.Instance]
		if srv == nil {
			srv = &server{instance: vs.Instance, out: newLimiter(0)}
			m.servers[vs.Instance] = srv
		}
		srv.update(m, vs)
		if !m.dirs[vs.QueueDir] {
			m.dirs[vs.QueueDir] = true
			scan = append(scan, vs.QueueDir)
		}
	}
	m.mu.Unlock()
	for _, dir := range scan {
		m.scan(dir)
	}
}

// scan takes up every message of a queue folder.
func (m *Manager) scan(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		m.log.Error("queue folder unreadable", "dir", dir, "err", err)
		return
	}
	emls := map[string]bool{}
	n := 0
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".eml") && !strings.HasPrefix(name, ".") && e.Type().IsRegular() {
			emls[strings.TrimSuffix(name, ".eml")] = true
		}
	}
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, stateSuffix) && !emls[strings.TrimSuffix(name, stateSuffix)]:
			// The state of a message that is gone (a crash between the two removals).
			os.Remove(filepath.Join(dir, name))
		case strings.HasSuffix(name, ".eml") && emls[strings.TrimSuffix(name, ".eml")]:
			if m.add(filepath.Join(dir, name), nil, 0, false) {
				n++
			}
		}
	}
	if n > 0 {
		m.log.Info("queue taken up", "dir", dir, "messages", n)
	}
}

// Enqueue takes a message just committed to a spool (session.Queue).
func (m *Manager) Enqueue(instance int, st *spool.Stored) { m.add(st.Path, st, instance, true) }

// EnqueueFile takes a spool file just committed by this process, to be
// read back from disk.
func (m *Manager) EnqueueFile(instance int, path string) { m.add(path, nil, instance, true) }

// add queues a spool file unless it is queued already; it reports whether
// it was new. st, when not nil, is the file as its Commit described it
// (the message then needs no reading back). fresh says the file was just
// committed by this process, so no state file can exist for it yet (ids
// are unique) and none is looked for.
func (m *Manager) add(path string, st *spool.Stored, instance int, fresh bool) bool {
	m.mu.Lock()
	if _, ok := m.msgs[path]; ok {
		m.mu.Unlock()
		return false
	}
	id := strings.TrimSuffix(filepath.Base(path), ".eml")
	msg := &message{path: path, id: id, instance: instance, index: -1, next: m.now(), stored: st}
	m.msgs[path] = msg
	m.byID[id] = msg
	m.mu.Unlock()

	var saved *state
	var err error
	if !fresh {
		saved, err = loadState(path)
		if err != nil {
			m.log.Warn("queue state unreadable; the message starts over", "id", id, "err", err)
		}
	}
	m.mu.Lock()
	msg.hasState = saved != nil || err != nil
	if saved != nil {
		msg.state = *saved
		if !saved.NextAttempt.IsZero() {
			msg.next = saved.NextAttempt
		}
	}
	if !msg.state.Frozen && !msg.deleted {
		m.sched.push(msg)
	}
	m.mu.Unlock()
	m.poke()
	return true
}

// Submit spools a message the server itself originates (a DSN, a Badmail
// notice) or takes from the Pickup folder, and queues it. It returns the
// queue id once the message is durable.
func (m *Manager) Submit(instance int, env *spool.Envelope, body io.Reader) (string, error) {
	m.mu.Lock()
	srv := m.servers[instance]
	m.mu.Unlock()
	if srv == nil || srv.spool == nil {
		return "", fmt.Errorf("queue: virtual server %d has no queue folder", instance)
	}
	env.Instance = instance
	if env.ReceivedAt.IsZero() {
		env.ReceivedAt = m.now()
	}
	msg, err := srv.spool.Create(env)
	if err != nil {
		return "", err
	}
	if _, err := msg.ReadFrom(body); err != nil {
		msg.Abort()
		return "", err
	}
	if _, err := msg.Commit(); err != nil {
		return "", err
	}
	st := msg.Stored()
	m.add(st.Path, st, instance, true)
	return msg.ID(), nil
}

func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends, then lets the attempts under way finish for
// at most grace (their unanswered recipients stay pending) and returns.
func (m *Manager) Run(ctx context.Context, grace time.Duration) error {
	close(m.started)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		m.mu.Lock()
		now := m.now()
		var due []*message
		for len(m.sched) > 0 && !m.sched[0].next.After(now) {
			due = append(due, heap.Pop(&m.sched).(*message))
		}
		wait := time.Hour
		if len(m.sched) > 0 {
			wait = m.sched[0].next.Sub(now)
		}
		m.mu.Unlock()
		for _, msg := range due {
			m.attempt(msg)
		}
		if len(due) > 0 {
			continue
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			m.stop(grace)
			return nil
		case <-m.wake:
		case <-t.C:
		}
	}
}

// stop ends the attempts under way: they get until grace to finish, then
// their connections are cut.
func (m *Manager) stop(grace time.Duration) {
	m.stopping.Store(true)
	done := make(chan struct{})
	go func() { m.workers.Wait(); close(done) }()
	m.mu.Lock()
	for _, l := range m.lanes {
		l.closeIdle()
	}
	m.mu.Unlock()
	select {
	case <-done:
	case <-time.After(grace):
		m.cancel()
		<-done
	}
	m.cancel()
}

// attempt starts delivery of a message's pending recipients.
func (m *Manager) attempt(msg *message) {
	if msg.stored == nil {
		st, err := spool.Load(msg.path)
		if errors.Is(err, os.ErrNotExist) {
			m.forget(msg)
			return
		}
		if err != nil {
			m.unreadable(msg, err)
			return
		}
		m.mu.Lock()
		msg.stored = st
		m.mu.Unlock()
	}
	m.mu.Lock()
	st := msg.stored
	if msg.instance == 0 {
		msg.instance = st.Envelope.Instance
	}
	if len(msg.state.Rcpts) != len(st.Envelope.To) {
		msg.state.Rcpts = make([]rcptState, len(st.Envelope.To))
		for i, to := range st.Envelope.To {
			msg.state.Rcpts[i] = rcptState{Addr: to, Status: pending}
		}
	}
	srv := m.servers[msg.instance]
	if srv == nil || msg.deleted {
		if !msg.deleted {
			// Its virtual server has no configuration yet: look again soon.
			msg.next = m.now().Add(time.Second)
			m.sched.push(msg)
		}
		m.mu.Unlock()
		return
	}
	msg.running = true
	msg.results = map[int]delivery.Result{}
	msg.local = map[int]bool{}
	vs := srv.vs
	m.mu.Unlock()
	m.stats.Attempts.Add(1)

	// One job per destination.
	type group struct {
		dest dest
		idx  []int
	}
	var groups []*group
	byKey := map[laneKey]*group{}
	env := msg.stored.Envelope
	for i, r := range msg.state.Rcpts {
		if r.Status != pending {
			continue
		}
		d, bad := route(vs, r.Addr)
		if bad != nil {
			res := *bad
			res.Rcpt = r.Addr
			msg.results[i] = res
			continue
		}
		msg.local[i] = d.local()
		g := byKey[d.key]
		if g == nil {
			g = &group{dest: d}
			byKey[d.key] = g
			groups = append(groups, g)
		}
		g.idx = append(g.idx, i)
	}
	m.mu.Lock()
	msg.outstanding = len(groups)
	m.mu.Unlock()
	if len(groups) == 0 {
		m.settle(msg)
		return
	}
	for _, g := range groups {
		j := &job{msg: msg, idx: g.idx, Job: delivery.Job{ID: msg.id, From: env.From, Params: env.FromParams,
			Size: msg.stored.Size, Open: msg.stored.Open}}
		if !g.dest.local() && srv.vs.Delivery.Masquerade != "" {
			j.From = masquerade(srv.vs, env.From)
		}
		for _, i := range g.idx {
			j.Rcpts = append(j.Rcpts, env.To[i])
			p := ""
			if i < len(env.ToParams) {
				p = env.ToParams[i]
			}
			j.RcptParams = append(j.RcptParams, p)
		}
		m.lane(srv, g.dest).submit(j)
	}
}

// finish records a job's results; the last job of an attempt settles the
// message.
func (m *Manager) finish(j *job, res []delivery.Result) {
	msg := j.msg
	m.mu.Lock()
	for k, i := range j.idx {
		r := delivery.TempFail(j.Rcpts[k], "4.3.0", "no result from the delivery agent")
		if k < len(res) {
			r = res[k]
		}
		msg.results[i] = r
	}
	msg.outstanding--
	last := msg.outstanding == 0
	m.mu.Unlock()
	if last {
		m.settle(msg)
	}
}

// settle applies an attempt's results: records them, notifies, and
// removes the message or schedules its next attempt.
func (m *Manager) settle(msg *message) {
	now := m.now()
	m.mu.Lock()
	srv := m.servers[msg.instance]
	vs := srv.vs
	results := msg.results
	msg.results = nil
	// The recipients' states change under m.mu (List reads them); the
	// notifications and files below only read them, and no other attempt
	// of this message runs meanwhile.

	env := msg.stored.Envelope
	var fails, delays, oks []int
	anyRemotePending := false
	age := now.Sub(env.ReceivedAt)
	for i := range msg.state.Rcpts {
		rs := &msg.state.Rcpts[i]
		r, tried := results[i]
		if rs.Status != pending {
			continue
		}
		if tried {
			rr := r
			rs.Attempts++
			rs.Last = &rr
			switch {
			case r.OK():
				rs.Status = delivered
				m.stats.Delivered.Add(1)
				oks = append(oks, i)
				m.track(msg, "delivered", rs)
				continue
			case r.Permanent():
				rs.Status = failed
				m.stats.Failed.Add(1)
				fails = append(fails, i)
				m.track(msg, "failed", rs)
				continue
			}
		}
		delay, expire := vs.Delivery.RemoteDelay, vs.Delivery.RemoteExpire
		if msg.local[i] {
			delay, expire = vs.Delivery.LocalDelay, vs.Delivery.LocalExpire
		}
		if age >= expire {
			last := "no delivery attempt was made"
			if rs.Last != nil {
				last = "last error: " + rs.Last.String()
			}
			exp := delivery.Result{Rcpt: rs.Addr, Code: 550, Status: "4.4.7", Text: "Delivery time expired; " + last}
			if rs.Last != nil {
				exp.RemoteMTA, exp.FromRemote = rs.Last.RemoteMTA, false
			}
			rs.Last, rs.Status = &exp, failed
			m.stats.Failed.Add(1)
			fails = append(fails, i)
			m.track(msg, "failed", rs)
			continue
		}
		m.stats.Deferred.Add(1)
		if tried {
			m.track(msg, "deferred", rs)
		}
		if !msg.local[i] {
			anyRemotePending = true
		}
		if !rs.DelayNotified && age >= delay {
			rs.DelayNotified = true
			delays = append(delays, i)
		}
	}
	pendingLeft := false
	for _, rs := range msg.state.Rcpts {
		if rs.Status == pending {
			pendingLeft = true
		}
	}
	deleted := msg.deleted
	if pendingLeft && !deleted {
		msg.state.Attempts++
	}
	m.mu.Unlock()

	m.notify(srv, msg, fails, delays, oks, now)
	if !pendingLeft || deleted {
		m.remove(msg)
		return
	}
	// No attempt runs until the next is scheduled below: a message waiting
	// for its retry keeps no copy in memory.
	msg.stored.Release()
	wait := vs.Delivery.LocalRetry
	if anyRemotePending {
		sched := vs.Delivery.RemoteRetry
		if len(sched) == 0 {
			sched = []time.Duration{15 * time.Minute}
		}
		wait = sched[min(msg.state.Attempts-1, len(sched)-1)]
	}
	if !m.o.NoJitter {
		wait += time.Duration(rand.Int64N(int64(wait)/10 + 1))
	}
	m.mu.Lock()
	msg.state.NextAttempt = now.Add(wait)
	st := msg.state
	st.Rcpts = append([]rcptState(nil), st.Rcpts...)
	msg.hasState = true // from the first write on, even a failed one
	m.mu.Unlock()
	if err := saveState(msg.path, &st); err != nil {
		m.log.Error("queue state not saved; a restart may repeat deliveries", "id", msg.id, "err", err)
	}
	m.mu.Lock()
	msg.running = false
	msg.next = msg.state.NextAttempt
	if !msg.state.Frozen {
		m.sched.push(msg)
	}
	m.mu.Unlock()
	m.poke()
}

// remove takes a message out of the spool.
func (m *Manager) remove(msg *message) {
	m.mu.Lock()
	var sp *spool.Spool
	if srv := m.servers[msg.instance]; srv != nil {
		sp = srv.spool
	}
	m.mu.Unlock()
	// Its spool keeps the file for the next message it writes.
	var err error
	switch {
	case sp == nil:
		err = os.Remove(msg.path)
	case msg.stored != nil:
		err = sp.RemoveStored(msg.stored)
	default:
		err = sp.Remove(msg.path)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		m.log.Error("delivered message not removed from the queue", "id", msg.id, "err", err)
	}
	m.mu.Lock()
	hasState := msg.hasState
	m.mu.Unlock()
	if hasState {
		os.Remove(statePath(msg.path))
	}
	m.forget(msg)
}

func (m *Manager) forget(msg *message) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if msg.index >= 0 {
		heap.Remove(&m.sched, msg.index)
	}
	msg.running = false
	delete(m.msgs, msg.path)
	delete(m.byID, msg.id)
}

// unreadable moves a spool file that cannot be read to Badmail.
func (m *Manager) unreadable(msg *message, err error) {
	m.mu.Lock()
	srv := m.servers[msg.instance]
	m.mu.Unlock()
	reason := fmt.Sprintf("the queue file %s cannot be read: %v", msg.path, err)
	m.log.Error("queue file unreadable; moved to Badmail", "id", msg.id, "err", err)
	if srv == nil || !m.badmail(srv, msg, &spool.Envelope{}, reason) {
		// Nowhere to keep it: leave it and look again later.
		m.mu.Lock()
		msg.next = m.now().Add(time.Minute)
		m.sched.push(msg)
		m.mu.Unlock()
		return
	}
	m.remove(msg)
}

// dispatcher is the event-sink dispatcher of a virtual server, nil for none.
func (m *Manager) dispatcher(instance int) *events.Dispatcher {
	if m.o.Events == nil {
		return nil
	}
	return m.o.Events(instance)
}

// track fires the log event (MsgTrackLog) for a recipient's outcome.
func (m *Manager) track(msg *message, what string, rs *rcptState) {
	d := m.dispatcher(msg.instance)
	if !d.Has(events.TrackLog) {
		return
	}
	rec := &events.LogRecord{Event: what, ID: msg.id, From: msg.stored.Envelope.From, Rcpt: rs.Addr}
	if rs.Last != nil {
		rec.Detail = rs.Last.String()
	}
	d.Fire(m.ctx, &events.Event{Type: events.TrackLog, Instance: msg.instance, Log: rec})
}

// masquerade replaces the domain of a reverse path in one of the virtual
// server's local domains by MasqueradeDomain (REFERENCE.md §7: "replaces
// the local domain in MAIL FROM of outgoing mail"); a relayed sender of
// another domain is left alone, so that its bounces still reach it.
func masquerade(vs *config.VirtualServer, from string) string {
	at := strings.LastIndexByte(from, '@')
	if from == "" || at < 0 {
		return from
	}
	if d, ok := vs.LookupDomain(from[at+1:]); !ok || !d.Local {
		return from
	}
	return from[:at+1] + vs.Delivery.Masquerade
}

// schedule is a min-heap of messages by next attempt.
type schedule []*message

func (s schedule) Len() int           { return len(s) }
func (s schedule) Less(i, j int) bool { return s[i].next.Before(s[j].next) }
func (s schedule) Swap(i, j int) {
	s[i], s[j] = s[j], s[i]
	s[i].index, s[j].index = i, j
}
func (s *schedule) Push(x any) {
	msg := x.(*message)
	msg.index = len(*s)
	*s = append(*s, msg)
}
func (s *schedule) Pop() any {
	old := *s
	n := len(old)
	msg := old[n-1]
	old[n-1] = nil
	msg.index = -1
	*s = old[:n-1]
	return msg
}

func (s *schedule) push(msg *message) {
	if msg.index >= 0 {
		heap.Fix(s, msg.index)
		return
	}
	heap.Push(s, msg)
}

// sortedIDs lists message ids in order of their spool names.
func sortedIDs(msgs map[string]*message) []*message {
	out := make([]*message, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}
