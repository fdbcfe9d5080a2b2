package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ds2mb/ds2mb/replicator"
)

// status is what ds2mb shows at --status-addr: /status (JSON), /healthz
// and /metrics (Prometheus text). It is fed by the replicator's events and
// its counters.
type status struct {
	mu        sync.Mutex
	started   time.Time
	server    string
	metabase  string
	mode      string
	connected bool
	connErr   string
	version   int       // the last MetaBase.xml version written
	savedAt   time.Time // when
	saveErr   string    // the last failed save, "" after a good one
	refused   int64     // directory values the catalogue refused
	lastRef   *refusal
	fullDone  bool   // the first full replication (or resume refresh) finished
	stamp     string // the highest directory change stamp in the file written
	latency   histogram
	stats     func() replicator.Stats
}

// latencyBuckets are the upper bounds, in seconds, of the histogram of the
// time from a directory change (its entryCSN) to the file that holds it.
var latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// histogram is a Prometheus-style cumulative histogram over latencyBuckets.
type histogram struct {
	counts []int64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	n      int64
}

func (h *histogram) observe(v float64) {
	if h.counts == nil {
		h.counts = make([]int64, len(latencyBuckets)+1)
	}
	i := 0
	for i < len(latencyBuckets) && v > latencyBuckets[i] {
		i++
	}
	h.counts[i]++
	h.sum += v
	h.n++
}

// write prints the histogram as name_bucket, name_sum and name_count.
func (h *histogram) write(b *strings.Builder, name, help string) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	var cum int64
	for i, le := range latencyBuckets {
		if h.counts != nil {
			cum += h.counts[i]
		}
		fmt.Fprintf(b, "%s_bucket{le=\"%g\"} %d\n", name, le, cum)
	}
	fmt.Fprintf(b, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %g\n%s_count %d\n", name, h.n, name, h.sum, name, h.n)
}

// csnTime is the time of an OpenLDAP entryCSN
// (20261206114353.123456Z#000000#000#000000).
func csnTime(csn string) (time.Time, bool) {
	ts, _, _ := strings.Cut(csn, "#")
	t, err := time.Parse("20060102150405.999999Z", ts)
	return t, err == nil
}

// refusal is the last directory value refused.
type refusal struct {
	At        time.Time `json:"at"`
	DN        string    `json:"dn"`
	Attribute string    `json:"attribute"`
	Value     string    `json:"value"`
	Reason    string    `json:"reason"`
}

// observe takes one replicator event.
func (s *status) observe(e replicator.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e.ID {
	case replicator.EvConnectionLost:
		s.connected, s.connErr = false, e.Reason
	case replicator.EvConnectionRestored, replicator.EvFullBegin, replicator.EvResume:
		s.connected, s.connErr = true, ""
	case replicator.EvFullDone:
		s.connected, s.fullDone = true, true
	case replicator.EvSaved:
		now := time.Now()
		// A change made while ds2mb follows the directory: its latency is
		// from the directory's stamp to now. The first replication (and a
		// resume) carries old stamps, which would measure downtime, so only
		// saves after the first are measured.
		if s.fullDone && s.stamp != "" && e.Value > s.stamp {
			if t, ok := csnTime(e.Value); ok {
				s.latency.observe(max(now.Sub(t).Seconds(), 0))
			}
		}
		if e.Value != "" {
			s.stamp = e.Value
		}
		s.version, s.savedAt, s.saveErr = e.Count, now, ""
	case replicator.EvSaveFailed:
		s.saveErr = e.Reason
	case replicator.EvValueRefused:
		s.refused++
		s.lastRef = &refusal{At: time.Now(), DN: e.DN, Attribute: e.Attribute, Value: e.Value, Reason: e.Reason}
	}
}

// statusJSON is the /status document.
type statusJSON struct {
	Server        string    `json:"server"`
	Metabase      string    `json:"metabase"`
	Mode          string    `json:"mode"`
	Connected     bool      `json:"connected"`
	ConnectionErr string    `json:"connectionError,omitempty"`
	Replicated    bool      `json:"replicated"`      // the first full replication finished
	Version       int       `json:"version"`         // the last MetaBase.xml version written
	Stamp         string    `json:"stamp,omitempty"` // the highest directory change stamp (entryCSN) in it
	SavedAt       time.Time `json:"savedAt,omitzero"`
	SaveError     string    `json:"saveError,omitempty"`
	Saves         int64     `json:"saves"`
	Changes       int64     `json:"changesApplied"`
	Objects       int       `json:"objects"`
	ValuesRefused int64     `json:"valuesRefused"`
	LastRefused   *refusal  `json:"lastRefused,omitempty"`
	Started       time.Time `json:"started"`
}

// setMode records the mode chosen (auto resolves to syncrepl or poll).
func (s *status) setMode(m string) {
	s.mu.Lock()
	s.mode = m
	s.mu.Unlock()
}

// setStats gives the status the replicator's counters once it exists.
func (s *status) setStats(f func() replicator.Stats) {
	s.mu.Lock()
	s.stats = f
	s.mu.Unlock()
}

func (s *status) snapshot() statusJSON {
	s.mu.Lock()
	statsOf := s.stats
	s.mu.Unlock()
	var st replicator.Stats
	if statsOf != nil {
		st = statsOf()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return statusJSON{Server: s.server, Metabase: s.metabase, Mode: s.mode, Connected: s.connected, ConnectionErr: s.connErr,
		Replicated: s.fullDone, Version: s.version, Stamp: s.stamp, SavedAt: s.savedAt, SaveError: s.saveErr, Saves: st.Saves,
		Changes: st.Changes, Objects: st.Objects, ValuesRefused: s.refused, LastRefused: s.lastRef, Started: s.started}
}

// healthy: connected to the directory, replicated once, and the last save
// did not fail.
func (j statusJSON) healthy() (bool, string) {
	switch {
	case !j.Connected:
		return false, "not connected to the directory: " + j.ConnectionErr
	case !j.Replicated:
		return false, "the first replication has not finished"
	case j.SaveError != "":
		return false, "the last save failed: " + j.SaveError
	}
	return true, "ok"
}

func (s *status) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(s.snapshot())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := s.snapshot().healthy()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintln(w, why)
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		j := s.snapshot()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		var b strings.Builder
		metric := func(name, kind, help string, v any) {
			fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s %v\n", name, help, name, kind, name, v)
		}
		metric("ds2mb_connected", "gauge", "1 when connected to the directory.", b2i(j.Connected))
		metric("ds2mb_metabase_version", "gauge", "The last MetaBase.xml version written.", j.Version)
		metric("ds2mb_saves_total", "counter", "MetaBase.xml versions written.", j.Saves)
		metric("ds2mb_changes_applied_total", "counter", "Directory changes applied.", j.Changes)
		metric("ds2mb_objects", "gauge", "Directory objects mirrored.", j.Objects)
		metric("ds2mb_values_refused_total", "counter", "Directory values the catalogue refused.", j.ValuesRefused)
		s.mu.Lock()
		s.latency.write(&b, "ds2mb_change_to_file_seconds", "Time from a directory change (entryCSN) to the MetaBase.xml that holds it.")
		s.mu.Unlock()
		w.Write([]byte(b.String()))
	})
	return mux
}

func b2i(v bool) int {
	if v {
		return 1
	}
	return 0
}

// serveStatus listens on addr and serves the status until the process
// ends; the listener is returned so that a taken port fails at start.
func serveStatus(addr string, s *status) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	return l, nil
}
