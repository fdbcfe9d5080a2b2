package metabase

import (
	"fmt"
	"strings"

	"github.com/ds2mb/ds2mb/schema"
)

// Source says where an effective value came from.
type Source int

// Where an effective value came from.
const (
	FromNode    Source = iota + 1 // set on the node itself
	FromService                   // inherited from an ancestor node (virtual server or /LM/SmtpSvc)
	FromDefault                   // the catalogue default
)

// String names the source.
func (s Source) String() string {
	switch s {
	case FromNode:
		return "set"
	case FromService:
		return "inherited"
	case FromDefault:
		return "default"
	}
	return "absent"
}

// Effective returns the value a node has for a catalogue property: its own,
// else, when the property is inheritable, the nearest ancestor's up to
// /LM/SmtpSvc (a domain node inherits from its virtual server, which
// inherits from the service), else the catalogue default. ok is false when
// none applies.
func (t *Tree) Effective(loc, name string) (v schema.Value, src Source, ok bool, err error) {
	p, known := schema.Lookup(name)
	if !known {
		return v, 0, false, fmt.Errorf("%s: property %s is not in the catalogue", loc, name)
	}
	if n := t.Node(loc); n != nil {
		if prop, has := n.Get(p.Name); has {
			v, err = parseProp(p, prop)
			if err != nil {
				return v, FromNode, false, fmt.Errorf("%s: %s: %v", loc, p.Name, err)
			}
			return v, FromNode, true, nil
		}
	}
	if p.Inherit {
		// As IIS does, walk up the path: a domain node inherits from its
		// virtual server before the service.
		for anc := parentLocation(loc); anc != "" && len(anc) >= len(schema.ServiceLocation); anc = parentLocation(anc) {
			n := t.Node(anc)
			if n == nil {
				continue
			}
			if prop, has := n.Get(p.Name); has {
				v, err = parseProp(p, prop)
				if err != nil {
					return v, FromService, false, fmt.Errorf("%s: %s: %v", n.Location, p.Name, err)
				}
				return v, FromService, true, nil
			}
		}
	}
	if dv, has := p.DefaultValue(); has {
		return dv, FromDefault, true, nil
	}
	return v, 0, false, nil
}

// parseProp reads a property's text with the catalogue's type, unless the
// file gave it an explicit (Custom) type of its own.
func parseProp(p *schema.Property, prop Property) (schema.Value, error) {
	if prop.Custom && prop.Type != p.Type {
		return schema.Value{}, fmt.Errorf("Custom Type %v, the catalogue says %v", prop.Type, p.Type)
	}
	return p.Parse(prop.Text)
}

// parentLocation returns the Location one level up, or "" at the top.
func parentLocation(loc string) string {
	i := strings.LastIndex(strings.TrimRight(loc, "/"), "/")
	if i <= 0 {
		return ""
	}
	return loc[:i]
}
