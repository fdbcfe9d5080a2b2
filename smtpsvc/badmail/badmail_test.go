package badmail

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/smtpsvc/spool"
)

var at = time.Date(2026, 11, 26, 13, 2, 3, 0, time.UTC)

func testEnvelope() *spool.Envelope {
	return &spool.Envelope{
		From:       "",
		FromParams: "BODY=8BITMIME RET=HDRS ENVID=abc",
		To:         []string{"a@example.com", "b@example.com"},
		ToParams:   []string{"NOTIFY=FAILURE ORCPT=rfc822;a@example.com", ""},
		Client:     "[127.0.0.1] helo=client.example.org",
		ReceivedAt: time.Date(2026, 11, 26, 1, 2, 3, 456789000, time.UTC),
		Instance:   1,
		Kind:       "dsn",
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// noTemps fails the test when dir holds a ".tmp-" file.
func noTemps(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestWriteList(t *testing.T) {
	dir := t.TempDir()
	msg := "X-DS2MB-Envelope-From: <>\r\n\r\nSubject: bounce\r\n\r\nbody\r\n"
	env := testEnvelope()
	reason := "undeliverable, and a message with a null reverse path gets no DSN:\n<a@example.com> 550 5.1.1 No such user"
	if err := Write(dir, Entry{ID: "q1", Envelope: env, Reason: reason, At: at}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	if err := Write(dir, Entry{ID: "q2", Reason: "the queue file cannot be read", At: at.Add(time.Minute)}, strings.NewReader("junk")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(dir, "q1.BAD")); got != msg {
		t.Errorf(".BAD = %q, want %q", got, msg)
	}
	bdr := read(t, filepath.Join(dir, "q1.BDR"))
	for _, l := range []string{
		"Date: Thu, 26 Nov 2026 13:02:03 +0000",
		"Queue-ID: q1",
		"Sender: <>",
		"Recipient: <a@example.com>",
		"Recipient: <b@example.com>",
		"Client: [127.0.0.1] helo=client.example.org",
		"Received: Thu, 26 Nov 2026 01:02:03 +0000",
		"Virtual-Server: 1",
		"Reason: undeliverable, and a message with a null reverse path gets no DSN:",
		"  <a@example.com> 550 5.1.1 No such user",
	} {
		if !strings.Contains(bdr, l+"\r\n") {
			t.Errorf(".BDR lacks the line %q:\n%s", l, bdr)
		}
	}
	// The .BDP is a spool envelope block.
	got, err := spool.Read(bufio.NewReader(strings.NewReader(read(t, filepath.Join(dir, "q1.BDP")))))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, env) {
		t.Errorf(".BDP reads back as %+v, want %+v", got, env)
	}
	if _, err := os.Stat(filepath.Join(dir, "q2.BDP")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a .BDP without an envelope: %v", err)
	}
	if bdr := read(t, filepath.Join(dir, "q2.BDR")); strings.Contains(bdr, "Sender:") {
		t.Errorf(".BDR without an envelope names a sender:\n%s", bdr)
	}
	for _, name := range []string{"q1.BAD", "q1.BDR", "q1.BDP"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if p := fi.Mode().Perm(); p&^0o640 != 0 {
			t.Errorf("%s has mode %v, want at most 0640", name, p)
		}
	}
	noTemps(t, dir)

	list, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []Listed{
		{ID: "q2", Reason: "the queue file cannot be read", At: at.Add(time.Minute), Size: 4},
		{ID: "q1", Reason: "undeliverable, and a message with a null reverse path gets no DSN:", At: at, Size: int64(len(msg))},
	}
	if len(list) != len(want) {
		t.Fatalf("List = %+v", list)
	}
	for i := range want {
		if list[i].ID != want[i].ID || list[i].Reason != want[i].Reason || !list[i].At.Equal(want[i].At) || list[i].Size != want[i].Size {
			t.Errorf("List[%d] = %+v, want %+v", i, list[i], want[i])
		}
	}
}

func TestBadIDs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Badmail")
	for _, id := range []string{"", "..", "../escape", "a/b", `a\b`, "a..b", ".hidden", ".tmp-x", "nul\x00", "line\nbreak",
		strings.Repeat("x", maxID+1)} {
		err := Write(dir, Entry{ID: id, Reason: "r"}, strings.NewReader("m"))
		if err == nil {
			t.Errorf("id %q accepted", id)
		}
		if CheckID(id) == nil {
			t.Errorf("CheckID(%q) = nil", id)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused id still touched the folder: %v", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "escape.BAD")); err == nil {
		t.Error("../escape.BAD written outside the folder")
	}
	for _, id := range []string{"19b2c4e1a0f3c000-1f4a-1-7", "pickup-msg.eml", "pickup-a b.txt", strings.Repeat("x", maxID)} {
		if err := CheckID(id); err != nil {
			t.Errorf("CheckID(%q) = %v", id, err)
		}
	}
}

func TestCreatesFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mailroot", "vsi 1", "BadMail")
	if err := Write(dir, Entry{ID: "m1", Reason: "r", At: at}, strings.NewReader("message")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		t.Fatalf("folder not created: %v", err)
	}
	if p := fi.Mode().Perm(); p&^0o750 != 0 {
		t.Errorf("folder mode %v, want at most 0750", p)
	}
	if got := read(t, filepath.Join(dir, "m1.BAD")); got != "message" {
		t.Errorf(".BAD = %q", got)
	}
	noTemps(t, dir)
}

func TestListMissingFolder(t *testing.T) {
	list, err := List(filepath.Join(t.TempDir(), "none"))
	if err != nil || list != nil {
		t.Errorf("List of a missing folder = %v, %v", list, err)
	}
}

func TestListIgnoresOthers(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{
		".tmp-x.BAD.123": "partial",
		"orphan.BDR":     "Date: Thu, 26 Nov 2026 13:02:03 +0000\r\nReason: crash\r\n",
		"notes.txt":      "x",
		"old.BAD":        "from an older server, no .BDR",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	os.Chtimes(filepath.Join(dir, "old.BAD"), mtime, mtime)
	list, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != "old" || list[0].Reason != "" || !list[0].At.Equal(mtime) {
		t.Errorf("List = %+v", list)
	}
}

func TestNoOverwrite(t *testing.T) {
	dir := t.TempDir()
	// A .BAD that has no .BDR (copied in by hand) is not replaced either.
	if err := os.WriteFile(filepath.Join(dir, "pickup-x-3.BAD"), []byte("by hand"), 0o640); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		e := Entry{ID: "pickup-x", Reason: fmt.Sprintf("attempt %d", i), At: at.Add(time.Duration(i) * time.Second)}
		if err := Write(dir, e, strings.NewReader(fmt.Sprintf("message %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]string{"pickup-x.BAD": "message 1", "pickup-x-2.BAD": "message 2",
		"pickup-x-3.BAD": "by hand", "pickup-x-4.BAD": "message 3"} {
		if got := read(t, filepath.Join(dir, name)); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if !strings.Contains(read(t, filepath.Join(dir, "pickup-x-4.BDR")), "Reason: attempt 3\r\n") {
		t.Error("pickup-x-4.BDR does not hold the third reason")
	}
	noTemps(t, dir)
}

func TestConcurrentSameID(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			marker := fmt.Sprintf("writer %d", i)
			errs <- Write(dir, Entry{ID: "same", Reason: marker, At: at}, strings.NewReader(marker))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	list, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != n {
		t.Fatalf("%d entries, want %d: %+v", len(list), n, list)
	}
	seen := map[string]bool{}
	for _, l := range list {
		// Each .BAD goes with its own .BDR.
		if got := read(t, filepath.Join(dir, l.ID+".BAD")); got != l.Reason {
			t.Errorf("%s.BAD holds %q but its .BDR says %q", l.ID, got, l.Reason)
		}
		seen[l.Reason] = true
	}
	if len(seen) != n {
		t.Errorf("writers lost: %v", seen)
	}
	noTemps(t, dir)
}

type failReader struct{ n int }

func (r *failReader) Read(p []byte) (int, error) {
	if r.n > 0 {
		r.n--
		return copy(p, "partial data"), nil
	}
	return 0, errors.New("disk on fire")
}

func TestWriteFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, Entry{ID: "broken", Envelope: testEnvelope(), Reason: "r"}, &failReader{n: 2}); err == nil {
		t.Fatal("no error from a failing reader")
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("files left behind: %v", names)
	}
}

func TestNoInjection(t *testing.T) {
	dir := t.TempDir()
	env := testEnvelope()
	env.From = "evil@example.net>\r\nX-DS2MB-Envelope-To: <victim@example.org"
	env.To = []string{"a@example.com\nX-DS2MB-Envelope-To: <b@example.org>"}
	env.ToParams = nil
	reason := "first line\r\nDate: Mon, 01 Jan 2001 00:00:00 +0000\rReason: forged"
	if err := Write(dir, Entry{ID: "inj", Envelope: env, Reason: reason, At: at}, strings.NewReader("m")); err != nil {
		t.Fatal(err)
	}
	got, err := spool.Read(bufio.NewReader(strings.NewReader(read(t, filepath.Join(dir, "inj.BDP")))))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.To) != 1 {
		t.Errorf(".BDP recipients %q: a recipient was injected", got.To)
	}
	bdr := read(t, filepath.Join(dir, "inj.BDR"))
	if strings.Count(bdr, "\r\nDate: ") != 0 || strings.Count(bdr, "\r\nReason: ") != 1 || strings.Count(bdr, "\r\nRecipient: ") != 1 {
		t.Errorf("injected .BDR lines:\n%s", bdr)
	}
	if bytes.Count([]byte(bdr), []byte("\n")) != bytes.Count([]byte(bdr), []byte("\r\n")) || strings.Contains(strings.ReplaceAll(bdr, "\r\n", ""), "\r") {
		t.Errorf("bare CR or LF in the .BDR:\n%q", bdr)
	}
	list, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Reason != "first line" || !list[0].At.Equal(at) {
		t.Errorf("List = %+v", list)
	}
}
