package metabase

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/schema"
)

const crashEnv = "DS2MB_METABASE_CRASH_PATH"

// crashTree is the content the helper saves as version seq: every part of
// it is derived from seq, so a file's content can be checked against its
// ChangeNumber. Its size varies with seq, so a torn write could not pass.
func crashTree(seq uint64) *Tree {
	t := New()
	svc := t.Ensure(schema.ServiceLocation, ClassService)
	svc.Set("DefaultDomain", fmt.Sprintf("v%d.example.com", seq))
	svc.Set("ServerComment", strings.Repeat(strconv.FormatUint(seq, 10), int(seq%50)+1))
	vs := t.Ensure(schema.ServerLocation(1), ClassServer)
	vs.Set("ServerBindings", "127.0.0.1:2525:")
	vs.Set("MaxRecipients", strconv.FormatUint(seq%60000+1, 10))
	for d := uint64(0); d < seq%37+1; d++ {
		t.Ensure(schema.DomainLocation(1, fmt.Sprintf("d%d-v%d.example.com", d, seq)), ClassDomain).Set("RouteAction", "SMTP_ALIAS")
	}
	return t
}

// TestMain turns the test binary into the saver process of
// TestCrashDuringSave when crashEnv is set; otherwise it runs the tests.
func TestMain(m *testing.M) {
	if path := os.Getenv(crashEnv); path != "" {
		runSaver(path)
	}
	os.Exit(m.Run())
}

// runSaver saves one version after another until it is killed; it is the
// child process TestCrashDuringSave kills at random moments.
func runSaver(path string) {
	s := Open(path)
	s.Keep = 5
	cur, err := s.Load()
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper: load:", err)
		os.Exit(3)
	}
	v := cur.Version
	fmt.Println("ready")
	for {
		tr := crashTree(v + 1)
		if _, err := s.Save(tr); err != nil {
			fmt.Fprintln(os.Stderr, "helper: save:", err)
			os.Exit(4)
		}
		if tr.Version <= v {
			fmt.Fprintf(os.Stderr, "helper: saved version %d after %d\n", tr.Version, v)
			os.Exit(5)
		}
		v = tr.Version
	}
}

// checkCrashFile checks that a file parses and holds exactly the content of
// the version its ChangeNumber names.
func checkCrashFile(path string) (uint64, error) {
	tr, err := Load(path)
	if err != nil {
		return 0, err
	}
	if !tr.Equal(crashTree(tr.Version)) {
		return tr.Version, fmt.Errorf("%s: ChangeNumber %d but the content of another version: %v", path, tr.Version, Diff(crashTree(tr.Version), tr)[:1])
	}
	return tr.Version, nil
}

// TestCrashDuringSave kills a process that saves versions in a loop at random
// moments, hundreds of times, and checks after each kill that MetaBase.xml
// parses and equals one of the versions the process wrote, that versions
// never go back, and that the history copies are whole too.
func TestCrashDuringSave(t *testing.T) {
	kills, budget := 300, 50*time.Second
	if testing.Short() {
		kills, budget = 30, 10*time.Second
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "MetaBase.xml")
	hist := filepath.Join(dir, "history")
	start := time.Now()
	var last uint64
	done, advanced := 0, 0
	for done < kills && time.Since(start) < budget {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), crashEnv+"="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || line != "ready\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("helper did not start: %q %v; stderr: %s", line, err, stderr.String())
		}
		time.Sleep(time.Duration(rand.IntN(20000)) * time.Microsecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("helper ended on its own (%v), not by the kill; stderr: %s", err, stderr.String())
		}
		done++

		v, err := checkCrashFile(path)
		if err != nil {
			if os.IsNotExist(err) && last == 0 {
				continue // killed before its first save
			}
			t.Fatalf("after kill %d: %v", done, err)
		}
		if v < last {
			t.Fatalf("after kill %d: version went back from %d to %d", done, last, v)
		}
		if v > last {
			advanced++
		}
		last = v
		// Every complete history copy holds the version its name says.
		ents, _ := os.ReadDir(hist)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") {
				continue // a temporary file of a killed write
			}
			hv, err := checkCrashFile(filepath.Join(hist, e.Name()))
			if err != nil {
				if os.IsNotExist(err) {
					continue // pruned by a later save
				}
				t.Fatalf("after kill %d: history: %v", done, err)
			}
			if want := fmt.Sprintf("MetaBase_%010d.xml", hv); e.Name() != want {
				t.Fatalf("after kill %d: %s holds version %d", done, e.Name(), hv)
			}
		}
	}
	t.Logf("%d kills in %v; %d advanced the version, last version %d", done, time.Since(start).Round(time.Millisecond), advanced, last)
	if done < kills/3 {
		t.Fatalf("only %d kills within %v", done, budget)
	}
	if last == 0 || advanced < done/4 {
		t.Fatalf("the helper rarely saved between kills (%d of %d); the test proves little", advanced, done)
	}
	// A fresh store continues from the last version.
	s := Open(path)
	tr := crashTree(last + 1)
	if _, err := s.Save(tr); err != nil || tr.Version != last+1 {
		t.Fatalf("save after the crashes: version %d, err %v", tr.Version, err)
	}
}
