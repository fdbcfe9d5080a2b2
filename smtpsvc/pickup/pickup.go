// Package pickup submits the files dropped into each virtual server's
// Pickup folder (PickupDirectory), as IIS's SMTP service did: any RFC 5322
// message, its envelope from leading "x-sender:"/"x-receiver:" lines when
// present, else from its Sender/From and To/Cc/Bcc headers (Parse).
//
// A good file is spooled through the queue (Submitter) like mail received
// over SMTP, and removed only once its spool file is durable: a crash in
// between submits it again (at least once, never lost). A file that cannot
// be read as mail goes to BadMailDirectory as "pickup-<name>.BAD" with the
// reason (line and what is wrong) in its .BDR, and is then removed. A file
// that could not be submitted (the queue folder is full or unwritable)
// stays and is tried again on the next poll.
//
// Mail from Pickup is trusted like a local submission: anyone who may
// write the folder may send anywhere, so the folder must be writable only
// by those who may. Writers should create the file elsewhere on the same
// file system (or under a name starting with "." or ending in ".tmp",
// which are ignored) and rename it in; a file still being written is
// also left alone until it has not changed for Options.Settle.
package pickup

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/ds2mb/ds2mb/smtpsvc/badmail"
	"github.com/ds2mb/ds2mb/smtpsvc/config"
	"github.com/ds2mb/ds2mb/smtpsvc/events"
	"github.com/ds2mb/ds2mb/smtpsvc/spool"
)

// Defaults for Options.
const (
	DefaultPoll   = 5 * time.Second
	DefaultSettle = 100 * time.Millisecond
)

// Submitter spools a message and queues it for delivery (the queue
// manager's Submit); it returns the queue id once the message is durable.
type Submitter interface {
	Submit(instance int, env *spool.Envelope, body io.Reader) (string, error)
}

// Options configure a Manager.
type Options struct {
	Submitter Submitter    // required
	Logger    *slog.Logger // nil = slog.Default()
	// Poll is how often every folder is read again, a safety net for
	// missed events and the retry of files that could not be submitted;
	// 0 = DefaultPoll.
	Poll time.Duration
	// Events returns a virtual server's event-sink dispatcher: the
	// transport events fire on Pickup mail before it is spooled, as on
	// mail received over SMTP. nil, or a nil result, = none.
	Events func(instance int) *events.Dispatcher
	// Settle: a file changed less than this long ago is left for later,
	// since it may still be being written; 0 = DefaultSettle.
	Settle time.Duration
}

// Stats count what the Pickup folders produced.
type Stats struct {
	Submitted int64 // files spooled
	Rejected  int64 // files put in Badmail
}

// Manager runs one watcher per Pickup folder of the current configuration.
type Manager struct {
	o   Options
	log *slog.Logger

	mu      sync.Mutex
	ctx     context.Context // nil until Run
	wg      sync.WaitGroup
	folders map[string]*folder // by folder path
	want    map[string]*config.VirtualServer
	stats   Stats
}

// New returns a Manager; it watches nothing until Update and Run.
func New(o Options) *Manager {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.Settle <= 0 {
		o.Settle = DefaultSettle
	}
	return &Manager{o: o, log: o.Logger, folders: map[string]*folder{}}
}

// Stats returns the counts so far.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// events is the dispatcher of a virtual server, nil for none.
func (m *Manager) events(instance int) *events.Dispatcher {
	if m.o.Events == nil {
		return nil
	}
	return m.o.Events(instance)
}

// Update makes the Manager watch the Pickup folders of cfg's virtual
// servers: new folders are watched, folders no longer named are left. Two
// virtual servers naming one folder share it; the lower instance number
// submits its files.
func (m *Manager) Update(cfg *config.Config) {
	want := map[string]*config.VirtualServer{}
	for _, vs := range cfg.Servers {
		if vs.PickupDir == "" {
			continue
		}
		dir := filepath.Clean(vs.PickupDir)
		if cur, ok := want[dir]; !ok || vs.Instance < cur.Instance {
			want[dir] = vs
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.want = want
	m.reconcile()
}

// reconcile starts and stops folder watchers to match m.want; m.mu held.
func (m *Manager) reconcile() {
	if m.ctx == nil {
		return
	}
	for dir, f := range m.folders {
		if _, ok := m.want[dir]; !ok {
			f.cancel()
			delete(m.folders, dir)
		}
	}
	for dir, vs := range m.want {
		if f, ok := m.folders[dir]; ok {
			f.setServer(vs)
			continue
		}
		ctx, cancel := context.WithCancel(m.ctx)
		f := &folder{m: m, dir: dir, vs: vs, cancel: cancel, failed: map[string]time.Time{}}
		m.folders[dir] = f
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			f.run(ctx)
		}()
	}
}

// Run watches the folders until ctx ends, then waits for the file being
// submitted, if any, to finish.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	m.ctx = ctx
	m.reconcile()
	m.mu.Unlock()
	<-ctx.Done()
	// No new watcher may start once Run is waiting for the old ones: an
	// Update racing with shutdown would otherwise Add to the WaitGroup
	// while Wait runs.
	m.mu.Lock()
	m.ctx = nil
	m.mu.Unlock()
	m.wg.Wait()
	m.mu.Lock()
	m.folders = map[string]*folder{}
	m.mu.Unlock()
	return nil
}

// folder is one watched Pickup folder.
type folder struct {
	m      *Manager
	dir    string
	cancel context.CancelFunc

	mu sync.Mutex
	vs *config.VirtualServer
	// failed holds files that could not be submitted or put in Badmail,
	// with the modification time they had: they are tried again on the
	// poll, not on every event.
	failed map[string]time.Time
}

func (f *folder) setServer(vs *config.VirtualServer) {
	f.mu.Lock()
	f.vs = vs
	f.mu.Unlock()
}

func (f *folder) server() *config.VirtualServer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.vs
}

func (f *folder) run(ctx context.Context) {
	log := f.m.log.With("folder", f.dir)
	if err := os.MkdirAll(f.dir, 0o750); err != nil {
		log.Warn("pickup folder cannot be created; polling it", "err", err)
	}
	events := make(<-chan fsnotify.Event)
	errs := make(<-chan error)
	if w, err := fsnotify.NewWatcher(); err != nil {
		log.Warn("pickup folder cannot be watched; polling it", "err", err)
	} else {
		defer w.Close()
		if err := w.Add(f.dir); err != nil {
			log.Warn("pickup folder cannot be watched; polling it", "err", err)
		} else {
			events, errs = w.Events, w.Errors
		}
	}
	poll := time.NewTicker(f.m.o.Poll)
	defer poll.Stop()
	settle := time.NewTimer(0) // an initial scan
	for {
		select {
		case <-ctx.Done():
			settle.Stop()
			return
		case ev := <-events:
			if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Write) {
				settle.Reset(f.m.o.Settle)
			}
		case err := <-errs:
			log.Warn("pickup folder watch", "err", err)
			settle.Reset(f.m.o.Settle)
		case <-settle.C:
			if wait := f.scan(ctx, false); wait > 0 {
				settle.Reset(wait)
			}
		case <-poll.C:
			if wait := f.scan(ctx, true); wait > 0 {
				settle.Reset(wait)
			}
		}
	}
}

// scan takes every file in the folder that is ready; it returns how long
// to wait for files that are still changing (0 = none).
func (f *folder) scan(ctx context.Context, retry bool) time.Duration {
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		f.m.log.Warn("pickup folder unreadable", "folder", f.dir, "err", err)
		return 0
	}
	var wait time.Duration
	for _, e := range entries {
		if ctx.Err() != nil {
			return 0
		}
		name := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".tmp") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // gone meanwhile
		}
		if age := time.Since(info.ModTime()); age < f.m.o.Settle {
			wait = max(wait, f.m.o.Settle-age)
			continue
		}
		if at, ok := f.failed[name]; ok && !retry && at.Equal(info.ModTime()) {
			continue
		}
		if f.take(name, info) {
			delete(f.failed, name)
		} else {
			f.failed[name] = info.ModTime()
		}
	}
	return wait
}

// take submits or rejects one file; false = it stays for a later try.
func (f *folder) take(name string, info os.FileInfo) bool {
	vs := f.server()
	log := f.m.log.With("folder", f.dir, "file", name)
	path := filepath.Join(f.dir, name)
	if vs.MaxMessageSize > 0 && info.Size() > vs.MaxMessageSize {
		return f.reject(vs, name, path, nil, fmt.Sprintf("%d bytes, more than MaxMessageSize (%d)", info.Size(), vs.MaxMessageSize))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return true
		}
		log.Warn("pickup file unreadable; left in place", "err", err)
		return false
	}
	now := time.Now()
	msg, err := Parse(data, ParseOptions{DotStuffed: vs.PickupDotStuffed, Hostname: vs.FQDN, Now: now,
		ID: fmt.Sprintf("%d.%d", now.UnixNano(), info.Size())})
	if err != nil {
		return f.reject(vs, name, path, data, err.Error())
	}
	env := &spool.Envelope{From: msg.From, To: msg.To, Client: "pickup file=" + safeName(name), ReceivedAt: now}
	var params []string
	if msg.EightBit {
		params = append(params, "BODY=8BITMIME")
	}
	if msg.UTF8 {
		params = append(params, "SMTPUTF8")
	}
	env.FromParams = strings.Join(params, " ")
	content := append([]byte(receivedHeader(vs.FQDN, name, now)), msg.Data...)
	if d := f.m.events(vs.Instance); d.HasTransport() {
		mm := events.NewMailMsg(env.From, append([]string(nil), env.To...), func() ([]byte, error) { return content, nil })
		mm.FromParams, mm.Pickup = env.FromParams, name
		mm.Fields["pickupfilename"] = name
		d.RunTransport(context.Background(), vs.Instance, nil, mm)
		switch {
		case mm.Status == events.Badmail:
			return f.reject(vs, name, path, data, "an event sink set the message status to Badmail: "+mm.Reason)
		case mm.Status == events.Discard || len(mm.To) == 0:
			if err := f.remove(path); err != nil {
				log.Error("pickup file discarded by an event sink but not removed", "err", err)
				return false
			}
			log.Info("pickup file discarded by an event sink", "reason", mm.Reason)
			return true
		}
		if content, err = mm.Data(); err != nil {
			log.Warn("pickup file not submitted; left in place", "err", err)
			return false
		}
		env.From, env.FromParams, env.To, env.ToParams = mm.From, mm.FromParams, mm.To, mm.ToParams
	}
	id, err := f.m.o.Submitter.Submit(vs.Instance, env, bytes.NewReader(content))
	if err != nil {
		log.Warn("pickup file not submitted; left in place", "err", err)
		return false
	}
	if err := f.remove(path); err != nil {
		// Spooled but still here: it would be submitted again.
		log.Error("pickup file submitted but not removed; it will be sent again", "id", id, "err", err)
		return false
	}
	f.m.mu.Lock()
	f.m.stats.Submitted++
	f.m.mu.Unlock()
	log.Info("pickup file submitted", "id", id, "from", msg.From, "rcpts", len(msg.To))
	return true
}

// reject puts a file in Badmail with the reason and removes it; data nil
// = copy the file as it is.
func (f *folder) reject(vs *config.VirtualServer, name, path string, data []byte, reason string) bool {
	log := f.m.log.With("folder", f.dir, "file", name)
	var src io.Reader
	if data != nil {
		src = bytes.NewReader(data)
	} else {
		fh, err := os.Open(path)
		if err != nil {
			log.Warn("pickup file unreadable; left in place", "err", err)
			return false
		}
		defer fh.Close()
		src = fh
	}
	entry := badmail.Entry{ID: badmailID(name), Reason: "Pickup file " + safeName(name) + ": " + reason}
	if err := badmail.Write(vs.BadMailDir, entry, src); err != nil {
		log.Error("pickup file refused but Badmail failed; left in place", "reason", reason, "err", err)
		return false
	}
	if err := f.remove(path); err != nil {
		log.Error("pickup file in Badmail but not removed", "err", err)
		return false
	}
	f.m.mu.Lock()
	f.m.stats.Rejected++
	f.m.mu.Unlock()
	log.Warn("pickup file refused; moved to Badmail", "reason", reason, "badmail", vs.BadMailDir)
	return true
}

// remove deletes a file and makes the removal durable.
func (f *folder) remove(path string) error {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	d, err := os.Open(f.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// receivedHeader is the trace header of a Pickup submission.
func receivedHeader(fqdn, name string, now time.Time) string {
	return "Received: from Pickup folder (file " + safeName(name) + ")\r\n\tby " + fqdn +
		" with local-file;\r\n\t" + now.Format(time.RFC1123Z) + "\r\n"
}

// safeName is a file name fit for a header or a log line: printable ASCII,
// everything else as "_".
func safeName(name string) string {
	b := []byte(name)
	for i, c := range b {
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' || c == '(' || c == ')' {
			b[i] = '_'
		}
	}
	return string(b)
}

// badmailID names a refused file's Badmail entry "pickup-<name>", made
// acceptable to badmail.CheckID ("..", control characters and path
// separators replaced, length capped).
func badmailID(name string) string {
	id := "pickup-" + strings.ReplaceAll(safeName(name), "/", "_")
	for strings.Contains(id, "..") {
		id = strings.ReplaceAll(id, "..", "._")
	}
	if len(id) > 180 {
		id = id[:180]
	}
	return strings.TrimRight(id, ".")
}
