package queue_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/smtpsvc/internal/testnet"
	"github.com/ds2mb/ds2mb/smtpsvc/queue"
	"github.com/emersion/go-smtp"
)

// report is a parsed RFC 3464 delivery status notification.
type report struct {
	header     mail.Header
	text       string
	perMessage textproto.MIMEHeader
	rcpts      []textproto.MIMEHeader
	returned   string // the third part's content type
	original   []byte
}

// parseReport reads a DSN and checks its RFC 3464 shape.
func parseReport(t *testing.T, data []byte) report {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("DSN does not parse: %v\n%s", err, data)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || !strings.EqualFold(params["report-type"], "delivery-status") {
		t.Fatalf("DSN Content-Type %q: want multipart/report; report-type=delivery-status", msg.Header.Get("Content-Type"))
	}
	r := report{header: msg.Header}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for i := 0; ; i++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("DSN part %d: %v", i, err)
		}
		b, _ := io.ReadAll(p)
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		switch i {
		case 0:
			if ct != "text/plain" {
				t.Fatalf("DSN part 1 is %s, want text/plain", ct)
			}
			r.text = string(b)
		case 1:
			if ct != "message/delivery-status" {
				t.Fatalf("DSN part 2 is %s, want message/delivery-status", ct)
			}
			tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(b, "\r\n\r\n"...))))
			if r.perMessage, err = tr.ReadMIMEHeader(); err != nil {
				t.Fatalf("per-message fields: %v", err)
			}
			for {
				h, err := tr.ReadMIMEHeader()
				if len(h) > 0 {
					r.rcpts = append(r.rcpts, h)
				}
				if err != nil || len(h) == 0 {
					break
				}
			}
		case 2:
			r.returned, r.original = ct, b
		}
	}
	if r.perMessage.Get("Reporting-MTA") == "" || len(r.rcpts) == 0 {
		t.Fatalf("DSN lacks Reporting-MTA or recipient blocks: %+v", r)
	}
	return r
}

// TestMXPreferenceAndFallback: mail goes to the lowest-preference MX that
// answers; an MX that refuses connections is passed over for the next.
func TestMXPreferenceAndFallback(t *testing.T) {
	port, s := sinks(t, "127.0.0.3", "127.0.0.4", "127.0.0.5")
	e := newEnv(t, port)
	e.dns.MX(t, "fallback.test", 10, "mx1.fallback.test", unusedHost(t, "127.0.0.2", port), 20, "mx2.fallback.test", "127.0.0.3")
	e.dns.MX(t, "pref.test", 30, "mx3.pref.test", "127.0.0.5", 10, "mx1.pref.test", "127.0.0.4")
	e.dns.Add(t, "implicit.test. 60 IN A 127.0.0.5")
	e.start(nil)
	e.send("sender@sender.test", []string{"a@fallback.test"}, body)
	e.send("sender@sender.test", []string{"b@pref.test"}, body)
	e.send("sender@sender.test", []string{"c@implicit.test"}, body)
	e.waitEmpty(20 * time.Second)
	if got := s[0].Messages(); len(got) != 1 || got[0].To[0] != "a@fallback.test" {
		t.Errorf("MX 20 of fallback.test got %+v, want the message the unreachable MX 10 could not take", got)
	}
	if got := s[1].Messages(); len(got) != 1 || got[0].To[0] != "b@pref.test" {
		t.Errorf("MX 10 of pref.test got %+v, want its message (MX 30 is the other)", got)
	}
	if got := s[2].Messages(); len(got) != 1 || got[0].To[0] != "c@implicit.test" {
		t.Errorf("127.0.0.5 got %+v, want only the message of the domain without MX (implicit MX)", got)
	}
	if !bytes.Contains(s[0].Messages()[0].Data, []byte("Subject: test")) {
		t.Errorf("delivered message lost its content: %q", s[0].Messages()[0].Data)
	}
}

// TestTemporaryFailureRetriedOnSchedule: a 451 is retried after the
// intervals of SmtpRemoteProgressiveRetry, the last one repeating.
func TestTemporaryFailureRetriedOnSchedule(t *testing.T) {
	port, s := sinks(t, "127.0.0.2")
	var mu sync.Mutex
	var tries []time.Time
	s[0].Rcpt = func(string) *smtp.SMTPError {
		mu.Lock()
		defer mu.Unlock()
		tries = append(tries, time.Now())
		if len(tries) <= 3 {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "try later"}
		}
		return nil
	}
	e := newEnv(t, port)
	e.set("SmtpRemoteProgressiveRetry", "2,4")
	e.dns.MX(t, "remote.test", 10, "mx.remote.test", "127.0.0.2")
	e.start(nil)
	e.send("sender@sender.test", []string{"r@remote.test"}, body)
	s[0].Wait(t, 1, 30*time.Second)
	e.waitEmpty(10 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	if len(tries) != 4 {
		t.Fatalf("%d attempts, want 4 (three 451s, then delivered)", len(tries))
	}
	want := []time.Duration{2 * unit, 4 * unit, 4 * unit}
	for i, w := range want {
		if gap := tries[i+1].Sub(tries[i]); gap < w {
			t.Errorf("attempt %d came %v after the one before, want at least %v (schedule 2,4 units of %v)", i+2, gap, w, unit)
		}
	}
	if st := e.q.Stats(); st.Deferred.Load() != 3 || st.Delivered.Load() != 1 {
		t.Errorf("stats deferred %d delivered %d, want 3 and 1", st.Deferred.Load(), st.Delivered.Load())
	}
}

// refuse is a sink's RCPT hook that answers 550 5.1.1 to recipients
// starting with prefix.
func refuse(prefix string) func(string) *smtp.SMTPError {
	return func(to string) *smtp.SMTPError {
		if strings.HasPrefix(to, prefix) {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	}
}

// TestPermanentFailureBounces: a 5xx fails the recipient at once, the other
// recipient is delivered, and the sender gets a valid RFC 3464 report for
// the failed one only.
func TestPermanentFailureBounces(t *testing.T) {
	port, s := sinks(t, "127.0.0.2", "127.0.0.3")
	s[0].Rcpt = refuse("nobody@")
	e := newEnv(t, port)
	e.dns.MX(t, "remote.test", 10, "mx.remote.test", "127.0.0.2")
	e.dns.MX(t, "sender.test", 10, "mx.sender.test", "127.0.0.3")
	e.start(nil)
	e.sendP("sender@sender.test", []string{"nobody@remote.test", "someone@remote.test"},
		[]string{"ORCPT=rfc822;nobody@remote.test", ""}, "RET=HDRS ENVID=env+2B1", body)
	dsns := s[1].Wait(t, 1, 20*time.Second)
	e.waitEmpty(10 * time.Second)
	if got := s[0].Messages(); len(got) != 1 || len(got[0].To) != 1 || got[0].To[0] != "someone@remote.test" {
		t.Fatalf("remote got %+v, want the message for someone@ only", got)
	}
	d := dsns[0]
	if d.From != "" || len(d.To) != 1 || d.To[0] != "sender@sender.test" {
		t.Fatalf("DSN envelope from <%s> to %v, want <> to the original sender", d.From, d.To)
	}
	r := parseReport(t, d.Data)
	if len(r.rcpts) != 1 {
		t.Fatalf("%d recipient blocks, want 1 (the failed recipient)", len(r.rcpts))
	}
	b := r.rcpts[0]
	for field, want := range map[string]string{"Action": "failed", "Status": "5.1.1", "Final-Recipient": "rfc822;nobody@remote.test",
		"Original-Recipient": "rfc822;nobody@remote.test"} {
		if got := strings.ReplaceAll(b.Get(field), " ", ""); !strings.EqualFold(got, want) {
			t.Errorf("%s: %q, want %q", field, b.Get(field), want)
		}
	}
	if !strings.Contains(b.Get("Diagnostic-Code"), "550") || !strings.Contains(b.Get("Remote-MTA"), "mx.remote.test") {
		t.Errorf("Diagnostic-Code %q, Remote-MTA %q: want the remote's 550 and its name", b.Get("Diagnostic-Code"), b.Get("Remote-MTA"))
	}
	if r.perMessage.Get("Original-Envelope-Id") != "env+1" {
		t.Errorf("Original-Envelope-Id %q, want env+1 (ENVID decoded)", r.perMessage.Get("Original-Envelope-Id"))
	}
	if r.returned != "text/rfc822-headers" || bytes.Contains(r.original, []byte("hello")) {
		t.Errorf("RET=HDRS returned %s %q, want the headers only", r.returned, r.original)
	}
}

// TestPerDomainConnectionLimit: MaxOutConnectionsPerDomain is never
// exceeded, and MaxBatchedMessages bounds the messages of one connection.
func TestPerDomainConnectionLimit(t *testing.T) {
	port, s := sinks(t, "127.0.0.2")
	s[0].Data = func(string, []string, []byte) *smtp.SMTPError {
		time.Sleep(5 * time.Millisecond) // keep connections busy so that more are wanted
		return nil
	}
	e := newEnv(t, port)
	e.set("MaxOutConnectionsPerDomain", "3")
	e.set("MaxBatchedMessages", "5")
	e.dns.MX(t, "remote.test", 10, "mx.remote.test", "127.0.0.2")
	e.start(nil)
	const n = 60
	for i := range n {
		e.send("sender@sender.test", []string{fmt.Sprintf("r%d@remote.test", i)}, body)
	}
	s[0].Wait(t, n, 30*time.Second)
	e.waitEmpty(10 * time.Second)
	if mx := s[0].MaxConns(); mx > 3 || mx < 2 {
		t.Errorf("the sink saw up to %d connections at once, want 2 or 3 (MaxOutConnectionsPerDomain 3, and enough mail to use them)", mx)
	}
	if c := e.q.Stats().Connection.Load(); c < n/5 {
		t.Errorf("%d connections for %d messages, want at least %d (MaxBatchedMessages 5)", c, n, n/5)
	}
}

// TestSmartHostOverridesMX: with SmartHostType 2 every remote message goes
// to the smart host, never to the domain's MX; a connector's smart host
// (a domain node with SMTP_SMARTHOST) takes its address space.
func TestSmartHostOverridesMX(t *testing.T) {
	port, s := sinks(t, "127.0.0.2", "127.0.0.6", "127.0.0.7")
	e := newEnv(t, port)
	e.set("SmartHost", "[127.0.0.6]")
	e.set("SmartHostType", "2")
	e.domain("connector.test", "RouteAction", "2", "RouteActionString", "[127.0.0.7]")
	e.dns.MX(t, "remote.test", 10, "mx.remote.test", "127.0.0.2")
	e.start(nil)
	e.send("sender@sender.test", []string{"r@remote.test"}, body)
	e.send("sender@sender.test", []string{"c@connector.test"}, body)
	e.waitEmpty(20 * time.Second)
	if s[0].Count() != 0 {
		t.Errorf("the MX got %d messages; the smart host should take them all", s[0].Count())
	}
	if got := s[1].Messages(); len(got) != 1 || got[0].To[0] != "r@remote.test" {
		t.Errorf("smart host got %+v", got)
	}
	if got := s[2].Messages(); len(got) != 1 || got[0].To[0] != "c@connector.test" {
		t.Errorf("connector's smart host got %+v", got)
	}
}

// TestDelayThenExpiry: a recipient that keeps getting 4xx gets exactly one
// delay DSN, then an NDR with 4.4.7 when it expires.
func TestDelayThenExpiry(t *testing.T) {
	port, s := sinks(t, "127.0.0.2", "127.0.0.3")
	s[0].Rcpt = func(string) *smtp.SMTPError {
		return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}
	}
	e := newEnv(t, port)
	e.set("SmtpRemoteDelayExpireMinutes", "2")
	e.set("SmtpRemoteNDRExpireMinutes", "8")
	e.dns.MX(t, "remote.test", 10, "mx.remote.test", "127.0.0.2")
	e.dns.MX(t, "sender.test", 10, "mx.sender.test", "127.0.0.3")
	e.start(nil)
	e.send("sender@sender.test", []string{"full@remote.test"}, body)
	got := s[1].Wait(t, 2, 30*time.Second)
	e.waitEmpty(10 * time.Second)
	time.Sleep(3 * unit)
	if n := s[1].Count(); n != 2 {
		t.Fatalf("sender got %d notifications, want 2 (one delay, one failure)", n)
	}
	delay, fail := parseReport(t, got[0].Data), parseReport(t, got[1].Data)
	if a := delay.rcpts[0].Get("Action"); a != "delayed" {
		t.Errorf("first notification Action %q, want delayed", a)
	}
	if delay.rcpts[0].Get("Will-Retry-Until") == "" {
		t.Errorf("delay DSN lacks Will-Retry-Until")
	}
	if a, st := fail.rcpts[0].Get("Action"), fail.rcpts[0].Get("Status"); a != "failed" || st != "4.4.7" {
		t.Errorf("second notification Action %q Status %q, want failed 4.4.7", a, st)
	}
	if !strings.Contains(fail.rcpts[0].Get("Diagnostic-Code"), "452") {
		t.Errorf("expiry NDR Diagnostic-Code %q should carry the last reply (452)", fail.rcpts[0].Get("Diagnostic-Code"))
	}
	if fail.returned != "message/rfc822" || !bytes.Contains(fail.original, []byte("hello")) {
		t.Errorf("failure DSN returned %s: want the whole original (no RET given)", fail.returned)
	}
}

// TestBadmailWhenNDRCannotGo: the NDR of a failed message cannot be
// delivered either (the sender's domain does not exist), so the NDR goes to
// Badmail with its reason, and SendBadTo is told.
func TestBadmailWhenNDRCannotGo(t *testing.T) {
	port, s := sinks(t, "127.0.0.2")
	s[0].Rcpt = func(to string) *smtp.SMTPError {
		if strings.HasPrefix(to, "postmaster@") {
			return nil
		}
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	e := newEnv(t, port)
	e.set("SendBadTo", "postmaster@admin.test")
	e.dns.MX(t, "remote.test", 10, "mx.remote.test", "127.0.0.2")
	e.dns.MX(t, "admin.test", 10, "mx.admin.test", "127.0.0.2")
	e.start(nil)
	e.send("someone@gone.test", []string{"nobody@remote.test"}, body)
	notice := s[0].Wait(t, 1, 20*time.Second)
	e.waitEmpty(10 * time.Second)
	bad := files(t, e.vs1().BadMailDir, ".BAD")
	if len(bad) != 1 {
		t.Fatalf("Badmail holds %v, want one message", bad)
	}
	bdr, err := os.ReadFile(strings.TrimSuffix(bad[0], ".BAD") + ".BDR")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(bdr), "someone@gone.test") || !strings.Contains(string(bdr), "5.1.2") {
		t.Errorf("Badmail reason %q should name the unreachable sender and the 5.1.2 of its domain", bdr)
	}
	data, _ := os.ReadFile(bad[0])
	if !bytes.Contains(data, []byte("multipart/report")) {
		t.Errorf("the message in Badmail should be the NDR that could not go")
	}
	if len(notice[0].To) != 1 || notice[0].To[0] != "postmaster@admin.test" || !bytes.Contains(notice[0].Data, []byte("Badmail")) {
		t.Errorf("SendBadTo notice: %+v", notice[0])
	}
	if e.q.Stats().Badmail.Load() != 1 {
		t.Errorf("Badmail count %d, want 1", e.q.Stats().Badmail.Load())
	}
}

// TestNotifySuccessAndNever: NOTIFY=SUCCESS brings a "relayed" report for
// a next hop without DSN and a "delivered" one for a local mailbox, while a
// next hop that offers DSN gets the NOTIFY passed on and reports itself;
// NOTIFY=NEVER suppresses the failure report.
func TestNotifySuccessAndNever(t *testing.T) {
	port, ls := testnet.SamePort(t, "127.0.0.2", "127.0.0.3", "127.0.0.4")
	dsnHop, sender, plainHop := testnet.ServeSink(t, ls[0]), testnet.ServeSink(t, ls[1]), testnet.ServeSinkNoDSN(t, ls[2])
	dsnHop.Rcpt = refuse("bad")
	e := newEnv(t, port)
	e.dns.MX(t, "remote.test", 10, "mx.remote.test", "127.0.0.2")
	e.dns.MX(t, "sender.test", 10, "mx.sender.test", "127.0.0.3")
	e.dns.MX(t, "plain.test", 10, "mx.plain.test", "127.0.0.4")
	e.start(nil)
	e.sendP("sender@sender.test", []string{"good@remote.test", "bad@remote.test", "good@plain.test", "alice@example.com"},
		[]string{"NOTIFY=SUCCESS", "NOTIFY=NEVER", "NOTIFY=SUCCESS,FAILURE", "NOTIFY=SUCCESS"}, "", body)
	got := sender.Wait(t, 1, 20*time.Second)
	e.waitEmpty(10 * time.Second)
	time.Sleep(5 * unit)
	if sender.Count() != 1 {
		t.Fatalf("sender got %d reports, want only the success one", sender.Count())
	}
	r := parseReport(t, got[0].Data)
	actions := map[string]string{}
	for _, rc := range r.rcpts {
		actions[rc.Get("Final-Recipient")] = rc.Get("Action")
	}
	want := map[string]string{"rfc822;good@plain.test": "relayed", "rfc822;alice@example.com": "delivered"}
	if !reflect.DeepEqual(actions, want) {
		t.Errorf("success report actions %v, want %v", actions, want)
	}
	hop := dsnHop.Wait(t, 1, time.Second)
	if len(hop[0].To) != 1 || hop[0].Notify[0] != "SUCCESS" {
		t.Errorf("DSN next hop got %v with NOTIFY %q, want good@remote.test with SUCCESS", hop[0].To, hop[0].Notify)
	}
	if plain := plainHop.Wait(t, 1, time.Second); plain[0].Notify[0] != "" {
		t.Errorf("next hop without DSN got NOTIFY %q", plain[0].Notify[0])
	}
}

// TestLocalDeliveryMaildir: recipients of a local domain each get a file in
// their Maildir's new/ folder.
func TestLocalDeliveryMaildir(t *testing.T) {
	e := newEnv(t, 25)
	e.start(nil)
	e.send("sender@sender.test", []string{"alice@example.com", "Bob@Example.com"}, body)
	e.waitEmpty(20 * time.Second)
	store := e.vs1().Delivery.MailStore
	for _, who := range []string{"alice", "bob"} {
		got := files(t, filepath.Join(store, "example.com", who, "new"), "")
		if len(got) != 1 {
			t.Fatalf("%s's Maildir new/ holds %v, want one message", who, got)
		}
		data, _ := os.ReadFile(got[0])
		if !bytes.Contains(data, []byte("hello")) || !bytes.Contains(data, []byte("Delivered-To:")) {
			t.Errorf("%s's message: %q", who, data)
		}
	}
}

// TestDropFolder: a domain with SMTP_DROP gets its mail as files in its
// Drop folder.
func TestDropFolder(t *testing.T) {
	e := newEnv(t, 25)
	drop := filepath.Join(e.base, "DropHere")
	e.domain("drop.test", "RouteAction", "1", "RouteActionString", drop)
	e.start(nil)
	e.send("sender@sender.test", []string{"x@drop.test", "y@drop.test"}, body)
	e.waitEmpty(20 * time.Second)
	got := files(t, drop, ".eml")
	if len(got) != 1 {
		t.Fatalf("drop folder holds %v, want one file for the message", got)
	}
	data, _ := os.ReadFile(got[0])
	if !bytes.Contains(data, []byte("x@drop.test")) || !bytes.Contains(data, []byte("y@drop.test")) || !bytes.Contains(data, []byte("hello")) {
		t.Errorf("drop file: %q", data)
	}
}

// TestLMTP: with LmtpServer set, local mail goes to the LMTP server.
func TestLMTP(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "lmtp.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	lm := testnet.ServeLMTP(t, l)
	e := newEnv(t, 25)
	e.set("LmtpServer", "unix:"+sock)
	e.start(nil)
	e.send("sender@sender.test", []string{"alice@example.com"}, body)
	got := lm.Wait(t, 1, 20*time.Second)
	e.waitEmpty(10 * time.Second)
	if got[0].To[0] != "alice@example.com" {
		t.Errorf("LMTP got %+v", got)
	}
}

// TestRestartTakesUpTheQueue: messages in the spool before the manager
// starts are delivered; a recipient the saved state says was delivered is
// not delivered again.
func TestRestartTakesUpTheQueue(t *testing.T) {
	port, s := sinks(t, "127.0.0.2")
	e := newEnv(t, port)
	e.dns.MX(t, "remote.test", 10, "mx.remote.test", "127.0.0.2")
	e.build()
	p1 := e.spoolMsg("sender@sender.test", []string{"one@remote.test"}, nil, "", body)
	p2 := e.spoolMsg("sender@sender.test", []string{"done@remote.test", "two@remote.test"}, nil, "", body)
	state := `{"Attempts":1,"NextAttempt":"2000-01-01T00:00:00Z","Rcpts":[{"Addr":"done@remote.test","Status":"delivered","Attempts":1},{"Addr":"two@remote.test","Status":"pending","Attempts":1}]}`
	if err := os.WriteFile(strings.TrimSuffix(p2, ".eml")+".qst", []byte(state), 0o640); err != nil {
		t.Fatal(err)
	}
	e.start(nil)
	s[0].Wait(t, 2, 20*time.Second)
	e.waitEmpty(10 * time.Second)
	var rcpts []string
	for _, m := range s[0].Messages() {
		rcpts = append(rcpts, m.To...)
	}
	if strings.Join(rcpts, ",") != "one@remote.test,two@remote.test" && strings.Join(rcpts, ",") != "two@remote.test,one@remote.test" {
		t.Errorf("delivered to %v, want one@ and two@ (done@ was delivered before the restart)", rcpts)
	}
	for _, p := range []string{p1, p2, strings.TrimSuffix(p2, ".eml") + ".qst"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there after delivery", p)
		}
	}
}

// TestInspectRetryDelete: List shows a deferred message with its last
// error; Retry makes it due now; Delete removes it.
func TestInspectRetryDelete(t *testing.T) {
	port, s := sinks(t, "127.0.0.2")
	var refuse atomic.Bool
	refuse.Store(true)
	s[0].Rcpt = func(string) *smtp.SMTPError {
		if refuse.Load() {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "later"}
		}
		return nil
	}
	e := newEnv(t, port)
	e.set("SmtpRemoteProgressiveRetry", "10080") // a week: only Retry brings it back
	e.dns.MX(t, "remote.test", 10, "mx.remote.test", "127.0.0.2")
	e.start(nil)
	p := e.send("sender@sender.test", []string{"r@remote.test"}, body)
	p2 := e.send("sender@sender.test", []string{"del@remote.test"}, body)
	id, id2 := strings.TrimSuffix(filepath.Base(p), ".eml"), strings.TrimSuffix(filepath.Base(p2), ".eml")
	var info queue.Info
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok := 0
		for _, in := range e.q.List() {
			if in.Attempts >= 1 && in.State == "queued" {
				ok++
				if in.ID == id {
					info = in
				}
			}
		}
		if ok == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("messages never deferred: %+v", e.q.List())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(info.LastError, "451") || info.NextAttempt.Before(time.Now().Add(time.Minute)) || info.Recipients[0].Status != "pending" {
		t.Errorf("List: %+v; want the 451, a next attempt far ahead, the recipient pending", info)
	}
	if err := e.q.Delete(id2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p2); !os.IsNotExist(err) {
		t.Errorf("deleted message still in the spool")
	}
	refuse.Store(false)
	if err := e.q.Retry(id); err != nil {
		t.Fatal(err)
	}
	s[0].Wait(t, 1, 10*time.Second)
	e.waitEmpty(10 * time.Second)
	if err := e.q.Retry("nope"); err != queue.ErrNotQueued {
		t.Errorf("Retry of an unknown id: %v, want ErrNotQueued", err)
	}
}

// TestMasquerade: with DoMasquerade, a sender in a local domain leaves with
// MasqueradeDomain in MAIL FROM, a relayed sender of another domain is
// left alone, and NDRs come from postmaster@MasqueradeDomain.
func TestMasquerade(t *testing.T) {
	port, s := sinks(t, "127.0.0.2", "127.0.0.3")
	s[0].Rcpt = refuse("bad")
	e := newEnv(t, port)
	e.set("DoMasquerade", "1")
	e.set("MasqueradeDomain", "Corp.Example")
	e.dns.MX(t, "remote.test", 10, "mx.remote.test", "127.0.0.2")
	e.dns.MX(t, "sender.test", 10, "mx.sender.test", "127.0.0.3")
	e.start(nil)
	e.send("alice@example.com", []string{"bob@remote.test"}, body)
	e.send("carol@sender.test", []string{"bad@remote.test"}, body)
	got := s[0].Wait(t, 1, 20*time.Second)
	if got[0].From != "alice@corp.example" {
		t.Errorf("local sender left as %q, want alice@corp.example", got[0].From)
	}
	ndr := s[1].Wait(t, 1, 20*time.Second)
	if ndr[0].From != "" || len(ndr[0].To) != 1 || ndr[0].To[0] != "carol@sender.test" {
		t.Errorf("NDR envelope %q -> %v, want <> -> carol@sender.test (the relayed sender unmasqueraded)", ndr[0].From, ndr[0].To)
	}
	if !strings.Contains(string(ndr[0].Data), "<postmaster@corp.example>\r\n") {
		t.Errorf("NDR is not from postmaster@corp.example:\n%s", ndr[0].Data)
	}
	e.waitEmpty(10 * time.Second)
}
