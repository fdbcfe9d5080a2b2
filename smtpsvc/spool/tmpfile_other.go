//go:build !linux

package spool

import (
	"errors"
	"os"
)

func openUnnamed(string) (*os.File, bool) { return nil, false }
func linkUnnamed(*os.File, string) error  { return errors.New("unnamed files are Linux-only") }
func probeUnnamed(string) bool            { return false }

func openFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	return os.OpenFile(path, flag, perm)
}

func syncData(f *os.File) error { return f.Sync() }

func rename(from, to string) error { return os.Rename(from, to) }
