//go:build !linux

package spool

import (
	"errors"
	"os"
)

func openUnnamed(string) (*os.File, bool) { return nil, false }
func linkUnnamed(*os.File, string) error  { return errors.New("unnamed files are Linux-only") }
func probeUnnamed(string) bool            { return false }

func openRead(path string) (*os.File, error) { return os.Open(path) }

func rename(from, to string) error { return os.Rename(from, to) }
