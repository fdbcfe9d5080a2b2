// Package badmail keeps what can be neither delivered nor returned to its
// sender in a virtual server's BadMailDirectory, as IIS 6 SMTP did
// (REFERENCE.md §7): a message whose delivery failed and whose DSN cannot
// be sent (a null reverse path, a DSN that cannot be written or queued), an
// unreadable queue file, a Pickup file that cannot be submitted.
//
// # Files
//
// One entry is two or three files named after its id:
//
//   - "<id>.BAD": the message bytes Write was given, unchanged. The queue
//     hands over its whole spool file, so for queued mail the spool's
//     envelope block (package spool, "X-DS2MB-Envelope-From: …" lines and
//     an empty line) comes first; a Pickup file is kept as it was found.
//   - "<id>.BDR": the reason, for people: CRLF lines "Name: value" with the
//     date, queue id, envelope sender ("<>" for a null reverse path),
//     recipients, client, arrival, virtual server, and the reason, whose
//     further lines are indented by two spaces.
//   - "<id>.BDP": the envelope in the spool's envelope-block format (read
//     it back with spool.Read); only when the entry has an envelope. IIS
//     wrote a binary envelope there; this one is text.
//
// # Durability
//
// Each file is written to a ".tmp-" name in the folder and fsynced, then
// given its final name: a hard link, which never replaces an existing
// file, after which the temporary name is removed (a rename where the file
// system has no hard links). The .BDR and .BDP get their names first and
// the folder is fsynced, then the .BAD gets its name and the folder is
// fsynced again, so a reader (or a restart after a crash) that sees
// "<id>.BAD" sees its ".BDR" too. A crash may leave ".tmp-" files
// (incomplete, safe to delete) or a .BDR without its .BAD (List ignores
// it).
//
// Nothing is overwritten: when "<id>.BAD" or "<id>.BDR" exists already
// (the same Pickup file name rejected twice), the entry is stored as
// "<id>-2", "<id>-3" and so on. The .BDR is claimed with a hard link,
// which fails when the name exists, so writers racing for one id, even
// in different processes, get distinct names.
package badmail

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ds2mb/ds2mb/smtpsvc/spool"
)

// maxID is the longest id accepted, so that every file name (".tmp-",
// suffix and random part included) stays within 255 bytes.
const maxID = 200

// maxSuffix is how many "-N" names Write tries for one id.
const maxSuffix = 10000

// dateLayout is the RFC 5322 date-time, used in .BDR files.
const dateLayout = "Mon, 02 Jan 2006 15:04:05 -0700"

// Entry is one message put in Badmail.
type Entry struct {
	// ID names the files; the queue id of the message, or another name
	// unique in the folder ("pickup-<file name>"). It must not be empty,
	// start with ".", contain a path separator, "..", or a control
	// character, or be longer than 200 bytes.
	ID string
	// Envelope is the SMTP envelope, nil when there is none (then no .BDP
	// is written and the .BDR names no sender).
	Envelope *spool.Envelope
	// Reason says why the message is here; it may have several lines.
	Reason string
	// At is when it was put here; zero = time.Now().
	At time.Time
}

// Listed is one entry of a Badmail folder, as List finds it.
type Listed struct {
	ID     string    // the file name without ".BAD"
	Reason string    // the first line of the reason; "" without a readable .BDR
	At     time.Time // the .BDR's Date, else the .BAD's modification time
	Size   int64     // bytes of the .BAD file
}

// CheckID reports why id cannot name a Badmail entry, or nil when it can.
func CheckID(id string) error {
	switch {
	case id == "":
		return errors.New("badmail: empty id")
	case len(id) > maxID:
		return fmt.Errorf("badmail: id of %d bytes (at most %d)", len(id), maxID)
	case id[0] == '.':
		return fmt.Errorf("badmail: id %q starts with a dot", id)
	case strings.ContainsAny(id, `/\`) || strings.ContainsRune(id, os.PathSeparator):
		return fmt.Errorf("badmail: id %q contains a path separator", id)
	case strings.Contains(id, ".."):
		return fmt.Errorf("badmail: id %q contains \"..\"", id)
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] == 0x7f {
			return fmt.Errorf("badmail: id %q contains a control character", id)
		}
	}
	return nil
}

// Write stores msg, with e's reason and envelope, in the Badmail folder
// dir, creating the folder (0750) when it is missing. See the package
// documentation for the files and the order in which they appear. It
// refuses an id CheckID refuses. On error nothing of the entry is left
// under its final names.
func Write(dir string, e Entry, msg io.Reader) (err error) {
	if err := CheckID(e.ID); err != nil {
		return err
	}
	if dir == "" {
		return errors.New("badmail: no folder")
	}
	if e.At.IsZero() {
		e.At = time.Now()
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("badmail: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("badmail: %w", err)
	}
	defer d.Close()

	var temps []string // still under their temporary names
	defer func() {
		for _, t := range temps {
			os.Remove(t)
		}
	}()
	bad, err := writeTemp(dir, e.ID, ".BAD", func(w *bufio.Writer) error {
		_, err := w.ReadFrom(msg)
		return err
	})
	if err != nil {
		return err
	}
	temps = append(temps, bad)
	bdr, err := writeTemp(dir, e.ID, ".BDR", func(w *bufio.Writer) error {
		_, err := w.WriteString(report(e))
		return err
	})
	if err != nil {
		return err
	}
	temps = append(temps, bdr)
	bdp := ""
	if e.Envelope != nil {
		if bdp, err = writeTemp(dir, e.ID, ".BDP", func(w *bufio.Writer) error {
			_, err := w.WriteString(envelope(e.Envelope))
			return err
		}); err != nil {
			return err
		}
		temps = append(temps, bdp)
	}

	for n := 1; n <= maxSuffix; n++ {
		name := e.ID
		if n > 1 {
			name += "-" + strconv.Itoa(n)
		}
		base := filepath.Join(dir, name)
		if _, err := os.Lstat(base + ".BAD"); err == nil {
			continue
		}
		ok, err := claim(bdr, base+".BDR")
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		remove := func() {
			os.Remove(base + ".BDR")
			if bdp != "" {
				os.Remove(base + ".BDP")
			}
		}
		if bdp != "" {
			if err := os.Rename(bdp, base+".BDP"); err != nil {
				remove()
				return fmt.Errorf("badmail: %w", err)
			}
		}
		if err := d.Sync(); err != nil {
			remove()
			return fmt.Errorf("badmail: fsync %s: %w", dir, err)
		}
		ok, err = claim(bad, base+".BAD")
		if err != nil {
			remove()
			return err
		}
		if !ok {
			// A .BAD of that name appeared meanwhile: give the name back
			// (the temporary names again) and try the next one.
			if err := os.Rename(base+".BDR", bdr); err != nil {
				remove()
				return fmt.Errorf("badmail: %w", err)
			}
			if bdp != "" {
				if err := os.Rename(base+".BDP", bdp); err != nil {
					remove()
					return fmt.Errorf("badmail: %w", err)
				}
			}
			continue
		}
		if err := d.Sync(); err != nil {
			os.Remove(base + ".BAD")
			remove()
			return fmt.Errorf("badmail: fsync %s: %w", dir, err)
		}
		return nil // the deferred cleanup removes the temporary links
	}
	return fmt.Errorf("badmail: no free name for %q in %s", e.ID, dir)
}

// writeTemp writes a file ".tmp-<id><ext>.*" in dir with fill, fsyncs and
// closes it, and returns its path.
func writeTemp(dir, id, ext string, fill func(*bufio.Writer) error) (string, error) {
	f, err := os.CreateTemp(dir, ".tmp-"+id+ext+".*")
	if err != nil {
		return "", fmt.Errorf("badmail: %w", err)
	}
	name := f.Name()
	w := bufio.NewWriterSize(f, 64<<10)
	err = fill(w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Chmod(0o640)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", fmt.Errorf("badmail: writing %s: %w", name, err)
	}
	return name, nil
}

// claim gives the file tmp the name final unless final exists; ok is
// false when it does. It links, which fails on an existing name
// atomically, and leaves tmp for the caller to remove; on a file system
// without hard links it falls back to a check and a rename.
func claim(tmp, final string) (ok bool, err error) {
	lerr := os.Link(tmp, final)
	if lerr == nil {
		return true, nil
	}
	if errors.Is(lerr, fs.ErrExist) {
		return false, nil
	}
	if _, err := os.Lstat(final); err == nil {
		return false, nil
	}
	if err := os.Rename(tmp, final); err != nil {
		return false, fmt.Errorf("badmail: %w", err)
	}
	return true, nil
}

// report is the .BDR text of an entry.
func report(e Entry) string {
	var b strings.Builder
	line := func(name, value string) {
		b.WriteString(name)
		b.WriteString(": ")
		b.WriteString(value)
		b.WriteString("\r\n")
	}
	line("Date", e.At.Format(dateLayout))
	line("Queue-ID", e.ID)
	if env := e.Envelope; env != nil {
		line("Sender", "<"+oneLine(env.From)+">")
		for _, to := range env.To {
			line("Recipient", "<"+oneLine(to)+">")
		}
		if env.Client != "" {
			line("Client", oneLine(env.Client))
		}
		if !env.ReceivedAt.IsZero() {
			line("Received", env.ReceivedAt.Format(dateLayout))
		}
		if env.Instance != 0 {
			line("Virtual-Server", strconv.Itoa(env.Instance))
		}
		if env.Kind != "" {
			line("Kind", oneLine(env.Kind))
		}
	}
	var lines []string
	for _, l := range strings.Split(strings.ReplaceAll(e.Reason, "\r\n", "\n"), "\n") {
		if l = oneLine(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		lines = []string{"(no reason given)"}
	}
	line("Reason", lines[0])
	for _, l := range lines[1:] {
		b.WriteString("  ")
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	return b.String()
}

// envelope is the .BDP text: the envelope block of a spool file.
func envelope(env *spool.Envelope) string {
	var b strings.Builder
	b.WriteString("X-DS2MB-Envelope-From: <" + oneLine(env.From) + ">")
	if p := oneLine(env.FromParams); p != "" {
		b.WriteString(" " + p)
	}
	b.WriteString("\r\n")
	for i, to := range env.To {
		b.WriteString("X-DS2MB-Envelope-To: <" + oneLine(to) + ">")
		if i < len(env.ToParams) {
			if p := oneLine(env.ToParams[i]); p != "" {
				b.WriteString(" " + p)
			}
		}
		b.WriteString("\r\n")
	}
	if c := oneLine(env.Client); c != "" {
		b.WriteString("X-DS2MB-Client: " + c + "\r\n")
	}
	if !env.ReceivedAt.IsZero() {
		b.WriteString("X-DS2MB-Received-At: " + env.ReceivedAt.UTC().Format(time.RFC3339Nano) + "\r\n")
	}
	b.WriteString("X-DS2MB-Instance: " + strconv.Itoa(env.Instance) + "\r\n")
	if k := oneLine(env.Kind); k != "" {
		b.WriteString("X-DS2MB-Kind: " + k + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// oneLine replaces control characters with spaces and trims s.
func oneLine(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s))
}

// List returns the entries of the Badmail folder dir, newest first (ties
// by id). A folder that does not exist has none. Files whose name starts
// with ".tmp-" and .BDR files without their .BAD are not entries.
func List(dir string) ([]Listed, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("badmail: %w", err)
	}
	var out []Listed
	for _, de := range ents {
		name := de.Name()
		if strings.HasPrefix(name, ".tmp-") || len(name) <= 4 || !strings.EqualFold(name[len(name)-4:], ".BAD") || !de.Type().IsRegular() {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue // removed meanwhile
		}
		l := Listed{ID: name[:len(name)-4], At: fi.ModTime(), Size: fi.Size()}
		ext := ".BDR"
		if name[len(name)-3:] == "bad" {
			ext = ".bdr"
		}
		if at, reason, ok := readReport(filepath.Join(dir, l.ID+ext)); ok {
			l.Reason = reason
			if !at.IsZero() {
				l.At = at
			}
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].At.Equal(out[j].At) {
			return out[i].At.After(out[j].At)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// readReport reads the Date and the first line of the Reason of a .BDR.
func readReport(path string) (at time.Time, reason string, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return at, "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 1<<20))
	for sc.Scan() {
		l := strings.TrimRight(sc.Text(), "\r")
		if v, found := strings.CutPrefix(l, "Date: "); found && at.IsZero() {
			at, _ = time.Parse(dateLayout, v)
		}
		if v, found := strings.CutPrefix(l, "Reason: "); found {
			return at, v, true
		}
	}
	return at, "", true
}
