// Package protolog writes a virtual server's protocol log in the W3C
// extended log file format IIS uses, when its LogType is 1 and
// LogFileDirectory is set: one file per period in
// "<LogFileDirectory>/SMTPSVC<n>/", named "ex<yymmdd>.log" (daily, the
// default), "ex<yymmddhh>.log" (hourly), "ex<yymm>.log" (monthly) or
// "ex<yymm><w>.log" (weekly, w = week of the month), times in UTC as IIS
// writes them. LogFilePeriod 0 (by size) is treated as daily.
//
// Every new file starts with the directives
//
//	#Software: ds2mb smtpsvc
//	#Version: 1.0
//	#Date: 2026-11-26 01:02:03
//	#Fields: date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method cs-uri-query sc-status sc-bytes cs-bytes time-taken
//
// then one line per logged command. As in IIS's SMTP log, cs-username is the
// client's HELO/EHLO name (or the authenticated user once there is one),
// s-sitename is "SMTPSVC<n>", cs-method the SMTP verb and cs-uri-query its
// argument; a field with no value is "-" and spaces inside a value become
// "+".
//
// Logs are shared: Open returns the same *Log for the same folder and
// instance, so configuration generations running side by side write one
// file. Each line is one write(2) under a lock.
package protolog

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Fields is the #Fields directive's value.
const Fields = "date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method cs-uri-query sc-status sc-bytes cs-bytes time-taken"

// Entry is one logged command.
type Entry struct {
	Time       time.Time // when the command finished; zero = now
	ClientIP   string
	Username   string // HELO name or authenticated user
	ServerIP   string
	ServerPort int
	Method     string // EHLO, MAIL, RCPT, DATA, AUTH, QUIT, …
	Query      string // the argument
	Status     int    // reply code
	BytesSent  int64
	BytesRecv  int64
	TimeTaken  time.Duration
}

// Log is one virtual server's protocol log.
type Log struct {
	dir      string // <LogFileDirectory>/SMTPSVC<n>
	site     string // SMTPSVC<n>
	computer string
	period   int
	now      func() time.Time

	mu      sync.Mutex
	name    string // current file name
	f       *os.File
	failing bool // the last Write failed (its error was returned)
}

var (
	regMu    sync.Mutex
	registry = map[string]*Log{}
)

// Options tune Open.
type Options struct {
	Period   int              // LogFilePeriod: 0 size (as daily), 1 daily, 2 weekly, 3 monthly, 4 hourly
	Computer string           // s-computername; "" = os.Hostname()
	Now      func() time.Time // clock; nil = time.Now
}

// Open returns the log of virtual server instance under logDir, shared with
// every other Open of the same folder and instance. A later Open's Period
// replaces the earlier one (a reload may change LogFilePeriod); the clock and
// computer name stay the first Open's. The folder is created on the first
// write.
func Open(logDir string, instance int, o Options) *Log {
	site := "SMTPSVC" + strconv.Itoa(instance)
	dir := filepath.Join(logDir, site)
	regMu.Lock()
	defer regMu.Unlock()
	if l := registry[dir]; l != nil {
		l.mu.Lock()
		l.period = o.Period
		l.mu.Unlock()
		return l
	}
	if o.Computer == "" {
		o.Computer, _ = os.Hostname()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	l := &Log{dir: dir, site: site, computer: o.Computer, period: o.Period, now: o.Now}
	registry[dir] = l
	return l
}

// Dir is the folder the log files go to.
func (l *Log) Dir() string { return l.dir }

// FileName is the log file name for a time under the log's period.
func (l *Log) FileName(t time.Time) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fileName(t)
}

// fileName is FileName with l.mu held.
func (l *Log) fileName(t time.Time) string {
	t = t.UTC()
	switch l.period {
	case 4:
		return t.Format("ex060102") + fmt.Sprintf("%02d.log", t.Hour())
	case 3:
		return t.Format("ex0601") + ".log"
	case 2:
		return t.Format("ex0601") + strconv.Itoa((t.Day()-1)/7+1) + ".log"
	}
	return t.Format("ex060102") + ".log"
}

// Write appends one entry. It returns an error when the file cannot be
// opened or written — once per run of failures, so that a caller reporting
// it does not flood its log; the lines of a failing run are lost.
func (l *Log) Write(e *Entry) error {
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	t := e.Time.UTC()
	var b []byte
	b = t.AppendFormat(make([]byte, 0, 256), "2006-01-02 15:04:05")
	b = appendField(b, e.ClientIP)
	b = appendField(b, e.Username)
	b = appendField(b, l.site)
	b = appendField(b, l.computer)
	b = appendField(b, e.ServerIP)
	b = appendNum(b, int64(e.ServerPort))
	b = appendField(b, e.Method)
	b = appendField(b, e.Query)
	b = appendNum(b, int64(e.Status))
	b = appendNum(b, e.BytesSent)
	b = appendNum(b, e.BytesRecv)
	b = appendNum(b, e.TimeTaken.Milliseconds())
	b = append(b, '\r', '\n')

	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.open(t)
	if err == nil {
		if _, werr := l.f.Write(b); werr != nil {
			l.f.Close()
			l.f, l.name = nil, ""
			err = fmt.Errorf("protocol log %s: %w", l.dir, werr)
		}
	}
	if err != nil {
		if l.failing {
			return nil // reported when the failure began
		}
		l.failing = true
		return err
	}
	l.failing = false
	return nil
}

// open makes l.f the file for time t. l.mu is held.
func (l *Log) open(t time.Time) error {
	name := l.fileName(t)
	if l.f != nil && name == l.name {
		return nil
	}
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	if err := os.MkdirAll(l.dir, 0o750); err != nil {
		return fmt.Errorf("protocol log: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(l.dir, name), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("protocol log: %w", err)
	}
	if fi, err := f.Stat(); err == nil && fi.Size() == 0 {
		hdr := "#Software: ds2mb smtpsvc\r\n#Version: 1.0\r\n#Date: " + t.Format("2006-01-02 15:04:05") +
			"\r\n#Fields: " + Fields + "\r\n"
		if _, err := f.WriteString(hdr); err != nil {
			f.Close()
			return fmt.Errorf("protocol log: %w", err)
		}
	}
	l.f, l.name = f, name
	return nil
}

// Close closes the current file; a later Write opens it again.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f, l.name = nil, ""
	return err
}

func appendField(b []byte, v string) []byte {
	b = append(b, ' ')
	if v == "" {
		return append(b, '-')
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == ' ' || c == '\t':
			b = append(b, '+')
		case c < 0x20 || c == 0x7f:
			b = append(b, '?')
		default:
			b = append(b, c)
		}
	}
	return b
}

func appendNum(b []byte, n int64) []byte {
	b = append(b, ' ')
	return strconv.AppendInt(b, n, 10)
}

// Unregister forgets a shared log (closing its file), so that a later Open
// of the same folder and instance starts afresh with new options. Tests use
// it; a worker never needs to.
func Unregister(l *Log) {
	regMu.Lock()
	for k, v := range registry {
		if v == l {
			delete(registry, k)
		}
	}
	regMu.Unlock()
	l.Close()
}
