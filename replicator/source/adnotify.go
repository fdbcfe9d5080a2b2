package source

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ds2mb/ds2mb/replicator"
)

// NotificationOID is the Active Directory change-notification control a
// directory lists in its root DSE's supportedControl.
const NotificationOID = "1.2.840.113556.1.4.528"

// ADNotify is the source for Active Directory (and Samba AD), following
// DIRECTORIES.md §4. It registers change notifications, each on a
// connection of its own: a subtree one on the search base, and a one-level
// one on CN=Deleted Objects of the naming context with Show Deleted (the
// only way deletes are notified). A notification carries no history, so it
// is only a trigger: the changes themselves are read with DirSync from the
// naming-context root, resumed from the DirSync cookie, which reports
// tombstones for deletes. When the directory refuses DirSync (the account
// lacks Replicating Directory Changes) it reads objects by uSNChanged
// above the highest seen instead, and finds deletes by listing the objects
// present. At registration AD sends nothing, so the source reads the
// current state itself after registering, and again after every gap.
//
// The cookie is "dirsync:<base64>" or "usn:<highest uSNChanged>". Object
// keys are objectGUIDs in their usual string form; DN-valued attributes in
// AD's extended "<GUID=…>;<SID=…>;CN=…" form are reduced to the DN.
type ADNotify struct {
	Config
	// Every is the interval of a catch-up read even without a
	// notification, a safety net for a registration the directory dropped
	// silently; 0 = 60 s.
	Every time.Duration
	// NoDirSync reads by uSNChanged even where DirSync is allowed.
	NoDirSync bool
}

// NewADNotify returns an Active Directory source.
func NewADNotify(c Config) *ADNotify { return &ADNotify{Config: c} }

// Kind names the cookie kind.
func (a *ADNotify) Kind() string { return "adnotify" }

const (
	dirsyncPrefix = "dirsync:"
	usnPrefix     = "usn:"
)

// adState is where the source is: the naming context, the DirSync cookie
// or the highest uSNChanged, and whether DirSync works.
type adState struct {
	nc      string
	dirsync []byte
	usn     int64
	noDS    bool
	gap     bool // a reconnect: the USN path reconciles deletes
}

// DetectMode reads the root DSE once and names the source that suits the
// directory: "syncrepl" when it lists the Sync Request control, else
// "adnotify" when it lists AD's change notification, else "poll".
func DetectMode(ctx context.Context, c *Config) (string, error) {
	conn, err := c.DialContext(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	res, err := conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"supportedControl"}, nil))
	if err != nil {
		return "", c.wrap("read the root DSE", err)
	}
	oids := map[string]bool{}
	for _, e := range res.Entries {
		for _, oid := range e.GetAttributeValues("supportedControl") {
			oids[oid] = true
		}
	}
	switch {
	case oids[SyncRequestOID]:
		return "syncrepl", nil
	case oids[NotificationOID]:
		return "adnotify", nil
	}
	return "poll", nil
}

// Run follows the directory until ctx ends or, with Once, after the first
// complete read.
func (a *ADNotify) Run(ctx context.Context, cookie []byte, emit func(replicator.Change)) error {
	st := &adState{noDS: a.NoDirSync}
	if c, ok := strings.CutPrefix(string(cookie), dirsyncPrefix); ok {
		if b, err := base64.StdEncoding.DecodeString(c); err == nil {
			st.dirsync = b
		}
	} else if c, ok := strings.CutPrefix(string(cookie), usnPrefix); ok {
		st.usn, _ = strconv.ParseInt(c, 10, 64)
	}
	every := a.Every
	if every <= 0 {
		every = 60 * time.Second
	}
	b := newBackoff(&a.Config)
	lost := false
	for {
		done, err := a.session(ctx, st, emit, every, &lost, b)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if done {
			return nil
		}
		if a.Once {
			return err
		}
		if !lost {
			lost = true
			emit(replicator.Change{Kind: replicator.ChangeConnLost, Reason: describe(err)})
		}
		st.gap = true
		if !b.wait(ctx) {
			return ctx.Err()
		}
	}
}

// session is one connection's life: register, read, then read again on
// every notification. It returns done for a completed Once read, else the
// error that ended it.
func (a *ADNotify) session(ctx context.Context, st *adState, emit func(replicator.Change), every time.Duration, lost *bool, b *backoff) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conn, err := a.DialContext(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	if st.nc == "" {
		if st.nc, err = a.namingContext(conn); err != nil {
			return false, err
		}
	}
	trigger := make(chan struct{}, 1)
	ended := make(chan error, 2)
	if !a.Once {
		for _, r := range []struct {
			base        string
			scope       int
			showDeleted bool
		}{{a.BaseDN, ldap.ScopeWholeSubtree, false}, {"CN=Deleted Objects," + st.nc, ldap.ScopeSingleLevel, true}} {
			nc, err := a.register(ctx, r.base, r.scope, r.showDeleted, trigger, ended)
			if err != nil {
				return false, err
			}
			defer nc.Close()
		}
	}
	if *lost {
		*lost = false
		emit(replicator.Change{Kind: replicator.ChangeConnRestored})
	}
	if err := a.catchUp(conn, st, emit); err != nil {
		return false, err
	}
	b.reset()
	if a.Once {
		return true, nil
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case err := <-ended:
			return false, err
		case <-trigger:
		case <-tick.C:
			st.gap = st.noDS // the uSNChanged path lists what is present
		}
		if err := a.catchUp(conn, st, emit); err != nil {
			return false, err
		}
	}
}

// register starts a change notification on a connection of its own (go-ldap
// sends no Abandon; closing the connection is the only cancel). Every entry
// it reports pokes trigger; its end is sent to ended.
func (a *ADNotify) register(ctx context.Context, base string, scope int, showDeleted bool, trigger chan struct{}, ended chan error) (*ldap.Conn, error) {
	conn, err := a.DialContext(ctx)
	if err != nil {
		return nil, err
	}
	controls := []ldap.Control{ldap.NewControlMicrosoftNotification()}
	if showDeleted {
		controls = append(controls, ldap.NewControlMicrosoftShowDeleted())
	}
	resp := conn.SearchAsync(ctx, ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"objectGUID"}, controls), 64)
	go func() {
		for resp.Next() {
			select {
			case trigger <- struct{}{}:
			default:
			}
		}
		err := resp.Err()
		if err == nil {
			err = errPersistEnded
		}
		if showDeleted && isAccessError(err) {
			// An account that may not see Deleted Objects: deletes are
			// found by the listings of the uSNChanged path instead.
			return
		}
		select {
		case ended <- a.wrap("change notification on "+base, err):
		default:
		}
	}()
	return conn, nil
}

// catchUp reads what changed since the last read, by DirSync unless the
// directory refuses it.
func (a *ADNotify) catchUp(conn *ldap.Conn, st *adState, emit func(replicator.Change)) error {
	if !st.noDS {
		err := a.dirSync(conn, st, emit)
		if err == nil || !isAccessError(err) {
			return err
		}
		st.noDS = true // the account may not replicate: read by uSNChanged
		st.usn, st.gap = 0, true
	}
	return a.usnRead(conn, st, emit)
}

func isAccessError(err error) bool {
	var le *ldap.Error
	return errors.As(err, &le) && (le.ResultCode == ldap.LDAPResultInsufficientAccessRights || le.ResultCode == ldap.LDAPResultUnavailableCriticalExtension)
}

// dirSync runs DirSync rounds until the directory has no more data.
func (a *ADNotify) dirSync(conn *ldap.Conn, st *adState, emit func(replicator.Change)) error {
	full := len(st.dirsync) == 0
	var changed []string // objectGUIDs of live objects below the base, changed
	seen := map[string]bool{}
	cookie := st.dirsync
	for round := 0; ; round++ {
		req := ldap.NewSearchRequest(st.nc, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, a.filter(), nil, nil)
		res, err := conn.DirSync(req, 0, 0, cookie)
		if err != nil {
			if !full && !isAccessError(err) && isDirSyncCookieError(err) {
				emit(replicator.Change{Kind: replicator.ChangeCookieReset, Reason: describe(err)})
				st.dirsync = nil
				return a.dirSync(conn, st, emit)
			}
			return a.wrap("DirSync "+st.nc, err)
		}
		if full && round == 0 {
			// Only now: a refused DirSync (the uSNChanged path follows)
			// must not leave a refresh open.
			emit(replicator.Change{Kind: replicator.ChangeRefreshBegin, Full: true})
		}
		for _, e := range res.Entries {
			id := guidOf(e)
			if id == "" {
				continue
			}
			switch {
			case isTombstone(e):
				if !full {
					emit(replicator.Change{Kind: replicator.ChangeDelete, UUID: id})
				}
			case !below(e.DN, a.BaseDN):
				if !full {
					emit(replicator.Change{Kind: replicator.ChangeDelete, UUID: id}) // moved away
				}
			case full:
				if !seen[id] {
					seen[id] = true
					emit(adUpsert(id, e))
				}
			default:
				if !seen[id] {
					seen[id] = true
					changed = append(changed, id)
				}
			}
		}
		more := false
		if c, ok := ldap.FindControl(res.Controls, ldap.ControlTypeDirSync).(*ldap.ControlDirSync); ok {
			if len(c.Cookie) > 0 {
				cookie = c.Cookie
			}
			more = c.Flags != 0
		}
		if !more {
			break
		}
	}
	if len(changed) > 0 {
		if err := a.reread(conn, changed, emit); err != nil {
			return err
		}
	}
	next := []byte(dirsyncPrefix + base64.StdEncoding.EncodeToString(cookie))
	st.dirsync = cookie
	if full {
		emit(replicator.Change{Kind: replicator.ChangeRefreshEnd, Reconcile: true, Cookie: next})
	} else if len(cookie) > 0 {
		emit(replicator.Change{Kind: replicator.ChangeCookie, Cookie: next})
	}
	return nil
}

// isDirSyncCookieError reports a refused DirSync cookie (a cookie of
// another domain or an older DC).
func isDirSyncCookieError(err error) bool {
	var le *ldap.Error
	if !errors.As(err, &le) {
		return false
	}
	return le.ResultCode == ldap.LDAPResultUnwillingToPerform || le.ResultCode == ldap.LDAPResultProtocolError ||
		strings.Contains(strings.ToLower(le.Error()), "cookie")
}

// reread reads changed objects whole (DirSync gives only the changed
// attributes): one by one for a few, else the whole base at once. An
// object no longer there, or no longer matching, is deleted.
func (a *ADNotify) reread(conn *ldap.Conn, ids []string, emit func(replicator.Change)) error {
	attrs := []string{"*", "objectGUID", "uSNChanged"}
	found := map[string]*ldap.Entry{}
	if len(ids) > 16 {
		res, err := conn.Search(ldap.NewSearchRequest(a.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, a.filter(), attrs, nil))
		if err != nil {
			return a.wrap("search "+a.BaseDN, err)
		}
		for _, e := range res.Entries {
			found[guidOf(e)] = e
		}
	} else {
		for _, id := range ids {
			res, err := conn.Search(ldap.NewSearchRequest("<GUID="+id+">", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, a.filter(), attrs, nil))
			if err != nil {
				var le *ldap.Error
				if errors.As(err, &le) && le.ResultCode == ldap.LDAPResultNoSuchObject {
					continue
				}
				return a.wrap("read <GUID="+id+">", err)
			}
			for _, e := range res.Entries {
				found[id] = e
			}
		}
	}
	for _, id := range ids {
		if e, ok := found[id]; ok && below(e.DN, a.BaseDN) {
			emit(adUpsert(id, e))
		} else {
			emit(replicator.Change{Kind: replicator.ChangeDelete, UUID: id})
		}
	}
	return nil
}

// usnRead reads objects whose uSNChanged is above the highest seen, the
// tombstones above it when the account may see them, and after a gap the
// list of objects present, so that no delete is missed.
func (a *ADNotify) usnRead(conn *ldap.Conn, st *adState, emit func(replicator.Change)) error {
	high, err := a.highestUSN(conn)
	if err != nil {
		return err
	}
	if high == st.usn && !st.gap {
		return nil
	}
	attrs := []string{"*", "objectGUID", "uSNChanged"}
	filter := a.filter()
	full := st.usn == 0
	if !full {
		filter = "(&" + filter + "(uSNChanged>=" + strconv.FormatInt(st.usn+1, 10) + "))"
	}
	res, err := conn.Search(ldap.NewSearchRequest(a.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil))
	if err != nil {
		return a.wrap("search "+a.BaseDN, err)
	}
	if full {
		emit(replicator.Change{Kind: replicator.ChangeRefreshBegin, Full: true})
	}
	for _, e := range res.Entries {
		if id := guidOf(e); id != "" {
			emit(adUpsert(id, e))
		}
	}
	next := []byte(usnPrefix + strconv.FormatInt(high, 10))
	switch {
	case full:
		emit(replicator.Change{Kind: replicator.ChangeRefreshEnd, Reconcile: true, Cookie: next})
	case st.gap:
		list, err := conn.Search(ldap.NewSearchRequest(a.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, a.filter(), []string{"objectGUID"}, nil))
		if err != nil {
			return a.wrap("list "+a.BaseDN, err)
		}
		emit(replicator.Change{Kind: replicator.ChangeRefreshBegin})
		for _, e := range list.Entries {
			if id := guidOf(e); id != "" {
				emit(replicator.Change{Kind: replicator.ChangePresent, UUID: id})
			}
		}
		emit(replicator.Change{Kind: replicator.ChangeRefreshEnd, Reconcile: true, Cookie: next})
	default:
		del, err := conn.Search(ldap.NewSearchRequest("CN=Deleted Objects,"+st.nc, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
			"(&(isDeleted=TRUE)(uSNChanged>="+strconv.FormatInt(st.usn+1, 10)+"))", []string{"objectGUID"},
			[]ldap.Control{ldap.NewControlMicrosoftShowDeleted()}))
		if err == nil {
			for _, e := range del.Entries {
				if id := guidOf(e); id != "" {
					emit(replicator.Change{Kind: replicator.ChangeDelete, UUID: id})
				}
			}
		} else if !isAccessError(err) {
			var le *ldap.Error
			if !errors.As(err, &le) || le.ResultCode != ldap.LDAPResultNoSuchObject {
				return a.wrap("search CN=Deleted Objects,"+st.nc, err)
			}
		}
		emit(replicator.Change{Kind: replicator.ChangeCookie, Cookie: next})
	}
	st.usn, st.gap = high, false
	return nil
}

// highestUSN reads the root DSE's highestCommittedUSN.
func (a *ADNotify) highestUSN(conn *ldap.Conn) (int64, error) {
	res, err := conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"highestCommittedUSN"}, nil))
	if err != nil {
		return 0, a.wrap("read the root DSE", err)
	}
	for _, e := range res.Entries {
		if n, err := strconv.ParseInt(e.GetAttributeValue("highestCommittedUSN"), 10, 64); err == nil {
			return n, nil
		}
	}
	return 0, errors.New("the root DSE has no highestCommittedUSN: not an Active Directory")
}

// adUpsert is the Change for a live AD object: DN-valued attributes
// reduced from the extended form, AD's bookkeeping left out, uSNChanged
// as the stamp (zero-padded, so that stamps order as strings).
func adUpsert(id string, e *ldap.Entry) replicator.Change {
	attrs := entryAttrs(e)
	for name, vals := range attrs {
		switch strings.ToLower(name) {
		case "objectguid", "usnchanged", "usncreated", "whenchanged", "whencreated", "dscorepropagationdata",
			"instancetype", "distinguishedname", "name", "objectcategory":
			delete(attrs, name)
			continue
		}
		for i, v := range vals {
			vals[i] = plainDN(v)
		}
	}
	stamp := ""
	if n, err := strconv.ParseInt(e.GetAttributeValue("uSNChanged"), 10, 64); err == nil {
		stamp = fmt.Sprintf("%012d", n)
	}
	return replicator.Change{Kind: replicator.ChangeUpsert, UUID: id, DN: plainDN(e.DN), Attrs: attrs, Stamp: stamp}
}

// plainDN reduces AD's extended DN form "<GUID=…>;<SID=…>;CN=…" to the DN;
// any other value is returned as it is.
func plainDN(v string) string {
	for strings.HasPrefix(v, "<") {
		end := strings.Index(v, ">;")
		if end < 0 || !strings.Contains(v[:end], "=") {
			return v
		}
		v = v[end+2:]
	}
	return v
}

// guidOf is an entry's objectGUID in the usual string form (AD stores the
// first three fields little-endian).
func guidOf(e *ldap.Entry) string {
	b := e.GetRawAttributeValue("objectGUID")
	if len(b) != 16 {
		return ""
	}
	u := []byte{b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6]}
	u = append(u, b[8:]...)
	s := hex.EncodeToString(u)
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}

// isTombstone reports a deleted object: isDeleted, or a DN with AD's
// "\0ADEL:" mark.
func isTombstone(e *ldap.Entry) bool {
	return strings.EqualFold(e.GetAttributeValue("isDeleted"), "TRUE") || strings.Contains(strings.ToUpper(e.DN), `\0ADEL:`)
}

// below reports whether dn is base or below it.
func below(dn, base string) bool {
	d, b := normLower(plainDN(dn)), normLower(base)
	return d == b || strings.HasSuffix(d, ","+b)
}
