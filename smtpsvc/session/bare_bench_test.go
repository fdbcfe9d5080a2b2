package session_test

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-smtp"
)

// bareBackend is the reference the issue compares with: a go-smtp server
// that only writes each message to a file and fsyncs it and its folder.
type bareBackend struct {
	dir  string
	dirf *os.File
	n    atomic.Int64
}

type bareSession struct{ be *bareBackend }

func (be *bareBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return bareSession{be}, nil }
func (bareSession) Reset()                                          {}
func (bareSession) Logout() error                                   { return nil }
func (bareSession) Mail(string, *smtp.MailOptions) error            { return nil }
func (bareSession) Rcpt(string, *smtp.RcptOptions) error            { return nil }
func (s bareSession) Data(r io.Reader) error {
	f, err := os.Create(filepath.Join(s.be.dir, strconv.FormatInt(s.be.n.Add(1), 10)+".eml"))
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	f.Close()
	return s.be.dirf.Sync()
}

// BenchmarkBareReference4K is BenchmarkAccept4K against the bare server,
// to compare the session's overhead on the same machine in the same run.
func BenchmarkBareReference4K(b *testing.B) {
	dir := b.TempDir()
	dirf, _ := os.Open(dir)
	defer dirf.Close()
	srv := smtp.NewServer(&bareBackend{dir: dir, dirf: dirf})
	srv.Domain = "bare.test"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	runClients(b, l.Addr().String(), 20)
}
