package metabase

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ds2mb/ds2mb/schema"
)

// bigTree builds a metabase with a service node, servers virtual servers
// (each with its own loopback binding) and domains domain nodes spread over
// them, alternating local, relay, smart-host and drop domains.
func bigTree(servers, domains int) *Tree {
	t := New()
	svc := t.Ensure(schema.ServiceLocation, ClassService)
	svc.Set("ConnectionTimeout", "600")
	svc.Set("MaxMessageSize", "10485760")
	svc.Set("SmtpRemoteProgressiveRetry", "15,30,60,240")
	svc.Set("AuthFlags", "7")
	for s := 1; s <= servers; s++ {
		n := t.Ensure(schema.ServerLocation(s), ClassServer)
		n.Set("ServerBindings", fmt.Sprintf("127.0.0.1:%d:", 10000+s))
		n.Set("ServerComment", fmt.Sprintf("Virtual server %d", s))
		n.Set("MaxRecipients", "64000")
		n.Set("FullyQualifiedDomainName", fmt.Sprintf("vs%d.example.com", s))
		n.Set("ServerAutoStart", "TRUE")
	}
	for d := 0; d < domains; d++ {
		s := d%servers + 1
		n := t.Ensure(schema.DomainLocation(s, fmt.Sprintf("d%d.example%d.com", d, s)), ClassDomain)
		switch d % 4 {
		case 0:
			n.Set("RouteAction", "16")
		case 1:
			n.Set("RouteAction", "4096")
		case 2:
			n.Set("RouteAction", "2")
			n.Set("RouteActionString", "[127.0.0.1]")
		case 3:
			n.Set("RouteAction", "1")
			n.Set("RouteActionString", `C:\Drop`)
		}
	}
	return t
}

var benchData []byte

func benchBytes(b *testing.B) []byte {
	if benchData == nil {
		benchData = bigTree(1000, 10000).Bytes()
	}
	return benchData
}

// BenchmarkLoad1000x10000 parses a MetaBase.xml of 1,000 virtual servers and
// 10,000 domain nodes. Goal: under 150 ms on the 2-core build machine.
func BenchmarkLoad1000x10000(b *testing.B) {
	data := benchBytes(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSave1000x10000 renders the same tree and writes it atomically
// (temporary file, fsync, rename, fsync of the folder). Goal: under 250 ms.
func BenchmarkSave1000x10000(b *testing.B) {
	t, err := Parse(benchBytes(b))
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "MetaBase.xml")
	b.ReportAllocs()
	for b.Loop() {
		t.Version++
		t.order.Store(nil) // sort again, as after any node is added or removed
		if err := WriteFileAtomic(path, t.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	st, _ := os.Stat(path)
	b.SetBytes(st.Size())
}

// BenchmarkStoreSave1000x10000 is the whole Store.Save of a changed tree of
// that size: validation, comparison with the file, atomic write and the
// history copy.
func BenchmarkStoreSave1000x10000(b *testing.B) {
	t, err := Parse(benchBytes(b))
	if err != nil {
		b.Fatal(err)
	}
	s := Open(filepath.Join(b.TempDir(), "MetaBase.xml"))
	s.Keep = 3
	svc := t.Node(schema.ServiceLocation)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		svc.Set("HopCount", fmt.Sprint(i%200+1))
		t.order.Store(nil) // as after a node is added or removed
		if wrote, err := s.Save(t); err != nil || !wrote {
			b.Fatal(wrote, err)
		}
	}
}

// BenchmarkStoreSaveUnchanged1000x10000 is a Store.Save whose content equals
// the file's: nothing is written.
func BenchmarkStoreSaveUnchanged1000x10000(b *testing.B) {
	t, err := Parse(benchBytes(b))
	if err != nil {
		b.Fatal(err)
	}
	s := Open(filepath.Join(b.TempDir(), "MetaBase.xml"))
	if _, err := s.Save(t); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if wrote, err := s.Save(t); err != nil || wrote {
			b.Fatal(wrote, err)
		}
	}
}
