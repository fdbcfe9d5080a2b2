package replicator_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/deploy/localdir"
	"github.com/ds2mb/ds2mb/deploy/samba"
	"github.com/ds2mb/ds2mb/replicator"
	"github.com/ds2mb/ds2mb/replicator/source"
)

// One Samba AD DC serves every AD test of the package (it takes ~20 s to
// provision and load); each test adds and removes objects of its own, and
// sets back what it changes of the sample.
var (
	adOnce sync.Once
	adDC   *samba.DC
	adErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if adDC != nil {
		adDC.Close()
	}
	os.Exit(code)
}

func sharedDC(t testing.TB) *samba.DC {
	t.Helper()
	adOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		adDC, adErr = samba.Start(ctx, samba.Options{})
	})
	if adErr != nil {
		t.Fatal(adErr)
	}
	return adDC
}

func adSource(dc *samba.DC, once, noDirSync bool) *source.ADNotify {
	a := source.NewADNotify(source.Config{URL: dc.URL, BindDN: dc.BindDN, Password: dc.Password, BaseDN: source.SearchBase(dc.ConfigDN),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, Once: once})
	a.NoDirSync = noDirSync
	return a
}

// startAD runs a replicator for SERVER01 on the DC into mb.
func startAD(t testing.TB, dc *samba.DC, mb string, noDirSync bool) *running {
	t.Helper()
	_, statErr := os.Stat(mb)
	rn := run(t, mb, replicator.Options{Metabase: mb, Server: "SERVER01", Base: dc.ConfigDN, Source: adSource(dc, false, noDirSync)}, nil)
	if statErr != nil { // a new metabase: a full replication
		rn.waitEvent(replicator.EvFullDone, nil, "full replication from AD")
	} else {
		rn.waitEvent(replicator.EvResume, nil, "resume from the saved cookie")
	}
	return rn
}

func adLDIF(t testing.TB, dc *samba.DC, recs ...string) {
	t.Helper()
	if err := dc.ApplyLDIF(strings.Join(recs, "\n\n")); err != nil {
		t.Fatalf("ldif on AD: %v", err)
	}
}

// adVSLDIF adds virtual server n of SERVER01 on the DC.
func adVSLDIF(n int, binding string) string {
	return fmt.Sprintf("dn: %s\nchangetype: add\nobjectClass: protocolCfgSMTPServer\ncn: %d\nmsExchServerBindings: %s\nmsExchSmtpMaxRecipients: %d",
		samba.MoveDN(localdir.SampleVSDN("SERVER01", n)), n, binding, 10+n)
}

func adVS(n int) string { return samba.MoveDN(localdir.SampleVSDN("SERVER01", n)) }

// replicateOnce replicates from scratch into a new file and returns it.
func replicateOnce(t testing.TB, src replicator.Source, base string) []byte {
	t.Helper()
	mb := filepath.Join(t.TempDir(), "MetaBase.xml")
	r, err := replicator.New(replicator.Options{Metabase: mb, Server: "SERVER01", Base: base, Source: src})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(mb)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestADMatchesOpenLDAP replicates the same sample organisation from
// OpenLDAP (syncrepl) and from Samba AD (DirSync, and uSNChanged) and
// wants byte-identical MetaBase.xml files.
func TestADMatchesOpenLDAP(t *testing.T) {
	dc := sharedDC(t)
	srv := localdir.StartT(t, localdir.Options{})
	want := replicateOnce(t, newSource(srv, "syncrepl", true), srv.ConfigDN)
	for _, noDS := range []bool{false, true} {
		got := replicateOnce(t, adSource(dc, true, noDS), dc.ConfigDN)
		if !bytes.Equal(got, want) {
			t.Fatalf("AD (noDirSync=%v) and OpenLDAP metabases differ:\n--- AD\n%s\n--- OpenLDAP\n%s", noDS, got, want)
		}
	}
	if !bytes.Contains(want, []byte("SmtpSvc/1")) {
		t.Fatalf("the compared metabase holds no virtual server:\n%s", want)
	}
}

// TestADLive follows Samba AD while objects are modified, added and
// deleted, by DirSync and by uSNChanged.
func TestADLive(t *testing.T) {
	dc := sharedDC(t)
	for i, noDS := range []bool{false, true} {
		t.Run(fmt.Sprintf("noDirSync=%v", noDS), func(t *testing.T) {
			mb := filepath.Join(t.TempDir(), "MetaBase.xml")
			startAD(t, dc, mb, noDS)
			waitFor(t, vs1+" MaxRecipients after the full replication", func() bool { return prop(mb, vs1, "MaxRecipients") != "" })
			old := prop(mb, vs1, "MaxRecipients")
			want := fmt.Sprint(200 + i)
			adLDIF(t, dc, replace(adVS(1), "msExchSmtpMaxRecipients", want))
			t.Cleanup(func() { dc.ApplyLDIF(replace(adVS(1), "msExchSmtpMaxRecipients", old)) })
			waitProp(t, mb, vs1, "MaxRecipients", want)

			n := 40 + i
			loc := fmt.Sprintf("/LM/SmtpSvc/%d", n)
			adLDIF(t, dc, adVSLDIF(n, fmt.Sprintf("127.0.0.1:%d:", 2600+n)))
			waitProp(t, mb, loc, "MaxRecipients", fmt.Sprint(10+n))
			adLDIF(t, dc, del(adVS(n)))
			waitNoNode(t, mb, loc)
			valid(t, mb)
		})
	}
}

// TestADRestartCatchUp stops the replicator, changes, adds and deletes
// objects, and starts it again from its state: every change, the delete
// included, reaches the file.
func TestADRestartCatchUp(t *testing.T) {
	dc := sharedDC(t)
	for i, noDS := range []bool{false, true} {
		t.Run(fmt.Sprintf("noDirSync=%v", noDS), func(t *testing.T) {
			mb := filepath.Join(t.TempDir(), "MetaBase.xml")
			a, b := 50+2*i, 51+2*i
			adLDIF(t, dc, adVSLDIF(a, fmt.Sprintf("127.0.0.1:%d:", 2600+a)))
			t.Cleanup(func() { dc.ApplyLDIF(del(adVS(a))) })
			rn := startAD(t, dc, mb, noDS)
			waitNode(t, mb, fmt.Sprintf("/LM/SmtpSvc/%d", a))
			rn.stop()

			old := prop(mb, vs1, "MaxRecipients")
			want := fmt.Sprint(300 + i)
			adLDIF(t, dc, replace(adVS(1), "msExchSmtpMaxRecipients", want), del(adVS(a)), adVSLDIF(b, fmt.Sprintf("127.0.0.1:%d:", 2600+b)))
			t.Cleanup(func() {
				dc.ApplyLDIF(replace(adVS(1), "msExchSmtpMaxRecipients", old))
				dc.ApplyLDIF(del(adVS(b)))
			})

			startAD(t, dc, mb, noDS)
			waitProp(t, mb, vs1, "MaxRecipients", want)
			waitNoNode(t, mb, fmt.Sprintf("/LM/SmtpSvc/%d", a))
			waitNode(t, mb, fmt.Sprintf("/LM/SmtpSvc/%d", b))
			valid(t, mb)
		})
	}
}

// TestADSambaRestarted restarts Samba under a running replicator: it
// reports the lost connection, redials, and follows changes again.
func TestADSambaRestarted(t *testing.T) {
	dc := sharedDC(t)
	mb := filepath.Join(t.TempDir(), "MetaBase.xml")
	rn := startAD(t, dc, mb, false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := dc.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	rn.waitEvent(replicator.EvConnectionLost, nil, "the lost connection reported")
	rn.waitEvent(replicator.EvConnectionRestored, nil, "the connection restored")
	old := prop(mb, vs1, "MaxRecipients")
	adLDIF(t, dc, replace(adVS(1), "msExchSmtpMaxRecipients", "444"))
	t.Cleanup(func() { dc.ApplyLDIF(replace(adVS(1), "msExchSmtpMaxRecipients", old)) })
	waitProp(t, mb, vs1, "MaxRecipients", "444")
}

// TestADOrdinaryAccount follows AD as an ordinary user, as a replicator's
// read-only account would be: DirSync is refused (no Replicating Directory
// Changes), so the source reads by uSNChanged; Deleted Objects is hidden,
// so a delete is found by the listing of the safety-net read.
func TestADOrdinaryAccount(t *testing.T) {
	dc := sharedDC(t)
	mb := filepath.Join(t.TempDir(), "MetaBase.xml")
	src := adSource(dc, false, false)
	src.BindDN, src.Password, src.Every = samba.ConsumerDN, samba.ConsumerPassword, 200*time.Millisecond
	rn := run(t, mb, replicator.Options{Metabase: mb, Server: "SERVER01", Base: dc.ConfigDN, Source: src}, nil)
	rn.waitEvent(replicator.EvFullDone, nil, "full replication as the ordinary account")
	waitFor(t, vs1+" MaxRecipients", func() bool { return prop(mb, vs1, "MaxRecipients") != "" })
	old := prop(mb, vs1, "MaxRecipients")
	adLDIF(t, dc, replace(adVS(1), "msExchSmtpMaxRecipients", "555"))
	t.Cleanup(func() { dc.ApplyLDIF(replace(adVS(1), "msExchSmtpMaxRecipients", old)) })
	waitProp(t, mb, vs1, "MaxRecipients", "555")
	loc := "/LM/SmtpSvc/60"
	adLDIF(t, dc, adVSLDIF(60, "127.0.0.1:2660:"))
	waitNode(t, mb, loc)
	adLDIF(t, dc, del(adVS(60)))
	waitNoNode(t, mb, loc)
	if rn.count(replicator.EvConnectionLost) != 0 {
		t.Fatalf("the ordinary account's source lost its connection %d times", rn.count(replicator.EvConnectionLost))
	}
}
