package sinks

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/ds2mb/ds2mb/smtpsvc/events"
)

func eventLogClass(o Options) events.Class {
	return events.Class{
		Name: "ds2mb.EventLog",
		Doc:  "logs one structured line per event",
		Properties: map[string]string{
			"Level": "debug, info or warn; default info",
		},
		New: func(props map[string]string) (events.Sink, error) {
			s := &eventLog{log: o.Logger, level: slog.LevelInfo}
			switch v := strings.ToLower(strings.TrimSpace(optional(props, "Level", "info"))); v {
			case "debug":
				s.level = slog.LevelDebug
			case "info":
			case "warn", "warning":
				s.level = slog.LevelWarn
			default:
				return nil, fmt.Errorf("property Level %q is not debug, info or warn", v)
			}
			return s, nil
		},
	}
}

// eventLog is a ds2mb.EventLog sink.
type eventLog struct {
	log   *slog.Logger
	level slog.Level
}

// Fire implements events.Sink.
func (s *eventLog) Fire(ctx context.Context, ev *events.Event) events.Result {
	if !s.log.Enabled(ctx, s.level) {
		return events.Result{}
	}
	attrs := []slog.Attr{slog.String("event", ev.Type.Name), slog.Int("instance", ev.Instance)}
	if ss := ev.Session; ss != nil {
		attrs = append(attrs, slog.String("session", ss.ID), slog.String("remote", ss.Remote.String()), slog.String("helo", ss.HELO))
	}
	if c := ev.Command; c != nil {
		attrs = append(attrs, slog.String("verb", c.Verb))
		if c.Verb != "AUTH" && c.Arg != "" { // AUTH arguments carry credentials
			attrs = append(attrs, slog.String("arg", c.Arg))
		}
	}
	if r := ev.Response; r != nil {
		attrs = append(attrs, slog.Int("code", r.Code))
	}
	if ev.Rcpt != "" {
		attrs = append(attrs, slog.String("rcpt", ev.Rcpt))
	}
	if m := ev.Msg; m != nil {
		attrs = append(attrs, slog.String("from", m.From), slog.Int("rcpts", len(m.To)), slog.String("status", m.Status.String()))
	}
	if l := ev.Log; l != nil {
		attrs = append(attrs, slog.Group("record", "event", l.Event, "id", l.ID, "from", l.From, "rcpt", l.Rcpt, "detail", l.Detail))
	}
	s.log.LogAttrs(ctx, s.level, "SMTP event", attrs...)
	return events.Result{}
}
