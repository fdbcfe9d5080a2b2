// Package systemd_test checks the systemd units in deploy/systemd against the
// binaries they start, so a renamed or removed flag cannot leave a unit that
// fails at boot.
package systemd_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestUnitsUseRealFlags builds each daemon a unit starts and checks that
// every --flag on its ExecStart line is one the daemon accepts.
func TestUnitsUseRealFlags(t *testing.T) {
	units := map[string]string{"ds2mb.service": "ds2mb", "smtpsvc.service": "smtpsvc"}
	flagRe := regexp.MustCompile(`(?:^|\s)--([a-z][a-z0-9-]*)`)
	for unit, cmd := range units {
		t.Run(unit, func(t *testing.T) {
			b, err := os.ReadFile(unit)
			if err != nil {
				t.Fatal(err)
			}
			var exec string
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
					exec = v
				}
			}
			if !strings.HasPrefix(exec, "/usr/local/bin/"+cmd+" ") {
				t.Fatalf("ExecStart %q does not start /usr/local/bin/%s", exec, cmd)
			}
			help := helpOf(t, cmd)
			flags := flagRe.FindAllStringSubmatch(exec, -1)
			if len(flags) == 0 {
				t.Fatalf("no flags found on ExecStart %q", exec)
			}
			for _, m := range flags {
				if !regexp.MustCompile(`(?m)^\s+-` + regexp.QuoteMeta(m[1]) + `\b`).MatchString(help) {
					t.Errorf("%s passes --%s, which %s does not accept", unit, m[1], cmd)
				}
			}
		})
	}
}

// helpOf builds cmd/<name> and returns its flag usage text.
func helpOf(t *testing.T, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/"+name).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, out)
	}
	out, _ := exec.Command(bin, "--help").CombinedOutput() // flag's -help exits 0 or 2
	if !strings.Contains(string(out), "-metabase") {
		t.Fatalf("%s --help printed no flag list:\n%s", name, out)
	}
	return string(out)
}
