package replicator_test

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/ds2mb/ds2mb/deploy/localdir"
	"github.com/ds2mb/ds2mb/deploy/samba"
	"github.com/ds2mb/ds2mb/replicator"
)

// BenchmarkADLatency measures, over 200 changes on Samba AD (single
// process), the time from a Modify returning to the new MetaBase.xml with
// the new value; it reports p50 and p99 in ms.
//
//	go test -run '^$' -bench BenchmarkADLatency -benchtime 1x ./replicator/
func BenchmarkADLatency(b *testing.B) {
	dc := sharedDC(b)
	mb := filepath.Join(b.TempDir(), "MetaBase.xml")
	rn := startAD(b, dc, mb, false)
	conn, err := dc.Dial()
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	lat := measureLatency(b, 200, mb, func(v string) error {
		m := ldap.NewModifyRequest(adVS(1), nil)
		m.Replace("msExchSmtpMaxRecipients", []string{v})
		return conn.Modify(m)
	})
	reportPercentiles(b, lat)
	b.Logf("saves %d for %d changes", rn.r.Stats().Saves, len(lat))
}

// The 2,000 virtual servers are added to the shared DC once, however often
// the benchmark function runs.
var (
	bulkOnce sync.Once
	bulkErr  error
)

// BenchmarkADFullReplication2k: a full replication (DirSync, no state) of
// 2,000 extra virtual servers from Samba AD into an empty metabase, with
// --once; it reports the seconds per replication.
//
//	go test -run '^$' -bench BenchmarkADFullReplication2k -benchtime 3x ./replicator/
func BenchmarkADFullReplication2k(b *testing.B) {
	const n = 2000
	dc := sharedDC(b)
	bulkOnce.Do(func() {
		bulkErr = dc.ApplyLDIF(bulkLDIFAt(n, func(s string, n int) string { return samba.MoveDN(localdir.SampleVSDN(s, n)) }))
	})
	if bulkErr != nil {
		b.Fatal(bulkErr)
	}
	benchFullReplication(b, n, dc.ConfigDN, func() replicator.Source { return adSource(dc, true, false) })
}
