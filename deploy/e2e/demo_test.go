package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestDemoScript runs deploy/demo.sh (what `make demo` runs) twice in a
// row while the ports it prefers are taken: each time the whole system comes
// up on other ports, the printed tour's settings work (mbctl status shows
// the worker in step, a message to the printed port is delivered to the
// store), and Ctrl-C (SIGINT to the process group, as a terminal sends it)
// stops every part.
func TestDemoScript(t *testing.T) {
	bin := t.TempDir()
	for _, pkg := range []string{"deploy/cmd/localdir", "cmd/ds2mb", "cmd/smtpsvc", "cmd/mbctl"} {
		build(t, bin, pkg)
	}
	// Take the preferred ports that are free; a port already taken by
	// someone else is just as taken.
	for _, p := range []int{3890, 2525, 8025, 8026} {
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			t.Cleanup(func() { l.Close() })
		}
	}
	demo := t.TempDir()
	for round := 1; round <= 2; round++ {
		t.Run(fmt.Sprint("run", round), func(t *testing.T) { runDemo(t, bin, demo) })
	}
}

func runDemo(t *testing.T, bin, demo string) {
	cmd := exec.Command("bash", "../demo.sh")
	cmd.Env = append(os.Environ(), "DEMO_DIR="+demo, "BIN_DIR="+bin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	var mu sync.Mutex
	var screen strings.Builder
	ready := make(chan struct{})
	eof := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		once := sync.Once{}
		for sc.Scan() {
			mu.Lock()
			screen.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.HasPrefix(sc.Text(), "demo: running; press Ctrl-C to stop") {
				once.Do(func() { close(ready) })
			}
		}
		io.Copy(io.Discard, out)
		close(eof)
	}()
	text := func() string { mu.Lock(); defer mu.Unlock(); return screen.String() }
	stopped := false
	defer func() {
		if !stopped {
			syscall.Kill(-pgid, syscall.SIGKILL)
			cmd.Wait()
		}
	}()
	select {
	case <-ready:
	case <-eof:
		cmd.Wait()
		stopped = true
		t.Fatalf("demo.sh exited before it was running:\n%s", text())
	case <-time.After(3 * time.Minute):
		t.Fatalf("demo.sh not running after 3 minutes:\n%s", text())
	}
	tour := text()
	for _, p := range []string{"3890 (the directory)", "2525 (virtual server 1)", "8025 (smtpsvc status)", "8026 (ds2mb status)"} {
		if !strings.Contains(tour, "demo: port "+p+" is taken; using ") {
			t.Errorf("demo.sh did not say that port %s is taken:\n%s", p, tour)
		}
	}
	m := regexp.MustCompile(`demo: SMTP virtual servers of SERVER01: (127\.0\.0\.1:\d+) \(1\)`).FindStringSubmatch(tour)
	if m == nil || m[1] == "127.0.0.1:2525" {
		t.Fatalf("virtual server 1's address in the tour: %v\n%s", m, tour)
	}
	vs1 := m[1]
	// The tour's export lines, as a person pastes them.
	var env []string
	for _, line := range strings.Split(tour, "\n") {
		if rest, ok := strings.CutPrefix(line, "export "); ok {
			env = append(env, strings.Fields(rest)...)
		}
	}
	mbctl := exec.Command(filepath.Join(bin, "mbctl"), "status")
	mbctl.Env = append(os.Environ(), env...)
	for t0 := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		b, err := mbctl.CombinedOutput()
		if err == nil && strings.Contains(string(b), "in step: the worker serves version") {
			break
		}
		if time.Since(t0) > 30*time.Second {
			t.Fatalf("mbctl status with the tour's settings: %v\n%s\ntour:\n%s", err, b, tour)
		}
		mbctl = exec.Command(mbctl.Path, mbctl.Args[1:]...)
		mbctl.Env = append(os.Environ(), env...)
	}
	if l, err := banner(vs1); err != nil || !strings.HasPrefix(l, "220 server01.example.com ") {
		t.Fatalf("banner on %s: %q, %v", vs1, l, err)
	}
	sendTo(t, vs1, "alice@example.com", "bob@example.com", "Subject: demo\r\n\r\nfrom the demo test\r\n")
	delivered(t, filepath.Join(demo, "metabase", "Mailroot", "vsi 1", "Mailbox", "example.com", "bob"), "demo")

	// Ctrl-C: every part stops and the script exits.
	syscall.Kill(-pgid, syscall.SIGINT)
	done := make(chan error, 1)
	go func() { <-eof; done <- cmd.Wait() }()
	select {
	case err := <-done:
		stopped = true
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("demo.sh: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("demo.sh still running 60 s after Ctrl-C:\n%s", text())
	}
	for t0 := time.Now(); syscall.Kill(-pgid, 0) == nil; time.Sleep(50 * time.Millisecond) {
		if time.Since(t0) > 30*time.Second {
			t.Fatalf("processes of the demo left running after Ctrl-C:\n%s", text())
		}
	}
	if c, err := net.DialTimeout("tcp", vs1, time.Second); err == nil {
		c.Close()
		t.Errorf("virtual server 1 (%s) still answers after Ctrl-C", vs1)
	}
}
