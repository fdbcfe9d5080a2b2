package events

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestRuleMatch(t *testing.T) {
	sess := &Session{HELO: "mx1.Contoso.com", MailFrom: "ann@x.com", Rcpts: []string{"bob@y.com", "carl@z.com"}}
	cases := []struct {
		rule string
		ev   *Event
		want bool
	}{
		{"", &Event{}, true},
		{"EHLO=*.contoso.com", &Event{Session: sess}, true},
		{"ehlo=*.fabrikam.com", &Event{Session: sess}, false},
		{"HELO=mx?.contoso.com", &Event{Session: sess}, true},
		{"EHLO=*", &Event{Session: &Session{}}, false}, // no HELO yet
		{"EHLO=*.contoso.com", &Event{Command: &Command{Verb: "EHLO", Arg: "a.contoso.com"}}, true},
		{"MAIL FROM=*@x.com", &Event{Session: sess}, true},
		{"MAIL FROM=*@x.com;RCPT TO=*@y.com", &Event{Session: sess}, true},
		{"MAIL FROM=*@x.com;RCPT TO=*@w.com", &Event{Session: sess}, false},   // AND
		{"RCPT TO=*@w.com,*@z.com", &Event{Session: sess}, true},              // OR within a clause
		{"RCPT TO=*@y.com", &Event{Session: sess, Rcpt: "carl@z.com"}, false}, // the recipient of OnPerRecipient
		{"RCPT TO=*@y.com", &Event{Msg: &MailMsg{From: "a@b", To: []string{"BOB@Y.COM"}}}, true},
		{"MAIL FROM=*@x.com", &Event{Msg: &MailMsg{From: ""}}, false},
		{"MAIL FROM=*", &Event{Msg: &MailMsg{From: ""}}, true}, // "*" matches the null sender
		// in a transaction from the null sender (a DSN arriving), before
		// the message exists: OnPerRecipient, RCPT, DATA.
		{"MAIL FROM=*", &Event{Session: &Session{InTx: true}, Rcpt: "bob@y.com"}, true},
		{"MAIL FROM=*@x.com", &Event{Session: &Session{InTx: true}, Rcpt: "bob@y.com"}, false},
		{"MAIL FROM=*", &Event{Session: &Session{}}, false}, // no MAIL yet
		{"RCPT TO=user@[127.0.0.1]", &Event{Rcpt: "user@[127.0.0.1]"}, true},
		{"RCPT TO=a/b@c", &Event{Rcpt: "a/b@c"}, true},
		{"RCPT TO=*", &Event{Session: &Session{}}, false}, // nobody yet
		// OnInboundCommand: the MAIL or RCPT command being given, not the
		// transaction so far.
		{"RCPT TO=*@w.com", &Event{Session: sess, Command: &Command{Verb: "RCPT", Arg: "TO:<dan@W.com> NOTIFY=NEVER"}}, true},
		{"RCPT TO=*@y.com", &Event{Session: sess, Command: &Command{Verb: "RCPT", Arg: "TO:<dan@w.com>"}}, false},
		{"MAIL FROM=*@q.com", &Event{Session: &Session{}, Command: &Command{Verb: "MAIL", Arg: "FROM:<eve@q.com> SIZE=100"}}, true},
		{"MAIL FROM=*@q.com", &Event{Session: &Session{}, Command: &Command{Verb: "MAIL", Arg: "from: eve@r.com"}}, false},
		{"MAIL FROM=*@x.com", &Event{Session: sess, Command: &Command{Verb: "RSET"}}, true}, // other commands: the transaction
	}
	for _, c := range cases {
		r, err := ParseRule(c.rule)
		if err != nil {
			t.Fatalf("%q: %v", c.rule, err)
		}
		if got := r.Match(c.ev); got != c.want {
			t.Errorf("rule %q on %+v: %v, want %v", c.rule, c.ev, got, c.want)
		}
	}
	if _, err := ParseRule("FROM=x"); err == nil {
		t.Error("a rule with an unknown command parsed")
	}
}

func TestGlob(t *testing.T) {
	for _, c := range []struct {
		p, s string
		want bool
	}{
		{"*", "", true}, {"a*b", "ab", true}, {"a*b", "aXXb", true}, {"a*b", "aXXc", false},
		{"*@x.com", "u@x.com", true}, {"*@x.com", "u@x.com.evil", false}, {"?", "", false},
		{"a*b*c", "abxbxc", true}, {"*a", "bbbba", true}, {"**", "x", true},
	} {
		if got := glob(c.p, c.s); got != c.want {
			t.Errorf("glob(%q, %q) = %v", c.p, c.s, got)
		}
	}
}

// recorder is a sink class that appends its binding name to ev.Msg.Fields["ran"]
// and answers what its "answer" property says.
func testRegistry(t *testing.T) *Registry {
	r := NewRegistry()
	r.Register(Class{Name: "test.Answer", New: func(props map[string]string) (Sink, error) {
		name := props["name"]
		answer := props["answer"]
		return SinkFunc(func(ctx context.Context, ev *Event) Result {
			ev.Msg.Fields["ran"] += name + " "
			switch answer {
			case "stop":
				return Result{Status: Stop}
			case "panic":
				panic("sink bug")
			case "error":
				return Result{Err: errors.New("broken")}
			case "pending-stop":
				ch := make(chan Status, 1)
				go func() { time.Sleep(10 * time.Millisecond); ch <- Stop }()
				return Result{Status: Pending, Done: ch}
			case "pending-never":
				return Result{Status: Pending, Done: make(chan Status)}
			}
			return Result{}
		}), nil
	}})
	r.Register(Class{Name: "test.ProtocolOnly", Events: []Type{SessionStart}, New: func(map[string]string) (Sink, error) {
		return SinkFunc(func(context.Context, *Event) Result { return Result{} }), nil
	}})
	r.Register(Class{Name: "test.Picky", New: func(map[string]string) (Sink, error) {
		return nil, errors.New("needs Text")
	}})
	return r
}

func bind(id string, prio int, name, answer string) Binding {
	return Binding{Location: "/LM/SmtpSvc/1/EventManager/EventTypes/" + Submission.CATID + "/Bindings/" + id, Event: Submission,
		ID: id, DisplayName: name, SinkClass: "test.Answer", Enabled: true, Priority: prio,
		Props: map[string]string{"name": name, "answer": answer}}
}

func fire(t *testing.T, d *Dispatcher) (string, Outcome) {
	t.Helper()
	ev := &Event{Type: Submission, Msg: NewMailMsg("a@x.com", []string{"b@y.com"}, nil)}
	out := d.Fire(context.Background(), ev)
	return ev.Msg.Fields["ran"], out
}

func TestDispatchOrder(t *testing.T) {
	reg := testRegistry(t)
	disabled := bind("{00000000-0000-0000-0000-000000000005}", 1, "off", "")
	disabled.Enabled = false
	limited := bind("{00000000-0000-0000-0000-000000000006}", 50, "twice", "")
	limited.MaxFirings = 2
	ruled := bind("{00000000-0000-0000-0000-000000000007}", 60, "other-sender", "")
	ruled.Rule, _ = ParseRule("MAIL FROM=*@other.com")
	cases := []struct {
		name     string
		bindings []Binding
		fires    int
		want     string
		stopped  string
		failures int
	}{
		{"priority then ID", []Binding{
			bind("{00000000-0000-0000-0000-000000000003}", 200, "c", ""),
			bind("{00000000-0000-0000-0000-000000000002}", 100, "b", ""),
			bind("{00000000-0000-0000-0000-000000000001}", 100, "a", ""),
		}, 1, "a b c ", "", 0},
		{"stop at 100 keeps 200 from running", []Binding{
			bind("{00000000-0000-0000-0000-000000000001}", 200, "late", ""),
			bind("{00000000-0000-0000-0000-000000000002}", 100, "stopper", "stop"),
		}, 1, "stopper ", "stopper", 0},
		{"disabled and rule", []Binding{disabled, ruled, bind("{00000000-0000-0000-0000-000000000001}", 5, "on", "")}, 1, "on ", "", 0},
		{"MaxFirings", []Binding{limited}, 3, "twice ", "", 0}, // third firing: nothing ran
		{"panic and error are skipped", []Binding{
			bind("{00000000-0000-0000-0000-000000000001}", 1, "p", "panic"),
			bind("{00000000-0000-0000-0000-000000000002}", 2, "e", "error"),
			bind("{00000000-0000-0000-0000-000000000003}", 3, "ok", ""),
		}, 1, "p e ok ", "", 2},
		{"pending answers stop", []Binding{
			bind("{00000000-0000-0000-0000-000000000001}", 1, "wait", "pending-stop"),
			bind("{00000000-0000-0000-0000-000000000002}", 2, "late", ""),
		}, 1, "wait ", "wait", 0},
		{"pending past its deadline is skipped", []Binding{
			func() Binding {
				b := bind("{00000000-0000-0000-0000-000000000001}", 1, "slow", "pending-never")
				b.Props["Timeout"] = "20ms"
				return b
			}(),
			bind("{00000000-0000-0000-0000-000000000002}", 2, "next", ""),
		}, 1, "slow next ", "", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, probs := Build(c.bindings, Options{Registry: reg})
			if len(probs) > 0 {
				t.Fatal(probs)
			}
			var ran string
			var out Outcome
			for i := 0; i < c.fires; i++ {
				var r string
				r, out = fire(t, d)
				if i < 2 || c.fires == 1 {
					ran = r
				} else if r != "" {
					t.Errorf("firing %d ran %q, want nothing (MaxFirings)", i+1, r)
				}
			}
			if ran != c.want || out.StoppedBy != c.stopped || len(out.Failures) != c.failures {
				t.Errorf("ran %q stopped by %q failures %v; want %q, %q, %d", ran, out.StoppedBy, out.Failures, c.want, c.stopped, c.failures)
			}
		})
	}
}

func TestBuildProblems(t *testing.T) {
	reg := testRegistry(t)
	unknown := bind("{00000000-0000-0000-0000-000000000001}", 1, "u", "")
	unknown.SinkClass = "no.Such"
	wrongEvent := bind("{00000000-0000-0000-0000-000000000002}", 1, "w", "")
	wrongEvent.SinkClass = "test.ProtocolOnly"
	picky := bind("{00000000-0000-0000-0000-000000000003}", 1, "p", "")
	picky.SinkClass = "test.Picky"
	badTimeout := bind("{00000000-0000-0000-0000-000000000004}", 1, "t", "")
	badTimeout.Props["timeout"] = "soon"
	good := bind("{00000000-0000-0000-0000-000000000005}", 1, "g", "")
	d, probs := Build([]Binding{unknown, wrongEvent, picky, badTimeout, good}, Options{Registry: reg})
	var got []string
	for _, p := range probs {
		got = append(got, p.Property)
	}
	if want := []string{"SinkClass", "SinkClass", "SinkProperties", "SinkProperties"}; !reflect.DeepEqual(got, want) {
		t.Errorf("problems %v, want properties %v", probs, want)
	}
	if d.Len() != 1 || !d.Has(Submission) || d.Has(SessionStart) {
		t.Errorf("dispatcher has %d bindings", d.Len())
	}
	var nilD *Dispatcher
	if nilD.Has(Submission) || len(nilD.Fire(context.Background(), &Event{Type: Submission}).Ran) != 0 {
		t.Error("a nil dispatcher fired")
	}
}

// MaxFirings holds across Dispatchers that share Firings (a reload).
func TestFiringsAcrossRebuild(t *testing.T) {
	reg := testRegistry(t)
	f := NewFirings()
	b := bind("{00000000-0000-0000-0000-000000000001}", 1, "once", "")
	b.MaxFirings = 1
	d1, _ := Build([]Binding{b}, Options{Registry: reg, Firings: f})
	if ran, _ := fire(t, d1); ran != "once " {
		t.Fatalf("first firing ran %q", ran)
	}
	d2, _ := Build([]Binding{b}, Options{Registry: reg, Firings: f})
	if ran, _ := fire(t, d2); ran != "" {
		t.Errorf("after a rebuild the binding fired again: %q", ran)
	}
}

func TestHeaderValue(t *testing.T) {
	msg := []byte("Subject: a\r\n b\r\nContent-Type: multipart/signed;\r\n\tprotocol=x\r\n\r\nSubject: body\r\n")
	if got := HeaderValue(msg, "subject"); got != "a b" {
		t.Errorf("Subject %q", got)
	}
	if got := HeaderValue(msg, "Content-Type"); got != "multipart/signed;\tprotocol=x" {
		t.Errorf("Content-Type %q", got)
	}
	if got := HeaderValue(msg, "X-None"); got != "" {
		t.Errorf("X-None %q", got)
	}
}
