package replicator

import (
	"fmt"
	"strconv"
	"strings"
)

// EventID numbers the replicator's events, in the spirit of Exchange's
// MSExchangeMU (Metabase Update) event source. The numbers are ds2mb's own;
// Exchange's are undocumented (REFERENCE.md §8).
type EventID int

// The event catalogue. Each entry says when it is raised and what it carries.
const (
	// EvStart: the replicator started (Message names server, metabase, mode).
	EvStart EventID = 1000
	// EvFullBegin: a full replication began (no state, or the cookie was reset).
	EvFullBegin EventID = 1001
	// EvResume: replication resumed from the saved cookie.
	EvResume EventID = 1002
	// EvObjectReplicated: a directory object was added or changed (DN; debug level).
	EvObjectReplicated EventID = 1003
	// EvValueRefused: a directory value was refused by the catalogue (DN,
	// Attribute, Value, Reason; Location and Property when known). The
	// property keeps its last good value or falls back to its default.
	EvValueRefused EventID = 1004
	// EvLocalEditOverwritten: a property the replicator owns had been edited
	// locally and was set back (Location, Property, Old, New).
	EvLocalEditOverwritten EventID = 1005
	// EvConnectionLost: the directory connection was lost (Reason); the
	// metabase stays as it is while the source redials with backoff.
	EvConnectionLost EventID = 1006
	// EvConnectionRestored: the source is connected and bound again.
	EvConnectionRestored EventID = 1007
	// EvCookieReset: the directory refused the resume cookie (Reason); a
	// full replication follows.
	EvCookieReset EventID = 1008
	// EvSaved: a new MetaBase.xml version was written (Count = version,
	// Value = the highest directory change stamp it includes, when known).
	EvSaved EventID = 1009
	// EvObjectIgnored: a directory object is not replicated (another
	// server's, or out of place; DN, Reason; debug level).
	EvObjectIgnored EventID = 1010
	// EvFullDone: a full replication or resume refresh finished (Count = objects).
	EvFullDone EventID = 1011
	// EvObjectDeleted: a directory object was deleted (DN or UUID; debug level).
	EvObjectDeleted EventID = 1012
	// EvSaveFailed: the metabase could not be read or written (Reason); the
	// replicator retries on the next change and the file stays as it was.
	EvSaveFailed EventID = 1013
	// EvStopped: the replicator stopped.
	EvStopped EventID = 1014
	// EvStateDiscarded: the saved state was unusable or belonged to another
	// server or mode (Reason); a full replication follows.
	EvStateDiscarded EventID = 1015
	// EvNodeRemoved: a node the replicator had created was removed because
	// no directory object renders it any more (Location).
	EvNodeRemoved EventID = 1016
)

// Severity is an event's level; cmd/ds2mb maps it to a log/slog level.
type Severity int

// The severities.
const (
	SevDebug Severity = iota - 1
	SevInfo
	SevWarning
	SevError
)

// Event is one numbered, structured occurrence. Fields that do not apply
// are empty. No field ever holds a credential.
type Event struct {
	ID        EventID
	Severity  Severity
	Message   string
	DN        string
	Attribute string
	Value     string
	Location  string
	Property  string
	Old, New  string
	Reason    string
	Count     int
}

// Field is one named detail of an event.
type Field struct{ Key, Value string }

// Fields lists the event's non-empty details in a fixed order: dn,
// attribute, value, location, property, old, new, reason, count.
func (e Event) Fields() []Field {
	var out []Field
	for _, f := range []Field{{"dn", e.DN}, {"attribute", e.Attribute}, {"value", e.Value}, {"location", e.Location},
		{"property", e.Property}, {"old", e.Old}, {"new", e.New}, {"reason", e.Reason}} {
		if f.Value != "" {
			out = append(out, f)
		}
	}
	if e.Count != 0 {
		out = append(out, Field{"count", strconv.Itoa(e.Count)})
	}
	return out
}

// String formats the event on one line.
func (e Event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", e.ID, e.Message)
	for _, f := range e.Fields() {
		fmt.Fprintf(&b, " %s=%q", f.Key, f.Value)
	}
	return b.String()
}

// EventFunc receives the replicator's events. It is called from the
// replicator's goroutines and must not block for long.
type EventFunc func(Event)
