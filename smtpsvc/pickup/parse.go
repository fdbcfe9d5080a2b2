package pickup

import (
	"bytes"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
)

// Message is a Pickup file read and checked: its envelope and the message
// as it is spooled.
type Message struct {
	From string   // envelope sender; "" = null reverse path ("x-sender: <>")
	To   []string // envelope recipients, in file order, duplicates removed
	// Header says where the envelope came from: false = x-sender and
	// x-receiver lines, true = the Sender/From and To/Cc/Bcc headers.
	Header bool
	// Data is the message with CRLF line ends, the x-sender/x-receiver
	// lines and any Bcc header removed, dot-stuffing undone, and a Date
	// and Message-ID header added when it had none.
	Data     []byte
	EightBit bool // the message has bytes above 127 (sent with BODY=8BITMIME)
	UTF8     bool // an envelope address is not ASCII (sent with SMTPUTF8)
}

// ParseOptions say how to read a Pickup file.
type ParseOptions struct {
	// DotStuffed: SmtpDotStuffPickupDirFiles; a line starting with "." has
	// one more, as in SMTP DATA, and a line of a single "." may end the
	// file.
	DotStuffed bool
	Hostname   string    // for an added Message-ID; "" = "localhost"
	Now        time.Time // for an added Date; zero = time.Now()
	// ID makes an added Message-ID unique ("<ID@Hostname>"); "" = derived
	// from Now.
	ID string
}

// Error is why a Pickup file was refused, with the line it concerns (0 =
// the file as a whole).
type Error struct {
	Line   int
	Reason string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
	}
	return e.Reason
}

func errAt(line int, format string, a ...any) error {
	return &Error{Line: line, Reason: fmt.Sprintf(format, a...)}
}

// Parse reads a Pickup file: an RFC 5322 message, optionally preceded by
// envelope lines "x-sender: <address>" (at most one; "<>" is the null
// reverse path) and "x-receiver: <address>" (one per recipient). Without
// them the envelope comes from the message's headers: the sender from
// Sender, else the first From address; the recipients from To, Cc and
// Bcc. Line ends may be LF or CRLF. A file is refused, with the line at
// fault, when it has a NUL byte, a line that is neither a header field nor
// separated from the body by a blank line, an address that does not parse,
// no sender or no recipient, or (dot-stuffed) a lone "." before its end.
func Parse(data []byte, o ParseOptions) (*Message, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errAt(0, "the file is empty")
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return nil, errAt(1+bytes.Count(data[:i], []byte("\n")), "NUL byte")
	}
	lines := splitLines(data)
	m := &Message{}
	first, sender, err := m.envelopeLines(lines)
	if err != nil {
		return nil, err
	}
	switch {
	case first > 0 && m.To == nil:
		return nil, errAt(first, "an x-sender line without any x-receiver line")
	case first > 0 && !sender:
		return nil, errAt(1, "x-receiver lines without an x-sender line")
	}
	body, err := unstuff(lines, first, o.DotStuffed)
	if err != nil {
		return nil, err
	}
	fields, bodyAt, err := headerFields(body, first)
	if err != nil {
		return nil, err
	}
	if len(fields) == 0 {
		return nil, errAt(0, "no header fields: the file has no message")
	}
	if first == 0 {
		m.Header = true
		if err := m.envelopeFromHeaders(fields); err != nil {
			return nil, err
		}
	}
	m.Data = m.compose(fields, body[bodyAt:], o)
	for _, b := range m.Data {
		if b >= 0x80 {
			m.EightBit = true
			break
		}
	}
	return m, nil
}

// line is one line of the file without its line end, with its number.
type line struct {
	n    int
	text string
}

func splitLines(data []byte) []line {
	s := string(data)
	s = strings.TrimSuffix(s, "\n")
	parts := strings.Split(s, "\n")
	out := make([]line, len(parts))
	for i, p := range parts {
		out[i] = line{n: i + 1, text: strings.TrimSuffix(p, "\r")}
	}
	return out
}

// envelopeLines reads the leading x-sender/x-receiver lines and returns
// how many there were, and whether one was x-sender.
func (m *Message) envelopeLines(lines []line) (n int, sender bool, err error) {
	i := 0
	seen := map[string]bool{}
	for ; i < len(lines); i++ {
		name, value, ok := strings.Cut(lines[i].text, ":")
		if !ok {
			break
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "x-sender":
			if sender {
				return 0, false, errAt(lines[i].n, "a second x-sender line")
			}
			sender = true
			v := strings.TrimSpace(value)
			if v == "<>" {
				continue
			}
			a, err := envelopeAddress(v)
			if err != nil {
				return 0, false, errAt(lines[i].n, "x-sender: %v", err)
			}
			m.From = a
		case "x-receiver":
			a, err := envelopeAddress(strings.TrimSpace(value))
			if err != nil {
				return 0, false, errAt(lines[i].n, "x-receiver: %v", err)
			}
			m.addRcpt(a, seen)
		default:
			return i, sender, nil
		}
	}
	return i, sender, nil
}

func (m *Message) addRcpt(a string, seen map[string]bool) {
	if key := strings.ToLower(a); !seen[key] {
		seen[key] = true
		m.To = append(m.To, a)
		m.UTF8 = m.UTF8 || !ascii(a)
	}
}

// envelopeAddress checks one address of an x-sender or x-receiver line,
// with or without angle brackets.
func envelopeAddress(v string) (string, error) {
	if v == "" {
		return "", errors.New("no address")
	}
	if strings.HasPrefix(v, "<") != strings.HasSuffix(v, ">") {
		return "", fmt.Errorf("unbalanced angle brackets in %q", v)
	}
	v = strings.TrimSuffix(strings.TrimPrefix(v, "<"), ">")
	a, err := mail.ParseAddress("<" + v + ">")
	if err != nil || a.Address != v {
		return "", fmt.Errorf("%q is not an address (local@domain)", v)
	}
	return checkDomain(a.Address)
}

// checkDomain refuses an address without a domain, as SMTP needs one.
func checkDomain(a string) (string, error) {
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || at == len(a)-1 {
		return "", fmt.Errorf("%q has no domain", a)
	}
	return a, nil
}

// unstuff undoes dot-stuffing of the lines from first on.
func unstuff(lines []line, first int, stuffed bool) ([]line, error) {
	out := make([]line, 0, len(lines)-first)
	for i := first; i < len(lines); i++ {
		l := lines[i]
		if stuffed && strings.HasPrefix(l.text, ".") {
			if l.text == "." {
				if rest := lines[i+1:]; !allBlank(rest) {
					return nil, errAt(l.n, `a line of a single "." before the end of a dot-stuffed file (SmtpDotStuffPickupDirFiles is on)`)
				}
				break
			}
			l.text = l.text[1:]
		}
		out = append(out, l)
	}
	return out, nil
}

func allBlank(ls []line) bool {
	for _, l := range ls {
		if strings.TrimSpace(l.text) != "" {
			return false
		}
	}
	return true
}

// field is one header field, its continuation lines included.
type field struct {
	name  string // as written
	lines []string
	n     int // line number of its first line
}

// value is the field's unfolded value.
func (f field) value() string {
	var b strings.Builder
	for i, l := range f.lines {
		if i == 0 {
			_, v, _ := strings.Cut(l, ":")
			b.WriteString(v)
			continue
		}
		b.WriteString(l)
	}
	return strings.TrimSpace(b.String())
}

// headerFields splits the header section off; bodyAt is the index of the
// first body line (after the blank line), len(ls) for a header-only file.
func headerFields(ls []line, first int) (fields []field, bodyAt int, err error) {
	for i, l := range ls {
		if l.text == "" {
			return fields, i + 1, nil
		}
		if l.text[0] == ' ' || l.text[0] == '\t' {
			if len(fields) == 0 {
				return nil, 0, errAt(l.n, "the first header line is a continuation line")
			}
			fields[len(fields)-1].lines = append(fields[len(fields)-1].lines, l.text)
			continue
		}
		name, _, ok := strings.Cut(l.text, ":")
		if !ok || !fieldName(name) {
			return nil, 0, errAt(l.n, "%q is not a header field, and no blank line separates the headers from the body", clip(l.text))
		}
		fields = append(fields, field{name: name, lines: []string{l.text}, n: l.n})
	}
	return fields, len(ls), nil
}

// fieldName: RFC 5322 §3.6.8, printable ASCII except ":".
func fieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// envelopeFromHeaders takes the envelope from Sender/From and To/Cc/Bcc.
func (m *Message) envelopeFromHeaders(fields []field) error {
	var from, sender *field
	seen := map[string]bool{}
	for i := range fields {
		f := &fields[i]
		switch strings.ToLower(f.name) {
		case "from":
			from = f
		case "sender":
			sender = f
		case "to", "cc", "bcc":
			v := f.value()
			if v == "" {
				continue
			}
			list, err := mail.ParseAddressList(v)
			if err != nil {
				return errAt(f.n, "%s: %v", f.name, err)
			}
			for _, a := range list {
				addr, err := checkDomain(a.Address)
				if err != nil {
					return errAt(f.n, "%s: %v", f.name, err)
				}
				m.addRcpt(addr, seen)
			}
		}
	}
	src := sender
	if src == nil {
		src = from
	}
	if src == nil {
		return errAt(0, "no x-sender line and no Sender or From header to take the sender from")
	}
	list, err := mail.ParseAddressList(src.value())
	if err != nil || len(list) == 0 {
		if err == nil {
			err = errors.New("no address")
		}
		return errAt(src.n, "%s: %v", src.name, err)
	}
	a, err := checkDomain(list[0].Address)
	if err != nil {
		return errAt(src.n, "%s: %v", src.name, err)
	}
	m.From = a
	m.UTF8 = m.UTF8 || !ascii(a)
	if len(m.To) == 0 {
		return errAt(0, "no x-receiver line and no recipient in To, Cc or Bcc")
	}
	return nil
}

// compose writes the message as spooled: headers (Bcc dropped, Date and
// Message-ID added when missing), blank line, body; CRLF line ends.
func (m *Message) compose(fields []field, body []line, o ParseOptions) []byte {
	var b bytes.Buffer
	hasDate, hasID := false, false
	for _, f := range fields {
		switch strings.ToLower(f.name) {
		case "date":
			hasDate = true
		case "message-id":
			hasID = true
		}
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	if !hasDate {
		b.WriteString("Date: " + now.Format(time.RFC1123Z) + "\r\n")
	}
	if !hasID {
		host := o.Hostname
		if host == "" {
			host = "localhost"
		}
		id := o.ID
		if id == "" {
			id = fmt.Sprintf("%d", now.UnixNano())
		}
		b.WriteString("Message-ID: <pickup." + id + "@" + host + ">\r\n")
	}
	for _, f := range fields {
		if strings.EqualFold(f.name, "bcc") {
			continue
		}
		for _, l := range f.lines {
			b.WriteString(l)
			b.WriteString("\r\n")
		}
	}
	b.WriteString("\r\n")
	for _, l := range body {
		b.WriteString(l.text)
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
