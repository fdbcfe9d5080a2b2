package local

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ds2mb/ds2mb/smtpsvc/delivery"
)

// testMsg is a message as the spool yields it: CRLF line ends, a line
// that starts with a dot (which LMTP must dot-stuff and unstuff).
const testMsg = "From: sender@sender.test\r\nTo: alice@example.com\r\nSubject: test\r\n\r\nhello\r\n.a line with a leading dot\r\nbye\r\n"

// newJob is a job whose message is msg; opens counts the calls of Open.
func newJob(id, from string, rcpts []string, msg string) (*delivery.Job, *atomic.Int64) {
	var opens atomic.Int64
	return &delivery.Job{
		ID: id, From: from, Rcpts: rcpts, Size: int64(len(msg)),
		Open: func() (io.ReadCloser, error) {
			opens.Add(1)
			return io.NopCloser(strings.NewReader(msg)), nil
		},
	}, &opens
}

// brokenReader yields some bytes then an error, like a spool file that
// cannot be read to its end.
type brokenReader struct{ sent bool }

func (b *brokenReader) Read(p []byte) (int, error) {
	if !b.sent {
		b.sent = true
		return copy(p, "Subject: half\r\n\r\nthe first half"), nil
	}
	return 0, errors.New("disk read error")
}

// listDir returns the names in dir, sorted; a missing dir is empty.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// readOnly returns the content of the one file in dir.
func readOnly(t *testing.T, dir string) (name, content string) {
	t.Helper()
	names := listDir(t, dir)
	if len(names) != 1 {
		t.Fatalf("%s holds %v, want exactly one file", dir, names)
	}
	data, err := os.ReadFile(filepath.Join(dir, names[0]))
	if err != nil {
		t.Fatal(err)
	}
	return names[0], string(data)
}

// checkResult fails the test unless r has the recipient, code and status.
func checkResult(t *testing.T, r delivery.Result, rcpt string, code int, status string) {
	t.Helper()
	if r.Rcpt != rcpt || r.Code != code || r.Status != status {
		t.Errorf("result %+v, want %s %d %s", r, rcpt, code, status)
	}
}
