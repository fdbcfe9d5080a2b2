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
	switch {
	case owned == nil && st == nil:
		fmt.Fprintf(c.stdout, "%s: local (no ds2mb state file beside %s: nothing in it was replicated)\n", n.Location, *mb)
	case owned == nil:
		fmt.Fprintf(c.stdout, "%s: local (ds2mb did not write this node; it never removes it)\n", n.Location)
	default:
		fmt.Fprintf(c.stdout, "%s: replicated from %s\n", n.Location, dn)
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
			fmt.Fprintf(c.stdout, "  %s = %s: not set on this node (%s)\n", sp.Name, display(sp.Render(v)), src)
			return exitOK
		}
		props = []metabase.Property{p}
	}
	for _, p := range props {
		text := display(metabase.ShowText(p))
		want, replicated := metabase.Property{}, false
		if owned != nil {
			for name, dp := range owned.Props {
				if strings.EqualFold(name, p.Name) {
					want, replicated = metabase.Property{Name: name, Text: dp.Text}, true
				}
			}
		}
		switch {
		case !replicated:
			fmt.Fprintf(c.stdout, "  %s = %s: local\n", p.Name, text)
		case want.Text != p.Text:
			fmt.Fprintf(c.stdout, "  %s = %s: local edit over the replicated value (%s of %s); the next replication of the node sets it back\n",
				p.Name, text, attributeOf(n.Location, p.Name), dn)
		default:
			fmt.Fprintf(c.stdout, "  %s = %s: from %s of %s\n", p.Name, text, attributeOf(n.Location, p.Name), dn)
		}
	}
	return exitOK
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
