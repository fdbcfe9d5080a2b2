package dsn

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

// parsed is a DSN read back with net/mail, mime and mime/multipart.
type parsed struct {
	header mail.Header
	params map[string]string // of the top-level Content-Type
	parts  []part
}

type part struct {
	ctype  string
	header textproto.MIMEHeader
	body   []byte // decoded (multipart undoes quoted-printable)
}

// parse reads a DSN as a mail client would; it fails the test when the
// message is not a multipart/report.
func parse(t testing.TB, data []byte) *parsed {
	t.Helper()
	p, err := parseErr(data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	return p
}

func parseErr(data []byte) (*parsed, error) {
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		return nil, err
	}
	if mt != "multipart/report" {
		return nil, fmt.Errorf("Content-Type %q", mt)
	}
	p := &parsed{header: m.Header, params: params}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		pt, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(pt)
		if err != nil {
			return nil, err
		}
		ct, _, err := mime.ParseMediaType(pt.Header.Get("Content-Type"))
		if err != nil {
			return nil, err
		}
		p.parts = append(p.parts, part{ctype: ct, header: pt.Header, body: body})
	}
	return p, nil
}

// status reads a message/delivery-status body: the per-message fields and
// one header per recipient block.
func status(t testing.TB, body []byte) (textproto.MIMEHeader, []textproto.MIMEHeader) {
	t.Helper()
	blocks := strings.Split(strings.TrimRight(string(body), "\r\n"), "\r\n\r\n")
	var hs []textproto.MIMEHeader
	for _, b := range blocks {
		h, err := textproto.NewReader(bufio.NewReader(strings.NewReader(b + "\r\n\r\n"))).ReadMIMEHeader()
		if err != nil {
			t.Fatalf("delivery-status block %q: %v", b, err)
		}
		hs = append(hs, h)
	}
	return hs[0], hs[1:]
}

var (
	arrival = time.Date(2026, 11, 26, 1, 2, 3, 0, time.UTC)
	now     = time.Date(2026, 11, 26, 13, 2, 3, 0, time.UTC)
)

const origHeaders = "Received: from client.example.org ([127.0.0.1]) by mail.example.com\r\n" +
	"From: Sender <sender@example.org>\r\n" +
	"To: a@example.com, b@example.com\r\n" +
	"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n" +
	"Message-ID: <orig-1@example.org>\r\n"

const origBody = "Hello,\r\nthis is the body.\r\n"

const origMsg = origHeaders + "\r\n" + origBody

func failureReport() *Report {
	return &Report{
		ReportingMTA: "mail.example.com",
		From:         "postmaster@example.com",
		To:           "sender@example.org",
		EnvelopeID:   "QQ314159+2BX+3D1",
		ArrivalDate:  arrival,
		Recipients: []Recipient{
			{Address: "a@example.com", Original: "rfc822;A+2Bx@example.com", Action: "failed", Status: "5.1.1",
				RemoteMTA: "mx.example.com", Diagnostic: "550 5.1.1 No such user", LastAttempt: now,
				WillRetryUntil: now.Add(time.Hour)},
			{Address: "b@example.com", Action: "failed", Status: "5.2.2", Diagnostic: "552 5.2.2 Mailbox full", LastAttempt: now},
		},
		Original: strings.NewReader(origMsg),
		Now:      now,
	}
}

func TestFailure(t *testing.T) {
	data, err := Build(failureReport())
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(string(data), "\n") {
		if i < strings.Count(string(data), "\n") && !strings.HasSuffix(l, "\r") {
			t.Fatalf("line %d %q does not end in CRLF", i+1, l)
		}
	}
	p := parse(t, data)
	h := p.header
	from, err := mail.ParseAddress(h.Get("From"))
	if err != nil || from.Name != "Mail Delivery System" || from.Address != "postmaster@example.com" {
		t.Errorf("From %q: %+v %v", h.Get("From"), from, err)
	}
	if to, err := mail.ParseAddress(h.Get("To")); err != nil || to.Address != "sender@example.org" {
		t.Errorf("To %q: %v", h.Get("To"), err)
	}
	if d, err := h.Date(); err != nil || !d.Equal(now) {
		t.Errorf("Date %q: %v", h.Get("Date"), err)
	}
	want := map[string]string{
		"Subject":        "Delivery Status Notification (Failure)",
		"Mime-Version":   "1.0",
		"Auto-Submitted": "auto-replied",
		"Content-Class":  "urn:content-classes:dsn",
		"In-Reply-To":    "<orig-1@example.org>",
		"References":     "<orig-1@example.org>",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if id := h.Get("Message-Id"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@mail.example.com>") {
		t.Errorf("Message-ID %q", id)
	}
	if p.params["report-type"] != "delivery-status" {
		t.Errorf("report-type %q", p.params["report-type"])
	}
	if len(p.parts) != 3 {
		t.Fatalf("%d parts", len(p.parts))
	}
	for i, ct := range []string{"text/plain", "message/delivery-status", "message/rfc822"} {
		if p.parts[i].ctype != ct {
			t.Errorf("part %d is %s, want %s", i+1, p.parts[i].ctype, ct)
		}
	}

	text := string(p.parts[0].body)
	for _, s := range []string{"failed", "a@example.com", "550 5.1.1 No such user", "b@example.com",
		"552 5.2.2 Mailbox full", "Grüße", "original message is attached", "(originally addressed to A+x@example.com)"} {
		if !strings.Contains(text, s) {
			t.Errorf("text part lacks %q:\n%s", s, text)
		}
	}

	msg, rcpts := status(t, p.parts[1].body)
	if got := msg.Get("Reporting-Mta"); got != "dns;mail.example.com" {
		t.Errorf("Reporting-MTA %q", got)
	}
	if got := msg.Get("Original-Envelope-Id"); got != "QQ314159+X=1" {
		t.Errorf("Original-Envelope-Id %q", got)
	}
	if got := msg.Get("Arrival-Date"); got != "Thu, 26 Nov 2026 01:02:03 +0000" {
		t.Errorf("Arrival-Date %q", got)
	}
	if len(rcpts) != 2 {
		t.Fatalf("%d recipient blocks", len(rcpts))
	}
	r0 := map[string]string{
		"Original-Recipient": "rfc822;A+x@example.com",
		"Final-Recipient":    "rfc822;a@example.com",
		"Action":             "failed",
		"Status":             "5.1.1",
		"Remote-Mta":         "dns;mx.example.com",
		"Diagnostic-Code":    "smtp;550 5.1.1 No such user",
		"Last-Attempt-Date":  "Thu, 26 Nov 2026 13:02:03 +0000",
		"Will-Retry-Until":   "", // only for delayed
	}
	for k, v := range r0 {
		if got := rcpts[0].Get(k); got != v {
			t.Errorf("recipient 1 %s = %q, want %q", k, got, v)
		}
	}
	r1 := map[string]string{"Original-Recipient": "", "Final-Recipient": "rfc822;b@example.com", "Status": "5.2.2",
		"Remote-Mta": "", "Diagnostic-Code": "smtp;552 5.2.2 Mailbox full"}
	for k, v := range r1 {
		if got := rcpts[1].Get(k); got != v {
			t.Errorf("recipient 2 %s = %q, want %q", k, got, v)
		}
	}
	// RFC 3464 §2.2/§2.3 field order.
	order := func(body, first string, names ...string) {
		t.Helper()
		at := strings.Index(body, first)
		for _, n := range names {
			i := strings.Index(body[at:], "\r\n"+n+":")
			if i < 0 {
				t.Errorf("%s not after the previous field:\n%s", n, body)
				return
			}
			at += i + 2
		}
	}
	sb := string(p.parts[1].body)
	if !strings.HasPrefix(sb, "Original-Envelope-Id:") {
		t.Errorf("delivery-status does not start with Original-Envelope-Id:\n%s", sb)
	}
	order(sb, "Original-Envelope-Id:", "Reporting-MTA", "Arrival-Date")
	order(sb, "Original-Recipient:", "Final-Recipient", "Action", "Status", "Remote-MTA", "Diagnostic-Code", "Last-Attempt-Date")

	if got := string(p.parts[2].body); got != origMsg {
		t.Errorf("returned original %q, want %q", got, origMsg)
	}
	if cte := p.parts[2].header.Get("Content-Transfer-Encoding"); cte != "7bit" {
		t.Errorf("message/rfc822 Content-Transfer-Encoding %q", cte)
	}
}

func TestMessageIDUnique(t *testing.T) {
	a, err1 := Build(failureReport())
	b, err2 := Build(failureReport())
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	ia, ib := parse(t, a).header.Get("Message-Id"), parse(t, b).header.Get("Message-Id")
	if ia == ib {
		t.Errorf("two reports share Message-ID %s", ia)
	}
}

func TestDelay(t *testing.T) {
	until := arrival.Add(48 * time.Hour)
	r := &Report{
		ReportingMTA: "mail.example.com",
		From:         "postmaster", // gets @ReportingMTA
		To:           "sender@example.org",
		ArrivalDate:  arrival,
		Recipients: []Recipient{{Address: "slow@example.net", Action: "delayed", Status: "4.4.1",
			RemoteMTA: "mx.example.net", Diagnostic: "451 4.4.1 Connection refused", LastAttempt: now, WillRetryUntil: until}},
		Original: strings.NewReader(origMsg),
		Now:      now,
	}
	data, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	p := parse(t, data)
	if s := p.header.Get("Subject"); s != "Delivery Status Notification (Delay)" {
		t.Errorf("Subject %q", s)
	}
	if from, err := mail.ParseAddress(p.header.Get("From")); err != nil || from.Address != "postmaster@mail.example.com" {
		t.Errorf("From %q", p.header.Get("From"))
	}
	if len(p.parts) != 3 {
		t.Fatalf("%d parts", len(p.parts))
	}
	text := string(p.parts[0].body)
	for _, s := range []string{"delayed", "slow@example.net", "451 4.4.1 Connection refused", "keep trying",
		"Retrying until Sat, 28 Nov 2026 01:02:03 +0000", "No action is required"} {
		if !strings.Contains(text, s) {
			t.Errorf("text part lacks %q:\n%s", s, text)
		}
	}
	_, rcpts := status(t, p.parts[1].body)
	if len(rcpts) != 1 {
		t.Fatalf("%d recipient blocks", len(rcpts))
	}
	want := map[string]string{
		"Final-Recipient":  "rfc822;slow@example.net",
		"Action":           "delayed",
		"Status":           "4.4.1",
		"Remote-Mta":       "dns;mx.example.net",
		"Diagnostic-Code":  "smtp;451 4.4.1 Connection refused",
		"Will-Retry-Until": "Sat, 28 Nov 2026 01:02:03 +0000",
	}
	for k, v := range want {
		if got := rcpts[0].Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	// No RET and nothing failed: headers only.
	if p.parts[2].ctype != "text/rfc822-headers" {
		t.Errorf("third part %s, want text/rfc822-headers", p.parts[2].ctype)
	}
	if got := string(p.parts[2].body); got != origHeaders {
		t.Errorf("headers %q, want %q", got, origHeaders)
	}
}

func TestSuccess(t *testing.T) {
	r := &Report{
		ReportingMTA: "mail.example.com",
		To:           "sender@example.org",
		Return:       "full",
		Recipients: []Recipient{
			{Address: "here@example.com", Action: "delivered", Status: "2.0.0"},
			{Address: "there@example.net", Action: "relayed", RemoteMTA: "mx.example.net", Diagnostic: "250 2.0.0 OK queued"},
		},
		Original: strings.NewReader(origMsg),
		Now:      now,
	}
	data, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	p := parse(t, data)
	if s := p.header.Get("Subject"); s != "Delivery Status Notification (Success)" {
		t.Errorf("Subject %q", s)
	}
	if from, err := mail.ParseAddress(p.header.Get("From")); err != nil || from.Address != "postmaster@mail.example.com" {
		t.Errorf("From %q", p.header.Get("From"))
	}
	text := string(p.parts[0].body)
	for _, s := range []string{"succeeded", "here@example.com", "relayed", "there@example.net"} {
		if !strings.Contains(text, s) {
			t.Errorf("text part lacks %q:\n%s", s, text)
		}
	}
	msg, rcpts := status(t, p.parts[1].body)
	if msg.Get("Arrival-Date") != "" || msg.Get("Original-Envelope-Id") != "" {
		t.Errorf("per-message fields not given are present: %v", msg)
	}
	if len(rcpts) != 2 || rcpts[0].Get("Action") != "delivered" || rcpts[1].Get("Action") != "relayed" ||
		rcpts[0].Get("Status") != "2.0.0" || rcpts[1].Get("Status") != "2.0.0" || rcpts[0].Get("Last-Attempt-Date") != "" {
		t.Errorf("recipient blocks %v", rcpts)
	}
	// RET=FULL (any case) returns the whole message even on success.
	if len(p.parts) != 3 || p.parts[2].ctype != "message/rfc822" || string(p.parts[2].body) != origMsg {
		t.Errorf("third part %+v", p.parts[len(p.parts)-1])
	}
}

func TestRetHdrs(t *testing.T) {
	for _, ret := range []string{"HDRS", "hdrs"} {
		r := failureReport()
		r.Return = ret
		data, err := Build(r)
		if err != nil {
			t.Fatal(err)
		}
		p := parse(t, data)
		if len(p.parts) != 3 || p.parts[2].ctype != "text/rfc822-headers" {
			t.Fatalf("RET=%s: parts %+v", ret, p.parts)
		}
		if got := string(p.parts[2].body); got != origHeaders {
			t.Errorf("RET=%s: headers %q", ret, got)
		}
		if strings.Contains(string(data), "this is the body") {
			t.Errorf("RET=%s: the body is returned", ret)
		}
		if !strings.Contains(string(p.parts[0].body), "headers of the original message are attached") {
			t.Errorf("RET=%s: text %s", ret, p.parts[0].body)
		}
	}
}

func TestMaxReturn(t *testing.T) {
	big := origHeaders + "\r\n" + strings.Repeat("0123456789abcdef\r\n", 64) // > 1000 bytes
	cases := []struct {
		name  string
		max   int64
		orig  string
		whole bool
	}{
		{"above", 1000, big, false},
		{"at the limit", int64(len(big)), big, true},
		{"negative: headers only", -1, origMsg, false},
		{"default: above 10 MiB", 0, origHeaders + "\r\n" + strings.Repeat("x", DefaultMaxReturn), false},
		{"default: 10 MiB", 0, origHeaders + "\r\n" + strings.Repeat("x", DefaultMaxReturn-len(origHeaders)-2), true},
	}
	for _, c := range cases {
		r := failureReport()
		r.Return = "FULL"
		r.MaxReturn = c.max
		r.Original = strings.NewReader(c.orig)
		data, err := Build(r)
		if err != nil {
			t.Fatal(c.name, err)
		}
		p := parse(t, data)
		if len(p.parts) != 3 {
			t.Fatalf("%s: %d parts", c.name, len(p.parts))
		}
		text := string(p.parts[0].body)
		if c.whole {
			if p.parts[2].ctype != "message/rfc822" || string(p.parts[2].body) != c.orig {
				t.Errorf("%s: not returned whole (%s, %d bytes)", c.name, p.parts[2].ctype, len(p.parts[2].body))
			}
			continue
		}
		if p.parts[2].ctype != "text/rfc822-headers" || string(p.parts[2].body) != origHeaders {
			t.Errorf("%s: third part %s %q", c.name, p.parts[2].ctype, p.parts[2].body)
		}
		if c.max > 0 && !strings.Contains(text, "larger than 1000 bytes") {
			t.Errorf("%s: the text does not say why only headers are returned:\n%s", c.name, text)
		}
		if c.max == 0 && !strings.Contains(text, "larger than 10485760 bytes") {
			t.Errorf("%s: text:\n%s", c.name, text)
		}
	}
}

func TestNoOriginal(t *testing.T) {
	for _, orig := range []io.Reader{nil, strings.NewReader("")} {
		r := failureReport()
		r.Original = orig
		data, err := Build(r)
		if err != nil {
			t.Fatal(err)
		}
		p := parse(t, data)
		if len(p.parts) != 2 || p.parts[1].ctype != "message/delivery-status" {
			t.Errorf("parts %+v", p.parts)
		}
		if p.header.Get("In-Reply-To") != "" {
			t.Errorf("In-Reply-To without an original")
		}
	}
}

func TestOriginalLineEnds(t *testing.T) {
	r := failureReport()
	r.Original = strings.NewReader("Subject: bare\nX: y\r\n\nline one\rline two\n")
	data, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	p := parse(t, data)
	if got, want := string(p.parts[2].body), "Subject: bare\r\nX: y\r\n\r\nline one\r\nline two\r\n"; got != want {
		t.Errorf("original %q, want %q", got, want)
	}
	if bytes.Contains(bytes.ReplaceAll(data, []byte("\r\n"), nil), []byte("\n")) ||
		bytes.Contains(bytes.ReplaceAll(data, []byte("\r\n"), nil), []byte("\r")) {
		t.Errorf("bare CR or LF in the report")
	}
}

func TestEightBitOriginal(t *testing.T) {
	r := failureReport()
	r.Original = strings.NewReader("Subject: x\r\n\r\nGrüße\r\n")
	data, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	p := parse(t, data)
	if cte := p.parts[2].header.Get("Content-Transfer-Encoding"); cte != "8bit" {
		t.Errorf("Content-Transfer-Encoding %q, want 8bit", cte)
	}
}

func TestDecodeXtext(t *testing.T) {
	cases := map[string]string{
		"":                         "",
		"plain@example.com":        "plain@example.com",
		"rfc822;a+2Bb@example.com": "rfc822;a+b@example.com",
		"x+3Dy+20z":                "x=y z",
		"lower+2bcase":             "lower+case",
		"bad+G1":                   "bad+G1",
		"short+4":                  "short+4",
		"end+":                     "end+",
		"+2B+2B":                   "++",
		"+0D+0A":                   "\r\n",
	}
	for in, want := range cases {
		if got := DecodeXtext(in); got != want {
			t.Errorf("DecodeXtext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOriginalRecipientForms(t *testing.T) {
	cases := []struct{ orcpt, want string }{
		{"rfc822;user+2Btag@example.com", "rfc822;user+tag@example.com"},
		{"RFC822;u@example.com", "rfc822;u@example.com"},
		{`utf-8;j\x{F6}rg@example.com`, `utf-8;j\x{F6}rg@example.com`},
		{"utf-8;jörg@example.com", `utf-8;j\x{F6}rg@example.com`}, // unitext becomes xtext
		{"rfc822;j+C3+B6rg@example.com", `utf-8;j\x{F6}rg@example.com`},
		{"no-type@example.com", ""},
		{"bad type;u@example.com", ""},
		{"rfc822;", ""},
	}
	for _, c := range cases {
		r := failureReport()
		r.Recipients = []Recipient{{Address: "u@example.com", Original: c.orcpt, Action: "failed", Status: "5.1.1"}}
		data, err := Build(r)
		if err != nil {
			t.Fatal(err)
		}
		_, rcpts := status(t, parse(t, data).parts[1].body)
		if got := rcpts[0].Get("Original-Recipient"); got != c.want {
			t.Errorf("ORCPT %q: Original-Recipient %q, want %q", c.orcpt, got, c.want)
		}
	}
}

func TestUTF8Address(t *testing.T) {
	r := failureReport()
	r.To = "sénder@example.org"
	r.Recipients = []Recipient{{Address: "jösé+x y@example.com", Action: "failed", Status: "5.1.1", Diagnostic: "550 5.1.1 unknown «jösé»"}}
	data, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	p := parse(t, data)
	if to, err := mail.ParseAddress(p.header.Get("To")); err != nil || to.Address != "sénder@example.org" {
		t.Errorf("To %q: %v", p.header.Get("To"), err)
	}
	if cte := p.parts[0].header.Get("Content-Transfer-Encoding"); cte != "" {
		// multipart removes the header when it decodes quoted-printable.
		t.Errorf("text part not quoted-printable: %q", cte)
	}
	if !strings.Contains(string(p.parts[0].body), "jösé+x y@example.com") {
		t.Errorf("text part:\n%s", p.parts[0].body)
	}
	_, rcpts := status(t, p.parts[1].body)
	if got, want := rcpts[0].Get("Final-Recipient"), `utf-8;j\x{F6}s\x{E9}\x{2B}x\x{20}y@example.com`; got != want {
		t.Errorf("Final-Recipient %q, want %q", got, want)
	}
	if got, want := rcpts[0].Get("Diagnostic-Code"), "smtp;550 5.1.1 unknown ?j?s??"; got != want {
		t.Errorf("Diagnostic-Code %q, want %q", got, want)
	}
	for _, b := range p.parts[1].body {
		if b >= 0x80 {
			t.Fatalf("non-ASCII in message/delivery-status:\n%s", p.parts[1].body)
		}
	}
}

func TestNoInjection(t *testing.T) {
	r := failureReport()
	r.To = "sender@example.org\r\nBcc: victim@example.net"
	r.From = "postmaster@example.com\nX-Injected: from"
	r.EnvelopeID = "id+0D+0AX-Injected:+20envid"
	r.Recipients = []Recipient{{
		Address:    "a@example.com\r\nX-Injected: addr",
		Original:   "rfc822;a@example.com+0D+0AX-Injected:+20orcpt",
		Action:     "failed",
		Status:     "5.1.1",
		RemoteMTA:  "mx.example.com\r\nX-Injected: mta",
		Diagnostic: "550 5.1.1 No such user\r\nBcc: evil@example.net\r\n\r\nX-Injected: diag",
	}}
	data, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	p := parse(t, data)
	if len(p.parts) != 3 {
		t.Fatalf("%d parts", len(p.parts))
	}
	for _, k := range []string{"Bcc", "X-Injected"} {
		if v := p.header.Get(k); v != "" {
			t.Errorf("header %s: %q injected", k, v)
		}
	}
	msg, rcpts := status(t, p.parts[1].body)
	if len(rcpts) != 1 {
		t.Fatalf("%d recipient blocks:\n%s", len(rcpts), p.parts[1].body)
	}
	for _, h := range []textproto.MIMEHeader{msg, rcpts[0]} {
		for _, k := range []string{"Bcc", "X-Injected"} {
			if v := h.Get(k); v != "" {
				t.Errorf("delivery-status field %s: %q injected", k, v)
			}
		}
	}
	if got, want := rcpts[0].Get("Diagnostic-Code"), "smtp;550 5.1.1 No such user Bcc: evil@example.net X-Injected: diag"; got != want {
		t.Errorf("Diagnostic-Code %q, want %q", got, want)
	}
	if got, want := msg.Get("Original-Envelope-Id"), "id X-Injected: envid"; got != want {
		t.Errorf("Original-Envelope-Id %q, want %q", got, want)
	}
	if got := rcpts[0].Get("Original-Recipient"); got != "rfc822;a@example.com X-Injected: orcpt" {
		t.Errorf("Original-Recipient %q", got)
	}
	for _, l := range strings.Split(string(p.parts[0].body), "\r\n") {
		if strings.HasPrefix(l, "Bcc:") || strings.HasPrefix(l, "X-Injected:") {
			t.Errorf("text part line %q", l)
		}
	}
}

func TestLongDiagnosticFolded(t *testing.T) {
	r := failureReport()
	r.Recipients[0].Diagnostic = "550 5.7.1 " + strings.Repeat("word ", 300) + strings.Repeat("z", 2000)
	data, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	p := parse(t, data)
	for _, l := range strings.Split(string(p.parts[1].body), "\r\n") {
		if len(l) > 998 {
			t.Errorf("delivery-status line of %d characters", len(l))
		}
	}
	_, rcpts := status(t, p.parts[1].body)
	if got := rcpts[0].Get("Diagnostic-Code"); !strings.HasPrefix(got, "smtp;550 5.7.1 word word") || !strings.HasSuffix(got, strings.Repeat("z", maxWord)) {
		t.Errorf("Diagnostic-Code %q", got)
	}
}

func TestActionAndStatusDefaults(t *testing.T) {
	r := failureReport()
	r.Recipients = []Recipient{
		{Address: "a@example.com", Status: "5.1.1"},
		{Address: "b@example.com", Status: "4.4.1"},
		{Address: "c@example.com", Action: "FAILED", Status: "five"},
		{Address: "d@example.com", Action: "delayed"},
		{Address: "e@example.com", Action: "expanded", Status: "2.1.55555"},
	}
	data, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	_, rcpts := status(t, parse(t, data).parts[1].body)
	want := [][2]string{{"failed", "5.1.1"}, {"delayed", "4.4.1"}, {"failed", "5.0.0"}, {"delayed", "4.0.0"}, {"expanded", "2.0.0"}}
	for i, w := range want {
		if a, s := rcpts[i].Get("Action"), rcpts[i].Get("Status"); a != w[0] || s != w[1] {
			t.Errorf("recipient %d: %s %s, want %s %s", i+1, a, s, w[0], w[1])
		}
	}
}

func TestBuildErrors(t *testing.T) {
	cases := map[string]func(*Report){
		"no recipients":       func(r *Report) { r.Recipients = nil },
		"null reverse path":   func(r *Report) { r.To = "" },
		"only control chars":  func(r *Report) { r.To = "\r\n" },
		"no reporting MTA":    func(r *Report) { r.ReportingMTA = "" },
		"bad reporting MTA":   func(r *Report) { r.ReportingMTA = "mail example.com" },
		"unknown action":      func(r *Report) { r.Recipients[0].Action = "bounced" },
		"no action or status": func(r *Report) { r.Recipients[0].Action, r.Recipients[0].Status = "", "" },
		"unreadable original": func(r *Report) { r.Original = errReader{} },
	}
	for name, mod := range cases {
		r := failureReport()
		mod(r)
		if _, err := Build(r); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := Build(nil); err == nil {
		t.Error("nil report: no error")
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestBoundaryAvoidsContent(t *testing.T) {
	// The first boundary candidate comes from sixteen zero bytes; the
	// original contains it, so Build must pick another.
	first := "=_DSN_" + strings.Repeat("00", 16)
	seq := append(make([]byte, 16), bytes.Repeat([]byte{0xab}, 64)...)
	old := random
	random = bytes.NewReader(seq)
	defer func() { random = old }()
	r := failureReport()
	r.Original = strings.NewReader("Subject: trap\r\n\r\n--" + first + "\r\nContent-Type: text/plain\r\n\r\nfake\r\n--" + first + "--\r\n")
	data, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	p := parse(t, data)
	if b := p.params["boundary"]; b == first || b != "=_DSN_"+strings.Repeat("ab", 16) {
		t.Errorf("boundary %q", b)
	}
	if len(p.parts) != 3 || !strings.Contains(string(p.parts[2].body), "fake") {
		t.Errorf("parts %+v", p.parts)
	}
}

// FuzzBuild checks that Build never panics and that whatever it returns
// parses as a multipart/report with the expected top-level headers only.
func FuzzBuild(f *testing.F) {
	f.Add("sender@example.org", "a@example.com", "rfc822;a+2Bb@example.com", "failed", "5.1.1", "550 5.1.1 No such user",
		"mx.example.com", "ENV+3D1", "", []byte(origMsg), int64(0))
	f.Add("s\r\nBcc: x@example.net", "jösé@example.com", `utf-8;j\x{F6}`, "delayed", "4.4.1", "451\r\n\r\nX: y",
		"mx\n", "+0D+0A", "HDRS", []byte("no headers at all\n\n\r"), int64(5))
	f.Add("s@example.org", "\xff\xfe@example.com", ";", "", "2.0.0", strings.Repeat("x", 3000), "", "", "FULL", []byte("\r\n\r\n--"), int64(-1))
	f.Fuzz(func(t *testing.T, to, addr, orcpt, action, status, diag, mta, envid, ret string, orig []byte, max int64) {
		r := &Report{ReportingMTA: "mail.example.com", From: "postmaster@example.com", To: to, EnvelopeID: envid,
			ArrivalDate: arrival, Return: ret, MaxReturn: max % (1 << 20), Now: now,
			Recipients: []Recipient{{Address: addr, Original: orcpt, Action: action, Status: status, RemoteMTA: mta,
				Diagnostic: diag, LastAttempt: now, WillRetryUntil: now}},
		}
		if len(orig) > 0 {
			r.Original = bytes.NewReader(orig)
		}
		data, err := Build(r)
		if err != nil {
			return
		}
		p, err := parseErr(data)
		if err != nil {
			t.Fatalf("%v\n%q", err, data)
		}
		if p.params["report-type"] != "delivery-status" || len(p.parts) < 2 || len(p.parts) > 3 ||
			p.parts[0].ctype != "text/plain" || p.parts[1].ctype != "message/delivery-status" {
			t.Fatalf("shape: %v %+v", p.params, p.parts)
		}
		allowed := map[string]bool{"From": true, "To": true, "Date": true, "Subject": true, "Message-Id": true,
			"In-Reply-To": true, "References": true, "Mime-Version": true, "Auto-Submitted": true,
			"Content-Class": true, "Content-Type": true}
		for k, v := range p.header {
			if !allowed[k] || len(v) != 1 {
				t.Fatalf("header %s: %q", k, v)
			}
		}
		_, rcpts := statusErr(p.parts[1].body)
		if rcpts != 1 {
			t.Fatalf("%d recipient blocks:\n%s", rcpts, p.parts[1].body)
		}
	})
}

// statusErr counts the recipient blocks of a delivery-status body, or -1
// when a block does not parse.
func statusErr(body []byte) (textproto.MIMEHeader, int) {
	blocks := strings.Split(strings.TrimRight(string(body), "\r\n"), "\r\n\r\n")
	var first textproto.MIMEHeader
	for i, b := range blocks {
		h, err := textproto.NewReader(bufio.NewReader(strings.NewReader(b + "\r\n\r\n"))).ReadMIMEHeader()
		if err != nil {
			return nil, -1
		}
		if i == 0 {
			first = h
		}
	}
	return first, len(blocks) - 1
}
