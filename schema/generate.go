package schema

// The generated files (deploy/openldap/exchange.schema and the others listed
// in cmd/schemagen) are committed; tests fail when they are stale.
//go:generate go run ./cmd/schemagen
