package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// sendTo sends one message over a real socket to virtual server 1.
func sendTo(t *testing.T, addr, from, rcpt, msg string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail(from, []string{rcpt}, strings.NewReader(msg)); err != nil {
		t.Fatalf("sending %q: %v", firstLine(msg), err)
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\r\n")
	return l
}

// delivered waits for the message whose Subject is subject in a Maildir's
// new/ folder and returns it with LF line ends.
func delivered(t *testing.T, maildir, subject string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(maildir, "new", "*"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err == nil && (bytes.Contains(b, []byte("Subject: "+subject+"\r\n")) || bytes.Contains(b, []byte("Subject: "+subject+"\n"))) {
				return strings.ReplaceAll(string(b), "\r\n", "\n")
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message %q delivered into %s (files: %v)", subject, maildir, files)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// split is a message's header and body.
func split(msg string) (header, body string) {
	h, b, _ := strings.Cut(msg, "\n\n")
	return h + "\n", b
}

const signedBody = "This is an S/MIME signed message\n\n" +
	"------=_sig\n" +
	"Content-Type: text/plain; charset=us-ascii\n\n" +
	"Signed text: not one byte may change.\n" +
	"------=_sig\n" +
	"Content-Type: application/pkcs7-signature; name=smime.p7s\n" +
	"Content-Transfer-Encoding: base64\n\n" +
	"MIAGCSqGSIb3DQEHAqCAMIACAQExDzANBglghkgBZQMEAgEFADCABgkqhkiG9w0BBwEAAKCAMIID\n" +
	"------=_sig--\n"

// TestBindingAddedWhileRunning: with the whole system running from its
// binaries, a disclaimer binding added with `mbctl bindings add` applies to
// the next message without a restart; a signed message passes byte for
// byte; the binding replicated from the directory (the sample's header
// stamp) runs beside it; and every message is delivered into the store.
func TestBindingAddedWhileRunning(t *testing.T) {
	sp := startSpine(t)
	mbctl := build(t, sp.bin, "cmd/mbctl")
	maildir := filepath.Join(filepath.Dir(sp.mb), "Mailroot", "vsi 1", "Mailbox", "example.com", "bob")
	const disclaimer = "-- Sent through ds2mb: read the policy."

	sendTo(t, sp.a1, "alice@example.com", "bob@example.com", "Subject: before\r\n\r\nno disclaimer yet\r\n")
	got := delivered(t, maildir, "before")
	if strings.Contains(got, disclaimer) {
		t.Fatalf("disclaimer before the binding exists:\n%s", got)
	}
	if h, _ := split(got); !strings.Contains(h, "\nX-Stamped: ds2mb\n") {
		t.Errorf("the replicated HeaderStamp binding did not stamp mail from example.com:\n%s", h)
	}

	t0 := time.Now()
	add := exec.Command(mbctl, "bindings", "add", "--metabase", sp.mb, "--instance", "1", "--event", "OnArrival",
		"--class", "ds2mb.Disclaimer", "--name", "Legal", "--rule", "mail from=*@example.com", "--sink", "Text="+disclaimer)
	out, err := add.CombinedOutput()
	if err != nil {
		t.Fatalf("mbctl bindings add: %v\n%s", err, out)
	}
	for {
		st, err := getStatus(sp.statusURL)
		if err == nil && st.Version > sp.first.Version {
			if st.Refused != nil {
				t.Fatalf("the worker refused the edited metabase: %s", st.Refused.Reason)
			}
			break
		}
		if time.Since(t0) > 30*time.Second {
			t.Fatalf("the worker never served the version with the binding: %+v, %v\nsmtpsvc:\n%s", st, err, sp.wrk.tail())
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("mbctl bindings add → worker serving the binding: %v", time.Since(t0).Round(time.Microsecond))
	sp.wrk.alive(t)

	sendTo(t, sp.a1, "alice@example.com", "bob@example.com", "Subject: after\r\n\r\nplain text\r\n")
	h, body := split(delivered(t, maildir, "after"))
	if !strings.Contains(body, "plain text\n") || !strings.Contains(body, disclaimer) || !strings.Contains(h, "\nX-DS2MB-Disclaimer: added\n") {
		t.Errorf("the next message lacks the disclaimer:\n%s\n%s", h, body)
	}

	signed := "Subject: signed\nMIME-Version: 1.0\n" +
		"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"----=_sig\"\n\n" + signedBody
	sendTo(t, sp.a1, "alice@example.com", "bob@example.com", strings.ReplaceAll(signed, "\n", "\r\n"))
	h, body = split(delivered(t, maildir, "signed"))
	if body != signedBody || strings.Contains(h, "X-DS2MB-Disclaimer") {
		t.Errorf("the signed message was changed:\n%s\n%s\nwant the body byte for byte:\n%s", h, body, signedBody)
	}

	// Mail from elsewhere does not match the rule.
	sendTo(t, sp.a1, "carol@example.net", "bob@example.com", "Subject: other sender\r\n\r\nfrom outside\r\n")
	if got := delivered(t, maildir, "other sender"); strings.Contains(got, disclaimer) {
		t.Errorf("the rule mail from=*@example.com matched carol@example.net:\n%s", got)
	}
}
