package metabase

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ds2mb/ds2mb/schema"
)

// ChangeKind says what a Change is.
type ChangeKind int

// The kinds of change Diff reports.
const (
	NodeAdded       ChangeKind = iota + 1 // a Location only in the new tree
	NodeRemoved                           // a Location only in the old tree
	NodeChanged                           // same Location, other element name or other kept elements
	PropertyAdded                         // a property only in the new node
	PropertyRemoved                       // a property only in the old node
	PropertyChanged                       // a property whose text or Custom metadata differs
)

// String names the kind.
func (k ChangeKind) String() string {
	switch k {
	case NodeAdded:
		return "node added"
	case NodeRemoved:
		return "node removed"
	case NodeChanged:
		return "node changed"
	case PropertyAdded:
		return "property added"
	case PropertyRemoved:
		return "property removed"
	case PropertyChanged:
		return "property changed"
	}
	return "ChangeKind(" + strconv.Itoa(int(k)) + ")"
}

// Masked is what Diff and mbctl print instead of a secure property's value.
const Masked = "********"

// Change is one difference between two trees. Old and New hold a property's
// text (Masked for a secure property: schema Secure, or a Custom property
// with the SECURE attribute); for a node they hold its element name.
type Change struct {
	Kind     ChangeKind
	Location string
	Property string // "" for a node change
	Old, New string
	Secure   bool   // the property's values are masked
	Detail   string // what else changed (Custom metadata, kept elements)
}

// String is a one-line, human-readable form of the change:
//
//   - /LM/SmtpSvc/2 <IIsSmtpServer>
//   - /LM/SmtpSvc/2: MaxMessageSize = "2097152"
//     ~ /LM/SmtpSvc/1: MaxMessageSize: "1048576" -> "2097152"
//   - /LM/SmtpSvc/1: RoutePassword (was "********")
func (c Change) String() string {
	var s string
	switch c.Kind {
	case NodeAdded:
		s = fmt.Sprintf("+ %s <%s>", c.Location, c.New)
	case NodeRemoved:
		s = fmt.Sprintf("- %s <%s>", c.Location, c.Old)
	case NodeChanged:
		s = fmt.Sprintf("~ %s", c.Location)
		if c.Old != c.New {
			s += fmt.Sprintf(": <%s> -> <%s>", c.Old, c.New)
		}
	case PropertyAdded:
		s = fmt.Sprintf("+ %s: %s = %s", c.Location, c.Property, quote(c.New))
	case PropertyRemoved:
		s = fmt.Sprintf("- %s: %s (was %s)", c.Location, c.Property, quote(c.Old))
	case PropertyChanged:
		s = fmt.Sprintf("~ %s: %s: %s -> %s", c.Location, c.Property, quote(c.Old), quote(c.New))
	default:
		s = fmt.Sprintf("? %s %s", c.Location, c.Property)
	}
	if c.Detail != "" {
		s += " (" + c.Detail + ")"
	}
	return s
}

// quote quotes a value for a change line; line breaks of MULTISZ values
// show as \n so that a change stays on one line.
func quote(s string) string { return strconv.Quote(s) }

// IsSecure reports whether a property's value must not be shown: the
// catalogue marks it Secure, or it is a Custom property whose Attributes
// include SECURE.
func IsSecure(p Property) bool {
	if sp, ok := schema.Lookup(p.Name); ok && sp.Secure {
		return true
	}
	return p.Custom && strings.Contains(strings.ToUpper(p.Attributes), "SECURE")
}

// ShowText is a property's text for display: Masked when it is secure.
func ShowText(p Property) string {
	if IsSecure(p) {
		return Masked
	}
	return p.Text
}

// Diff lists the differences from tree a to tree b in tree order: nodes
// added and removed (each followed by its properties), nodes whose element
// name or kept elements changed, and properties added, removed or changed.
// Secure values are masked. Versions are not compared.
func Diff(a, b *Tree) []Change {
	if a == nil {
		a = New()
	}
	if b == nil {
		b = New()
	}
	var out []Change
	an, bn := a.Nodes(), b.Nodes()
	i, j := 0, 0
	for i < len(an) || j < len(bn) {
		var c int
		switch {
		case i == len(an):
			c = 1
		case j == len(bn):
			c = -1
		default:
			c = compareNodeKeys(an[i], bn[j])
		}
		switch {
		case c < 0:
			n := an[i]
			out = append(out, Change{Kind: NodeRemoved, Location: n.Location, Old: n.Class})
			for _, p := range n.props {
				out = append(out, propChange(PropertyRemoved, n.Location, p, Property{}))
			}
			i++
		case c > 0:
			n := bn[j]
			out = append(out, Change{Kind: NodeAdded, Location: n.Location, New: n.Class})
			for _, p := range n.props {
				out = append(out, propChange(PropertyAdded, n.Location, Property{}, p))
			}
			j++
		default:
			out = diffNode(out, an[i], bn[j])
			i++
			j++
		}
	}
	return out
}

// compareNodeKeys orders nodes as Nodes does.
func compareNodeKeys(x, y *Node) int {
	return strings.Compare(sortKey(x.Location), sortKey(y.Location))
}

func diffNode(out []Change, a, b *Node) []Change {
	var extra []string
	if len(a.extra) != len(b.extra) {
		extra = append(extra, "other child elements differ")
	} else {
		for k := range a.extra {
			if elementString(a.extra[k]) != elementString(b.extra[k]) {
				extra = append(extra, "other child elements differ")
				break
			}
		}
	}
	if a.Class != b.Class || len(extra) > 0 {
		out = append(out, Change{Kind: NodeChanged, Location: b.Location, Old: a.Class, New: b.Class, Detail: strings.Join(extra, "; ")})
	}
	i, j := 0, 0
	for i < len(a.props) || j < len(b.props) {
		var c int
		switch {
		case i == len(a.props):
			c = 1
		case j == len(b.props):
			c = -1
		default:
			c = compareFold(a.props[i].Name, b.props[j].Name)
		}
		switch {
		case c < 0:
			out = append(out, propChange(PropertyRemoved, b.Location, a.props[i], Property{}))
			i++
		case c > 0:
			out = append(out, propChange(PropertyAdded, b.Location, Property{}, b.props[j]))
			j++
		default:
			if a.props[i] != b.props[j] {
				out = append(out, propChange(PropertyChanged, b.Location, a.props[i], b.props[j]))
			}
			i++
			j++
		}
	}
	return out
}

func propChange(kind ChangeKind, loc string, old, new Property) Change {
	c := Change{Kind: kind, Location: loc, Property: new.Name, Old: old.Text, New: new.Text}
	if kind == PropertyRemoved {
		c.Property = old.Name
	}
	if (kind != PropertyAdded && IsSecure(old)) || (kind != PropertyRemoved && IsSecure(new)) {
		c.Secure = true
		if kind != PropertyAdded {
			c.Old = Masked
		}
		if kind != PropertyRemoved {
			c.New = Masked
		}
	}
	if kind == PropertyChanged {
		var d []string
		if old.Name != new.Name {
			d = append(d, "name was "+old.Name)
		}
		if old.Custom != new.Custom {
			if new.Custom {
				d = append(d, "now a <Custom> element")
			} else {
				d = append(d, "now an attribute")
			}
		} else if old.Custom && (old.ID != new.ID || old.Type != new.Type || old.UserType != new.UserType || old.Attributes != new.Attributes) {
			d = append(d, fmt.Sprintf("Custom metadata: ID %d Type %v UserType %s Attributes %s -> ID %d Type %v UserType %s Attributes %s",
				old.ID, old.Type, old.UserType, old.Attributes, new.ID, new.Type, new.UserType, new.Attributes))
		}
		c.Detail = strings.Join(d, "; ")
	}
	return c
}
