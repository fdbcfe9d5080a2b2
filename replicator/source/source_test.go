package source_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/deploy/localdir"
	"github.com/ds2mb/ds2mb/replicator"
	"github.com/ds2mb/ds2mb/replicator/source"
)

const waitLimit = 20 * time.Second

// collector records what a source emits.
type collector struct {
	mu  sync.Mutex
	chs []replicator.Change
}

func (c *collector) emit(ch replicator.Change) {
	c.mu.Lock()
	c.chs = append(c.chs, ch)
	c.mu.Unlock()
}

func (c *collector) snapshot() []replicator.Change {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]replicator.Change(nil), c.chs...)
}

func (c *collector) wait(t *testing.T, what string, ok func(replicator.Change) bool) replicator.Change {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		for _, ch := range c.snapshot() {
			if ok(ch) {
				return ch
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; got %d changes", what, len(c.snapshot()))
		}
		time.Sleep(3 * time.Millisecond)
	}
}

// runSource runs a syncrepl source until the test ends; it returns the
// collector and a stop function that returns the last cookie seen.
func runSource(t *testing.T, srv *localdir.Server, cookie []byte) (*collector, func() []byte) {
	c := &collector{}
	cfg := source.Config{URL: srv.URL, BindDN: srv.BindDN, Password: srv.Password, BaseDN: source.SearchBase(srv.ConfigDN)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- source.NewSyncrepl(cfg).Run(ctx, cookie, c.emit) }()
	stop := func() []byte {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Run: %v", err)
		}
		var last []byte
		for _, ch := range c.snapshot() {
			if len(ch.Cookie) > 0 {
				last = ch.Cookie
			}
		}
		return last
	}
	t.Cleanup(func() { cancel() })
	return c, stop
}

func isEnd(ch replicator.Change) bool { return ch.Kind == replicator.ChangeRefreshEnd }

// TestSyncreplShapes checks the three refresh shapes DIRECTORIES.md §3
// describes, as the source reports them: a first refresh (everything,
// reconciled), a resume within the session log (deletes as bare UUIDs, no
// reconcile), and a resume after a slapd restart (present phase: deletes
// by absence, reconciled).
func TestSyncreplShapes(t *testing.T) {
	srv := localdir.StartT(t, localdir.Options{})
	c, stop := runSource(t, srv, nil)
	end := c.wait(t, "first refresh end", isEnd)
	if !end.Reconcile || len(end.Cookie) == 0 {
		t.Errorf("first refresh end: reconcile %v cookie %q", end.Reconcile, end.Cookie)
	}
	var partnerUUID, bindingUUID string
	upserts := map[string]bool{}
	for _, ch := range c.snapshot() {
		if ch.Kind == replicator.ChangeRefreshBegin && !ch.Full {
			t.Errorf("first refresh not marked full")
		}
		if ch.Kind == replicator.ChangeUpsert {
			upserts[ch.UUID] = true
			if strings.HasPrefix(ch.DN, "cn=Partner Policy") {
				partnerUUID = ch.UUID
			}
			if strings.HasPrefix(ch.DN, "cn=Header Stamp") {
				bindingUUID = ch.UUID
			}
		}
	}
	if len(upserts) != 9 || partnerUUID == "" || bindingUUID == "" {
		t.Fatalf("first refresh: %d objects (want the 9 of the sample)", len(upserts))
	}
	// Persist: a modify arrives as an upsert with a cookie.
	if err := srv.AddLDIF("dn: " + localdir.SampleVSDN("SERVER01", 1) + "\nchangetype: modify\nreplace: msExchSmtpMaxRecipients\nmsExchSmtpMaxRecipients: 7\n-"); err != nil {
		t.Fatal(err)
	}
	up := c.wait(t, "persist modify", func(ch replicator.Change) bool {
		return ch.Kind == replicator.ChangeUpsert && len(ch.Attrs["msExchSmtpMaxRecipients"]) == 1 && ch.Attrs["msExchSmtpMaxRecipients"][0] == "7"
	})
	if len(up.Cookie) == 0 {
		t.Errorf("persist change without a cookie")
	}
	cookie := stop()

	// Resume within the session log: the delete comes as a bare UUID.
	if err := srv.AddLDIF("dn: cn=Partner Policy," + localdir.SamplePoliciesDN + "\nchangetype: delete"); err != nil {
		t.Fatal(err)
	}
	c2, stop2 := runSource(t, srv, cookie)
	end2 := c2.wait(t, "resume refresh end", isEnd)
	del := false
	for _, ch := range c2.snapshot() {
		if ch.Kind == replicator.ChangeDelete && ch.UUID == partnerUUID {
			del = true
		}
		if ch.Kind == replicator.ChangeRefreshBegin && ch.Full {
			t.Errorf("resume marked full")
		}
	}
	t.Logf("session-log resume: delete as UUID %v, reconcile %v", del, end2.Reconcile)
	if !del && !end2.Reconcile {
		t.Errorf("the deleted policy was reported neither by UUID nor by a present phase")
	}
	cookie2 := stop2()
	if len(cookie2) == 0 {
		cookie2 = cookie
	}

	// Resume after a restart (the session log is lost): present phase.
	if err := srv.AddLDIF("dn: " + localdir.SampleBindingDN() + "\nchangetype: delete"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	c3, stop3 := runSource(t, srv, cookie2)
	end3 := c3.wait(t, "present-phase refresh end", isEnd)
	presents := 0
	for _, ch := range c3.snapshot() {
		switch {
		case ch.Kind == replicator.ChangePresent && ch.UUID == bindingUUID:
			t.Errorf("deleted binding listed as present")
		case ch.Kind == replicator.ChangePresent:
			presents++
		case ch.Kind == replicator.ChangeDelete && ch.UUID == bindingUUID:
			presents = -1000 // a bare delete is fine too
		}
	}
	t.Logf("after a restart: %d present UUIDs, reconcile %v", presents, end3.Reconcile)
	if presents >= 0 && (!end3.Reconcile || presents == 0) {
		t.Errorf("no present phase after a restart: reconcile %v, %d present", end3.Reconcile, presents)
	}
	stop3()
}
