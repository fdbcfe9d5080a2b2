// Package schema is the one catalogue of every setting ds2mb knows: for each
// metabase property its IIS name, ID, type, user type, inheritance, the node
// kinds it lives on, unit, default and check, and the directory attribute it
// is replicated from; the directory attributes and object classes with their
// OIDs; the event types; the shapes of metabase Locations and directory DNs;
// the parsers of structured values (bindings, retry lists, smart hosts,
// IPSECLIST blobs, binding rules); and generators for the OpenLDAP schema, the
// Active Directory schema extension and an MBSchema.xml.
//
// Facts come from REFERENCE.md. Where it grades a fact G (guessed) or U
// (unsourced) the entry's Grade says so and its Note names the choice made,
// with an ASSUMPTION comment beside it; README's configuration reference is
// generated from this table.
//
// The package imports nothing of the project.
package schema
