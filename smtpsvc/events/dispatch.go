package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultTimeout bounds how long a Pending sink may take to answer.
const DefaultTimeout = 30 * time.Second

// Binding is one event binding as the metabase describes it.
type Binding struct {
	Location    string // …/Bindings/{ID}
	Event       Type
	ID          string // {GUID}, upper case
	DisplayName string
	SinkClass   string
	Enabled     bool
	MaxFirings  int // 0 = no limit
	Priority    int // 0 first … 32767 last
	Rule        Rule
	Props       map[string]string // SinkProperties
}

// Name is how logs name the binding: its display name, else its ID.
func (b *Binding) Name() string {
	if b.DisplayName != "" {
		return b.DisplayName
	}
	return b.ID
}

// Problem is a binding that was left out of a Dispatcher, and why.
type Problem struct {
	Location string
	Property string // "SinkClass", "SinkProperties", …
	Reason   string
}

func (p Problem) String() string { return p.Location + ": " + p.Property + ": " + p.Reason }

// Firings counts how often each binding fired, across the Dispatchers a
// worker builds on its reloads, so that MaxFirings holds over a reload.
type Firings struct {
	mu sync.Mutex
	n  map[string]*atomic.Int64 // by Location, upper case
}

// NewFirings returns an empty count.
func NewFirings() *Firings { return &Firings{n: map[string]*atomic.Int64{}} }

func (f *Firings) counter(loc string) *atomic.Int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := strings.ToUpper(loc)
	c := f.n[k]
	if c == nil {
		c = new(atomic.Int64)
		f.n[k] = c
	}
	return c
}

// Stats count what the sinks did.
type Stats struct {
	Fired    atomic.Int64 // sink calls
	Stopped  atomic.Int64 // events a sink stopped
	Failed   atomic.Int64 // errors and panics
	TimedOut atomic.Int64 // pending sinks that did not answer in time
}

// Options configure a Dispatcher.
type Options struct {
	Registry *Registry
	Firings  *Firings     // nil = counts of this Dispatcher only
	Logger   *slog.Logger // nil = slog.Default()
	Stats    *Stats       // nil = a Dispatcher of its own
	// Timeout bounds a Pending sink; 0 = DefaultTimeout. A binding's sink
	// property "Timeout" (a Go duration, "2s") overrides it.
	Timeout time.Duration
}

// Dispatcher runs the bindings of one virtual server. A nil *Dispatcher
// has no bindings.
type Dispatcher struct {
	byEvent map[string][]*bound // by CATID, in firing order
	log     *slog.Logger
	stats   *Stats
}

type bound struct {
	Binding
	sink    Sink
	fired   *atomic.Int64
	timeout time.Duration
}

// Build makes a Dispatcher of bindings. A binding that is disabled is
// kept (it is skipped when events fire, so status can list it); one whose
// class is unknown, does not handle its event, or refuses its properties
// is left out and returned as a Problem.
func Build(bindings []Binding, o Options) (*Dispatcher, []Problem) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Firings == nil {
		o.Firings = NewFirings()
	}
	if o.Stats == nil {
		o.Stats = &Stats{}
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	d := &Dispatcher{byEvent: map[string][]*bound{}, log: o.Logger, stats: o.Stats}
	var probs []Problem
	for _, b := range bindings {
		if o.Registry == nil {
			probs = append(probs, Problem{b.Location, "SinkClass", "no sink classes are registered"})
			continue
		}
		if err := o.Registry.Check(b.SinkClass, b.Event); err != nil {
			probs = append(probs, Problem{b.Location, "SinkClass", err.Error()})
			continue
		}
		timeout := o.Timeout
		if v, ok := prop(b.Props, "Timeout"); ok {
			t, err := time.ParseDuration(v)
			if err != nil || t <= 0 {
				probs = append(probs, Problem{b.Location, "SinkProperties", fmt.Sprintf("Timeout %q is not a positive duration (2s, 500ms)", v)})
				continue
			}
			timeout = t
		}
		c, _ := o.Registry.Class(b.SinkClass)
		sink, err := c.New(b.Props)
		if err != nil {
			probs = append(probs, Problem{b.Location, "SinkProperties", fmt.Sprintf("%s: %v", c.Name, err)})
			continue
		}
		d.byEvent[b.Event.CATID] = append(d.byEvent[b.Event.CATID], &bound{Binding: b, sink: sink, fired: o.Firings.counter(b.Location), timeout: timeout})
	}
	for _, list := range d.byEvent {
		sort.SliceStable(list, func(i, j int) bool {
			if list[i].Priority != list[j].Priority {
				return list[i].Priority < list[j].Priority
			}
			return list[i].ID < list[j].ID
		})
	}
	return d, probs
}

// prop reads a sink property by name, case-insensitively.
func prop(props map[string]string, name string) (string, bool) {
	for k, v := range props {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// Prop reads a sink property by name, case-insensitively (for sink
// factories).
func Prop(props map[string]string, name string) (string, bool) { return prop(props, name) }

// Has reports whether any enabled binding listens to an event type, so
// callers can skip building an event nobody wants.
func (d *Dispatcher) Has(t Type) bool {
	if d == nil {
		return false
	}
	for _, b := range d.byEvent[t.CATID] {
		if b.Enabled {
			return true
		}
	}
	return false
}

// Len is the number of bindings in the Dispatcher.
func (d *Dispatcher) Len() int {
	if d == nil {
		return 0
	}
	n := 0
	for _, l := range d.byEvent {
		n += len(l)
	}
	return n
}

// Outcome is what one Fire did.
type Outcome struct {
	Ran       []string // bindings whose sink ran, in order (names)
	StoppedBy string   // the binding that answered Stop; "" = none
	Failures  []Failure
}

// Failure is a sink that failed during a Fire.
type Failure struct {
	Binding string // name
	Class   string
	Err     error
}

// ErrTimeout is the error of a Pending sink that did not answer in time.
var ErrTimeout = errors.New("the sink did not answer before its deadline")

// Fire runs the bindings of ev.Type whose rule matches ev, in order, until
// one answers Stop.
func (d *Dispatcher) Fire(ctx context.Context, ev *Event) Outcome {
	var out Outcome
	if d == nil {
		return out
	}
	for _, b := range d.byEvent[ev.Type.CATID] {
		if !b.Enabled || !b.Rule.Match(ev) {
			continue
		}
		if b.MaxFirings > 0 {
			if n := b.fired.Add(1); n > int64(b.MaxFirings) {
				b.fired.Add(-1)
				continue
			}
		} else {
			b.fired.Add(1)
		}
		out.Ran = append(out.Ran, b.Name())
		d.stats.Fired.Add(1)
		st, err := d.call(ctx, b, ev)
		if err != nil {
			if errors.Is(err, ErrTimeout) {
				d.stats.TimedOut.Add(1)
			} else {
				d.stats.Failed.Add(1)
			}
			out.Failures = append(out.Failures, Failure{Binding: b.Name(), Class: b.SinkClass, Err: err})
			d.log.Warn("event sink failed; skipped", "event", ev.Type.Name, "binding", b.Name(), "location", b.Location,
				"class", b.SinkClass, "err", err)
			continue
		}
		if st == Stop {
			d.stats.Stopped.Add(1)
			out.StoppedBy = b.Name()
			break
		}
	}
	return out
}

// call runs one sink, turning a panic into an error and waiting for a
// Pending answer up to the binding's deadline.
func (d *Dispatcher) call(ctx context.Context, b *bound, ev *Event) (st Status, err error) {
	var res Result
	func() {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		res = b.sink.Fire(ctx, ev)
	}()
	if err != nil {
		return Continue, err
	}
	if res.Err != nil {
		return Continue, res.Err
	}
	switch res.Status {
	case Continue, Stop:
		return res.Status, nil
	case Pending:
		if res.Done == nil {
			return Continue, errors.New("answered pending without a channel")
		}
		t := time.NewTimer(b.timeout)
		defer t.Stop()
		select {
		case s := <-res.Done:
			if s == Stop {
				return Stop, nil
			}
			return Continue, nil
		case <-t.C:
			return Continue, fmt.Errorf("%w (%v)", ErrTimeout, b.timeout)
		case <-ctx.Done():
			return Continue, ctx.Err()
		}
	}
	return Continue, fmt.Errorf("unknown answer %v", res.Status)
}

// HasTransport reports whether any transport-chain event has bindings.
func (d *Dispatcher) HasTransport() bool {
	for _, t := range TransportChain {
		if d.Has(t) {
			return true
		}
	}
	return false
}

// RunTransport fires the transport chain (TransportChain) on a message,
// in order, until a sink sets its status to something other than Deliver.
// sess is nil for mail that did not come over SMTP (Pickup).
func (d *Dispatcher) RunTransport(ctx context.Context, instance int, sess *Session, m *MailMsg) {
	for _, t := range TransportChain {
		if !d.Has(t) {
			continue
		}
		d.Fire(ctx, &Event{Type: t, Instance: instance, Session: sess, Msg: m})
		if m.Status != Deliver {
			return
		}
	}
}

// Bindings lists the Dispatcher's bindings by event and order, for status.
func (d *Dispatcher) Bindings() []Binding {
	if d == nil {
		return nil
	}
	var cats []string
	for c := range d.byEvent {
		cats = append(cats, c)
	}
	sort.Strings(cats)
	var out []Binding
	for _, c := range cats {
		for _, b := range d.byEvent[c] {
			out = append(out, b.Binding)
		}
	}
	return out
}
