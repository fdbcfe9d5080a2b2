// Package replicator copies one server's SMTP configuration one way from an
// LDAP directory into MetaBase.xml: the DS2MB analogue.
//
// A Source (package replicator/source: RFC 4533 syncrepl or entryCSN
// polling) reports directory changes as a stream of Change values. The
// Replicator keeps a mirror of the directory objects it reads (entryUUID →
// DN and attributes), and whenever the mirror changes it renders the whole
// subtree it owns from the mirror (Render, pure), merges it into the current
// MetaBase.xml with ownership (its own nodes and properties are set or
// removed, local edits to them are overwritten with an event, everything it
// never wrote is left alone), validates the result and saves it atomically.
// Bursts are coalesced: a single writer waits for a short quiet window, so a
// thousand modifications become a few saves, and every save is level
// triggered, so the file always equals what a fresh full replication would
// write.
//
// The resume state (source cookie, mirror, owned Locations and properties)
// lives beside the metabase in "<metabase>.ds2mb-state.json" and is written
// atomically strictly after the metabase it describes.
//
// The library never logs: it reports numbered events (events.go) to a
// callback, and cmd/ds2mb logs them with log/slog.
package replicator
