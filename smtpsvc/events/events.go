// Package events is the SMTP worker's event-sink dispatcher, the Go form
// of IIS's Server Extension Objects (REFERENCE.md §5).
//
// A binding (metabase …/EventManager/EventTypes/{CATID}/Bindings/{ID})
// names an event type, a sink class, whether it is enabled, how often it
// may fire (MaxFirings), a priority and a rule, and carries sink
// properties. Sink classes are Go types registered by name in a Registry,
// explicitly by the main package (no init() magic); a binding makes one
// Sink of its class from its sink properties. Build turns a virtual
// server's bindings into a Dispatcher; the worker builds a new one on
// every reload.
//
// Fire runs the bindings of one event whose rule matches the event, lowest
// priority number first, ties by binding ID. A sink answers Continue (the
// next one runs) or Stop (no later sink runs for this event), or Pending
// with the answer to come on a channel: the dispatcher waits for it up to
// the binding's deadline. A sink that panics, returns an error or misses
// its deadline is recorded (Outcome.Failures, the log, Stats) and skipped:
// the event goes on and no message is lost because of it.
//
// Events carry what their sinks may see and change: the session (remote
// address, HELO, authenticated user), the command or response (inbound
// command sinks may answer a command themselves, which is how a sink adds
// a verb, and may rewrite the EHLO reply), and for message events a
// MailMsg, the envelope and content that sinks may rewrite, and whose
// Status decides after the transport events whether the message is
// delivered, discarded or put in Badmail.
package events

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/ds2mb/ds2mb/schema"
)

// Type is an event type: its smtpreg name, CATID and kind.
type Type = schema.EventType

// Lookup finds an event type by smtpreg name or CATID (schema.LookupEvent).
func Lookup(s string) (Type, bool) { return schema.LookupEvent(s) }

// MustLookup is Lookup for the names this package and its callers know.
func MustLookup(name string) Type {
	t, ok := Lookup(name)
	if !ok {
		panic("events: unknown event type " + name)
	}
	return t
}

// The event types the worker fires.
var (
	SessionStart     = MustLookup("OnSessionStart")
	InboundCommand   = MustLookup("OnInboundCommand")
	ServerResponse   = MustLookup("OnServerResponse")
	MessageStart     = MustLookup("OnMessageStart")
	PerRecipient     = MustLookup("OnPerRecipient")
	BeforeData       = MustLookup("OnBeforeData")
	SessionEnd       = MustLookup("OnSessionEnd")
	Submission       = MustLookup("OnArrival") // OnTransportSubmission
	PreCategorize    = MustLookup("OnPreCategorize")
	Categorize       = MustLookup("OnCategorize")
	PostCategorize   = MustLookup("OnPostCategorize")
	GetMessageRouter = MustLookup("OnTransportRouter")
	StoreDriver      = MustLookup("StoreDriver") // local delivery
	TrackLog         = MustLookup("MsgTrackLog") // the system (log) event
)

// TransportChain is the order in which the transport events fire on an
// accepted message, before it is queued.
var TransportChain = []Type{Submission, PreCategorize, Categorize, PostCategorize, GetMessageRouter}

// Status is a sink's answer.
type Status int

// Sink answers.
const (
	Continue Status = iota // S_OK: the next sink runs
	Stop                   // S_FALSE: no later sink runs for this event
	Pending                // the answer comes on Result.Done
)

func (s Status) String() string {
	switch s {
	case Continue:
		return "continue"
	case Stop:
		return "stop"
	case Pending:
		return "pending"
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// Result is what a sink returns from Fire.
type Result struct {
	Status Status
	// Done delivers the final answer (Continue or Stop) of a Pending sink;
	// the sink must not touch the event after sending it. If no answer
	// comes before the binding's deadline the sink is recorded as timed
	// out and the event goes on as if it had answered Continue; what the
	// sink changes after that is ignored only by convention, so sinks
	// that go pending should work on copies until they answer.
	Done <-chan Status
	Err  error // a failure: recorded, and the event goes on
}

// Sink is one binding's instance of a sink class.
type Sink interface {
	Fire(ctx context.Context, ev *Event) Result
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(ctx context.Context, ev *Event) Result

// Fire calls f.
func (f SinkFunc) Fire(ctx context.Context, ev *Event) Result { return f(ctx, ev) }

// Event is one firing: the type, and what its sinks may see and change.
type Event struct {
	Type     Type
	Instance int      // virtual server
	Session  *Session // the SMTP session; nil for mail from Pickup and the server's own
	// Command is the inbound command (OnInboundCommand, OnBeforeData).
	Command *Command
	// Response is the reply about to be sent (OnServerResponse); sinks
	// may change it.
	Response *Response
	// Rcpt is the recipient of OnPerRecipient.
	Rcpt string
	// Msg is the message of message events: envelope only at
	// OnMessageStart; envelope and content in transport and store events.
	Msg *MailMsg
	// Log is the record of the log event (MsgTrackLog).
	Log *LogRecord
	// Reply, set by a sink of a protocol event, is sent to the client
	// instead of the server's own reply: an answer to a command (a verb
	// the server does not know), or a refusal (a 5xx to RCPT).
	Reply *Reply
}

// Session is what an SMTP session shows its sinks.
type Session struct {
	ID       string // unique in the process
	Remote   netip.Addr
	HELO     string // "" before HELO/EHLO
	TLS      bool
	AuthUser string
	MailFrom string   // of the transaction under way; "" before MAIL and for the null sender
	InTx     bool     // MAIL was accepted: a transaction is under way (tells the null sender from none)
	Rcpts    []string // accepted so far in the transaction
	// Values hold per-session state of sinks (a custom verb's handshake),
	// keyed by whatever the sink chooses. Sessions are single-threaded.
	Values map[string]any
}

// Command is an inbound command.
type Command struct {
	Verb string // upper case: "EHLO", "MAIL", "X-LINK2STATE"
	Arg  string
	// EHLO holds, for EHLO, the reply lines the server is about to send
	// (the greeting line first, then one keyword per line); sinks may add,
	// remove or rewrite them.
	EHLO []string
}

// Response is a server reply.
type Response struct {
	Code     int
	Enhanced string // "2.0.0"; "" when the reply has none
	Text     []string
}

// Reply is a sink's own answer to the client.
type Reply struct {
	Code     int
	Enhanced string // "5.7.1"; "" for none
	Text     string
}

// LogRecord is what the log event carries: one line of message tracking.
type LogRecord struct {
	Event  string // "accepted", "delivered", "deferred", "failed", "badmail", "discarded"
	ID     string // queue id
	From   string
	Rcpt   string
	Detail string
}

// MsgStatus is what becomes of a message after the transport events.
type MsgStatus int

// Message outcomes (CDO's messagestatus: cdoStatSuccess, cdoStatAbortDelivery, cdoStatBadMail).
const (
	Deliver MsgStatus = iota
	Discard
	Badmail
)

func (s MsgStatus) String() string {
	switch s {
	case Deliver:
		return "deliver"
	case Discard:
		return "discard"
	case Badmail:
		return "badmail"
	}
	return "unknown"
}

// MailMsg is a message as sinks see it: envelope, content, fields and the
// status that decides its fate.
type MailMsg struct {
	From       string   // reverse path; "" = null
	FromParams string   // MAIL parameters
	To         []string // recipients
	ToParams   []string // RCPT parameters per recipient
	// Pickup is the Pickup file name of mail that came from there.
	Pickup string
	// Status, with Reason, decides after the transport events: deliver,
	// discard (dropped, counted and logged) or Badmail.
	Status MsgStatus
	Reason string
	// Fields are envelope fields in CDO's spirit ("clientipaddress",
	// "arrivaltime", …), for sinks to read and leave notes in.
	Fields map[string]string

	load    func() ([]byte, error)
	data    []byte
	loaded  bool
	changed bool
}

// NewMailMsg makes a message whose content load reads when a sink first
// asks for it.
func NewMailMsg(from string, to []string, load func() ([]byte, error)) *MailMsg {
	return &MailMsg{From: from, To: to, load: load, Fields: map[string]string{}}
}

// Data returns the message content (RFC 5322, CRLF line ends).
func (m *MailMsg) Data() ([]byte, error) {
	if !m.loaded {
		if m.load == nil {
			return nil, nil
		}
		d, err := m.load()
		if err != nil {
			return nil, err
		}
		m.data, m.loaded = d, true
	}
	return m.data, nil
}

// SetData replaces the message content.
func (m *MailMsg) SetData(d []byte) {
	m.data, m.loaded, m.changed = d, true, true
}

// Changed reports whether a sink replaced the content.
func (m *MailMsg) Changed() bool { return m.changed }

// Header returns the first value of a header field of the content, ""
// when it has none (a convenience for sinks; folded values are unfolded).
func (m *MailMsg) Header(name string) string {
	d, err := m.Data()
	if err != nil {
		return ""
	}
	return HeaderValue(d, name)
}

// HeaderValue returns the first value of a header field in a message.
func HeaderValue(msg []byte, name string) string {
	hdr := HeaderSection(msg)
	lines := strings.Split(string(hdr), "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimRight(lines[i], "\r")
		n, v, ok := strings.Cut(l, ":")
		if !ok || l == "" || l[0] == ' ' || l[0] == '\t' || !strings.EqualFold(strings.TrimSpace(n), name) {
			continue
		}
		for i+1 < len(lines) && len(lines[i+1]) > 0 && (lines[i+1][0] == ' ' || lines[i+1][0] == '\t') {
			i++
			v += strings.TrimRight(lines[i], "\r")
		}
		return strings.TrimSpace(v)
	}
	return ""
}

// HeaderSection returns the header section of a message, its final blank
// line excluded (the whole message when it has no blank line).
func HeaderSection(msg []byte) []byte {
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return msg[:i+2]
	}
	if i := bytes.Index(msg, []byte("\n\n")); i >= 0 {
		return msg[:i+1]
	}
	return msg
}
