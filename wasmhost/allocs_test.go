package wasmhost

import (
	"context"
	"testing"
)

// TestCallNoAllocs holds "no call allocates" in place for the filters of the benchmarks: the
// whole host path (pool, body copy, entry point, result, metrics) on a 1 KiB body. It runs in
// the non-race step of make test (the race detector makes sync.Pool drop items at random).
func TestCallNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector; make test runs this without it")
	}
	h := newHost(t)
	for _, g := range []benchGuest{{"threshold-c", cGuest("threshold")}, {"threshold-go", goGuest("threshold")}, {"noop-go", goGuest("noop")}} {
		t.Run(g.name, func(t *testing.T) {
			m := h.load(t, ModuleConfig{Name: "allocs-" + g.name, Path: g.path, Config: map[string]string{"min": "100"}})
			in := &Invocation{Event: testEvent()}
			in.Event.Body = body1KiB
			if out := m.Call(context.Background(), RoleFilter, in); out.Code != Continue {
				t.Fatalf("%v %q", out.Code, out.Reason)
			}
			allocs := testing.AllocsPerRun(200, func() { m.Call(context.Background(), RoleFilter, in) })
			if allocs != 0 {
				t.Errorf("%v allocations per call", allocs)
			}
		})
	}
}
