package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/deploy/localdir"
	"github.com/ds2mb/ds2mb/metabase"
	"github.com/ds2mb/ds2mb/replicator"
	"github.com/ds2mb/ds2mb/replicator/source"
	"github.com/ds2mb/ds2mb/schema"
)

// waitLimit only exists to fail instead of hanging.
const waitLimit = 30 * time.Second

// copySample puts the sample metabase in a fresh folder.
func copySample(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "MetaBase.xml", string(b))
}

func listJSON(t *testing.T, mb string, args ...string) []bindingJSON {
	t.Helper()
	code, out, errOut := mbctl(t, append([]string{"bindings", "list", "--json", "--metabase", mb}, args...)...)
	if code != 0 {
		t.Fatalf("bindings list: exit %d: %s", code, errOut)
	}
	var list []bindingJSON
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("bindings list --json: %v\n%s", err, out)
	}
	return list
}

func findJSON(list []bindingJSON, id string) *bindingJSON {
	for i := range list {
		if strings.EqualFold(list[i].ID, id) {
			return &list[i]
		}
	}
	return nil
}

func version(t *testing.T, mb string) uint64 {
	t.Helper()
	tr, err := metabase.Load(mb)
	if err != nil {
		t.Fatal(err)
	}
	return tr.Version
}

// TestBindingsEdit: add, list, disable, enable, setprop, delprop and
// remove write what they say, each as a new valid version, and the
// smtpreg-style names (event by name or CATID, binding by name or ID) work.
func TestBindingsEdit(t *testing.T) {
	mb := copySample(t)
	v0 := version(t, mb)
	code, out, errOut := mbctl(t, "bindings", "add", "--metabase", mb, "--instance", "1", "--event", "OnArrival",
		"--class", "ds2mb.Disclaimer", "--name", "Legal", "--rule", "mail from=*@example.com", "--priority", "100",
		"--sink", "Text=Sent from example.com", "--max-firings", "5")
	if code != 0 {
		t.Fatalf("add: exit %d: %s", code, errOut)
	}
	id := strings.TrimSpace(out)
	if schema.CheckGUID(id) != nil {
		t.Fatalf("add printed %q, want a {GUID}", out)
	}
	if v := version(t, mb); v != v0+1 {
		t.Errorf("version %d after add, want %d", v, v0+1)
	}
	b := findJSON(listJSON(t, mb), id)
	if b == nil {
		t.Fatalf("binding %s not listed", id)
	}
	want := bindingJSON{Instance: 1, Event: "OnArrival", CATID: "{FF3CAA23-00B9-11D2-9DFB-00C04FA322BA}", ID: id,
		DisplayName: "Legal", SinkClass: "ds2mb.Disclaimer", Enabled: true, MaxFirings: 5, Priority: 100,
		Rule: "mail from=*@example.com", From: "local"}
	if b.Instance != want.Instance || b.Event != want.Event || b.CATID != want.CATID || b.DisplayName != want.DisplayName ||
		b.SinkClass != want.SinkClass || b.Enabled != want.Enabled || b.MaxFirings != want.MaxFirings ||
		b.Priority != want.Priority || b.Rule != want.Rule || b.From != want.From || b.Sink["Text"] != "Sent from example.com" {
		t.Errorf("listed %+v\nwant %+v with sink Text", *b, want)
	}
	if got := listJSON(t, mb, "--event", "OnInboundCommand"); findJSON(got, id) != nil {
		t.Errorf("--event OnInboundCommand lists the OnArrival binding")
	}

	steps := []struct {
		args  []string
		check func(*bindingJSON) bool
	}{
		{[]string{"disable", "Legal"}, func(b *bindingJSON) bool { return !b.Enabled }},
		{[]string{"enable", "--event", "{ff3caa23-00b9-11d2-9dfb-00c04fa322ba}", id}, func(b *bindingJSON) bool { return b.Enabled }},
		{[]string{"setprop", "legal", "sink", "HTML", "<p>Sent from example.com</p>"}, func(b *bindingJSON) bool { return b.Sink["HTML"] == "<p>Sent from example.com</p>" }},
		{[]string{"setprop", "--instance", "1", id, "source", "Priority", "7"}, func(b *bindingJSON) bool { return b.Priority == 7 }},
		{[]string{"delprop", id, "sink", "Text"}, func(b *bindingJSON) bool { _, has := b.Sink["Text"]; return !has && b.Sink["HTML"] != "" }},
		{[]string{"delprop", id, "source", "Rule"}, func(b *bindingJSON) bool { return b.Rule == "" }},
	}
	for _, st := range steps {
		before := version(t, mb)
		args := append([]string{"bindings", st.args[0], "--metabase", mb}, st.args[1:]...)
		if code, _, errOut := mbctl(t, args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", st.args, code, errOut)
		}
		if v := version(t, mb); v != before+1 {
			t.Errorf("%v: version %d, want %d", st.args, v, before+1)
		}
		b := findJSON(listJSON(t, mb), id)
		if b == nil || !st.check(b) {
			t.Errorf("%v: binding now %+v", st.args, b)
		}
	}
	if code, out, _ := mbctl(t, "validate", mb); code != 0 {
		t.Fatalf("file after the edits: %s", out)
	}
	if code, _, errOut := mbctl(t, "bindings", "remove", "--metabase", mb, id); code != 0 {
		t.Fatalf("remove: exit %d: %s", code, errOut)
	}
	tr, err := metabase.Load(mb)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range tr.Nodes() {
		if strings.Contains(strings.ToUpper(n.Location), id) {
			t.Errorf("node %s left after remove", n.Location)
		}
	}

	// The table for people names the columns and the binding.
	code, out, _ = mbctl(t, "bindings", "list", "--metabase", mb)
	if code != 0 || !strings.HasPrefix(out, "VS  EVENT") || !strings.Contains(out, "{6A1D5C1E-3F2B-4C8D-9E0F-1A2B3C4D5E6F}") {
		t.Errorf("table: exit %d\n%s", code, out)
	}
}

// TestBindingsRefused: every bad request is refused with its reason before
// anything is written.
func TestBindingsRefused(t *testing.T) {
	mb := copySample(t)
	add := []string{"bindings", "add", "--metabase", mb, "--instance", "1", "--event", "OnArrival"}
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown class", append(add, "--class", "ds2mb.Nothing"), 1, `unknown sink class "ds2mb.Nothing"`},
		{"class for another event", []string{"bindings", "add", "--metabase", mb, "--instance", "1", "--event", "OnInboundCommand", "--class", "ds2mb.Disclaimer"}, 1,
			"ds2mb.Disclaimer does not handle OnInboundCommand"},
		{"unknown sink property", append(add, "--class", "ds2mb.Disclaimer", "--sink", "Txt=x"), 1, "unknown property Txt"},
		{"sink property without =", append(add, "--class", "ds2mb.Disclaimer", "--sink", "Text"), 1, `want NAME=VALUE`},
		{"priority out of range", append(add, "--class", "ds2mb.HeaderStamp", "--priority", "32768"), 1, "out of range 0–32767"},
		{"bad rule", append(add, "--class", "ds2mb.HeaderStamp", "--rule", "subject=hi"), 1, `unknown command "SUBJECT"`},
		{"unknown event", []string{"bindings", "add", "--metabase", mb, "--instance", "1", "--event", "OnNothing", "--class", "ds2mb.EventLog"}, 1, `unknown event type "OnNothing"`},
		{"no such virtual server", []string{"bindings", "add", "--metabase", mb, "--instance", "9", "--event", "OnArrival", "--class", "ds2mb.EventLog"}, 1, "no virtual server 9"},
		{"bad ID", append(add, "--class", "ds2mb.EventLog", "--id", "{nope}"), 1, "is not a {GUID}"},
		{"ID in use", append(add, "--class", "ds2mb.EventLog", "--id", "{6A1D5C1E-3F2B-4C8D-9E0F-1A2B3C4D5E6F}"), 1, "already exists"},
		{"no instance", []string{"bindings", "add", "--metabase", mb, "--event", "OnArrival", "--class", "ds2mb.EventLog"}, 2, "--instance N is required"},
		{"no such binding", []string{"bindings", "disable", "--metabase", mb, "Nobody"}, 1, `no binding "Nobody"`},
		{"source property not read", []string{"bindings", "setprop", "--metabase", mb, "Disclaimer", "source", "Colour", "red"}, 1, "the source bag holds Priority and Rule"},
		{"priority by setprop", []string{"bindings", "setprop", "--metabase", mb, "Disclaimer", "source", "Priority", "99999"}, 1, "Priority: 99999 is out of range 0–32767"},
		{"rule by setprop", []string{"bindings", "setprop", "--metabase", mb, "Disclaimer", "source", "Rule", "mail from"}, 1, "has no '='"},
		{"bad bag", []string{"bindings", "setprop", "--metabase", mb, "Disclaimer", "middle", "A", "b"}, 1, "is not a property bag"},
		{"sink property the class refuses", []string{"bindings", "setprop", "--metabase", mb, "Disclaimer", "sink", "Colour", "red"}, 1, "unknown property Colour"},
		{"delprop of nothing", []string{"bindings", "delprop", "--metabase", mb, "Disclaimer", "sink", "Colour"}, 1, `no property "Colour"`},
		{"wrong argument count", []string{"bindings", "setprop", "--metabase", mb, "Disclaimer", "sink"}, 2, "want 4 argument(s)"},
	}
	v0 := version(t, mb)
	before, err := os.ReadFile(mb)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		code, _, errOut := mbctl(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d and %q", tc.name, code, errOut, tc.code, tc.want)
		}
	}
	after, _ := os.ReadFile(mb)
	if v := version(t, mb); v != v0 || string(after) != string(before) {
		t.Errorf("a refused request changed the file (version %d, was %d)", v, v0)
	}
}

// TestLocalBindingSurvivesReplication: with the real replicator following
// a real slapd, a binding added with mbctl stays, unchanged, through 100
// replications of directory edits; the replicated binding is listed with
// its DN and cannot be edited locally.
func TestLocalBindingSurvivesReplication(t *testing.T) {
	srv := localdir.StartT(t, localdir.Options{})
	mb := filepath.Join(t.TempDir(), "MetaBase.xml")
	cfg := source.Config{URL: srv.URL, BindDN: srv.BindDN, Password: srv.Password, BaseDN: source.SearchBase(srv.ConfigDN),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond}
	r, err := replicator.New(replicator.Options{Metabase: mb, Server: "SERVER01", Base: srv.ConfigDN, Source: source.NewSyncrepl(cfg)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("replicator: %v", err)
		}
	}()
	vsLoc := schema.ServerLocation(1)
	waitFor := func(what string, cond func(*metabase.Tree) bool) {
		t.Helper()
		deadline := time.Now().Add(waitLimit)
		for {
			if tr, err := metabase.Load(mb); err == nil && cond(tr) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("MetaBase.xml never showed %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("the first replication", func(tr *metabase.Tree) bool { return tr.Node(vsLoc) != nil })
	// The state file says what the replicator owns; it is written after
	// the metabase, so wait for it before asking mbctl.
	waitFor("the replicated binding in the state", func(*metabase.Tree) bool {
		o, err := origins(mb)
		return err == nil && len(o) > 0
	})

	code, out, errOut := mbctl(t, "bindings", "add", "--metabase", mb, "--instance", "1", "--event", "OnArrival",
		"--class", "ds2mb.Disclaimer", "--name", "Local disclaimer", "--priority", "10", "--sink", "Text=local text")
	if code != 0 {
		t.Fatalf("add: exit %d: %s", code, errOut)
	}
	id := strings.TrimSpace(out)
	loc := schema.BindingLocation(1, "{FF3CAA23-00B9-11D2-9DFB-00C04FA322BA}", id)
	snapshot := func(tr *metabase.Tree) string {
		var b strings.Builder
		for _, n := range tr.Below(loc) {
			fmt.Fprintf(&b, "%s %s\n", n.Location, n.Class)
			for _, p := range n.Props() {
				fmt.Fprintf(&b, "  %s=%s\n", p.Name, p.Text)
			}
		}
		if n := tr.Node(loc); n != nil {
			fmt.Fprintf(&b, "%s %v\n", n.Location, n.Props())
		}
		return b.String()
	}
	first, err := metabase.Load(mb)
	if err != nil {
		t.Fatal(err)
	}
	want := snapshot(first)
	if !strings.Contains(want, "local text") {
		t.Fatalf("binding as added:\n%s", want)
	}

	vs := localdir.SampleVSDN("SERVER01", 1)
	for i := range 100 {
		n := 1000 + i
		if err := srv.AddLDIF(fmt.Sprintf("dn: %s\nchangetype: modify\nreplace: msExchSmtpMaxRecipients\nmsExchSmtpMaxRecipients: %d\n-", vs, n)); err != nil {
			t.Fatal(err)
		}
		waitFor(fmt.Sprintf("MaxRecipients %d", n), func(tr *metabase.Tree) bool { return tr.Node(vsLoc).Text("MaxRecipients") == fmt.Sprint(n) })
		tr, err := metabase.Load(mb)
		if err != nil {
			t.Fatal(err)
		}
		if got := snapshot(tr); got != want {
			t.Fatalf("replication %d changed the local binding:\n%s\nwant:\n%s", i+1, got, want)
		}
	}
	if st := r.Stats(); st.Saves < 100 {
		t.Errorf("%d saves, want at least 100 replications", st.Saves)
	}

	list := listJSON(t, mb)
	if b := findJSON(list, id); b == nil || b.From != "local" {
		t.Errorf("local binding listed as %+v", b)
	}
	b := findJSON(list, localdir.SampleBindingID)
	if b == nil || b.From != "directory" || !strings.EqualFold(b.DN, localdir.SampleBindingDN()) {
		t.Fatalf("replicated binding listed as %+v, want from the directory with DN %s", b, localdir.SampleBindingDN())
	}
	before := version(t, mb)
	code, _, errOut = mbctl(t, "bindings", "disable", "--metabase", mb, localdir.SampleBindingID)
	if code != 1 || !strings.Contains(errOut, "comes from the directory") || !strings.Contains(strings.ToLower(errOut), strings.ToLower(localdir.SampleBindingDN())) {
		t.Errorf("disabling the replicated binding: exit %d, %q", code, errOut)
	}
	if v := version(t, mb); v != before {
		t.Errorf("refused edit wrote version %d", v)
	}
}
