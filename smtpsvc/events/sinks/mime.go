package sinks

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"

	"github.com/ds2mb/ds2mb/smtpsvc/events"
)

// This file splits MIME entities without parsing more than it must, so
// that whatever is not changed is copied byte for byte.

var crlf = []byte("\r\n")

// entity is a MIME entity (a message or a body part) split into its
// header section, the blank line after it and its body.
type entity struct {
	header []byte // the fields, each with its line end; empty when none
	sep    []byte // the blank line; nil when the entity has no body
	body   []byte
}

// splitEntity splits an entity at its first blank line.
func splitEntity(b []byte) entity {
	switch {
	case bytes.HasPrefix(b, crlf):
		return entity{sep: b[:2], body: b[2:]}
	case bytes.HasPrefix(b, []byte("\n")):
		return entity{sep: b[:1], body: b[1:]}
	}
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		return entity{header: b[:i+2], sep: b[i+2 : i+4], body: b[i+4:]}
	}
	if i := bytes.Index(b, []byte("\n\n")); i >= 0 {
		return entity{header: b[:i+1], sep: b[i+1 : i+2], body: b[i+2:]}
	}
	return entity{header: b}
}

// join puts an entity together again.
func (e entity) join() []byte {
	out := make([]byte, 0, len(e.header)+len(e.sep)+len(e.body))
	return append(append(append(out, e.header...), e.sep...), e.body...)
}

// contentType is an entity's parsed Content-Type.
type contentType struct {
	media   string            // lower case: "text/plain"
	params  map[string]string // keys lower case
	present bool              // the field is there (else the RFC 2045 default)
}

// parseContentType reads an entity's Content-Type; ok is false when the
// field does not parse.
func parseContentType(header []byte) (contentType, bool) {
	v := events.HeaderValue(header, "Content-Type")
	if v == "" {
		return contentType{media: "text/plain", params: map[string]string{"charset": "us-ascii"}}, true
	}
	media, params, err := mime.ParseMediaType(v)
	if err != nil {
		return contentType{}, false
	}
	return contentType{media: media, params: params, present: true}, true
}

// isAttachment reports whether an entity is an attachment rather than a
// body part: disposition attachment, or a file name.
func isAttachment(header []byte, ct contentType) bool {
	if ct.params["name"] != "" {
		return true
	}
	v := events.HeaderValue(header, "Content-Disposition")
	if v == "" {
		return false
	}
	disp, params, err := mime.ParseMediaType(v)
	return err != nil || disp == "attachment" || params["filename"] != ""
}

// splitParts finds the parts of a multipart body: each range is [start,
// end) in body, the line break before a delimiter left to the delimiter
// (RFC 2046 §5.1.1). ok is false when the close delimiter is missing.
func splitParts(body []byte, boundary string) (ranges [][2]int, ok bool) {
	dash := []byte("--" + boundary)
	start := -1
	for pos := 0; pos < len(body); {
		next := len(body)
		if i := bytes.IndexByte(body[pos:], '\n'); i >= 0 {
			next = pos + i + 1
		}
		line := body[pos:next]
		if bytes.HasPrefix(line, dash) {
			rest := bytes.TrimRight(line[len(dash):], " \t\r\n")
			closing := bytes.Equal(rest, []byte("--"))
			if len(rest) == 0 || closing {
				if start >= 0 {
					end := pos
					if end > start && body[end-1] == '\n' {
						end--
						if end > start && body[end-1] == '\r' {
							end--
						}
					}
					ranges = append(ranges, [2]int{start, end})
				}
				if closing {
					return ranges, true
				}
				start = next
			}
		}
		pos = next
	}
	return ranges, false
}

// setField replaces the first field name of a header section (with its
// folded lines) by "name: value", the name spelt as it was, or adds it at
// the end.
func setField(header []byte, name, value string) []byte {
	lines := bytes.SplitAfter(header, []byte("\n"))
	for i := 0; i < len(lines); i++ {
		n, _, ok := bytes.Cut(lines[i], []byte(":"))
		if !ok || len(lines[i]) == 0 || lines[i][0] == ' ' || lines[i][0] == '\t' || !strings.EqualFold(string(bytes.TrimSpace(n)), name) {
			continue
		}
		j := i + 1
		for j < len(lines) && len(lines[j]) > 0 && (lines[j][0] == ' ' || lines[j][0] == '\t') {
			j++
		}
		out := bytes.Join(lines[:i], nil)
		out = append(append(out, bytes.TrimSpace(n)...), ": "+value+"\r\n"...)
		return append(out, bytes.Join(lines[j:], nil)...)
	}
	return append(append([]byte(nil), header...), name+": "+value+"\r\n"...)
}

// decodeBody decodes a body in a Content-Transfer-Encoding (lower case).
func decodeBody(cte string, body []byte) ([]byte, error) {
	switch cte {
	case "7bit", "8bit", "binary":
		return body, nil
	case "quoted-printable":
		return io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
	case "base64":
		clean := bytes.Map(func(r rune) rune {
			if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, body)
		out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
		n, err := base64.StdEncoding.Decode(out, clean)
		return out[:n], err
	}
	return nil, fmt.Errorf("unknown Content-Transfer-Encoding %q", cte)
}

// encodeBody encodes a body in a Content-Transfer-Encoding that
// decodeBody knows; base64 in lines of 76 characters.
func encodeBody(cte string, body []byte) []byte {
	switch cte {
	case "quoted-printable":
		var b bytes.Buffer
		w := quotedprintable.NewWriter(&b)
		w.Write(body) // a bytes.Buffer does not fail
		w.Close()
		return b.Bytes()
	case "base64":
		enc := base64.StdEncoding.EncodeToString(body)
		var b bytes.Buffer
		for len(enc) > 76 {
			b.WriteString(enc[:76])
			b.Write(crlf)
			enc = enc[76:]
		}
		b.WriteString(enc)
		b.Write(crlf)
		return b.Bytes()
	}
	return body
}

// isASCII reports whether b is 7-bit.
func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}
