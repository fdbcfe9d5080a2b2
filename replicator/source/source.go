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
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

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

// Dial connects (TLS for ldaps://, StartTLS when asked) and binds.
func (c *Config) Dial() (*ldap.Conn, error) {
	tc := c.TLS
	if tc == nil {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if u, err := url.Parse(c.URL); err == nil && tc.ServerName == "" {
		tc = tc.Clone()
		tc.ServerName = u.Hostname()
	}
	conn, err := ldap.DialURL(c.URL, ldap.DialWithTLSConfig(tc))
	if err != nil {
		return nil, c.wrap("dial "+c.redactedURL(), err)
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

// SupportsSyncrepl reads the root DSE and reports whether it lists the
// Sync Request control.
func SupportsSyncrepl(c *Config) (bool, error) {
	conn, err := c.Dial()
	if err != nil {
		return false, err
	}
	defer conn.Close()
	res, err := conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"supportedControl"}, nil))
	if err != nil {
		return false, c.wrap("read the root DSE", err)
	}
	for _, e := range res.Entries {
		for _, oid := range e.GetAttributeValues("supportedControl") {
			if oid == SyncRequestOID {
				return true, nil
			}
		}
	}
	return false, nil
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
