package auth

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// FileChecker checks passwords against a local password file: one
// "user:bcrypt-hash" per line; empty lines and lines starting with '#' are
// ignored. User names compare case-insensitively.
type FileChecker struct {
	users map[string][]byte
}

// dummyHash is compared against when the user is unknown, so that unknown
// and known users take the same time.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("ds2mb-no-such-user"), bcrypt.MinCost)

// LoadFile reads a password file. An error names the file and line.
func LoadFile(path string) (*FileChecker, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	fc := &FileChecker{users: map[string][]byte{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("%s:%d: want user:bcrypt-hash", path, n)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("%s:%d: user %s: not a bcrypt hash: %v", path, n, user, err)
		}
		fc.users[strings.ToLower(user)] = []byte(hash)
	}
	return fc, sc.Err()
}

// Check implements Checker.
func (fc *FileChecker) Check(_ context.Context, username, password string) error {
	hash, ok := fc.users[strings.ToLower(username)]
	if !ok {
		bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		return ErrBadCredentials
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil {
		return ErrBadCredentials
	}
	return nil
}
