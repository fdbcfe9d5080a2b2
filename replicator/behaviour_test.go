package replicator_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ds2mb/ds2mb/deploy/localdir"
	"github.com/ds2mb/ds2mb/metabase"
	"github.com/ds2mb/ds2mb/replicator"
	"github.com/ds2mb/ds2mb/replicator/source"
	"github.com/ds2mb/ds2mb/schema"
)

// TestBurstCoalesced: 1,000 modifications in a row (four clients, 250
// each, on four attributes) end in a file equal to the directory, written in
// far fewer than 1,000 saves.
func TestBurstCoalesced(t *testing.T) {
	srv := localdir.StartT(t, localdir.Options{})
	mb := filepath.Join(t.TempDir(), "MetaBase.xml")
	rn := start(t, srv, mb, "syncrepl")
	waitProp(t, mb, vs1, "ServerBindings", "127.0.0.1:2525:")
	before := rn.r.Stats().Saves

	const n, clients = 1000, 4
	attrs := []struct{ attr, prop string }{
		{"msExchSmtpMaxRecipients", "MaxRecipients"}, {"msExchSmtpMaxMessageSize", "MaxMessageSize"},
		{"msExchSmtpMaxSessionSize", "MaxSessionSize"}, {"msExchIncomingConnectionTimeout", "ConnectionTimeout"},
	}
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		go func(c int) {
			conn, err := srv.Dial()
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			for i := 1; i <= n/clients; i++ {
				m := ldap.NewModifyRequest(localdir.SampleVSDN("SERVER01", 1), nil)
				m.Replace(attrs[c].attr, []string{strconv.Itoa(1000 + i)})
				if err := conn.Modify(m); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}(c)
	}
	for c := 0; c < clients; c++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range attrs {
		if p, ok := schema.ForAttribute(a.attr); !ok || p.Name != a.prop {
			t.Fatalf("%s does not map to %s", a.attr, a.prop)
		}
		waitProp(t, mb, vs1, a.prop, strconv.Itoa(1000+n/clients))
	}
	rn.stop()
	saves := rn.r.Stats().Saves - before
	t.Logf("%d modifications written in %d saves", n, saves)
	if saves >= n/4 {
		t.Errorf("%d saves for %d modifications: not coalesced", saves, n)
	}
	equalOwned(t, mb, fresh(t, srv))
}

// TestBadValues: a value the catalogue refuses and a malformed binding raise
// an event naming DN, attribute, value and reason; the property keeps its
// last good value; the file stays valid; other changes are applied.
func TestBadValues(t *testing.T) {
	srv := localdir.StartT(t, localdir.Options{})
	mb := filepath.Join(t.TempDir(), "MetaBase.xml")
	rn := start(t, srv, mb, "syncrepl")
	waitProp(t, mb, vs1, "MaxRecipients", "100")

	vsDN := localdir.SampleVSDN("SERVER01", 1)
	ldif(t, srv, "dn: "+vsDN+"\nchangetype: modify\nreplace: msExchSmtpMaxRecipients\nmsExchSmtpMaxRecipients: -5\n-\n"+
		"replace: msExchSmtpMaxMessageSize\nmsExchSmtpMaxMessageSize: 123456\n-")
	waitProp(t, mb, vs1, "MaxMessageSize", "123456")
	rn.waitEvent(replicator.EvValueRefused, func(e replicator.Event) bool {
		return e.DN == vsDN && e.Attribute == "msExchSmtpMaxRecipients" && e.Value == "-5" && e.Reason != "" &&
			e.Location == vs1 && e.Property == "MaxRecipients"
	}, "value refused event for -5")
	if got := prop(mb, vs1, "MaxRecipients"); got != "100" {
		t.Errorf("MaxRecipients = %q, want the last good value 100", got)
	}
	valid(t, mb)

	// A malformed binding: unknown event type. Its neighbour is fine.
	bad := "cn=Bad," + localdir.SampleVSDN("SERVER01", 2)
	good := "cn=Good," + localdir.SampleVSDN("SERVER01", 2)
	goodID := "{AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE}"
	ldif(t, srv,
		"dn: "+bad+"\nchangetype: add\nobjectClass: ds2mbEventBinding\ncn: Bad\nds2mbEventType: OnNothingAtAll\nds2mbSinkClass: X",
		"dn: "+good+"\nchangetype: add\nobjectClass: ds2mbEventBinding\ncn: Good\nds2mbEventType: OnArrival\nds2mbBindingID: "+goodID+
			"\nds2mbSinkClass: Y\nds2mbPriority: 99999\nds2mbSinkProperty: no equals sign\nds2mbSinkProperty: Ok=1")
	gl := schema.BindingLocation(2, onArrival, goodID)
	waitProp(t, mb, gl, "SinkClass", "Y")
	waitProp(t, mb, gl+"/SinkProperties", "Ok", "1")
	rn.waitEvent(replicator.EvValueRefused, func(e replicator.Event) bool {
		return e.DN == bad && e.Attribute == "ds2mbEventType" && e.Value == "OnNothingAtAll" && e.Reason != ""
	}, "refusal of the malformed binding")
	rn.waitEvent(replicator.EvValueRefused, func(e replicator.Event) bool {
		return e.DN == good && e.Attribute == "ds2mbPriority" && e.Value == "99999"
	}, "refusal of priority 99999")
	rn.waitEvent(replicator.EvValueRefused, func(e replicator.Event) bool {
		return e.DN == good && e.Attribute == "ds2mbSinkProperty" && e.Value == "no equals sign"
	}, "refusal of a malformed sink property")
	if got := prop(mb, gl+"/SourceProperties", "Priority"); got != "" {
		t.Errorf("refused priority written: %q", got)
	}
	// A binding that was good and turns malformed keeps its last good nodes.
	ldif(t, srv, replace(good, "ds2mbBindingID", "not-a-guid"), replace(vsDN, "msExchSmtpMaxRecipients", "42"))
	waitProp(t, mb, vs1, "MaxRecipients", "42")
	rn.waitEvent(replicator.EvValueRefused, func(e replicator.Event) bool { return e.DN == good && e.Attribute == "ds2mbBindingID" }, "refused binding ID")
	if got := prop(mb, gl, "SinkClass"); got != "Y" {
		t.Errorf("binding with a refused ID lost its last good nodes: SinkClass %q", got)
	}
	// Two virtual servers on one binding: the metabase would be invalid;
	// the second keeps its last good bindings.
	ldif(t, srv, replace(localdir.SampleVSDN("SERVER01", 2), "msExchServerBindings", "127.0.0.1:2525:"),
		replace(vsDN, "msExchSmtpMaxRecipients", "43"))
	waitProp(t, mb, vs1, "MaxRecipients", "43")
	if got := prop(mb, vs2, "ServerBindings"); got != "127.0.0.1:2526:" {
		t.Errorf("VS 2 ServerBindings = %q, want the last good 127.0.0.1:2526:", got)
	}
	rn.waitEvent(replicator.EvValueRefused, func(e replicator.Event) bool { return e.Location == vs2 && e.Property == "ServerBindings" }, "duplicate binding refused")
	valid(t, mb)
}

// TestLocalEdits: a local edit to an owned property is overwritten (with an
// event); a locally added event binding survives 100 replications.
func TestLocalEdits(t *testing.T) {
	srv := localdir.StartT(t, localdir.Options{})
	mb := filepath.Join(t.TempDir(), "MetaBase.xml")
	rn := start(t, srv, mb, "syncrepl")
	waitProp(t, mb, vs1, "MaxRecipients", "100")

	// What an operator does with mbctl: load, edit, save.
	st := metabase.Open(mb)
	tr, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	tr.Node(vs1).Set("MaxRecipients", "999")
	localID := "{0F0F0F0F-1111-2222-3333-444455556666}"
	ll := schema.BindingLocation(1, onArrival, localID)
	b := tr.Ensure(ll, metabase.ClassConfig)
	b.Set("SinkClass", "LocalSink")
	b.Set("DisplayName", "added with mbctl")
	tr.Ensure(ll+"/SourceProperties", metabase.ClassConfig).Set("Priority", "10")
	tr.Node(vs1).Set("PostmasterEmail", "postmaster@example.com") // a local property on a replicated node
	if _, err := st.Save(tr); err != nil {
		t.Fatal(err)
	}

	vsDN := localdir.SampleVSDN("SERVER01", 1)
	ldif(t, srv, replace(vsDN, "msExchSmtpMaxMessageSize", "2000"))
	waitProp(t, mb, vs1, "MaxMessageSize", "2000")
	if got := prop(mb, vs1, "MaxRecipients"); got != "100" {
		t.Errorf("local edit not overwritten: MaxRecipients %q", got)
	}
	rn.waitEvent(replicator.EvLocalEditOverwritten, func(e replicator.Event) bool {
		return e.Location == vs1 && e.Property == "MaxRecipients" && e.Old == "999" && e.New == "100"
	}, "local edit overwritten event")

	for i := 1; i <= 100; i++ {
		v := strconv.Itoa(3000 + i)
		ldif(t, srv, replace(vsDN, "msExchSmtpMaxMessageSize", v))
		waitProp(t, mb, vs1, "MaxMessageSize", v)
		tr := load(mb)
		if n := tr.Node(ll); n == nil || n.Text("SinkClass") != "LocalSink" {
			t.Fatalf("replication %d removed the local binding", i)
		}
		if tr.Node(ll+"/SourceProperties").Text("Priority") != "10" || tr.Node(vs1).Text("PostmasterEmail") != "postmaster@example.com" {
			t.Fatalf("replication %d changed a local property", i)
		}
	}
	valid(t, mb)
}

// TestSlapdKilledWhileRunning: the replicator notices the lost connection,
// keeps the metabase, redials with backoff and catches up by itself.
func TestSlapdKilledWhileRunning(t *testing.T) {
	for _, mode := range []string{"syncrepl", "poll"} {
		t.Run(mode, func(t *testing.T) {
			srv := localdir.StartT(t, localdir.Options{})
			mb := filepath.Join(t.TempDir(), "MetaBase.xml")
			rn := start(t, srv, mb, mode)
			waitProp(t, mb, vs1, "MaxRecipients", "100")
			if err := srv.Kill(); err != nil {
				t.Fatal(err)
			}
			rn.waitEvent(replicator.EvConnectionLost, nil, "connection lost")
			if got := prop(mb, vs1, "MaxRecipients"); got != "100" {
				t.Errorf("metabase changed while the directory was away: %q", got)
			}
			if err := srv.Restart(context.Background()); err != nil {
				t.Fatal(err)
			}
			ldif(t, srv, replace(localdir.SampleVSDN("SERVER01", 1), "msExchSmtpMaxRecipients", "88"), vsLDIF(3, "127.0.0.1:2527:"))
			waitProp(t, mb, vs1, "MaxRecipients", "88")
			waitProp(t, mb, vs3, "ServerBindings", "127.0.0.1:2527:")
			rn.waitEvent(replicator.EvConnectionRestored, nil, "connection restored")
			t.Logf("cookie reset after the crash: %v", rn.has(replicator.EvCookieReset, nil))
			valid(t, mb)
		})
	}
}

// TestNoCredentialsInErrors: a bad password and a URL with user
// information appear in no error and no event.
func TestNoCredentialsInErrors(t *testing.T) {
	srv := localdir.StartT(t, localdir.Options{})
	const pw = "Sup3r-S3cret-Pa55"
	c := sourceConfig(srv)
	c.Password = pw
	if _, err := source.SupportsSyncrepl(&c); err == nil || strings.Contains(err.Error(), pw) {
		t.Fatalf("bind with a wrong password: err %v", err)
	}
	c2 := c
	c2.URL = strings.Replace(srv.URL, "ldap://", "ldap://admin:"+pw+"@", 1)
	c2.URL = strings.Replace(c2.URL, strconv.Itoa(srv.Port), "1", 1) // nothing listens there
	if _, err := c2.Dial(); err == nil || strings.Contains(err.Error(), pw) {
		t.Fatalf("dial error holds the password: %v", err)
	}
	for _, cfg := range []source.Config{c, c2} {
		mb := filepath.Join(t.TempDir(), "MetaBase.xml")
		var seen []replicator.Event
		r, err := replicator.New(replicator.Options{Metabase: mb, Server: "SERVER01", Source: source.NewSyncrepl(cfg),
			Events: func(e replicator.Event) { seen = append(seen, e) }})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		waitFor(t, "connection lost event", func() bool { return rnHas(r) })
		cancel()
		if err := <-done; err != nil && strings.Contains(err.Error(), pw) {
			t.Errorf("Run error holds the password")
		}
		lost := false
		for _, e := range seen {
			if strings.Contains(fmt.Sprintf("%+v", e), pw) {
				t.Errorf("event holds the password: %v", e)
			}
			if e.ID == replicator.EvConnectionLost {
				lost = true
			}
		}
		if !lost {
			t.Errorf("no connection-lost event for %s", cfg.URL[:7])
		}
	}
}

// rnHas waits on the replicator's change counter: a lost connection is a change.
func rnHas(r *replicator.Replicator) bool { return r.Stats().Changes >= 1 }

// TestResync: with Resync set, a local edit to a replicated property is set
// back without any directory change.
func TestResync(t *testing.T) {
	srv := localdir.StartT(t, localdir.Options{})
	mb := filepath.Join(t.TempDir(), "MetaBase.xml")
	rn := startOpts(t, srv, mb, "syncrepl", func(o *replicator.Options) { o.Resync = 50 * time.Millisecond })
	waitProp(t, mb, vs1, "MaxRecipients", "100")
	st := metabase.Open(mb)
	tr, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	tr.Node(vs1).Set("MaxRecipients", "999")
	if _, err := st.Save(tr); err != nil {
		t.Fatal(err)
	}
	rn.waitEvent(replicator.EvLocalEditOverwritten, func(e replicator.Event) bool { return e.Old == "999" }, "local edit set back by the resync")
	waitProp(t, mb, vs1, "MaxRecipients", "100")
}

// TestStalledConsumer: while the replicator is stuck (here its event
// callback blocks), the source keeps draining the persistent search into
// its queue, so other clients' writes are never held up; once unstuck it
// catches up.
func TestStalledConsumer(t *testing.T) {
	srv := localdir.StartT(t, localdir.Options{})
	mb := filepath.Join(t.TempDir(), "MetaBase.xml")
	gate := make(chan struct{})
	var stall atomicBool
	rn := startOpts(t, srv, mb, "syncrepl", func(o *replicator.Options) {
		rec := o.Events
		o.Events = func(e replicator.Event) {
			if stall.get() {
				<-gate
			}
			rec(e)
		}
	})
	waitProp(t, mb, vs1, "MaxRecipients", "100")
	stall.set(true)
	conn, err := srv.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	for i := 1; i <= 300; i++ {
		m := ldap.NewModifyRequest(localdir.SampleVSDN("SERVER01", 1), nil)
		m.Replace("msExchSmtpMaxRecipients", []string{strconv.Itoa(500 + i)})
		if err := conn.Modify(m); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("300 modifications with the replicator stalled: %v", time.Since(start))
	if prop(mb, vs1, "MaxRecipients") != "100" {
		t.Fatalf("the stalled replicator saved")
	}
	stall.set(false)
	close(gate)
	waitProp(t, mb, vs1, "MaxRecipients", "800")
	_ = rn
}

type atomicBool struct{ v atomic.Bool }

func (b *atomicBool) get() bool  { return b.v.Load() }
func (b *atomicBool) set(x bool) { b.v.Store(x) }

// TestOnceSaveFails: a one-shot run whose metabase cannot be written
// returns the error (and reports it) instead of succeeding.
func TestOnceSaveFails(t *testing.T) {
	srv := localdir.StartT(t, localdir.Options{})
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var failed bool
	r, err := replicator.New(replicator.Options{Metabase: filepath.Join(notDir, "MetaBase.xml"), Server: "SERVER01", Source: newSource(srv, "syncrepl", true),
		Events: func(e replicator.Event) { failed = failed || e.ID == replicator.EvSaveFailed }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := r.Run(ctx); err == nil || !failed {
		t.Fatalf("Run = %v, save-failed event %v", err, failed)
	}
}
