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

// FuzzFastParse checks that the fast reader, whenever it accepts an input,
// reads it exactly as the general etree reader does.
func FuzzFastParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.xml")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(crashTree(12).Bytes())
	f.Add(bigTree(3, 9).Bytes())
	f.Add([]byte(doc(goodServers)))
	f.Add([]byte(`<?xml version="1.0"?><configuration xmlns='x'><MBProperty><IIS_Global Location="." ChangeNumber=" 9 "/><A Location =" /LM/x/ " b = 'a&#x9;&lt;&#10;&quot;'><Custom Name="n" ID="1" Value="&amp;" Type="dword"></Custom></A ></MBProperty></configuration >`))
	f.Fuzz(func(t *testing.T, in []byte) {
		fast, ok := fastParse(in)
		general, err := parseGeneral(in)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("fast reader accepts what the general one refuses (%v):\n%q", err, in)
		}
		if fast.Version != general.Version || !fast.Equal(general) {
			t.Fatalf("readers disagree on\n%q\nfast:\n%s\ngeneral:\n%s", in, fast.Bytes(), general.Bytes())
		}
		if fast.Len() != general.Len() {
			t.Fatalf("readers disagree on the node count: %d and %d", fast.Len(), general.Len())
		}
	})
}

// TestFastParseTakesOurOwnFiles checks that the files ds2mb writes take the
// fast path, and that inputs it does not know fall back to the general one.
func TestFastParseTakesOurOwnFiles(t *testing.T) {
	for _, in := range [][]byte{bigTree(5, 20).Bytes(), crashTree(7).Bytes(), New().Bytes()} {
		if _, ok := fastParse(in); !ok {
			t.Fatalf("a file ds2mb wrote does not take the fast path:\n%s", in)
		}
	}
	b, _ := os.ReadFile("testdata/seed004.golden.xml")
	if _, ok := fastParse(b); !ok {
		t.Fatal("the saved seed fragment does not take the fast path")
	}
	b, _ = os.ReadFile("testdata/sample.golden.xml")
	if _, ok := fastParse(b); ok {
		t.Fatal("the full sample (kept unknown elements) took the fast path")
	}
}
