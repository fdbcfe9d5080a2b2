// Command schemagen writes the files generated from the schema catalogue.
// It is run by go generate in the schema folder (see schema/generate.go) and
// takes the module root as an optional argument (default "../", the parent of
// the schema folder).
//
// To add an output, add one line to outputs.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ds2mb/ds2mb/schema"
)

// output is one generated file: its path from the module root and the
// function that renders it.
type output struct {
	path   string
	render func() []byte
}

// outputs is every file generated from the catalogue.
var outputs = []output{
	{"deploy/openldap/exchange.schema", schema.OpenLDAPSchema},
	{"deploy/ad/exchange-schema.ldif", schema.ADSchemaLDIF},
	{"deploy/mbschema/MBSchema.xml", schema.MBSchemaXML},
}

// splice is a hand-written file with a generated section: edit returns the
// file with that section brought up to date.
type splice struct {
	path string
	edit func([]byte) ([]byte, error)
}

// splices is every file with a section generated from the catalogue.
var splices = []splice{
	{"README.md", schema.SpliceConfigReference}, // configuration reference between its markers
}

func main() {
	root := ".."
	if len(os.Args) > 1 {
		root = os.Args[1]
	}
	if err := run(root); err != nil {
		fmt.Fprintln(os.Stderr, "schemagen:", err)
		os.Exit(1)
	}
}

func run(root string) error {
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return fmt.Errorf("%s is not the module root (no go.mod): %w", root, err)
	}
	for _, o := range outputs {
		p := filepath.Join(root, filepath.FromSlash(o.path))
		data := o.render()
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, data) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
		fmt.Println("wrote", o.path)
	}
	for _, sp := range splices {
		p := filepath.Join(root, filepath.FromSlash(sp.path))
		old, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			fmt.Println("skipped", sp.path, "(missing)")
			continue
		}
		if err != nil {
			return err
		}
		data, err := sp.edit(old)
		if err != nil {
			return fmt.Errorf("%s: %w", sp.path, err)
		}
		if bytes.Equal(old, data) {
			continue
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
		fmt.Println("updated", sp.path)
	}
	return nil
}
