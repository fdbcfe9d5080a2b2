// Package status reports what an SMTP worker runs, so that an operator can
// see a directory change reach the listening socket: the metabase version
// running, the last version refused and why, each virtual server with its
// bindings and counters, and reload counts and timings.
//
// It serves three HTTP endpoints — /status (JSON), /healthz (200 "ok" once
// a configuration runs, 503 before) and /metrics (Prometheus text format,
// written by hand) — and writes the same JSON to a status file atomically.
package status

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Status is one snapshot of a worker.
type Status struct {
	Metabase  string    `json:"metabase"`              // the MetaBase.xml followed
	Running   bool      `json:"running"`               // a configuration is serving
	Version   uint64    `json:"version"`               // metabase version (ChangeNumber) serving
	AppliedAt time.Time `json:"appliedAt,omitzero"`    // when that version started serving
	Refused   *Refusal  `json:"lastRefused,omitempty"` // the last configuration refused, if any
	Servers   []Server  `json:"virtualServers"`
	Draining  int       `json:"drainingGenerations"` // retired generations still finishing sessions
	Reloads   Reloads   `json:"reloads"`
	Queue     Queue     `json:"queue"`
	Sinks     Sinks     `json:"eventSinks"`
	Started   time.Time `json:"started"`
}

// Sinks counts what the event sinks did since the worker started.
type Sinks struct {
	Bindings  int    `json:"bindings"`  // bindings running, over every virtual server
	Fired     int64  `json:"fired"`     // sink calls
	Stopped   int64  `json:"stopped"`   // events a sink stopped
	Failed    int64  `json:"failed"`    // sinks that failed or panicked (skipped)
	TimedOut  int64  `json:"timedOut"`  // pending sinks that missed their deadline (skipped)
	Discarded uint64 `json:"discarded"` // accepted messages sinks discarded
	Badmail   uint64 `json:"badmail"`   // accepted messages sinks put in Badmail
}

// Queue counts what the queue manager holds and did since the worker
// started; recipient counts are per recipient, not per message.
type Queue struct {
	Messages    int    `json:"messages"`            // in the queue now
	Delivered   uint64 `json:"recipientsDelivered"` // recipients delivered
	Failed      uint64 `json:"recipientsFailed"`    // recipients failed for good
	Deferred    uint64 `json:"recipientsDeferred"`  // recipient attempts to be retried
	DSNs        uint64 `json:"dsnsSent"`            // notifications queued
	Badmail     uint64 `json:"badmail"`             // messages put in Badmail
	Connections uint64 `json:"outboundConnections"` // outbound SMTP connections opened
	// PickupSubmitted and PickupRejected count Pickup folder files spooled
	// and put in Badmail.
	PickupSubmitted int64 `json:"pickupSubmitted"`
	PickupRejected  int64 `json:"pickupRejected"`
}

// Refusal is a configuration the worker would not run.
type Refusal struct {
	Version      uint64    `json:"version"`      // its ChangeNumber, when it could be read
	VersionKnown bool      `json:"versionKnown"` // false when the file was too broken to tell
	At           time.Time `json:"at"`
	Reason       string    `json:"reason"`
	Problems     []Problem `json:"problems,omitempty"`
}

// Problem is one reason for a refusal, naming where.
type Problem struct {
	Location string `json:"location,omitempty"`
	Property string `json:"property,omitempty"`
	Reason   string `json:"reason"`
}

// Server is one virtual server.
type Server struct {
	Instance         int       `json:"instance"`
	Location         string    `json:"location"`
	FQDN             string    `json:"fqdn,omitempty"`
	AutoStart        bool      `json:"autoStart"`
	Running          bool      `json:"running"`
	Bindings         []string  `json:"bindings"`
	SecureBindings   []string  `json:"secureBindings"` // implicit TLS (SecureBindings)
	MaxConnections   int       `json:"maxConnections"`
	SessionsOpen     int64     `json:"sessionsOpen"`
	Connections      uint64    `json:"connections"`        // accepted since start
	TooMany          uint64    `json:"connectionsRefused"` // over MaxConnections since start
	MessagesAccepted uint64    `json:"messagesAccepted"`
	MessagesRefused  uint64    `json:"messagesRefused"`
	Replies          [6]uint64 `json:"transactionsByReplyClass"` // index 2 = 2xx, 4 = 4xx, 5 = 5xx
	AuthFailures     uint64    `json:"authFailures"`
	Denied           uint64    `json:"connectionsDenied"` // refused by IPSecurity since start
	// Notes are settings read but not applied as written (an IPSECLIST
	// blob not in the layout the worker reads, …), "Location: what and why".
	Notes []string `json:"notes,omitempty"`
}

// Reloads counts configuration loads and times them.
type Reloads struct {
	Applied uint64 `json:"applied"` // configurations that changed what runs
	Same    uint64 `json:"unchanged"`
	Refused uint64 `json:"refused"`
	// Duration of applied reloads, from the worker reading the file (after
	// the watcher's quiet period) to the new configuration serving.
	Duration Histogram `json:"duration"`
}

// Histogram is a cumulative histogram of durations in seconds.
type Histogram struct {
	Bounds []float64 `json:"bounds"` // upper bounds, seconds
	Counts []uint64  `json:"counts"` // cumulative counts per bound
	Count  uint64    `json:"count"`
	Sum    float64   `json:"sum"`
}

// ReloadBounds are the bucket bounds of reload durations.
var ReloadBounds = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// Timer accumulates a Histogram; it is safe for concurrent use.
type Timer struct {
	mu sync.Mutex
	h  Histogram
}

// Observe records one duration.
func (t *Timer) Observe(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.h.Bounds == nil {
		t.h.Bounds = ReloadBounds
		t.h.Counts = make([]uint64, len(ReloadBounds))
	}
	s := d.Seconds()
	for i, b := range t.h.Bounds {
		if s <= b {
			t.h.Counts[i]++
		}
	}
	t.h.Count++
	t.h.Sum += s
}

// Snapshot returns a copy of the histogram.
func (t *Timer) Snapshot() Histogram {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.h
	if h.Bounds == nil {
		h.Bounds = ReloadBounds
		h.Counts = make([]uint64, len(ReloadBounds))
	} else {
		h.Counts = append([]uint64(nil), t.h.Counts...)
	}
	return h
}

// Handler serves /status, /healthz and /metrics from snapshots taken by get.
func Handler(get func() Status, extra ...Route) http.Handler {
	mux := http.NewServeMux()
	for _, r := range extra {
		mux.Handle(r.Pattern, r.Handler)
	}
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		b, _ := json.MarshalIndent(get(), "", "  ")
		w.Write(append(b, '\n'))
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		st := get()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !st.Running {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "no configuration running\n")
			return
		}
		fmt.Fprintf(w, "ok version %d\n", st.Version)
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		WriteMetrics(w, get())
	})
	return mux
}

// Route is one more endpoint served beside the status ones (the queue's).
type Route struct {
	Pattern string // http.ServeMux pattern, "/queue"
	Handler http.Handler
}

// WriteFile writes the status as JSON to path atomically: a reader sees the
// old file or the new one, never a mix (a temporary file renamed into
// place). It does not fsync: the status file describes a running process
// and is rewritten on every change, so it need not survive a crash, and a
// slow disk must not delay the next reload.
func WriteFile(path string, st Status) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// WriteMetrics writes the status in the Prometheus text exposition format.
func WriteMetrics(w io.Writer, st Status) {
	var b strings.Builder
	metric := func(name, typ, help string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	vsLabel := func(s Server) string { return `vs="` + strconv.Itoa(s.Instance) + `"` }

	metric("smtpsvc_metabase_version", "gauge", "Metabase version (ChangeNumber) serving.")
	fmt.Fprintf(&b, "smtpsvc_metabase_version %d\n", st.Version)
	metric("smtpsvc_metabase_refused_version", "gauge", "Version of the last metabase refused (0 = none or unknown).")
	var rv uint64
	if st.Refused != nil {
		rv = st.Refused.Version
	}
	fmt.Fprintf(&b, "smtpsvc_metabase_refused_version %d\n", rv)

	metric("smtpsvc_reloads_total", "counter", "Metabase loads by outcome.")
	fmt.Fprintf(&b, "smtpsvc_reloads_total{result=\"applied\"} %d\n", st.Reloads.Applied)
	fmt.Fprintf(&b, "smtpsvc_reloads_total{result=\"unchanged\"} %d\n", st.Reloads.Same)
	fmt.Fprintf(&b, "smtpsvc_reloads_total{result=\"refused\"} %d\n", st.Reloads.Refused)

	h := st.Reloads.Duration
	metric("smtpsvc_reload_duration_seconds", "histogram", "Time from reading a changed metabase to the new configuration serving.")
	for i, bound := range h.Bounds {
		fmt.Fprintf(&b, "smtpsvc_reload_duration_seconds_bucket{le=\"%s\"} %d\n", strconv.FormatFloat(bound, 'g', -1, 64), h.Counts[i])
	}
	fmt.Fprintf(&b, "smtpsvc_reload_duration_seconds_bucket{le=\"+Inf\"} %d\n", h.Count)
	fmt.Fprintf(&b, "smtpsvc_reload_duration_seconds_sum %g\n", h.Sum)
	fmt.Fprintf(&b, "smtpsvc_reload_duration_seconds_count %d\n", h.Count)

	metric("smtpsvc_draining_generations", "gauge", "Retired configuration generations still finishing sessions.")
	fmt.Fprintf(&b, "smtpsvc_draining_generations %d\n", st.Draining)

	q := st.Queue
	metric("smtpsvc_queue_messages", "gauge", "Messages in the queue.")
	fmt.Fprintf(&b, "smtpsvc_queue_messages %d\n", q.Messages)
	metric("smtpsvc_queue_recipients_total", "counter", "Recipient delivery outcomes.")
	fmt.Fprintf(&b, "smtpsvc_queue_recipients_total{result=\"delivered\"} %d\n", q.Delivered)
	fmt.Fprintf(&b, "smtpsvc_queue_recipients_total{result=\"failed\"} %d\n", q.Failed)
	fmt.Fprintf(&b, "smtpsvc_queue_recipients_total{result=\"deferred\"} %d\n", q.Deferred)
	metric("smtpsvc_queue_dsns_total", "counter", "Delivery status notifications queued.")
	fmt.Fprintf(&b, "smtpsvc_queue_dsns_total %d\n", q.DSNs)
	metric("smtpsvc_queue_badmail_total", "counter", "Messages put in Badmail.")
	fmt.Fprintf(&b, "smtpsvc_queue_badmail_total %d\n", q.Badmail)
	metric("smtpsvc_outbound_connections_total", "counter", "Outbound SMTP connections opened.")
	fmt.Fprintf(&b, "smtpsvc_outbound_connections_total %d\n", q.Connections)
	metric("smtpsvc_event_sink_calls_total", "counter", "Event sink calls by result.")
	fmt.Fprintf(&b, "smtpsvc_event_sink_calls_total{result=\"fired\"} %d\n", st.Sinks.Fired)
	fmt.Fprintf(&b, "smtpsvc_event_sink_calls_total{result=\"stopped\"} %d\n", st.Sinks.Stopped)
	fmt.Fprintf(&b, "smtpsvc_event_sink_calls_total{result=\"failed\"} %d\n", st.Sinks.Failed)
	fmt.Fprintf(&b, "smtpsvc_event_sink_calls_total{result=\"timed_out\"} %d\n", st.Sinks.TimedOut)
	metric("smtpsvc_pickup_files_total", "counter", "Pickup folder files taken.")
	fmt.Fprintf(&b, "smtpsvc_pickup_files_total{result=\"submitted\"} %d\n", q.PickupSubmitted)
	fmt.Fprintf(&b, "smtpsvc_pickup_files_total{result=\"badmail\"} %d\n", q.PickupRejected)

	servers := append([]Server(nil), st.Servers...)
	sort.Slice(servers, func(i, j int) bool { return servers[i].Instance < servers[j].Instance })
	perServer := []struct {
		name, kind, help string
		value            func(Server) int64
	}{
		{"smtpsvc_virtual_server_running", "gauge", "1 when the virtual server is serving.", func(s Server) int64 { return int64(b2i(s.Running)) }},
		{"smtpsvc_sessions_open", "gauge", "SMTP sessions open now.", func(s Server) int64 { return int64(s.SessionsOpen) }},
		{"smtpsvc_connections_total", "counter", "Connections accepted.", func(s Server) int64 { return int64(s.Connections) }},
		{"smtpsvc_connections_refused_total", "counter", "Connections refused over MaxConnections.", func(s Server) int64 { return int64(s.TooMany) }},
		{"smtpsvc_connections_denied_total", "counter", "Connections refused by IPSecurity.", func(s Server) int64 { return int64(s.Denied) }},
	}
	for _, m := range perServer {
		metric(m.name, m.kind, m.help)
		for _, s := range servers {
			fmt.Fprintf(&b, "%s{%s} %d\n", m.name, vsLabel(s), m.value(s))
		}
	}
	metric("smtpsvc_messages_total", "counter", "Messages by outcome.")
	for _, s := range servers {
		fmt.Fprintf(&b, "smtpsvc_messages_total{%s,result=\"accepted\"} %d\n", vsLabel(s), s.MessagesAccepted)
		fmt.Fprintf(&b, "smtpsvc_messages_total{%s,result=\"refused\"} %d\n", vsLabel(s), s.MessagesRefused)
	}
	metric("smtpsvc_transactions_total", "counter", "Transactions by final reply class.")
	for _, s := range servers {
		for _, class := range []int{2, 4, 5} {
			fmt.Fprintf(&b, "smtpsvc_transactions_total{%s,class=\"%dxx\"} %d\n", vsLabel(s), class, s.Replies[class])
		}
	}
	metric("smtpsvc_auth_failures_total", "counter", "Failed AUTH attempts.")
	for _, s := range servers {
		fmt.Fprintf(&b, "smtpsvc_auth_failures_total{%s} %d\n", vsLabel(s), s.AuthFailures)
	}
	io.WriteString(w, b.String())
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
