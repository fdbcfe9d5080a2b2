// Package dsn builds delivery status notifications (RFC 3464): the
// multipart/report messages that tell a sender what happened to the
// recipients of a message (failed, delayed, delivered, relayed, expanded),
// in the shape Exchange 2003 and IIS 6 SMTP wrote them.
//
// # Message
//
// Build returns a whole RFC 5322 message with CRLF line ends:
//
//	From: "Mail Delivery System" <postmaster@mail.example.com>
//	To: <sender@example.org>
//	Date: …
//	Subject: Delivery Status Notification (Failure)
//	Message-ID: <…@mail.example.com>
//	In-Reply-To, References: the original's Message-ID, when it has one
//	MIME-Version: 1.0
//	Auto-Submitted: auto-replied                 (RFC 3834)
//	Content-Class: urn:content-classes:dsn       (as Exchange wrote it)
//	Content-Type: multipart/report; report-type=delivery-status; boundary="…"
//
// with three parts: a text/plain explanation for people (UTF-8, 7bit or
// quoted-printable), the message/delivery-status report, and the original
// message as message/rfc822 or only its headers as text/rfc822-headers.
// The boundary is random and is checked not to occur in any part.
//
// The subject says "(Failure)" when a recipient failed, else "(Delay)"
// when one is delayed, else "(Success)" (delivered, relayed, expanded).
//
// # Report fields
//
// The message/delivery-status part holds the per-message fields in the
// order of RFC 3464 §2.2 (Original-Envelope-Id, Reporting-MTA,
// Arrival-Date), a blank line, then one block per recipient in the order
// of §2.3 (Original-Recipient, Final-Recipient, Action, Status,
// Remote-MTA, Diagnostic-Code, Last-Attempt-Date, Will-Retry-Until; the
// last only for "delayed"). Fields are printable US-ASCII, folded at
// spaces: control characters (CR and LF among them) become spaces, so no
// value can start a field or header of its own; other non-ASCII text in a
// diagnostic or an envelope id becomes "?". An address that is not
// printable US-ASCII (SMTPUTF8 mail) is written as "utf-8;" in the
// utf-8-addr-xtext form of RFC 6533 §3 ("\x{E9}"). ORCPT and ENVID values
// are xtext-decoded (RFC 3461 §4) first.
//
// # Returned content
//
// RET=FULL returns the whole original, RET=HDRS its headers. Without RET
// (or with a value that is neither), a report in which a recipient failed
// returns the whole original, any other report only the headers: a sender
// whose mail is on its way needs no copy of it. An original larger than
// Report.MaxReturn (10 MiB by default, Exchange 2003 SP1's MaxDSNSize cap)
// is returned as headers only, and the text part says so. Bare CR and LF
// in the original become CRLF. A message/rfc822 part whose content has
// 8-bit bytes is labelled Content-Transfer-Encoding: 8bit; the caller then
// needs BODY=8BITMIME to relay the report.
package dsn

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultMaxReturn is the size of the largest original returned whole
// when Report.MaxReturn is 0: 10 MiB, the cap Exchange 2003 SP1 put on
// MaxDSNSize (REFERENCE.md §7, S-BPA-29cc).
const DefaultMaxReturn = 10 << 20

// maxHeaderReturn caps the header section returned as text/rfc822-headers;
// a longer one is cut at a line end.
const maxHeaderReturn = 256 << 10

// maxWord caps one space-separated word of a report field, so that every
// line of the report stays within RFC 5322's 998 characters.
const maxWord = 900

// dateLayout is the RFC 5322 date-time.
const dateLayout = "Mon, 02 Jan 2006 15:04:05 -0700"

// Recipient is one per-recipient block of a report.
type Recipient struct {
	// Address is the recipient as the envelope named it; it becomes
	// "Final-Recipient: rfc822;<Address>".
	Address string
	// Original is the ORCPT value as given at RCPT ("rfc822;a@example.com",
	// xtext-encoded as received); it becomes Original-Recipient, decoded.
	// "" = none.
	Original string
	// Action is "failed", "delayed", "delivered", "relayed" or "expanded"
	// (case-insensitive). "" takes it from the class of Status: 5 failed,
	// 4 delayed, 2 delivered.
	Action string
	// Status is the enhanced status code "x.y.z" (RFC 3463). "" or a value
	// that is not one is replaced by the action's generic code: 5.0.0 for
	// failed, 4.0.0 for delayed, 2.0.0 otherwise.
	Status string
	// RemoteMTA is the host name of the remote MTA that answered; it
	// becomes "Remote-MTA: dns;<RemoteMTA>". "" = none.
	RemoteMTA string
	// Diagnostic is the SMTP reply ("550 5.1.1 No such user"); it becomes
	// "Diagnostic-Code: smtp;<Diagnostic>". "" = none.
	Diagnostic string
	// LastAttempt is the time of the last delivery attempt
	// (Last-Attempt-Date); zero = omitted.
	LastAttempt time.Time
	// WillRetryUntil is when this server gives up (Will-Retry-Until), for
	// "delayed" only; zero = omitted.
	WillRetryUntil time.Time
}

// Report is one DSN to build.
type Report struct {
	// ReportingMTA is the FQDN of this virtual server: "Reporting-MTA:
	// dns;<ReportingMTA>", and the right side of the Message-ID. Required.
	ReportingMTA string
	// From is the header From ("postmaster@example.com"), shown with the
	// display name "Mail Delivery System". "" is postmaster@ReportingMTA;
	// a value without "@" gets "@"+ReportingMTA.
	From string
	// To is the envelope sender of the original message: the recipient of
	// the DSN. Required: a null reverse path never gets a DSN.
	To string
	// EnvelopeID is the ENVID as received (xtext); it becomes
	// Original-Envelope-Id, decoded. "" = none.
	EnvelopeID string
	// ArrivalDate is when the original was received (Arrival-Date); zero =
	// omitted.
	ArrivalDate time.Time
	// Recipients are the recipients reported on; at least one.
	Recipients []Recipient
	// Return is the RET of the original: "FULL" returns it whole, "HDRS"
	// its headers; "" returns it whole when a recipient failed and only its
	// headers otherwise (see the package documentation).
	Return string
	// Original is the original message (headers and body, CRLF line
	// ends). nil, or a message of no bytes, gives a report of two parts.
	Original io.Reader
	// MaxReturn is the size of the largest original returned whole; a
	// larger one is returned as headers only. 0 = DefaultMaxReturn; a
	// negative value returns headers only, always.
	MaxReturn int64
	// Now is the time of the report (Date, Message-ID); zero = time.Now().
	Now time.Time
}

// rcpt is a Recipient checked and normalized.
type rcpt struct {
	Recipient
	action string
	status string
}

// original is what Build returns of the original message.
type original struct {
	content  []byte // part content, CRLF line ends; nil = no part
	whole    bool   // content is the whole message (message/rfc822)
	tooBig   bool   // headers only because the message exceeds MaxReturn
	cut      bool   // the header section was cut at maxHeaderReturn
	limit    int64  // the MaxReturn in force
	subject  string // the original's Subject, decoded, for the text part
	msgID    string // the original's Message-ID, "<…>", or ""
	eightBit bool   // content has bytes ≥ 0x80
}

// Build builds the DSN r describes; see the package documentation for
// its shape. It fails when ReportingMTA is not a host name, To is empty,
// there is no recipient or an action is unknown, or Original cannot be
// read.
func Build(r *Report) ([]byte, error) {
	if r == nil {
		return nil, errors.New("dsn: no report")
	}
	host := strings.TrimSuffix(strings.TrimSpace(r.ReportingMTA), ".")
	if !validHost(host) {
		return nil, fmt.Errorf("dsn: ReportingMTA %q is not a host name", r.ReportingMTA)
	}
	to := cleanAddr(r.To)
	if to == "" {
		return nil, errors.New("dsn: no recipient for the report (null reverse path)")
	}
	from := cleanAddr(r.From)
	if from == "" {
		from = "postmaster"
	}
	if !strings.Contains(from, "@") {
		from += "@" + host
	}
	if len(r.Recipients) == 0 {
		return nil, errors.New("dsn: a report needs at least one recipient")
	}
	rcpts := make([]rcpt, len(r.Recipients))
	var failed, delayed bool
	for i, rc := range r.Recipients {
		n, err := normalize(rc)
		if err != nil {
			return nil, err
		}
		rcpts[i] = n
		failed = failed || n.action == "failed"
		delayed = delayed || n.action == "delayed"
	}
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}

	ret := strings.ToUpper(strings.TrimSpace(r.Return))
	full := ret == "FULL" || (ret != "HDRS" && failed)
	var orig original
	if r.Original != nil {
		var err error
		if orig, err = readOriginal(r.Original, r.MaxReturn, full); err != nil {
			return nil, fmt.Errorf("dsn: reading the original message: %w", err)
		}
	}

	subject := "Delivery Status Notification (Success)"
	switch {
	case failed:
		subject = "Delivery Status Notification (Failure)"
	case delayed:
		subject = "Delivery Status Notification (Delay)"
	}

	text, textCTE := textPart(host, r, rcpts, &orig)
	status := statusPart(host, r, rcpts)

	var parts [][]byte
	parts = append(parts,
		[]byte("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: "+textCTE+"\r\n\r\n"),
		text,
		[]byte("Content-Type: message/delivery-status\r\nContent-Description: Delivery report\r\n\r\n"),
		status)
	if orig.content != nil {
		cte := "7bit"
		if orig.eightBit {
			cte = "8bit"
		}
		h := "Content-Type: text/rfc822-headers\r\nContent-Description: Undelivered message headers\r\n"
		if orig.whole {
			h = "Content-Type: message/rfc822\r\nContent-Description: Undelivered message\r\n"
		}
		parts = append(parts, []byte(h+"Content-Transfer-Encoding: "+cte+"\r\n\r\n"), orig.content)
	}

	boundary := ""
	for try := 0; boundary == ""; try++ {
		if try == 100 {
			return nil, errors.New("dsn: no boundary found that the content does not contain")
		}
		b := "=_DSN_" + randHex(16)
		ok := true
		for _, p := range parts {
			if bytes.Contains(p, []byte(b)) {
				ok = false
				break
			}
		}
		if ok {
			boundary = b
		}
	}

	var out bytes.Buffer
	size := 2048
	for _, p := range parts {
		size += len(p)
	}
	out.Grow(size)
	hdr := func(name, value string) {
		out.WriteString(name)
		out.WriteString(": ")
		out.WriteString(value)
		out.WriteString("\r\n")
	}
	hdr("From", (&mail.Address{Name: "Mail Delivery System", Address: from}).String())
	hdr("To", headerAddr(to))
	hdr("Date", now.Format(dateLayout))
	hdr("Subject", subject)
	hdr("Message-ID", "<"+randHex(12)+"."+strconv.FormatInt(now.UnixNano(), 36)+"@"+host+">")
	if orig.msgID != "" {
		hdr("In-Reply-To", orig.msgID)
		hdr("References", orig.msgID)
	}
	hdr("MIME-Version", "1.0")
	hdr("Auto-Submitted", "auto-replied")
	hdr("Content-Class", "urn:content-classes:dsn")
	hdr("Content-Type", "multipart/report; report-type=delivery-status;\r\n\tboundary=\""+boundary+"\"")
	out.WriteString("\r\nThis is a MIME-formatted message. Portions of it may be unreadable without a MIME-capable mail program.\r\n")
	for i := 0; i < len(parts); i += 2 {
		out.WriteString("\r\n--" + boundary + "\r\n")
		out.Write(parts[i])
		out.Write(parts[i+1])
	}
	out.WriteString("\r\n--" + boundary + "--\r\n")
	return out.Bytes(), nil
}

// normalize checks a recipient's action and status.
func normalize(rc Recipient) (rcpt, error) {
	n := rcpt{Recipient: rc, action: strings.ToLower(strings.TrimSpace(rc.Action))}
	st := strings.TrimSpace(rc.Status)
	if !validStatus(st) {
		st = ""
	}
	if n.action == "" {
		switch {
		case st == "":
			return n, fmt.Errorf("dsn: recipient %q has neither an action nor a status", rc.Address)
		case st[0] == '5':
			n.action = "failed"
		case st[0] == '4':
			n.action = "delayed"
		default:
			n.action = "delivered"
		}
	}
	switch n.action {
	case "failed", "delayed", "delivered", "relayed", "expanded":
	default:
		return n, fmt.Errorf("dsn: recipient %q: unknown action %q", rc.Address, rc.Action)
	}
	if st == "" {
		switch n.action {
		case "failed":
			st = "5.0.0"
		case "delayed":
			st = "4.0.0"
		default:
			st = "2.0.0"
		}
	}
	n.status = st
	return n, nil
}

// validStatus reports whether s is an enhanced status code (RFC 3463):
// class 2, 4 or 5, subject and detail of 1 to 3 digits.
func validStatus(s string) bool {
	f := strings.Split(s, ".")
	if len(f) != 3 || len(f[0]) != 1 || !strings.Contains("245", f[0]) {
		return false
	}
	for _, p := range f[1:] {
		if len(p) < 1 || len(p) > 3 {
			return false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return false
			}
		}
	}
	return true
}

// validHost reports whether s is a plausible host name: letters, digits,
// '-', '_' and '.', at most 253 characters.
func validHost(s string) bool {
	if s == "" || len(s) > 253 || s[0] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// readOriginal reads what is returned of the original message.
func readOriginal(rd io.Reader, max int64, full bool) (original, error) {
	o := original{limit: max}
	if o.limit == 0 {
		o.limit = DefaultMaxReturn
	}
	br := bufio.NewReader(rd)
	var rest io.Reader = br
	if full && o.limit > 0 {
		data, err := io.ReadAll(io.LimitReader(br, o.limit+1))
		if err != nil {
			return o, err
		}
		if int64(len(data)) <= o.limit {
			o.content = crlf(data)
			o.whole = true
			hdr, _, _ := readHeaders(bufio.NewReader(bytes.NewReader(o.content)), maxHeaderReturn)
			o.headerInfo(hdr)
			o.finish()
			return o, nil
		}
		o.tooBig = true
		rest = io.MultiReader(bytes.NewReader(data), br)
	} else if full {
		o.tooBig = true
	}
	hdr, complete, err := readHeaders(bufio.NewReader(rest), maxHeaderReturn)
	if err != nil {
		return o, err
	}
	o.cut = !complete
	o.content = crlf(hdr)
	o.headerInfo(o.content)
	o.finish()
	return o, nil
}

// finish drops empty content and notes 8-bit bytes.
func (o *original) finish() {
	if len(o.content) == 0 {
		o.content = nil
		return
	}
	for _, c := range o.content {
		if c >= 0x80 {
			o.eightBit = true
			break
		}
	}
}

// readHeaders reads the header section of a message, each line ending in
// CRLF, without the empty line that ends it. complete is false when the
// section was cut at max bytes (at a line end).
func readHeaders(br *bufio.Reader, max int) (hdr []byte, complete bool, err error) {
	var line []byte
	for {
		chunk, e := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(hdr)+len(line) > max {
			return hdr, false, nil
		}
		if e == bufio.ErrBufferFull {
			continue
		}
		if e != nil && e != io.EOF {
			return nil, false, e
		}
		t := bytes.TrimRight(line, "\r\n")
		if len(t) == 0 {
			return hdr, true, nil
		}
		hdr = append(hdr, t...)
		hdr = append(hdr, '\r', '\n')
		line = line[:0]
		if e == io.EOF {
			return hdr, true, nil
		}
	}
}

// headerInfo picks the Subject and Message-ID out of a header section.
func (o *original) headerInfo(hdr []byte) {
	var fields []string
	for _, l := range strings.Split(string(hdr), "\r\n") {
		if l == "" {
			continue
		}
		if (l[0] == ' ' || l[0] == '\t') && len(fields) > 0 {
			fields[len(fields)-1] += " " + strings.TrimSpace(l)
			continue
		}
		fields = append(fields, l)
	}
	for _, f := range fields {
		name, val, ok := strings.Cut(f, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch {
		case strings.EqualFold(name, "Subject") && o.subject == "":
			if d, err := new(mime.WordDecoder).DecodeHeader(val); err == nil {
				val = d
			}
			o.subject = cleanText(val)
		case strings.EqualFold(name, "Message-ID") && o.msgID == "":
			if id, _, _ := strings.Cut(val, " "); validMsgID(id) {
				o.msgID = id
			}
		}
	}
}

// validMsgID reports whether s is "<…>" of printable ASCII without
// spaces or angle brackets inside, short enough for a header line.
func validMsgID(s string) bool {
	if len(s) < 3 || len(s) > 500 || s[0] != '<' || s[len(s)-1] != '>' {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '<' || c == '>' {
			return false
		}
	}
	return true
}

// crlf turns bare CR and bare LF into CRLF.
func crlf(b []byte) []byte {
	bare := false
	for i, c := range b {
		if c == '\r' && (i+1 == len(b) || b[i+1] != '\n') || c == '\n' && (i == 0 || b[i-1] != '\r') {
			bare = true
			break
		}
	}
	if !bare {
		return b
	}
	out := make([]byte, 0, len(b)+len(b)/32+2)
	for i, c := range b {
		switch {
		case c == '\r':
			out = append(out, '\r', '\n')
			if i+1 < len(b) && b[i+1] == '\n' {
				continue
			}
		case c == '\n':
			if i > 0 && b[i-1] == '\r' {
				continue
			}
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	return out
}

// textPart writes the explanation for people and chooses its
// Content-Transfer-Encoding.
func textPart(host string, r *Report, rcpts []rcpt, o *original) ([]byte, string) {
	var b strings.Builder
	line := func(s string) { b.WriteString(s); b.WriteString("\r\n") }
	line("This is an automatically generated Delivery Status Notification from " + host + ".")
	groups := []struct{ action, head string }{
		{"failed", "Delivery to the following recipients failed:"},
		{"delayed", "Delivery to the following recipients has been delayed:"},
		{"delivered", "Delivery to the following recipients succeeded:"},
		{"relayed", "The message was relayed to the following recipients; the receiving servers may not report on it again:"},
		{"expanded", "The following recipients were expanded to further recipients, to which the message was sent:"},
	}
	for _, g := range groups {
		var retry bool
		first := true
		for _, rc := range rcpts {
			if rc.action != g.action {
				continue
			}
			if first {
				line("")
				line(g.head)
				first = false
			}
			line("")
			line("       " + cleanText(rc.Address))
			if orcpt := displayOriginal(rc.Original); orcpt != "" && !strings.EqualFold(orcpt, cleanText(rc.Address)) {
				line("       (originally addressed to " + orcpt + ")")
			}
			if d := cleanText(rc.Diagnostic); d != "" {
				line("       " + d)
			} else {
				line("       Status " + rc.status)
			}
			if rc.RemoteMTA != "" {
				line("       Reported by " + cleanText(rc.RemoteMTA))
			}
			if g.action == "delayed" {
				retry = true
				if !rc.WillRetryUntil.IsZero() {
					line("       Retrying until " + rc.WillRetryUntil.Format(dateLayout))
				}
			}
		}
		if retry {
			line("")
			line("This server will keep trying to deliver the message to these recipients until")
			line("the time shown. No action is required on your part; you will be told if")
			line("delivery finally fails.")
		}
	}
	if o.subject != "" || !r.ArrivalDate.IsZero() {
		line("")
	}
	if o.subject != "" {
		line("Subject of the original message: " + o.subject)
	}
	if !r.ArrivalDate.IsZero() {
		line("Received by " + host + ": " + r.ArrivalDate.Format(dateLayout))
	}
	if o.content != nil {
		line("")
		switch {
		case o.whole:
			line("The original message is attached.")
		case o.tooBig && o.limit > 0:
			line(fmt.Sprintf("The original message is larger than %d bytes, the most this server returns,", o.limit))
			line("so only its headers are attached.")
		default:
			line("The headers of the original message are attached.")
		}
		if o.cut {
			line(fmt.Sprintf("They were cut at %d bytes.", maxHeaderReturn))
		}
	}
	s := b.String()
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		long := false
		for _, l := range strings.Split(s, "\r\n") {
			if len(l) > 998 {
				long = true
				break
			}
		}
		if !long {
			return []byte(s), "7bit"
		}
	}
	var q bytes.Buffer
	w := quotedprintable.NewWriter(&q)
	w.Write([]byte(s))
	w.Close()
	return q.Bytes(), "quoted-printable"
}

// statusPart writes the message/delivery-status content.
func statusPart(host string, r *Report, rcpts []rcpt) []byte {
	var b strings.Builder
	if id := asciiText(DecodeXtext(r.EnvelopeID)); id != "" {
		field(&b, "Original-Envelope-Id", id)
	}
	field(&b, "Reporting-MTA", "dns;"+host)
	if !r.ArrivalDate.IsZero() {
		field(&b, "Arrival-Date", r.ArrivalDate.Format(dateLayout))
	}
	for _, rc := range rcpts {
		b.WriteString("\r\n")
		if o := originalField(rc.Original); o != "" {
			field(&b, "Original-Recipient", o)
		}
		field(&b, "Final-Recipient", addrField("rfc822", cleanText(rc.Address)))
		field(&b, "Action", rc.action)
		field(&b, "Status", rc.status)
		if h := strings.ReplaceAll(asciiText(rc.RemoteMTA), " ", ""); h != "" {
			field(&b, "Remote-MTA", "dns;"+h)
		}
		if d := asciiText(rc.Diagnostic); d != "" {
			field(&b, "Diagnostic-Code", "smtp;"+d)
		}
		if !rc.LastAttempt.IsZero() {
			field(&b, "Last-Attempt-Date", rc.LastAttempt.Format(dateLayout))
		}
		if rc.action == "delayed" && !rc.WillRetryUntil.IsZero() {
			field(&b, "Will-Retry-Until", rc.WillRetryUntil.Format(dateLayout))
		}
	}
	return []byte(b.String())
}

// field writes "Name: value" CRLF, folded at spaces so that lines stay
// near 78 characters; a word longer than maxWord is cut.
func field(b *strings.Builder, name, value string) {
	b.WriteString(name)
	b.WriteString(":")
	n := len(name) + 1
	for i, w := range strings.Fields(value) {
		if len(w) > maxWord {
			w = w[:maxWord]
		}
		if i > 0 && n+1+len(w) > 78 {
			b.WriteString("\r\n")
			n = 0
		}
		b.WriteByte(' ')
		b.WriteString(w)
		n += 1 + len(w)
	}
	b.WriteString("\r\n")
}

// originalField is the Original-Recipient value of an ORCPT parameter,
// or "" when it is missing or malformed.
func originalField(orcpt string) string {
	typ, addr, ok := strings.Cut(DecodeXtext(strings.TrimSpace(orcpt)), ";")
	typ = strings.ToLower(strings.TrimSpace(typ))
	if !ok || !validAtom(typ) {
		return ""
	}
	addr = strings.TrimSpace(addr)
	if typ == "utf-8" {
		addr = decodeUnicodeEsc(addr)
	}
	addr = cleanText(addr)
	if addr == "" {
		return ""
	}
	return addrField(typ, addr)
}

// displayOriginal is the address of an ORCPT parameter for the text part.
func displayOriginal(orcpt string) string {
	typ, addr, ok := strings.Cut(DecodeXtext(strings.TrimSpace(orcpt)), ";")
	if !ok {
		return ""
	}
	addr = strings.TrimSpace(addr)
	if strings.EqualFold(strings.TrimSpace(typ), "utf-8") {
		addr = decodeUnicodeEsc(addr)
	}
	return cleanText(addr)
}

// validAtom reports whether s is a non-empty address type name.
func validAtom(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// addrField is "type;address" for a report: an rfc822 address that is not
// printable US-ASCII is written as "utf-8;" utf-8-addr-xtext (RFC 6533);
// other types keep their type with the address in printable ASCII.
func addrField(typ, addr string) string {
	switch typ {
	case "rfc822":
		if printableASCII(addr) {
			return "rfc822;" + addr
		}
		return "utf-8;" + utf8AddrXtext(addr)
	case "utf-8":
		return "utf-8;" + utf8AddrXtext(addr)
	}
	return typ + ";" + strings.ReplaceAll(asciiText(addr), " ", "")
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// utf8AddrXtext writes s in the utf-8-addr-xtext form of RFC 6533 §3:
// QCHARs as they are, everything else as "\x{HEX}".
func utf8AddrXtext(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r > 0x20 && r < 0x7f && r != '+' && r != '=' && r != '\\' {
			b.WriteRune(r)
			continue
		}
		fmt.Fprintf(&b, `\x{%X}`, r)
	}
	return b.String()
}

// decodeUnicodeEsc replaces the "\x{HEX}" escapes of RFC 6533 with the
// characters they name.
func decodeUnicodeEsc(s string) string {
	if !strings.Contains(s, `\x{`) {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, `\x{`)
		if i < 0 {
			break
		}
		b.WriteString(s[:i])
		rest := s[i+3:]
		j := strings.IndexByte(rest, '}')
		if j >= 1 && j <= 6 {
			if v, err := strconv.ParseUint(rest[:j], 16, 32); err == nil && utf8.ValidRune(rune(v)) {
				b.WriteRune(rune(v))
				s = rest[j+1:]
				continue
			}
		}
		b.WriteString(`\x{`)
		s = rest
	}
	b.WriteString(s)
	return b.String()
}

// DecodeXtext decodes an xtext value (RFC 3461 §4): "+" and two
// hexadecimal digits stand for that byte. Lower-case digits are accepted
// too; a "+" not followed by two hexadecimal digits is kept as it is.
func DecodeXtext(s string) string {
	if !strings.Contains(s, "+") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '+' && i+2 < len(s) {
			if h, l := unhex(s[i+1]), unhex(s[i+2]); h >= 0 && l >= 0 {
				b = append(b, byte(h<<4|l))
				i += 2
				continue
			}
		}
		b = append(b, s[i])
	}
	return string(b)
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}

// cleanText makes s one line of valid UTF-8: control characters (CR and
// LF among them) become spaces, runs of spaces one space.
func cleanText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || r == ' ' || r == '\u2028' || r == '\u2029'
	}), " ")
}

// asciiText is cleanText in printable US-ASCII: other characters become
// "?".
func asciiText(s string) string {
	s = cleanText(s)
	if printableASCII(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r >= 0x80 {
			r = '?'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// cleanAddr is an address with every control character and space
// removed, in valid UTF-8.
func cleanAddr(s string) string {
	s = strings.ToValidUTF8(s, "")
	return strings.Map(func(r rune) rune {
		if r <= 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || r == '\u2028' || r == '\u2029' {
			return -1
		}
		return r
	}, s)
}

// headerAddr formats an address for a To header.
func headerAddr(a string) string {
	if strings.Contains(a, "@") {
		return (&mail.Address{Address: a}).String()
	}
	return "<" + strings.NewReplacer("<", "", ">", "").Replace(a) + ">"
}

// random is the source of boundaries and Message-IDs (a test replaces it).
var random io.Reader = rand.Reader

// randHex returns n random bytes in hexadecimal.
func randHex(n int) string {
	b := make([]byte, n)
	if _, err := io.ReadFull(random, b); err != nil {
		rand.Read(b) // a test reader ran dry

	}
	return hex.EncodeToString(b)
}
