package metabase

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/beevik/etree"
	"github.com/ds2mb/ds2mb/schema"
)

// Namespace is the XML namespace of an IIS 6 MetaBase.xml.
const Namespace = "urn:microsoft-catalog:XML_Metabase_V64_0"

// Load reads a MetaBase.xml file.
func Load(path string) (*Tree, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Parse reads MetaBase.xml content: a whole <configuration> document, or a
// bare node element such as an <IIsSmtpService> fragment. Structure errors
// name the line (XML syntax) or the Location; values are checked by Validate.
func Parse(b []byte) (*Tree, error) {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // UTF-8 byte order mark
	if t, ok := fastParse(b); ok {
		return t, nil
	}
	return parseGeneral(b)
}

// parseGeneral reads any MetaBase.xml with etree, keeping every element it
// does not understand.
func parseGeneral(b []byte) (*Tree, error) {
	doc := etree.NewDocument()
	doc.ReadSettings.Permissive = false
	doc.ReadSettings.PreserveDuplicateAttrs = true
	if err := doc.ReadFromBytes(b); err != nil {
		return nil, syntaxError(b, err)
	}
	root := doc.Root()
	if root == nil {
		return nil, fmt.Errorf("malformed XML: no root element")
	}
	if len(doc.ChildElements()) > 1 {
		return nil, syntaxError(b, fmt.Errorf("more than one root element"))
	}
	t := New()
	if root.Tag != "configuration" {
		// A fragment: the root itself is a node.
		if err := t.readElement(root, true); err != nil {
			return nil, err
		}
		return t, nil
	}
	for _, child := range root.ChildElements() {
		if child.Tag == "MBProperty" {
			for _, e := range child.ChildElements() {
				if err := t.readElement(e, false); err != nil {
					return nil, err
				}
			}
			continue
		}
		if child.SelectAttr("Location") != nil {
			if err := t.readElement(child, false); err != nil {
				return nil, err
			}
			continue
		}
		t.outer = append(t.outer, child.Copy())
	}
	return t, nil
}

func (t *Tree) readElement(e *etree.Element, fragment bool) error {
	if e.Tag == "IIS_Global" {
		g := e.Copy()
		if a := g.SelectAttr("ChangeNumber"); a != nil {
			n, err := strconv.ParseUint(strings.TrimSpace(a.Value), 10, 64)
			if err != nil {
				return fmt.Errorf("IIS_Global: ChangeNumber %q is not a number", a.Value)
			}
			t.Version = n
			g.RemoveAttr("ChangeNumber")
		}
		t.global = g
		return nil
	}
	locAttr := e.SelectAttr("Location")
	if locAttr == nil {
		if fragment {
			return fmt.Errorf("element <%s> has no Location", e.Tag)
		}
		t.extra = append(t.extra, e.Copy())
		return nil
	}
	loc := strings.TrimSpace(locAttr.Value)
	if loc == "" || !strings.HasPrefix(loc, "/") {
		return fmt.Errorf("element <%s>: Location %q must start with /", e.Tag, locAttr.Value)
	}
	if t.Node(loc) != nil {
		return fmt.Errorf("Location %s appears twice", loc)
	}
	n := &Node{Class: e.Tag, Location: strings.TrimRight(loc, "/")}
	if n.Location == "" {
		n.Location = "/"
	}
	for _, a := range e.Attr {
		if a.Key == "Location" || a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns") {
			continue
		}
		n.props = append(n.props, Property{Name: a.Key, Text: a.Value})
	}
	for _, c := range e.ChildElements() {
		if c.Tag != "Custom" {
			n.extra = append(n.extra, c.Copy())
			continue
		}
		p, err := readCustom(c)
		if err != nil {
			return fmt.Errorf("%s: %v", loc, err)
		}
		n.props = append(n.props, p)
	}
	if dup, ok := n.sortProps(); !ok {
		return fmt.Errorf("%s: property %s appears twice", loc, dup)
	}
	t.nodes[key(n.Location)] = n
	t.order.Store(nil)
	return nil
}

func readCustom(c *etree.Element) (Property, error) {
	return customProperty(func(name string) string { return c.SelectAttrValue(name, "") })
}

// customProperty builds a property from the attributes of a <Custom> element.
func customProperty(attr func(name string) string) (Property, error) {
	p := Property{Custom: true, Name: attr("Name"), Text: attr("Value"), UserType: attr("UserType"), Attributes: attr("Attributes")}
	if p.Name == "" {
		return p, fmt.Errorf("<Custom> without Name")
	}
	id, err := strconv.ParseUint(strings.TrimSpace(attr("ID")), 10, 32)
	if err != nil {
		return p, fmt.Errorf("<Custom Name=%q>: ID %q is not a number", p.Name, attr("ID"))
	}
	p.ID = uint32(id)
	p.Type, err = schema.ParseMDType(attr("Type"))
	if err != nil {
		return p, fmt.Errorf("<Custom Name=%q>: %v", p.Name, err)
	}
	return p, nil
}

// syntaxError turns a parse failure into an error naming the line: etree
// does not say where, so the input is decoded again with encoding/xml,
// whose syntax errors carry the line number.
func syntaxError(b []byte, err error) error {
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = true
	depth, roots := 0, 0
	for {
		tok, derr := dec.Token()
		if derr == io.EOF {
			break
		}
		if derr != nil {
			var se *xml.SyntaxError
			if errors.As(derr, &se) {
				return fmt.Errorf("malformed XML: line %d: %s", se.Line, se.Msg)
			}
			line, _ := dec.InputPos()
			return fmt.Errorf("malformed XML: line %d: %v", line, derr)
		}
		switch tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
				if roots > 1 {
					line, _ := dec.InputPos()
					return fmt.Errorf("malformed XML: line %d: a second root element", line)
				}
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
	line, _ := dec.InputPos()
	return fmt.Errorf("malformed XML: line %d: %v", line, err)
}

// header is the start of every MetaBase.xml ds2mb writes, up to the
// ChangeNumber's value.
const header = "<?xml version =\"1.0\"?>\n<configuration xmlns=\"" + Namespace + "\">\n<MBProperty>\n" +
	"<IIS_Global\tLocation =\".\"\n\t\tChangeNumber=\""

// Bytes renders the tree as an IIS 6 MetaBase.xml: nodes in tree order,
// properties as attributes in alphabetical order, Custom elements after, and
// every element the file held that ds2mb does not read, as it was. The
// output is canonical: two trees with the same content render the same bytes.
func (t *Tree) Bytes() []byte { return withVersion(t.body(), t.Version) }

// withVersion joins the fixed header, a ChangeNumber and a rendered body.
func withVersion(body []byte, version uint64) []byte {
	v := strconv.FormatUint(version, 10)
	out := make([]byte, 0, len(header)+len(v)+len(body))
	out = append(out, header...)
	out = append(out, v...)
	return append(out, body...)
}

// body renders everything after the ChangeNumber's value: the content of
// the tree without its version.
func (t *Tree) body() []byte {
	var b bytes.Buffer
	b.Grow(256 * (len(t.nodes) + 4))
	b.WriteString("\"")
	if t.global != nil {
		for _, a := range t.global.Attr {
			if a.Key == "Location" {
				continue
			}
			writeAttr(&b, a.FullKey(), a.Value)
		}
	}
	b.WriteString("\n\t>\n")
	if t.global != nil {
		for _, c := range t.global.ChildElements() {
			writeElement(&b, c, "\t")
		}
	}
	b.WriteString("</IIS_Global>\n")
	for _, n := range t.Nodes() {
		writeNode(&b, n)
	}
	for _, e := range t.extra {
		writeElement(&b, e, "")
	}
	b.WriteString("</MBProperty>\n")
	for _, e := range t.outer {
		writeElement(&b, e, "")
	}
	b.WriteString("</configuration>\n")
	return b.Bytes()
}

// Equal reports whether two trees hold the same content, ignoring Version:
// whether they render the same MetaBase.xml.
func (t *Tree) Equal(o *Tree) bool { return bytes.Equal(t.body(), o.body()) }

func writeNode(b *bytes.Buffer, n *Node) {
	b.WriteString("<")
	b.WriteString(n.Class)
	b.WriteString("\tLocation =\"")
	escape(b, n.Location)
	b.WriteString("\"")
	for _, p := range n.props {
		if !p.Custom {
			writeAttr(b, p.Name, p.Text)
		}
	}
	b.WriteString("\n\t>\n")
	for _, p := range n.props {
		if !p.Custom {
			continue
		}
		b.WriteString("\t<Custom\n\t\tName=\"")
		escape(b, p.Name)
		b.WriteString("\"\n\t\tID=\"")
		b.WriteString(strconv.FormatUint(uint64(p.ID), 10))
		b.WriteString("\"\n\t\tValue=\"")
		escape(b, p.Text)
		b.WriteString("\"\n\t\tType=\"")
		b.WriteString(p.Type.String())
		b.WriteString("\"\n\t\tUserType=\"")
		escape(b, p.UserType)
		b.WriteString("\"\n\t\tAttributes=\"")
		escape(b, p.Attributes)
		b.WriteString("\"\n\t/>\n")
	}
	for _, e := range n.extra {
		writeElement(b, e, "\t")
	}
	b.WriteString("</")
	b.WriteString(n.Class)
	b.WriteString(">\n")
}

func writeAttr(b *bytes.Buffer, name, value string) {
	b.WriteString("\n\t\t")
	b.WriteString(name)
	b.WriteString("=\"")
	escape(b, value)
	b.WriteString("\"")
}

// writeElement writes an element ds2mb does not read exactly as it was read
// (its inner whitespace included), on a line of its own.
func writeElement(b *bytes.Buffer, e *etree.Element, indent string) {
	b.WriteString(indent)
	b.WriteString(elementString(e))
	b.WriteString("\n")
}

// escape writes s as XML attribute text. Line breaks of MULTISZ values are
// kept as character references, so that every XML reader sees them.
func escape(b *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '"':
			b.WriteString("&quot;")
		case '\n':
			b.WriteString("&#xA;")
		case '\r':
			b.WriteString("&#xD;")
		case '\t':
			b.WriteString("&#x9;")
		default:
			b.WriteByte(c)
		}
	}
}
