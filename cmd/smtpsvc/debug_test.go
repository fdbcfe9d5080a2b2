package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestServeDebug: the profiler answers on its own listener, and nothing
// else is served there.
func TestServeDebug(t *testing.T) {
	l, err := serveDebug("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + l.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/: %d\n%s", code, body)
	}
	if code, body := get("/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "TestServeDebug") {
		t.Errorf("goroutine profile: %d\n%s", code, body)
	}
	if code, _ := get("/status"); code != 404 {
		t.Errorf("/status on the debug listener: %d, want 404", code)
	}
}
