package smtpsvc

import (
	"context"
	"fmt"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/ds2mb/ds2mb/metabase"
	"github.com/ds2mb/ds2mb/schema"
	"github.com/ds2mb/ds2mb/smtpsvc/events"
	"github.com/ds2mb/ds2mb/smtpsvc/pickup"
	"github.com/ds2mb/ds2mb/smtpsvc/status"
)

// testSinks registers the sink classes of these tests: test.Stamp adds a
// header "X-Stamp: <Name>" on transport events and then does what its
// Answer property says (continue, stop, panic, badmail, discard);
// test.Verb answers the verb X-TEST and advertises it in EHLO.
func testSinks() *events.Registry {
	r := events.NewRegistry()
	r.Register(events.Class{Name: "test.Stamp", Events: events.TransportChain, New: func(p map[string]string) (events.Sink, error) {
		name, answer := p["Name"], p["Answer"]
		return events.SinkFunc(func(ctx context.Context, ev *events.Event) events.Result {
			data, err := ev.Msg.Data()
			if err != nil {
				return events.Result{Err: err}
			}
			ev.Msg.SetData(append([]byte("X-Stamp: "+name+"\r\n"), data...))
			switch answer {
			case "stop":
				return events.Result{Status: events.Stop}
			case "panic":
				panic("a broken sink")
			case "badmail":
				ev.Msg.Status, ev.Msg.Reason = events.Badmail, "test.Stamp said so"
			case "discard":
				ev.Msg.Status = events.Discard
			}
			return events.Result{}
		}), nil
	}})
	r.Register(events.Class{Name: "test.Verb", Events: []events.Type{events.InboundCommand}, New: func(map[string]string) (events.Sink, error) {
		return events.SinkFunc(func(ctx context.Context, ev *events.Event) events.Result {
			switch ev.Command.Verb {
			case "EHLO":
				ev.Command.EHLO = append(ev.Command.EHLO, "X-TEST")
			case "X-TEST":
				ev.Reply = &events.Reply{Code: 250, Enhanced: "2.0.0", Text: "X-TEST " + ev.Command.Arg}
			}
			return events.Result{}
		}), nil
	}})
	return r
}

// binding is one event binding of a generated metabase.
type binding struct {
	event    events.Type
	id       string // {GUID}
	class    string
	priority int
	rule     string
	props    map[string]string
}

// addBindings puts bindings under virtual server 1.
func addBindings(t *metabase.Tree, bs ...binding) {
	for _, b := range bs {
		loc := schema.BindingLocation(1, b.event.CATID, b.id)
		n := t.Ensure(loc, metabase.ClassConfig)
		n.Set("SinkClass", b.class)
		n.Set("DisplayName", b.props["Name"])
		src := t.Ensure(loc+"/SourceProperties", metabase.ClassConfig)
		src.Set("Priority", fmt.Sprint(b.priority))
		if b.rule != "" {
			src.Set("Rule", b.rule)
		}
		sink := t.Ensure(loc+"/SinkProperties", metabase.ClassConfig)
		for k, v := range b.props {
			sink.Set(k, v)
		}
	}
}

func stamp(id string, prio int, name, answer string) binding {
	return binding{event: events.Submission, id: id, class: "test.Stamp", priority: prio,
		props: map[string]string{"Name": name, "Answer": answer}}
}

// mailbox waits for n messages in user0@example.com's Maildir and returns
// their contents.
func mailbox(t *testing.T, w *testWorker, n int) []string {
	t.Helper()
	var out []string
	for _, p := range waitFiles(t, filepath.Join(w.dir, "Mailroot", "vsi 1", "Mailbox", "example.com", "user0", "new"), "", n) {
		out = append(out, readFile(t, p))
	}
	return out
}

// Transport sinks run by priority, then binding ID; one that panics is
// skipped (the message still goes); a Stop at 100 keeps the sink at 200
// from running; what the sinks wrote is what is delivered.
func TestSinkOrderStopAndPanic(t *testing.T) {
	port := freePort(t)
	tr := tree(1, vsDef{n: 1, ports: []int{port}})
	addBindings(tr,
		stamp("{00000000-0000-0000-0000-00000000000D}", 200, "late", ""),
		stamp("{00000000-0000-0000-0000-00000000000C}", 100, "stopper", "stop"),
		stamp("{00000000-0000-0000-0000-00000000000A}", 100, "first", ""),
		stamp("{00000000-0000-0000-0000-00000000000B}", 50, "broken", "panic"),
	)
	w := startWorker(t, tr.Bytes(), func(o *Options) { o.Sinks = testSinks() })
	w.waitVersion(t, 1)
	if err := smtpSession(addr(port), 1); err != nil {
		t.Fatal(err)
	}
	got := mailbox(t, w, 1)[0]
	// Each sink prepends: the last to run is on top.
	if !strings.Contains(got, "X-Stamp: stopper\r\nX-Stamp: first\r\nX-Stamp: broken\r\n") {
		t.Errorf("stamps not in the order broken(50), first(100, ID …A), stopper(100, ID …C):\n%s", got)
	}
	if strings.Contains(got, "X-Stamp: late") {
		t.Errorf("the sink at priority 200 ran after a Stop at 100:\n%s", got)
	}
	st := w.waitStatus(t, "sink counts", func(s status.Status) bool { return s.Sinks.Failed == 1 })
	if st.Sinks.Stopped != 1 || st.Sinks.Bindings != 4 {
		t.Errorf("sink status %+v", st.Sinks)
	}
}

// A sink that sets the message status to Badmail puts the message in
// Badmail (the client still gets 250); one that discards drops it.
func TestSinkBadmailAndDiscard(t *testing.T) {
	port := freePort(t)
	tr := tree(1, vsDef{n: 1, ports: []int{port}})
	addBindings(tr, binding{event: events.Submission, id: "{00000000-0000-0000-0000-000000000001}", class: "test.Stamp",
		priority: 10, rule: "MAIL FROM=*@example.net", props: map[string]string{"Name": "bad", "Answer": "badmail"}})
	addBindings(tr, binding{event: events.Submission, id: "{00000000-0000-0000-0000-000000000002}", class: "test.Stamp",
		priority: 10, rule: "MAIL FROM=*@discard.test", props: map[string]string{"Name": "gone", "Answer": "discard"}})
	w := startWorker(t, tr.Bytes(), func(o *Options) { o.Sinks = testSinks() })
	w.waitVersion(t, 1)
	if err := smtpSession(addr(port), 1); err != nil { // from sender@example.net
		t.Fatalf("the client did not get 250: %v", err)
	}
	bads := waitFiles(t, filepath.Join(w.dir, "Mailroot", "vsi 1", "Badmail"), ".BAD", 1)
	if got := readFile(t, bads[0]); !strings.Contains(got, "X-Stamp: bad\r\n") || !strings.Contains(got, "Subject: message 0") {
		t.Errorf("Badmail copy is not the sink's version of the message:\n%s", got)
	}
	bdr := readFile(t, strings.TrimSuffix(bads[0], ".BAD")+".BDR")
	if !strings.Contains(bdr, "test.Stamp said so") {
		t.Errorf(".BDR lacks the sink's reason:\n%s", bdr)
	}

	c, err := smtp.Dial(addr(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail("x@discard.test", []string{"user0@example.com"}, strings.NewReader("Subject: drop me\r\n\r\nx\r\n")); err != nil {
		t.Fatalf("discarded message not answered 250: %v", err)
	}
	w.waitStatus(t, "one discarded, one in Badmail", func(s status.Status) bool { return s.Sinks.Discarded == 1 && s.Sinks.Badmail == 1 })
	if entries, _ := os.ReadDir(filepath.Join(w.dir, "Mailroot", "vsi 1", "Mailbox")); len(entries) != 0 {
		t.Errorf("something was delivered: %v", entries)
	}
	if entries, _ := os.ReadDir(filepath.Join(w.dir, "Mailroot", "vsi 1", "Queue")); len(entries) != 0 {
		t.Errorf("something was queued: %v", entries)
	}
}

// A custom verb: advertised in EHLO and answered by its sink; without the
// binding the server does not know it.
func TestSinkCustomVerb(t *testing.T) {
	port := freePort(t)
	tr := tree(1, vsDef{n: 1, ports: []int{port}})
	addBindings(tr, binding{event: events.InboundCommand, id: "{00000000-0000-0000-0000-000000000001}", class: "test.Verb",
		priority: 100, props: map[string]string{"Name": "verb"}})
	w := startWorker(t, tr.Bytes(), func(o *Options) { o.Sinks = testSinks() })
	w.waitVersion(t, 1)
	ask := func() (ehlo, answer string) {
		t.Helper()
		c, err := textproto.Dial("tcp", addr(port))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, _, err := c.ReadResponse(220); err != nil {
			t.Fatal(err)
		}
		c.PrintfLine("EHLO client.test")
		_, ehlo, err = c.ReadResponse(250)
		if err != nil {
			t.Fatal(err)
		}
		c.PrintfLine("X-TEST hello there")
		code, msg, _ := c.ReadResponse(0)
		return ehlo, fmt.Sprintf("%d %s", code, msg)
	}
	ehlo, answer := ask()
	if !strings.Contains(ehlo, "\nX-TEST") {
		t.Errorf("EHLO does not advertise X-TEST:\n%s", ehlo)
	}
	if answer != "250 2.0.0 X-TEST hello there" {
		t.Errorf("X-TEST answered %q", answer)
	}

	// The binding removed by a reload: the verb is unknown again.
	write(t, w.path, tree(2, vsDef{n: 1, ports: []int{port}}).Bytes())
	w.waitVersion(t, 2)
	ehlo, answer = ask()
	if strings.Contains(ehlo, "X-TEST") || !strings.HasPrefix(answer, "500") {
		t.Errorf("without the binding: EHLO %q, X-TEST answered %q", ehlo, answer)
	}
}

// A binding added while the worker runs applies to the next message,
// without a restart.
func TestSinkAddedByReload(t *testing.T) {
	port := freePort(t)
	w := startWorker(t, tree(1, vsDef{n: 1, ports: []int{port}}).Bytes(), func(o *Options) { o.Sinks = testSinks() })
	w.waitVersion(t, 1)
	if err := smtpSession(addr(port), 1); err != nil {
		t.Fatal(err)
	}
	mailbox(t, w, 1)
	tr := tree(2, vsDef{n: 1, ports: []int{port}})
	addBindings(tr, stamp("{00000000-0000-0000-0000-000000000001}", 100, "new", ""))
	write(t, w.path, tr.Bytes())
	w.waitVersion(t, 2)
	if err := smtpSession(addr(port), 1); err != nil {
		t.Fatal(err)
	}
	msgs := mailbox(t, w, 2)
	stamped := 0
	for _, m := range msgs {
		if strings.Contains(m, "X-Stamp: new\r\n") {
			stamped++
		}
	}
	if stamped != 1 {
		t.Errorf("%d of the 2 messages stamped, want the second only", stamped)
	}
}

// A binding whose class is not registered is left out with a note; the
// other bindings and the server run.
func TestSinkUnknownClassNoted(t *testing.T) {
	port := freePort(t)
	tr := tree(1, vsDef{n: 1, ports: []int{port}})
	addBindings(tr, binding{event: events.Submission, id: "{00000000-0000-0000-0000-000000000001}", class: "no.Such",
		priority: 1, props: map[string]string{"Name": "ghost"}}, stamp("{00000000-0000-0000-0000-000000000002}", 2, "real", ""))
	w := startWorker(t, tr.Bytes(), func(o *Options) { o.Sinks = testSinks() })
	st := w.waitVersion(t, 1)
	if len(st.Servers) != 1 || len(st.Servers[0].Notes) != 1 || !strings.Contains(st.Servers[0].Notes[0], `unknown sink class "no.Such"`) {
		t.Errorf("notes %v", st.Servers)
	}
	if err := smtpSession(addr(port), 1); err != nil {
		t.Fatal(err)
	}
	if got := mailbox(t, w, 1)[0]; !strings.Contains(got, "X-Stamp: real\r\n") {
		t.Errorf("the good binding did not run:\n%s", got)
	}

}

// The transport events fire on Pickup mail too, before it is spooled.
func TestSinkOnPickupMail(t *testing.T) {
	port := freePort(t)
	tr := tree(1, vsDef{n: 1, ports: []int{port}})
	addBindings(tr, stamp("{00000000-0000-0000-0000-000000000001}", 100, "pickup", ""))
	w := startWorker(t, tr.Bytes(), func(o *Options) {
		o.Sinks = testSinks()
		o.Pickup = pickup.Options{Poll: 100 * time.Millisecond, Settle: 10 * time.Millisecond}
	})
	w.waitVersion(t, 1)
	pick := filepath.Join(w.dir, "Mailroot", "vsi 1", "Pickup")
	if err := os.MkdirAll(pick, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pick, "m.eml"), []byte("From: a@example.org\nTo: user0@example.com\nSubject: p\n\nhi\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if got := mailbox(t, w, 1)[0]; !strings.Contains(got, "X-Stamp: pickup\r\nReceived: from Pickup folder") {
		t.Errorf("the Pickup message was not stamped by the transport sink:\n%s", got)
	}
}
