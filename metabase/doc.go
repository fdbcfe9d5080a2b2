// Package metabase is the MetaBase.xml store: a tree of nodes by Location in
// IIS 6's shape (node classes as elements, known properties as attributes,
// the rest as <Custom> elements), load and save with beevik/etree,
// inheritance from the service node to its virtual servers, validation
// against the schema catalogue, atomic numbered saves with a history of
// versions, and diffs between trees.
//
// Files in the shape ds2mb itself writes are read by a fast hand-written
// reader; anything else (comments, other elements, CRLF, non-ASCII) by
// etree. Both give the same tree (FuzzFastParse).
//
// Anything in a file that ds2mb does not read — other IIS services' nodes,
// unknown properties, unknown elements — is kept as it was across a load and
// a save.
package metabase
