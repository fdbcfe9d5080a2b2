package main

import (
	"fmt"
	"strings"

	"github.com/ds2mb/ds2mb/metabase"
	"github.com/ds2mb/ds2mb/replicator"
	"github.com/ds2mb/ds2mb/schema"
)

// explain says where a node's values come from: the directory object and
// attribute ds2mb replicated them from, or local (set in the file by
// hand, mbctl or another tool), from ds2mb's state file.
func (c *command) explain(args []string) int {
	mb := c.metabaseFlag()
	asJSON := c.jsonFlag()
	pos, ok := c.parse(args)
	if !ok {
		return exitUsage
	}
	if len(pos) < 1 || len(pos) > 2 {
		return c.usageError("want LOCATION [PROPERTY]")
	}
	t, n, code := c.loadNode(*mb, pos[0])
	if n == nil {
		return code
	}
	st, err := replicator.LoadState(replicator.StatePath(*mb))
	if err != nil {
		return c.errorf("ds2mb's state file: %v", err)
	}
	var owned *replicator.OwnedNode
	dn := ""
	if st != nil {
		for loc, o := range st.Owned {
			if strings.EqualFold(loc, n.Location) {
				owned, dn = o, originDN(st, o)
			}
		}
	}
	out := explainJSON{Location: n.Location, Origin: "local", Properties: []explainPropJSON{}}
	switch {
	case owned == nil && st == nil:
		out.Note = "no ds2mb state file beside " + *mb + ": nothing in it was replicated"
	case owned == nil:
		out.Note = "ds2mb did not write this node; it never removes it"
	default:
		out.Origin, out.DN = "replicated", dn
	}
	props := n.Props()
	if len(pos) == 2 {
		p, has := n.Get(pos[1])
		if !has {
			v, src, set, err := t.Effective(n.Location, pos[1])
			switch {
			case err != nil:
				return c.errorf("%s %s: %v", n.Location, pos[1], err)
			case !set:
				return c.errorf("%s: %s is not set and has no default", n.Location, pos[1])
			}
			sp, _ := schema.Lookup(pos[1])
			out.Properties = append(out.Properties, explainPropJSON{Name: sp.Name, Value: sp.Render(v), Origin: src.String()})
			props = nil
		} else {
			props = []metabase.Property{p}
		}
	}
	for _, p := range props {
		want, replicated := metabase.Property{}, false
		if owned != nil {
			for name, dp := range owned.Props {
				if strings.EqualFold(name, p.Name) {
					want, replicated = metabase.Property{Name: name, Text: dp.Text}, true
				}
			}
		}
		pj := explainPropJSON{Name: p.Name, Value: metabase.ShowText(p), Origin: "local"}
		if replicated {
			pj.Origin, pj.Attribute, pj.DN = "replicated", attributeOf(n.Location, p.Name), dn
			if want.Text != p.Text {
				pj.Origin = "local edit"
			}
		}
		out.Properties = append(out.Properties, pj)
	}
	if *asJSON {
		return c.printJSON(out)
	}
	c.printExplain(out)
	return exitOK
}

// explainJSON is the output of `explain --json`: where a node and its
// values came from.
type explainJSON struct {
	Location string `json:"location"`
	// Origin is "replicated" (DN names the directory object) or "local".
	Origin     string            `json:"origin"`
	DN         string            `json:"dn,omitempty"`
	Note       string            `json:"note,omitempty"`
	Properties []explainPropJSON `json:"properties"`
}

// explainPropJSON is one value's origin: "replicated" (from Attribute of
// DN), "local", "local edit" (a local value over a replicated one, set
// back by the next replication), or, for a property not set on the node,
// where its effective value comes from ("inherited from …", "default").
type explainPropJSON struct {
	Name      string `json:"name"`
	Value     string `json:"value"`
	Origin    string `json:"origin"`
	Attribute string `json:"attribute,omitempty"`
	DN        string `json:"dn,omitempty"`
}

// printExplain writes an explanation for people.
func (c *command) printExplain(e explainJSON) {
	switch {
	case e.Origin == "replicated":
		fmt.Fprintf(c.stdout, "%s: replicated from %s\n", e.Location, e.DN)
	default:
		fmt.Fprintf(c.stdout, "%s: local (%s)\n", e.Location, e.Note)
	}
	for _, p := range e.Properties {
		text := display(p.Value)
		switch p.Origin {
		case "local":
			fmt.Fprintf(c.stdout, "  %s = %s: local\n", p.Name, text)
		case "local edit":
			fmt.Fprintf(c.stdout, "  %s = %s: local edit over the replicated value (%s of %s); the next replication of the node sets it back\n",
				p.Name, text, p.Attribute, p.DN)
		case "replicated":
			fmt.Fprintf(c.stdout, "  %s = %s: from %s of %s\n", p.Name, text, p.Attribute, p.DN)
		default:
			fmt.Fprintf(c.stdout, "  %s = %s: not set on this node (%s)\n", p.Name, text, p.Origin)
		}
	}
}

// attributeOf names the directory attribute a replicated property comes
// from.
func attributeOf(loc, name string) string {
	if strings.HasSuffix(strings.ToLower(loc), "/sinkproperties") {
		return schema.AttrSinkProperty + " " + name + "=…"
	}
	if p, ok := schema.Lookup(name); ok && p.Attribute != "" {
		return "attribute " + p.Attribute
	}
	return "the object (derived: no attribute of its own)"
}
