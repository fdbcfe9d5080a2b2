package metabase

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/schema"
)

func sampleTree(t *testing.T) *Tree {
	t.Helper()
	b, err := os.ReadFile("testdata/sample.xml")
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestStoreSaveUnchangedWritesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "MetaBase.xml")
	s := Open(path)
	tr := sampleTree(t)
	tr.Version = 0
	wrote, err := s.Save(tr)
	if err != nil || !wrote || tr.Version != 1 {
		t.Fatalf("first save: wrote=%v version=%d err=%v", wrote, tr.Version, err)
	}
	st1, _ := os.Stat(path)
	data1, _ := os.ReadFile(path)

	// Same content again, from this Store and from a fresh one (no cache).
	for i, st := range []*Store{s, Open(path)} {
		again := sampleTree(t)
		wrote, err = st.Save(again)
		if err != nil || wrote || again.Version != 1 {
			t.Fatalf("save %d of unchanged content: wrote=%v version=%d err=%v", i, wrote, again.Version, err)
		}
	}
	st2, _ := os.Stat(path)
	data2, _ := os.ReadFile(path)
	if !os.SameFile(st1, st2) || !st1.ModTime().Equal(st2.ModTime()) || !bytes.Equal(data1, data2) {
		t.Fatal("an unchanged save replaced the file")
	}
	if vs, _ := s.Versions(); !slices.Equal(vs, []uint64{1}) {
		t.Fatalf("history %v, want [1]", vs)
	}
	// A real change is written as version 2, and reloads equal.
	tr.Node(schema.ServerLocation(2)).Set("MaxRecipients", "500")
	if wrote, err = s.Save(tr); err != nil || !wrote || tr.Version != 2 {
		t.Fatalf("changed save: wrote=%v version=%d err=%v", wrote, tr.Version, err)
	}
	back, err := s.Load()
	if err != nil || back.Version != 2 || !back.Equal(tr) {
		t.Fatalf("reload: version %d err %v diff %v", back.Version, err, Diff(tr, back))
	}
	// No temporary files are left behind.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

func TestStoreHistoryPruneAndRestore(t *testing.T) {
	dir := t.TempDir()
	s := Open(filepath.Join(dir, "MetaBase.xml"))
	s.Keep = 3
	tr := sampleTree(t)
	for i := 1; i <= 6; i++ {
		tr.Node(schema.ServiceLocation).Set("MaxMessageSize", strings.Repeat("1", i))
		if wrote, err := s.Save(tr); err != nil || !wrote || tr.Version != uint64(i) {
			// Numbering comes from the disk, not from the tree's own Version.
			t.Fatalf("save %d: wrote=%v version=%d err=%v", i, wrote, tr.Version, err)
		}
	}
	vs, err := s.Versions()
	if err != nil || !slices.Equal(vs, []uint64{4, 5, 6}) {
		t.Fatalf("history %v (%v), want the last 3: [4 5 6]", vs, err)
	}
	if _, err := s.Version(1); err == nil || !strings.Contains(err.Error(), "version 1") {
		t.Fatalf("pruned version 1: err = %v", err)
	}
	old, err := s.Version(4)
	if err != nil || old.Version != 4 || old.Node(schema.ServiceLocation).Text("MaxMessageSize") != "1111" {
		t.Fatalf("version 4: %v", err)
	}
	restored, err := s.Restore(4)
	if err != nil || restored.Version != 7 {
		t.Fatalf("Restore(4): version %d err %v", restored.Version, err)
	}
	cur, _ := s.Load()
	if cur.Version != 7 || cur.Node(schema.ServiceLocation).Text("MaxMessageSize") != "1111" {
		t.Fatalf("after restore: version %d, MaxMessageSize %s", cur.Version, cur.Node(schema.ServiceLocation).Text("MaxMessageSize"))
	}
	if vs, _ := s.Versions(); !slices.Equal(vs, []uint64{5, 6, 7}) {
		t.Fatalf("history after restore %v", vs)
	}
}

func TestStoreVersionSurvivesUnreadableFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "MetaBase.xml")
	s := Open(path)
	tr := bigTree(2, 4)
	for i := 0; i < 3; i++ {
		tr.Node(schema.ServiceLocation).Set("HopCount", strings.Repeat("2", i+1))
		if _, err := s.Save(tr); err != nil {
			t.Fatal(err)
		}
	}
	if tr.Version != 3 {
		t.Fatalf("version %d after 3 saves", tr.Version)
	}
	if err := os.WriteFile(path, []byte("<configuration><MBProperty>"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(); err == nil || !strings.Contains(err.Error(), "malformed XML") {
		t.Fatalf("Load of a broken file: err = %v", err)
	}
	for _, st := range []*Store{s, Open(path)} {
		if err := os.WriteFile(path, []byte("<configuration><MBProperty>"), 0o644); err != nil {
			t.Fatal(err)
		}
		t2 := tr.Clone()
		wrote, err := st.Save(t2)
		if err != nil || !wrote || t2.Version != tr.Version+1 {
			t.Fatalf("save over a broken file: wrote=%v version=%d err=%v (want version %d)", wrote, t2.Version, err, tr.Version+1)
		}
		tr = t2
	}
}

func TestDiff(t *testing.T) {
	a := sampleTree(t)
	b := a.Clone()
	b.Node(schema.ServerLocation(1)).Set("MaxRecipients", "100")
	b.Node(schema.ServerLocation(2)).Remove("MasqueradeDomain")
	b.Node(schema.ServerLocation(2)).Set("HopCount", "20")
	b.Node("/LM/SmtpSvc/1/Domain/*.contoso.com").Set("RoutePassword", "n3w-p4ss")
	b.Delete("/LM/SmtpSvc/1/Domain/partner.example.org")
	b.Ensure("/LM/SmtpSvc/2/Domain/new.example.net", ClassDomain).Set("RouteAction", "SMTP_DOMAIN_RELAY")
	b.Ensure("/LM/SmtpSvc/2/Domain/secret.example.net", ClassDomain).Set("RoutePassword", "hidden")
	auth, _ := b.Node(schema.ServerLocation(1)).Get("AuthFlags")
	auth.Attributes = "NO_ATTRIBUTES"
	b.Node(schema.ServerLocation(1)).SetProperty(auth)

	var got []string
	for _, c := range Diff(a, b) {
		got = append(got, c.String())
	}
	want := []string{
		`~ /LM/SmtpSvc/1: AuthFlags: "AuthBasic | AuthAnonymous | AuthNTLM" -> "AuthBasic | AuthAnonymous | AuthNTLM" (Custom metadata: ID 6000 Type DWORD UserType IIS_MD_UT_SERVER Attributes INHERIT -> ID 6000 Type DWORD UserType IIS_MD_UT_SERVER Attributes NO_ATTRIBUTES)`,
		`~ /LM/SmtpSvc/1: MaxRecipients: "64000" -> "100"`,
		`~ /LM/SmtpSvc/1/Domain/*.contoso.com: RoutePassword: "********" -> "********"`,
		`- /LM/SmtpSvc/1/Domain/partner.example.org <IIsSmtpDomain>`,
		`- /LM/SmtpSvc/1/Domain/partner.example.org: RouteAction (was "SMTP_DOMAIN_RELAY")`,
		`+ /LM/SmtpSvc/2: HopCount = "20"`,
		`- /LM/SmtpSvc/2: MasqueradeDomain (was "example.com")`,
		`+ /LM/SmtpSvc/2/Domain/new.example.net <IIsSmtpDomain>`,
		`+ /LM/SmtpSvc/2/Domain/new.example.net: RouteAction = "SMTP_DOMAIN_RELAY"`,
		`+ /LM/SmtpSvc/2/Domain/secret.example.net <IIsSmtpDomain>`,
		`+ /LM/SmtpSvc/2/Domain/secret.example.net: RoutePassword = "********"`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Diff:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, c := range Diff(a, b) {
		if strings.Contains(c.Old+c.New+c.String(), "p4ss") || strings.Contains(c.Old+c.New, "hidden") {
			t.Fatalf("secure value shown: %+v", c)
		}
	}
	if d := Diff(a, a.Clone()); len(d) != 0 {
		t.Fatalf("Diff of a tree and its clone: %v", d)
	}
	// A Custom property with the SECURE attribute is masked too.
	c := a.Clone()
	c.Node(schema.ServiceLocation).SetProperty(Property{Name: "VendorKey", Text: "abc", Custom: true, ID: 70000, Type: schema.STRING, Attributes: "INHERIT | SECURE"})
	d := Diff(a, c)
	if len(d) != 1 || d[0].Kind != PropertyAdded || !d[0].Secure || d[0].New != Masked {
		t.Fatalf("Custom SECURE: %+v", d)
	}
	// Changes to kept elements are reported.
	var err error
	c, err = Parse(bytes.Replace(a.Bytes(), []byte(`Author="ops"`), []byte(`Author="dev"`), 1))
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff(a, c); len(d) != 1 || d[0].String() != "~ /LM/SmtpSvc/1 (other child elements differ)" {
		t.Fatalf("kept element change: %v", d)
	}
	// Class changes are reported.
	c = a.Clone()
	c.Node("/LM/SmtpSvc/1/Domain").Class = "IIsSmtpDomainContainer"
	if d := Diff(a, c); len(d) != 1 || d[0].String() != "~ /LM/SmtpSvc/1/Domain: <IIsConfigObject> -> <IIsSmtpDomainContainer>" {
		t.Fatalf("class change: %v", d)
	}
}

func TestStoreRemovesStaleTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	s := Open(filepath.Join(dir, "MetaBase.xml"))
	old := time.Now().Add(-time.Hour)
	stale := filepath.Join(dir, ".MetaBase.xml.tmp-123")
	fresh := filepath.Join(dir, ".MetaBase.xml.tmp-456")
	other := filepath.Join(dir, ".other.tmp-1")
	os.MkdirAll(filepath.Join(dir, "history"), 0o755)
	staleHist := filepath.Join(dir, "history", ".MetaBase_0000000001.xml.tmp-9")
	for _, f := range []string{stale, fresh, other, staleHist} {
		if err := os.WriteFile(f, []byte("<half"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{stale, other, staleHist} {
		os.Chtimes(f, old, old)
	}
	if _, err := s.Save(bigTree(1, 1)); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]bool{stale: false, staleHist: false, fresh: true, other: true} {
		if _, err := os.Stat(f); (err == nil) != want {
			t.Errorf("%s: exists=%v, want %v", filepath.Base(f), err == nil, want)
		}
	}
}

// TestConcurrentReaders checks that read-only use of one tree from several
// goroutines is safe (run with -race).
func TestConcurrentReaders(t *testing.T) {
	tr := sampleTree(t)
	done := make(chan string)
	for range 4 {
		go func() {
			n := len(tr.Nodes())
			tr.Validate()
			tr.Effective(schema.ServerLocation(2), "AuthFlags")
			done <- fmt.Sprint(n, len(tr.Bytes()))
		}()
	}
	first := <-done
	for range 3 {
		if got := <-done; got != first {
			t.Fatalf("readers disagree: %s and %s", first, got)
		}
	}
}

// TestTwoStoresGetDistinctVersions saves from two Stores of one file at
// once, as the replicator and mbctl restore do from two processes: the lock
// file serialises them, so every save gets a version of its own.
func TestTwoStoresGetDistinctVersions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "MetaBase.xml")
	const each = 15
	versions := make(chan uint64, 2*each)
	errs := make(chan error, 2)
	for w := range 2 {
		go func() {
			s := Open(path)
			s.Keep = 100
			for i := range each {
				tr := crashTree(uint64(1000*(w+1) + i))
				if _, err := s.Save(tr); err != nil {
					errs <- err
					return
				}
				versions <- tr.Version
			}
			errs <- nil
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(versions)
	seen := map[uint64]bool{}
	for v := range versions {
		if seen[v] {
			t.Fatalf("version %d given to two saves", v)
		}
		seen[v] = true
	}
	if vs, _ := Open(path).Versions(); len(vs) != 2*each || vs[len(vs)-1] != 2*each {
		t.Fatalf("history %v, want versions 1–%d", vs, 2*each)
	}
}

// TestSaveRecordsMissingHistoryCopy: a version that went live without its
// history copy (a crash between the rename and the copy) is recorded by the
// next Save, even one that writes nothing, so it can still be restored.
func TestSaveRecordsMissingHistoryCopy(t *testing.T) {
	dir := t.TempDir()
	s := Open(filepath.Join(dir, "MetaBase.xml"))
	tr := New()
	tr.Ensure(schema.ServerLocation(1), ClassServer).Set("MaxRecipients", "10")
	if _, err := s.Save(tr); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(s.HistoryFile(tr.Version)); err != nil {
		t.Fatal(err)
	}
	again := tr.Clone()
	if written, err := s.Save(again); err != nil || written {
		t.Fatalf("unchanged Save: written=%v err=%v", written, err)
	}
	got, err := s.Version(tr.Version)
	if err != nil {
		t.Fatalf("version %d not back in the history: %v", tr.Version, err)
	}
	if !got.Equal(tr) {
		t.Fatalf("history copy of version %d differs: %v", tr.Version, Diff(tr, got))
	}
}

// TestSaveOverRefusesAChangedFile: a tree derived from an older version is
// not saved over a newer one; the file is left as the other writer made it.
func TestSaveOverRefusesAChangedFile(t *testing.T) {
	s := Open(filepath.Join(t.TempDir(), "MetaBase.xml"))
	a := New()
	a.Ensure(schema.ServerLocation(1), ClassServer).Set("MaxRecipients", "10")
	if _, err := s.Save(a); err != nil {
		t.Fatal(err)
	}
	derived := a.Clone() // read at version 1
	derived.Node(schema.ServerLocation(1)).Set("MaxRecipients", "20")
	other := a.Clone() // another writer saves version 2 meanwhile
	other.Node(schema.ServerLocation(1)).Set("MaxRecipients", "30")
	if _, err := s.Save(other); err != nil {
		t.Fatal(err)
	}
	if written, err := s.SaveOver(derived, a.Version); !errors.Is(err, ErrChanged) || written {
		t.Fatalf("SaveOver on a changed file: written=%v err=%v, want ErrChanged", written, err)
	}
	cur, err := s.Load()
	if err != nil || cur.Node(schema.ServerLocation(1)).Text("MaxRecipients") != "30" {
		t.Fatalf("file after a refused SaveOver: %v %v", err, cur.Node(schema.ServerLocation(1)))
	}
	if written, err := s.SaveOver(derived, other.Version); err != nil || !written {
		t.Fatalf("SaveOver on the current version: written=%v err=%v", written, err)
	}
}
