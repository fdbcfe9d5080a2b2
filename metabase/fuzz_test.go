package metabase

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the MetaBase.xml parser. It must never
// panic, and whatever it accepts must save to a file that loads to an equal
// tree (same content and version) and saves again byte-identically.
// Run longer with: go test ./metabase -run '^$' -fuzz FuzzParse -fuzztime 5m
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.xml")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(doc(goodServers)))
	f.Add([]byte(`<IIsSmtpServer Location ="/LM/SmtpSvc/1" ServerBindings="a&#xA;b"><Custom Name="x" ID="1" Value="y" Type="STRING"/><Other/></IIsSmtpServer>`))
	f.Add([]byte(`<configuration><IIS_Global Location ="." ChangeNumber="7" x:y="z"><k/></IIS_Global><MBProperty><Loose a="1">t</Loose></MBProperty><Tail/></configuration>`))
	f.Add(crashTree(12).Bytes())
	f.Fuzz(func(t *testing.T, in []byte) {
		t1, err := Parse(in)
		if err != nil {
			return
		}
		t1.Validate() // must not panic either
		for _, n := range t1.Nodes() {
			for _, p := range n.Props() {
				t1.Effective(n.Location, p.Name)
			}
		}
		out := t1.Bytes()
		t2, err := Parse(out)
		if err != nil {
			t.Fatalf("saved form of an accepted input does not load: %v\ninput:\n%q\nsaved:\n%s", err, in, out)
		}
		if t2.Version != t1.Version || !t2.Equal(t1) {
			t.Fatalf("saved form loads to another tree: %v\ninput:\n%q\nsaved:\n%s", Diff(t1, t2), in, out)
		}
		if d := Diff(t1, t2); len(d) != 0 {
			t.Fatalf("Diff of equal trees: %v", d)
		}
		if out2 := t2.Bytes(); !bytes.Equal(out, out2) {
			t.Fatalf("second save differs from the first:\n%s\n---\n%s", out, out2)
		}
	})
}
