package auth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// LDAPChecker checks a password with an LDAP simple bind as the directory
// user whose mail, userPrincipalName or uid (Attributes) equals the name
// given to AUTH. It finds the user bound as BindDN (anonymously when empty),
// then binds as the user on a fresh connection. An empty password is always
// refused (it would be an unauthenticated bind).
type LDAPChecker struct {
	URL        string        // ldap://127.0.0.1:389
	BindDN     string        // account that searches; "" = anonymous
	Password   string        // its password
	BaseDN     string        // where users are searched
	Attributes []string      // nil = mail, userPrincipalName, uid
	Timeout    time.Duration // per operation; 0 = 5 s
}

func (lc *LDAPChecker) dial(ctx context.Context) (*ldap.Conn, error) {
	to := lc.Timeout
	if to <= 0 {
		to = 5 * time.Second
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < to {
		to = time.Until(dl)
	}
	c, err := ldap.DialURL(lc.URL, ldap.DialWithDialer(&net.Dialer{Timeout: to}))
	if err != nil {
		return nil, err
	}
	c.SetTimeout(to)
	return c, nil
}

// Check implements Checker.
func (lc *LDAPChecker) Check(ctx context.Context, username, password string) error {
	if username == "" || password == "" {
		return ErrBadCredentials
	}
	attrs := lc.Attributes
	if len(attrs) == 0 {
		attrs = []string{"mail", "userPrincipalName", "uid"}
	}
	var f strings.Builder
	f.WriteString("(|")
	for _, a := range attrs {
		fmt.Fprintf(&f, "(%s=%s)", a, ldap.EscapeFilter(username))
	}
	f.WriteString(")")

	c, err := lc.dial(ctx)
	if err != nil {
		return fmt.Errorf("ldap auth: %w", err)
	}
	defer c.Close()
	if lc.BindDN != "" {
		if err := c.Bind(lc.BindDN, lc.Password); err != nil {
			return fmt.Errorf("ldap auth: bind as %s: %w", lc.BindDN, err)
		}
	}
	res, err := c.Search(ldap.NewSearchRequest(lc.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		2, 0, false, f.String(), []string{"1.1"}, nil))
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return fmt.Errorf("ldap auth: search %s under %s: %w", f.String(), lc.BaseDN, err)
	}
	if res == nil || len(res.Entries) != 1 {
		return ErrBadCredentials // unknown, or ambiguous
	}
	dn := res.Entries[0].DN

	uc, err := lc.dial(ctx)
	if err != nil {
		return fmt.Errorf("ldap auth: %w", err)
	}
	defer uc.Close()
	if err := uc.Bind(dn, password); err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			return ErrBadCredentials
		}
		var le *ldap.Error
		if errors.As(err, &le) && le.ResultCode == ldap.LDAPResultInappropriateAuthentication {
			return ErrBadCredentials
		}
		return fmt.Errorf("ldap auth: bind as %s: %w", dn, err)
	}
	return nil
}
