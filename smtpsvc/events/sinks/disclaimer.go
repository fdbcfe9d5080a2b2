package sinks

import (
	"bytes"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"mime"
	"strings"

	"github.com/ds2mb/ds2mb/smtpsvc/events"
)

// markerField marks a message that has its disclaimer. Its value says
// nothing of the binding, so that no second binding adds another.
const markerField = "X-DS2MB-Disclaimer"

// maxDepth bounds how deep the disclaimer looks into nested multiparts.
const maxDepth = 8

// protectedTypes are the media types of signed or encrypted content: a
// message whose body (or first body part) is one of them is left alone.
var protectedTypes = map[string]bool{
	"multipart/signed":          true,
	"multipart/encrypted":       true,
	"application/pkcs7-mime":    true,
	"application/x-pkcs7-mime":  true,
	"application/pgp-encrypted": true,
	"application/pgp-signature": true,
}

// errProtected stops the disclaimer for a message that is signed or
// encrypted somewhere it would write.
var errProtected = errors.New("signed or encrypted")

func disclaimerClass(o Options) events.Class {
	return events.Class{
		Name:   "ds2mb.Disclaimer",
		Events: transport,
		Doc:    "appends a disclaimer to the text and HTML body of a message, leaving signed and encrypted mail alone",
		Properties: map[string]string{
			"Text":      `plain text for text/plain parts ("\n" = line break); required unless HTML is given`,
			"HTML":      "HTML for text/html parts, before </body>; default: Text, escaped, in a <p>",
			"Separator": "a line between the body and Text; default: none (a blank line)",
		},
		New: func(props map[string]string) (events.Sink, error) {
			d := &disclaimer{log: o.Logger}
			text, _ := events.Prop(props, "Text")
			d.html, _ = events.Prop(props, "HTML")
			sep, _ := events.Prop(props, "Separator")
			if strings.TrimSpace(text) == "" && strings.TrimSpace(d.html) == "" {
				return nil, errors.New("property Text is required (or HTML)")
			}
			if strings.ContainsAny(sep, "\r\n") {
				return nil, errors.New("property Separator must be one line")
			}
			lines := textLines(text)
			if len(lines) > 0 {
				var b bytes.Buffer
				if sep != "" {
					b.WriteString(sep + "\r\n")
				}
				for _, l := range lines {
					b.WriteString(l + "\r\n")
				}
				d.text = b.Bytes()
			}
			if strings.TrimSpace(d.html) == "" {
				esc := make([]string, len(lines))
				for i, l := range lines {
					esc[i] = html.EscapeString(l)
				}
				d.html = "<p>" + strings.Join(esc, "<br>") + "</p>"
			}
			return contentSink(d.fire), nil
		},
	}
}

// textLines splits a Text property into lines: real line breaks and the
// two characters `\n` both break; blank lines at the end go.
func textLines(s string) []string {
	s = strings.ReplaceAll(s, `\n`, "\n")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.TrimRight(s, "\n\r")
	if strings.TrimSpace(s) == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// disclaimer is a ds2mb.Disclaimer sink.
type disclaimer struct {
	text []byte // the block for text/plain parts, CRLF line ends; nil = none
	html string // the snippet for text/html parts
	log  *slog.Logger
}

// fire adds the disclaimer to the message of an event.
func (d *disclaimer) fire(ev *events.Event, data []byte) error {
	if out := d.add(data, eightBitOK(ev.Msg.FromParams)); out != nil {
		ev.Msg.SetData(out)
	}
	return nil
}

// eightBitOK reports whether MAIL parameters let the message carry 8-bit
// bodies (RFC 6152 BODY=8BITMIME, RFC 3030 BODY=BINARYMIME).
func eightBitOK(params string) bool {
	for _, p := range strings.Fields(params) {
		if k, v, _ := strings.Cut(p, "="); strings.EqualFold(k, "BODY") && (strings.EqualFold(v, "8BITMIME") || strings.EqualFold(v, "BINARYMIME")) {
			return true
		}
	}
	return false
}

// add returns the message with the disclaimer, nil when it is to stay as
// it is.
func (d *disclaimer) add(msg []byte, eightBit bool) []byte {
	if events.HeaderValue(msg, markerField) != "" || pgpInline(splitEntity(msg).body) {
		return nil
	}
	ed := editor{d: d, eightBit: eightBit}
	out, err := ed.edit(msg, 0)
	if err != nil || out == nil {
		return nil
	}
	return append([]byte(markerField+": added\r\n"), out...)
}

// pgpInline reports whether a body holds inline PGP.
func pgpInline(b []byte) bool {
	return bytes.Contains(b, []byte("-----BEGIN PGP SIGNED MESSAGE-----")) || bytes.Contains(b, []byte("-----BEGIN PGP MESSAGE-----"))
}

// editor walks one message.
type editor struct {
	d        *disclaimer
	eightBit bool // the envelope allows 8-bit bodies
}

// edit returns an entity with the disclaimer added, nil when it adds
// none, errProtected when the message must stay as it is.
func (ed *editor) edit(raw []byte, depth int) ([]byte, error) {
	e := splitEntity(raw)
	ct, ok := parseContentType(e.header)
	if !ok {
		return nil, nil
	}
	if protectedTypes[ct.media] {
		return nil, errProtected
	}
	if isAttachment(e.header, ct) {
		return nil, nil
	}
	switch ct.media {
	case "text/plain", "text/html":
		return ed.editText(e, ct, depth == 0)
	case "multipart/alternative", "multipart/mixed", "multipart/related":
		return ed.editMultipart(e, ct, depth)
	}
	return nil, nil
}

// editMultipart adds the disclaimer to the parts of an alternative, or
// to the first part of a mixed or related multipart; everything else of
// the body is copied as it was.
func (ed *editor) editMultipart(e entity, ct contentType, depth int) ([]byte, error) {
	if depth >= maxDepth || ct.params["boundary"] == "" {
		return nil, nil
	}
	ranges, ok := splitParts(e.body, ct.params["boundary"])
	if !ok || len(ranges) == 0 {
		return nil, nil
	}
	if ct.media != "multipart/alternative" {
		ranges = ranges[:1]
	}
	var body []byte
	last := 0
	for _, r := range ranges {
		nb, err := ed.edit(e.body[r[0]:r[1]], depth+1)
		if err != nil {
			return nil, err
		}
		if nb != nil {
			body = append(append(body, e.body[last:r[0]]...), nb...)
			last = r[1]
		}
	}
	if body == nil {
		return nil, nil
	}
	e.body = append(body, e.body[last:]...)
	return e.join(), nil
}

// editText adds the disclaimer to a text/plain or text/html entity,
// decoding and encoding it again; top is the message itself.
func (ed *editor) editText(e entity, ct contentType, top bool) ([]byte, error) {
	cte := strings.ToLower(strings.TrimSpace(events.HeaderValue(e.header, "Content-Transfer-Encoding")))
	if cte == "" {
		cte = "7bit"
	}
	body, err := decodeBody(cte, e.body)
	if err != nil {
		return nil, nil
	}
	if pgpInline(body) {
		return nil, errProtected
	}
	charset := strings.ToLower(strings.TrimSpace(ct.params["charset"]))
	if charset == "" {
		charset = "us-ascii"
	}
	isHTML := ct.media == "text/html"
	var add []byte
	switch {
	case isHTML:
		s := ed.d.html
		if charset != "utf-8" && charset != "utf8" {
			s = charRefs(s)
		}
		add = []byte(s)
	case ed.d.text != nil:
		add = ed.d.text
	default:
		return nil, nil
	}
	add, label, ok := inCharset(charset, add)
	if !ok {
		ed.d.log.Warn("disclaimer not added to a part whose charset cannot hold it", "charset", charset, "type", ct.media)
		return nil, nil
	}
	var nb []byte
	if isHTML {
		nb = insertHTML(body, add)
	} else {
		nb = appendText(body, add)
	}
	header, changed := e.header, false
	if label != "" {
		ct.params["charset"] = label
		v := mime.FormatMediaType(ct.media, ct.params)
		if v == "" {
			return nil, nil
		}
		header, changed = setField(header, "Content-Type", v), true
	}
	// 8-bit text may not go into a 7bit part, nor into an 8bit one that
	// was ASCII in mail not sent as 8BITMIME.
	eight := cte == "8bit" || cte == "binary"
	if !isASCII(add) && (cte == "7bit" || eight && !ed.eightBit && isASCII(body)) {
		cte = "quoted-printable"
		header, changed = setField(header, "Content-Transfer-Encoding", cte), true
	}
	if top && changed && events.HeaderValue(header, "MIME-Version") == "" {
		header = setField(header, "MIME-Version", "1.0")
	}
	e.header, e.body = header, encodeBody(cte, nb)
	if e.sep == nil {
		e.sep = crlf
	}
	return e.join(), nil
}

// inCharset writes UTF-8 text in a part's charset. label is the charset
// the part must be labelled with instead ("" = as it is); ok is false
// when the charset cannot hold the text.
func inCharset(charset string, s []byte) (out []byte, label string, ok bool) {
	switch charset {
	case "utf-8", "utf8":
		return s, "", true
	case "us-ascii", "ascii", "ansi_x3.4-1968", "iso646-us":
		if isASCII(s) {
			return s, "", true
		}
		return s, "utf-8", true
	case "iso-8859-1", "iso_8859-1", "latin1", "l1":
		out := make([]byte, 0, len(s))
		for _, r := range string(s) {
			if r > 0xff {
				return nil, "", false
			}
			out = append(out, byte(r))
		}
		return out, "", true
	}
	if strings.HasPrefix(charset, "utf-16") || strings.HasPrefix(charset, "utf-32") || strings.HasPrefix(charset, "ucs-") {
		return nil, "", false
	}
	// Other charsets are supersets of ASCII; what is not ASCII cannot be
	// written in them without their tables.
	return s, "", isASCII(s)
}

// charRefs writes the non-ASCII characters of HTML as character
// references, which any charset can carry.
func charRefs(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x80 {
			b.WriteRune(r)
		} else {
			fmt.Fprintf(&b, "&#%d;", r)
		}
	}
	return b.String()
}

// appendText adds a text block after a body, a blank line between.
func appendText(body, block []byte) []byte {
	out := append([]byte(nil), body...)
	if len(out) > 0 {
		if !bytes.HasSuffix(out, []byte("\n")) {
			out = append(out, crlf...)
		}
		out = append(out, crlf...)
	}
	return append(out, block...)
}

// insertHTML puts a snippet before the last </body> tag, else before
// </html>, else at the end.
func insertHTML(body, snippet []byte) []byte {
	lower := asciiLower(body)
	i := bytes.LastIndex(lower, []byte("</body"))
	if i < 0 {
		i = bytes.LastIndex(lower, []byte("</html"))
	}
	out := make([]byte, 0, len(body)+len(snippet)+4)
	if i < 0 {
		out = append(out, body...)
		if len(out) > 0 && !bytes.HasSuffix(out, []byte("\n")) {
			out = append(out, crlf...)
		}
		return append(append(out, snippet...), crlf...)
	}
	out = append(append(append(out, body[:i]...), snippet...), crlf...)
	return append(out, body[i:]...)
}

// asciiLower lowers ASCII letters only, so that indexes stay those of b.
func asciiLower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}
