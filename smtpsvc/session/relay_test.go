package session_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/ds2mb/ds2mb/metabase"
	"github.com/ds2mb/ds2mb/schema"
	"github.com/ds2mb/ds2mb/smtpsvc/auth"
	"github.com/ds2mb/ds2mb/smtpsvc/session"
)

// mapChecker is a test Checker with fixed users (the real checkers have
// their own tests in package auth).
type mapChecker map[string]string

func (m mapChecker) Check(_ context.Context, u, p string) error {
	if pw, ok := m[u]; ok && pw == p {
		return nil
	}
	return auth.ErrBadCredentials
}

func plain(u, p string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + u + "\x00" + p))
}

// TestRelay drives the relay rules through a real listener: each case is a
// virtual server setting, a client state and recipients with the reply
// expected.
func TestRelay(t *testing.T) {
	granted := relayBlob(t, "127.0.0.1")
	otherHost := relayBlob(t, "192.0.2.9")
	type rc struct{ rcpt, want string }
	cases := []struct {
		name  string
		vs    props
		login bool // AUTH PLAIN as alice first (in clear on loopback, AllowInsecureAuth)
		rcpts []rc
	}{
		{"anonymous", nil, false, []rc{
			{"user@example.com", "250 2.0.0"},                           // local
			{"USER@EXAMPLE.COM", "250 2.0.0"},                           // local, any case
			{"user@partner.example.org", "250 2.0.0"},                   // relay domain
			{"user@sub.contoso.com", "250 2.0.0"},                       // wildcard relay domain
			{"user@a.b.contoso.com", "250 2.0.0"},                       // deeper subdomain
			{"user@contoso.com", "550 5.7.1 Relaying prohibited"},       // *.contoso.com is not contoso.com
			{"user@drop.example.net", "250 2.0.0"},                      // drop domain
			{"user@smarthost-only.example", "250 2.0.0"},                // connector address space with a smart host
			{"user@elsewhere.example", "550 5.7.1 Relaying prohibited"}, // anything else
			{"user@example.com.evil.example", "550 5.7.1"},              // suffix trick
			{"user@[192.0.2.1]", "550 5.7.1"},                           // address literal
			{"user%elsewhere.example@example.com", "550 5.7.1"},         // percent hack
			{"elsewhere.example!user@example.com", "550 5.7.1"},         // bang path
			{`"user@elsewhere.example"@example.com`, "550 5.7.1"},       // quoted local part with @
			{"@example.com:user@elsewhere.example", "550 5.7.1"},        // source route to a foreign domain
			{"@elsewhere.example:user@example.com", "550 5.7.1"},        // source route via a foreign host
		}},
		{"granted IP", props{"RelayIpList": granted}, false, []rc{
			{"user@elsewhere.example", "250 2.0.0"},
			{"user@example.com", "250 2.0.0"},
			{"user%other.example@example.com", "550 5.7.1"}, // tricks refused even for a granted client
			{"other.example!user@elsewhere.example", "550 5.7.1"},
			{`"a@b.example"@elsewhere.example`, "550 5.7.1"},
			{"@a.example,@b.example:user@elsewhere.example", "550 5.7.1"},
		}},
		{"other IP granted", props{"RelayIpList": otherHost}, false, []rc{
			{"user@elsewhere.example", "550 5.7.1"},
		}},
		{"undecodable RelayIpList", props{"RelayIpList": strings.Repeat("00", 84)}, false, []rc{
			{"user@elsewhere.example", "550 5.7.1"},
			{"user@example.com", "250 2.0.0"},
		}},
		{"authenticated, RelayForAuth", props{"RelayForAuth": "1", "AuthFlags": "AuthBasic"}, true, []rc{
			{"user@elsewhere.example", "250 2.0.0"},
			{"user%other.example@elsewhere.example", "550 5.7.1"},
		}},
		{"authenticated, RelayForAuth -1", props{"RelayForAuth": "4294967295", "AuthFlags": "AuthBasic"}, true, []rc{
			{"user@elsewhere.example", "250 2.0.0"},
		}},
		{"authenticated, no RelayForAuth", props{"RelayForAuth": "0", "AuthFlags": "AuthBasic"}, true, []rc{
			{"user@elsewhere.example", "550 5.7.1"},
			{"user@example.com", "250 2.0.0"},
		}},
		{"RelayForAuth, not authenticated", props{"RelayForAuth": "1", "AuthFlags": "AuthAnonymous | AuthBasic"}, false, []rc{
			{"user@elsewhere.example", "550 5.7.1"},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := &session.Env{Auth: mapChecker{"alice": "wonderland"}, AllowInsecureAuth: true}
			f := startProps(t, nil, c.vs, env)
			r := dialRaw(t, f.addr)
			r.expect("EHLO client.test", "250")
			if c.login {
				r.expect("AUTH PLAIN "+plain("alice", "wonderland"), "235 2.0.0")
			}
			r.expect("MAIL FROM:<sender@example.org>", "250")
			for _, x := range c.rcpts {
				r.expect("RCPT TO:<"+x.rcpt+">", x.want)
			}
		})
	}
}

// TestRelayStats: a transaction whose only recipient is refused counts as
// one refused transaction with a 5xx final reply.
func TestRelayStats(t *testing.T) {
	f := startProps(t, nil, nil, nil)
	r := dialRaw(t, f.addr)
	r.expect("EHLO client.test", "250")
	r.expect("MAIL FROM:<sender@example.org>", "250")
	r.expect("RCPT TO:<user@elsewhere.example>", "550 5.7.1")
	r.expect("RSET", "250")
	if got := f.stats.MessagesRefused.Load(); got != 1 {
		t.Errorf("MessagesRefused = %d", got)
	}
	if got := f.stats.Replies[5].Load(); got != 1 {
		t.Errorf("Replies[5] = %d", got)
	}
}

// TestRelayDomainOverride: a domain node's own RelayForAuth and RelayIpList
// (REFERENCE.md §1.5) decide relay to that domain, over the virtual
// server's: remote-auth.example (RelayForAuth 1) takes an authenticated
// client's mail though the virtual server's RelayForAuth is 0;
// remote-ip.example (RelayIpList granting 127.0.0.1) takes anyone's from
// 127.0.0.1 though the virtual server grants nobody; closed.example
// (RelayIpList granting 192.0.2.1, RelayForAuth 0) refuses 127.0.0.1 though
// the virtual server grants it. Other domains follow the virtual server.
func TestRelayDomainOverride(t *testing.T) {
	build := func(t *testing.T, vs props, domains map[string]props) *fixture {
		dir := t.TempDir()
		tr := baseTree(dir, nil, vs)
		for name, ps := range domains {
			d := tr.Ensure(schema.DomainLocation(1, name), metabase.ClassDomain)
			d.Set("RouteAction", "0")
			for k, v := range ps {
				d.Set(k, v)
			}
		}
		return start(t, tr, &session.Env{Auth: mapChecker{"alice": "wonderland"}, AllowInsecureAuth: true})
	}
	type rc struct{ rcpt, want string }
	cases := []struct {
		name    string
		vs      props
		domains map[string]props
		login   bool
		rcpts   []rc
	}{
		{"RelayForAuth on the domain, authenticated", props{"RelayForAuth": "0", "AuthFlags": "AuthBasic"},
			map[string]props{"remote-auth.example": {"RelayForAuth": "1"}}, true, []rc{
				{"user@remote-auth.example", "250 2.0.0"},
				{"USER@Remote-Auth.Example", "250 2.0.0"},
				{"user@elsewhere.example", "550 5.7.1 Relaying prohibited"}, // the server's RelayForAuth 0
				{"user%elsewhere.example@remote-auth.example", "550 5.7.1"}, // tricks still refused
				{"user@sub.remote-auth.example", "550 5.7.1"},               // not a wildcard node
			}},
		{"RelayForAuth on the domain, anonymous", props{"RelayForAuth": "0", "AuthFlags": "AuthAnonymous | AuthBasic"},
			map[string]props{"remote-auth.example": {"RelayForAuth": "1"}}, false, []rc{
				{"user@remote-auth.example", "550 5.7.1 Relaying prohibited"},
				{"user@example.com", "250 2.0.0"},
			}},
		{"RelayIpList on the domain", nil,
			map[string]props{"remote-ip.example": {"RelayIpList": relayBlob(t, "127.0.0.1")}}, false, []rc{
				{"user@remote-ip.example", "250 2.0.0"},
				{"user@elsewhere.example", "550 5.7.1 Relaying prohibited"}, // the server grants nobody
			}},
		{"RelayIpList on the domain grants another host", props{"RelayIpList": relayBlob(t, "127.0.0.1")},
			map[string]props{"closed.example": {"RelayIpList": relayBlob(t, "192.0.2.1"), "RelayForAuth": "0"}}, false, []rc{
				{"user@closed.example", "550 5.7.1 Relaying prohibited"},
				{"user@elsewhere.example", "250 2.0.0"}, // the server grants 127.0.0.1
			}},
		{"no override on the domain node", props{"RelayIpList": relayBlob(t, "127.0.0.1")},
			map[string]props{"remote.example": nil}, false, []rc{
				{"user@remote.example", "250 2.0.0"},
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := build(t, c.vs, c.domains)
			r := dialRaw(t, f.addr)
			r.expect("EHLO client.test", "250")
			if c.login {
				r.expect("AUTH PLAIN "+plain("alice", "wonderland"), "235 2.0.0")
			}
			r.expect("MAIL FROM:<sender@example.org>", "250")
			for _, x := range c.rcpts {
				r.expect("RCPT TO:<"+x.rcpt+">", x.want)
			}
		})
	}
}
