package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ds2mb/ds2mb/smtpsvc/delivery"
)

// Drop delivers into an IIS drop directory (the Drop folder of a domain
// whose RouteAction has SMTP_DROP): one file per message, whatever the
// number of recipients, named "<job ID>.eml", or "<job ID>-<n>.eml"
// (n = 1, 2, …) when that name is taken; an existing file is never
// replaced. A job ID that cannot be a file name has its "/", "\", NUL and
// control characters and a leading "." replaced by "_", and is cut to
// 200 bytes ("" becomes "message").
//
// The file is the envelope followed by the message, CRLF line ends:
//
//	x-sender: sender@example.org       ("<>" for the null reverse path)
//	x-receiver: rcpt1@example.com      one line per recipient, in order
//	x-receiver: rcpt2@example.com
//	<the message as the spool holds it>
//
// which is the form of IIS's Pickup and Drop files (REFERENCE.md §7; the
// exact layout and naming are ASSUMPTION grade G: reconstructed, not
// sourced). It is written to ".tmp-<unique>" in Dir, fsynced, moved to
// its name (link then unlink, so a name taken meanwhile is not
// overwritten) and Dir is fsynced. Dir is created with mode 0750 when
// missing. Every recipient gets the result of that one file: 250 2.0.0,
// or 451 4.3.0 on a write error; only a recipient that cannot be written
// into a header line (CR, LF or NUL in it) is refused on its own (550
// 5.1.3) and left out of the file.
type Drop struct {
	Dir string // the drop directory; "" refuses every delivery (4.3.5)
}

// Deliver writes the job's message as one file into the drop directory.
func (d *Drop) Deliver(ctx context.Context, job *delivery.Job) []delivery.Result {
	res := make([]delivery.Result, len(job.Rcpts))
	if d.Dir == "" {
		return delivery.All(job, delivery.TempFail("", "4.3.5", "no drop directory is configured"))
	}
	if badEnvelope(job.From) {
		return delivery.All(job, delivery.PermFail("", "5.1.7", "the sender %q cannot be written into a header", job.From))
	}
	var hdr strings.Builder
	hdr.WriteString("x-sender: " + envelopeSender(job.From) + "\r\n")
	var ok []int // recipients written into the file
	for i, rc := range job.Rcpts {
		if badEnvelope(rc) {
			res[i] = delivery.PermFail(rc, "5.1.3", "the recipient %q cannot be written into a header", rc)
			continue
		}
		hdr.WriteString("x-receiver: " + rc + "\r\n")
		ok = append(ok, i)
	}
	if len(ok) == 0 {
		return res
	}
	var r delivery.Result
	if err := ctx.Err(); err != nil {
		r = cancelled("", err)
	} else if name, err := d.write(ctx, job, hdr.String()); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			r = cancelled("", cerr)
		} else {
			r = delivery.TempFail("", "4.3.0", "cannot write to the drop directory %s: %v", d.Dir, err)
		}
	} else {
		r = delivery.Delivered("", "dropped as "+name)
	}
	for _, i := range ok {
		res[i] = r
		res[i].Rcpt = job.Rcpts[i]
	}
	return res
}

// write writes the file and returns its name.
func (d *Drop) write(ctx context.Context, job *delivery.Job, hdr string) (string, error) {
	if err := mkdirAll(d.Dir, 0o750); err != nil {
		return "", err
	}
	msg, err := openMessage(job)
	if err != nil {
		return "", fmt.Errorf("reading the message: %w", err)
	}
	defer msg.Close()
	f, err := os.OpenFile(filepath.Join(d.Dir, ".tmp-"+uniqueName()), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	err = streamFile(ctx, f, hdr, msg)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	base := dropName(job.ID)
	name := base + ".eml"
	for n := 1; ; n++ {
		err = linkOrRename(tmp, filepath.Join(d.Dir, name))
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || n > 100000 {
			os.Remove(tmp)
			return "", err
		}
		name = base + "-" + strconv.Itoa(n) + ".eml"
	}
	if err := syncDir(d.Dir); err != nil {
		os.Remove(filepath.Join(d.Dir, name))
		return "", err
	}
	return name, nil
}

// dropName makes a job ID safe as the base of a file name.
func dropName(id string) string {
	if id == "" {
		return "message"
	}
	b := []byte(id)
	for i, c := range b {
		if c == '/' || c == '\\' || c < ' ' || c == 0x7f {
			b[i] = '_'
		}
	}
	if b[0] == '.' {
		b[0] = '_'
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}
