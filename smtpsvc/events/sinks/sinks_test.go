package sinks

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ds2mb/ds2mb/smtpsvc/events"
)

// quiet is a logger for sinks whose logging a test does not look at.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testRegistry is a registry with the built-in classes, DNS pointed at a
// loopback port nothing answers on unless a test says otherwise.
func testRegistry(t *testing.T, o Options) *events.Registry {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quiet
	}
	if o.DNSServers == nil {
		o.DNSServers = []string{"127.0.0.1:9"}
	}
	r := events.NewRegistry()
	Register(r, o)
	return r
}

// newSink makes the sink of one binding through the registry.
func newSink(t *testing.T, r *events.Registry, class string, props map[string]string) events.Sink {
	t.Helper()
	c, ok := r.Class(class)
	if !ok {
		t.Fatalf("class %s is not registered", class)
	}
	s, err := c.New(props)
	if err != nil {
		t.Fatalf("%s %v: %v", class, props, err)
	}
	return s
}

// rfc turns a message written with \n into one with CRLF line ends.
func rfc(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

// transportEvent is an OnArrival event carrying a message.
func transportEvent(from string, to []string, data []byte) *events.Event {
	m := events.NewMailMsg(from, to, func() ([]byte, error) { return data, nil })
	return &events.Event{Type: events.Submission, Instance: 1, Msg: m,
		Session: &events.Session{ID: "7", Remote: netip.MustParseAddr("127.0.0.1"), HELO: "client.test", Values: map[string]any{}}}
}

func TestRegisterClasses(t *testing.T) {
	r := testRegistry(t, Options{})
	var names []string
	for _, c := range r.Classes() {
		names = append(names, c.Name)
		if c.Doc == "" || len(c.Properties) == 0 {
			t.Errorf("%s: no Doc or Properties", c.Name)
		}
	}
	want := []string{"ds2mb.CustomVerb", "ds2mb.DNSBL", "ds2mb.Disclaimer", "ds2mb.EventLog", "ds2mb.HeaderStamp", "ds2mb.RecipientRewrite"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("classes %v, want %v", names, want)
	}
	checks := []struct {
		class string
		event events.Type
		ok    bool
	}{
		{"ds2mb.Disclaimer", events.Submission, true},
		{"ds2mb.Disclaimer", events.StoreDriver, true},
		{"ds2mb.Disclaimer", events.InboundCommand, false},
		{"ds2mb.HeaderStamp", events.PostCategorize, true},
		{"ds2mb.RecipientRewrite", events.PreCategorize, true},
		{"ds2mb.RecipientRewrite", events.StoreDriver, false}, // the queue ignores envelope changes there
		{"ds2mb.DNSBL", events.SessionStart, true},
		{"ds2mb.DNSBL", events.Submission, false},
		{"ds2mb.EventLog", events.TrackLog, true},
		{"ds2mb.CustomVerb", events.InboundCommand, true},
		{"ds2mb.CustomVerb", events.SessionStart, false},
	}
	for _, c := range checks {
		if err := r.Check(c.class, c.event); (err == nil) != c.ok {
			t.Errorf("Check(%s, %s) = %v, want ok=%v", c.class, c.event.Name, err, c.ok)
		}
	}
}

// Every class refuses bad properties with an error naming the property.
func TestBadProperties(t *testing.T) {
	r := testRegistry(t, Options{})
	cases := []struct {
		class string
		props map[string]string
		want  string // in the error
	}{
		{"ds2mb.Disclaimer", nil, "Text"},
		{"ds2mb.Disclaimer", map[string]string{"Text": "  "}, "Text"},
		{"ds2mb.Disclaimer", map[string]string{"Text": "x", "Txet": "y"}, "Txet"},
		{"ds2mb.Disclaimer", map[string]string{"Text": "x", "Separator": "a\nb"}, "Separator"},
		{"ds2mb.HeaderStamp", map[string]string{"Value": "v"}, "Name"},
		{"ds2mb.HeaderStamp", map[string]string{"Name": "X-A", "Value": " "}, "Value"},
		{"ds2mb.HeaderStamp", map[string]string{"Name": "X A", "Value": "v"}, "Name"},
		{"ds2mb.HeaderStamp", map[string]string{"Name": "X:A", "Value": "v"}, "Name"},
		{"ds2mb.HeaderStamp", map[string]string{"Name": "X-A", "Value": "v\r\nBcc: evil@x"}, "Value"},
		{"ds2mb.HeaderStamp", map[string]string{"Name": "X-A", "Value": "v\x00"}, "Value"},
		{"ds2mb.HeaderStamp", map[string]string{"Name": "X-A", "Value": "{sender}"}, "{sender}"},
		{"ds2mb.RecipientRewrite", map[string]string{"To": "*@new.example"}, "From"},
		{"ds2mb.RecipientRewrite", map[string]string{"From": "old.example", "To": "*@new.example"}, "From"},
		{"ds2mb.RecipientRewrite", map[string]string{"From": "*@old.example", "To": "a*@new.example"}, "To"},
		{"ds2mb.RecipientRewrite", map[string]string{"From": "*@*.old.example", "To": "*@new.example"}, "From"},
		{"ds2mb.DNSBL", nil, "Zones"},
		{"ds2mb.DNSBL", map[string]string{"Zones": " , "}, "Zones"},
		{"ds2mb.DNSBL", map[string]string{"Zones": "bl..test"}, "Zones"},
		{"ds2mb.DNSBL", map[string]string{"Zones": "bl.test", "LookupTimeout": "soon"}, "LookupTimeout"},
		{"ds2mb.DNSBL", map[string]string{"Zones": "bl.test", "Message": "250 2.0.0 fine"}, "Message"},
		{"ds2mb.DNSBL", map[string]string{"Zones": "bl.test", "Message": "554 4.7.1 mixed classes"}, "Message"},
		{"ds2mb.EventLog", map[string]string{"Level": "loud"}, "Level"},
		{"ds2mb.CustomVerb", map[string]string{"Verb": "X LINK"}, "Verb"},
		{"ds2mb.CustomVerb", map[string]string{"Reply": "OK"}, "Reply"},
		{"ds2mb.CustomVerb", map[string]string{"Reply": "700 too big"}, "Reply"},
	}
	for _, c := range cases {
		cl, _ := r.Class(c.class)
		_, err := cl.New(c.props)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %q: error %v, want one naming %s", c.class, c.props, err, c.want)
		}
	}
	// The dispatcher's own Timeout and any spelling of a known name pass.
	cl, _ := r.Class("ds2mb.Disclaimer")
	if _, err := cl.New(map[string]string{"text": "x", "Timeout": "2s"}); err != nil {
		t.Errorf("Timeout and a lower-case name refused: %v", err)
	}
}

func TestParseReply(t *testing.T) {
	cases := []struct {
		in   string
		want events.Reply
		ok   bool
	}{
		{"250 2.0.0 X-LINK2STATE OK", events.Reply{Code: 250, Enhanced: "2.0.0", Text: "X-LINK2STATE OK"}, true},
		{"554 5.7.1  blocked  ", events.Reply{Code: 554, Enhanced: "5.7.1", Text: "blocked"}, true},
		{"421 try later", events.Reply{Code: 421, Text: "try later"}, true},
		{"250", events.Reply{Code: 250}, true},
		{"250 ok\r\n550 injected", events.Reply{Code: 250, Text: "ok 550 injected"}, true}, // one line, whatever is written
		{"2500 x", events.Reply{}, false},
		{"199 x", events.Reply{}, false},
		{"550 2.0.0 x", events.Reply{}, false},
		{"550 5.7 x", events.Reply{Code: 550, Text: "5.7 x"}, true},
		{"550 5.x.1 x", events.Reply{}, false},
		{"", events.Reply{}, false},
	}
	for _, c := range cases {
		got, err := parseReply(c.in)
		if (err == nil) != c.ok || c.ok && got != c.want {
			t.Errorf("parseReply(%q) = %+v, %v; want %+v ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestSystemServers(t *testing.T) {
	dir := t.TempDir()
	conf := dir + "/resolv.conf"
	if err := os.WriteFile(conf, []byte("# test\nnameserver 127.0.0.53\nnameserver ::1\noptions edns0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, want := systemServers(conf), []string{"127.0.0.53:53", "[::1]:53"}; !reflect.DeepEqual(got, want) {
		t.Errorf("servers %v, want %v", got, want)
	}
	if got := systemServers(dir + "/none"); !reflect.DeepEqual(got, []string{"127.0.0.1:53"}) {
		t.Errorf("without a resolv.conf: %v", got)
	}
}

func TestHeaderStamp(t *testing.T) {
	now := time.Date(2003, 3, 4, 10, 15, 0, 0, time.FixedZone("", 3600))
	r := testRegistry(t, Options{Now: func() time.Time { return now }})
	msg := rfc("Received: from client.test\nSubject: hi\n\nbody\n")
	cases := []struct {
		value string
		from  string
		want  string
	}{
		{"checked", "a@x.example", "X-Stamp: checked\r\n"},
		{"vs={instance} from={from} rcpts={rcpts} client={client}", "a@x.example", "X-Stamp: vs=1 from=a@x.example rcpts=2 client=127.0.0.1\r\n"},
		{"{FROM}", "", "X-Stamp: <>\r\n"},
		{"at {date}", "a@x.example", "X-Stamp: at Tue, 04 Mar 2003 10:15:00 +0100\r\n"},
	}
	for _, c := range cases {
		s := newSink(t, r, "ds2mb.HeaderStamp", map[string]string{"Name": "X-Stamp", "Value": c.value})
		ev := transportEvent(c.from, []string{"b@y.example", "c@y.example"}, msg)
		if res := s.Fire(context.Background(), ev); res.Err != nil || res.Status != events.Continue {
			t.Fatalf("%q: %+v", c.value, res)
		}
		got, _ := ev.Msg.Data()
		if want := c.want + string(msg); string(got) != want {
			t.Errorf("%q:\n got %q\nwant %q", c.value, got, want)
		}
	}
	// Without a session {client} comes from the envelope field.
	s := newSink(t, r, "ds2mb.HeaderStamp", map[string]string{"Name": "X-Client", "Value": "{client}"})
	ev := transportEvent("a@x.example", nil, msg)
	ev.Session = nil
	ev.Msg.Fields["clientipaddress"] = "127.0.0.9"
	s.Fire(context.Background(), ev)
	if got, _ := ev.Msg.Data(); !bytes.HasPrefix(got, []byte("X-Client: 127.0.0.9\r\nReceived:")) {
		t.Errorf("pickup stamp: %q", got)
	}
	// An expanded value that would inject a field is refused, the message unchanged.
	s = newSink(t, r, "ds2mb.HeaderStamp", map[string]string{"Name": "X-From", "Value": "{from}"})
	ev = transportEvent("a@x.example\r\nBcc: victim@y.example", nil, msg)
	if res := s.Fire(context.Background(), ev); res.Err == nil || ev.Msg.Changed() {
		t.Errorf("CRLF in the sender: %+v, changed %v", res, ev.Msg.Changed())
	}
}

func TestRecipientRewrite(t *testing.T) {
	r := testRegistry(t, Options{})
	cases := []struct {
		name, from, to string
		rcpts, params  []string
		wantTo         []string
		wantParams     []string
	}{
		{"domain to domain", "*@old.example", "*@new.example",
			[]string{"ann@OLD.example", "bob@other.example", "carl@old.example.net"}, []string{"NOTIFY=NEVER", "", "ORCPT=rfc822;carl@old.example.net"},
			[]string{"ann@new.example", "bob@other.example", "carl@old.example.net"}, []string{"NOTIFY=NEVER", "", "ORCPT=rfc822;carl@old.example.net"}},
		{"dedupe keeps the first's parameters", "*@old.example", "*@new.example",
			[]string{"ann@new.example", "bob@x.example", "Ann@old.example", "dave@old.example"}, []string{"P1", "P2", "P3", "P4"},
			[]string{"ann@new.example", "bob@x.example", "dave@new.example"}, []string{"P1", "P2", "P4"}},
		{"exact to exact", "postmaster@old.example", "admin@new.example",
			[]string{"PostMaster@old.example", "ann@old.example"}, nil,
			[]string{"admin@new.example", "ann@old.example"}, nil},
		{"domain to one address", "*@old.example", "catchall@new.example",
			[]string{"a@old.example", "b@old.example", "c@new.example"}, []string{"1", "2", "3"},
			[]string{"catchall@new.example", "c@new.example"}, []string{"1", "3"}},
		{"exact keeping the local part", "ann@old.example", "*@new.example",
			[]string{"ann@old.example", "bob@old.example"}, []string{"1", "2"},
			[]string{"ann@new.example", "bob@old.example"}, []string{"1", "2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSink(t, r, "ds2mb.RecipientRewrite", map[string]string{"From": c.from, "To": c.to})
			ev := transportEvent("s@x.example", append([]string(nil), c.rcpts...), rfc("Subject: x\n\nbody\n"))
			ev.Msg.ToParams = c.params
			s.Fire(context.Background(), ev)
			if !reflect.DeepEqual(ev.Msg.To, c.wantTo) || !reflect.DeepEqual(ev.Msg.ToParams, c.wantParams) {
				t.Errorf("To %q params %q; want %q %q", ev.Msg.To, ev.Msg.ToParams, c.wantTo, c.wantParams)
			}
			if ev.Msg.Changed() {
				t.Error("the content changed; only the envelope may")
			}
		})
	}
}

func TestEventLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	r := testRegistry(t, Options{Logger: log})
	info := newSink(t, r, "ds2mb.EventLog", nil)
	debug := newSink(t, r, "ds2mb.EventLog", map[string]string{"Level": "debug"})
	warn := newSink(t, r, "ds2mb.EventLog", map[string]string{"level": "WARN"})
	sess := &events.Session{ID: "12", Remote: netip.MustParseAddr("127.0.0.5"), HELO: "client.test"}
	cases := []struct {
		sink    events.Sink
		ev      *events.Event
		want    []string
		notWant []string
	}{
		{info, &events.Event{Type: events.InboundCommand, Instance: 2, Session: sess, Command: &events.Command{Verb: "MAIL", Arg: "FROM:<a@x.example>"}},
			[]string{"level=INFO", "event=OnInboundCommand", "instance=2", "session=12", "remote=127.0.0.5", "helo=client.test", "verb=MAIL", "arg=FROM:<a@x.example>"}, nil},
		{info, &events.Event{Type: events.InboundCommand, Session: sess, Command: &events.Command{Verb: "AUTH", Arg: "PLAIN AGFubgBzZWNyZXQ="}},
			[]string{"verb=AUTH"}, []string{"AGFubgBzZWNyZXQ", "arg="}},
		{warn, transportEvent("a@x.example", []string{"b@y", "c@y"}, nil),
			[]string{"level=WARN", "event=OnArrival", "from=a@x.example", "rcpts=2", "status=deliver"}, nil},
		{info, &events.Event{Type: events.TrackLog, Log: &events.LogRecord{Event: "delivered", ID: "q1", From: "a@x", Rcpt: "b@y", Detail: "250 ok"}},
			[]string{"event=MsgTrackLog", "record.event=delivered", "record.id=q1", "record.rcpt=b@y", `record.detail="250 ok"`}, nil},
		{info, &events.Event{Type: events.ServerResponse, Session: sess, Response: &events.Response{Code: 354}}, []string{"code=354"}, nil},
		{info, &events.Event{Type: events.PerRecipient, Session: sess, Rcpt: "b@y.example"}, []string{"rcpt=b@y.example"}, nil},
		{debug, &events.Event{Type: events.SessionEnd, Session: sess}, nil, []string{"SessionEnd"}}, // below the handler's level
	}
	for i, c := range cases {
		buf.Reset()
		if res := c.sink.Fire(context.Background(), c.ev); res != (events.Result{}) {
			t.Errorf("case %d: %+v", i, res)
		}
		line := buf.String()
		if c.want != nil && strings.Count(line, "\n") != 1 {
			t.Errorf("case %d: %d lines: %q", i, strings.Count(line, "\n"), line)
		}
		for _, w := range c.want {
			if !strings.Contains(line, w) {
				t.Errorf("case %d: %q lacks %s", i, line, w)
			}
		}
		for _, w := range c.notWant {
			if strings.Contains(line, w) {
				t.Errorf("case %d: %q has %s", i, line, w)
			}
		}
	}
}

func TestCustomVerb(t *testing.T) {
	r := testRegistry(t, Options{})
	def := newSink(t, r, "ds2mb.CustomVerb", nil)
	custom := newSink(t, r, "ds2mb.CustomVerb", map[string]string{"Verb": "x-ds2mb-ping", "Reply": "250 pong"})
	sess := &events.Session{ID: "1", Remote: netip.MustParseAddr("127.0.0.1"), Values: map[string]any{}}
	fire := func(s events.Sink, verb string, ehlo []string) *events.Event {
		ev := &events.Event{Type: events.InboundCommand, Session: sess, Command: &events.Command{Verb: verb, EHLO: ehlo}}
		if res := s.Fire(context.Background(), ev); res != (events.Result{}) {
			t.Errorf("%s: %+v", verb, res)
		}
		return ev
	}
	ehlo := []string{"mail.test Hello [127.0.0.1]", "PIPELINING", "8BITMIME"}
	ev := fire(def, "EHLO", ehlo)
	ev = fire(custom, "EHLO", ev.Command.EHLO)
	ev = fire(def, "EHLO", ev.Command.EHLO) // a second binding of the same verb adds nothing
	want := []string{"mail.test Hello [127.0.0.1]", "PIPELINING", "8BITMIME", "X-LINK2STATE", "X-DS2MB-PING"}
	if !reflect.DeepEqual(ev.Command.EHLO, want) || ev.Reply != nil {
		t.Errorf("EHLO lines %q reply %v; want %q", ev.Command.EHLO, ev.Reply, want)
	}
	if ev := fire(def, "EHLO", []string{"iis.test Hello [127.0.0.1]", "SIZE 2097152", "OK"}); !reflect.DeepEqual(ev.Command.EHLO,
		[]string{"iis.test Hello [127.0.0.1]", "SIZE 2097152", "X-LINK2STATE", "OK"}) {
		t.Errorf("IIS-style EHLO: %q", ev.Command.EHLO)
	}
	if ev := fire(def, "EHLO", nil); ev.Command.EHLO != nil { // the command hook's EHLO, before the lines exist
		t.Errorf("EHLO without lines: %q", ev.Command.EHLO)
	}
	for i := 1; i <= 2; i++ {
		ev := fire(def, "X-LINK2STATE", nil)
		if ev.Reply == nil || *ev.Reply != (events.Reply{Code: 250, Enhanced: "2.0.0", Text: "X-LINK2STATE OK"}) {
			t.Errorf("X-LINK2STATE reply %+v", ev.Reply)
		}
		if n := sess.Values[CustomVerbKey("X-LINK2STATE")]; n != i {
			t.Errorf("count %v after %d uses", n, i)
		}
	}
	if ev := fire(custom, "X-DS2MB-PING", nil); ev.Reply == nil || *ev.Reply != (events.Reply{Code: 250, Text: "pong"}) {
		t.Errorf("custom reply %+v", ev.Reply)
	}
	if ev := fire(def, "MAIL", nil); ev.Reply != nil {
		t.Errorf("MAIL answered: %+v", ev.Reply)
	}
	if n := sess.Values[CustomVerbKey("x-ds2mb-ping")]; n != 1 {
		t.Errorf("custom count %v", n)
	}
}
