package smtpsvc

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/ds2mb/ds2mb/schema"
	"github.com/ds2mb/ds2mb/smtpsvc/status"
)

// TestIPSecurityReload: setting IPSecurity on a running virtual server
// swaps it (the fingerprint changed): a client its list does not grant is
// refused with 554 5.7.1 and counted in /status and /metrics; a blob in
// another layout is then ignored, and said so in /status.
func TestIPSecurityReload(t *testing.T) {
	p := freePort(t)
	w := startWorker(t, tree(1, vsDef{n: 1, ports: []int{p}}).Bytes(), nil)
	w.waitVersion(t, 1)
	if g, err := greeting(addr(p)); err != nil || !strings.HasPrefix(g, "220 ") {
		t.Fatalf("before IPSecurity: %q %v", g, err)
	}

	blob, err := schema.EncodeIPSecList(schema.IPSecList{Grant: []netip.Addr{netip.MustParseAddr("192.0.2.1")}})
	if err != nil {
		t.Fatal(err)
	}
	tr := tree(2, vsDef{n: 1, ports: []int{p}})
	tr.Node(schema.ServerLocation(1)).SetValue("IPSecurity", schema.BinaryValue(blob))
	write(t, w.path, tr.Bytes())
	w.waitVersion(t, 2)
	if g, err := greeting(addr(p)); err != nil || g != "554 5.7.1 Connection refused" {
		t.Fatalf("IPSecurity granting 192.0.2.1 only: %q %v", g, err)
	}
	w.waitStatus(t, "one connection denied", func(st status.Status) bool {
		return len(st.Servers) == 1 && st.Servers[0].Denied == 1
	})
	if code, body := httpGet(t, "http://"+w.StatusAddr()+"/metrics"); code != 200 || !strings.Contains(body, `smtpsvc_connections_denied_total{vs="1"} 1`) {
		t.Errorf("/metrics: %d, no denied connection counted:\n%s", code, body)
	}

	tr = tree(3, vsDef{n: 1, ports: []int{p}})
	tr.Node(schema.ServerLocation(1)).Set("IPSecurity", strings.Repeat("00", 84))
	write(t, w.path, tr.Bytes())
	st := w.waitVersion(t, 3)
	if g, err := greeting(addr(p)); err != nil || !strings.HasPrefix(g, "220 ") {
		t.Fatalf("undecodable IPSecurity: %q %v", g, err)
	}
	if len(st.Servers) != 1 || len(st.Servers[0].Notes) != 1 || !strings.Contains(st.Servers[0].Notes[0], "IPSecurity not in the single-host grant layout, ignored") {
		t.Errorf("status notes: %+v", st.Servers)
	}
}
