package smtpsvc

import (
	"strings"
	"testing"

	"github.com/ds2mb/ds2mb/smtpsvc/status"
	"github.com/emersion/go-smtp"
)

// TestMaxConnectionsFromMetabase: MaxConnections 2 on the virtual server
// lets two sessions in and answers the third "421 4.3.2"; status counts it.
func TestMaxConnectionsFromMetabase(t *testing.T) {
	p1 := freePort(t)
	w := startWorker(t, tree(1, vsDef{n: 1, ports: []int{p1}, fqdn: "one.example.com", maxConns: 2}).Bytes(), nil)
	w.waitVersion(t, 1)
	for range 2 {
		c, err := smtp.Dial(addr(p1))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Hello("client.test"); err != nil {
			t.Fatal(err)
		}
	}
	if l, err := greeting(addr(p1)); err != nil || !strings.HasPrefix(l, "421 4.3.2 ") {
		t.Fatalf("third connection: %q, %v; want 421 4.3.2", l, err)
	}
	st := w.waitStatus(t, "the refused connection counted", func(st status.Status) bool {
		return len(st.Servers) == 1 && st.Servers[0].TooMany == 1
	})
	if s := st.Servers[0]; s.MaxConnections != 2 || s.SessionsOpen != 2 {
		t.Fatalf("status: %+v", s)
	}
}
