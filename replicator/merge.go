package replicator

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ds2mb/ds2mb/metabase"
	"github.com/ds2mb/ds2mb/schema"
)

// Merge applies a rendered subtree to a copy of the current metabase with
// ownership, and returns the new tree, what the replicator now owns, and the
// events to report. prev is what it owned after its last save. d is
// consumed: its property maps become part of what is returned.
//
//   - Desired properties are set; a value that differs from what the
//     replicator last wrote there (a local edit) is overwritten with
//     EvLocalEditOverwritten.
//   - Properties and nodes it owned before and no longer renders are
//     removed: a node it created is deleted whole, on a node it did not
//     create only its own properties go (and the node too when nothing
//     else is left on or below it).
//   - Anything it never owned is left untouched.
//   - A refused value keeps its last good value (what prev says it wrote),
//     or is left out so that the default or inherited value applies; an
//     object refused structurally keeps its previous nodes as they were.
//   - The merged tree is validated; an offending property the replicator
//     owns goes back to the file's value, or is removed, and is reported.
//     A problem outside what it owns is an error: nothing may be saved.
func Merge(cur *metabase.Tree, d *Rendered, prev map[string]*OwnedNode) (*metabase.Tree, map[string]*OwnedNode, []Event, error) {
	var evs []Event
	desired := maps.Clone(d.Nodes)
	if desired == nil {
		desired = map[string]*DesiredNode{}
	}

	// Last good values.
	keep := map[string]bool{}
	for _, f := range d.Refused {
		if f.Structural {
			keep[f.Origin] = true
			continue
		}
		if f.Location == "" || f.Property == "" {
			continue
		}
		k := strings.ToLower(f.Location)
		dn, ok := desired[k]
		pn := prev[k]
		if !ok || pn == nil {
			continue
		}
		if last, had := pn.Props[f.Property]; had {
			dn.Props[f.Property] = last
		}
	}
	for k, pn := range prev {
		if _, ok := desired[k]; ok || pn.Origin == "" || !keep[pn.Origin] {
			continue
		}
		loc := k
		if n := cur.Node(k); n != nil {
			loc = n.Location
		}
		desired[k] = &DesiredNode{Location: loc, Class: pn.Class, Origin: pn.Origin, Props: maps.Clone(pn.Props)}
	}

	out := cur.Clone()
	owned := make(map[string]*OwnedNode, len(desired))
	keys := slices.Collect(maps.Keys(desired))
	slices.SortFunc(keys, func(a, b string) int { return metabase.CompareLocations(a, b) })
	for _, k := range keys {
		dn := desired[k]
		pn := prev[k]
		n := out.Node(dn.Location)
		created := n == nil || (pn != nil && pn.Created)
		if n == nil {
			n = out.Ensure(dn.Location, dn.Class)
		} else if n.Class != dn.Class {
			evs = append(evs, Event{ID: EvLocalEditOverwritten, Severity: SevWarning, Message: "node class set back",
				Location: n.Location, Property: "(element)", Old: n.Class, New: dn.Class})
			n.Class = dn.Class
		}
		names := slices.Sorted(maps.Keys(dn.Props))
		for _, name := range names {
			want := dn.Props[name]
			cp, has := n.Get(name)
			if has && cp.Text == want.Text {
				continue
			}
			var last DesiredProp
			wasOwned := false
			if pn != nil {
				last, wasOwned = pn.Props[name]
			}
			if has && (!wasOwned || cp.Text != last.Text) || !has && wasOwned {
				old := cp.Text
				if !has {
					old = "(absent)"
				}
				evs = append(evs, Event{ID: EvLocalEditOverwritten, Severity: SevWarning, Message: "local edit to a replicated property overwritten",
					Location: n.Location, Property: name, Old: shown(name, old), New: shown(name, want.Text)})
			}
			setProp(n, name, want)
		}
		if pn != nil {
			for name := range pn.Props {
				if _, still := dn.Props[name]; !still {
					n.Remove(name)
				}
			}
		}
		// The rendered map is the caller's to discard: share it.
		owned[k] = &OwnedNode{Class: dn.Class, Created: created, Origin: dn.Origin, Props: dn.Props}
	}
	// Children before parents, so that a parent emptied here sees whether
	// anything is still left below it.
	gone := slices.Sorted(maps.Keys(prev))
	slices.Reverse(gone)
	for _, k := range gone {
		if _, ok := desired[k]; ok {
			continue
		}
		pn := prev[k]
		n := out.Node(k)
		if n == nil {
			continue
		}
		if pn.Created {
			out.Delete(k)
			evs = append(evs, Event{ID: EvNodeRemoved, Severity: SevInfo, Message: "node removed: no directory object renders it any more", Location: n.Location})
			continue
		}
		for name := range pn.Props {
			n.Remove(name)
		}
		// A node left with nothing on it and nothing below held only what
		// the replicator wrote: remove it too. This covers a node whose
		// creation the state did not record (ds2mb stopped between saving
		// the metabase and saving its state); left behind, an empty virtual
		// server would take every default, ":25:" and AutoStart included.
		if n.Empty() && len(out.Below(k)) == 0 {
			out.Delete(k)
			evs = append(evs, Event{ID: EvNodeRemoved, Severity: SevInfo, Message: "node removed: nothing was left on it but what the directory rendered", Location: n.Location})
		}
	}

	// Never an invalid file.
	tried := map[string]bool{}
	for round := 0; round < 8; round++ {
		probs := out.Validate()
		if probs == nil {
			return out, owned, evs, nil
		}
		var foreign metabase.ValidationError
		for _, p := range probs {
			k := strings.ToLower(strings.TrimRight(p.Location, "/"))
			on := owned[k]
			if on == nil {
				foreign = append(foreign, p)
				continue
			}
			if p.Property == "" {
				if !on.Created {
					foreign = append(foreign, p)
					continue
				}
				out.Delete(k)
				delete(owned, k)
				evs = append(evs, Event{ID: EvValueRefused, Severity: SevWarning, Message: "rendered node refused by validation; removed",
					Location: p.Location, Reason: p.Reason})
				continue
			}
			name := p.Property
			if pp, ok := schema.Lookup(name); ok {
				name = pp.Name
			}
			if _, ours := on.Props[name]; !ours {
				foreign = append(foreign, p)
				continue
			}
			n := out.Node(k)
			tk := k + "\x00" + strings.ToLower(name)
			var fallback *metabase.Property
			if cn := cur.Node(k); cn != nil && !tried[tk] {
				if cp, ok := cn.Get(name); ok && cp.Text != on.Props[name].Text {
					fallback = &cp
				}
			}
			tried[tk] = true
			ev := Event{ID: EvValueRefused, Severity: SevWarning, Location: p.Location, Property: name, Value: shown(name, on.Props[name].Text), Reason: p.Reason}
			if fallback != nil {
				n.SetProperty(*fallback)
				on.Props[name] = DesiredProp{Text: fallback.Text, Custom: fallback.Custom}
				ev.Message = "rendered value refused by validation; last good value kept"
			} else {
				n.Remove(name)
				delete(on.Props, name)
				ev.Message = "rendered value refused by validation; property left to its default"
			}
			evs = append(evs, ev)
		}
		if len(foreign) > 0 {
			return nil, nil, evs, fmt.Errorf("the metabase is invalid outside what the replicator owns, nothing saved: %w", foreign)
		}
	}
	return nil, nil, evs, fmt.Errorf("the merged metabase is still invalid: %w", out.Validate())
}

func setProp(n *metabase.Node, name string, p DesiredProp) {
	if p.Custom {
		n.SetProperty(metabase.Property{Name: name, Text: p.Text, Custom: true, Type: schema.STRING, UserType: schema.UTServer, Attributes: "NO_ATTRIBUTES"})
		return
	}
	n.Set(name, p.Text)
}

// shown hides SECURE property values in events.
func shown(name, text string) string {
	if p, ok := schema.Lookup(name); ok && p.Secure && text != "" && text != "(absent)" {
		return "(secure)"
	}
	return text
}
