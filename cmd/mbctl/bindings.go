package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/google/uuid"

	"github.com/ds2mb/ds2mb/metabase"
	"github.com/ds2mb/ds2mb/replicator"
	"github.com/ds2mb/ds2mb/schema"
	"github.com/ds2mb/ds2mb/smtpsvc/events"
	"github.com/ds2mb/ds2mb/smtpsvc/events/sinks"
)

const bindingsUsage = `mbctl bindings: event bindings of the metabase (smtpreg.vbs of ds2mb)

  mbctl bindings list [--instance N] [--event EVENT] [--json]
        every binding: virtual server, event, ID, priority, enabled, where it
        comes from (local, or the directory object), sink class, name, rule
        and sink properties (like smtpreg /enum)
  mbctl bindings add --instance N --event EVENT --class CLASS [--name NAME]
        [--id {GUID}] [--rule RULE] [--priority 0-32767] [--max-firings N]
        [--disabled] [--sink NAME=VALUE]... [--allow-unknown-class]
        create a binding (a new ID unless --id) and print its ID
  mbctl bindings remove  [--instance N] [--event EVENT] BINDING
  mbctl bindings enable  [--instance N] [--event EVENT] BINDING
  mbctl bindings disable [--instance N] [--event EVENT] BINDING
  mbctl bindings setprop [--instance N] [--event EVENT] BINDING source|sink NAME VALUE
  mbctl bindings delprop [--instance N] [--event EVENT] BINDING source|sink NAME

BINDING is a {GUID} or a display name. EVENT is an smtpreg event name
(OnArrival, OnInboundCommand, ...) or a {CATID}. Every change is checked
before anything is written (event type, sink class and the properties it
reads, rule grammar, priority range, the whole file against the catalogue)
and saved as a new metabase version, atomically. These bindings are local:
ds2mb never removes them. A binding replicated from the directory is edited
in the directory; mbctl refuses to change it here, since the next
replication would undo the change.
`

// sinkRegistry is the registry smtpsvc runs with: what a binding may name.
func sinkRegistry() *events.Registry {
	r := events.NewRegistry()
	sinks.Register(r, sinks.Options{Logger: slog.New(slog.DiscardHandler)})
	return r
}

// multiFlag collects a repeated NAME=VALUE flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// bindingJSON is one binding in `bindings list --json`.
type bindingJSON struct {
	Instance    int               `json:"instance"`
	Event       string            `json:"event"`
	CATID       string            `json:"catid"`
	ID          string            `json:"id"`
	Location    string            `json:"location"`
	DisplayName string            `json:"displayName,omitempty"`
	SinkClass   string            `json:"sinkClass"`
	Enabled     bool              `json:"enabled"`
	MaxFirings  int               `json:"maxFirings,omitempty"`
	Priority    int               `json:"priority"`
	Rule        string            `json:"rule,omitempty"`
	Source      map[string]string `json:"sourceProperties"`
	Sink        map[string]string `json:"sinkProperties"`
	From        string            `json:"from"` // "local" or "directory"
	DN          string            `json:"dn,omitempty"`
}

func (c *command) bindings(args []string) int {
	sub, rest, code, done := c.subcommand("bindings", bindingsUsage, args)
	if done {
		return code
	}
	mb := c.metabaseFlag()
	instance := c.fs.Int("instance", 0, "virtual server number (0 = any, for commands that find a binding)")
	event := c.fs.String("event", "", "event type: smtpreg name or {CATID}")
	switch sub {
	case "list":
		asJSON := c.fs.Bool("json", false, "print JSON")
		pos, ok := c.parse(rest)
		if !ok {
			return exitUsage
		}
		if len(pos) != 0 {
			return c.bindingsUsageError("list takes no arguments")
		}
		return c.listBindings(*mb, *instance, *event, *asJSON)
	case "add":
		o := addOptions{}
		c.fs.StringVar(&o.class, "class", "", "sink class (ds2mb.Disclaimer, ...)")
		c.fs.StringVar(&o.name, "name", "", "display name")
		c.fs.StringVar(&o.id, "id", "", "binding ID, a {GUID} (default: a new one)")
		c.fs.StringVar(&o.rule, "rule", "", `rule, e.g. "mail from=*@example.com;rcpt to=*@example.org"`)
		c.fs.IntVar(&o.priority, "priority", schema.DefaultPriority, "0 (first) to 32767 (last)")
		c.fs.IntVar(&o.maxFirings, "max-firings", 0, "firings before the binding disables itself (0 = no limit)")
		c.fs.BoolVar(&o.disabled, "disabled", false, "create it disabled")
		c.fs.BoolVar(&o.unknownClass, "allow-unknown-class", false, "accept a sink class this mbctl does not know (one registered by another build of smtpsvc)")
		c.fs.Var(&o.sink, "sink", "sink property NAME=VALUE (repeatable)")
		pos, ok := c.parse(rest)
		if !ok {
			return exitUsage
		}
		if len(pos) != 0 {
			return c.bindingsUsageError("add takes flags only")
		}
		o.instance, o.event = *instance, *event
		return c.addBinding(*mb, o)
	case "remove", "enable", "disable", "setprop", "delprop":
		pos, ok := c.parse(rest)
		if !ok {
			return exitUsage
		}
		want := map[string]int{"remove": 1, "enable": 1, "disable": 1, "setprop": 4, "delprop": 3}[sub]
		if len(pos) != want {
			return c.bindingsUsageError("want %d argument(s)", want)
		}
		return c.editBinding(*mb, sub, *instance, *event, pos)
	}
	fmt.Fprintf(c.stderr, "mbctl bindings: unknown command %q\n\n%s", sub, bindingsUsage)
	return exitUsage
}

func (c *command) bindingsUsageError(format string, a ...any) int {
	fmt.Fprintf(c.stderr, "mbctl %s: %s\n\n%s", c.name, fmt.Sprintf(format, a...), bindingsUsage)
	return exitUsage
}

// origins says which binding Locations the replicator owns, with the DN
// of the directory object each comes from. No state file: none.
func origins(mb string) (map[string]string, error) {
	st, err := replicator.LoadState(replicator.StatePath(mb))
	if err != nil || st == nil {
		return nil, err
	}
	out := map[string]string{}
	for loc, o := range st.Owned {
		out[strings.ToLower(loc)] = originDN(st, o)
	}
	return out, nil
}

// originDN is the DN of the directory object an owned node comes from.
func originDN(st *replicator.State, o *replicator.OwnedNode) string {
	if obj, ok := st.Objects[o.Origin]; ok {
		return obj.DN
	}
	return "(directory object " + o.Origin + ")"
}

func (c *command) listBindings(mb string, instance int, event string, asJSON bool) int {
	t, err := metabase.Load(mb)
	if err != nil {
		return c.errorf("%v", err)
	}
	var et schema.EventType
	if event != "" {
		var ok bool
		if et, ok = schema.LookupEvent(event); !ok {
			return c.errorf("unknown event type %q", event)
		}
	}
	from, err := origins(mb)
	if err != nil {
		fmt.Fprintf(c.stderr, "mbctl bindings list: cannot tell local from replicated bindings: %v\n", err)
	}
	var list []bindingJSON
	for _, b := range t.Bindings() {
		if instance > 0 && b.Instance != instance || event != "" && b.Event.CATID != et.CATID {
			continue
		}
		j := bindingJSON{Instance: b.Instance, Event: b.Event.Name, CATID: b.Event.CATID, ID: b.ID, Location: b.Location,
			DisplayName: b.DisplayName, SinkClass: b.SinkClass, Enabled: b.Enabled, MaxFirings: b.MaxFirings,
			Priority: b.Priority(), Rule: b.Rule(), Source: b.Source, Sink: b.Sink, From: "local"}
		if dn, ok := from[strings.ToLower(b.Location)]; ok {
			j.From, j.DN = "directory", dn
		}
		list = append(list, j)
	}
	if asJSON {
		if list == nil {
			list = []bindingJSON{}
		}
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(list); err != nil {
			return c.errorf("%v", err)
		}
		return exitOK
	}
	printBindings(c.stdout, list)
	return exitOK
}

func printBindings(w io.Writer, list []bindingJSON) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no event bindings")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VS\tEVENT\tID\tPRIORITY\tENABLED\tFROM\tCLASS\tNAME\tRULE\tSINK PROPERTIES")
	for _, b := range list {
		from := b.From
		if b.DN != "" {
			from = "directory: " + b.DN
		}
		var props []string
		for _, k := range sortedKeys(b.Sink) {
			props = append(props, k+"="+display(b.Sink[k]))
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", b.Instance, b.Event, b.ID, b.Priority, yesNo(b.Enabled),
			from, b.SinkClass, dash(b.DisplayName), dash(b.Rule), dash(strings.Join(props, "; ")))
	}
	tw.Flush()
}

func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return display(s)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	return keys
}

type addOptions struct {
	instance, priority, maxFirings int
	event, class, name, id, rule   string
	disabled, unknownClass         bool
	sink                           multiFlag
}

func (c *command) addBinding(mb string, o addOptions) int {
	switch {
	case o.instance <= 0:
		return c.bindingsUsageError("--instance N is required (the virtual server)")
	case o.event == "":
		return c.bindingsUsageError("--event is required")
	case o.class == "":
		return c.bindingsUsageError("--class is required")
	}
	et, ok := schema.LookupEvent(o.event)
	if !ok {
		return c.errorf("unknown event type %q (names: %s)", o.event, eventNames())
	}
	if o.priority < 0 || o.priority > 32767 {
		return c.errorf("--priority %d: out of range 0–32767", o.priority)
	}
	if o.maxFirings < 0 {
		return c.errorf("--max-firings %d: may not be negative", o.maxFirings)
	}
	if _, err := schema.ParseRule(o.rule); err != nil {
		return c.errorf("--rule: %v", err)
	}
	id := o.id
	if id == "" {
		id = "{" + strings.ToUpper(uuid.NewString()) + "}"
	}
	b := &metabase.Binding{Instance: o.instance, Event: et, ID: id, DisplayName: o.name, SinkClass: o.class,
		Enabled: !o.disabled, MaxFirings: o.maxFirings,
		Source: map[string]string{"Priority": fmt.Sprint(o.priority)}, Sink: map[string]string{}}
	if o.rule != "" {
		b.Source["Rule"] = o.rule
	}
	for _, kv := range o.sink {
		k, v, found := strings.Cut(kv, "=")
		if !found {
			return c.errorf("--sink %q: want NAME=VALUE", kv)
		}
		b.Sink[k] = v
	}
	if err := checkClass(o.class, et, b.Sink, o.unknownClass); err != nil {
		return c.errorf("%v", err)
	}
	version, err := editMetabase(mb, func(t *metabase.Tree) error { return t.AddBinding(b) })
	if err != nil {
		return c.errorf("%v", err)
	}
	fmt.Fprintf(c.stdout, "%s\n", b.ID)
	fmt.Fprintf(c.stderr, "added %s (%s %s on virtual server %d) in version %d\n", b.Location, et.Name, o.class, o.instance, version)
	return exitOK
}

func eventNames() string {
	var names []string
	for _, e := range schema.EventTypes {
		names = append(names, e.Name)
	}
	return strings.Join(names, ", ")
}

// checkClass refuses a binding smtpsvc would not run: a class it does not
// know (unless allowed), a class that does not handle the event, or sink
// properties the class refuses.
func checkClass(class string, et schema.EventType, props map[string]string, allowUnknown bool) error {
	reg := sinkRegistry()
	cl, known := reg.Class(class)
	if !known {
		if allowUnknown {
			return nil
		}
		return fmt.Errorf("%v; --allow-unknown-class accepts a class registered by another build of smtpsvc", reg.Check(class, et))
	}
	if err := reg.Check(class, et); err != nil {
		return err
	}
	if _, err := cl.New(props); err != nil {
		return fmt.Errorf("sink class %s refuses its properties: %v", cl.Name, err)
	}
	return nil
}

func (c *command) editBinding(mb, sub string, instance int, event string, pos []string) int {
	t, err := metabase.Load(mb)
	if err != nil {
		return c.errorf("%v", err)
	}
	b, err := t.FindBinding(instance, event, pos[0])
	if err != nil {
		return c.errorf("%v", err)
	}
	from, err := origins(mb)
	if err != nil {
		return c.errorf("cannot tell whether %s is replicated: %v", b.Location, err)
	}
	if dn, ok := from[strings.ToLower(b.Location)]; ok {
		return c.errorf("%s comes from the directory (%s): change it there (the next replication would undo a local change)", b.Location, dn)
	}
	var bag metabase.Bag
	if sub == "setprop" || sub == "delprop" {
		if bag, err = metabase.ParseBag(pos[1]); err != nil {
			return c.errorf("%v", err)
		}
	}
	var edit func(t *metabase.Tree) error
	switch sub {
	case "remove":
		edit = func(t *metabase.Tree) error {
			if !t.RemoveBinding(b.Location) {
				return fmt.Errorf("%s: no binding", b.Location)
			}
			return nil
		}
	case "enable", "disable":
		edit = func(t *metabase.Tree) error {
			if !t.SetBindingEnabled(b.Location, sub == "enable") {
				return fmt.Errorf("%s: no binding", b.Location)
			}
			return nil
		}
	case "setprop":
		name, value := pos[2], pos[3]
		if bag == metabase.SinkBag {
			props := maps.Clone(b.Sink)
			props[name] = value
			if err := checkClass(b.SinkClass, b.Event, props, true); err != nil {
				return c.errorf("%v", err)
			}
		}
		edit = func(t *metabase.Tree) error { return t.SetBindingProp(b.Location, bag, name, value) }
	case "delprop":
		edit = func(t *metabase.Tree) error { return t.DelBindingProp(b.Location, bag, pos[2]) }
	}
	version, err := editMetabase(mb, edit)
	if err != nil {
		return c.errorf("%v", err)
	}
	fmt.Fprintf(c.stdout, "%s %s: saved as version %d\n", sub, b.Location, version)
	return exitOK
}

// editMetabase applies edit to the current file and saves the result as a
// new version, only over the version it read: when ds2mb (or another
// mbctl) saved in between, it reads again and re-applies. A tree that
// fails validation is not saved; the error names Location and property.
func editMetabase(mb string, edit func(*metabase.Tree) error) (uint64, error) {
	s := metabase.Open(mb)
	for attempt := 0; ; attempt++ {
		t, err := s.Load()
		if err != nil {
			return 0, err
		}
		base := t.Version
		if err := edit(t); err != nil {
			return 0, err
		}
		_, err = s.SaveOver(t, base)
		if errors.Is(err, metabase.ErrChanged) && attempt < 8 {
			continue
		}
		if err != nil {
			return 0, err
		}
		return t.Version, nil
	}
}
