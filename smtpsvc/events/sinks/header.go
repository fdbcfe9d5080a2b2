package sinks

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ds2mb/ds2mb/smtpsvc/events"
)

// stampPlaceholders are what a HeaderStamp value may hold.
var stampPlaceholders = map[string]bool{"{instance}": true, "{from}": true, "{rcpts}": true, "{client}": true, "{date}": true}

var placeholder = regexp.MustCompile(`\{[A-Za-z]+\}`)

func headerStampClass(o Options) events.Class {
	return events.Class{
		Name:   "ds2mb.HeaderStamp",
		Events: transport,
		Doc:    "adds a header field at the top of the message",
		Properties: map[string]string{
			"Name":  "the field name (printable ASCII but ':'); required",
			"Value": "the field body, no CR or LF; may hold {instance}, {from}, {rcpts}, {client}, {date}; required",
		},
		New: func(props map[string]string) (events.Sink, error) {
			name, err := required(props, "Name")
			if err != nil {
				return nil, err
			}
			name = strings.TrimSpace(name)
			for i := 0; i < len(name); i++ {
				if c := name[i]; c < 33 || c > 126 || c == ':' {
					return nil, fmt.Errorf("property Name %q is not a header field name (RFC 5322: printable ASCII but ':')", name)
				}
			}
			value, err := required(props, "Value")
			if err != nil {
				return nil, err
			}
			if err := fieldBody(value); err != nil {
				return nil, fmt.Errorf("property Value: %w", err)
			}
			for _, p := range placeholder.FindAllString(value, -1) {
				if !stampPlaceholders[strings.ToLower(p)] {
					return nil, fmt.Errorf("property Value: unknown placeholder %s (known: {instance}, {from}, {rcpts}, {client}, {date})", p)
				}
			}
			h := &headerStamp{name: name, value: strings.TrimSpace(value), now: o.Now}
			return contentSink(h.fire), nil
		},
	}
}

// fieldBody checks that a header field body cannot break out of its
// field: no CR, LF or other control character but tab.
func fieldBody(v string) error {
	for _, r := range v {
		if r == '\r' || r == '\n' {
			return errors.New("CR and LF are not allowed (header injection)")
		}
		if r < 0x20 && r != '\t' || r == 0x7f {
			return fmt.Errorf("control character %U is not allowed", r)
		}
	}
	return nil
}

// headerStamp is a ds2mb.HeaderStamp sink.
type headerStamp struct {
	name, value string
	now         func() time.Time
}

// fire puts the field at the top of the message of an event.
func (h *headerStamp) fire(ev *events.Event, data []byte) error {
	value := placeholder.ReplaceAllStringFunc(h.value, func(p string) string { return h.expand(strings.ToLower(p), ev) })
	if err := fieldBody(value); err != nil {
		return fmt.Errorf("%s not added: %w", h.name, err)
	}
	field := h.name + ": " + value + "\r\n"
	if len(field) > 1000 {
		return fmt.Errorf("%s not added: the field is longer than RFC 5322's 998 characters", h.name)
	}
	ev.Msg.SetData(append([]byte(field), data...))
	return nil
}

// expand gives a placeholder's value for an event.
func (h *headerStamp) expand(p string, ev *events.Event) string {
	switch p {
	case "{instance}":
		return strconv.Itoa(ev.Instance)
	case "{from}":
		if ev.Msg.From == "" {
			return "<>"
		}
		return ev.Msg.From
	case "{rcpts}":
		return strconv.Itoa(len(ev.Msg.To))
	case "{client}":
		if ev.Session != nil && ev.Session.Remote.IsValid() {
			return ev.Session.Remote.String()
		}
		return ev.Msg.Fields["clientipaddress"]
	case "{date}":
		return h.now().Format("Mon, 02 Jan 2006 15:04:05 -0700")
	}
	return p
}
