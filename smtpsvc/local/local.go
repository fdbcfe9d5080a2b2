// Package local holds the delivery agents for mail that stays on this
// machine: Maildir (one Maildir per recipient under a mail store root),
// LMTP (hand the message to a local LMTP server, RFC 2033) and Drop (IIS's
// drop directory: one file per message).
//
// Every agent has the same method,
//
//	Deliver(ctx context.Context, job *delivery.Job) []delivery.Result
//
// which returns one delivery.Result per recipient of the job, in the
// job's order, and never panics on odd input (a recipient that cannot be
// a file name, a job without a message, a cancelled context): whatever
// goes wrong becomes a result. Failures this server makes up use the
// enhanced status codes of RFC 3463: 5.1.3 for an address that cannot be
// delivered here, 4.3.0 for a local write error, 4.4.1 for an LMTP server
// that cannot be reached, 4.3.2 for a delivery cut short by ctx.
package local

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/ds2mb/ds2mb/smtpsvc/delivery"
)

// maxName is the longest local part or domain accepted as a directory
// name (NAME_MAX of common file systems).
const maxName = 255

// ValidLocalPart reports whether s can be used as one directory name of a
// Maildir store: not empty, not "." or "..", no leading ".", no "/", no
// NUL or other control character, valid UTF-8 and at most 255 bytes. The
// same rule applies to domains (see ValidDomain). Maildir applies it after
// lower-casing and unquoting; s itself is taken as is.
func ValidLocalPart(s string) bool {
	if s == "" || s == "." || s == ".." || s[0] == '.' || len(s) > maxName || !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '/' || c < ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// ValidDomain reports whether s can be used as the domain directory of a
// Maildir store; the rule is ValidLocalPart's.
func ValidDomain(s string) bool { return ValidLocalPart(s) }

// SplitAddress splits an envelope address at its last "@" into the local
// part and the domain. A quoted local part ("\"john doe\"") is unquoted
// (quotes removed, backslash escapes resolved), as RFC 5321 makes it the
// same mailbox as the unquoted form. An address without "@" is all local
// part and has an empty domain.
func SplitAddress(addr string) (localPart, domain string) {
	localPart = addr
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		localPart, domain = addr[:i], addr[i+1:]
	}
	if len(localPart) >= 2 && localPart[0] == '"' && localPart[len(localPart)-1] == '"' {
		var b strings.Builder
		q := localPart[1 : len(localPart)-1]
		for i := 0; i < len(q); i++ {
			if q[i] == '\\' && i+1 < len(q) {
				i++
			}
			b.WriteByte(q[i])
		}
		localPart = b.String()
	}
	return localPart, domain
}

// badEnvelope reports whether an envelope address cannot be written into
// a header line (it holds CR, LF or NUL).
func badEnvelope(addr string) bool {
	return strings.ContainsAny(addr, "\r\n\x00")
}

// envelopeSender is the text of a null-or-not sender in a header: the
// address, or "<>" for the null reverse path.
func envelopeSender(from string) string {
	if from == "" {
		return "<>"
	}
	return from
}

// cancelled is the result of a delivery that ctx cut short.
func cancelled(rcpt string, err error) delivery.Result {
	return delivery.TempFail(rcpt, "4.3.2", "delivery interrupted: %v", err)
}

// ctxReader fails its reads once ctx is done, so that a long copy stops.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// openMessage opens the job's message, failing cleanly when the job has
// no Open function.
func openMessage(job *delivery.Job) (io.ReadCloser, error) {
	if job.Open == nil {
		return nil, errors.New("the job has no message")
	}
	rc, err := job.Open()
	if err == nil && rc == nil {
		err = errors.New("the job's message opened as nil")
	}
	return rc, err
}

// syncDir fsyncs a directory, making the entries created or removed in
// it durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// mkdirAll creates dir and its missing parents with perm, like
// os.MkdirAll, and fsyncs the parent of each directory it creates so that
// a new directory survives a crash together with the file put in it.
func mkdirAll(dir string, perm os.FileMode) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if fi.IsDir() {
			return nil
		}
		return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil {
		if fi, serr := os.Stat(dir); serr == nil && fi.IsDir() {
			return nil // made by someone else meanwhile
		}
		return err
	}
	return syncDir(parent)
}

// linkOrRename moves the finished file tmp to dst without replacing an
// existing dst: link() then unlink, or, where the file system has no hard
// links, a rename after checking that dst is free. An existing dst gives
// an error satisfying errors.Is(err, fs.ErrExist).
func linkOrRename(tmp, dst string) error {
	err := os.Link(tmp, dst)
	if err == nil {
		os.Remove(tmp)
		return nil
	}
	if errors.Is(err, fs.ErrExist) {
		return err
	}
	if _, serr := os.Lstat(dst); serr == nil {
		return &fs.PathError{Op: "rename", Path: dst, Err: fs.ErrExist}
	}
	return os.Rename(tmp, dst)
}
