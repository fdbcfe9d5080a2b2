package session_test

import (
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ds2mb/ds2mb/smtpsvc/spool"
)

// dotDecode is RFC 5321 §4.5.2's transparency undone the way net/textproto's
// DotReader does it, byte by byte, with CRLF kept (go-smtp's dataReader
// before the ds2mb patch): the reference the patched reader must match. It
// reports how many input bytes the message took, -1 if it never ended.
func dotDecode(in string) (out string, used int) {
	const (
		beginLine = iota
		dot
		dotCR
		cr
		data
	)
	state := beginLine
	var b strings.Builder
	for i := 0; i < len(in); i++ {
		c := in[i]
		switch state {
		case beginLine:
			if c == '.' {
				state = dot
				continue
			}
			if c == '\r' {
				state = cr
				break
			}
			state = data
		case dot:
			if c == '\r' {
				state = dotCR
				continue
			}
			state = data
		case dotCR:
			if c == '\n' {
				return b.String(), i + 1
			}
			state = data
		case cr:
			if c == '\n' {
				state = beginLine
				break
			}
			state = data
		case data:
			if c == '\r' {
				state = cr
			}
		}
		b.WriteByte(c)
	}
	return b.String(), -1
}

// TestDataDecodingRandom: message bodies full of dots, CRs, LFs and long
// runs, written raw after DATA over a real socket, are spooled exactly as
// the byte-by-byte reference decodes them, message after message on one
// session; so the patched reader's bulk copy changes nothing.
func TestDataDecodingRandom(t *testing.T) {
	f := startProps(t, nil, nil, nil)
	r := dialRaw(t, f.addr)
	r.expect("EHLO client.test", "250")
	rng := rand.New(rand.NewPCG(7, 11))
	pieces := []string{"a", "xyz", ".", "..", "\r", "\n", "\r\n", "\r\n.", "\r\n..", ".\r", strings.Repeat("q", 700)}
	seen := map[string]bool{}
	sent := 0
	for sent < 150 {
		var body strings.Builder
		body.WriteString("Subject: random\r\n\r\n")
		for n := rng.IntN(400); n > 0; n-- {
			body.WriteString(pieces[rng.IntN(len(pieces))])
		}
		in := body.String() + "\r\n.\r\n"
		want, used := dotDecode(in)
		if used != len(in) || longestLine(in) > 1900 {
			continue // ends early (the rest would be read as commands), or a line too long
		}
		r.expect("MAIL FROM:<a@example.org>", "250")
		r.expect("RCPT TO:<rcpt@example.com>", "250")
		r.expect("DATA", "354")
		if _, err := io.WriteString(r.c, in); err != nil {
			t.Fatal(err)
		}
		if code, msg := r.read(); code != 250 {
			t.Fatalf("message %d: %d %s", sent, code, msg)
		}
		var path string
		for _, p := range spooled(t, f.vs.QueueDir) {
			if !seen[p] {
				path, seen[p] = p, true
			}
		}
		st, err := spool.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := st.Open()
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !strings.HasSuffix(string(got), want) || !strings.HasPrefix(string(got), "Received: ") {
			t.Fatalf("message %d spooled as\n%q\nwant a Received field, then\n%q", sent, got, want)
		}
		sent++
	}
}

func longestLine(s string) int {
	m := 0
	for _, l := range strings.Split(s, "\n") {
		m = max(m, len(l))
	}
	return m
}

// TestDataLineLimit: go-smtp's line limit (MaxLineLength 2000, a line's
// count starting at 1 for the LF before it and including its CR) holds at
// its exact edge inside DATA: 1998 characters pass, 1999 are refused with
// the reason, and the session goes on.
func TestDataLineLimit(t *testing.T) {
	f := startProps(t, nil, nil, nil)
	r := dialRaw(t, f.addr)
	r.expect("EHLO client.test", "250")
	for _, tc := range []struct {
		n    int
		want string
	}{{1998, "250"}, {1999, "554 5.0.0 Error: transaction failed: smtp: too long a line"}} {
		r.expect("MAIL FROM:<a@example.org>", "250")
		r.expect("RCPT TO:<rcpt@example.com>", "250")
		r.expect("DATA", "354")
		io.WriteString(r.c, "Subject: long\r\n\r\n"+strings.Repeat("l", tc.n)+"\r\n.\r\n")
		code, msg := r.read()
		if got := itoa(code) + " " + msg; !strings.HasPrefix(got, tc.want) {
			t.Fatalf("a line of %d: %q, want %q", tc.n, got, tc.want)
		}
		if code != 250 {
			break // the rest of that line is not read as commands: the session is closed or reset by the server
		}
	}
}
