package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ds2mb/ds2mb/metabase"
	"github.com/ds2mb/ds2mb/replicator"
)

// replicatorStatus is the part of ds2mb's /status that mbctl shows.
type replicatorStatus struct {
	Mode          string `json:"mode"`
	Connected     bool   `json:"connected"`
	ConnectionErr string `json:"connectionError,omitempty"`
	Replicated    bool   `json:"replicated"`
	Version       uint64 `json:"version"`
	Stamp         string `json:"stamp,omitempty"`
	SavedAt       string `json:"savedAt,omitempty"`
	SaveError     string `json:"saveError,omitempty"`
	ValuesRefused int64  `json:"valuesRefused"`
	LastRefused   *struct {
		DN        string `json:"dn"`
		Attribute string `json:"attribute"`
		Value     string `json:"value"`
		Reason    string `json:"reason"`
	} `json:"lastRefused,omitempty"`
}

// workerStatus is the part of smtpsvc's /status that mbctl shows.
type workerStatus struct {
	Running   bool   `json:"running"`
	Version   uint64 `json:"version"`
	AppliedAt string `json:"appliedAt,omitempty"`
	Refused   *struct {
		Version      uint64 `json:"version"`
		VersionKnown bool   `json:"versionKnown"`
		Reason       string `json:"reason"`
	} `json:"lastRefused,omitempty"`
	Servers []struct {
		Instance int      `json:"instance"`
		Running  bool     `json:"running"`
		Bindings []string `json:"bindings"`
	} `json:"virtualServers"`
}

// systemStatus is `mbctl status --json`: each part and what it runs.
type systemStatus struct {
	Replicator      *replicatorStatus `json:"replicator,omitempty"`
	ReplicatorError string            `json:"replicatorError,omitempty"`
	// StateStamp and StateVersion are read from ds2mb's state file when its
	// status address does not answer.
	StateStamp      string        `json:"stateStamp,omitempty"`
	StateVersion    uint64        `json:"stateVersion,omitempty"`
	Metabase        string        `json:"metabase"`
	MetabaseVersion uint64        `json:"metabaseVersion"`
	MetabaseError   string        `json:"metabaseError,omitempty"`
	Worker          *workerStatus `json:"worker,omitempty"`
	WorkerError     string        `json:"workerError,omitempty"`
	InStep          bool          `json:"inStep"` // the worker serves the file's version, which ds2mb wrote
}

func getJSON(addr string, v any) error {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/status")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// status shows, for each part, the version it runs: the directory change
// stamp ds2mb last replicated, the metabase version it wrote, the version
// in the file and the version the worker serves, with any refusal.
func (c *command) status(args []string) int {
	mb := c.metabaseFlag()
	worker := c.fs.String("worker", envOr("DS2MB_WORKER", "127.0.0.1:8025"), "smtpsvc's --status-addr (default $DS2MB_WORKER or 127.0.0.1:8025)")
	repl := c.fs.String("replicator", envOr("DS2MB_REPLICATOR", "127.0.0.1:8026"), "ds2mb's --status-addr (default $DS2MB_REPLICATOR or 127.0.0.1:8026)")
	asJSON := c.fs.Bool("json", false, "print JSON")
	pos, ok := c.parse(args)
	if !ok {
		return exitUsage
	}
	if len(pos) != 0 {
		return c.usageError("status takes no arguments")
	}
	st := systemStatus{Metabase: *mb}
	var rs replicatorStatus
	if err := getJSON(*repl, &rs); err != nil {
		st.ReplicatorError = fmt.Sprintf("ds2mb does not answer at %s: %v", *repl, err)
		if s, err := replicator.LoadState(replicator.StatePath(*mb)); err == nil && s != nil {
			st.StateStamp, st.StateVersion = s.Stamp, s.Metabase
		}
	} else {
		st.Replicator = &rs
	}
	if t, err := metabase.Load(*mb); err != nil {
		st.MetabaseError = err.Error()
	} else {
		st.MetabaseVersion = t.Version
	}
	var ws workerStatus
	if err := getJSON(*worker, &ws); err != nil {
		st.WorkerError = fmt.Sprintf("smtpsvc does not answer at %s: %v", *worker, err)
	} else {
		st.Worker = &ws
	}
	written := st.StateVersion
	if st.Replicator != nil {
		written = st.Replicator.Version
	}
	st.InStep = st.Worker != nil && st.MetabaseError == "" && st.Worker.Version == st.MetabaseVersion &&
		written == st.MetabaseVersion
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return c.errorf("%v", err)
		}
	} else {
		printStatus(c.stdout, st)
	}
	if st.Worker == nil || st.MetabaseError != "" || st.Worker.Refused != nil && st.Worker.Refused.Version >= st.MetabaseVersion {
		return exitProblem
	}
	return exitOK
}

func printStatus(w io.Writer, st systemStatus) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PART\tSTATE\tVERSION\tDETAIL")
	switch r := st.Replicator; {
	case r != nil:
		state := "connected"
		if !r.Connected {
			state = "disconnected"
		}
		fmt.Fprintf(tw, "directory\t-\t%s\tchange stamp last replicated by ds2mb\n", dash(r.Stamp))
		detail := "mode " + r.Mode
		if r.ConnectionErr != "" {
			detail += "; " + r.ConnectionErr
		}
		if r.SaveError != "" {
			detail += "; last save failed: " + r.SaveError
		}
		if r.LastRefused != nil {
			detail += fmt.Sprintf("; %d value(s) refused, last %s %s=%q: %s", r.ValuesRefused, r.LastRefused.DN,
				r.LastRefused.Attribute, r.LastRefused.Value, r.LastRefused.Reason)
		}
		fmt.Fprintf(tw, "ds2mb\t%s\twrote %d\t%s\n", state, r.Version, detail)
	default:
		fmt.Fprintf(tw, "directory\t-\t%s\tchange stamp in ds2mb's state file\n", dash(st.StateStamp))
		fmt.Fprintf(tw, "ds2mb\tunknown\twrote %d\t%s (version from its state file)\n", st.StateVersion, st.ReplicatorError)
	}
	if st.MetabaseError != "" {
		fmt.Fprintf(tw, "MetaBase.xml\tunreadable\t-\t%s\n", st.MetabaseError)
	} else {
		fmt.Fprintf(tw, "MetaBase.xml\t-\t%d\t%s\n", st.MetabaseVersion, st.Metabase)
	}
	switch ws := st.Worker; {
	case ws == nil:
		fmt.Fprintf(tw, "smtpsvc\tunknown\t-\t%s\n", st.WorkerError)
	default:
		state := "serving"
		if !ws.Running {
			state = "not serving"
		}
		running := 0
		for _, s := range ws.Servers {
			if s.Running {
				running++
			}
		}
		detail := fmt.Sprintf("%d of %d virtual servers listening", running, len(ws.Servers))
		if ws.AppliedAt != "" {
			detail += ", since " + ws.AppliedAt
		}
		if r := ws.Refused; r != nil {
			v := "a file"
			if r.VersionKnown {
				v = fmt.Sprintf("version %d", r.Version)
			}
			detail += fmt.Sprintf("; refused %s: %s", v, firstLineOf(r.Reason))
		}
		fmt.Fprintf(tw, "smtpsvc\t%s\t%d\t%s\n", state, ws.Version, detail)
	}
	tw.Flush()
	if st.InStep {
		fmt.Fprintf(w, "in step: the worker serves version %d, the one ds2mb wrote\n", st.MetabaseVersion)
	}
}

func firstLineOf(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
