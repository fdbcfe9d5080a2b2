package replicator

import (
	"bufio"
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
	// Stamp is the highest directory change stamp (entryCSN) replicated.
	Stamp string `json:"stamp,omitempty"`

	Objects map[string]stateObject `json:"objects"` // entryUUID → object
	Owned   map[string]*OwnedNode  `json:"owned"`   // Location → what it owns there
}

// stateHead is State without its two big maps, which saveState streams.
type stateHead struct {
	Version  int    `json:"version"`
	Server   string `json:"server"`
	Base     string `json:"base"`
	Source   string `json:"source"`
	Cookie   []byte `json:"cookie,omitempty"`
	Metabase uint64 `json:"metabaseVersion"`
	Stamp    string `json:"stamp,omitempty"`
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
		out[id] = objectToState(o)
	}
	return out
}

func objectToState(o *Object) stateObject {
	attrs := make(map[string][]string, len(o.Attrs))
	for k, vs := range o.Attrs {
		enc := vs
		for i, v := range vs {
			if e := encodeValue(v); e != v {
				if &enc[0] == &vs[0] {
					enc = append([]string(nil), vs...)
				}
				enc[i] = e
			}
		}
		attrs[k] = enc
	}
	return stateObject{DN: o.DN, Attrs: attrs}
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
	return saveState(path, s, nil)
}

// saveState writes s, taking the objects from m when it is not nil (so that
// the mirror is not copied first). The file is streamed object by object,
// so that no buffer of the whole state is held.
func saveState(path string, s *State, m Mirror) error {
	s.Version = StateVersion
	return metabase.WriteAtomic(path, 0o600, func(w *bufio.Writer) error {
		hb, err := json.Marshal(stateHead{Version: s.Version, Server: s.Server, Base: s.Base, Source: s.Source, Cookie: s.Cookie, Metabase: s.Metabase, Stamp: s.Stamp})
		if err != nil {
			return err
		}
		w.Write(hb[:len(hb)-1]) // without the closing brace
		w.WriteString(`,"objects":{`)
		n := 0
		if m != nil {
			for id, o := range m {
				if err := writeMember(w, &n, id, objectToState(o)); err != nil {
					return err
				}
			}
		} else {
			for id, so := range s.Objects {
				if err := writeMember(w, &n, id, so); err != nil {
					return err
				}
			}
		}
		w.WriteString(`},"owned":{`)
		n = 0
		for loc, on := range s.Owned {
			if err := writeMember(w, &n, loc, on); err != nil {
				return err
			}
		}
		_, err = w.WriteString("}}\n")
		return err
	})
}

// writeMember writes one `"key":value` member of a JSON object, preceded by
// a comma unless it is the first (*n counts the members written).
func writeMember(w *bufio.Writer, n *int, key string, v any) error {
	if *n > 0 {
		w.WriteByte(',')
	}
	*n++
	kb, err := json.Marshal(key)
	if err != nil {
		return err
	}
	w.Write(kb)
	w.WriteByte(':')
	vb, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(vb)
	return err
}
