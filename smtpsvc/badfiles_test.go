package smtpsvc

import (
	"encoding/json"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/smtpsvc/status"
)

// TestBadFilesMatrix writes one bad MetaBase.xml after another over a good
// one. Each is refused whole: the last good configuration keeps serving
// (same version, same banner, mail still accepted) and status names the
// refused version and where it went wrong. A good file afterwards is
// applied, and a refusal for a port another process holds is retried once
// that port is free.
func TestBadFilesMatrix(t *testing.T) {
	p1, p2 := freePort(t), freePort(t)
	good := tree(1, vsDef{n: 1, ports: []int{p1}, fqdn: "good.example.com"})
	w := startWorker(t, good.Bytes(), nil)
	w.waitVersion(t, 1)

	taken, err := net.Listen("tcp", "127.0.0.1:0") // another process's port
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port

	cases := []struct {
		name         string
		version      uint64
		versionKnown bool
		data         func() []byte
		location     string // a problem must name this Location …
		property     string // … and this property
		reason       string // and the refusal reason must contain this
	}{
		{
			name: "malformed XML", version: 2, versionKnown: true,
			data: func() []byte {
				b := tree(2, vsDef{n: 1, ports: []int{p1}, fqdn: "bad.example.com"}).Bytes()
				return b[:len(b)-40] // cut off mid-element
			},
			reason: "malformed XML",
		},
		{
			name: "not XML at all", version: 0, versionKnown: false,
			data:   func() []byte { return []byte("this is not a metabase\n") },
			reason: "malformed XML",
		},
		{
			name: "invalid value", version: 4, versionKnown: true,
			data: func() []byte {
				tr := tree(4, vsDef{n: 1, ports: []int{p1}, fqdn: "bad.example.com"})
				tr.Node("/LM/SmtpSvc/1").Set("MaxRecipients", "lots")
				return tr.Bytes()
			},
			location: "/LM/SmtpSvc/1", property: "MaxRecipients",
		},
		{
			name: "invalid binding", version: 5, versionKnown: true,
			data: func() []byte {
				tr := tree(5, vsDef{n: 1, ports: []int{p1}, fqdn: "bad.example.com"})
				tr.Node("/LM/SmtpSvc/1").Set("ServerBindings", "127.0.0.1:99999:")
				return tr.Bytes()
			},
			location: "/LM/SmtpSvc/1", property: "ServerBindings",
		},
		{
			name: "two virtual servers on one binding", version: 6, versionKnown: true,
			data: func() []byte {
				return tree(6, vsDef{n: 1, ports: []int{p1}, fqdn: "bad.example.com"}, vsDef{n: 2, ports: []int{p1}}).Bytes()
			},
			property: "ServerBindings", reason: "also used by",
		},
		{
			name: "invalid Location", version: 7, versionKnown: true,
			data: func() []byte {
				tr := tree(7, vsDef{n: 1, ports: []int{p1}, fqdn: "bad.example.com"})
				tr.Ensure("/LM/SmtpSvc/one", "IIsSmtpServer")
				return tr.Bytes()
			},
			location: "/LM/SmtpSvc/one",
		},
		{
			name: "certificate that does not exist", version: 75, versionKnown: true,
			data: func() []byte {
				tr := tree(75, vsDef{n: 1, ports: []int{p1}, fqdn: "bad.example.com"})
				tr.Node("/LM/SmtpSvc/1").Set("SslCertificateFile", "/nonexistent/cert.pem")
				tr.Node("/LM/SmtpSvc/1").Set("SslKeyFile", "/nonexistent/key.pem")
				return tr.Bytes()
			},
			location: "/LM/SmtpSvc/1", property: "SslCertificateFile",
		},
		{
			name: "binding on a port another process holds", version: 8, versionKnown: true,
			data: func() []byte {
				return tree(8, vsDef{n: 1, ports: []int{p1}, fqdn: "bad.example.com"}, vsDef{n: 2, ports: []int{p2, takenPort}}).Bytes()
			},
			location: "/LM/SmtpSvc/2", property: "ServerBindings", reason: "address already in use",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := w.Status().Reloads.Refused
			write(t, w.path, tc.data())
			st := w.waitStatus(t, "the refusal", func(st status.Status) bool { return st.Reloads.Refused > before })
			r := st.Refused
			if r == nil || r.Version != tc.version || r.VersionKnown != tc.versionKnown {
				t.Fatalf("refusal %+v: want version %d (known %v)", r, tc.version, tc.versionKnown)
			}
			if tc.reason != "" && !strings.Contains(r.Reason, tc.reason) {
				t.Errorf("refusal reason %q lacks %q", r.Reason, tc.reason)
			}
			if tc.location != "" || tc.property != "" {
				found := false
				for _, p := range r.Problems {
					if (tc.location == "" || p.Location == tc.location) && (tc.property == "" || p.Property == tc.property) {
						found = true
					}
				}
				if !found {
					t.Errorf("refusal problems %+v name no %s %s", r.Problems, tc.location, tc.property)
				}
			}
			t.Logf("refused: %s", r.Reason)
			// The last good configuration keeps serving.
			if st.Version != 1 || !st.Running {
				t.Fatalf("running version %d (running %v) after the refusal; want 1", st.Version, st.Running)
			}
			if l, err := greeting(addr(p1)); err != nil || !strings.Contains(l, "good.example.com") {
				t.Fatalf("banner after the refusal: %q, %v; want good.example.com", l, err)
			}
			if err := smtpSession(addr(p1), 1); err != nil {
				t.Fatalf("mail after the refusal: %v", err)
			}
			if c, err := net.DialTimeout("tcp", addr(p2), time.Second); err == nil {
				c.Close()
				t.Fatalf("%s listens although its configuration was refused", addr(p2))
			}
			// The status file says the same (it is written just after).
			deadline := time.Now().Add(10 * time.Second)
			for {
				b, err := os.ReadFile(w.o.StatusFile)
				var fst status.Status
				if err == nil && json.Unmarshal(b, &fst) == nil && fst.Refused != nil && fst.Refused.Reason == r.Reason && fst.Version == 1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("status file %s (%v) does not show the refusal", b, err)
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}

	t.Run("port freed: the refused configuration is retried and applied", func(t *testing.T) {
		taken.Close()
		st := w.waitVersion(t, 8)
		if len(st.Servers) != 2 || !st.Servers[1].Running {
			t.Fatalf("after the port was freed: %+v", st.Servers)
		}
		if l, err := greeting(addr(p2)); err != nil || !strings.HasPrefix(l, "220 ") {
			t.Fatalf("virtual server 2: %q, %v", l, err)
		}
	})

	t.Run("a good file after the bad ones is applied", func(t *testing.T) {
		write(t, w.path, tree(9, vsDef{n: 1, ports: []int{p1}, fqdn: "better.example.com"}).Bytes())
		w.waitVersion(t, 9)
		if l, err := greeting(addr(p1)); err != nil || !strings.Contains(l, "better.example.com") {
			t.Fatalf("banner: %q, %v", l, err)
		}
		// The last refusal stays visible after a good load.
		if st := w.Status(); st.Refused == nil || st.Refused.Version != 8 {
			t.Fatalf("last refusal after a good load: %+v", st.Refused)
		}
	})
}

// TestRefusedAtStart: a worker whose first file is bad serves nothing,
// reports the refusal and unhealthy, and starts serving when a good file
// arrives.
func TestRefusedAtStart(t *testing.T) {
	p1 := freePort(t)
	w := startWorker(t, []byte("<configuration><MBProperty><IIsSmtpServer Location=\"/LM/SmtpSvc/x\""), nil)
	w.waitStatus(t, "the refusal", func(st status.Status) bool { return st.Refused != nil })
	// The file is tried again on every poll (200 ms here), but the same
	// refusal of the same file is reported once.
	time.Sleep(700 * time.Millisecond)
	if n := w.Status().Reloads.Refused; n != 1 {
		t.Fatalf("one bad file retried for 700 ms counted %d refusals; want 1", n)
	}
	if code, _ := httpGet(t, "http://"+w.StatusAddr()+"/healthz"); code != 503 {
		t.Fatalf("/healthz with nothing running: %d; want 503", code)
	}
	write(t, w.path, tree(3, vsDef{n: 1, ports: []int{p1}, fqdn: "late.example.com"}).Bytes())
	w.waitVersion(t, 3)
	if l, err := greeting(addr(p1)); err != nil || !strings.Contains(l, "late.example.com") {
		t.Fatalf("banner: %q, %v", l, err)
	}
}
