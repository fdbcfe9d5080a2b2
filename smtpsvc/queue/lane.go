package queue

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/ds2mb/ds2mb/smtpsvc/config"
	"github.com/ds2mb/ds2mb/smtpsvc/delivery"
	"github.com/ds2mb/ds2mb/smtpsvc/events"
	"github.com/ds2mb/ds2mb/smtpsvc/local"
	"github.com/ds2mb/ds2mb/smtpsvc/outbound"
	"github.com/ds2mb/ds2mb/smtpsvc/spool"
)

// unlimitedPerDomain caps the connections of one destination when
// MaxOutConnectionsPerDomain sets no limit.
const unlimitedPerDomain = 1000

// server is what the manager keeps of one virtual server.
type server struct {
	instance int
	vs       *config.VirtualServer
	client   *outbound.Client
	out      *limiter // MaxOutConnections over the server's remote lanes
	spool    *spool.Spool
}

// update applies a new configuration of the virtual server (m.mu held).
func (s *server) update(m *Manager, vs *config.VirtualServer) {
	s.vs = vs
	d := &vs.Delivery
	s.out.setMax(d.MaxOut)
	res := m.o.Resolver
	if res == nil {
		servers := d.DNSServers
		if len(servers) == 0 {
			servers = outbound.SystemServers(m.o.ResolvConf)
		}
		res = m.resolver(servers)
	}
	s.client = &outbound.Client{Resolver: res, HeloName: vs.FQDN, Port: d.RemotePort, Timeout: d.RemoteTimeout}
	if s.spool == nil || s.spool.Dir() != vs.QueueDir || !s.spool.Current() {
		sp, err := spool.Open(vs.QueueDir)
		if err != nil {
			m.log.Error("queue folder unusable: no DSN or Pickup mail can be queued", "vs", vs.Instance, "err", err)
			return
		}
		s.spool = sp
	}
}

// resolvers are shared by the virtual servers that name the same DNS
// servers, so that they share a cache.
var (
	resolverMu sync.Mutex
	resolvers  = map[string]outbound.Resolver{}
)

func (m *Manager) resolver(servers []string) outbound.Resolver {
	key := strings.Join(servers, ",")
	resolverMu.Lock()
	defer resolverMu.Unlock()
	if r := resolvers[key]; r != nil {
		return r
	}
	r := outbound.NewDNSResolver(servers, m.o.DNSTimeout)
	resolvers[key] = r
	return r
}

// job is the recipients of one message that go to one destination.
type job struct {
	delivery.Job
	msg *message
	idx []int // recipient indexes in the message
}

// lane is one destination: its waiting jobs and the workers (connections,
// for remote destinations) that take them.
type lane struct {
	m    *Manager
	srv  *server
	dest dest

	mu      sync.Mutex
	fifo    []*job
	workers int
	idle    int
	ready   chan struct{} // closed when a job arrives for idle workers
}

// lane returns the lane of a destination.
func (m *Manager) lane(srv *server, d dest) *lane {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.lanes[d.key]
	if l == nil {
		l = &lane{m: m, srv: srv, dest: d, ready: make(chan struct{})}
		m.lanes[d.key] = l
	}
	return l
}

// limit is how many workers the lane may run.
func (l *lane) limit() int {
	if l.dest.local() {
		return l.m.o.LocalWorkers
	}
	l.m.mu.Lock()
	n := l.srv.vs.Delivery.MaxOutPerDomain
	l.m.mu.Unlock()
	if n <= 0 {
		return unlimitedPerDomain
	}
	return n
}

func (l *lane) submit(j *job) {
	limit := l.limit()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fifo = append(l.fifo, j)
	if l.idle > 0 {
		close(l.ready)
		l.ready = make(chan struct{})
		return
	}
	// Slow start: another connection only when the waiting jobs outnumber
	// what the open ones will take soon. A burst opening hundreds of
	// connections at once overflows the peer's accept queue and costs
	// seconds of SYN retransmits, where a few busy connections carry it.
	if l.workers < limit && len(l.fifo) > jobsPerWorker*l.workers {
		l.spawn()
	}
}

// jobsPerWorker is how many waiting jobs each open connection of a lane
// must have before another one is opened.
const jobsPerWorker = 4

// spawn starts a worker (l.mu held).
func (l *lane) spawn() {
	l.workers++
	l.m.workers.Add(1)
	if l.dest.local() {
		go l.workLocal()
	} else {
		go l.workRemote()
	}
}

// next takes the next job, waiting up to linger for one; nil when none
// came or the manager is stopping.
func (l *lane) next(linger time.Duration) *job {
	l.mu.Lock()
	defer l.mu.Unlock()
	var timer *time.Timer
	for len(l.fifo) == 0 {
		if linger <= 0 || l.m.stopping.Load() || l.m.ctx.Err() != nil {
			return nil
		}
		if timer == nil {
			timer = time.NewTimer(linger)
			defer timer.Stop()
		}
		ready := l.ready
		l.idle++
		l.mu.Unlock()
		timedOut := false
		select {
		case <-ready:
		case <-timer.C:
			timedOut = true
		case <-l.m.ctx.Done():
			timedOut = true
		}
		l.mu.Lock()
		l.idle--
		if timedOut && len(l.fifo) == 0 {
			return nil
		}
	}
	j := l.fifo[0]
	l.fifo[0] = nil
	l.fifo = l.fifo[1:]
	return j
}

// takeAll empties the lane's waiting jobs.
func (l *lane) takeAll() []*job {
	l.mu.Lock()
	defer l.mu.Unlock()
	js := l.fifo
	l.fifo = nil
	return js
}

// exit ends a worker; a new one starts if jobs are left with nobody to
// take them.
func (l *lane) exit() {
	l.mu.Lock()
	l.workers--
	if len(l.fifo) > 0 && l.idle == 0 && l.workers == 0 {
		l.spawn()
	}
	l.mu.Unlock()
	l.m.workers.Done()
}

// closeIdle wakes idle workers so that they see the manager stopping.
func (l *lane) closeIdle() {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.ready)
	l.ready = make(chan struct{})
}

// workLocal delivers jobs to a local destination until none is left.
func (l *lane) workLocal() {
	defer l.exit()
	agent := l.agent()
	for j := l.next(l.m.o.Linger); j != nil; j = l.next(l.m.o.Linger) {
		if l.dest.key.kind != kindDrop {
			if res := l.store(j); res != nil {
				l.m.finish(j, res)
				continue
			}
		}
		l.m.finish(j, agent.Deliver(l.m.ctx, &j.Job))
	}
}

// store fires the StoreDriver event on a job for local mailboxes: sinks
// may change the content stored (the job then reads their version) or
// discard the message for these recipients, which then count as
// delivered. It returns the results when the job is settled here.
func (l *lane) store(j *job) []delivery.Result {
	d := l.m.dispatcher(l.srv.instance)
	if !d.Has(events.StoreDriver) {
		return nil
	}
	open := j.Open
	mm := events.NewMailMsg(j.From, append([]string(nil), j.Rcpts...), func() ([]byte, error) {
		r, err := open()
		if err != nil {
			return nil, err
		}
		defer r.Close()
		return io.ReadAll(r)
	})
	mm.FromParams = j.Params
	mm.Fields["queueid"] = j.ID
	d.Fire(l.m.ctx, &events.Event{Type: events.StoreDriver, Instance: l.srv.instance, Msg: mm})
	if mm.Status != events.Deliver {
		return delivery.All(&j.Job, delivery.Delivered("", "discarded by an event sink at local delivery"))
	}
	if mm.Changed() {
		data, _ := mm.Data()
		j.Open = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
		j.Size = int64(len(data))
	}
	return nil
}

// localAgent is a delivery agent for mail that stays on this machine.
type localAgent interface {
	Deliver(ctx context.Context, job *delivery.Job) []delivery.Result
}

func (l *lane) agent() localAgent {
	l.m.mu.Lock()
	vs := l.srv.vs
	l.m.mu.Unlock()
	switch l.dest.key.kind {
	case kindLMTP:
		return &local.LMTP{Addr: l.dest.key.target, HeloName: vs.FQDN, Timeout: vs.Delivery.RemoteTimeout}
	case kindDrop:
		return &local.Drop{Dir: l.dest.key.target}
	}
	return &local.Maildir{Root: l.dest.key.target}
}

// workRemote opens a connection to the lane's destination and sends jobs
// over it: up to MaxBatchedMessages, while they keep coming within the
// linger time.
func (l *lane) workRemote() {
	defer l.exit()
	m := l.m
	j := l.next(0)
	if j == nil {
		return
	}
	if !l.srv.out.acquire(m.ctx) {
		m.finish(j, delivery.All(&j.Job, delivery.TempFail("", "4.3.2", "the server is shutting down")))
		return
	}
	defer l.srv.out.release()
	m.mu.Lock()
	client, batch := l.srv.client, l.srv.vs.Delivery.MaxBatched
	m.mu.Unlock()

	conn, err := l.dial(client)
	if err != nil {
		// The destination cannot be reached now: every job waiting for it
		// gets the same answer and comes back on its own schedule.
		r := dialResult(err)
		for _, w := range append([]*job{j}, l.takeAll()...) {
			m.finish(w, delivery.All(&w.Job, r))
		}
		return
	}
	m.stats.Connection.Add(1)
	defer conn.Close()
	for n := 0; j != nil; n++ {
		if !conn.Usable() {
			l.requeue(j)
			return
		}
		m.finish(j, conn.Send(m.ctx, &j.Job))
		if batch > 0 && n+1 >= batch {
			return
		}
		j = l.next(m.o.Linger)
	}
}

// requeue puts a job back at the head of the lane.
func (l *lane) requeue(j *job) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fifo = append([]*job{j}, l.fifo...)
}

// dial connects to the lane's destination: DNS MX (then the smart hosts,
// with SmartHostType 1), or the smart hosts in turn.
func (l *lane) dial(c *outbound.Client) (*outbound.Conn, error) {
	ctx := l.m.ctx
	var err error
	if l.dest.key.kind == kindMX {
		var conn *outbound.Conn
		conn, err = c.Dial(ctx, outbound.Target{Domain: l.dest.domain})
		if err == nil || len(l.dest.hosts) == 0 {
			return conn, err
		}
	}
	for _, h := range l.dest.hosts {
		conn, herr := c.Dial(ctx, outbound.Target{Domain: l.dest.domain, SmartHost: h})
		if herr == nil {
			return conn, nil
		}
		err = herr
	}
	if err == nil {
		err = errors.New("no smart host configured")
	}
	return nil, err
}

// dialResult reads a failed dial as a result for the recipients.
func dialResult(err error) delivery.Result {
	var de *outbound.DialError
	if errors.As(err, &de) {
		return de.Result
	}
	return delivery.TempFail("", "4.4.1", "%v", err)
}

// limiter bounds a count of things held at once; a max of 0 is no bound.
type limiter struct {
	mu      sync.Mutex
	n, max  int
	changed chan struct{}
}

func newLimiter(max int) *limiter { return &limiter{max: max, changed: make(chan struct{})} }

func (l *limiter) acquire(ctx context.Context) bool {
	for {
		l.mu.Lock()
		if l.max <= 0 || l.n < l.max {
			l.n++
			l.mu.Unlock()
			return true
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

func (l *limiter) release() {
	l.mu.Lock()
	l.n--
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

func (l *limiter) setMax(max int) {
	l.mu.Lock()
	l.max = max
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}
