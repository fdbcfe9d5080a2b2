package source

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ds2mb/ds2mb/replicator"
)

// Poll is a source for directories without syncrepl: entryCSN polling
// (DIRECTORIES.md §3 "Polling fallback"). Before each poll it reads the
// naming context's contextCSN as the next high-water mark, then asks for
// (&<filter>(entryCSN>=C)(!(entryCSN=C))) with the previous mark C. Deletes
// are invisible to that search, so every FullEvery polls (and at start) it
// lists the entryUUIDs of every matching object and reports the missing
// ones as deleted. The cookie is "csn=<contextCSN>".
type Poll struct {
	Config
	Interval  time.Duration // between polls; 0 = 1 s
	FullEvery int           // a full entryUUID listing every N polls; 0 = 10
}

// NewPoll returns a polling source.
func NewPoll(c Config, interval time.Duration) *Poll { return &Poll{Config: c, Interval: interval} }

// Kind names the cookie kind.
func (p *Poll) Kind() string { return "poll" }

const csnPrefix = "csn="

// Run polls until ctx ends or, with Once, after the first complete pass.
func (p *Poll) Run(ctx context.Context, cookie []byte, emit func(replicator.Change)) error {
	interval := p.Interval
	if interval <= 0 {
		interval = time.Second
	}
	every := p.FullEvery
	if every <= 0 {
		every = 10
	}
	mark := ""
	if c, ok := strings.CutPrefix(string(cookie), csnPrefix); ok {
		mark = c
	}
	b := newBackoff(&p.Config)
	lost := false
	var conn *ldap.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	// connLost handles a failed dial or poll: a one-shot run returns the
	// error; otherwise the loss is reported once and the backoff waited
	// out. A non-nil result ends Run.
	connLost := func(err error) error {
		if p.Once {
			return err
		}
		if !lost {
			lost = true
			emit(replicator.Change{Kind: replicator.ChangeConnLost, Reason: describe(err)})
		}
		if !b.wait(ctx) {
			return ctx.Err()
		}
		return nil
	}
	polls := 0
	for {
		if conn == nil {
			c, err := p.DialContext(ctx)
			if err != nil {
				if stop := connLost(err); stop != nil {
					return stop
				}
				continue
			}
			conn = c
			if lost {
				lost = false
				emit(replicator.Change{Kind: replicator.ChangeConnRestored})
			}
			polls = 0 // after a reconnect, look for deletes at once
		}
		next, err := p.poll(ctx, conn, mark, polls%every == 0, emit)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			conn.Close()
			conn = nil
			if stop := connLost(err); stop != nil {
				return stop
			}
			continue
		}
		b.reset()
		mark = next
		polls++
		if p.Once {
			return nil
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// poll runs one pass and returns the new high-water mark.
func (p *Poll) poll(ctx context.Context, conn *ldap.Conn, mark string, listAll bool, emit func(replicator.Change)) (string, error) {
	next, err := p.contextCSN(conn)
	if err != nil {
		return mark, err
	}
	attrs := []string{"*", "entryUUID", "entryCSN"}
	if mark == "" {
		// Initial content: every object, reconciled against the mirror.
		res, err := conn.Search(ldap.NewSearchRequest(p.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
			p.filter(), attrs, nil))
		if err != nil {
			return mark, p.wrap("search "+p.BaseDN, err)
		}
		emit(replicator.Change{Kind: replicator.ChangeRefreshBegin, Full: true})
		for _, e := range res.Entries {
			if id := entryUUID(e); id != "" {
				emit(upsert(id, e))
			}
		}
		emit(replicator.Change{Kind: replicator.ChangeRefreshEnd, Reconcile: true, Cookie: []byte(csnPrefix + next)})
		return next, nil
	}
	if next != mark {
		filter := "(&" + p.filter() + "(entryCSN>=" + ldap.EscapeFilter(mark) + ")(!(entryCSN=" + ldap.EscapeFilter(mark) + ")))"
		res, err := conn.Search(ldap.NewSearchRequest(p.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
			filter, attrs, nil))
		if err != nil {
			return mark, p.wrap("search "+p.BaseDN+" for changes", err)
		}
		for _, e := range res.Entries {
			if id := entryUUID(e); id != "" {
				emit(upsert(id, e))
			}
		}
	}
	if listAll {
		res, err := conn.Search(ldap.NewSearchRequest(p.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
			p.filter(), []string{"entryUUID"}, nil))
		if err != nil {
			return mark, p.wrap("list "+p.BaseDN, err)
		}
		emit(replicator.Change{Kind: replicator.ChangeRefreshBegin})
		for _, e := range res.Entries {
			if id := entryUUID(e); id != "" {
				emit(replicator.Change{Kind: replicator.ChangePresent, UUID: id})
			}
		}
		emit(replicator.Change{Kind: replicator.ChangeRefreshEnd, Reconcile: true, Cookie: []byte(csnPrefix + next)})
		return next, nil
	}
	if next != mark {
		emit(replicator.Change{Kind: replicator.ChangeCookie, Cookie: []byte(csnPrefix + next)})
	}
	return next, nil
}

// contextCSN reads the highest contextCSN of the naming context holding
// the search base.
func (p *Poll) contextCSN(conn *ldap.Conn) (string, error) {
	suffix, err := p.namingContext(conn)
	if err != nil {
		return "", err
	}
	res, err := conn.Search(ldap.NewSearchRequest(suffix, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"contextCSN"}, nil))
	if err != nil {
		return "", p.wrap("read contextCSN of "+suffix, err)
	}
	best := ""
	for _, e := range res.Entries {
		for _, c := range e.GetAttributeValues("contextCSN") {
			if c > best {
				best = c
			}
		}
	}
	if best == "" {
		return "", errors.New(suffix + " has no contextCSN (is the syncprov overlay or another CSN source configured?)")
	}
	return best, nil
}

func normLower(dn string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(dn)), ", ", ",")
}

func entryUUID(e *ldap.Entry) string {
	return strings.ToLower(e.GetAttributeValue("entryUUID"))
}
