package local

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/ds2mb/ds2mb/smtpsvc/delivery"
)

// lmtpServer is a go-smtp LMTP server whose backend records what it
// receives and answers as the test sets it up.
type lmtpServer struct {
	addr string // as LMTP.Addr takes it

	mu       sync.Mutex
	helo     []string
	received []lmtpMsg
	mailErr  map[string]*smtp.SMTPError // by sender, at MAIL
	rcptErr  map[string]*smtp.SMTPError // by recipient, at RCPT
	dataErr  map[string]*smtp.SMTPError // by recipient, after DATA
}

type lmtpMsg struct {
	from string
	to   []string
	data string
}

// startLMTP serves LMTP on l until the test ends.
func startLMTP(t *testing.T, l net.Listener, addr string) *lmtpServer {
	t.Helper()
	ls := &lmtpServer{addr: addr, mailErr: map[string]*smtp.SMTPError{},
		rcptErr: map[string]*smtp.SMTPError{}, dataErr: map[string]*smtp.SMTPError{}}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		ls.mu.Lock()
		ls.helo = append(ls.helo, c.Hostname())
		ls.mu.Unlock()
		return &lmtpSession{srv: ls}, nil
	}))
	s.LMTP = true
	s.Domain = "lmtp.test"
	s.ReadTimeout = 10 * time.Second
	s.WriteTimeout = 10 * time.Second
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return ls
}

func (ls *lmtpServer) messages() []lmtpMsg {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return append([]lmtpMsg(nil), ls.received...)
}

type lmtpSession struct {
	srv  *lmtpServer
	from string
	to   []string
}

func (s *lmtpSession) Reset()        { s.from, s.to = "", nil }
func (s *lmtpSession) Logout() error { return nil }

func (s *lmtpSession) Mail(from string, _ *smtp.MailOptions) error {
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	if e := s.srv.mailErr[from]; e != nil {
		return e
	}
	s.from = from
	return nil
}

func (s *lmtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	if e := s.srv.rcptErr[to]; e != nil {
		return e
	}
	s.to = append(s.to, to)
	return nil
}

func (s *lmtpSession) Data(io.Reader) error {
	return errors.New("an LMTP server calls LMTPData")
}

// LMTPData records the message and gives each recipient its reply.
func (s *lmtpSession) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	s.srv.received = append(s.srv.received, lmtpMsg{s.from, append([]string(nil), s.to...), string(data)})
	for _, rc := range s.to {
		if e := s.srv.dataErr[rc]; e != nil {
			status.SetStatus(rc, e)
		} else {
			status.SetStatus(rc, nil)
		}
	}
	return nil
}

// TestLMTP: over a unix socket and over TCP on loopback, one transaction
// delivers the accepted recipients; a RCPT refusal and the per-recipient
// replies after DATA are each recipient's result, quoted from the server.
func TestLMTP(t *testing.T) {
	listen := map[string]func(t *testing.T) (net.Listener, string){
		"unix": func(t *testing.T) (net.Listener, string) {
			p := filepath.Join(t.TempDir(), "lmtp.sock")
			l, err := net.Listen("unix", p)
			if err != nil {
				t.Fatal(err)
			}
			return l, "unix:" + p
		},
		"tcp": func(t *testing.T) (net.Listener, string) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			return l, l.Addr().String()
		},
	}
	for _, name := range []string{"unix", "tcp"} {
		t.Run(name, func(t *testing.T) {
			l, addr := listen[name](t)
			ls := startLMTP(t, l, addr)
			ls.rcptErr["nobody@example.com"] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
			ls.dataErr["full@example.com"] = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 2, 2}, Message: "Mailbox full"}
			ls.dataErr["later@example.com"] = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "Try later"}

			rcpts := []string{"alice@example.com", "nobody@example.com", "full@example.com", "later@example.com", "alice@example.com"}
			job, _ := newJob("q1", "sender@sender.test", rcpts, testMsg)
			lm := &LMTP{Addr: addr, HeloName: "mx.local.test", Timeout: 10 * time.Second}
			res := lm.Deliver(context.Background(), job)
			if len(res) != len(rcpts) {
				t.Fatalf("got %d results, want %d", len(res), len(rcpts))
			}
			checkResult(t, res[0], "alice@example.com", 250, "2.0.0")
			checkResult(t, res[1], "nobody@example.com", 550, "5.1.1")
			checkResult(t, res[2], "full@example.com", 552, "5.2.2")
			checkResult(t, res[3], "later@example.com", 451, "4.2.0")
			checkResult(t, res[4], "alice@example.com", 250, "2.0.0")
			for _, r := range res {
				if !r.FromRemote || r.RemoteMTA != addr {
					t.Errorf("%+v: want FromRemote and RemoteMTA %q", r, addr)
				}
			}
			if res[1].Text != "No such user" || !strings.Contains(res[2].Text, "Mailbox full") || !res[2].Permanent() || !res[3].Temporary() {
				t.Errorf("replies not carried: %+v", res[1:4])
			}
			got := ls.messages()
			if len(got) != 1 {
				t.Fatalf("server got %d messages, want 1 transaction", len(got))
			}
			m := got[0]
			if m.from != "sender@sender.test" || strings.Join(m.to, ",") != "alice@example.com,full@example.com,later@example.com" {
				t.Errorf("server got MAIL %q RCPT %v", m.from, m.to)
			}
			if m.data != testMsg {
				t.Errorf("server got %q, want %q", m.data, testMsg)
			}
			if ls.helo[0] != "mx.local.test" {
				t.Errorf("LHLO %q, want mx.local.test", ls.helo[0])
			}
		})
	}
}

// TestLMTPRefusals: MAIL refused is every recipient's result; with no
// recipient accepted no DATA is sent.
func TestLMTPRefusals(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ls := startLMTP(t, l, l.Addr().String())
	ls.mailErr["spammer@bad.test"] = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Go away"}
	ls.rcptErr["x@example.com"] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
	lm := &LMTP{Addr: ls.addr, Timeout: 10 * time.Second}

	job, _ := newJob("q", "spammer@bad.test", []string{"a@example.com", "b@example.com"}, testMsg)
	for i, r := range lm.Deliver(context.Background(), job) {
		checkResult(t, r, job.Rcpts[i], 553, "5.7.1")
		if !r.FromRemote {
			t.Errorf("%+v: want FromRemote", r)
		}
	}
	job, _ = newJob("q", "s@sender.test", []string{"x@example.com"}, testMsg)
	checkResult(t, lm.Deliver(context.Background(), job)[0], "x@example.com", 550, "5.1.1")
	if got := ls.messages(); len(got) != 0 {
		t.Errorf("server got %d messages, want none", len(got))
	}
}

// TestLMTPConnectionFailure: no server is a temporary 4.4.1 for all.
func TestLMTPConnectionFailure(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	for _, addr := range []string{closed, "unix:" + filepath.Join(t.TempDir(), "missing.sock")} {
		job, _ := newJob("q", "s@sender.test", []string{"a@example.com", "b@example.com"}, testMsg)
		res := (&LMTP{Addr: addr, Timeout: 5 * time.Second}).Deliver(context.Background(), job)
		for i, r := range res {
			checkResult(t, r, job.Rcpts[i], 451, "4.4.1")
			if r.FromRemote || r.RemoteMTA != addr || !r.Temporary() {
				t.Errorf("%s: %+v", addr, r)
			}
		}
	}
	job, _ := newJob("q", "s@sender.test", []string{"a@example.com"}, testMsg)
	checkResult(t, (&LMTP{}).Deliver(context.Background(), job)[0], "a@example.com", 451, "4.3.5")
}

// silentListener accepts connections and never answers them.
func silentListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().String()
}

// TestLMTPTimeout: a server that never greets gives 4.4.1 after Timeout;
// a cancelled context ends the wait at once (4.3.2).
func TestLMTPTimeout(t *testing.T) {
	addr := silentListener(t)
	job, _ := newJob("q", "s@sender.test", []string{"a@example.com"}, testMsg)
	start := time.Now()
	res := (&LMTP{Addr: addr, Timeout: 300 * time.Millisecond}).Deliver(context.Background(), job)
	if d := time.Since(start); d < 250*time.Millisecond || d > 5*time.Second {
		t.Errorf("gave up after %v, want about 300ms", d)
	}
	checkResult(t, res[0], "a@example.com", 451, "4.4.1")

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start = time.Now()
	res = (&LMTP{Addr: addr, Timeout: time.Minute}).Deliver(ctx, job)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancel took %v", d)
	}
	checkResult(t, res[0], "a@example.com", 451, "4.3.2")
}

// TestLMTPBrokenMessage: a message that cannot be read to its end is not
// ended with "." (so not delivered) and is a temporary failure.
func TestLMTPBrokenMessage(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ls := startLMTP(t, l, l.Addr().String())
	ls.rcptErr["x@example.com"] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
	job := &delivery.Job{ID: "q", From: "s@sender.test", Rcpts: []string{"a@example.com", "x@example.com"}, Size: 100,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(&brokenReader{}), nil }}
	res := (&LMTP{Addr: ls.addr, Timeout: 10 * time.Second}).Deliver(context.Background(), job)
	checkResult(t, res[0], "a@example.com", 451, "4.3.0")
	checkResult(t, res[1], "x@example.com", 550, "5.1.1")
	time.Sleep(100 * time.Millisecond) // let the server see the connection end
	if got := ls.messages(); len(got) != 0 {
		t.Errorf("server received %q from a broken message", got)
	}
}

// TestLMTPDeliveredStatus: the enhanced code of a 2xx reply is kept.
func TestLMTPDeliveredStatus(t *testing.T) {
	r := lmtpDelivered("a@b", "x", "2.1.5 Ok, saved")
	if r.Status != "2.1.5" || r.Text != "Ok, saved" || r.Code != 250 || !r.FromRemote {
		t.Errorf("%+v", r)
	}
	r = lmtpDelivered("a@b", "x", "Saved")
	if r.Status != "2.0.0" || r.Text != "Saved" {
		t.Errorf("%+v", r)
	}
}
