package source

import (
	"context"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/ds2mb/ds2mb/replicator"
)

// Syncrepl is an RFC 4533 source: refreshAndPersist (refreshOnly with
// Once) on a dedicated connection, resumed from the cookie. A refresh
// without cookie is completed by a plain search before it ends: slapd bounds
// such a refresh by its contextCSN, which after a crash can lag entries
// written just before it, and would otherwise leave them out.
type Syncrepl struct {
	Config
}

// NewSyncrepl returns a syncrepl source.
func NewSyncrepl(c Config) *Syncrepl { return &Syncrepl{Config: c} }

// Kind names the cookie kind.
func (s *Syncrepl) Kind() string { return "syncrepl" }

// Run follows the directory until ctx ends (returns ctx.Err()) or, with
// Once, until the first refresh is complete (returns nil) or fails
// (returns the error; only a refused cookie is retried, without it).
func (s *Syncrepl) Run(ctx context.Context, cookie []byte, emit func(replicator.Change)) error {
	cookie = append([]byte(nil), cookie...)
	b := newBackoff(&s.Config)
	lost := false
	for {
		done, err := s.session(ctx, &cookie, emit, &lost, b)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if done {
			return nil
		}
		if len(cookie) > 0 && isCookieError(err) {
			emit(replicator.Change{Kind: replicator.ChangeCookieReset, Reason: describe(err)})
			cookie = nil
		} else if s.Once {
			return err // a one-shot run reports failure rather than waiting
		} else if !lost {
			lost = true
			emit(replicator.Change{Kind: replicator.ChangeConnLost, Reason: describe(err)})
		}
		if !b.wait(ctx) {
			return ctx.Err()
		}
	}
}

// session runs one connection: dial, bind, one Syncrepl search. done is
// true when a Once refresh completed.
func (s *Syncrepl) session(ctx context.Context, cookie *[]byte, emit func(replicator.Change), lost *bool, b *backoff) (done bool, err error) {
	conn, err := s.DialContext(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	// Closing the connection is the only way to stop the search (go-ldap
	// sends no Abandon on cancel).
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if *lost {
		*lost = false
		emit(replicator.Change{Kind: replicator.ChangeConnRestored})
	}

	mode := ldap.SyncRequestModeRefreshAndPersist
	if s.Once {
		mode = ldap.SyncRequestModeRefreshOnly
	}
	// A fresh request per call: go-ldap appends the control to it.
	req := ldap.NewSearchRequest(s.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		s.filter(), []string{"*", "entryCSN"}, nil)
	full := len(*cookie) == 0
	resp := conn.Syncrepl(ctx, req, 256, mode, *cookie, false)

	emit(replicator.Change{Kind: replicator.ChangeRefreshBegin, Full: full})
	refreshing := true
	present := full // a refresh without cookie lists everything
	var pending []byte
	keep := func(c []byte) []byte {
		if len(c) == 0 {
			return nil // go-ldap decodes newcookie empty; never overwrite with it
		}
		c = append([]byte(nil), c...)
		if refreshing {
			pending = c
			return nil
		}
		*cookie = c
		return c
	}
	var supErr error
	endRefresh := func(c []byte) {
		if len(c) > 0 {
			pending = append([]byte(nil), c...)
		}
		if full {
			// slapd bounds a refresh without cookie by its contextCSN,
			// which can lag the entries after a crash: read everything
			// once more with a plain search so that nothing is missed.
			if supErr = s.supplement(emit, pending); supErr != nil {
				conn.Close()
				return
			}
		}
		refreshing = false
		var out []byte
		if len(pending) > 0 {
			*cookie, out = pending, pending
		}
		emit(replicator.Change{Kind: replicator.ChangeRefreshEnd, Reconcile: present, Cookie: out})
		b.reset()
	}

	for resp.Next() {
		if e := resp.Entry(); e != nil {
			st := syncState(resp.Controls())
			if st == nil {
				continue
			}
			id := strings.ToLower(st.EntryUUID.String())
			var ch replicator.Change
			switch st.State {
			case ldap.SyncStatePresent:
				present = true
				ch = replicator.Change{Kind: replicator.ChangePresent, UUID: id}
			case ldap.SyncStateAdd, ldap.SyncStateModify:
				ch = upsert(id, e)
			case ldap.SyncStateDelete:
				ch = replicator.Change{Kind: replicator.ChangeDelete, UUID: id, DN: e.DN}
			default:
				continue
			}
			ch.Cookie = keep(st.Cookie)
			emit(ch)
			continue
		}
		for _, c := range resp.Controls() {
			switch x := c.(type) {
			case *ldap.ControlSyncInfo:
				switch {
				case x.NewCookie != nil:
					if c := keep(x.NewCookie.Cookie); c != nil {
						emit(replicator.Change{Kind: replicator.ChangeCookie, Cookie: c})
					}
				case x.RefreshDelete != nil:
					if refreshing && x.RefreshDelete.RefreshDone {
						endRefresh(x.RefreshDelete.Cookie)
					} else if c := keep(x.RefreshDelete.Cookie); c != nil {
						emit(replicator.Change{Kind: replicator.ChangeCookie, Cookie: c})
					}
				case x.RefreshPresent != nil:
					present = true
					if refreshing && x.RefreshPresent.RefreshDone {
						endRefresh(x.RefreshPresent.Cookie)
					} else if c := keep(x.RefreshPresent.Cookie); c != nil {
						emit(replicator.Change{Kind: replicator.ChangeCookie, Cookie: c})
					}
				case x.SyncIdSet != nil:
					kind := replicator.ChangePresent
					if x.SyncIdSet.RefreshDeletes {
						kind = replicator.ChangeDelete
					} else {
						present = true
					}
					for _, u := range x.SyncIdSet.SyncUUIDs {
						emit(replicator.Change{Kind: kind, UUID: strings.ToLower(u.String())})
					}
					if c := keep(x.SyncIdSet.Cookie); c != nil {
						emit(replicator.Change{Kind: replicator.ChangeCookie, Cookie: c})
					}
				}
			case *ldap.ControlSyncDone:
				// End of a refreshOnly search.
				if x.RefreshDeletes {
					present = false
				}
				if refreshing {
					endRefresh(x.Cookie)
				}
			}
		}
	}
	err = resp.Err()
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if supErr != nil {
		return false, supErr
	}
	if err != nil {
		return false, s.wrap("syncrepl search of "+s.BaseDN, err)
	}
	if s.Once && !refreshing {
		return true, nil
	}
	return false, errPersistEnded
}

// supplement reads every matching entry with a plain search on its own
// connection and reports each as an upsert (before the refresh ends, so
// that each counts as seen).
// When the refresh's cookie names a CSN, only entries at or after it are
// read: normally none.
func (s *Syncrepl) supplement(emit func(replicator.Change), cookie []byte) error {
	conn, err := s.Dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	filter := s.filter()
	if csn := cookieCSN(cookie); csn != "" {
		filter = "(&" + filter + "(entryCSN>=" + ldap.EscapeFilter(csn) + "))"
	}
	res, err := conn.Search(ldap.NewSearchRequest(s.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		filter, []string{"*", "entryUUID", "entryCSN"}, nil))
	if err != nil {
		return s.wrap("search "+s.BaseDN, err)
	}
	for _, e := range res.Entries {
		if id := entryUUID(e); id != "" {
			emit(upsert(id, e))
		}
	}
	return nil
}

// cookieCSN returns the lowest CSN an OpenLDAP cookie names
// ("rid=000,csn=<csn>[;<csn>…]"), or "" when it names none.
func cookieCSN(cookie []byte) string {
	for _, part := range strings.Split(string(cookie), ",") {
		if v, ok := strings.CutPrefix(part, "csn="); ok {
			low := ""
			for _, c := range strings.Split(v, ";") {
				if c != "" && (low == "" || c < low) {
					low = c
				}
			}
			return low
		}
	}
	return ""
}

func syncState(cs []ldap.Control) *ldap.ControlSyncState {
	for _, c := range cs {
		if st, ok := c.(*ldap.ControlSyncState); ok {
			return st
		}
	}
	return nil
}
