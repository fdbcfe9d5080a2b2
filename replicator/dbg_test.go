package replicator_test

import "testing"

func dumpEvents(t *testing.T, rn *running) {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	for _, e := range rn.events {
		t.Log(e.String())
	}
}
