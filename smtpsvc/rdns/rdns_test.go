package rdns_test

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/ds2mb/ds2mb/smtpsvc/rdns"
)

func TestLookupPTR(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		switch q.Question[0].Name {
		case "host.example.org.":
			if q.Question[0].Qtype == dns.TypeA {
				m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "host.example.org.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1}, A: net.ParseIP("192.0.2.7")}}
			}
		case "7.2.0.192.in-addr.arpa.":
			m.Answer = []dns.RR{&dns.PTR{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 1}, Ptr: "host.example.org."}}
		case "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.":
			m.Answer = []dns.RR{&dns.PTR{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 1}, Ptr: "v6.example.org."}}
		default:
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	defer srv.Shutdown()
	c := rdns.New(pc.LocalAddr().String())
	ctx := context.Background()
	if name, err := c.LookupPTR(ctx, netip.MustParseAddr("192.0.2.7")); err != nil || name != "host.example.org" {
		t.Errorf("v4: %q %v", name, err)
	}
	if name, err := c.LookupPTR(ctx, netip.MustParseAddr("::ffff:192.0.2.7")); err != nil || name != "host.example.org" {
		t.Errorf("mapped: %q %v", name, err)
	}
	if name, err := c.LookupPTR(ctx, netip.MustParseAddr("2001:db8::1")); err != nil || name != "v6.example.org" {
		t.Errorf("v6: %q %v", name, err)
	}
	if name, ok, err := rdns.Verify(ctx, c, netip.MustParseAddr("192.0.2.7")); err != nil || !ok || name != "host.example.org" {
		t.Errorf("Verify: %q %v %v", name, ok, err)
	}
	if name, ok, err := rdns.Verify(ctx, c, netip.MustParseAddr("2001:db8::1")); err != nil || ok || name != "v6.example.org" {
		t.Errorf("Verify of a name without addresses: %q %v %v", name, ok, err)
	}
	if name, err := c.LookupPTR(ctx, netip.MustParseAddr("192.0.2.8")); err == nil {
		t.Errorf("NXDOMAIN gave %q", name)
	}
}
