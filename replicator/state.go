package replicator

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/ds2mb/ds2mb/metabase"
)

// StateVersion is the format number of the state file.
const StateVersion = 1

// StatePath is where the state of a metabase lives: beside it.
func StatePath(metabasePath string) string { return metabasePath + ".ds2mb-state.json" }

// OwnedNode is what the replicator wrote to one node at its last save.
type OwnedNode struct {
	Class   string                 `json:"class"`
	Created bool                   `json:"created,omitempty"` // the replicator created the node
	Origin  string                 `json:"origin,omitempty"`  // entryUUID of the object that produced it
	Props   map[string]DesiredProp `json:"props"`
}

// State is the replicator's resume state: the source cookie, the mirror and
// the Locations and properties it owns. It describes the metabase version
// it names and is written strictly after that metabase.
type State struct {
	Version  int    `json:"version"`
	Server   string `json:"server"`
	Base     string `json:"base"`
	Source   string `json:"source"`           // "syncrepl" or "poll": the cookie's kind
	Cookie   []byte `json:"cookie,omitempty"` // opaque; base64 in JSON
	Metabase uint64 `json:"metabaseVersion"`  // the version it describes

	Objects map[string]stateObject `json:"objects"` // entryUUID → object
	Owned   map[string]*OwnedNode  `json:"owned"`   // Location → what it owns there
}

type stateObject struct {
	DN    string              `json:"dn"`
	Attrs map[string][]string `json:"attrs"`
}

// b64Prefix marks a value stored in base64 because it is not UTF-8 text
// (binary attributes such as msExchSmtpRelayIpList) or starts with the prefix.
const b64Prefix = "b64:"

func encodeValue(v string) string {
	if utf8.ValidString(v) && !strings.HasPrefix(v, b64Prefix) {
		return v
	}
	return b64Prefix + base64.StdEncoding.EncodeToString([]byte(v))
}

func decodeValue(v string) (string, error) {
	if s, ok := strings.CutPrefix(v, b64Prefix); ok {
		b, err := base64.StdEncoding.DecodeString(s)
		return string(b), err
	}
	return v, nil
}

// mirrorToState converts the mirror for the state file.
func mirrorToState(m Mirror) map[string]stateObject {
	out := make(map[string]stateObject, len(m))
	for id, o := range m {
		attrs := make(map[string][]string, len(o.Attrs))
		for k, vs := range o.Attrs {
			enc := make([]string, len(vs))
			for i, v := range vs {
				enc[i] = encodeValue(v)
			}
			attrs[k] = enc
		}
		out[id] = stateObject{DN: o.DN, Attrs: attrs}
	}
	return out
}

func mirrorFromState(s map[string]stateObject) (Mirror, error) {
	m := make(Mirror, len(s))
	for id, so := range s {
		attrs := make(map[string][]string, len(so.Attrs))
		for k, vs := range so.Attrs {
			dec := make([]string, len(vs))
			for i, v := range vs {
				d, err := decodeValue(v)
				if err != nil {
					return nil, fmt.Errorf("object %s attribute %s: %v", so.DN, k, err)
				}
				dec[i] = d
			}
			attrs[k] = dec
		}
		m[id] = &Object{DN: so.DN, Attrs: attrs}
	}
	return m, nil
}

// LoadState reads a state file. A missing file is (nil, nil).
func LoadState(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if s.Version != StateVersion {
		return nil, fmt.Errorf("%s: state format %d, want %d", path, s.Version, StateVersion)
	}
	return &s, nil
}

// SaveState writes a state file atomically.
func SaveState(path string, s *State) error {
	s.Version = StateVersion
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return metabase.WriteFileAtomic(path, b, 0o600)
}
