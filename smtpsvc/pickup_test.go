package smtpsvc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/smtpsvc/pickup"
	"github.com/ds2mb/ds2mb/smtpsvc/status"
)

// waitFiles waits until dir holds n files whose names end in suffix and
// returns their paths.
func waitFiles(t *testing.T, dir, suffix string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var got []string
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), suffix) && e.Type().IsRegular() {
				got = append(got, filepath.Join(dir, e.Name()))
			}
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d files ending in %q, want %d", dir, len(got), suffix, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A good Pickup file is delivered (here into the local Maildir) and removed;
// a malformed one lands in Badmail with the line at fault and is removed; a
// file under a temporary name is left until it is renamed in.
func TestPickupDeliversGoodAndBadmailsBad(t *testing.T) {
	port := freePort(t)
	w := startWorker(t, tree(1, vsDef{n: 1, ports: []int{port}, fqdn: "mx.example.com"}).Bytes(), func(o *Options) {
		o.Pickup = pickup.Options{Poll: 200 * time.Millisecond, Settle: 20 * time.Millisecond}
	})
	w.waitVersion(t, 1)
	root := filepath.Join(w.dir, "Mailroot", "vsi 1")
	pick := filepath.Join(root, "Pickup")
	if err := os.MkdirAll(pick, 0o750); err != nil {
		t.Fatal(err)
	}

	tmp := filepath.Join(pick, "good.eml.tmp")
	good := "x-sender: alice@example.org\nx-receiver: bob@example.com\nFrom: alice@example.org\nTo: bob@example.com\nSubject: from pickup\n\n..dot-stuffed line\nbye\n"
	if err := os.WriteFile(tmp, []byte(good), 0o640); err != nil {
		t.Fatal(err)
	}
	bad := "From: alice@example.org\nTo: bob@example.com\nthis line is the body without a blank line\n"
	if err := os.WriteFile(filepath.Join(pick, "bad.eml"), []byte(bad), 0o640); err != nil {
		t.Fatal(err)
	}

	// The bad file: .BAD is the file as it was, .BDR names the line.
	badmail := filepath.Join(root, "Badmail")
	bads := waitFiles(t, badmail, ".BAD", 1)
	if got := readFile(t, bads[0]); got != bad {
		t.Errorf("Badmail copy %q, want the file %q", got, bad)
	}
	if filepath.Base(bads[0]) != "pickup-bad.eml.BAD" {
		t.Errorf("Badmail entry %s, want pickup-bad.eml.BAD", filepath.Base(bads[0]))
	}
	bdr := readFile(t, strings.TrimSuffix(bads[0], ".BAD")+".BDR")
	if !strings.Contains(bdr, "Pickup file bad.eml: line 3:") || !strings.Contains(bdr, "not a header field") {
		t.Errorf(".BDR does not give the reason and line:\n%s", bdr)
	}

	// The temporary file has not been taken in the meantime.
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("the .tmp file was taken: %v", err)
	}
	if err := os.Rename(tmp, filepath.Join(pick, "good.eml")); err != nil {
		t.Fatal(err)
	}
	mails := waitFiles(t, filepath.Join(root, "Mailbox", "example.com", "bob", "new"), "", 1)
	got := readFile(t, mails[0])
	for _, want := range []string{"Received: from Pickup folder (file good.eml)\r\n\tby mx.example.com with local-file;",
		"Subject: from pickup\r\n", "\r\n.dot-stuffed line\r\nbye\r\n", "Message-ID: <pickup."} {
		if !strings.Contains(got, want) {
			t.Errorf("delivered message lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "x-sender") || strings.Contains(got, "x-receiver") {
		t.Errorf("envelope lines left in the message:\n%s", got)
	}

	entries, err := os.ReadDir(pick)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left in Pickup: %s", e.Name())
	}
	w.waitStatus(t, "pickup counts", func(s status.Status) bool {
		return s.Queue.PickupSubmitted == 1 && s.Queue.PickupRejected == 1
	})
}
