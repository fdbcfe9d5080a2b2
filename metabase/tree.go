package metabase

import (
	"cmp"
	"encoding/binary"
	"maps"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/beevik/etree"
	"github.com/ds2mb/ds2mb/schema"
)

// Node classes (MetaBase.xml element names) of the SMTP service.
const (
	ClassService = "IIsSmtpService"
	ClassServer  = "IIsSmtpServer"
	ClassDomain  = "IIsSmtpDomain"
	ClassConfig  = "IIsConfigObject"
)

// Property is one property of a node, as it stands in the file: its name and
// text, and for a <Custom> element its explicit metadata.
type Property struct {
	Name string
	Text string

	Custom     bool          // written as <Custom …/> rather than as an attribute
	ID         uint32        // Custom: metabase ID
	Type       schema.MDType // Custom: data type
	UserType   string        // Custom: user type
	Attributes string        // Custom: INHERIT, NO_ATTRIBUTES, SECURE …
}

// Node is one metabase key: an element with a Location.
type Node struct {
	Class    string // element name: IIsSmtpServer, IIsWebService, …
	Location string
	props    []Property
	extra    []*etree.Element // child elements other than <Custom>, kept verbatim
}

// Props returns the node's properties, sorted by name. The slice must not be
// modified.
func (n *Node) Props() []Property { return n.props }

// Get returns a property by name, case-insensitively.
func (n *Node) Get(name string) (Property, bool) {
	if i := n.index(name); i >= 0 {
		return n.props[i], true
	}
	return Property{}, false
}

// Text returns a property's text, or "" when absent.
func (n *Node) Text(name string) string {
	p, _ := n.Get(name)
	return p.Text
}

func (n *Node) index(name string) int {
	for i := range n.props {
		if strings.EqualFold(n.props[i].Name, name) {
			return i
		}
	}
	return -1
}

// Set sets a property's text. A property already present keeps its form
// (attribute or Custom); a new one is an attribute when the catalogue knows
// its name, else a Custom element of type STRING. It reports whether anything
// changed.
func (n *Node) Set(name, text string) bool {
	if i := n.index(name); i >= 0 {
		if n.props[i].Text == text {
			return false
		}
		n.props[i].Text = text
		return true
	}
	p := Property{Name: name, Text: text}
	if sp, ok := schema.Lookup(name); ok {
		p.Name = sp.Name
	} else {
		p.Custom, p.Type, p.UserType, p.Attributes = true, schema.STRING, schema.UTServer, "NO_ATTRIBUTES"
	}
	n.put(p)
	return true
}

// SetValue sets a catalogue property from a typed value, rendered the way
// the catalogue writes it. Unknown names are set as text.
func (n *Node) SetValue(name string, v schema.Value) bool {
	if sp, ok := schema.Lookup(name); ok {
		return n.Set(sp.Name, sp.Render(v))
	}
	return n.Set(name, v.Text())
}

// SetProperty sets a property with all its metadata.
func (n *Node) SetProperty(p Property) bool {
	if i := n.index(p.Name); i >= 0 {
		if n.props[i] == p {
			return false
		}
		n.props[i] = p
		return true
	}
	n.put(p)
	return true
}

func (n *Node) put(p Property) {
	i, _ := slices.BinarySearchFunc(n.props, p.Name, func(a Property, name string) int {
		return compareFold(a.Name, name)
	})
	n.props = slices.Insert(n.props, i, p)
}

// sortProps puts properties read from a file in order. It reports the
// first name that appears twice (case-insensitively), if any.
func (n *Node) sortProps() (dup string, ok bool) {
	slices.SortStableFunc(n.props, func(a, b Property) int { return compareFold(a.Name, b.Name) })
	for i := 1; i < len(n.props); i++ {
		if strings.EqualFold(n.props[i-1].Name, n.props[i].Name) {
			return n.props[i].Name, false
		}
	}
	return "", true
}

// Remove deletes a property; it reports whether it was there.
func (n *Node) Remove(name string) bool {
	if i := n.index(name); i >= 0 {
		n.props = slices.Delete(n.props, i, i+1)
		return true
	}
	return false
}

// Empty reports whether the node holds no property and no kept child
// element.
func (n *Node) Empty() bool { return len(n.props) == 0 && len(n.extra) == 0 }

// Clone returns a deep copy of the node.
func (n *Node) Clone() *Node {
	c := &Node{Class: n.Class, Location: n.Location, props: slices.Clone(n.props)}
	for _, e := range n.extra {
		c.extra = append(c.extra, e.Copy())
	}
	return c
}

// Equal reports whether two nodes hold the same class, location, properties
// and extra elements.
func (n *Node) Equal(o *Node) bool {
	if n.Class != o.Class || !strings.EqualFold(n.Location, o.Location) || !slices.Equal(n.props, o.props) || len(n.extra) != len(o.extra) {
		return false
	}
	for i := range n.extra {
		if elementString(n.extra[i]) != elementString(o.extra[i]) {
			return false
		}
	}
	return true
}

// Tree is a whole metabase: its nodes by Location, plus whatever else the
// file held (IIS_Global, schema elements), kept as it was.
type Tree struct {
	nodes   map[string]*Node        // key: lower-case Location
	order   atomic.Pointer[[]*Node] // nodes in tree order; nil when the set of nodes changed
	Version uint64                  // ChangeNumber of the file, bumped by every save
	extra   []*etree.Element        // non-node elements inside <MBProperty>, verbatim
	outer   []*etree.Element        // elements beside <MBProperty> in <configuration>, verbatim
	global  *etree.Element          // <IIS_Global>, without ChangeNumber
}

// New returns an empty tree.
func New() *Tree { return &Tree{nodes: map[string]*Node{}} }

func key(loc string) string { return strings.ToLower(strings.TrimRight(loc, "/")) }

// Node returns the node at a Location, or nil.
func (t *Tree) Node(loc string) *Node { return t.nodes[key(loc)] }

// Ensure returns the node at loc, creating it with class when absent. An
// existing node keeps its class unless it has none.
func (t *Tree) Ensure(loc, class string) *Node {
	k := key(loc)
	if n, ok := t.nodes[k]; ok {
		if n.Class == "" {
			n.Class = class
		}
		return n
	}
	n := &Node{Class: class, Location: strings.TrimRight(loc, "/")}
	t.nodes[k] = n
	t.order.Store(nil)
	return n
}

// Put stores a node, replacing any node at its Location.
func (t *Tree) Put(n *Node) {
	t.nodes[key(n.Location)] = n
	t.order.Store(nil)
}

// Delete removes the node at loc; it reports whether it was there.
func (t *Tree) Delete(loc string) bool {
	k := key(loc)
	_, ok := t.nodes[k]
	delete(t.nodes, k)
	t.order.Store(nil)
	return ok
}

// DeleteSubtree removes loc and every node below it, and returns how many.
func (t *Tree) DeleteSubtree(loc string) int {
	k := key(loc)
	n := 0
	for nk := range t.nodes {
		if nk == k || strings.HasPrefix(nk, k+"/") {
			delete(t.nodes, nk)
			n++
		}
	}
	t.order.Store(nil)
	return n
}

// Len is the number of nodes.
func (t *Tree) Len() int { return len(t.nodes) }

// Nodes returns every node in tree order (parents before children, virtual
// servers in numeric order; see CompareLocations). The slice is the
// caller's; the nodes are the tree's.
func (t *Tree) Nodes() []*Node {
	o := t.order.Load()
	if o == nil {
		sorted := sortNodes(slices.Collect(maps.Values(t.nodes)))
		o = &sorted
		t.order.Store(o) // concurrent readers may both sort; either result is right
	}
	return slices.Clone(*o)
}

// Below returns the nodes strictly below loc, in tree order.
func (t *Tree) Below(loc string) []*Node {
	k := key(loc) + "/"
	var out []*Node
	for nk, n := range t.nodes {
		if strings.HasPrefix(nk, k) {
			out = append(out, n)
		}
	}
	return sortNodes(out)
}

// sortNodes sorts nodes in tree order, by precomputed sort keys.
func sortNodes(ns []*Node) []*Node {
	type keyed struct {
		k string
		n *Node
	}
	ks := make([]keyed, len(ns))
	for i, n := range ns {
		ks[i] = keyed{sortKey(n.Location), n}
	}
	slices.SortFunc(ks, func(a, b keyed) int { return strings.Compare(a.k, b.k) })
	for i := range ks {
		ns[i] = ks[i].n
	}
	return ns
}

// sortKey encodes a Location so that comparing keys byte by byte orders
// Locations as CompareLocations does: per segment, a number as 0x01, its
// value in 8 big-endian bytes and its digits; a name as 0x02 and its
// lower-case form; each segment ended by 0x00.
func sortKey(loc string) string {
	b := make([]byte, 0, len(loc)+16)
	for {
		seg, rest, more := strings.Cut(loc, "/")
		if n, ok := segmentNumber(seg); ok {
			b = append(b, 1)
			b = binary.BigEndian.AppendUint64(b, n)
			b = append(b, seg...)
		} else {
			b = append(b, 2)
			b = appendLower(b, seg)
		}
		b = append(b, 0)
		if !more {
			return string(b)
		}
		loc = rest
	}
}

func appendLower(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			return append(b, strings.ToLower(s[i:])...)
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

// Unread returns, in tree order, the nodes ds2mb keeps as they are but does
// not read: those of other IIS services (IIsWebService, IIsFtpServer, …).
func (t *Tree) Unread() []*Node {
	var out []*Node
	for _, n := range t.Nodes() {
		if p, err := schema.Classify(n.Location); err == nil && p.Kind == schema.NodeUnknown {
			out = append(out, n)
		}
	}
	return out
}

// Clone returns a deep copy of the tree.
func (t *Tree) Clone() *Tree {
	c := &Tree{nodes: make(map[string]*Node, len(t.nodes)), Version: t.Version}
	for k, n := range t.nodes {
		c.nodes[k] = n.Clone()
	}
	for _, e := range t.extra {
		c.extra = append(c.extra, e.Copy())
	}
	for _, e := range t.outer {
		c.outer = append(c.outer, e.Copy())
	}
	if t.global != nil {
		c.global = t.global.Copy()
	}
	return c
}

// CompareLocations orders Locations segment by segment: numeric segments by
// value and before names, names case-insensitively, a parent before its
// children. It does not allocate.
func CompareLocations(a, b string) int {
	for {
		x, arest, amore := strings.Cut(a, "/")
		y, brest, bmore := strings.Cut(b, "/")
		if c := compareSegments(x, y); c != 0 {
			return c
		}
		switch {
		case !amore && !bmore:
			return 0
		case !amore:
			return -1
		case !bmore:
			return 1
		}
		a, b = arest, brest
	}
}

// compareFold compares two strings case-insensitively, as if both were
// lower-cased, without allocating for ASCII.
func compareFold(x, y string) int {
	for i := 0; i < len(x) && i < len(y); i++ {
		cx, cy := x[i], y[i]
		if cx >= 0x80 || cy >= 0x80 {
			return cmp.Compare(strings.ToLower(x[i:]), strings.ToLower(y[i:]))
		}
		if 'A' <= cx && cx <= 'Z' {
			cx += 'a' - 'A'
		}
		if 'A' <= cy && cy <= 'Z' {
			cy += 'a' - 'A'
		}
		if cx != cy {
			return cmp.Compare(cx, cy)
		}
	}
	return cmp.Compare(len(x), len(y))
}

// compareSegments compares two Location segments: both numeric by value,
// else case-insensitively.
func compareSegments(x, y string) int {
	xn, xok := segmentNumber(x)
	yn, yok := segmentNumber(y)
	if xok && yok {
		if c := cmp.Compare(xn, yn); c != 0 {
			return c
		}
		return cmp.Compare(x, y) // "01" and "1": any fixed order
	}
	if xok != yok {
		if xok {
			return -1
		}
		return 1
	}
	return compareFold(x, y)
}

// segmentNumber reads a segment made only of decimal digits (at most 18).
func segmentNumber(s string) (uint64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// elementString renders an element as it was read. Carriage returns, tabs
// and line breaks in attribute values, and carriage returns in text, are
// written as character references so that reading it again gives the same
// element.
func elementString(e *etree.Element) string {
	var b strings.Builder
	e.WriteTo(&b, &etree.WriteSettings{CanonicalText: true, CanonicalAttrVal: true})
	return b.String()
}
