package metabase

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ds2mb/ds2mb/schema"
)

// Binding is one event binding as the tree holds it
// (/LM/SmtpSvc/N/EventManager/EventTypes/{CATID}/Bindings/{ID}, REFERENCE.md
// §5.7), with its SourceProperties and SinkProperties bags as text.
type Binding struct {
	Location    string
	Instance    int
	Event       schema.EventType
	ID          string // upper-case {GUID}
	DisplayName string
	SinkClass   string
	Enabled     bool
	MaxFirings  int
	Source      map[string]string // SourceProperties: Priority, Rule
	Sink        map[string]string // SinkProperties: what the sink class reads
}

// Priority is the binding's priority (0 runs first), the default when
// unset or unreadable.
func (b Binding) Priority() int {
	if v, ok := lookupFold(b.Source, "Priority"); ok {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
			return n
		}
	}
	return schema.DefaultPriority
}

// Rule is the binding's rule, "" (every message) when unset.
func (b Binding) Rule() string {
	v, _ := lookupFold(b.Source, "Rule")
	return v
}

func lookupFold(m map[string]string, name string) (string, bool) {
	for k, v := range m {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// Bag names a binding's property bag, as smtpreg's "Source or Sink".
type Bag string

// The two property bags of a binding.
const (
	SourceBag Bag = "SourceProperties"
	SinkBag   Bag = "SinkProperties"
)

// ParseBag reads "source" or "sink" (or the node names), case-insensitively.
func ParseBag(s string) (Bag, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "source", "sourceproperties":
		return SourceBag, nil
	case "sink", "sinkproperties":
		return SinkBag, nil
	}
	return "", fmt.Errorf("%q is not a property bag (want source or sink)", s)
}

// Bindings lists every event binding of the tree, by virtual server,
// event type and ID.
func (t *Tree) Bindings() []Binding {
	var out []Binding
	for _, n := range t.Nodes() {
		place, err := schema.Classify(n.Location)
		if err != nil || place.Kind != schema.NodeBinding {
			continue
		}
		ev, ok := schema.LookupEvent(place.Event)
		if !ok {
			ev = schema.EventType{Name: place.Event, CATID: place.Event}
		}
		b := Binding{Location: n.Location, Instance: place.Instance, Event: ev, ID: place.Binding,
			DisplayName: n.Text("DisplayName"), SinkClass: n.Text("SinkClass"), Enabled: true,
			Source: bagOf(t.Node(n.Location + "/" + string(SourceBag))), Sink: bagOf(t.Node(n.Location + "/" + string(SinkBag)))}
		if p, ok := n.Get("Enabled"); ok {
			b.Enabled = parseBool(p.Text)
		}
		if p, ok := n.Get("MaxFirings"); ok {
			b.MaxFirings, _ = strconv.Atoi(strings.TrimSpace(p.Text))
		}
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b Binding) int {
		if a.Instance != b.Instance {
			return a.Instance - b.Instance
		}
		return strings.Compare(strings.ToLower(a.Location), strings.ToLower(b.Location))
	})
	return out
}

func bagOf(n *Node) map[string]string {
	m := map[string]string{}
	if n == nil {
		return m
	}
	for _, p := range n.Props() {
		m[p.Name] = p.Text
	}
	return m
}

func parseBool(s string) bool {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "FALSE", "0", "":
		return false
	}
	return true
}

// FindBinding finds the one binding that ref names: a {GUID} or a display
// name (case-insensitive), narrowed to a virtual server (instance > 0) and
// an event type (event != ""). No match, or a name that several bindings
// share, is an error that says so.
func (t *Tree) FindBinding(instance int, event, ref string) (Binding, error) {
	var et schema.EventType
	if event != "" {
		var ok bool
		if et, ok = schema.LookupEvent(event); !ok {
			return Binding{}, fmt.Errorf("unknown event type %q", event)
		}
	}
	byID := strings.HasPrefix(strings.TrimSpace(ref), "{")
	var found []Binding
	for _, b := range t.Bindings() {
		if instance > 0 && b.Instance != instance || event != "" && b.Event.CATID != et.CATID {
			continue
		}
		if byID && strings.EqualFold(b.ID, strings.TrimSpace(ref)) || !byID && strings.EqualFold(b.DisplayName, ref) {
			found = append(found, b)
		}
	}
	switch len(found) {
	case 0:
		return Binding{}, fmt.Errorf("no binding %q%s", ref, scopeText(instance, et))
	case 1:
		return found[0], nil
	}
	var where []string
	for _, b := range found {
		where = append(where, b.Location)
	}
	return Binding{}, fmt.Errorf("%d bindings match %q%s (%s): give its {ID}, --instance or --event", len(found), ref, scopeText(instance, et), strings.Join(where, ", "))
}

func scopeText(instance int, et schema.EventType) string {
	s := ""
	if instance > 0 {
		s += " on virtual server " + strconv.Itoa(instance)
	}
	if et.CATID != "" {
		s += " for " + et.Name
	}
	return s
}

// AddBinding creates the nodes of b under its virtual server: the binding
// node (DisplayName, SinkClass, Enabled, MaxFirings when not 0) and the
// non-empty bags. The virtual server must exist, the event type be known
// and the ID be a {GUID} not yet used for that event type. Property values
// are checked by Validate when the tree is saved; sink property names may
// not be catalogue names. b.Location is set.
func (t *Tree) AddBinding(b *Binding) error {
	if t.Node(schema.ServerLocation(b.Instance)) == nil {
		return fmt.Errorf("no virtual server %d (%s) in the metabase", b.Instance, schema.ServerLocation(b.Instance))
	}
	if b.Event.CATID == "" {
		return fmt.Errorf("binding without an event type")
	}
	if err := schema.CheckGUID(b.ID); err != nil {
		return fmt.Errorf("binding ID: %v", err)
	}
	if strings.TrimSpace(b.SinkClass) == "" {
		return fmt.Errorf("a binding needs a sink class")
	}
	loc := schema.BindingLocation(b.Instance, b.Event.CATID, b.ID)
	if t.Node(loc) != nil {
		return fmt.Errorf("%s: a binding with ID %s already exists", loc, b.ID)
	}
	for name := range b.Source {
		if err := checkBagName(SourceBag, name); err != nil {
			return fmt.Errorf("%s/%s: %v", loc, SourceBag, err)
		}
	}
	for name := range b.Sink {
		if err := checkBagName(SinkBag, name); err != nil {
			return fmt.Errorf("%s/%s: %v", loc, SinkBag, err)
		}
	}
	b.ID, b.Location = strings.ToUpper(b.ID), loc
	n := t.Ensure(loc, ClassConfig)
	if b.DisplayName != "" {
		n.Set("DisplayName", b.DisplayName)
	}
	n.Set("SinkClass", strings.TrimSpace(b.SinkClass))
	n.Set("Enabled", boolText(b.Enabled))
	if b.MaxFirings != 0 {
		n.Set("MaxFirings", strconv.Itoa(b.MaxFirings))
	}
	for _, bag := range []struct {
		name  Bag
		props map[string]string
	}{{SourceBag, b.Source}, {SinkBag, b.Sink}} {
		if len(bag.props) == 0 {
			continue
		}
		bn := t.Ensure(loc+"/"+string(bag.name), ClassConfig)
		for k, v := range bag.props {
			bn.Set(k, v)
		}
	}
	return nil
}

func boolText(v bool) string {
	if v {
		return "TRUE"
	}
	return "FALSE"
}

// checkBagName refuses a property name that cannot be stored, or (in the
// sink bag) one the catalogue uses: the source bag holds Priority and Rule
// only, which are what the dispatcher reads.
func checkBagName(bag Bag, name string) error {
	switch {
	case strings.TrimSpace(name) == "" || name != strings.TrimSpace(name):
		return fmt.Errorf("property name %q: empty or with surrounding spaces", name)
	case strings.ContainsAny(name, "/\"<>&= \t\r\n"):
		return fmt.Errorf("property name %q may not hold / \" < > & = or white space", name)
	}
	_, known := schema.Lookup(name)
	if bag == SourceBag && !strings.EqualFold(name, "Priority") && !strings.EqualFold(name, "Rule") {
		return fmt.Errorf("source property %q: the source bag holds Priority and Rule", name)
	}
	if bag == SinkBag && known {
		return fmt.Errorf("sink property %q is a catalogue property name; sink properties need their own names", name)
	}
	return nil
}

// RemoveBinding deletes the binding at loc with its bags; it reports
// whether there was one.
func (t *Tree) RemoveBinding(loc string) bool {
	return t.DeleteSubtree(loc) > 0
}

// SetBindingEnabled sets a binding's Enabled; false when there is no
// binding node at loc.
func (t *Tree) SetBindingEnabled(loc string, on bool) bool {
	n := t.Node(loc)
	if n == nil {
		return false
	}
	n.Set("Enabled", boolText(on))
	return true
}

// SetBindingProp adds or overwrites a property in a bag of the binding at
// loc (smtpreg /setprop).
func (t *Tree) SetBindingProp(loc string, bag Bag, name, value string) error {
	if t.Node(loc) == nil {
		return fmt.Errorf("%s: no binding", loc)
	}
	if err := checkBagName(bag, name); err != nil {
		return fmt.Errorf("%s/%s: %v", loc, bag, err)
	}
	t.Ensure(loc+"/"+string(bag), ClassConfig).Set(name, value)
	return nil
}

// DelBindingProp removes a property from a bag of the binding at loc
// (smtpreg /delprop); an emptied bag node is removed.
func (t *Tree) DelBindingProp(loc string, bag Bag, name string) error {
	bn := t.Node(loc + "/" + string(bag))
	if bn == nil || !bn.Remove(name) {
		return fmt.Errorf("%s/%s: no property %q", loc, bag, name)
	}
	if bn.Empty() {
		t.Delete(bn.Location)
	}
	return nil
}
