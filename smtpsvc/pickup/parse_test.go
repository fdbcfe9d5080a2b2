package pickup

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

var fixed = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

func parse(t *testing.T, file string, stuffed bool) (*Message, error) {
	t.Helper()
	return Parse([]byte(file), ParseOptions{DotStuffed: stuffed, Hostname: "mail.example.com", Now: fixed, ID: "1"})
}

func TestParseEnvelope(t *testing.T) {
	cases := []struct {
		name   string
		file   string
		from   string
		to     []string
		header bool
	}{
		{"x-lines", "x-sender: a@example.org\nx-receiver: b@example.com\nX-Receiver: <c@example.com>\nSubject: hi\n\nbody\n",
			"a@example.org", []string{"b@example.com", "c@example.com"}, false},
		{"x-lines win over headers", "x-sender: <a@example.org>\nx-receiver: b@example.com\nFrom: z@example.net\nTo: y@example.net\n\nbody\n",
			"a@example.org", []string{"b@example.com"}, false},
		{"null sender", "x-sender: <>\nx-receiver: b@example.com\nSubject: bounce\n\n.\n",
			"", []string{"b@example.com"}, false},
		{"headers", "From: Ann <a@example.org>\nTo: b@example.com, \"C\" <c@example.com>\nCc: d@example.com\nBcc: e@example.com\n\nbody\n",
			"a@example.org", []string{"b@example.com", "c@example.com", "d@example.com", "e@example.com"}, true},
		{"sender over from", "From: a@example.org\nSender: s@example.org\nTo: b@example.com\n\nx\n",
			"s@example.org", []string{"b@example.com"}, true},
		{"folded to, duplicates once", "From: a@example.org\nTo: b@example.com,\n c@example.com\nCc: B@example.com\n\nx\n",
			"a@example.org", []string{"b@example.com", "c@example.com"}, true},
		{"group", "From: a@example.org\nTo: team: b@example.com, c@example.com;\n\nx\n",
			"a@example.org", []string{"b@example.com", "c@example.com"}, true},
		{"CRLF", "From: a@example.org\r\nTo: b@example.com\r\n\r\nx\r\n",
			"a@example.org", []string{"b@example.com"}, true},
		{"header only", "From: a@example.org\nTo: b@example.com\nSubject: nothing else",
			"a@example.org", []string{"b@example.com"}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := parse(t, c.file, true)
			if err != nil {
				t.Fatal(err)
			}
			if m.From != c.from || !reflect.DeepEqual(m.To, c.to) || m.Header != c.header {
				t.Errorf("got from %q to %q header %v, want %q %q %v", m.From, m.To, m.Header, c.from, c.to, c.header)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	cases := []struct {
		name, file string
		line       int
		reason     string
	}{
		{"empty", " \n\n", 0, "empty"},
		{"NUL", "From: a@example.org\nTo: b@example.com\n\nx\x00y\n", 4, "NUL"},
		{"no sender", "To: b@example.com\n\nx\n", 0, "no Sender or From"},
		{"no recipient", "From: a@example.org\nSubject: x\n\nx\n", 0, "no recipient"},
		{"bad from", "From: not an address\nTo: b@example.com\n\nx\n", 1, "From:"},
		{"bad to", "From: a@example.org\nTo: b@example.com, @@\n\nx\n", 2, "To:"},
		{"no domain", "From: a@example.org\nTo: b\n\nx\n", 2, "To:"},
		{"body without blank line", "From: a@example.org\nTo: b@example.com\nthis is the body\n", 3, "not a header field"},
		{"continuation first", " folded\nFrom: a@example.org\n\nx\n", 1, "continuation"},
		{"x-sender twice", "x-sender: a@example.org\nx-sender: b@example.org\nx-receiver: c@example.com\n\nx\n", 2, "second x-sender"},
		{"x-sender alone", "x-sender: a@example.org\nFrom: a@example.org\nTo: b@example.com\n\nx\n", 1, "without any x-receiver"},
		{"x-receiver alone", "x-receiver: c@example.com\nFrom: a@example.org\n\nx\n", 1, "without an x-sender"},
		{"bad x-receiver", "x-sender: a@example.org\nx-receiver: <c@example.com\n\nx\n", 2, "unbalanced"},
		{"lone dot inside", "From: a@example.org\nTo: b@example.com\n\nline\n.\nmore\n", 5, "single \".\""},
		{"x-lines only", "x-sender: a@example.org\nx-receiver: c@example.com\n", 0, "no header fields"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parse(t, c.file, true)
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *pickup.Error", err)
			}
			if pe.Line != c.line || !strings.Contains(pe.Reason, c.reason) {
				t.Errorf("got line %d %q, want line %d with %q", pe.Line, pe.Reason, c.line, c.reason)
			}
		})
	}
}

func TestParseData(t *testing.T) {
	file := "x-sender: a@example.org\nx-receiver: b@example.com\nFrom: a@example.org\nBcc: hidden@example.com\nSubject: s\n\n..leading dot\nplain\n.\n"
	m, err := parse(t, file, true)
	if err != nil {
		t.Fatal(err)
	}
	want := "Date: Sat, 05 Dec 2026 12:00:00 +0000\r\nMessage-ID: <pickup.1@mail.example.com>\r\n" +
		"From: a@example.org\r\nSubject: s\r\n\r\n.leading dot\r\nplain\r\n"
	if string(m.Data) != want {
		t.Errorf("data:\n%q\nwant\n%q", m.Data, want)
	}
	if m.EightBit || m.UTF8 {
		t.Errorf("EightBit %v UTF8 %v, want false", m.EightBit, m.UTF8)
	}

	// Not dot-stuffed: dots stay, a lone "." is text.
	m, err = parse(t, "Date: x\nMessage-ID: <1@x>\nFrom: a@example.org\nTo: b@example.com\n\n..two\n.\nend\n", false)
	if err != nil {
		t.Fatal(err)
	}
	if want := "Date: x\r\nMessage-ID: <1@x>\r\nFrom: a@example.org\r\nTo: b@example.com\r\n\r\n..two\r\n.\r\nend\r\n"; string(m.Data) != want {
		t.Errorf("data:\n%q\nwant\n%q", m.Data, want)
	}

	m, err = parse(t, "From: a@example.org\nTo: jörg@example.com\n\nGrüße\n", true)
	if err != nil {
		t.Fatal(err)
	}
	if !m.EightBit || !m.UTF8 {
		t.Errorf("EightBit %v UTF8 %v, want true", m.EightBit, m.UTF8)
	}
}

func TestBadmailID(t *testing.T) {
	for name, want := range map[string]string{
		"msg1.eml":               "pickup-msg1.eml",
		"a..b":                   "pickup-a._b",
		"sp ace\x01.eml":         "pickup-sp_ace_.eml",
		"trailing.":              "pickup-trailing",
		strings.Repeat("x", 300): "pickup-" + strings.Repeat("x", 173),
	} {
		if got := badmailID(name); got != want {
			t.Errorf("badmailID(%q) = %q, want %q", name, got, want)
		}
	}
}
