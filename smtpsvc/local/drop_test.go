package local

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ds2mb/ds2mb/smtpsvc/delivery"
)

// TestDrop: one file per message, "<id>.eml", envelope lines then the
// message; a second message with the same id gets a new name and leaves
// the first intact; the folder is created 0750; no temporary file stays.
func TestDrop(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mailroot", "Drop")
	d := &Drop{Dir: dir}
	job, _ := newJob("Q00001", "sender@sender.test", []string{"x@drop.test", "Y@Drop.test"}, testMsg)
	res := d.Deliver(context.Background(), job)
	for i, rc := range job.Rcpts {
		checkResult(t, res[i], rc, 250, "2.0.0")
		if !strings.Contains(res[i].Text, "Q00001.eml") {
			t.Errorf("result %q does not name the file", res[i].Text)
		}
	}
	want1 := "x-sender: sender@sender.test\r\nx-receiver: x@drop.test\r\nx-receiver: Y@Drop.test\r\n" + testMsg
	if names := listDir(t, dir); strings.Join(names, ",") != "Q00001.eml" {
		t.Fatalf("drop folder holds %v, want Q00001.eml", names)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("drop folder: %v %v, want mode 0750", fi.Mode(), err)
	}

	job2, _ := newJob("Q00001", "", []string{"z@drop.test"}, "Subject: second\r\n\r\nother\r\n")
	res = d.Deliver(context.Background(), job2)
	checkResult(t, res[0], "z@drop.test", 250, "2.0.0")
	names := listDir(t, dir)
	if strings.Join(names, ",") != "Q00001-1.eml,Q00001.eml" {
		t.Fatalf("drop folder holds %v, want Q00001.eml and Q00001-1.eml", names)
	}
	for name, want := range map[string]string{
		"Q00001.eml":   want1,
		"Q00001-1.eml": "x-sender: <>\r\nx-receiver: z@drop.test\r\nSubject: second\r\n\r\nother\r\n",
	} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(data) != want {
			t.Errorf("%s holds %q (%v), want %q", name, data, err, want)
		}
	}
}

// TestDropConcurrent: messages with one id written at once all get their
// own file.
func TestDropConcurrent(t *testing.T) {
	dir := t.TempDir()
	d := &Drop{Dir: dir}
	const n = 8
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			job, _ := newJob("same", "s@sender.test", []string{"a@drop.test"}, fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i))
			if r := d.Deliver(context.Background(), job); !r[0].OK() {
				t.Error(r[0])
			}
		}()
	}
	wg.Wait()
	names := listDir(t, dir)
	if len(names) != n {
		t.Fatalf("drop folder holds %v, want %d files", names, n)
	}
	seen := map[string]bool{}
	for _, name := range names {
		data, _ := os.ReadFile(filepath.Join(dir, name))
		seen[string(data)] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct messages among %d files", len(seen), n)
	}
}

// TestDropErrors: an unwritable folder is a temporary failure for every
// recipient; an id that is no file name stays inside the folder; a
// recipient that cannot be a header line is refused on its own.
func TestDropErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	job, _ := newJob("q", "s@sender.test", []string{"a@drop.test", "b@drop.test"}, testMsg)
	for i, r := range (&Drop{Dir: file}).Deliver(context.Background(), job) {
		checkResult(t, r, job.Rcpts[i], 451, "4.3.0")
	}
	for i, r := range (&Drop{Dir: filepath.Join(file, "sub")}).Deliver(context.Background(), job) {
		checkResult(t, r, job.Rcpts[i], 451, "4.3.0")
	}

	dir := filepath.Join(t.TempDir(), "drop")
	job, _ = newJob("../../escape", "s@sender.test", []string{"a@drop.test", "bad\r\nx-receiver: evil@x", "c@drop.test"}, testMsg)
	res := (&Drop{Dir: dir}).Deliver(context.Background(), job)
	checkResult(t, res[0], "a@drop.test", 250, "2.0.0")
	checkResult(t, res[1], job.Rcpts[1], 550, "5.1.3")
	checkResult(t, res[2], "c@drop.test", 250, "2.0.0")
	name, data := readOnly(t, dir)
	if name != "_._.._escape.eml" {
		t.Errorf("file name %q", name)
	}
	if !strings.HasPrefix(data, "x-sender: s@sender.test\r\nx-receiver: a@drop.test\r\nx-receiver: c@drop.test\r\nFrom:") {
		t.Errorf("file starts %q", data)
	}
	if got := listDir(t, filepath.Dir(dir)); strings.Join(got, ",") != "drop" {
		t.Errorf("parent of the folder holds %v", got)
	}
}

// TestDropBrokenMessage: a message that cannot be read leaves no file,
// not even the temporary one, and is a temporary failure.
func TestDropBrokenMessage(t *testing.T) {
	dir := t.TempDir()
	job := &delivery.Job{ID: "q", Rcpts: []string{"a@drop.test"}, Size: 100,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(&brokenReader{}), nil }}
	checkResult(t, (&Drop{Dir: dir}).Deliver(context.Background(), job)[0], "a@drop.test", 451, "4.3.0")
	if got := listDir(t, dir); len(got) != 0 {
		t.Errorf("drop folder holds %v after a read error", got)
	}
	job.Open = nil
	checkResult(t, (&Drop{Dir: dir}).Deliver(context.Background(), job)[0], "a@drop.test", 451, "4.3.0")
	job2, _ := newJob("q", "s@sender.test", []string{"a@drop.test"}, testMsg)
	checkResult(t, (&Drop{}).Deliver(context.Background(), job2)[0], "a@drop.test", 451, "4.3.5")
}
