package router_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/router/routertest"
)

// listingLog is the fake log that also lists the cursors that exist, as the bbolt log does.
type listingLog struct {
	*routertest.Log
	made madeCursors
}

func (l *listingLog) SetCursor(name string, seq uint64) {
	l.Log.SetCursor(name, seq)
	l.made.add(name)
}

func (l *listingLog) DeleteCursor(name string) error {
	l.made.remove(name)
	return l.Log.DeleteCursor(name)
}

func (l *listingLog) Cursors() (map[string]uint64, error) { return l.made.list(l.Cursor) }

func (l *listingLog) ResetCursor(name string, seq uint64) error {
	l.SetCursor(name, seq)
	return nil
}

const reloadTargets = `
target "t1" {
  cluster  = "main"
  exchange = "x1"
}
target "t2" {
  cluster  = "main"
  exchange = "x2"
}
route "all" {
  source  = "in"
  targets = ["t1"]
}
`

// nextTopology compiles the configuration a reload puts in force (the rig's source and cluster
// with hcl).
func nextTopology(t testing.TB, hcl string) *router.Topology {
	t.Helper()
	src := `
cluster "main" { url = "amqp://guest:guest@127.0.0.1:1/" }
source "in" {
  cluster  = "main"
  exchange = "events"
  queue    = "q"
}
` + hcl
	return routertest.Topology(t, src)
}

// A reload on the fakes: the route that stays delivers everything once, the new one what is
// logged after it starts (and says so in the status), the removed one reports what it left,
// the generation counts, and a stopped engine refuses.
func TestReloadAddsAndRemovesPairs(t *testing.T) {
	r := newRig(t, reloadTargets, rigOptions{lists: true})
	before := bodies("a", 3)
	r.publish("k", before...)
	r.received("x1", 3)

	res, err := r.engine.Reload(context.Background(), nextTopology(t, reloadTargets+`
route "extra" {
  source  = "in"
  targets = ["t2"]
}
`))
	if err != nil || res.Generation != 2 || len(res.Abandoned) != 0 {
		t.Fatalf("reload: %+v, %v", res, err)
	}
	if st := r.engine.Status(); st.Generation != 2 {
		t.Errorf("status generation %d", st.Generation)
	}
	r.waitFor("the new pair's started_after in the status", func() bool {
		for _, s := range r.engine.Status().Streams {
			if s.Route == "extra" && s.StartedAfter != nil {
				return *s.StartedAfter == 3
			}
		}
		return false
	})
	after := bodies("b", 2)
	r.publish("k", after...)
	if got := r.received("x1", 5); !slices.Equal(got, append(slices.Clone(before), after...)) {
		t.Errorf("t1 (unchanged route) got %v", got)
	}
	if got := r.received("x2", 2); !slices.Equal(got, after) {
		t.Errorf("t2 (new route) got %v, want only what came after the reload", got)
	}
	if n := len(r.src.Acked()); n != 5 {
		t.Errorf("%d of 5 deliveries acknowledged", n)
	}

	res, err = r.engine.Reload(context.Background(), nextTopology(t, reloadTargets))
	if err != nil || res.Generation != 3 {
		t.Fatalf("second reload: %+v, %v", res, err)
	}
	if n, ok := res.Abandoned["extra -> t2"]; !ok || n != 0 {
		t.Errorf("removing route extra: abandoned %v, want extra -> t2: 0", res.Abandoned)
	}
	r.stop()
	if _, err := r.engine.Reload(context.Background(), nextTopology(t, reloadTargets)); !errors.Is(err, router.ErrNotRunning) {
		t.Errorf("reload of a stopped engine: %v, want ErrNotRunning", err)
	}
}
