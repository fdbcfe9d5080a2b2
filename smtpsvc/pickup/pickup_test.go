package pickup

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/smtpsvc/config"
	"github.com/ds2mb/ds2mb/smtpsvc/spool"
)

// recorder is a Submitter that keeps what it is given and fails while
// fail is set, as a full or broken queue folder would.
type recorder struct {
	mu   sync.Mutex
	fail bool
	envs []*spool.Envelope
	data []string
	n    int // calls
}

func (r *recorder) Submit(instance int, env *spool.Envelope, body io.Reader) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	if r.fail {
		return "", errors.New("queue folder: no space left on device")
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return "", err
	}
	env.Instance = instance
	r.envs = append(r.envs, env)
	r.data = append(r.data, string(b))
	return "q1", nil
}

func (r *recorder) count() (calls, ok int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n, len(r.envs)
}

func (r *recorder) setFail(v bool) {
	r.mu.Lock()
	r.fail = v
	r.mu.Unlock()
}

func start(t *testing.T, r *recorder, vs *config.VirtualServer) {
	t.Helper()
	m := New(Options{Submitter: r, Poll: 100 * time.Millisecond, Settle: 10 * time.Millisecond})
	m.Update(&config.Config{Servers: []*config.VirtualServer{vs}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func testServer(t *testing.T) *config.VirtualServer {
	dir := t.TempDir()
	return &config.VirtualServer{Instance: 1, FQDN: "mx.example.com", PickupDir: filepath.Join(dir, "Pickup"),
		BadMailDir: filepath.Join(dir, "Badmail"), PickupDotStuffed: true, MaxMessageSize: 1000}
}

const goodFile = "From: a@example.org\nTo: b@example.com\nSubject: é\n\nGrüße\n"

// A file the queue cannot take stays in Pickup and is submitted once the
// queue works again; it is never put in Badmail for the queue's fault.
func TestSubmitFailureKeepsFile(t *testing.T) {
	vs := testServer(t)
	r := &recorder{fail: true}
	if err := os.MkdirAll(vs.PickupDir, 0o750); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(vs.PickupDir, "m.eml")
	if err := os.WriteFile(path, []byte(goodFile), 0o640); err != nil {
		t.Fatal(err)
	}
	start(t, r, vs)
	until(t, "two failed attempts", func() bool { n, _ := r.count(); return n >= 2 })
	if !exists(path) {
		t.Fatal("the file was removed although the queue refused it")
	}
	r.setFail(false)
	until(t, "the file submitted", func() bool { _, ok := r.count(); return ok == 1 })
	until(t, "the file removed", func() bool { return !exists(path) })
	if exists(vs.BadMailDir) {
		entries, _ := os.ReadDir(vs.BadMailDir)
		if len(entries) > 0 {
			t.Errorf("Badmail has %d files after a queue failure", len(entries))
		}
	}
	env := r.envs[0]
	if env.From != "a@example.org" || len(env.To) != 1 || env.To[0] != "b@example.com" || env.Instance != 1 {
		t.Errorf("envelope %+v", env)
	}
	if env.FromParams != "BODY=8BITMIME" {
		t.Errorf("FromParams %q, want BODY=8BITMIME for an 8-bit message", env.FromParams)
	}
	if !strings.HasPrefix(r.data[0], "Received: from Pickup folder (file m.eml)") {
		t.Errorf("message does not start with the Received header:\n%s", r.data[0])
	}
}

// Hidden and .tmp files are ignored; a file over MaxMessageSize goes to
// Badmail whole, with the sizes in the reason.
func TestIgnoredAndOversized(t *testing.T) {
	vs := testServer(t)
	r := &recorder{}
	os.MkdirAll(vs.PickupDir, 0o750)
	for name, data := range map[string]string{
		".hidden":   goodFile,
		"later.tmp": goodFile,
		"big.eml":   goodFile + strings.Repeat("x", 1000) + "\n",
	} {
		if err := os.WriteFile(filepath.Join(vs.PickupDir, name), []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	start(t, r, vs)
	bad := filepath.Join(vs.BadMailDir, "pickup-big.eml.BAD")
	until(t, "the big file in Badmail", func() bool { return exists(bad) })
	bdr, err := os.ReadFile(strings.TrimSuffix(bad, ".BAD") + ".BDR")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(bdr), "more than MaxMessageSize (1000)") {
		t.Errorf(".BDR:\n%s", bdr)
	}
	if st, err := os.Stat(bad); err != nil || st.Size() != int64(len(goodFile)+1001) {
		t.Errorf("Badmail copy: %v, size %d", err, st.Size())
	}
	until(t, "the big file removed", func() bool { return !exists(filepath.Join(vs.PickupDir, "big.eml")) })
	time.Sleep(300 * time.Millisecond) // three polls
	if n, _ := r.count(); n != 0 {
		t.Errorf("%d submissions of ignored files", n)
	}
	for _, name := range []string{".hidden", "later.tmp"} {
		if !exists(filepath.Join(vs.PickupDir, name)) {
			t.Errorf("%s was taken", name)
		}
	}
}
