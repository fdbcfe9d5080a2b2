package metabase

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/beevik/etree"
)

// fastParse reads the common shape of a MetaBase.xml — the one ds2mb writes
// and IIS writes for the SMTP service — several times faster than the
// general etree reader: an optional XML declaration, <configuration> holding
// one <MBProperty>, holding <IIS_Global> and node elements whose only
// children are <Custom> elements, in ASCII, with LF line ends.
//
// It gives up (ok = false) on anything else, and on any error, and Parse
// then reads the input with etree, which keeps what this does not know and
// words the errors. Whatever it accepts, it reads exactly as the general
// reader does (FuzzFastParse checks this).
func fastParse(b []byte) (t *Tree, ok bool) {
	for _, c := range b {
		if c >= 0x80 || c < 0x20 && c != '\t' && c != '\n' {
			return nil, false // non-ASCII, CR or control characters
		}
	}
	p := &fastParser{b: b}
	for _, decl := range []string{`<?xml version ="1.0"?>`, `<?xml version="1.0"?>`, `<?xml version="1.0" encoding="UTF-8"?>`} {
		if bytes.HasPrefix(b, []byte(decl)) {
			p.i = len(decl)
			break
		}
	}
	p.space()
	root, ok := p.startTag()
	if !ok || root.name != "configuration" || root.empty {
		return nil, false
	}
	p.space()
	mb, ok := p.startTag()
	if !ok || mb.name != "MBProperty" || len(mb.attrs) != 0 {
		return nil, false
	}
	t = New()
	if !mb.empty {
		for {
			p.space()
			if p.endTag("MBProperty") {
				break
			}
			e, ok := p.startTag()
			if !ok || !t.fastElement(p, e) {
				return nil, false
			}
		}
	}
	p.space()
	if !p.endTag("configuration") {
		return nil, false
	}
	p.space()
	if p.i != len(p.b) {
		return nil, false
	}
	return t, true
}

type fastParser struct {
	b []byte
	i int
}

type fastAttr struct{ name, value string }

type fastTag struct {
	name  string
	attrs []fastAttr
	empty bool // <name …/>
}

func (p *fastParser) space() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t' || p.b[p.i] == '\n') {
		p.i++
	}
}

func isFastNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-'
}

func isNameStartByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_'
}

func (p *fastParser) name() (string, bool) {
	start := p.i
	for p.i < len(p.b) && isFastNameByte(p.b[p.i]) {
		p.i++
	}
	// An XML name may not start with a digit, '.' or '-'; leave such input
	// to the general reader, which refuses it with its line.
	if p.i == start || !isNameStartByte(p.b[start]) {
		return "", false
	}
	return string(p.b[start:p.i]), true
}

// startTag reads "<name attr="value" …>" or "…/>".
func (p *fastParser) startTag() (fastTag, bool) {
	var tag fastTag
	if p.i >= len(p.b) || p.b[p.i] != '<' {
		return tag, false
	}
	p.i++
	name, ok := p.name()
	if !ok {
		return tag, false
	}
	tag.name = name
	for {
		p.space()
		if p.i >= len(p.b) {
			return tag, false
		}
		switch p.b[p.i] {
		case '>':
			p.i++
			return tag, uniqueAttrs(tag.attrs)
		case '/':
			if p.i+1 < len(p.b) && p.b[p.i+1] == '>' {
				p.i += 2
				tag.empty = true
				return tag, uniqueAttrs(tag.attrs)
			}
			return tag, false
		}
		an, ok := p.name()
		if !ok {
			return tag, false
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != '=' {
			return tag, false
		}
		p.i++
		p.space()
		v, ok := p.value()
		if !ok {
			return tag, false
		}
		tag.attrs = append(tag.attrs, fastAttr{an, v})
	}
}

// uniqueAttrs reports whether no attribute name appears twice.
func uniqueAttrs(as []fastAttr) bool {
	if len(as) <= 16 {
		for i := range as {
			for j := range i {
				if as[i].name == as[j].name {
					return false
				}
			}
		}
		return true
	}
	seen := make(map[string]bool, len(as))
	for _, a := range as {
		if seen[a.name] {
			return false
		}
		seen[a.name] = true
	}
	return true
}

// value reads a quoted attribute value with the predefined entities and
// character references of tab, line feed, carriage return and printable
// ASCII.
func (p *fastParser) value() (string, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' && p.b[p.i] != '\'' {
		return "", false
	}
	q := p.b[p.i]
	p.i++
	start := p.i
	end := bytes.IndexByte(p.b[start:], q)
	if end < 0 {
		return "", false
	}
	raw := p.b[start : start+end]
	p.i = start + end + 1
	if bytes.IndexByte(raw, '<') >= 0 {
		return "", false
	}
	amp := bytes.IndexByte(raw, '&')
	if amp < 0 {
		return string(raw), true
	}
	var sb strings.Builder
	sb.Grow(len(raw))
	for len(raw) > 0 {
		amp = bytes.IndexByte(raw, '&')
		if amp < 0 {
			sb.Write(raw)
			break
		}
		sb.Write(raw[:amp])
		raw = raw[amp+1:]
		semi := bytes.IndexByte(raw, ';')
		if semi < 0 {
			return "", false
		}
		ent := string(raw[:semi])
		raw = raw[semi+1:]
		switch ent {
		case "lt":
			sb.WriteByte('<')
		case "gt":
			sb.WriteByte('>')
		case "amp":
			sb.WriteByte('&')
		case "apos":
			sb.WriteByte('\'')
		case "quot":
			sb.WriteByte('"')
		default:
			num, ok := strings.CutPrefix(ent, "#")
			if !ok || num == "" {
				return "", false
			}
			base := 10
			if h, ok := strings.CutPrefix(num, "x"); ok {
				base, num = 16, h
			}
			n, err := strconv.ParseUint(num, base, 8)
			if err != nil || num == "" || num[0] == '+' || num[0] == '-' || !(n == '\t' || n == '\n' || n == '\r' || n >= 0x20 && n < 0x7f) {
				return "", false
			}
			sb.WriteByte(byte(n))
		}
	}
	return sb.String(), true
}

// endTag reads "</name>" (with optional space before ">") if it comes next.
func (p *fastParser) endTag(name string) bool {
	j := p.i
	if !bytes.HasPrefix(p.b[j:], []byte("</")) || !bytes.HasPrefix(p.b[j+2:], []byte(name)) {
		return false
	}
	j += 2 + len(name)
	for j < len(p.b) && (p.b[j] == ' ' || p.b[j] == '\t' || p.b[j] == '\n') {
		j++
	}
	if j >= len(p.b) || p.b[j] != '>' {
		return false
	}
	p.i = j + 1
	return true
}

// fastElement reads one element inside <MBProperty>, whose start tag e has
// been read: IIS_Global, or a node with Custom children.
func (t *Tree) fastElement(p *fastParser, e fastTag) bool {
	if e.name == "IIS_Global" {
		if t.global != nil || !e.empty && !p.closeEmpty("IIS_Global") {
			return false
		}
		g := etree.NewElement("IIS_Global")
		for _, a := range e.attrs {
			if a.name == "ChangeNumber" {
				n, err := strconv.ParseUint(strings.TrimSpace(a.value), 10, 64)
				if err != nil {
					return false
				}
				t.Version = n
				continue
			}
			g.CreateAttr(a.name, a.value)
		}
		t.global = g
		return true
	}
	var loc string
	found := false
	for _, a := range e.attrs {
		if a.name == "Location" {
			loc, found = a.value, true
		}
	}
	if !found {
		return false // an element ds2mb keeps verbatim: the general reader's job
	}
	loc = strings.TrimSpace(loc)
	if loc == "" || loc[0] != '/' || t.Node(loc) != nil {
		return false
	}
	n := &Node{Class: e.name, Location: strings.TrimRight(loc, "/")}
	if n.Location == "" {
		n.Location = "/"
	}
	for _, a := range e.attrs {
		if a.name == "Location" || a.name == "xmlns" {
			continue
		}
		n.props = append(n.props, Property{Name: a.name, Text: a.value})
	}
	if !e.empty {
		for {
			p.space()
			if p.endTag(e.name) {
				break
			}
			c, ok := p.startTag()
			if !ok || c.name != "Custom" || !c.empty && !p.closeEmpty("Custom") {
				return false
			}
			get := func(name string) string {
				for _, a := range c.attrs {
					if a.name == name {
						return a.value
					}
				}
				return ""
			}
			prop, err := customProperty(get)
			if err != nil {
				return false
			}
			n.props = append(n.props, prop)
		}
	}
	if _, ok := n.sortProps(); !ok {
		return false
	}
	t.nodes[key(n.Location)] = n
	t.order.Store(nil)
	return true
}

// closeEmpty reads optional white space and the end tag of an element
// that must have no children.
func (p *fastParser) closeEmpty(name string) bool {
	p.space()
	return p.endTag(name)
}
