package replicator_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/deploy/localdir"
	"github.com/ds2mb/ds2mb/metabase"
	"github.com/ds2mb/ds2mb/replicator"
	"github.com/ds2mb/ds2mb/replicator/source"
	"github.com/ds2mb/ds2mb/schema"
)

// waitLimit only exists to fail instead of hanging.
const waitLimit = 20 * time.Second

// running is a replicator under test.
type running struct {
	t      testing.TB
	r      *replicator.Replicator
	mb     string
	cancel context.CancelFunc
	done   chan error

	mu     sync.Mutex
	events []replicator.Event
}

func sourceConfig(srv *localdir.Server) source.Config {
	return source.Config{URL: srv.URL, BindDN: srv.BindDN, Password: srv.Password, BaseDN: source.SearchBase(srv.ConfigDN),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond}
}

func newSource(srv *localdir.Server, mode string, once bool) replicator.Source {
	c := sourceConfig(srv)
	c.Once = once
	if mode == "poll" {
		p := source.NewPoll(c, 20*time.Millisecond)
		p.FullEvery = 3
		return p
	}
	return source.NewSyncrepl(c)
}

// start runs a replicator for SERVER01 into mb.
func start(t testing.TB, srv *localdir.Server, mb, mode string) *running {
	t.Helper()
	return startOpts(t, srv, mb, mode, nil)
}

// startOpts is start with a chance to change the options.
func startOpts(t testing.TB, srv *localdir.Server, mb, mode string, edit func(*replicator.Options)) *running {
	t.Helper()
	o := replicator.Options{Metabase: mb, Server: "SERVER01", Base: srv.ConfigDN, Source: newSource(srv, mode, false)}
	return run(t, mb, o, edit)
}

// run starts a replicator with o, recording its events (edit, when not nil,
// may change the options after that), and stops it when the test ends; a
// failed test logs the events.
func run(t testing.TB, mb string, o replicator.Options, edit func(*replicator.Options)) *running {
	t.Helper()
	rn := &running{t: t, mb: mb, done: make(chan error, 1)}
	o.Events = rn.record
	if edit != nil {
		edit(&o)
	}
	r, err := replicator.New(o)
	if err != nil {
		t.Fatal(err)
	}
	rn.r = r
	ctx, cancel := context.WithCancel(context.Background())
	rn.cancel = cancel
	go func() { rn.done <- r.Run(ctx) }()
	t.Cleanup(rn.stop)
	t.Cleanup(func() {
		if t.Failed() {
			rn.mu.Lock()
			defer rn.mu.Unlock()
			for _, e := range rn.events {
				if e.ID != replicator.EvObjectReplicated && e.ID != replicator.EvObjectIgnored {
					t.Log(e.String())
				}
			}
		}
	})
	return rn
}

func (rn *running) record(e replicator.Event) {
	rn.mu.Lock()
	rn.events = append(rn.events, e)
	rn.mu.Unlock()
}

func (rn *running) stop() {
	if rn.cancel == nil {
		return
	}
	rn.cancel()
	select {
	case err := <-rn.done:
		if err != nil {
			rn.t.Errorf("replicator: %v", err)
		}
	case <-time.After(waitLimit):
		rn.t.Errorf("replicator did not stop")
	}
	rn.cancel = nil
}

// has reports whether an event with id was raised and matches.
func (rn *running) has(id replicator.EventID, match func(replicator.Event) bool) bool {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	for _, e := range rn.events {
		if e.ID == id && (match == nil || match(e)) {
			return true
		}
	}
	return false
}

func (rn *running) count(id replicator.EventID) int {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	n := 0
	for _, e := range rn.events {
		if e.ID == id {
			n++
		}
	}
	return n
}

func (rn *running) waitEvent(id replicator.EventID, match func(replicator.Event) bool, what string) {
	rn.t.Helper()
	waitFor(rn.t, what, func() bool { return rn.has(id, match) })
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(3 * time.Millisecond)
	}
}

// load reads the metabase; a missing or unreadable file is an empty tree.
func load(path string) *metabase.Tree {
	t, err := metabase.Load(path)
	if err != nil {
		return metabase.New()
	}
	return t
}

// prop returns a property's text, "" when the node or property is absent.
func prop(path, loc, name string) string {
	n := load(path).Node(loc)
	if n == nil {
		return ""
	}
	return n.Text(name)
}

func waitProp(t testing.TB, path, loc, name, want string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s %s = %q (have %q)", loc, name, want, prop(path, loc, name)), func() bool { return prop(path, loc, name) == want })
}

func waitNoNode(t testing.TB, path, loc string) {
	t.Helper()
	waitFor(t, loc+" to be removed", func() bool { return load(path).Node(loc) == nil })
}

func waitNode(t testing.TB, path, loc string) {
	t.Helper()
	waitFor(t, loc+" to appear", func() bool { return load(path).Node(loc) != nil })
}

// ldif applies LDIF change records.
func ldif(t testing.TB, srv *localdir.Server, recs ...string) {
	t.Helper()
	if err := srv.AddLDIF(strings.Join(recs, "\n\n")); err != nil {
		t.Fatalf("ldif: %v", err)
	}
}

func replace(dn, attr string, vals ...string) string {
	s := "dn: " + dn + "\nchangetype: modify\nreplace: " + attr + "\n"
	for _, v := range vals {
		s += attr + ": " + v + "\n"
	}
	return s + "-"
}

func del(dn string) string { return "dn: " + dn + "\nchangetype: delete" }

func vsLDIF(n int, binding string) string {
	return fmt.Sprintf("dn: %s\nchangetype: add\nobjectClass: protocolCfgSMTPServer\ncn: %d\nmsExchServerBindings: %s\nmsExchSmtpMaxRecipients: %d",
		localdir.SampleVSDN("SERVER01", n), n, binding, 10+n)
}

// equalOwned fails unless two metabases hold the same SMTP nodes.
func equalOwned(t testing.TB, a, b string) {
	t.Helper()
	ta, tb := load(a), load(b)
	na, nb := ta.Nodes(), tb.Nodes()
	if len(na) != len(nb) {
		t.Fatalf("%s has %d nodes, %s has %d:\n%s\n----\n%s", a, len(na), b, len(nb), ta.Bytes(), tb.Bytes())
	}
	for i := range na {
		if !na[i].Equal(nb[i]) {
			t.Fatalf("node %s differs from %s:\n%s\n----\n%s", na[i].Location, nb[i].Location, ta.Bytes(), tb.Bytes())
		}
	}
}

// fresh replicates from scratch into a new file, once, and returns its path.
func fresh(t testing.TB, srv *localdir.Server) string {
	t.Helper()
	mb := filepath.Join(t.TempDir(), "MetaBase.xml")
	r, err := replicator.New(replicator.Options{Metabase: mb, Server: "SERVER01", Base: srv.ConfigDN, Source: newSource(srv, "syncrepl", true)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	return mb
}

var (
	vs1       = schema.ServerLocation(1)
	vs2       = schema.ServerLocation(2)
	vs3       = schema.ServerLocation(3)
	onArrival = "{FF3CAA23-00B9-11D2-9DFB-00C04FA322BA}"
)

func valid(t testing.TB, path string) {
	t.Helper()
	tr, err := metabase.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if probs := tr.Validate(); probs != nil {
		t.Fatalf("metabase invalid: %v", probs)
	}
}
