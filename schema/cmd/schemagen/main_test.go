package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRun writes every output into an empty module root and checks each
// file holds what its function renders; a root without go.mod is refused.
func TestRun(t *testing.T) {
	root := t.TempDir()
	if err := run(root); err == nil || !strings.Contains(err.Error(), "go.mod") {
		t.Fatalf("run without go.mod: err = %v, want a complaint about go.mod", err)
	}
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(root); err != nil {
		t.Fatal(err)
	}
	for _, o := range outputs {
		got, err := os.ReadFile(filepath.Join(root, o.path))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, o.render()) || len(got) == 0 {
			t.Errorf("%s: written content differs from its renderer", o.path)
		}
	}
}
