package auth_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/ds2mb/ds2mb/deploy/localdir"
	"github.com/ds2mb/ds2mb/smtpsvc/auth"
)

func TestFileChecker(t *testing.T) {
	h, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	p := filepath.Join(t.TempDir(), "passwd")
	os.WriteFile(p, []byte("# users\n\nAlice:"+string(h)+"\n"), 0o600)
	fc, err := auth.LoadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := fc.Check(ctx, "alice", "s3cret"); err != nil {
		t.Errorf("good password: %v", err)
	}
	if err := fc.Check(ctx, "alice", "wrong"); !errors.Is(err, auth.ErrBadCredentials) {
		t.Errorf("bad password: %v", err)
	}
	if err := fc.Check(ctx, "bob", "s3cret"); !errors.Is(err, auth.ErrBadCredentials) {
		t.Errorf("unknown user: %v", err)
	}
	os.WriteFile(p, []byte("alice:s3cret\n"), 0o600)
	if _, err := auth.LoadFile(p); err == nil || !strings.Contains(err.Error(), p+":1") {
		t.Errorf("plain-text password accepted or error without file:line: %v", err)
	}
}

func TestLimiter(t *testing.T) {
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	l := auth.NewLimiter(3, time.Minute)
	l.Now = func() time.Time { return now }
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	for i := 0; i < 3; i++ {
		if !l.Allow(a) {
			t.Fatalf("attempt %d refused", i)
		}
		l.Fail(a)
	}
	if l.Allow(a) {
		t.Error("4th attempt after 3 failures allowed")
	}
	if !l.Allow(b) {
		t.Error("another client is limited too")
	}
	now = now.Add(time.Minute)
	if !l.Allow(a) {
		t.Error("no attempt allowed after the refill interval")
	}
	l.Fail(a)
	if l.Allow(a) {
		t.Error("a second attempt allowed after one refill")
	}
	var nilL *auth.Limiter
	if !nilL.Allow(a) {
		t.Error("nil limiter refuses")
	}
}

// TestLDAPChecker binds against a real slapd (localdir) as users found by
// mail, uid or userPrincipalName.
func TestLDAPChecker(t *testing.T) {
	srv := localdir.StartT(t, localdir.Options{})
	err := srv.AddLDIF(`dn: cn=Users,` + srv.Suffix + `
objectClass: container
cn: Users

dn: cn=Alice Liddell,cn=Users,` + srv.Suffix + `
objectClass: newPilotPerson
cn: Alice Liddell
sn: Liddell
uid: alice
mail: alice@example.com
userPassword: wonderland

dn: cn=Twin One,cn=Users,` + srv.Suffix + `
objectClass: newPilotPerson
cn: Twin One
sn: One
mail: twin@example.com
userPassword: pw

dn: cn=Twin Two,cn=Users,` + srv.Suffix + `
objectClass: newPilotPerson
cn: Twin Two
sn: Two
mail: twin@example.com
userPassword: pw
`)
	if err != nil {
		t.Fatal(err)
	}
	lc := &auth.LDAPChecker{URL: srv.URL, BindDN: srv.BindDN, Password: srv.Password, BaseDN: srv.Suffix,
		Attributes: []string{"mail", "uid"}}
	ctx := context.Background()
	cases := []struct {
		user, pass string
		ok         bool
	}{
		{"alice@example.com", "wonderland", true},
		{"alice", "wonderland", true},
		{"ALICE@EXAMPLE.COM", "wonderland", true},
		{"alice@example.com", "wrong", false},
		{"alice@example.com", "", false},
		{"nobody@example.com", "wonderland", false},
		{"twin@example.com", "pw", false}, // ambiguous
		{"*", "wonderland", false},        // filter injection
		{"alice)(uid=*", "wonderland", false},
	}
	for _, c := range cases {
		err := lc.Check(ctx, c.user, c.pass)
		if c.ok && err != nil {
			t.Errorf("%s/%s: %v", c.user, c.pass, err)
		}
		if !c.ok && !errors.Is(err, auth.ErrBadCredentials) {
			t.Errorf("%s/%s: %v, want ErrBadCredentials", c.user, c.pass, err)
		}
	}
	// The default attributes include userPrincipalName, which this slapd
	// may not know: the search must still find the user by mail.
	def := &auth.LDAPChecker{URL: srv.URL, BaseDN: srv.Suffix}
	if err := def.Check(ctx, "alice@example.com", "wonderland"); err != nil {
		t.Errorf("default attributes, anonymous search: %v", err)
	}
	down := &auth.LDAPChecker{URL: "ldap://127.0.0.1:1", BaseDN: srv.Suffix, Timeout: time.Second}
	if err := down.Check(ctx, "alice", "wonderland"); err == nil || errors.Is(err, auth.ErrBadCredentials) {
		t.Errorf("unreachable directory: %v, want a temporary error", err)
	}
}
