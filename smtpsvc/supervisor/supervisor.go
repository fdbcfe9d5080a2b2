// Package supervisor runs the virtual servers of one SMTP worker and swaps
// configurations without losing a session.
//
// The supervisor owns one real net.Listener per binding address and one
// accept loop per listener. Each accepted connection is handed to the
// virtual server that the current routing table names for that address,
// through a channel-backed listener that the virtual server's go-smtp
// Server consumes with Serve. A virtual server object belongs to one
// configuration generation: a connection accepted by it stays with it until
// it ends, whatever happens to the configuration meanwhile.
//
// Apply builds beside, swaps, then retires:
//
//  1. bind every address the new configuration needs and nobody listens on
//     yet (a bind failure refuses the whole configuration, nothing changes);
//  2. build a new server for every virtual server whose Fingerprint changed
//     (or that is new) and start it on its own channel listener; unchanged
//     virtual servers keep their server object and listeners;
//  3. stop accepting on addresses the new configuration no longer has;
//  4. swap the routing table (one atomic pointer);
//  5. start accepting on the new addresses;
//  6. retire the replaced servers: they stop taking connections and their
//     sessions finish, with a deadline after which they are closed.
//
// MaxConnections is enforced in the accept loop, per virtual server: past
// the limit a client gets "421 4.3.2 Too many connections, try later".
//
// Secure bindings (Spec.SecureBindings, implicit TLS as in RFC 8314) are
// listeners like the others, in the same build-beside/swap/drain cycle; an
// address is plain or secure, never both. A connection accepted on a secure
// address has its TLS handshake done in a goroutine of its own (never in
// the accept loop), with the virtual server's Spec.TLSConfig and a deadline
// of Spec.HandshakeTimeout; only a completed handshake is handed to the
// server, as a *tls.Conn, so the session sees TLS from its greeting on. A
// failed handshake is closed without a word of SMTP; Shutdown closes the
// handshakes still under way. MaxConnections counts a secure connection
// from the end of its handshake.
package supervisor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ds2mb/ds2mb/schema"
	"github.com/emersion/go-smtp"
)

// Defaults for Options.
const (
	DefaultDrainTimeout     = 10 * time.Minute
	DefaultHandshakeTimeout = time.Minute // TLS handshake on a secure binding
)

// Spec is one virtual server of one configuration, as the supervisor needs
// it: where it listens, whether it runs, and how to build its server.
type Spec struct {
	Instance       int
	AutoStart      bool
	Bindings       []schema.Binding
	Fingerprint    string // equal fingerprints: nothing changed, keep the running server
	MaxConnections int    // 0 = unlimited
	// SecureBindings are addresses served with implicit TLS; they need
	// TLSConfig. An address may not be in both Bindings and SecureBindings.
	SecureBindings []schema.Binding
	// TLSConfig is the server side of the handshake on SecureBindings.
	TLSConfig *tls.Config
	// HandshakeTimeout bounds the TLS handshake on a secure binding;
	// 0 = DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// New builds the server of this virtual server, not yet serving. It is
	// called only when the virtual server is new or its Fingerprint changed.
	New func() (Server, error)
}

// Server is what the supervisor runs for one generation of one virtual
// server; a *smtp.Server of emersion/go-smtp is one. Serve takes
// connections from l until l is closed; Shutdown waits for the sessions
// Serve started to end, or for ctx. Connections are closed by the
// supervisor at the deadline.
type Server interface {
	Serve(l net.Listener) error
	Shutdown(ctx context.Context) error
}

var _ Server = (*smtp.Server)(nil)

// Options tune a Supervisor.
type Options struct {
	// DrainTimeout bounds how long a replaced or removed virtual server's
	// sessions may run on after a reload before they are closed.
	// 0 = DefaultDrainTimeout.
	DrainTimeout time.Duration
	// OnEvent, when set, is told of things that happen outside Apply:
	// retired generations that finished draining or were closed at their
	// deadline, accept errors. It must not block.
	OnEvent func(Event)
}

// Event is something the supervisor did on its own.
type Event struct {
	Kind     string // "drained", "drain-deadline", "accept-error"
	Instance int    // virtual server, 0 when not about one
	Addr     string // listen address, when about one
	Err      error
}

// BindError is a configuration refused because an address could not be bound.
type BindError struct {
	Instance int
	Binding  schema.Binding
	Secure   bool // the binding is one of SecureBindings
	Err      error
}

// Property is the metabase property the binding comes from.
func (e *BindError) Property() string {
	if e.Secure {
		return "SecureBindings"
	}
	return "ServerBindings"
}

func (e *BindError) Error() string {
	return fmt.Sprintf("%s: %s: cannot listen on %s: %v", schema.ServerLocation(e.Instance), e.Property(), e.Binding.Addr(), e.Err)
}

func (e *BindError) Unwrap() error { return e.Err }

// BuildError is a configuration refused because a virtual server's server
// could not be built.
type BuildError struct {
	Instance int
	Err      error
}

func (e *BuildError) Error() string {
	return fmt.Sprintf("%s: %v", schema.ServerLocation(e.Instance), e.Err)
}

func (e *BuildError) Unwrap() error { return e.Err }

// ErrClosed is returned by Apply after Shutdown.
var ErrClosed = errors.New("supervisor: shut down")

// Supervisor runs virtual servers; it is safe for concurrent use.
type Supervisor struct {
	opts Options

	mu          sync.Mutex // serialises Apply and Shutdown
	closed      bool
	listeners   map[string]*listener // by address
	running     map[int]*vserver     // current generation by instance
	specs       map[int]Spec         // every virtual server of the current configuration
	version     uint64
	routes      atomic.Pointer[map[string]route]
	counters    map[int]*Counters // by instance, kept across generations
	cmu         sync.Mutex        // guards counters map
	draining    map[*vserver]struct{}
	dmu         sync.Mutex // guards draining
	retiring    sync.WaitGroup
	hmu         sync.Mutex            // guards handshaking
	handshaking map[net.Conn]struct{} // secure connections still in their TLS handshake; nil after Shutdown
	forced      atomic.Int64          // generations closed at their drain deadline
}

// Counters are the per-virtual-server connection counters, kept across
// configuration generations.
type Counters struct {
	Open     atomic.Int64  // connections open now
	Accepted atomic.Uint64 // connections handed to a server
	Refused  atomic.Uint64 // connections refused over MaxConnections
}

// New returns a Supervisor running nothing.
func New(o Options) *Supervisor {
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	s := &Supervisor{
		opts:        o,
		listeners:   map[string]*listener{},
		running:     map[int]*vserver{},
		specs:       map[int]Spec{},
		counters:    map[int]*Counters{},
		draining:    map[*vserver]struct{}{},
		handshaking: map[net.Conn]struct{}{},
	}
	empty := map[string]route{}
	s.routes.Store(&empty)
	return s
}

func (s *Supervisor) event(e Event) {
	if s.opts.OnEvent != nil {
		s.opts.OnEvent(e)
	}
}

// CountersFor returns the counters of a virtual server, creating them.
func (s *Supervisor) CountersFor(instance int) *Counters {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	c, ok := s.counters[instance]
	if !ok {
		c = &Counters{}
		s.counters[instance] = c
	}
	return c
}

// route is where connections accepted on one address go.
type route struct {
	v      *vserver
	secure bool // implicit TLS: handshake before handing over
}

// vserver is one generation of one virtual server.
type vserver struct {
	spec     Spec
	srv      Server
	ln       *chanListener
	counters *Counters
	served   chan struct{} // closed when Serve returned

	cmu   sync.Mutex
	conns map[*trackedConn]struct{} // connections handed to srv, still open
}

// closeConns closes every connection of the generation. go-smtp's Close
// does nothing once Shutdown has begun, so the supervisor keeps its own set.
func (v *vserver) closeConns() {
	v.cmu.Lock()
	cs := make([]*trackedConn, 0, len(v.conns))
	for c := range v.conns {
		cs = append(cs, c)
	}
	v.cmu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

// Result says what an Apply changed.
type Result struct {
	Started  []int    // virtual servers built and started (new or changed)
	Kept     []int    // virtual servers left running untouched
	Retired  []int    // virtual servers whose old generation is draining
	Stopped  []int    // virtual servers present but not started (ServerAutoStart false)
	Bound    []string // addresses newly listened on
	Released []string // addresses no longer listened on
}

// Changed reports whether the Apply touched anything.
func (r Result) Changed() bool {
	return len(r.Started)+len(r.Retired)+len(r.Bound)+len(r.Released) > 0
}

// Apply makes the given virtual servers the running configuration, version
// naming it. It refuses the configuration whole (returning a *BindError or
// *BuildError, or an error for a malformed set of specs) and keeps the
// running one when an address cannot be bound or a server cannot be built.
func (s *Supervisor) Apply(version uint64, specs []Spec) (Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var res Result
	if s.closed {
		return res, ErrClosed
	}

	// The wanted state: spec by instance; address → instance for running ones.
	want := map[int]Spec{}
	addrOwner := map[string]int{}
	addrBinding := map[string]schema.Binding{}
	addrSecure := map[string]bool{}
	for _, sp := range specs {
		if _, dup := want[sp.Instance]; dup {
			return res, fmt.Errorf("%s: virtual server given twice", schema.ServerLocation(sp.Instance))
		}
		want[sp.Instance] = sp
		if !sp.AutoStart {
			continue
		}
		if len(sp.SecureBindings) > 0 && sp.TLSConfig == nil {
			return res, &BuildError{Instance: sp.Instance, Err: errors.New("SecureBindings: no TLS certificate")}
		}
		for i, b := range slices.Concat(sp.Bindings, sp.SecureBindings) {
			a, secure := b.Addr(), i >= len(sp.Bindings)
			if other, dup := addrOwner[a]; dup && other != sp.Instance {
				return res, &BindError{Instance: sp.Instance, Binding: b, Secure: secure, Err: fmt.Errorf("also bound by %s", schema.ServerLocation(other))}
			}
			if was, dup := addrSecure[a]; dup && was != secure {
				return res, &BindError{Instance: sp.Instance, Binding: b, Secure: true, Err: errors.New("in both ServerBindings and SecureBindings")}
			}
			addrOwner[a] = sp.Instance
			addrBinding[a] = b
			addrSecure[a] = secure
		}
	}

	// 1. Bind new addresses first.
	newListeners := map[string]*listener{}
	var handedOver []*listener // our own listeners closed early to free their port
	undo := func() {
		for _, l := range newListeners {
			l.ln.Close()
		}
		s.restore(handedOver)
	}
	for _, a := range sortedKeys(addrOwner) {
		if _, have := s.listeners[a]; have {
			continue
		}
		ln, err := listen(a)
		if err != nil && errors.Is(err, syscall.EADDRINUSE) {
			// The port may be held by one of our own listeners that this
			// configuration drops, on an overlapping address (":25" becoming
			// "127.0.0.1:25"). The kernel will not let both exist: stop
			// that one first, then bind.
			if olds := s.releasedOnPort(a, addrOwner); len(olds) > 0 {
				for _, l := range olds {
					l.ln.Close()
					<-l.done
					delete(s.listeners, l.addr)
					handedOver = append(handedOver, l)
				}
				ln, err = listen(a)
			}
		}
		if err != nil {
			undo()
			return res, &BindError{Instance: addrOwner[a], Binding: addrBinding[a], Secure: addrSecure[a], Err: err}
		}
		newListeners[a] = &listener{addr: a, ln: ln, done: make(chan struct{})}
	}
	for _, l := range handedOver {
		res.Released = append(res.Released, l.addr)
	}

	// 2. Build new generations for new or changed virtual servers.
	next := map[int]*vserver{}
	var built []*vserver
	for _, inst := range sortedKeys(want) {
		sp := want[inst]
		if !sp.AutoStart {
			res.Stopped = append(res.Stopped, inst)
			continue
		}
		if cur, ok := s.running[inst]; ok && cur.spec.Fingerprint == sp.Fingerprint && sp.Fingerprint != "" &&
			sameBindings(cur.spec.Bindings, sp.Bindings) && sameBindings(cur.spec.SecureBindings, sp.SecureBindings) {
			// Unchanged (the fingerprint covers every setting, MaxConnections
			// included): keep the server and its spec.
			next[inst] = cur
			res.Kept = append(res.Kept, inst)
			continue
		}
		if sp.New == nil {
			undo()
			discard(built)
			return res, &BuildError{Instance: inst, Err: errors.New("no server constructor")}
		}
		srv, err := sp.New()
		if err != nil {
			undo()
			discard(built)
			return res, &BuildError{Instance: inst, Err: err}
		}
		var addr net.Addr = &net.TCPAddr{}
		if all := slices.Concat(sp.Bindings, sp.SecureBindings); len(all) > 0 {
			if a, err := net.ResolveTCPAddr("tcp", all[0].Addr()); err == nil {
				addr = a
			}
		}
		v := &vserver{spec: sp, srv: srv, ln: newChanListener(addr), counters: s.CountersFor(inst), served: make(chan struct{}), conns: map[*trackedConn]struct{}{}}
		next[inst] = v
		built = append(built, v)
	}
	for _, v := range built {
		go func() {
			defer close(v.served)
			_ = v.srv.Serve(v.ln)
		}()
		res.Started = append(res.Started, v.spec.Instance)
	}

	// 3. Stop accepting on addresses that are gone, and let their accept
	// loops finish handing over what they accepted (old routes still apply).
	var gone []*listener
	for a, l := range s.listeners {
		if _, keep := addrOwner[a]; !keep {
			gone = append(gone, l)
			delete(s.listeners, a)
			res.Released = append(res.Released, a)
		}
	}
	for _, l := range gone {
		l.ln.Close()
	}
	for _, l := range gone {
		<-l.done
	}

	// 4. Swap the routing table.
	routes := make(map[string]route, len(addrOwner))
	for a, inst := range addrOwner {
		routes[a] = route{v: next[inst], secure: addrSecure[a]}
	}
	s.routes.Store(&routes)

	// 5. Accept on the new addresses.
	for _, a := range sortedKeys(newListeners) {
		l := newListeners[a]
		s.listeners[a] = l
		go s.acceptLoop(l)
		res.Bound = append(res.Bound, a)
	}

	// 6. Retire replaced and removed generations.
	for inst, cur := range s.running {
		if next[inst] == cur {
			continue
		}
		res.Retired = append(res.Retired, inst)
		s.retire(cur, s.opts.DrainTimeout)
	}
	sort.Ints(res.Retired)
	s.running = next
	s.specs = want
	s.version = version
	return res, nil
}

// discard releases servers built for a configuration that was then
// refused; they never served.
func discard(vs []*vserver) {
	for _, v := range vs {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		v.srv.Shutdown(ctx)
		cancel()
	}
}

// releasedOnPort returns our listeners on the same port as addr that the
// new configuration (keep) no longer has.
func (s *Supervisor) releasedOnPort(addr string, keep map[string]int) []*listener {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	var out []*listener
	for a, l := range s.listeners {
		if _, kept := keep[a]; kept {
			continue
		}
		if _, p, err := net.SplitHostPort(a); err == nil && p == port {
			out = append(out, l)
		}
	}
	return out
}

// listenConfig makes the binding listeners. Accepted connections get no
// TCP keep-alive: every session is bounded by ConnectionTimeout and the
// per-command timeouts, and keep-alive cost four setsockopt calls on every
// connection.
var listenConfig = net.ListenConfig{KeepAlive: -1}

// listen opens one binding's listener.
func listen(addr string) (net.Listener, error) {
	return listenConfig.Listen(context.Background(), "tcp", addr)
}

// restore listens again on listeners closed early by a refused Apply; the
// routes still name their virtual servers.
func (s *Supervisor) restore(ls []*listener) {
	for _, old := range ls {
		ln, err := listen(old.addr)
		if err != nil {
			s.event(Event{Kind: "accept-error", Addr: old.addr, Err: fmt.Errorf("listening again after a refused configuration: %w", err)})
			continue
		}
		l := &listener{addr: old.addr, ln: ln, done: make(chan struct{})}
		s.listeners[old.addr] = l
		go s.acceptLoop(l)
	}
}

func sameBindings(a, b []schema.Binding) bool {
	return slices.Equal(a, b)
}

func sortedKeys[K int | string, V any](m map[K]V) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// retire stops a generation taking connections and drains it in the
// background, closing what is left at the deadline.
func (s *Supervisor) retire(v *vserver, deadline time.Duration) {
	s.dmu.Lock()
	s.draining[v] = struct{}{}
	s.dmu.Unlock()
	s.retiring.Add(1)
	v.ln.Close()
	go func() {
		defer s.retiring.Done()
		defer func() {
			s.dmu.Lock()
			delete(s.draining, v)
			s.dmu.Unlock()
		}()
		// Serve returns once its listener is closed; only then may
		// Shutdown wait for the connections it started.
		<-v.served
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		if v.srv.Shutdown(ctx); ctx.Err() != nil {
			v.closeConns()
			s.forced.Add(1)
			s.event(Event{Kind: "drain-deadline", Instance: v.spec.Instance, Err: ctx.Err()})
			return
		}
		s.event(Event{Kind: "drained", Instance: v.spec.Instance})
	}()
}

// Shutdown stops accepting everywhere and drains every session; sessions
// still open when ctx ends are closed. It returns ctx's error when the
// deadline cut sessions short.
func (s *Supervisor) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	forcedBefore := s.forced.Load()
	for _, l := range s.listeners {
		l.ln.Close()
	}
	for _, l := range s.listeners {
		<-l.done
	}
	s.listeners = map[string]*listener{}
	s.hmu.Lock()
	for c := range s.handshaking {
		c.Close() // nobody will serve it now
	}
	s.handshaking = nil
	s.hmu.Unlock()
	empty := map[string]route{}
	s.routes.Store(&empty)
	dl, ok := ctx.Deadline()
	d := time.Until(dl)
	if !ok {
		d = s.opts.DrainTimeout
	}
	for _, v := range s.running {
		s.retire(v, max(d, time.Millisecond))
	}
	s.running = map[int]*vserver{}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() { s.retiring.Wait(); close(done) }()
	select {
	case <-done:
		if s.forced.Load() > forcedBefore {
			return context.DeadlineExceeded // a generation's own deadline cut sessions short
		}
		return nil
	case <-ctx.Done():
		s.dmu.Lock()
		for v := range s.draining {
			v.closeConns()
		}
		s.dmu.Unlock()
		<-done
		return ctx.Err()
	}
}

// listener is one real listening socket and its accept loop.
type listener struct {
	addr string
	ln   net.Listener
	done chan struct{} // closed when the accept loop returned
}

func (s *Supervisor) acceptLoop(l *listener) {
	defer close(l.done)
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Any other error (EMFILE, ENOBUFS, a firewall's EPERM …) is
			// retried with backoff: giving up would leave a socket that
			// accepts connections nobody greets.
			delay = min(max(delay*2, 5*time.Millisecond), time.Second)
			s.event(Event{Kind: "accept-error", Addr: l.addr, Err: err})
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.dispatch(l.addr, c)
	}
}

// dispatch hands a connection to the virtual server routed for addr; on a
// secure address it first does the TLS handshake, in a goroutine of its own
// so that the accept loop never waits on a client.
func (s *Supervisor) dispatch(addr string, c net.Conn) {
	r := (*s.routes.Load())[addr]
	if r.secure && r.v != nil {
		go s.handshake(addr, c, r.v.spec)
		return
	}
	s.handOver(addr, c)
}

// handshake does the server side of implicit TLS on c with the virtual
// server's certificate, then hands the *tls.Conn over; a client that does
// not complete the handshake in time is closed without a word of SMTP.
func (s *Supervisor) handshake(addr string, c net.Conn, sp Spec) {
	timeout := sp.HandshakeTimeout
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	s.hmu.Lock()
	if s.handshaking == nil { // shut down meanwhile
		s.hmu.Unlock()
		c.Close()
		return
	}
	s.handshaking[c] = struct{}{}
	s.hmu.Unlock()
	defer func() {
		s.hmu.Lock()
		delete(s.handshaking, c)
		s.hmu.Unlock()
	}()
	hc := &hookConn{Conn: c}
	tc := tls.Server(hc, sp.TLSConfig)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	c.SetDeadline(time.Now().Add(timeout))
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	s.handOver(addr, hc, tc)
}

// hookConn is the plain connection under a secure binding's *tls.Conn:
// closing the TLS connection closes it, which stops counting it. (The
// server must get the *tls.Conn itself to see the session as TLS.)
type hookConn struct {
	net.Conn
	tracked atomic.Pointer[trackedConn] // the count to stop on Close
}

func (h *hookConn) Close() error {
	if t := h.tracked.Load(); t != nil {
		t.forget()
	}
	return h.Conn.Close()
}

// handOver gives c to the generation routed for addr, counting it. When
// secure is set, c is the hookConn under it and secure is what the server
// gets.
func (s *Supervisor) handOver(addr string, c net.Conn, secure ...*tls.Conn) {
	var out net.Conn = c // what the client is answered on when refused
	if len(secure) > 0 {
		out = secure[0]
	}
	for range 3 {
		v := (*s.routes.Load())[addr].v
		if v == nil {
			break
		}
		cnt := v.counters
		if !cnt.take(v.spec.MaxConnections) {
			cnt.Refused.Add(1)
			go refuse(out, "421 4.3.2 Too many connections, try later\r\n")
			return
		}
		tc := &trackedConn{Conn: c, counters: cnt, v: v}
		var give net.Conn = tc
		if len(secure) > 0 {
			c.(*hookConn).tracked.Store(tc)
			give = secure[0]
		}
		v.cmu.Lock()
		v.conns[tc] = struct{}{}
		v.cmu.Unlock()
		// Counted before the hand-over: once delivered, the session may be
		// under way (and seen in status) before this goroutine runs again.
		cnt.Accepted.Add(1)
		if v.ln.deliver(give) {
			return
		}
		// That generation was retired meanwhile: the routes have been
		// swapped already, so look again.
		cnt.Accepted.Add(^uint64(0))
		tc.forget()
	}
	go refuse(out, "421 4.3.2 Service not available, closing transmission channel\r\n")
}

// take counts one more open connection unless max (> 0) are open already.
func (c *Counters) take(max int) bool {
	for {
		n := c.Open.Load()
		if max > 0 && n >= int64(max) {
			return false
		}
		if c.Open.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func refuse(c net.Conn, reply string) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte(reply))
	c.Close()
}

// trackedConn counts an open connection until it is closed.
type trackedConn struct {
	net.Conn
	counters *Counters
	v        *vserver
	once     sync.Once
}

// forget stops counting the connection, once.
func (c *trackedConn) forget() {
	c.once.Do(func() {
		c.counters.Open.Add(-1)
		c.v.cmu.Lock()
		delete(c.v.conns, c)
		c.v.cmu.Unlock()
	})
}

func (c *trackedConn) Close() error {
	c.forget()
	return c.Conn.Close()
}

// chanListener is the net.Listener a generation's server consumes: the
// supervisor's accept loops deliver connections to it.
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), closed: make(chan struct{})}
}

// Accept waits for the next connection routed to this generation.
func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close stops the generation taking new connections.
func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// Addr is the first binding's address.
func (l *chanListener) Addr() net.Addr { return l.addr }

// deliver hands c to the server; false when the listener is closed.
func (l *chanListener) deliver(c net.Conn) bool {
	select {
	case <-l.closed:
		return false
	default:
	}
	select {
	case l.ch <- c:
		return true
	case <-l.closed:
		return false
	}
}

// VirtualServer is the state of one virtual server for status reports.
type VirtualServer struct {
	Instance       int
	AutoStart      bool
	Running        bool
	Bindings       []string // listen addresses
	SecureBindings []string // listen addresses with implicit TLS
	Fingerprint    string
	MaxConnections int
	SessionsOpen   int64
	Connections    uint64 // accepted since the process started
	TooMany        uint64 // refused over MaxConnections since the process started
}

// State is a snapshot of the supervisor.
type State struct {
	Version  uint64
	Servers  []VirtualServer
	Draining int // retired generations still finishing sessions
}

// State returns a snapshot of what runs now.
func (s *Supervisor) State() State {
	s.mu.Lock()
	st := State{Version: s.version}
	for _, inst := range sortedKeys(s.specs) {
		sp := s.specs[inst]
		vs := VirtualServer{Instance: inst, AutoStart: sp.AutoStart, Fingerprint: sp.Fingerprint, MaxConnections: sp.MaxConnections}
		_, vs.Running = s.running[inst]
		for _, b := range sp.Bindings {
			vs.Bindings = append(vs.Bindings, b.Addr())
		}
		for _, b := range sp.SecureBindings {
			vs.SecureBindings = append(vs.SecureBindings, b.Addr())
		}
		c := s.CountersFor(inst)
		vs.SessionsOpen, vs.Connections, vs.TooMany = c.Open.Load(), c.Accepted.Load(), c.Refused.Load()
		st.Servers = append(st.Servers, vs)
	}
	s.mu.Unlock()
	s.dmu.Lock()
	st.Draining = len(s.draining)
	s.dmu.Unlock()
	return st
}

// Addrs returns the addresses listened on now, for tests and status. An
// address bound to port 0 reports the port the system chose.
func (s *Supervisor) Addrs() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for a, l := range s.listeners {
		out[a] = l.ln.Addr().String()
	}
	return out
}
