// Package source holds the replicator's directory sources: RFC 4533
// syncrepl (OpenLDAP refreshAndPersist with a resume cookie) and entryCSN
// polling for directories without it. It is the only package of ds2mb that
// imports go-ldap, and works around the defects of go-ldap v3.4.15 that
// DIRECTORIES.md §3 lists: a fresh SearchRequest per call, one dedicated
// connection per persistent search (closed to cancel, never SetTimeout),
// Next() drained into the replicator's unbounded queue, plain EOF treated
// as a lost connection, empty cookies ignored, LDAP 53 and 4096 answered
// with a full refresh, and redial with backoff and jitter.
//
// Errors and reasons never hold the bind password.
package source

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ds2mb/ds2mb/replicator"
	"github.com/ds2mb/ds2mb/schema"
)

// SyncRequestOID is the Sync Request control a directory lists in its root
// DSE's supportedControl when it offers syncrepl.
const SyncRequestOID = "1.3.6.1.4.1.4203.1.9.1.1"

// DefaultFilter selects the objects the replicator reads.
func DefaultFilter() string {
	return "(|(objectClass=" + schema.ClassSMTP + ")(objectClass=" + schema.ClassRecipientPolicy + ")(objectClass=" +
		schema.ClassSMTPConnector + ")(objectClass=" + schema.ClassEventBinding + "))"
}

// SearchBase is the replicator's search base below a configuration base DN.
func SearchBase(configDN string) string { return schema.ExchangeRDN + "," + configDN }

// Config says how to reach and read the directory.
type Config struct {
	URL      string      // ldap://host:port or ldaps://host:port
	BindDN   string      // "" = anonymous
	Password string      // never printed
	TLS      *tls.Config // for ldaps:// and StartTLS; nil = system roots
	StartTLS bool        // upgrade an ldap:// connection
	BaseDN   string      // search base (SearchBase(config DN))
	Filter   string      // "" = DefaultFilter()
	Once     bool        // one complete refresh, then Run returns nil

	MinBackoff, MaxBackoff time.Duration // redial backoff; 0 = 100 ms, 5 s
	DialTimeout            time.Duration // bounds connect, TLS, StartTLS and bind; 0 = 30 s
}

func (c *Config) filter() string {
	if c.Filter != "" {
		return c.Filter
	}
	return DefaultFilter()
}

// scrub removes the password from a message, for errors and events.
func (c *Config) scrub(s string) string {
	if c.Password != "" {
		s = strings.ReplaceAll(s, c.Password, "***")
	}
	return s
}

// redactedURL is the URL without any user information.
func (c *Config) redactedURL() string {
	u, err := url.Parse(c.URL)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	return u.String()
}

// sourceError is an error whose text has been scrubbed of credentials.
type sourceError struct {
	msg string
	err error // the original, for errors.As on *ldap.Error
}

func (e *sourceError) Error() string { return e.msg }
func (e *sourceError) Unwrap() error { return e.err }

func (c *Config) wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return &sourceError{msg: c.scrub(what + ": " + err.Error()), err: err}
}

// Dial connects (TLS for ldaps://, StartTLS when asked) and binds; see
// DialContext.
func (c *Config) Dial() (*ldap.Conn, error) { return c.DialContext(context.Background()) }

// defaultDialTimeout bounds a dial when Config.DialTimeout is 0.
const defaultDialTimeout = 30 * time.Second

// DialContext connects (TLS for ldaps://, StartTLS when asked) and binds.
// The TLS server name is the URL's host unless Config.TLS names one. The
// whole of it (TCP connect, TLS handshake, StartTLS, bind) is bounded by
// DialTimeout and ends when ctx does: a directory that accepts the
// connection and then says nothing (a hung or stopped slapd) cannot hold
// the source, or a shutdown, forever. The connection it returns has no
// deadline left (a persistent search may be silent for hours).
func (c *Config) DialContext(ctx context.Context) (conn *ldap.Conn, err error) {
	tc := c.TLS
	if tc == nil {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	u, perr := url.Parse(c.URL)
	if perr != nil {
		u = nil
	}
	if u != nil && tc.ServerName == "" {
		tc = tc.Clone()
		tc.ServerName = u.Hostname()
	}
	timeout := c.DialTimeout
	if timeout <= 0 {
		timeout = defaultDialTimeout
	}
	conn, raw, err := c.connect(ctx, u, tc, timeout)
	if err != nil {
		return nil, c.wrap("dial "+c.redactedURL(), err)
	}
	if raw != nil {
		// go-ldap gives its StartTLS handshake and its requests no deadline
		// of their own: bound them on the raw connection, and cut them when
		// ctx ends.
		raw.SetDeadline(time.Now().Add(timeout))
		stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
		defer func() {
			if !stop() && conn != nil {
				// ctx ended: the deadline may be in the past now.
				conn.Close()
				conn, err = nil, c.wrap("dial "+c.redactedURL(), ctx.Err())
			} else if conn != nil {
				raw.SetDeadline(time.Time{})
			}
		}()
	}
	if c.StartTLS {
		if err := conn.StartTLS(tc); err != nil {
			conn.Close()
			return nil, c.wrap("StartTLS with "+c.redactedURL(), err)
		}
	}
	if c.BindDN != "" {
		if err := conn.Bind(c.BindDN, c.Password); err != nil {
			conn.Close()
			return nil, c.wrap("bind as "+c.BindDN, err)
		}
	}
	return conn, nil
}

// connect opens the connection: for ldap:// and ldaps:// on a TCP
// connection of its own (returned as raw, to bound what follows), with the
// TLS handshake of ldaps:// bounded by timeout and ctx; for other schemes
// (ldapi://, cldap://) through go-ldap, with raw nil.
func (c *Config) connect(ctx context.Context, u *url.URL, tc *tls.Config, timeout time.Duration) (*ldap.Conn, net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	if u == nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") {
		conn, err := ldap.DialURL(c.URL, ldap.DialWithTLSDialer(tc, d))
		return conn, nil, err
	}
	port := u.Port()
	if port == "" {
		port = ldap.DefaultLdapPort
		if u.Scheme == "ldaps" {
			port = ldap.DefaultLdapsPort
		}
	}
	raw, err := d.DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return nil, nil, ldap.NewError(ldap.ErrorNetwork, err)
	}
	var nc net.Conn = raw
	if u.Scheme == "ldaps" {
		hs, cancel := context.WithTimeout(ctx, timeout)
		t := tls.Client(raw, tc)
		err := t.HandshakeContext(hs)
		cancel()
		if err != nil {
			raw.Close()
			return nil, nil, ldap.NewError(ldap.ErrorNetwork, fmt.Errorf("TLS handshake: %w", err))
		}
		nc = t
	}
	conn := ldap.NewConn(nc, u.Scheme == "ldaps")
	conn.Start()
	return conn, raw, nil
}

// SupportsSyncrepl reads the root DSE and reports whether it lists the
// Sync Request control.
func SupportsSyncrepl(c *Config) (bool, error) {
	return SupportsSyncreplContext(context.Background(), c)
}

// SupportsSyncreplContext is SupportsSyncrepl with a dial that ends with
// ctx (see Config.DialContext).
func SupportsSyncreplContext(ctx context.Context, c *Config) (bool, error) {
	m, err := DetectMode(ctx, c)
	return m == "syncrepl", err
}

// namingContext reads the root DSE and returns the naming context holding
// the search base (the longest that does).
func (c *Config) namingContext(conn *ldap.Conn) (string, error) {
	res, err := conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"namingContexts"}, nil))
	if err != nil {
		return "", c.wrap("read the root DSE", err)
	}
	nc := ""
	base := normLower(c.BaseDN)
	for _, e := range res.Entries {
		for _, v := range e.GetAttributeValues("namingContexts") {
			n := normLower(v)
			if (base == n || strings.HasSuffix(base, ","+n)) && len(n) > len(nc) {
				nc = v
			}
		}
	}
	if nc == "" {
		return "", errors.New("no naming context of the directory holds " + c.BaseDN)
	}
	return nc, nil
}

// upsert is the Change for an added or modified entry, with its entryCSN
// as the stamp when the search asked for it.
func upsert(id string, e *ldap.Entry) replicator.Change {
	return replicator.Change{Kind: replicator.ChangeUpsert, UUID: id, DN: e.DN, Attrs: entryAttrs(e),
		Stamp: e.GetAttributeValue("entryCSN")}
}

// entryAttrs copies an entry's attributes (raw bytes kept as strings),
// leaving out the operational ones the sources read themselves.
func entryAttrs(e *ldap.Entry) map[string][]string {
	m := make(map[string][]string, len(e.Attributes))
	for _, a := range e.Attributes {
		if strings.EqualFold(a.Name, "entryUUID") || strings.EqualFold(a.Name, "entryCSN") {
			continue
		}
		vals := make([]string, len(a.ByteValues))
		for i, b := range a.ByteValues {
			vals[i] = string(b)
		}
		if len(a.ByteValues) == 0 {
			vals = append([]string(nil), a.Values...)
		}
		m[a.Name] = vals
	}
	return m
}

// backoff is a redial delay: doubling from min to max, with ±25 % jitter.
type backoff struct {
	min, max, cur time.Duration
}

func newBackoff(c *Config) *backoff {
	b := &backoff{min: c.MinBackoff, max: c.MaxBackoff}
	if b.min <= 0 {
		b.min = 100 * time.Millisecond
	}
	if b.max <= 0 {
		b.max = 5 * time.Second
	}
	b.cur = b.min
	return b
}

func (b *backoff) reset() { b.cur = b.min }

// wait sleeps the current delay with jitter, then doubles it. It returns
// false when ctx ends first.
func (b *backoff) wait(ctx context.Context) bool {
	d := b.cur
	d += time.Duration((rand.Float64() - 0.5) * 0.5 * float64(d))
	b.cur *= 2
	if b.cur > b.max {
		b.cur = b.max
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// isCookieError reports whether the directory refused a resume cookie:
// LDAP 53 "consumer state is newer than provider", 4096
// e-syncRefreshRequired, or an error that names the cookie.
func isCookieError(err error) bool {
	var le *ldap.Error
	if !errors.As(err, &le) {
		return false
	}
	switch le.ResultCode {
	case ldap.LDAPResultUnwillingToPerform, ldap.LDAPResultSyncRefreshRequired:
		return true
	case ldap.LDAPResultProtocolError, ldap.LDAPResultOther:
		return strings.Contains(strings.ToLower(le.Error()), "cookie")
	}
	return false
}

// errPersistEnded is returned when a refreshAndPersist search ends without
// an error: the server closed it; the source resumes.
var errPersistEnded = errors.New("the directory ended the persistent search")

func describe(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
