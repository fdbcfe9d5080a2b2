package spool

// NamedTemps makes s use named temporary files (the portable path), for
// tests.
func NamedTemps(s *Spool) { s.unnamed = false }

// Unnamed reports whether s uses O_TMPFILE.
func Unnamed(s *Spool) bool { return s.unnamed }
