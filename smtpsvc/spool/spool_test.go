package spool_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/smtpsvc/spool"
)

func TestCommitAndRead(t *testing.T) {
	t.Run("unnamed", func(t *testing.T) { testCommitAndRead(t, false) })
	t.Run("named", func(t *testing.T) { testCommitAndRead(t, true) })
}

func testCommitAndRead(t *testing.T, named bool) {
	dir := filepath.Join(t.TempDir(), "Queue")
	s, err := spool.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if named {
		spool.NamedTemps(s)
	} else if !spool.Unnamed(s) {
		t.Log("O_TMPFILE not available here: both runs use named temporary files")
	}
	env := &spool.Envelope{From: "", FromParams: "BODY=8BITMIME", To: []string{"a@example.com", "b@example.com"},
		ToParams: []string{"NOTIFY=NEVER", ""}, Client: "[127.0.0.1] helo=x", ReceivedAt: time.Date(2026, 11, 26, 1, 2, 3, 0, time.UTC), Instance: 2}
	m, err := s.Create(env)
	if err != nil {
		t.Fatal(err)
	}
	body := "Subject: hi\r\n\r\nbody\r\n"
	io.Copy(m, strings.NewReader(body))
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".tmp-") {
			t.Fatalf("before Commit: %s visible", e.Name())
		}
	}
	if named && len(ents) != 1 {
		t.Fatalf("before Commit: %v, want one .tmp- file", ents)
	}
	path, err := m.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != m.ID()+".eml" {
		t.Errorf("path %s, id %s", path, m.ID())
	}
	ents, _ = os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != m.ID()+".eml" {
		t.Fatalf("after Commit: %v", ents)
	}
	f, _ := os.Open(path)
	defer f.Close()
	br := bufio.NewReader(f)
	got, err := spool.Read(br)
	if err != nil {
		t.Fatal(err)
	}
	if got.From != "" || got.FromParams != "BODY=8BITMIME" || len(got.To) != 2 || got.To[1] != "b@example.com" ||
		got.ToParams[0] != "NOTIFY=NEVER" || got.Client != env.Client || !got.ReceivedAt.Equal(env.ReceivedAt) || got.Instance != 2 {
		t.Errorf("read back %+v", got)
	}
	rest, _ := io.ReadAll(br)
	if string(rest) != body {
		t.Errorf("message %q", rest)
	}
	if _, err := m.Commit(); err == nil {
		t.Error("second Commit succeeded")
	}
}

func TestAbort(t *testing.T) {
	t.Run("unnamed", func(t *testing.T) { testAbort(t, false) })
	t.Run("named", func(t *testing.T) { testAbort(t, true) })
}

func testAbort(t *testing.T, named bool) {
	dir := t.TempDir()
	s, _ := spool.Open(dir)
	if named {
		spool.NamedTemps(s)
	}
	m, _ := s.Create(&spool.Envelope{From: "a@b", To: []string{"c@d"}})
	m.WriteString("data")
	m.Abort()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("Abort left %v", ents)
	}
}

// TestConcurrentCommits: commits from many goroutines at once
// and every message arrives whole under a unique name.
func TestConcurrentCommits(t *testing.T) {
	dir := t.TempDir()
	s, _ := spool.Open(dir)
	var wg sync.WaitGroup
	const n, per = 8, 25
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				m, err := s.Create(&spool.Envelope{From: "a@b", To: []string{"c@d"}})
				if err != nil {
					t.Error(err)
					return
				}
				fmt.Fprintf(m, "Subject: %d-%d\r\n\r\n", g, i)
				if _, err := m.Commit(); err != nil {
					t.Error(err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	ents, _ := os.ReadDir(dir)
	if len(ents) != n*per {
		t.Fatalf("%d files, want %d", len(ents), n*per)
	}
	seen := map[string]bool{}
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		i := bytes.Index(b, []byte("Subject: "))
		if i < 0 || !strings.HasSuffix(e.Name(), ".eml") {
			t.Fatalf("%s: %q", e.Name(), b)
		}
		seen[string(b[i:])] = true
	}
	if len(seen) != n*per {
		t.Errorf("%d distinct messages", len(seen))
	}
}

// BenchmarkCommit4K measures durable spooling of a 4 KB message (write,
// fsync file, rename, fsync folder) from 20 goroutines.
func BenchmarkCommit4K(b *testing.B) {
	s, err := spool.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	msg := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234567\r\n"), 4096/74)
	env := &spool.Envelope{From: "sender@example.org", To: []string{"rcpt@example.com"}, ReceivedAt: time.Now()}
	b.SetBytes(int64(len(msg)))
	b.SetParallelism(20 / max(1, runtimeProcs()))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m, err := s.Create(env)
			if err != nil {
				b.Error(err)
				return
			}
			m.Write(msg)
			if _, err := m.Commit(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func TestCurrent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Queue")
	s, _ := spool.Open(dir)
	if !s.Current() {
		t.Fatal("fresh spool not current")
	}
	os.Rename(dir, dir+".old")
	os.Mkdir(dir, 0o750)
	if s.Current() {
		t.Error("spool of a replaced folder still current")
	}
}

func TestLoadAndOpen(t *testing.T) {
	s, err := spool.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	env := &spool.Envelope{From: "a@example.org", To: []string{"b@example.com"}, ToParams: []string{"NOTIFY=SUCCESS"},
		ReceivedAt: time.Date(2026, 12, 5, 1, 2, 3, 0, time.UTC), Instance: 1}
	m, err := s.Create(env)
	if err != nil {
		t.Fatal(err)
	}
	body := "Subject: hi\r\n\r\nbody\r\n"
	m.WriteString(body)
	path, err := m.Commit()
	if err != nil {
		t.Fatal(err)
	}
	ids, err := s.List()
	if err != nil || len(ids) != 1 || s.Path(ids[0]) != path {
		t.Fatalf("List = %v, %v; want the one message at %s", ids, err, path)
	}
	st, err := spool.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != ids[0] || st.Envelope.From != env.From || st.Envelope.To[0] != "b@example.com" || st.Envelope.ToParams[0] != "NOTIFY=SUCCESS" {
		t.Fatalf("Load = %+v %+v", st, st.Envelope)
	}
	if st.Size != int64(len(body)) {
		t.Fatalf("Size = %d, want %d", st.Size, len(body))
	}
	r, err := st.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, _ := io.ReadAll(r)
	if string(got) != body {
		t.Fatalf("Open yields %q, want %q", got, body)
	}
}

// TestCommittedStored: the Stored a Commit returns is what Load reads back
// (envelope, offset, size, content), whether the message is kept in memory
// (up to KeepInMemory, written by Write, WriteString or ReadFrom) or read
// from the file (larger, or after Release); and the kept copy is the
// message, so that removing the file shows which one Open reads.
func TestCommittedStored(t *testing.T) {
	s, err := spool.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	small := "Subject: small\r\n\r\n" + strings.Repeat("s", 100) + "\r\n"
	big := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("b", 78)+"\r\n", spool.KeepInMemory/80+1)
	for _, tc := range []struct {
		name, body string
		write      func(m *spool.Message, body string)
		inMemory   bool
	}{
		{"small by WriteString", small, func(m *spool.Message, b string) { m.WriteString(b[:10]); m.WriteString(b[10:]) }, true},
		{"small by Write", small, func(m *spool.Message, b string) { m.Write([]byte(b)) }, true},
		{"small by ReadFrom", small, func(m *spool.Message, b string) { m.ReadFrom(strings.NewReader(b)) }, true},
		{"big by ReadFrom", big, func(m *spool.Message, b string) { m.ReadFrom(strings.NewReader(b)) }, false},
		{"big by Write", big, func(m *spool.Message, b string) { m.Write([]byte(b[:5000])); m.Write([]byte(b[5000:])) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := &spool.Envelope{From: "a@example.org", To: []string{"b@example.com", "c@example.com"}, ToParams: []string{"NOTIFY=SUCCESS"},
				Client: "127.0.0.1", ReceivedAt: time.Date(2026, 12, 7, 1, 2, 3, 4, time.UTC), Instance: 2, Kind: "dsn"}
			m, err := s.Create(env)
			if err != nil {
				t.Fatal(err)
			}
			if m.Stored() != nil {
				t.Fatal("Stored before Commit is not nil")
			}
			tc.write(m, tc.body)
			path, err := m.Commit()
			if err != nil {
				t.Fatal(err)
			}
			got := m.Stored()
			want, err := spool.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != want.ID || got.Path != want.Path || got.Offset != want.Offset || got.Size != want.Size ||
				fmt.Sprint(*got.Envelope) != fmt.Sprint(*want.Envelope) {
				t.Fatalf("Stored %+v %+v\nLoad   %+v %+v", got, got.Envelope, want, want.Envelope)
			}
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			r, err := got.Open()
			if !tc.inMemory {
				if err == nil {
					r.Close()
					t.Fatal("a message above KeepInMemory opened with its file removed: it was kept in memory")
				}
				return
			}
			if err != nil {
				t.Fatalf("kept message: %v", err)
			}
			b, _ := io.ReadAll(r)
			r.Close()
			if string(b) != tc.body {
				t.Fatalf("kept copy %q, want %q", b, tc.body)
			}
			got.Release()
			if r, err := got.Open(); err == nil {
				r.Close()
				t.Fatal("after Release, Open still read memory")
			}
		})
	}
}

// TestContent: what an event sink reads of a message before its Commit is
// the message written so far, from memory for a small one and from the
// file for one above KeepInMemory, and reading it changes nothing that is
// then committed.
func TestContent(t *testing.T) {
	s, err := spool.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for name, body := range map[string]string{
		"small": "Subject: small\r\n\r\nhello\r\n",
		"big":   "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("b", 78)+"\r\n", spool.KeepInMemory/80+1),
	} {
		t.Run(name, func(t *testing.T) {
			m, err := s.Create(&spool.Envelope{From: "a@example.org", To: []string{"b@example.com"}, ReceivedAt: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			m.WriteString(body)
			got, err := m.Content()
			if err != nil || string(got) != body {
				t.Fatalf("Content = %.60q, %v; want the %d bytes written", got, err, len(body))
			}
			for i := range got {
				got[i] = 'X' // the caller's copy
			}
			if _, b := commitAndRead(t, m); b != body {
				t.Fatalf("committed message %.60q, want what was written", b)
			}
			r, err := m.Stored().Open()
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(r)
			r.Close()
			if string(b) != body {
				t.Fatalf("the kept copy %.60q, want what was written", b)
			}
		})
	}
}

// TestRemoveReuses: a delivered message's file removed with Remove is
// written again by a Create of any spool of the process on that folder
// (the same inode) once a folder sync has made its new name durable, not
// before, holding exactly the new message whether it is shorter or longer
// than the last; it is never listed, and a file of another folder is
// simply deleted.
func TestRemoveReuses(t *testing.T) {
	dir := t.TempDir()
	a, err := spool.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := spool.Open(dir) // the queue's spool beside the sessions'
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	commit := func(s *spool.Spool, body string) (string, os.FileInfo) {
		t.Helper()
		m, err := s.Create(&spool.Envelope{From: "a@example.org", To: []string{"b@example.com"}, ReceivedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		m.WriteString(body)
		if c, err := m.Content(); err != nil || string(c) != body {
			t.Fatalf("Content %q, %v", c, err)
		}
		path, got := commitAndRead(t, m)
		if got != body {
			t.Fatalf("%s holds %q, want %q", path, got, body)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return path, fi
	}
	long := "Subject: long\r\n\r\n" + strings.Repeat("a long line of the first message\r\n", 200)
	p1, fi1 := commit(a, long)
	if err := b.Remove(p1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p1); !os.IsNotExist(err) {
		t.Fatalf("%s still there after Remove: %v", p1, err)
	}
	if ids, _ := a.List(); len(ids) != 0 {
		t.Fatalf("List after Remove: %v", ids)
	}
	// Not reused before a folder sync has made its new name durable: a
	// crash could otherwise bring back p1's name on a file half written
	// over with another message.
	if _, fi := commit(a, "Subject: first after\r\n\r\nx\r\n"); os.SameFile(fi1, fi) {
		t.Error("the removed file was reused before the folder was synced")
	}
	// That Commit synced the folder.
	p2, fi2 := commit(a, "Subject: short\r\n\r\nshort\r\n") // shorter: the rest is cut
	if !os.SameFile(fi1, fi2) {
		t.Error("the next message after a folder sync did not reuse the removed file")
	}
	if err := a.Remove(p2); err != nil {
		t.Fatal(err)
	}
	commit(b, "Subject: sync\r\n\r\nx\r\n")
	_, fi3 := commit(b, long+long) // longer than the file
	if !os.SameFile(fi1, fi3) {
		t.Error("the queue's spool did not reuse the file the sessions' spool removed")
	}
	if err := a.Remove(p2); err != nil {
		t.Errorf("Remove of a file already gone: %v", err)
	}
	// A kept file carries the mtime of the message it held: opening the
	// folder again in this process (a reload) must not take it for an
	// hour-old leftover.
	p4, fi4 := commit(a, long)
	if err := a.Remove(p4); err != nil {
		t.Fatal(err)
	}
	kept, _ := filepath.Glob(filepath.Join(dir, ".tmp-free-*"))
	for _, k := range kept {
		old := time.Now().Add(-2 * time.Hour)
		os.Chtimes(k, old, old)
	}
	c, err := spool.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if len(kept) != 1 {
		t.Fatalf("kept files %v, want one", kept)
	}
	if _, err := os.Stat(kept[0]); err != nil {
		t.Fatalf("the second Open removed the kept file: %v", err)
	}
	commit(c, "Subject: sync\r\n\r\nx\r\n")
	if _, fi5 := commit(c, long); !os.SameFile(fi4, fi5) {
		t.Error("the kept file was not reused after a second Open")
	}
	other := filepath.Join(t.TempDir(), "x.eml")
	os.WriteFile(other, []byte("x"), 0o640)
	if err := a.Remove(other); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Error("a file of another folder was kept instead of deleted")
	}
}

// TestRemoveStoredLength: a file kept by RemoveStored, whose length the
// spool then knows, is cut when a shorter message is written over it and
// holds exactly the new message when it is as long or longer.
func TestRemoveStoredLength(t *testing.T) {
	dir := t.TempDir()
	s, err := spool.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var last os.FileInfo
	commit := func(body string) *spool.Stored {
		t.Helper()
		m, err := s.Create(&spool.Envelope{From: "a@example.org", To: []string{"b@example.com"}, ReceivedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		m.WriteString(body)
		path, got := commitAndRead(t, m)
		if got != body {
			t.Fatalf("%s holds %q, want %q", path, got, body)
		}
		if last, err = os.Stat(path); err != nil {
			t.Fatal(err)
		}
		return m.Stored()
	}
	long := "Subject: long\r\n\r\n" + strings.Repeat("0123456789", 300) + "\r\n"
	for _, next := range []string{
		"Subject: short\r\n\r\nx\r\n",                                        // shorter: cut
		"Subject: same\r\n\r\n" + strings.Repeat("9876543210", 300) + "\r\n", // as long
		long + long, // longer
	} {
		st := commit(long)
		kept := last
		if err := s.RemoveStored(st); err != nil {
			t.Fatal(err)
		}
		commit("Subject: sync\r\n\r\nx\r\n") // makes the kept name durable
		nst := commit(next)                  // commit reads it back from the file
		if !os.SameFile(kept, last) {
			t.Fatalf("%.14q was not written over the removed file", next)
		}
		if want := nst.Offset + int64(len(next)); last.Size() != want {
			t.Errorf("%.14q: file of %d bytes, want %d", next, last.Size(), want)
		}
	}
}

// commitAndRead commits m and reads its message back from the file.
func commitAndRead(t *testing.T, m *spool.Message) (path, content string) {
	t.Helper()
	path, err := m.Commit()
	if err != nil {
		t.Fatal(err)
	}
	st, err := spool.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, _ := io.ReadAll(r)
	return path, string(b)
}
