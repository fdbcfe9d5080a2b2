// Package e2e holds the end-to-end test of the whole spine: it builds the
// real ds2mb and smtpsvc binaries, starts a private slapd with the sample
// organisation (deploy/localdir), runs the replicator for SERVER01 and the
// SMTP worker on the MetaBase.xml it writes, edits a property in the
// directory with ldapmodify and waits until a new SMTP connection sees it,
// printing the time from the directory edit to the new configuration
// serving. It has no non-test code.
package e2e
