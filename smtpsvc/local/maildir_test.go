package local

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ds2mb/ds2mb/smtpsvc/delivery"
)

// TestMaildirDelivers: each recipient gets one file in its own new/,
// holding Return-Path, Delivered-To and the message; tmp/ is left empty;
// the folders are 0700; the file name is a Maildir unique name.
func TestMaildirDelivers(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	m := &Maildir{Root: root}
	job, _ := newJob("q1", "sender@sender.test", []string{"alice@example.com", "Bob@Example.COM"}, testMsg)
	res := m.Deliver(context.Background(), job)
	if len(res) != 2 {
		t.Fatalf("got %d results, want 2", len(res))
	}
	host, _ := os.Hostname()
	uniq := regexp.MustCompile(`^[0-9]+\.M[0-9]{1,6}P` + strconv.Itoa(os.Getpid()) + `Q[0-9]+\.` + regexp.QuoteMeta(EscapeHostname(host)) + `$`)
	for i, c := range []struct{ rcpt, dir string }{
		{"alice@example.com", "example.com/alice"},
		{"Bob@Example.COM", "example.com/bob"},
	} {
		checkResult(t, res[i], c.rcpt, 250, "2.0.0")
		if !res[i].OK() || res[i].FromRemote || res[i].RemoteMTA != "" {
			t.Errorf("result %+v: want a local success", res[i])
		}
		dir := filepath.Join(root, c.dir)
		name, data := readOnly(t, filepath.Join(dir, "new"))
		want := "Return-Path: <sender@sender.test>\r\nDelivered-To: " + c.rcpt + "\r\n" + testMsg
		if data != want {
			t.Errorf("%s: file holds %q, want %q", c.dir, data, want)
		}
		if !uniq.MatchString(name) {
			t.Errorf("file name %q is not a Maildir unique name", name)
		}
		if !strings.Contains(res[i].Text, name) {
			t.Errorf("result text %q does not name the file %s", res[i].Text, name)
		}
		if left := listDir(t, filepath.Join(dir, "tmp")); len(left) != 0 {
			t.Errorf("%s/tmp still holds %v", c.dir, left)
		}
		for _, sub := range []string{"tmp", "new", "cur", ""} {
			fi, err := os.Stat(filepath.Join(dir, sub))
			if err != nil {
				t.Fatal(err)
			}
			if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
				t.Errorf("%s/%s: mode %v, want a 0700 directory", c.dir, sub, fi.Mode())
			}
		}
	}
	if got := listDir(t, root); strings.Join(got, ",") != "example.com" {
		t.Errorf("root holds %v, want only example.com", got)
	}
}

// TestMaildirNullSender: the null reverse path is "Return-Path: <>".
func TestMaildirNullSender(t *testing.T) {
	root := t.TempDir()
	job, _ := newJob("q", "", []string{"postmaster@example.com"}, testMsg)
	res := (&Maildir{Root: root}).Deliver(context.Background(), job)
	checkResult(t, res[0], "postmaster@example.com", 250, "2.0.0")
	_, data := readOnly(t, filepath.Join(root, "example.com", "postmaster", "new"))
	if !strings.HasPrefix(data, "Return-Path: <>\r\nDelivered-To: postmaster@example.com\r\n") {
		t.Errorf("file starts %q", data)
	}
}

// TestMaildirBadLocalPart: addresses that cannot be a directory are
// refused for good (5.1.3) and create nothing; the others are delivered.
func TestMaildirBadLocalPart(t *testing.T) {
	root := t.TempDir()
	bad := []string{
		".hidden@example.com", "..@example.com", ".@example.com", "a/b@example.com",
		"../../etc@example.com", "a\x00b@example.com", "@example.com", "user@",
		"user", "user@..", "user@.example.com", "user@a/b", "user@exa\x00mple.com",
		"a\r\nX-Evil: 1@example.com", "\xff\xfe@example.com", strings.Repeat("a", 256) + "@example.com",
	}
	rcpts := append([]string{"good@example.com"}, bad...)
	rcpts = append(rcpts, "also-good@example.com")
	job, _ := newJob("q", "s@sender.test", rcpts, testMsg)
	res := (&Maildir{Root: root}).Deliver(context.Background(), job)
	if len(res) != len(rcpts) {
		t.Fatalf("got %d results for %d recipients", len(res), len(rcpts))
	}
	checkResult(t, res[0], "good@example.com", 250, "2.0.0")
	checkResult(t, res[len(res)-1], "also-good@example.com", 250, "2.0.0")
	for i, rc := range bad {
		r := res[i+1]
		checkResult(t, r, rc, 550, "5.1.3")
		if !r.Permanent() {
			t.Errorf("%q: %+v is not permanent", rc, r)
		}
	}
	if got := listDir(t, root); strings.Join(got, ",") != "example.com" {
		t.Errorf("root holds %v, want only example.com", got)
	}
	if got := listDir(t, filepath.Join(root, "example.com")); strings.Join(got, ",") != "also-good,good" {
		t.Errorf("example.com holds %v, want only also-good and good", got)
	}
	readOnly(t, filepath.Join(root, "example.com", "good", "new"))
}

// TestValidLocalPart checks the rule on its own.
func TestValidLocalPart(t *testing.T) {
	for s, want := range map[string]bool{
		"alice": true, "a.b": true, "a..b": true, "[127.0.0.1]": true, "jörg": true, "a b": true,
		"": false, ".": false, "..": false, ".a": false, "a/b": false, "a\x00": false,
		"a\tb": false, "\xc3": false, strings.Repeat("x", 255): true, strings.Repeat("x", 256): false,
	} {
		if got := ValidLocalPart(s); got != want {
			t.Errorf("ValidLocalPart(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestSplitAddress: last "@" splits; a quoted local part is unquoted.
func TestSplitAddress(t *testing.T) {
	for _, c := range []struct{ in, lp, dom string }{
		{"a@b.c", "a", "b.c"},
		{`"john doe"@b.c`, "john doe", "b.c"},
		{`"a\"b\\c@d"@b.c`, `a"b\c@d`, "b.c"},
		{"postmaster", "postmaster", ""},
		{"a@b@c", "a@b", "c"},
	} {
		lp, dom := SplitAddress(c.in)
		if lp != c.lp || dom != c.dom {
			t.Errorf("SplitAddress(%q) = %q, %q; want %q, %q", c.in, lp, dom, c.lp, c.dom)
		}
	}
	m := &Maildir{Root: "/store"}
	if d, err := m.Dir(`"Bob"@Example.COM`); err != nil || d != "/store/example.com/bob" {
		t.Errorf("Dir = %q, %v", d, err)
	}
	if _, err := m.Dir("x@.."); err == nil {
		t.Error("Dir(x@..) gave no error")
	}
}

// TestEscapeHostname: "/" and ":" are escaped as the Maildir spec says.
func TestEscapeHostname(t *testing.T) {
	if got := EscapeHostname("a/b:c.example"); got != `a\057b\072c.example` {
		t.Errorf("EscapeHostname = %q", got)
	}
}

// TestMaildirUnwritable: write errors are temporary (4.3.0), for the
// recipient they hit only.
func TestMaildirUnwritable(t *testing.T) {
	t.Run("root is a file", func(t *testing.T) {
		root := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(root, []byte("not a directory"), 0o600); err != nil {
			t.Fatal(err)
		}
		job, _ := newJob("q", "s@sender.test", []string{"a@example.com", "b@example.org"}, testMsg)
		res := (&Maildir{Root: root}).Deliver(context.Background(), job)
		for i, rc := range job.Rcpts {
			checkResult(t, res[i], rc, 451, "4.3.0")
			if !res[i].Temporary() {
				t.Errorf("%+v is not temporary", res[i])
			}
		}
	})
	t.Run("one Maildir blocked", func(t *testing.T) {
		root := t.TempDir()
		if err := os.MkdirAll(filepath.Join(root, "example.com"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "example.com", "blocked"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		// new/ is a file: the message is written to tmp/ but cannot be
		// published, and must not stay in tmp/.
		if err := os.MkdirAll(filepath.Join(root, "example.com", "nonew", "tmp"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "example.com", "nonew", "new"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		job, _ := newJob("q", "s@sender.test", []string{"blocked@example.com", "ok@example.com", "nonew@example.com"}, testMsg)
		res := (&Maildir{Root: root}).Deliver(context.Background(), job)
		checkResult(t, res[0], "blocked@example.com", 451, "4.3.0")
		checkResult(t, res[1], "ok@example.com", 250, "2.0.0")
		checkResult(t, res[2], "nonew@example.com", 451, "4.3.0")
		readOnly(t, filepath.Join(root, "example.com", "ok", "new"))
		if left := listDir(t, filepath.Join(root, "example.com", "nonew", "tmp")); len(left) != 0 {
			t.Errorf("nonew/tmp holds %v after a failed delivery", left)
		}
	})
	t.Run("no write permission", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root writes through permissions; the file cases above cover root")
		}
		root := t.TempDir()
		if err := os.Chmod(root, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(root, 0o700) })
		job, _ := newJob("q", "s@sender.test", []string{"a@example.com"}, testMsg)
		res := (&Maildir{Root: root}).Deliver(context.Background(), job)
		checkResult(t, res[0], "a@example.com", 451, "4.3.0")
	})
}

// TestMaildirMessageErrors: a message that cannot be opened or read is a
// temporary failure and leaves no file behind; so is no Root at all.
func TestMaildirMessageErrors(t *testing.T) {
	root := t.TempDir()
	m := &Maildir{Root: root}
	noOpen := &delivery.Job{ID: "q", Rcpts: []string{"a@example.com", "b@example.com"}}
	for _, r := range m.Deliver(context.Background(), noOpen) {
		if r.Code != 451 || r.Status != "4.3.0" {
			t.Errorf("job without Open: %+v", r)
		}
	}
	broken := &delivery.Job{ID: "q", Rcpts: []string{"a@example.com"}, Size: 100,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(&brokenReader{}), nil }}
	res := m.Deliver(context.Background(), broken)
	checkResult(t, res[0], "a@example.com", 451, "4.3.0")
	for _, sub := range []string{"tmp", "new"} {
		if left := listDir(t, filepath.Join(root, "example.com", "a", sub)); len(left) != 0 {
			t.Errorf("%s holds %v after a read error", sub, left)
		}
	}
	job, _ := newJob("q", "s@sender.test", []string{"a@example.com"}, testMsg)
	checkResult(t, (&Maildir{}).Deliver(context.Background(), job)[0], "a@example.com", 451, "4.3.5")
	if got := (&Maildir{Root: root}).Deliver(context.Background(), &delivery.Job{}); len(got) != 0 {
		t.Errorf("no recipients gave %v", got)
	}
	evil, _ := newJob("q", "s@x\r\nX-Evil: 1", []string{"a@example.com"}, testMsg)
	checkResult(t, m.Deliver(context.Background(), evil)[0], "a@example.com", 550, "5.1.7")
}

// TestMaildirCancelled: a cancelled context delivers nothing and says so
// with a temporary result.
func TestMaildirCancelled(t *testing.T) {
	root := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	job, _ := newJob("q", "s@sender.test", []string{"a@example.com"}, testMsg)
	res := (&Maildir{Root: root}).Deliver(ctx, job)
	checkResult(t, res[0], "a@example.com", 451, "4.3.2")
	if got := listDir(t, root); len(got) != 0 {
		t.Errorf("root holds %v after a cancelled delivery", got)
	}
}

// TestMaildirReadsOnce: a small message for several recipients is read
// from the spool once, a large one once per recipient; both give the same
// files. Recipients naming the same Maildir get one file.
func TestMaildirReadsOnce(t *testing.T) {
	big := testMsg + strings.Repeat("0123456789abcdef\r\n", (bufferLimit/18)+10)
	for _, c := range []struct {
		name  string
		msg   string
		opens int64
	}{{"small", testMsg, 1}, {"large", big, 2}} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			job, opens := newJob("q", "s@sender.test", []string{"a@example.com", "b@example.com", "A@EXAMPLE.COM"}, c.msg)
			res := (&Maildir{Root: root}).Deliver(context.Background(), job)
			if n := opens.Load(); n != c.opens {
				t.Errorf("Open called %d times, want %d", n, c.opens)
			}
			for i, rc := range job.Rcpts {
				checkResult(t, res[i], rc, 250, "2.0.0")
			}
			if res[2].Text != res[0].Text {
				t.Errorf("the repeated recipient got %q, want the first one's %q", res[2].Text, res[0].Text)
			}
			for _, who := range []string{"a", "b"} {
				_, data := readOnly(t, filepath.Join(root, "example.com", who, "new"))
				if !strings.HasSuffix(data, "\r\n"+c.msg) || len(data) < len(c.msg) {
					t.Errorf("%s: file of %d bytes does not end with the %d-byte message", who, len(data), len(c.msg))
				}
			}
		})
	}
}

// BenchmarkMaildir delivers a 4 KiB message to one recipient.
func BenchmarkMaildir(b *testing.B) {
	root := b.TempDir()
	msg := "Subject: bench\r\n\r\n" + strings.Repeat("x", 4096-18-2) + "\r\n"
	job, _ := newJob("q", "s@sender.test", []string{"bench@example.com"}, msg)
	m := &Maildir{Root: root}
	newDir := filepath.Join(root, "example.com", "bench", "new")
	b.SetBytes(int64(len(msg)))
	n := 0
	for b.Loop() {
		if r := m.Deliver(context.Background(), job); !r[0].OK() {
			b.Fatal(r[0])
		}
		if n++; n%1000 == 0 {
			b.StopTimer()
			os.RemoveAll(newDir)
			os.Mkdir(newDir, 0o700)
			b.StartTimer()
		}
	}
}

// TestMaildirConcurrent: deliveries into one new Maildir at once each get
// their own file (unique names, folders made by whoever comes first).
func TestMaildirConcurrent(t *testing.T) {
	root := t.TempDir()
	m := &Maildir{Root: root}
	const n = 8
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			job, _ := newJob("q", "s@sender.test", []string{"a@example.com"}, testMsg)
			if r := m.Deliver(context.Background(), job); !r[0].OK() {
				t.Error(r[0])
			}
		}()
	}
	wg.Wait()
	if got := listDir(t, filepath.Join(root, "example.com", "a", "new")); len(got) != n {
		t.Errorf("new/ holds %d files, want %d", len(got), n)
	}
}
