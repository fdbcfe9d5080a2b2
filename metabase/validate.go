package metabase

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/ds2mb/ds2mb/schema"
)

// Problem is one validation failure, naming Location and property.
type Problem struct {
	Location string
	Property string // "" for a problem of the node itself
	Reason   string
}

// Error formats the problem as "Location: property: reason".
func (p Problem) Error() string {
	if p.Property == "" {
		return p.Location + ": " + p.Reason
	}
	return p.Location + ": " + p.Property + ": " + p.Reason
}

// ValidationError is every problem of a tree.
type ValidationError []Problem

// Error joins the problems with "; ".
func (e ValidationError) Error() string {
	var b strings.Builder
	for i, p := range e {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

// expectedClass is the element name each SMTP node kind must have.
var expectedClass = map[schema.NodeKind]string{
	schema.NodeService: ClassService, schema.NodeServer: ClassServer, schema.NodeDomain: ClassDomain,
	schema.NodeBinding: ClassConfig, schema.NodeBindingSource: ClassConfig, schema.NodeBindingSink: ClassConfig,
}

// Validate checks every SMTP node against the catalogue: Location shape,
// node class, each known property's type, range and format, and that a
// property lives on a node kind that may hold it. Nodes of other IIS
// services are not checked. It returns nil when the tree is valid.
func (t *Tree) Validate() ValidationError {
	var probs ValidationError
	add := func(loc, prop, format string, args ...any) {
		probs = append(probs, Problem{Location: loc, Property: prop, Reason: fmt.Sprintf(format, args...)})
	}
	bindings := listenClaims{}
	for _, n := range t.Nodes() {
		place, err := schema.Classify(n.Location)
		if err != nil {
			add(n.Location, "", "%v", strings.TrimPrefix(err.Error(), n.Location+": "))
			continue
		}
		if place.Kind == schema.NodeUnknown {
			continue
		}
		if want, ok := expectedClass[place.Kind]; ok && n.Class != want {
			add(n.Location, "", "element <%s> should be <%s> for a %s node", n.Class, want, place.Kind)
		}
		for _, prop := range n.Props() {
			if err := xmlSafe(prop.Text); err != nil {
				add(n.Location, prop.Name, "%v", err)
				continue
			}
			sp, known := schema.Lookup(prop.Name)
			if !known {
				if prop.Custom {
					if _, err := schema.ParseValue(prop.Type, prop.Text, nil); err != nil {
						add(n.Location, prop.Name, "%v", err)
					}
				}
				continue
			}
			if place.Kind != schema.NodeContainer && !sp.Nodes.Has(place.Kind) {
				add(n.Location, prop.Name, "does not belong on a %s node", place.Kind)
				continue
			}
			v, err := parseProp(sp, prop)
			if err != nil {
				add(n.Location, prop.Name, "%v", err)
				continue
			}
			if sp.Name == "ServerBindings" && place.Kind == schema.NodeServer {
				bs, _ := schema.ParseBindings(v.Multi)
				for _, b := range bs {
					if u, clash := bindings.claim(b, n.Location); clash {
						if u.loc == n.Location {
							add(n.Location, prop.Name, "binding %s is listed twice", b)
						} else {
							add(n.Location, prop.Name, "binding %s is also used by %s (%s)", b, u.loc, u.binding)
						}
					}
				}
			}
		}
	}
	if len(probs) == 0 {
		return nil
	}
	return probs
}

// listenClaims records which virtual server listens on which address and
// port: two servers cannot both listen on one address, and an all-addresses
// binding (":25:", "0.0.0.0:25:") takes its port on every address.
type listenClaims map[uint16][]listenUse

type listenUse struct {
	binding schema.Binding
	loc     string
}

func wildcard(b schema.Binding) bool { return !b.IP.IsValid() || b.IP.IsUnspecified() }

// claim records b for loc and returns an earlier use it collides with.
func (c listenClaims) claim(b schema.Binding, loc string) (listenUse, bool) {
	for _, u := range c[b.Port] {
		if wildcard(u.binding) || wildcard(b) || u.binding.IP == b.IP {
			if u.loc == loc && (u.binding.IP != b.IP || u.binding.Host != b.Host) {
				continue // one server may list overlapping addresses of its own
			}
			return u, true
		}
	}
	c[b.Port] = append(c[b.Port], listenUse{binding: b, loc: loc})
	return listenUse{}, false
}

// xmlSafe checks that text can be written into MetaBase.xml and read back:
// valid UTF-8 without the control characters XML 1.0 forbids.
func xmlSafe(text string) error {
	if !utf8.ValidString(text) {
		return fmt.Errorf("value is not valid UTF-8")
	}
	for i, r := range text {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0xFFFE || r == 0xFFFF {
			return fmt.Errorf("value holds control character U+%04X at byte %d, which XML cannot carry", r, i)
		}
	}
	return nil
}
