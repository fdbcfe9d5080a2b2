package metabase

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultHistory is how many earlier versions a Store keeps.
const DefaultHistory = 10

// Store is a MetaBase.xml on disk with its history folder. Saves are atomic
// and numbered; a Store is safe for use by several goroutines of one process.
// Saves by several processes (the replicator and mbctl restore) are
// serialised by an advisory lock on a ".<name>.lock" file beside the
// MetaBase.xml, so each gets its own version number.
type Store struct {
	Path    string // the MetaBase.xml
	History string // folder of earlier versions; "" = <dir>/history
	Keep    int    // versions kept in History; 0 = DefaultHistory

	mu      sync.Mutex
	last    *savedState // what this Store last wrote or read, to skip a re-parse
	cleaned bool        // stale temporary files were removed
}

// staleTemp is the age after which a temporary file of an atomic write is
// taken to be left by a process that died mid-write.
const staleTemp = time.Minute

// removeStaleTemps deletes temporary files that killed writers left beside
// the MetaBase.xml and in the history folder (older than staleTemp, so a
// write in progress elsewhere is never touched).
func (s *Store) removeStaleTemps() {
	for _, d := range []struct{ dir, prefix string }{
		{filepath.Dir(s.Path), "." + filepath.Base(s.Path) + ".tmp-"},
		{s.historyDir(), ".MetaBase_"},
	} {
		ents, err := os.ReadDir(d.dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), d.prefix) || !strings.Contains(e.Name(), ".tmp-") {
				continue
			}
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleTemp {
				os.Remove(filepath.Join(d.dir, e.Name()))
			}
		}
	}
}

// savedState remembers the file a Store wrote: its identity on disk, its
// version and its rendered content.
type savedState struct {
	info    os.FileInfo
	version uint64
	body    []byte
}

// Open returns the Store of a MetaBase.xml path.
func Open(path string) *Store { return &Store{Path: path} }

func (s *Store) historyDir() string {
	if s.History != "" {
		return s.History
	}
	return filepath.Join(filepath.Dir(s.Path), "history")
}

func (s *Store) keep() int {
	if s.Keep > 0 {
		return s.Keep
	}
	return DefaultHistory
}

// Load reads the current file. A missing file is an empty tree at version 0.
func (s *Store) Load() (*Tree, error) {
	t, err := Load(s.Path)
	if errors.Is(err, os.ErrNotExist) {
		return New(), nil
	}
	return t, err
}

// Save validates t and, when its content differs from the file's, writes it
// atomically as the next version and keeps a copy in the history folder. It
// sets t.Version to the version on disk and reports whether it wrote. An
// invalid tree is refused whole and nothing is written.
//
// The next version is one more than the highest of the current file's and
// the history folder's, so an unreadable current file (replaced by the save)
// does not reset the numbering.
func (s *Store) Save(t *Tree) (written bool, err error) { return s.save(t, nil) }

// ErrChanged is returned by SaveOver when the file is no longer the version
// the tree was derived from.
var ErrChanged = errors.New("metabase changed since it was read")

// SaveOver is Save for a tree derived from version base of the file: under
// the store's lock it saves only if the file is still at base, and returns
// ErrChanged otherwise, so that a writer that merges into the file (the
// replicator) cannot undo a save made meanwhile by another (mbctl restore).
func (s *Store) SaveOver(t *Tree, base uint64) (written bool, err error) { return s.save(t, &base) }

func (s *Store) save(t *Tree, base *uint64) (written bool, err error) {
	if probs := t.Validate(); probs != nil {
		return false, fmt.Errorf("refusing to save an invalid metabase: %w", probs)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	unlock, err := s.lockFile()
	if err != nil {
		return false, err
	}
	defer unlock()
	if !s.cleaned {
		s.cleaned = true
		s.removeStaleTemps()
	}
	curVersion, curBody := s.current()
	if base != nil && curVersion != *base {
		return false, fmt.Errorf("%s: %w (version %d now, %d when read)", s.Path, ErrChanged, curVersion, *base)
	}
	if curBody != nil && curVersion > 0 {
		// A save that died between its rename and its history copy (or whose
		// copy failed) left the live version out of the history; record it
		// now, so every version that was live can be listed and restored.
		if _, err := os.Stat(s.historyName(curVersion)); errors.Is(err, os.ErrNotExist) {
			if err := s.record(curVersion, withVersion(curBody, curVersion)); err != nil {
				return false, fmt.Errorf("recording the live version %d in the history: %w", curVersion, err)
			}
		}
	}
	body := t.body()
	if curBody != nil && bytes.Equal(body, curBody) {
		t.Version = curVersion
		return false, nil
	}
	next := curVersion
	if vs, err := s.Versions(); err == nil && len(vs) > 0 && vs[len(vs)-1] > next {
		next = vs[len(vs)-1]
	}
	next++
	data := withVersion(body, next)
	if err := WriteFileAtomic(s.Path, data, 0o644); err != nil {
		return false, err
	}
	t.Version = next
	s.last = nil
	if info, err := os.Stat(s.Path); err == nil {
		s.last = &savedState{info: info, version: next, body: body}
	}
	if err := s.record(next, data); err != nil {
		return true, fmt.Errorf("saved version %d, but its history copy failed: %w", next, err)
	}
	return true, nil
}

// lockFile takes the advisory lock that serialises saves across processes.
// The kernel releases it if the process dies.
func (s *Store) lockFile() (unlock func(), err error) {
	name := filepath.Join(filepath.Dir(s.Path), "."+filepath.Base(s.Path)+".lock")
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("metabase lock: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("metabase lock %s: %w", name, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// current returns the version and rendered content of the file on disk,
// from memory when the file is still the one this Store last saw. A missing
// file is version 0 with an empty body; an unreadable one is version 0 with
// a nil body (it differs from everything).
func (s *Store) current() (uint64, []byte) {
	info, err := os.Stat(s.Path)
	if err != nil {
		s.last = nil
		if errors.Is(err, os.ErrNotExist) {
			return 0, New().body()
		}
		return 0, nil
	}
	if l := s.last; l != nil && os.SameFile(info, l.info) && info.ModTime().Equal(l.info.ModTime()) && info.Size() == l.info.Size() {
		return l.version, l.body
	}
	cur, err := Load(s.Path)
	if err != nil {
		s.last = nil
		return 0, nil
	}
	body := cur.body()
	s.last = &savedState{info: info, version: cur.Version, body: body}
	return cur.Version, body
}

// HistoryDir returns the folder holding the earlier versions.
func (s *Store) HistoryDir() string { return s.historyDir() }

// HistoryFile returns the path of version v's copy in the history folder.
func (s *Store) HistoryFile(v uint64) string { return s.historyName(v) }

func (s *Store) historyName(v uint64) string {
	return filepath.Join(s.historyDir(), fmt.Sprintf("MetaBase_%010d.xml", v))
}

func (s *Store) record(v uint64, data []byte) error {
	if err := os.MkdirAll(s.historyDir(), 0o755); err != nil {
		return err
	}
	if err := WriteFileAtomic(s.historyName(v), data, 0o644); err != nil {
		return err
	}
	vs, err := s.Versions()
	if err != nil {
		return err
	}
	for len(vs) > s.keep() {
		if err := os.Remove(s.historyName(vs[0])); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		vs = vs[1:]
	}
	return nil
}

// Versions lists the versions in the history folder, oldest first.
func (s *Store) Versions() ([]uint64, error) {
	ents, err := os.ReadDir(s.historyDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var vs []uint64
	for _, e := range ents {
		name := e.Name()
		num, ok := strings.CutPrefix(name, "MetaBase_")
		num, ok2 := strings.CutSuffix(num, ".xml")
		if !ok || !ok2 {
			continue
		}
		if v, err := strconv.ParseUint(num, 10, 64); err == nil {
			vs = append(vs, v)
		}
	}
	slices.Sort(vs)
	return vs, nil
}

// Version loads one version from the history folder.
func (s *Store) Version(v uint64) (*Tree, error) {
	t, err := Load(s.historyName(v))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("version %d is not in the history folder %s", v, s.historyDir())
	}
	return t, err
}

// Restore saves the content of an earlier version as a new version.
func (s *Store) Restore(v uint64) (*Tree, error) {
	t, err := s.Version(v)
	if err != nil {
		return nil, err
	}
	if _, err := s.Save(t); err != nil {
		return nil, err
	}
	return t, nil
}

// WriteFileAtomic writes data to path so that a reader sees the old file or
// the new one, never a mix, even if the process dies mid-write: a temporary
// file in the same folder, fsync, rename over path, fsync of the folder.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return WriteAtomic(path, perm, func(w *bufio.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteAtomic is WriteFileAtomic for a body streamed into a buffered writer
// (a large file need not be built in memory first). If body fails, path is
// left as it was.
func WriteAtomic(path string, perm os.FileMode, body func(*bufio.Writer) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	w := bufio.NewWriterSize(f, 64<<10)
	if err := body(w); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
