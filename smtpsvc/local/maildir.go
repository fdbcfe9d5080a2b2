package local

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/ds2mb/ds2mb/smtpsvc/delivery"
)

// bufferLimit is the largest message Maildir reads into memory once for
// all the recipients of a job; a larger one is read from the spool again
// for each recipient.
const bufferLimit = 1 << 20

// Maildir delivers mail into one Maildir (https://cr.yp.to/proto/maildir.html)
// per recipient under Root:
//
//	Root/<domain>/<localpart>/tmp/   messages being written
//	Root/<domain>/<localpart>/new/   delivered, not yet seen by a reader
//	Root/<domain>/<localpart>/cur/   left to the mail reader
//
// Domain and local part are lower-cased (a quoted local part unquoted,
// see SplitAddress); the directories, Root included, are created with
// mode 0700 when missing. An address whose local part or domain fails
// ValidLocalPart (empty, ".", "..", a leading ".", "/", NUL, …) is
// refused with 550 5.1.3 and nothing is created for it.
//
// Each delivered file, mode 0600, is
//
//	Return-Path: <sender>      ("<>" for the null reverse path)
//	Delivered-To: rcpt@domain  (the recipient as the job names it)
//	<the message as the spool holds it>
//
// with CRLF line ends throughout, as the message itself has them. It is
// written to tmp/<unique>, fsynced, linked into new/ (renamed where the
// file system has no hard links) and new/ is fsynced: only then is the
// recipient delivered (250 2.0.0). The unique name follows the Maildir
// spec: "<unix seconds>.M<microseconds>P<pid>Q<counter>.<hostname>", with
// "/" and ":" in the host name written as "\057" and "\072". A write
// error (disk full, permission, a file where a directory should be) is a
// temporary failure 451 4.3.0 for that recipient only. Recipients that
// name the same Maildir get one file and the same result.
type Maildir struct {
	Root string // the mail store; "" refuses every delivery (4.3.5)
}

// Dir returns the Maildir directory of rcpt, Root/<domain>/<localpart>,
// or an error when the address cannot name one (see ValidLocalPart).
func (m *Maildir) Dir(rcpt string) (string, error) {
	rel, err := mailboxPath(rcpt)
	if err != nil {
		return "", err
	}
	return filepath.Join(m.Root, rel), nil
}

// mailboxPath is the Maildir of rcpt relative to the root:
// "<domain>/<localpart>".
func mailboxPath(rcpt string) (string, error) {
	if !utf8.ValidString(rcpt) {
		return "", fmt.Errorf("the address %q is not valid UTF-8", rcpt)
	}
	lp, dom := SplitAddress(rcpt)
	lp, dom = strings.ToLower(lp), strings.ToLower(dom)
	if !ValidLocalPart(lp) {
		return "", fmt.Errorf("local part %q cannot be a mailbox here", lp)
	}
	if !ValidDomain(dom) {
		return "", fmt.Errorf("domain %q cannot be a mailbox here", dom)
	}
	return filepath.Join(dom, lp), nil
}

// Deliver writes the job's message into the Maildir of each recipient
// and returns one result per recipient, in order.
func (m *Maildir) Deliver(ctx context.Context, job *delivery.Job) []delivery.Result {
	res := make([]delivery.Result, len(job.Rcpts))
	if m.Root == "" {
		return delivery.All(job, delivery.TempFail("", "4.3.5", "no Maildir store is configured"))
	}
	if badEnvelope(job.From) {
		return delivery.All(job, delivery.PermFail("", "5.1.7", "the sender %q cannot be written into a header", job.From))
	}
	type target struct {
		i   int    // index of the recipient
		rel string // its Maildir, relative to Root
	}
	var todo []target
	first := map[string]int{} // Maildir -> index of its first recipient
	dup := map[int]int{}      // index -> index of the recipient it repeats
	for i, rc := range job.Rcpts {
		if badEnvelope(rc) {
			res[i] = delivery.PermFail(rc, "5.1.3", "the recipient %q cannot be a mailbox here", rc)
			continue
		}
		rel, err := mailboxPath(rc)
		if err != nil {
			res[i] = delivery.PermFail(rc, "5.1.3", "%v", err)
			continue
		}
		if f, ok := first[rel]; ok {
			dup[i] = f
			continue
		}
		first[rel] = i
		todo = append(todo, target{i, rel})
	}
	src := newSource(job, len(todo))
	for _, t := range todo {
		rc := job.Rcpts[t.i]
		if err := ctx.Err(); err != nil {
			res[t.i] = cancelled(rc, err)
			continue
		}
		res[t.i] = m.deliverOne(ctx, job.From, rc, t.rel, src)
	}
	for i, f := range dup {
		res[i] = res[f]
		res[i].Rcpt = job.Rcpts[i]
	}
	return res
}

// deliverOne writes one recipient's copy.
func (m *Maildir) deliverOne(ctx context.Context, from, rcpt, rel string, src *source) delivery.Result {
	fail := func(err error) delivery.Result {
		if cerr := ctx.Err(); cerr != nil {
			return cancelled(rcpt, cerr)
		}
		return delivery.TempFail(rcpt, "4.3.0", "cannot deliver to Maildir %s: %v", rel, err)
	}
	dir := filepath.Join(m.Root, rel)
	for _, sub := range [...]string{"tmp", "new", "cur"} {
		if err := mkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return fail(err)
		}
	}
	msg, err := src.open()
	if err != nil {
		return fail(fmt.Errorf("reading the message: %w", err))
	}
	defer msg.Close()

	f, name, err := createUnique(filepath.Join(dir, "tmp"))
	if err != nil {
		return fail(err)
	}
	tmp := f.Name()
	hdr := "Return-Path: <" + from + ">\r\nDelivered-To: " + rcpt + "\r\n"
	err = writeFile(ctx, f, hdr, msg, src.buf)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fail(err)
	}
	newDir := filepath.Join(dir, "new")
	final, err := publish(tmp, newDir, name)
	if err != nil {
		os.Remove(tmp)
		return fail(err)
	}
	if err := syncDir(newDir); err != nil {
		// Not known to be durable: take it back, a retry delivers it again.
		os.Remove(filepath.Join(newDir, final))
		return fail(err)
	}
	return delivery.Delivered(rcpt, "delivered to Maildir "+filepath.Join(rel, "new", final))
}

// writeFile writes hdr then the message: buf when the message is in
// memory, else what msg yields.
func writeFile(ctx context.Context, f *os.File, hdr string, msg io.Reader, buf []byte) error {
	if buf != nil {
		if _, err := f.Write(append([]byte(hdr), buf...)); err != nil {
			return err
		}
		return nil
	}
	return streamFile(ctx, f, hdr, msg)
}

// writers are the buffers of streamFile, kept between deliveries.
var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

// streamFile writes hdr then what msg yields to f, through a buffer.
func streamFile(ctx context.Context, f *os.File, hdr string, msg io.Reader) error {
	w := writers.Get().(*bufio.Writer)
	w.Reset(f)
	defer func() {
		w.Reset(nil)
		writers.Put(w)
	}()
	w.WriteString(hdr)
	if _, err := w.ReadFrom(ctxReader{ctx, msg}); err != nil {
		return err
	}
	return w.Flush()
}

// createUnique creates a new file in dir under a Maildir unique name.
func createUnique(dir string) (*os.File, string, error) {
	var err error
	for try := 0; try < 10; try++ {
		name := uniqueName()
		var f *os.File
		f, err = os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			return f, name, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	return nil, "", err
}

// publish moves tmp into newDir as name, or under a fresh unique name if
// name is taken there; it returns the name used.
func publish(tmp, newDir, name string) (string, error) {
	var err error
	for try := 0; try < 10; try++ {
		if err = linkOrRename(tmp, filepath.Join(newDir, name)); err == nil {
			return name, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			break
		}
		name = uniqueName()
	}
	return "", err
}

var (
	deliveries atomic.Uint64 // the Q counter of unique names
	hostPart   = sync.OnceValue(func() string {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		return EscapeHostname(h)
	})
)

// uniqueName is a Maildir unique name:
// "<unix seconds>.M<microseconds>P<pid>Q<counter>.<hostname>".
func uniqueName() string {
	now := time.Now()
	b := make([]byte, 0, 64)
	b = strconv.AppendInt(b, now.Unix(), 10)
	b = append(b, ".M"...)
	b = strconv.AppendInt(b, int64(now.Nanosecond()/1000), 10)
	b = append(b, 'P')
	b = strconv.AppendInt(b, int64(os.Getpid()), 10)
	b = append(b, 'Q')
	b = strconv.AppendUint(b, deliveries.Add(1), 10)
	b = append(b, '.')
	b = append(b, hostPart()...)
	return string(b)
}

// EscapeHostname writes a host name as the last part of a Maildir unique
// name: "/" becomes "\057" and ":" becomes "\072", as the Maildir spec
// says.
func EscapeHostname(h string) string {
	return strings.NewReplacer("/", `\057`, ":", `\072`).Replace(h)
}

// source yields the job's message for each recipient: from memory when
// it was read once (buf != nil), else opened again each time.
type source struct {
	job *delivery.Job
	buf []byte
	err error // the error of reading it into memory
}

// newSource reads the message into memory when more than one recipient
// needs it and it is no larger than bufferLimit.
func newSource(job *delivery.Job, n int) *source {
	s := &source{job: job}
	if n < 2 || job.Size > bufferLimit {
		return s
	}
	rc, err := openMessage(job)
	if err != nil {
		s.err = err
		return s
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, bufferLimit+1))
	switch {
	case err != nil:
		s.err = err
	case len(data) <= bufferLimit:
		if data == nil {
			data = []byte{}
		}
		s.buf = data
	}
	return s
}

// open returns a reader of the message from its first byte.
func (s *source) open() (io.ReadCloser, error) {
	if s.err != nil {
		return nil, s.err
	}
	if s.buf != nil {
		return io.NopCloser(bytes.NewReader(s.buf)), nil
	}
	return openMessage(s.job)
}
