package queue

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
)

// Info describes one queued message for operators (mbctl queue).
type Info struct {
	ID          string
	Instance    int
	From        string
	Size        int64     `json:",omitempty"`
	Received    time.Time `json:",omitempty"`
	State       string    // "queued", "in-flight", "frozen"
	Attempts    int
	NextAttempt time.Time `json:",omitempty"`
	LastError   string    `json:",omitempty"`
	Recipients  []RecipientInfo
}

// RecipientInfo is one recipient of a queued message.
type RecipientInfo struct {
	Address  string
	Status   string // pending, delivered, failed
	Attempts int
	Last     string `json:",omitempty"` // the last attempt's reply
}

// ErrNotQueued is returned for an id the queue does not hold.
var ErrNotQueued = errors.New("no such message in the queue")

// Len is the number of messages in the queue.
func (m *Manager) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.msgs)
}

// List describes every queued message, in id order.
func (m *Manager) List() []Info {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []Info{}
	for _, msg := range sortedIDs(m.msgs) {
		out = append(out, msg.info())
	}
	return out
}

// info describes a message (m.mu held).
func (msg *message) info() Info {
	in := Info{ID: msg.id, Instance: msg.instance, State: "queued", Attempts: msg.state.Attempts, NextAttempt: msg.next}
	switch {
	case msg.running:
		in.State, in.NextAttempt = "in-flight", time.Time{}
	case msg.state.Frozen:
		in.State, in.NextAttempt = "frozen", time.Time{}
	}
	if msg.stored != nil {
		in.From, in.Size, in.Received = msg.stored.Envelope.From, msg.stored.Size, msg.stored.Envelope.ReceivedAt
		if in.Instance == 0 {
			in.Instance = msg.stored.Envelope.Instance
		}
	}
	for _, r := range msg.state.Rcpts {
		ri := RecipientInfo{Address: r.Addr, Status: string(r.Status), Attempts: r.Attempts}
		if r.Last != nil {
			ri.Last = r.Last.String()
			if r.Status == pending {
				in.LastError = ri.Last
			}
		}
		in.Recipients = append(in.Recipients, ri)
	}
	return in
}

// Retry makes a queued message due now (and thaws a frozen one).
func (m *Manager) Retry(id string) error {
	m.mu.Lock()
	msg := m.byID[id]
	if msg == nil {
		m.mu.Unlock()
		return ErrNotQueued
	}
	if !msg.running {
		msg.state.Frozen = false
		msg.next = m.now()
		m.sched.push(msg)
	}
	m.mu.Unlock()
	m.poke()
	return nil
}

// Delete removes a message from the queue without a notification. A
// message being delivered goes when its attempt ends (recipients delivered
// by then stay delivered).
func (m *Manager) Delete(id string) error {
	m.mu.Lock()
	msg := m.byID[id]
	if msg == nil {
		m.mu.Unlock()
		return ErrNotQueued
	}
	msg.deleted = true
	running := msg.running
	m.mu.Unlock()
	if !running {
		m.remove(msg)
	}
	return nil
}

// Handler serves the queue for mbctl: GET /queue lists it (JSON, []Info);
// POST /queue/retry?id=ID and POST /queue/delete?id=ID act on one message.
func (m *Manager) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /queue", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(m.List())
	})
	act := func(f func(string) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			id := strings.TrimSpace(r.URL.Query().Get("id"))
			if id == "" {
				http.Error(w, "id missing", http.StatusBadRequest)
				return
			}
			if err := f(id); err != nil {
				code := http.StatusInternalServerError
				if errors.Is(err, ErrNotQueued) {
					code = http.StatusNotFound
				}
				http.Error(w, id+": "+err.Error(), code)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}
	}
	mux.HandleFunc("POST /queue/retry", act(m.Retry))
	mux.HandleFunc("POST /queue/delete", act(m.Delete))
	return mux
}
