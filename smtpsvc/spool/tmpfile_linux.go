package spool

import (
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// openUnnamed opens an unnamed file in dir (O_TMPFILE), or reports that
// the file system cannot.
func openUnnamed(dir string) (*os.File, bool) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o640)
	if err != nil {
		return nil, false
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir, "(unnamed)")), true
}

// linkUnnamed gives an unnamed file its name.
func linkUnnamed(f *os.File, path string) error {
	err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(f.Fd())), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
	if err != nil {
		return &os.LinkError{Op: "linkat", Old: f.Name(), New: path, Err: err}
	}
	return nil
}

// probeUnnamed reports whether dir supports unnamed files that can be
// linked in (O_TMPFILE and /proc/self/fd).
func probeUnnamed(dir string) bool {
	f, ok := openUnnamed(dir)
	if !ok {
		return false
	}
	defer f.Close()
	p := filepath.Join(dir, ".tmp-probe-"+strconv.Itoa(os.Getpid()))
	if linkUnnamed(f, p) != nil {
		return false
	}
	os.Remove(p)
	return true
}

// openFile is os.OpenFile for spool files. A blocking descriptor wrapped
// with os.NewFile is not offered to the network poller, which os.OpenFile
// tries for every file: four fcntl calls and a refused epoll_ctl per open,
// three opens for every message relayed.
func openFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	fd, err := unix.Open(path, flag|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// syncData is fdatasync(2): it makes the file's data and its length
// durable, all Commit needs before the rename (whose folder sync makes the
// name durable), without writing the inode for a new modification time.
// A reused file of the same length then costs no inode write per message.
func syncData(f *os.File) error {
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
	}
	return nil
}

// rename is rename(2) alone: os.Rename first stats the new name to refuse a
// directory there, a system call per rename that spool names (never
// directories) do not need.
func rename(from, to string) error {
	if err := unix.Rename(from, to); err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return nil
}
