package queue

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"time"

	"github.com/ds2mb/ds2mb/metabase"
	"github.com/ds2mb/ds2mb/smtpsvc/delivery"
)

// stateSuffix names a message's state file beside its "<id>.eml".
const stateSuffix = ".qst"

// rcptStatus is where one recipient stands.
type rcptStatus string

const (
	pending   rcptStatus = "pending"
	delivered rcptStatus = "delivered"
	failed    rcptStatus = "failed"
)

// rcptState is one recipient of a queued message.
type rcptState struct {
	Addr          string
	Status        rcptStatus
	Attempts      int              `json:",omitempty"`
	Last          *delivery.Result `json:",omitempty"` // the last attempt's result
	DelayNotified bool             `json:",omitempty"` // a delay DSN went out for it
}

// state is what a message's ".qst" file holds: the outcome so far of every
// recipient and when to try again. A message without one has never been
// tried (or every try so far left nothing worth keeping).
type state struct {
	Attempts    int
	NextAttempt time.Time
	Rcpts       []rcptState
	Frozen      bool `json:",omitempty"` // held by an operator: not tried until retried
}

// statePath is the state file of a spool file.
func statePath(emlPath string) string {
	return strings.TrimSuffix(emlPath, ".eml") + stateSuffix
}

// loadState reads a message's state file; (nil, nil) when there is none.
func loadState(emlPath string) (*state, error) {
	data, err := os.ReadFile(statePath(emlPath))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	st := &state{}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, err
	}
	return st, nil
}

// saveState writes a message's state file atomically (temporary file,
// fsync, rename): a crash leaves the old state or the new one. Losing the
// newest state to a crash can only repeat a delivery, never lose one.
func saveState(emlPath string, st *state) error {
	return metabase.WriteAtomic(statePath(emlPath), 0o640, func(w *bufio.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", " ")
		return enc.Encode(st)
	})
}
