package main

import (
	"strings"
	"testing"
)

// TestSettingsFile reads ds2mb.env's format: comments, quotes, export, the
// environment first, and an error naming file and line for a bad line.
func TestSettingsFile(t *testing.T) {
	path := writeFile(t, "ds2mb.env", "# comment\n\nDS2MB_LDAP_URL=ldap://127.0.0.1:3890/\nexport DS2MB_BIND_DN=\"cn=ds2mb,dc=example,dc=com\"\nDS2MB_SERVER='SERVER01'\n")
	s, err := loadSettings(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("DS2MB_SERVER", "SERVER02")
	t.Setenv("DS2MB_LDAP_URL", "")
	if got := s.get("DS2MB_LDAP_URL"); got != "ldap://127.0.0.1:3890/" {
		t.Errorf("DS2MB_LDAP_URL = %q", got)
	}
	if got := s.get("DS2MB_BIND_DN"); got != "cn=ds2mb,dc=example,dc=com" {
		t.Errorf("quoted, exported DS2MB_BIND_DN = %q", got)
	}
	if got := s.get("DS2MB_SERVER"); got != "SERVER02" {
		t.Errorf("DS2MB_SERVER = %q; the environment comes before the file", got)
	}

	bad := writeFile(t, "ds2mb.env", "DS2MB_SERVER=SERVER01\nthis is not a setting\n")
	if _, err := loadSettings(bad); err == nil || !strings.Contains(err.Error(), bad+":2: want KEY=VALUE") {
		t.Errorf("bad line: %v", err)
	}
	if _, err := loadSettings(bad + ".missing"); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("a named config file that is missing: %v", err)
	}
	// --starttls and $DS2MB_STARTTLS.
	for v, want := range map[string]bool{"": false, "true": true, "Yes": true, "0": false} {
		if got, err := parseBoolSetting(v); err != nil || got != want {
			t.Errorf("parseBoolSetting(%q) = %v, %v", v, got, err)
		}
	}
	if _, err := parseBoolSetting("maybe"); err == nil {
		t.Error("parseBoolSetting(maybe) accepted")
	}
	// mbctl dir with a bad config file stops before connecting, naming it.
	if code, _, errOut := mbctl(t, "dir", "get", "--config", bad, "MaxRecipients"); code != 1 || !strings.Contains(errOut, ":2: want KEY=VALUE") {
		t.Errorf("mbctl dir with a bad config file: exit %d, %q", code, errOut)
	}
}
