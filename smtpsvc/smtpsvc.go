// Package smtpsvc is the SMTP worker process: it follows one MetaBase.xml,
// runs every virtual server the file describes, and swaps configurations
// without losing a session.
//
// The loop is level-triggered. The watcher (package watch) says the file
// may have changed; the worker reads it whole, and if its bytes differ from
// the last ones it looked at, parses it, validates it completely and builds
// an immutable runtime configuration (package config). A file that does not
// load, validate or bind is refused whole: the last good configuration
// keeps serving, and the refusal (version, Location, property, reason) is
// logged and shown in status. A good one is handed to the supervisor
// (package supervisor), which builds only the virtual servers whose
// fingerprint changed beside the running ones, binds new addresses before
// it stops accepting on old ones, and lets replaced generations finish
// their sessions.
//
// A refused file is tried again on the watcher's poll interval, since the
// cause may lie outside it (another process holds a port, a certificate or
// folder is not readable yet): the worker picks the configuration up once
// the cause is gone. The same refusal of the same file is reported once.
package smtpsvc

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ds2mb/ds2mb/metabase"
	"github.com/ds2mb/ds2mb/schema"
	"github.com/ds2mb/ds2mb/smtpsvc/auth"
	"github.com/ds2mb/ds2mb/smtpsvc/config"
	"github.com/ds2mb/ds2mb/smtpsvc/events"
	"github.com/ds2mb/ds2mb/smtpsvc/pickup"
	"github.com/ds2mb/ds2mb/smtpsvc/queue"
	"github.com/ds2mb/ds2mb/smtpsvc/rdns"
	"github.com/ds2mb/ds2mb/smtpsvc/session"
	"github.com/ds2mb/ds2mb/smtpsvc/status"
	"github.com/ds2mb/ds2mb/smtpsvc/supervisor"
	"github.com/ds2mb/ds2mb/smtpsvc/watch"
)

// Defaults for Options.
const (
	DefaultShutdownTimeout = 30 * time.Second
)

// Options configure a Worker.
type Options struct {
	Metabase string // the MetaBase.xml to follow (required)
	// BaseDir is where relative folders of the metabase (QueueDirectory,
	// LogFileDirectory, …) resolve; "" = the metabase's folder.
	BaseDir  string
	Hostname string // FQDN for virtual servers that name none; "" = the host name

	StatusAddr string // HTTP status address (e.g. 127.0.0.1:8025); "" = none
	StatusFile string // JSON status file rewritten atomically on each change; "" = none

	// DrainTimeout bounds how long a replaced generation's sessions may run
	// on after a reload; 0 = supervisor.DefaultDrainTimeout.
	DrainTimeout time.Duration
	// ShutdownTimeout bounds the drain when Run's context ends; 0 =
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	Watch           watch.Options

	// Minute is how long one minute of the metabase's minute-valued
	// delivery settings lasts (retry intervals, delay and expiry); 0 =
	// time.Minute. Tests shorten it.
	Minute time.Duration
	// Delivery configures the queue manager (its Logger is the worker's).
	Delivery queue.Options
	// Pickup configures the Pickup folder watchers (their Submitter is the
	// queue, their Logger the worker's).
	Pickup pickup.Options
	// NoDelivery only spools: the queue manager does not run, and
	// accepted mail waits in the queue folders for another process.
	NoDelivery bool

	Logger *slog.Logger // nil = slog.Default()
	// Sinks holds the sink classes event bindings may name (the main
	// package registers them); nil = none, and every binding is left out
	// with a note.
	Sinks             *events.Registry
	Auth              auth.Checker  // nil: AUTH not offered
	Limiter           *auth.Limiter // nil: a default limiter shared by every virtual server
	Resolver          rdns.Resolver // nil: no reverse DNS lookups
	TLS               *tls.Config   // nil: each virtual server's own certificate, if any
	AllowInsecureAuth bool          // offer AUTH without TLS to loopback clients (tests, demo)
}

// Worker is one SMTP worker process.
type Worker struct {
	o   Options
	log *slog.Logger
	sup *supervisor.Supervisor

	reloadMu  sync.Mutex // one reload at a time
	lastHash  [32]byte
	retry     atomic.Bool // the last file was refused: try it again on the poll interval
	refusedAs string      // the last refusal's reason, to report a repeated one once

	cfg     atomic.Pointer[config.Config] // running configuration
	smu     sync.Mutex                    // guards the fields below
	applied time.Time
	refused *status.Refusal
	started time.Time
	reloads struct{ applied, same, refused uint64 }
	timer   status.Timer
	stats   map[int]*session.Stats // by instance, kept across generations
	envs    map[int]*session.Env

	statusLn net.Listener
	fileMu   sync.Mutex

	firings     *events.Firings                            // MaxFirings counts, kept across reloads
	dispatchers atomic.Pointer[map[int]*events.Dispatcher] // of the running configuration, by instance
	sinkStats   events.Stats

	queue  *queue.Manager  // nil with NoDelivery
	pickup *pickup.Manager // nil with NoDelivery
}

// New returns a Worker that has not started. It binds the status address
// at once, so that a taken port is an error here.
func New(o Options) (*Worker, error) {
	if o.Metabase == "" {
		return nil, errors.New("smtpsvc: no metabase file given")
	}
	abs, err := filepath.Abs(o.Metabase)
	if err != nil {
		return nil, err
	}
	o.Metabase = abs
	if o.BaseDir == "" {
		o.BaseDir = filepath.Dir(abs)
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = DefaultShutdownTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Limiter == nil {
		o.Limiter = auth.NewLimiter(5, time.Minute)
	}
	w := &Worker{o: o, log: o.Logger, started: time.Now(), stats: map[int]*session.Stats{}, envs: map[int]*session.Env{},
		firings: events.NewFirings()}
	if !o.NoDelivery {
		qo := o.Delivery
		if qo.Logger == nil {
			qo.Logger = o.Logger.With("part", "queue")
		}
		if qo.Events == nil {
			qo.Events = w.events
		}
		w.queue = queue.New(qo)
		po := o.Pickup
		po.Submitter = w.queue
		if po.Events == nil {
			po.Events = w.events
		}
		if po.Logger == nil {
			po.Logger = o.Logger.With("part", "pickup")
		}
		w.pickup = pickup.New(po)
	}
	w.sup = supervisor.New(supervisor.Options{DrainTimeout: o.DrainTimeout, OnEvent: w.supervisorEvent})
	if o.StatusAddr != "" {
		ln, err := net.Listen("tcp", o.StatusAddr)
		if err != nil {
			return nil, fmt.Errorf("status address: %w", err)
		}
		w.statusLn = ln
	}
	return w, nil
}

// Run runs the worker until ctx ends, then stops accepting and drains the
// sessions for at most ShutdownTimeout.
func Run(ctx context.Context, o Options) error {
	w, err := New(o)
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

// StatusAddr is the address the HTTP status listens on, "" when none.
func (w *Worker) StatusAddr() string {
	if w.statusLn == nil {
		return ""
	}
	return w.statusLn.Addr().String()
}

// Run follows the metabase until ctx ends, then drains.
func (w *Worker) Run(ctx context.Context) error {
	var httpSrv *http.Server
	httpDone := make(chan struct{})
	if w.statusLn != nil {
		var routes []status.Route
		if w.queue != nil {
			routes = append(routes, status.Route{Pattern: "/queue", Handler: w.queue.Handler()},
				status.Route{Pattern: "/queue/", Handler: w.queue.Handler()})
		}
		httpSrv = &http.Server{Handler: status.Handler(w.Status, routes...), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			defer close(httpDone)
			if err := httpSrv.Serve(w.statusLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				w.log.Error("status server stopped", "err", err)
			}
		}()
	} else {
		close(httpDone)
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	qctx, qcancel := context.WithCancel(context.Background())
	defer qcancel()
	qdone := make(chan struct{})
	if w.queue != nil {
		go func() {
			defer close(qdone)
			w.queue.Run(qctx, w.o.ShutdownTimeout)
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.pickup.Run(wctx)
		}()
	} else {
		close(qdone)
	}
	poll := w.o.Watch.Poll
	if poll <= 0 {
		poll = watch.DefaultPoll
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(poll)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
				if w.retry.Load() {
					w.reload(true)
				}
			}
		}
	}()
	wo := w.o.Watch
	if wo.OnError == nil {
		wo.OnError = func(err error) { w.log.Warn("metabase watch", "err", err) }
	}
	werr := watch.Run(wctx, w.o.Metabase, wo, func() { w.reload(false) })
	cancel()
	wg.Wait()

	w.log.Info("shutting down: draining sessions", "deadline", w.o.ShutdownTimeout)
	sctx, scancel := context.WithTimeout(context.Background(), w.o.ShutdownTimeout)
	defer scancel()
	if err := w.sup.Shutdown(sctx); err != nil {
		w.log.Warn("sessions still open at the shutdown deadline were closed", "err", err)
	}
	// Sessions are done: nothing more is spooled. Stop the deliveries
	// under way (what they leave pending stays queued).
	qcancel()
	<-qdone
	if httpSrv != nil {
		hctx, hcancel := context.WithTimeout(context.Background(), 2*time.Second)
		httpSrv.Shutdown(hctx)
		hcancel()
	}
	<-httpDone
	w.writeStatusFile()
	if werr != nil {
		return fmt.Errorf("metabase watch: %w", werr)
	}
	return nil
}

// Reload looks at the metabase file now, as the watcher does on a change.
func (w *Worker) Reload() { w.reload(true) }

var changeNumber = regexp.MustCompile(`ChangeNumber\s*=\s*"(\d+)"`)

// reload reads the file and applies it when its bytes changed (or always,
// when force is set and the last attempt was refused).
func (w *Worker) reload(force bool) {
	w.reloadMu.Lock()
	defer w.reloadMu.Unlock()
	begin := time.Now()
	data, err := os.ReadFile(w.o.Metabase)
	if errors.Is(err, os.ErrNotExist) {
		if w.cfg.Load() == nil {
			w.log.Info("waiting for the metabase file", "path", w.o.Metabase)
		} else {
			w.log.Warn("the metabase file is gone; the running configuration stays", "path", w.o.Metabase)
		}
		return
	}
	if err != nil {
		w.refuse(0, false, fmt.Errorf("read %s: %w", w.o.Metabase, err), nil)
		return
	}
	h := sha256.Sum256(data)
	if h == w.lastHash && !(force && w.retry.Load()) {
		return
	}
	if h != w.lastHash {
		w.refusedAs = "" // a new file: report its refusal even if the reason is the same
	}
	w.lastHash = h
	w.retry.Store(false)

	tree, err := metabase.Parse(data)
	if err != nil {
		v, known := uint64(0), false
		if m := changeNumber.FindSubmatch(data); m != nil {
			if n, perr := strconv.ParseUint(string(m[1]), 10, 64); perr == nil {
				v, known = n, true
			}
		}
		w.refuse(v, known, fmt.Errorf("%s: %w", w.o.Metabase, err), nil)
		return
	}
	cfg, err := config.Build(tree, config.Options{BaseDir: w.o.BaseDir, Hostname: w.o.Hostname, Minute: w.o.Minute})
	if err != nil {
		w.refuse(tree.Version, true, err, problemsOf(err))
		return
	}
	specs := make([]supervisor.Spec, 0, len(cfg.Servers))
	disp := map[int]*events.Dispatcher{}
	for _, vs := range cfg.Servers {
		env := *w.env(vs.Instance)
		env.Events = w.dispatcher(vs)
		disp[vs.Instance] = env.Events
		specs = append(specs, supervisor.Spec{
			Instance: vs.Instance, AutoStart: vs.AutoStart, Bindings: vs.Bindings,
			Fingerprint: vs.Fingerprint, MaxConnections: vs.MaxConnections,
			SecureBindings: vs.SecureBindings, TLSConfig: w.tlsConfig(vs), HandshakeTimeout: vs.ConnectionTimeout,
			New: func() (supervisor.Server, error) { return session.NewServer(vs, &env), nil },
		})
	}
	res, err := w.sup.Apply(cfg.Version, specs)
	if err != nil {
		w.refuse(cfg.Version, true, err, problemsOf(err))
		return
	}
	took := time.Since(begin)
	w.cfg.Store(cfg)
	w.dispatchers.Store(&disp)
	if w.queue != nil {
		w.queue.Update(cfg)
		w.pickup.Update(cfg)
	}
	w.smu.Lock()
	if res.Changed() {
		w.reloads.applied++
		w.timer.Observe(took)
		w.applied = time.Now()
	} else {
		w.reloads.same++
		if w.applied.IsZero() {
			w.applied = time.Now()
		}
	}
	w.smu.Unlock()
	w.log.Info("metabase applied", "version", cfg.Version, "took", took,
		"started", res.Started, "kept", res.Kept, "retired", res.Retired, "stopped", res.Stopped,
		"bound", res.Bound, "released", res.Released)
	for _, vs := range cfg.Servers {
		for _, n := range vs.Notes {
			w.log.Warn("setting not applied as written", "vs", vs.Instance, "note", n)
		}
	}
	w.writeStatusFile()
}

// tlsConfig is the server side of implicit TLS on a virtual server's
// secure bindings: Options.TLS when set, else its own certificate; nil
// when it has neither.
func (w *Worker) tlsConfig(vs *config.VirtualServer) *tls.Config {
	switch {
	case w.o.TLS != nil:
		return w.o.TLS
	case vs.TLSCertificate != nil:
		return &tls.Config{Certificates: []tls.Certificate{*vs.TLSCertificate}, MinVersion: tls.VersionTLS12}
	}
	return nil
}

// events returns the running configuration's dispatcher of a virtual
// server (for the queue's store and log events).
func (w *Worker) events(instance int) *events.Dispatcher {
	if m := w.dispatchers.Load(); m != nil {
		return (*m)[instance]
	}
	return nil
}

// dispatcher makes the event-sink dispatcher of a virtual server's
// bindings; bindings it cannot make (an unknown sink class, bad sink
// properties) are left out, noted in the virtual server's Notes and
// logged, and the rest run.
func (w *Worker) dispatcher(vs *config.VirtualServer) *events.Dispatcher {
	if len(vs.EventBindings) == 0 {
		return nil
	}
	d, probs := events.Build(vs.EventBindings, events.Options{Registry: w.o.Sinks, Firings: w.firings,
		Logger: w.log.With("vs", vs.Instance, "part", "events"), Stats: &w.sinkStats})
	for _, p := range probs {
		vs.Notes = append(vs.Notes, p.String())
		w.log.Warn("event binding left out", "location", p.Location, "property", p.Property, "reason", p.Reason)
	}
	return d
}

func (w *Worker) env(instance int) *session.Env {
	w.smu.Lock()
	defer w.smu.Unlock()
	if e, ok := w.envs[instance]; ok {
		return e
	}
	st := &session.Stats{}
	w.stats[instance] = st
	e := &session.Env{
		Logger: w.log.With("vs", instance), Stats: st, Auth: w.o.Auth, Resolver: w.o.Resolver,
		TLS: w.o.TLS, AllowInsecureAuth: w.o.AllowInsecureAuth, Limiter: w.o.Limiter,
	}
	if w.queue != nil {
		e.Queue = w.queue
	}
	w.envs[instance] = e
	return e
}

func (w *Worker) refuse(version uint64, known bool, err error, probs []status.Problem) {
	// A refusal may have a cause outside the file (a port another process
	// holds, a certificate or folder not readable yet): retry it on the
	// poll interval, and report the same refusal of the same file once.
	w.retry.Store(true)
	if err.Error() == w.refusedAs {
		return
	}
	w.refusedAs = err.Error()
	r := &status.Refusal{Version: version, VersionKnown: known, At: time.Now(), Reason: err.Error(), Problems: probs}
	w.smu.Lock()
	w.refused = r
	w.reloads.refused++
	w.smu.Unlock()
	running := uint64(0)
	if c := w.cfg.Load(); c != nil {
		running = c.Version
	}
	w.log.Error("metabase refused; the last good configuration keeps serving",
		"version", version, "versionKnown", known, "running", running, "err", err)
	w.writeStatusFile()
}

// problemsOf lists an error's problems with their Location and property.
func problemsOf(err error) []status.Problem {
	var ve metabase.ValidationError
	if errors.As(err, &ve) {
		out := make([]status.Problem, 0, len(ve))
		for _, p := range ve {
			out = append(out, status.Problem{Location: p.Location, Property: p.Property, Reason: p.Reason})
		}
		return out
	}
	var be *supervisor.BindError
	if errors.As(err, &be) {
		return []status.Problem{{Location: schemaServerLocation(be.Instance), Property: be.Property(),
			Reason: fmt.Sprintf("cannot listen on %s: %v", be.Binding.Addr(), be.Err)}}
	}
	var bu *supervisor.BuildError
	if errors.As(err, &bu) {
		return []status.Problem{{Location: schemaServerLocation(bu.Instance), Reason: bu.Err.Error()}}
	}
	return nil
}

func (w *Worker) supervisorEvent(e supervisor.Event) {
	switch e.Kind {
	case "drained":
		w.log.Info("retired generation drained", "vs", e.Instance)
	case "drain-deadline":
		w.log.Warn("retired generation closed at its drain deadline", "vs", e.Instance)
	default:
		w.log.Warn("supervisor", "event", e.Kind, "vs", e.Instance, "addr", e.Addr, "err", e.Err)
	}
}

// Status returns a snapshot of the worker.
func (w *Worker) Status() status.Status {
	st := w.sup.State()
	cfg := w.cfg.Load()
	w.smu.Lock()
	defer w.smu.Unlock()
	out := status.Status{
		Metabase: w.o.Metabase, Running: cfg != nil, AppliedAt: w.applied, Draining: st.Draining, Started: w.started,
		Reloads: status.Reloads{Applied: w.reloads.applied, Same: w.reloads.same, Refused: w.reloads.refused, Duration: w.timer.Snapshot()},
		Servers: []status.Server{},
	}
	if cfg != nil {
		out.Version = cfg.Version
	}
	if w.refused != nil {
		r := *w.refused
		out.Refused = &r
	}
	if q := w.queue; q != nil {
		qs := q.Stats()
		out.Queue = status.Queue{Messages: q.Len(), Delivered: qs.Delivered.Load(), Failed: qs.Failed.Load(),
			Deferred: qs.Deferred.Load(), DSNs: qs.DSNs.Load(), Badmail: qs.Badmail.Load(), Connections: qs.Connection.Load()}
		ps := w.pickup.Stats()
		out.Queue.PickupSubmitted, out.Queue.PickupRejected = ps.Submitted, ps.Rejected
	}
	out.Sinks = status.Sinks{Fired: w.sinkStats.Fired.Load(), Stopped: w.sinkStats.Stopped.Load(),
		Failed: w.sinkStats.Failed.Load(), TimedOut: w.sinkStats.TimedOut.Load()}
	for _, ss := range w.stats {
		out.Sinks.Discarded += ss.Discarded.Load()
		out.Sinks.Badmail += ss.Badmailed.Load()
	}
	if cfg != nil {
		for _, vs := range cfg.Servers {
			out.Sinks.Bindings += len(vs.EventBindings)
		}
	}
	for _, vs := range st.Servers {
		s := status.Server{
			Instance: vs.Instance, Location: schemaServerLocation(vs.Instance), AutoStart: vs.AutoStart, Running: vs.Running,
			Bindings: vs.Bindings, SecureBindings: vs.SecureBindings, MaxConnections: vs.MaxConnections,
			SessionsOpen: vs.SessionsOpen, Connections: vs.Connections, TooMany: vs.TooMany,
		}
		if s.Bindings == nil {
			s.Bindings = []string{}
		}
		if s.SecureBindings == nil {
			s.SecureBindings = []string{}
		}
		if cfg != nil {
			if c := cfg.Server(vs.Instance); c != nil {
				s.FQDN, s.Notes = c.FQDN, c.Notes
			}
		}
		if ss := w.stats[vs.Instance]; ss != nil {
			s.MessagesAccepted, s.MessagesRefused, s.AuthFailures = ss.MessagesAccepted.Load(), ss.MessagesRefused.Load(), ss.AuthFailures.Load()
			s.Denied = ss.ConnectionsDenied.Load()
			for i := range s.Replies {
				s.Replies[i] = ss.Replies[i].Load()
			}
		}
		out.Servers = append(out.Servers, s)
	}
	return out
}

func (w *Worker) writeStatusFile() {
	if w.o.StatusFile == "" {
		return
	}
	w.fileMu.Lock()
	defer w.fileMu.Unlock()
	if err := status.WriteFile(w.o.StatusFile, w.Status()); err != nil {
		w.log.Warn("status file", "path", w.o.StatusFile, "err", err)
	}
}

func schemaServerLocation(n int) string { return schema.ServerLocation(n) }
