package replicator

import (
	"testing"

	"github.com/ds2mb/ds2mb/metabase"
)

func mergeOK(t *testing.T, cur *metabase.Tree, m Mirror, prev map[string]*OwnedNode) (*metabase.Tree, map[string]*OwnedNode, []Event) {
	t.Helper()
	out, owned, evs, err := Merge(cur, Render(m, "SERVER01"), prev)
	if err != nil {
		t.Fatal(err)
	}
	return out, owned, evs
}

func TestMergeOwnership(t *testing.T) {
	m := baseMirror()
	cur := metabase.New()
	// A hand-made node and a hand-set property on a node the replicator renders.
	cur.Ensure("/LM/SmtpSvc/1/EventManager/EventTypes/"+arriv+"/Bindings/{00000000-0000-0000-0000-000000000001}", metabase.ClassConfig).Set("SinkClass", "Local")
	cur.Ensure("/LM/SmtpSvc/1", metabase.ClassServer).Set("PostmasterEmail", "pm@example.com")
	cur.Ensure("/LM/W3SVC", "IIsWebService").Set("Whatever", "1")

	out, owned, _ := mergeOK(t, cur, m, nil)
	if out.Node("/LM/SmtpSvc/1").Text("MaxRecipients") != "100" || out.Node("/LM/SmtpSvc/1").Text("PostmasterEmail") != "pm@example.com" {
		t.Fatalf("first merge: %s", out.Bytes())
	}
	if owned["/lm/smtpsvc/1"].Created {
		t.Errorf("a node that existed before is recorded as created")
	}
	if !owned["/lm/smtpsvc/2"].Created {
		t.Errorf("a new node is not recorded as created")
	}

	// Local edit of an owned property → overwritten with an event.
	out.Node("/LM/SmtpSvc/1").Set("MaxRecipients", "7")
	out2, owned2, evs := mergeOK(t, out, m, owned)
	if out2.Node("/LM/SmtpSvc/1").Text("MaxRecipients") != "100" {
		t.Errorf("local edit survived")
	}
	found := false
	for _, e := range evs {
		if e.ID == EvLocalEditOverwritten && e.Property == "MaxRecipients" && e.Old == "7" && e.New == "100" {
			found = true
		}
	}
	if !found {
		t.Errorf("no overwrite event: %+v", evs)
	}

	// A directory change is not a local edit.
	m["u-vs1"] = obj(vs1DN, "objectClass", "protocolCfgSMTPServer", "msExchServerBindings", "127.0.0.1:2525:", "msExchSmtpMaxRecipients", "200")
	out3, owned3, evs := mergeOK(t, out2, m, owned2)
	for _, e := range evs {
		if e.ID == EvLocalEditOverwritten {
			t.Errorf("directory change reported as a local edit: %+v", e)
		}
	}
	if out3.Node("/LM/SmtpSvc/1").Text("MaxRecipients") != "200" {
		t.Errorf("directory change not applied")
	}

	// Objects deleted: created nodes go, pre-existing nodes lose only owned props.
	delete(m, "u-vs1")
	delete(m, "u-vs2")
	delete(m, "u-bind")
	out4, _, _ := mergeOK(t, out3, m, owned3)
	if out4.Node("/LM/SmtpSvc/2") != nil {
		t.Errorf("created node of a deleted object kept")
	}
	n1 := out4.Node("/LM/SmtpSvc/1")
	if n1 == nil || n1.Text("PostmasterEmail") != "pm@example.com" || n1.Text("MaxRecipients") != "" {
		t.Errorf("pre-existing node: %v", n1)
	}
	if out4.Node("/LM/SmtpSvc/1/EventManager/EventTypes/"+arriv+"/Bindings/{00000000-0000-0000-0000-000000000001}") == nil || out4.Node("/LM/W3SVC") == nil {
		t.Errorf("nodes never owned were removed")
	}
	if out4.Node("/LM/SmtpSvc/1/Domain/example.com") != nil {
		t.Errorf("domain nodes of a deleted virtual server kept")
	}
	if probs := out4.Validate(); probs != nil {
		t.Error(probs)
	}
}

func TestMergeLastGood(t *testing.T) {
	m := baseMirror()
	out, owned, _ := mergeOK(t, metabase.New(), m, nil)
	m["u-vs1"].Attrs["msExchSmtpMaxRecipients"] = []string{"-5"}
	out2, owned2, _ := mergeOK(t, out, m, owned)
	if got := out2.Node("/LM/SmtpSvc/1").Text("MaxRecipients"); got != "100" {
		t.Errorf("refused value: MaxRecipients %q, want last good 100", got)
	}
	// Never rendered good: left to its default.
	fresh, _, _ := mergeOK(t, metabase.New(), m, nil)
	if _, has := fresh.Node("/LM/SmtpSvc/1").Get("MaxRecipients"); has {
		t.Errorf("refused value without a last good one was written")
	}
	// Duplicate bindings: validation refuses; the file's value stays.
	m["u-vs2"].Attrs["msExchServerBindings"] = []string{"127.0.0.1:2525:"}
	out3, _, evs := mergeOK(t, out2, m, owned2)
	if got := out3.Node("/LM/SmtpSvc/2").Text("ServerBindings"); got != "127.0.0.1:2526:" {
		t.Errorf("ServerBindings of VS 2 = %q, want the last good", got)
	}
	if len(evs) == 0 {
		t.Errorf("no event for the refused binding")
	}
}

// TestMergeRemovesNodeLeftEmpty reproduces ds2mb stopping between saving the
// metabase and saving its state: the replayed merge finds virtual server 2
// already in the file and records it as not created. When its directory
// object goes, the node must still go, not stay behind empty (an empty
// virtual server would take every default, ":25:" included), while a node
// that keeps a local property stays.
func TestMergeRemovesNodeLeftEmpty(t *testing.T) {
	m := baseMirror()
	written, _, _ := mergeOK(t, metabase.New(), m, nil) // the save whose state was lost
	written.Ensure("/LM/SmtpSvc/1", metabase.ClassServer).Set("PostmasterEmail", "pm@example.com")
	_, owned, _ := mergeOK(t, written, m, nil) // the replay, from the old state
	if owned["/lm/smtpsvc/2"] == nil || owned["/lm/smtpsvc/2"].Created {
		t.Fatalf("setup: the replay should own /LM/SmtpSvc/2 without having created it: %+v", owned["/lm/smtpsvc/2"])
	}
	for uuid, o := range m {
		if o.DN == vs2DN || o.DN == vs1DN {
			delete(m, uuid)
		}
	}
	out, _, evs := mergeOK(t, written, m, owned)
	if out.Node("/LM/SmtpSvc/2") != nil {
		t.Errorf("virtual server 2 left behind after its object was deleted:\n%s", out.Bytes())
	}
	if n := out.Node("/LM/SmtpSvc/1"); n == nil || n.Text("PostmasterEmail") != "pm@example.com" || n.Text("MaxRecipients") != "" {
		t.Errorf("virtual server 1 should keep only its local property: %v", n)
	}
	removed := false
	for _, e := range evs {
		if e.ID == EvNodeRemoved && e.Location == "/LM/SmtpSvc/2" {
			removed = true
		}
	}
	if !removed {
		t.Errorf("no node-removed event for /LM/SmtpSvc/2: %+v", evs)
	}
}
