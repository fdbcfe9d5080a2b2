package events

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Factory makes the sink of one binding from its sink properties
// (SinkProperties, names as written); an error refuses the binding with
// that reason.
type Factory func(props map[string]string) (Sink, error)

// Class describes a registered sink class.
type Class struct {
	Name string // the SinkClass value that selects it ("ds2mb.Disclaimer")
	// Events lists the event types the class handles; a binding of the
	// class to another event is refused. Empty = any.
	Events []Type
	// Properties documents the sink properties the class reads, name →
	// meaning, for mbctl and the docs.
	Properties map[string]string
	Doc        string // one line: what it does
	New        Factory
}

// Registry maps sink class names (case-insensitive, like ProgIDs) to
// classes. It is filled by the main package before use.
type Registry struct {
	mu      sync.RWMutex
	classes map[string]Class
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{classes: map[string]Class{}} }

// Register adds a class; a second class of the same name is a programming
// error and panics.
func (r *Registry) Register(c Class) {
	if c.Name == "" || c.New == nil {
		panic("events: Register needs a name and a factory")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	k := strings.ToLower(c.Name)
	if _, dup := r.classes[k]; dup {
		panic("events: sink class " + c.Name + " registered twice")
	}
	r.classes[k] = c
}

// Class finds a class by name.
func (r *Registry) Class(name string) (Class, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, ok := r.classes[strings.ToLower(strings.TrimSpace(name))]
	return c, ok
}

// Classes lists the registered classes by name.
func (r *Registry) Classes() []Class {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Class, 0, len(r.classes))
	for _, c := range r.classes {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Check reports why a binding of class name to event t could not be made,
// without making it: an unknown class or an event the class does not
// handle. mbctl uses it before it writes a binding.
func (r *Registry) Check(name string, t Type) error {
	c, ok := r.Class(name)
	if !ok {
		var names []string
		for _, c := range r.Classes() {
			names = append(names, c.Name)
		}
		return fmt.Errorf("unknown sink class %q (registered: %s)", name, strings.Join(names, ", "))
	}
	if len(c.Events) == 0 {
		return nil
	}
	var names []string
	for _, e := range c.Events {
		if e.CATID == t.CATID {
			return nil
		}
		names = append(names, e.Name)
	}
	return fmt.Errorf("sink class %s does not handle %s (it handles %s)", c.Name, t.Name, strings.Join(names, ", "))
}
