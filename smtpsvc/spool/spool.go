// Package spool writes accepted mail durably into a virtual server's
// QueueDirectory, one file per message, before the server says 250.
//
// # Format
//
// A spool file is named "<id>.eml", where id is unique within the folder
// (time, process and a counter: "19b2c4e1a0f3c000-1f4a-000001"). It holds an
// envelope block, an empty line, then the message exactly as the server
// stores it (its own Received header first, then the data as received, with
// CRLF line ends):
//
//	X-DS2MB-Envelope-From: <sender@example.org> BODY=8BITMIME RET=HDRS ENVID=abc
//	X-DS2MB-Envelope-To: <rcpt1@example.com> NOTIFY=FAILURE ORCPT=rfc822;rcpt1@example.com
//	X-DS2MB-Envelope-To: <rcpt2@example.com>
//	X-DS2MB-Client: [192.0.2.7] helo=client.example.org ptr=client.example.org auth=alice
//	X-DS2MB-Received-At: 2026-11-26T01:02:03.456789Z
//	X-DS2MB-Instance: 1
//	X-DS2MB-Kind: dsn
//
//	Received: from client.example.org ([192.0.2.7]) by mail.example.com ...
//	...message...
//
// Envelope lines end in CRLF; the sender is "<>" for a null reverse path; one
// X-DS2MB-Envelope-To line per recipient, in RCPT order. ESMTP parameters
// follow the address, space-separated, in their SMTP form (xtext values as
// received). X-DS2MB-Kind appears only on mail the server wrote itself
// (Envelope.Kind). Read parses the envelope block back; lines it does not
// know are skipped, so that a newer worker's spool stays readable.
//
// # Durability
//
// A message is written to a temporary file in the queue folder with one
// write (buffered), the file's data and length are synced (fdatasync on
// Linux, fsync elsewhere), it is given its name "<id>.eml" and the folder
// is fsynced; only then does Commit return, and only then does the
// server reply 250. A "<id>.eml" file is therefore always complete.
//
// On Linux the temporary file is unnamed (O_TMPFILE) and is named with
// linkat(2) through /proc/self/fd: one folder operation instead of a create
// and a rename, and a crash leaves nothing behind. Where that is not
// available the file is ".tmp-<id>", renamed to "<id>.eml"; files whose name
// starts with ".tmp-" are incomplete and are never delivered (a crash leaves
// them behind; Open removes the ones older than an hour).
//
// A delivered message's file is not deleted but renamed ".tmp-free-…"
// (Spool.Remove) and written over by a later message, cut to its length
// when it is shorter, synced and renamed "<id>.eml" like any other:
// allocating an inode and freeing the blocks (a discard, on a file system
// mounted with discard) cost more than the two renames. A kept file is
// written over only after a folder sync that began after its rename has
// succeeded, so that no crash can bring back the delivered message's name
// on a file half written over.
package spool

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Envelope is the SMTP envelope of a spooled message.
type Envelope struct {
	From       string   // reverse path without brackets; "" = null sender
	FromParams string   // MAIL parameters, SMTP form ("BODY=8BITMIME RET=HDRS")
	To         []string // recipients in RCPT order
	ToParams   []string // RCPT parameters per recipient (may be shorter than To)
	Client     string   // X-DS2MB-Client value
	ReceivedAt time.Time
	Instance   int // virtual server
	// Kind marks mail this server wrote itself: "dsn" (a delivery status
	// notification), "badmail-notice" (to SendBadTo); "" = received mail.
	Kind string
}

// Spool is one queue folder.
type Spool struct {
	dir     string
	dirf    *os.File
	prefix  string // process-unique part of ids
	unnamed bool   // temporary files are O_TMPFILE
	seq     atomic.Uint64
	folder  *folder // shared with the process's other spools on the folder
}

// maxFree bounds the delivered messages' files a folder keeps for reuse.
const maxFree = 256

// folder is what the spools of one process on one queue folder share (the
// sessions' and the queue's are distinct Spools): the folder's fsync, so
// that one covers the names either made, and the files kept for reuse, so
// that a file one removes the other writes again.
type folder struct {
	fi    os.FileInfo // the folder's identity
	group groupSync
	mu    sync.Mutex
	kept  []keptFile
}

// keptFile is a ".tmp-free-…" file and the first folder sync that makes
// its new name durable: until that sync has succeeded, a crash could bring
// back the delivered message's name on a file being written over, so the
// file is not reused before.
type keptFile struct {
	name string
	want uint64 // generation of groupSync
	size int64  // its length, or -1 if unknown
}

var (
	foldersMu sync.Mutex
	folders   = map[string]*folder{} // cleaned path → the folder last opened there
)

// folderOf returns the shared state of the folder fi is, at path dir.
func folderOf(dir string, fi os.FileInfo) *folder {
	foldersMu.Lock()
	defer foldersMu.Unlock()
	dir = filepath.Clean(dir)
	if f := folders[dir]; f != nil && os.SameFile(f.fi, fi) {
		return f
	}
	f := &folder{fi: fi}
	folders[dir] = f
	return f
}

// livePrefixes holds the id prefixes of the spools this process opened.
var livePrefixes sync.Map

// ownFree reports whether name is a ".tmp-free-<prefix>-<n>" file of a
// spool of this process: its mtime is that of the message it last held,
// so the hour-old rule of Open must not remove it.
func ownFree(name string) bool {
	rest, ok := strings.CutPrefix(name, ".tmp-free-")
	if i := strings.LastIndexByte(rest, '-'); ok && i > 0 {
		_, live := livePrefixes.Load(rest[:i])
		return live
	}
	return false
}

// spoolSeq makes the id prefixes of the spools of one process distinct.
var spoolSeq atomic.Uint64

var bufPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

// Open opens (creating it if needed) a queue folder, and removes temporary
// files older than an hour.
func Open(dir string) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	s := &Spool{dir: dir, dirf: f, unnamed: probeUnnamed(dir), folder: folderOf(dir, fi),
		prefix: strconv.FormatInt(time.Now().UnixNano(), 16) + "-" + strconv.FormatInt(int64(os.Getpid()), 16) +
			"-" + strconv.FormatUint(spoolSeq.Add(1), 16)}
	livePrefixes.Store(s.prefix, true)
	if ents, err := os.ReadDir(dir); err == nil {
		for _, e := range ents {
			if ownFree(e.Name()) {
				continue // kept for reuse by a spool of this process, maybe being written
			}
			if strings.HasPrefix(e.Name(), ".tmp-") {
				if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
					os.Remove(filepath.Join(dir, e.Name()))
				}
			}
		}
	}
	return s, nil
}

// Current reports whether the folder path still names the folder the
// spool holds open (it was not removed, moved or replaced since Open).
func (s *Spool) Current() bool {
	a, err1 := os.Stat(s.dir)
	b, err2 := s.dirf.Stat()
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

// Dir is the queue folder.
func (s *Spool) Dir() string { return s.dir }

// Close releases the folder handle. Messages in progress must be finished first.
func (s *Spool) Close() error { return s.dirf.Close() }

// KeepInMemory is the largest message whose committed Stored (Message.Stored)
// holds a copy of its content, so that its first delivery does not read the
// file back.
const KeepInMemory = 64 << 10

// Message is a message being written. It is not safe for concurrent use.
type Message struct {
	s       *Spool
	id      string
	f       *os.File
	w       *bufio.Writer
	err     error
	done    bool
	named   bool  // f is ".tmp-<id>" or a reused ".tmp-free-…" (else unnamed)
	oldSize int64 // f's length before: 0 if new, -1 if unknown; Commit cuts what lies past the message

	env    Envelope
	offset int64  // length of the envelope block
	size   int64  // message bytes written after it
	kept   []byte // the message so far, while it is at most KeepInMemory bytes
	over   bool   // it grew past KeepInMemory: kept is nil
	path   string // final name, once committed
}

// Remove takes a delivered message's file out of the queue. The file is
// kept under a temporary name for Create to write the next message into
// (up to maxFree of them), so that a message costs neither an inode's
// allocation nor freeing its blocks (a discard, on a file system mounted
// with discard); it is written over only once a folder sync begun after
// the rename has succeeded (the next Commit's). Beyond maxFree, or for a
// file of another folder, it is deleted. A file that is not there is not
// an error.
func (s *Spool) Remove(path string) error { return s.remove(path, -1) }

// RemoveStored is Remove for a committed message whose length Stored
// gives, so that the next message written over its file need not cut it
// when it is no shorter.
func (s *Spool) RemoveStored(st *Stored) error { return s.remove(st.Path, st.Offset+st.Size) }

func (s *Spool) remove(path string, size int64) error {
	if filepath.Dir(path) == filepath.Clean(s.dir) {
		fo := s.folder
		fo.mu.Lock()
		room := len(fo.kept) < maxFree
		fo.mu.Unlock()
		if room {
			name := filepath.Join(s.dir, ".tmp-free-"+s.prefix+"-"+strconv.FormatUint(s.seq.Add(1), 10))
			want := fo.group.next()
			err := rename(path, name)
			if err == nil {
				fo.mu.Lock()
				fo.kept = append(fo.kept, keptFile{name, want, size})
				fo.mu.Unlock()
				return nil
			}
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// reuse opens a kept file whose new name is durable for writing, with its
// length (-1 if unknown), or returns nil.
func (s *Spool) reuse() (*os.File, int64) {
	fo := s.folder
	synced := fo.group.succeeded()
	for {
		fo.mu.Lock()
		i := len(fo.kept) - 1
		for i >= 0 && fo.kept[i].want > synced {
			i--
		}
		if i < 0 {
			fo.mu.Unlock()
			return nil, 0
		}
		k := fo.kept[i]
		fo.kept = append(fo.kept[:i], fo.kept[i+1:]...)
		fo.mu.Unlock()
		if f, err := openFile(k.name, os.O_WRONLY, 0); err == nil {
			return f, k.size
		}
	}
}

// Create starts a message with its envelope.
func (s *Spool) Create(env *Envelope) (*Message, error) {
	id := s.prefix + "-" + strconv.FormatUint(s.seq.Add(1), 10)
	f, oldSize := s.reuse()
	reused := f != nil
	if f == nil && s.unnamed {
		f, _ = openUnnamed(s.dir)
	}
	if f == nil {
		var err error
		f, err = openFile(filepath.Join(s.dir, ".tmp-"+id), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		if err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
	}
	w := bufPool.Get().(*bufio.Writer)
	w.Reset(f)
	m := &Message{s: s, id: id, f: f, w: w, named: reused || !s.unnamed || !strings.HasSuffix(f.Name(), "(unnamed)"), oldSize: oldSize, env: *env}
	// Its own copy, as Read would give it (one parameter string per
	// recipient): callers reuse their slices for the next transaction.
	m.env.To = slices.Clone(env.To)
	m.env.ToParams = make([]string, len(env.To))
	copy(m.env.ToParams, env.ToParams)
	var hb [1024]byte
	head := appendEnvelope(hb[:0], env)
	w.Write(head)
	m.offset = int64(len(head))
	return m, nil
}

// appendEnvelope appends the envelope block of a spool file to b.
func appendEnvelope(b []byte, env *Envelope) []byte {
	b = append(b, "X-DS2MB-Envelope-From: <"...)
	b = append(b, env.From...)
	b = append(b, '>')
	if env.FromParams != "" {
		b = append(b, ' ')
		b = append(b, env.FromParams...)
	}
	b = append(b, "\r\n"...)
	for i, to := range env.To {
		b = append(b, "X-DS2MB-Envelope-To: <"...)
		b = append(b, to...)
		b = append(b, '>')
		if i < len(env.ToParams) && env.ToParams[i] != "" {
			b = append(b, ' ')
			b = append(b, env.ToParams[i]...)
		}
		b = append(b, "\r\n"...)
	}
	if env.Client != "" {
		b = append(b, "X-DS2MB-Client: "...)
		b = append(b, env.Client...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "X-DS2MB-Received-At: "...)
	b = env.ReceivedAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, "\r\nX-DS2MB-Instance: "...)
	b = strconv.AppendInt(b, int64(env.Instance), 10)
	if env.Kind != "" {
		b = append(b, "\r\nX-DS2MB-Kind: "...)
		b = append(b, env.Kind...)
	}
	return append(b, "\r\n\r\n"...)
}

// note records message bytes as they are written: their count, and a copy
// while the message is small enough to keep.
func note[T string | []byte](m *Message, p T) {
	m.size += int64(len(p))
	if m.over {
		return
	}
	if len(m.kept)+len(p) > KeepInMemory {
		m.kept, m.over = nil, true
		return
	}
	if m.kept == nil {
		m.kept = make([]byte, 0, 8<<10) // most mail fits: no growing by doubling
	}
	m.kept = append(m.kept, p...)
}

// noteWriter feeds note from a TeeReader.
type noteWriter struct{ m *Message }

func (n noteWriter) Write(p []byte) (int, error) { note(n.m, p); return len(p), nil }

// ID is the message's queue id (its file name without ".eml").
func (m *Message) ID() string { return m.id }

// Write appends message data.
func (m *Message) Write(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	n, err := m.w.Write(p)
	note(m, p[:n])
	if err != nil {
		m.err = fmt.Errorf("spool: %w", err)
	}
	return n, m.err
}

// WriteString appends message data.
func (m *Message) WriteString(s string) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	n, err := m.w.WriteString(s)
	note(m, s[:n])
	if err != nil {
		m.err = fmt.Errorf("spool: %w", err)
	}
	return n, m.err
}

// ReadFrom appends everything r yields.
func (m *Message) ReadFrom(r io.Reader) (int64, error) {
	if m.err != nil {
		return 0, m.err
	}
	// A write error also sticks in the buffered writer, so Commit fails.
	return m.w.ReadFrom(io.TeeReader(r, noteWriter{m}))
}

// Content reads back the message data written so far (what follows the
// envelope), for event sinks that look at a message before it is
// committed.
func (m *Message) Content() ([]byte, error) {
	if m.done {
		return nil, errors.New("spool: message already finished")
	}
	if m.err != nil {
		return nil, m.err
	}
	if !m.over {
		// Kept in memory: no flush and no read back (a copy, so that
		// whatever the caller does with it leaves the kept one alone).
		return append([]byte{}, m.kept...), nil
	}
	if err := m.w.Flush(); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	name := m.f.Name()
	if !m.named {
		name = fmt.Sprintf("/proc/self/fd/%d", m.f.Fd())
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	end := m.offset + m.size // a reused file holds its last message past ours
	if int64(len(data)) < end {
		return nil, fmt.Errorf("spool: %s holds %d bytes, want %d", name, len(data), end)
	}
	return data[m.offset:end], nil
}

// Commit makes the message durable: flush, fdatasync the file, rename it to its
// final name, fsync the folder. It returns the message's path.
func (m *Message) Commit() (string, error) {
	if m.done {
		return "", errors.New("spool: message already finished")
	}
	m.done = true
	defer m.release()
	tmp := m.f.Name()
	fail := func(err error) (string, error) {
		m.f.Close()
		if m.named {
			os.Remove(tmp)
		}
		return "", fmt.Errorf("spool: %w", err)
	}
	if m.err != nil {
		return fail(m.err)
	}
	if err := m.w.Flush(); err != nil {
		return fail(err)
	}
	if n := m.offset + m.size; m.oldSize < 0 || m.oldSize > n {
		if err := m.f.Truncate(n); err != nil {
			return fail(err)
		}
	}
	if err := syncData(m.f); err != nil {
		return fail(err)
	}
	final := filepath.Join(m.s.dir, m.id+".eml")
	if !m.named {
		if err := linkUnnamed(m.f, final); err != nil {
			return fail(err)
		}
		m.f.Close()
	} else {
		if err := m.f.Close(); err != nil {
			os.Remove(tmp)
			return "", fmt.Errorf("spool: %w", err)
		}
		if err := rename(tmp, final); err != nil {
			os.Remove(tmp)
			return "", fmt.Errorf("spool: %w", err)
		}
	}
	if err := m.s.syncDir(); err != nil {
		// The file is complete but its name may not survive a crash: take
		// it back so the client retries and nothing is delivered twice.
		os.Remove(final)
		return "", fmt.Errorf("spool: fsync %s: %w", m.s.dir, err)
	}
	m.path = final
	return final, nil
}

// Stored describes the message once Commit has succeeded, as Load would
// read it back, with its content in memory when it is at most
// KeepInMemory bytes (Stored.Open then reads no file); nil before.
func (m *Message) Stored() *Stored {
	if m.path == "" {
		return nil
	}
	return &Stored{ID: m.id, Path: m.path, Envelope: &m.env, Offset: m.offset, Size: m.size, data: m.kept}
}

// Abort discards the message.
func (m *Message) Abort() {
	if m.done {
		return
	}
	m.done = true
	m.f.Close()
	if m.named {
		os.Remove(m.f.Name())
	}
	m.release()
}

func (m *Message) release() {
	if m.path == "" {
		m.kept = nil
	}
	m.w.Reset(nil)
	bufPool.Put(m.w)
	m.w = nil
}

// syncDir fsyncs the folder, sharing the fsync among concurrent callers
// (group commit). On ext4 without a journal every fsync is a device cache
// flush; with 20 sessions committing, one flush covers several names
// (measured: fewer CPU per message and more messages/s, README).
func (s *Spool) syncDir() error { return s.folder.group.do(s.dirf.Sync) }

// do calls run so that every caller returns only after a call of run that
// started after the caller called do, and returns that run's error. A
// caller that arrives while a run is under way does not start its own: it
// waits for the next run, which one of the waiters starts for all of them.
func (g *groupSync) do(run func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cond == nil {
		g.cond = sync.NewCond(&g.mu)
	}
	want := g.started + 1 // the first run to start from now on covers us
	for g.done < want {
		if g.running {
			g.cond.Wait()
			continue
		}
		g.running = true
		g.started++
		gen := g.started
		g.mu.Unlock()
		err := run()
		g.mu.Lock()
		g.running, g.done = false, gen
		if err != nil {
			g.failed, g.err = gen, err
		} else {
			g.ok = gen
		}
		g.cond.Broadcast()
	}
	if g.failed >= want {
		return g.err
	}
	return nil
}

// groupSync shares one operation among concurrent callers (syncDir).
type groupSync struct {
	mu            sync.Mutex
	cond          *sync.Cond
	running       bool
	started, done uint64 // generations of the last sync started and ended
	failed        uint64 // generation of the last sync that failed
	err           error  // its error
	ok            uint64 // generation of the last sync that succeeded
}

// next is the generation of the first run to start from now on: once a
// run of that generation or later has succeeded (succeeded), what was done
// before this call is covered.
func (g *groupSync) next() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.started + 1
}

// succeeded is the generation of the last run that succeeded.
func (g *groupSync) succeeded() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ok
}

// Read parses the envelope block of a spool file from r, leaving r at the
// first byte of the message.
func Read(r *bufio.Reader) (*Envelope, error) {
	env := &Envelope{}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("spool: envelope: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return env, nil
		}
		name, val, ok := strings.Cut(line, ": ")
		if !ok {
			return nil, fmt.Errorf("spool: envelope line %q", line)
		}
		switch name {
		case "X-DS2MB-Envelope-From":
			env.From, env.FromParams = splitPath(val)
		case "X-DS2MB-Envelope-To":
			a, p := splitPath(val)
			env.To = append(env.To, a)
			env.ToParams = append(env.ToParams, p)
		case "X-DS2MB-Client":
			env.Client = val
		case "X-DS2MB-Received-At":
			t, err := time.Parse(time.RFC3339Nano, val)
			if err != nil {
				return nil, fmt.Errorf("spool: envelope: %w", err)
			}
			env.ReceivedAt = t
		case "X-DS2MB-Kind":
			env.Kind = val
		case "X-DS2MB-Instance":
			n, err := strconv.Atoi(val)
			if err != nil {
				return nil, fmt.Errorf("spool: envelope: %w", err)
			}
			env.Instance = n
		}
	}
}

func splitPath(v string) (addr, params string) {
	end := strings.IndexByte(v, '>')
	if !strings.HasPrefix(v, "<") || end < 0 {
		return v, ""
	}
	return v[1:end], strings.TrimSpace(v[end+1:])
}

// Stored is one spool file as found on disk: its envelope, and where the
// message starts in it.
type Stored struct {
	ID       string // the file name without ".eml"
	Path     string
	Envelope *Envelope
	Offset   int64 // first byte of the message in the file
	Size     int64 // bytes of the message (file size less Offset)

	data []byte // the message, when kept from its Commit; nil = in the file only
}

// Load reads the envelope block of a spool file.
func Load(path string) (*Stored, error) {
	f, err := openFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	cr := &countReader{r: f}
	br := bufio.NewReaderSize(cr, 4096)
	env, err := Read(br)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	off := cr.n - int64(br.Buffered())
	name := filepath.Base(path)
	return &Stored{ID: strings.TrimSuffix(name, ".eml"), Path: path, Envelope: env, Offset: off, Size: fi.Size() - off}, nil
}

// Open returns the message of a stored spool file from its first byte.
func (s *Stored) Open() (io.ReadCloser, error) {
	if s.data != nil {
		return io.NopCloser(bytes.NewReader(s.data)), nil
	}
	f, err := openFile(s.Path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, s.Offset, s.Size), f}, nil
}

// Release drops the copy of the message kept from its Commit, so that a
// message waiting for a retry holds no memory; Open reads the file from
// then on. It must not run while an Open of s may.
func (s *Stored) Release() { s.data = nil }

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// List returns the ids of the complete messages in the folder ("<id>.eml"),
// in name order.
func (s *Spool) List() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasSuffix(n, ".eml") && !strings.HasPrefix(n, ".") && e.Type().IsRegular() {
			ids = append(ids, strings.TrimSuffix(n, ".eml"))
		}
	}
	return ids, nil
}

// Path is the file of a message id.
func (s *Spool) Path(id string) string { return filepath.Join(s.dir, id+".eml") }
