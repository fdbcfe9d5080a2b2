package smtpsvc

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

// TestSessionKeepsItsConfiguration: a session started before a reload runs
// to its end under the configuration it started with (MaxRecipients 3),
// while a session started after it gets the new one (MaxRecipients 10, a
// new banner).
func TestSessionKeepsItsConfiguration(t *testing.T) {
	p1 := freePort(t)
	w := startWorker(t, tree(1, vsDef{n: 1, ports: []int{p1}, fqdn: "old.example.com", maxRcpt: 3}).Bytes(), nil)
	w.waitVersion(t, 1)
	old, err := smtp.Dial(addr(p1))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := old.Hello("client.test"); err != nil {
		t.Fatal(err)
	}

	write(t, w.path, tree(2, vsDef{n: 1, ports: []int{p1}, fqdn: "new.example.com", maxRcpt: 10}).Bytes())
	w.waitVersion(t, 2)
	if l, err := greeting(addr(p1)); err != nil || !strings.Contains(l, "new.example.com") {
		t.Fatalf("new session's banner %q, %v; want new.example.com", l, err)
	}

	// rcpts sends MAIL and n recipients; it returns how many were accepted
	// and the error of the first refused one.
	rcpts := func(c *smtp.Client, n int) (int, error) {
		if err := c.Mail("a@example.net", nil); err != nil {
			return 0, err
		}
		for i := range n {
			if err := c.Rcpt(fmt.Sprintf("u%d@example.com", i), nil); err != nil {
				return i, err
			}
		}
		return n, nil
	}
	got, err := rcpts(old, 4)
	var se *smtp.SMTPError
	if got != 3 || !errors.As(err, &se) || se.Code != 452 {
		t.Fatalf("session started under MaxRecipients 3, after the reload: %d recipients accepted, then %v; want 3, then 452", got, err)
	}
	if err := old.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := sendOne(old, 1); err != nil {
		t.Fatalf("old session, after the reload: %v", err)
	}
	old.Quit()

	c, err := smtp.Dial(addr(p1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if got, err := rcpts(c, 10); got != 10 || err != nil {
		t.Fatalf("new session under MaxRecipients 10: %d accepted, %v", got, err)
	}
	c.Quit()
}
