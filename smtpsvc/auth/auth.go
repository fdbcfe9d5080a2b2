// Package auth checks SMTP AUTH credentials for the SMTP worker: against a
// local bcrypt password file, or by an LDAP simple bind of the directory user
// found by mail, userPrincipalName or uid, and it rate-limits failed attempts
// per client address.
//
// The LDAP checker is the worker's one documented exception to the rule that
// only the directory-source code imports go-ldap: credentials can only be
// checked by the directory itself.
package auth

import (
	"context"
	"errors"
)

// ErrBadCredentials is returned by a Checker when the user is unknown or the
// password is wrong. Any other error is a temporary failure of the checker.
var ErrBadCredentials = errors.New("authentication credentials invalid")

// Checker verifies a user name and password. It returns nil on success,
// ErrBadCredentials (possibly wrapped) when they are wrong, any other error
// when it could not tell.
type Checker interface {
	Check(ctx context.Context, username, password string) error
}
