package e2e

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/store"
)

// processSetup is a router process's config: one source, one target, one route; the store in
// dir. It returns the config path, the admin address, the source exchange and a collector on
// the target.
func processSetup(t *testing.T, dir string) (path, admin, srcX string, out *collector) {
	t.Helper()
	admin = freeAddr(t)
	srcX, srcQ := sourceNames(t)
	tgtX := rabbit.Unique("e2e.out")
	out = collect(t, targetQueue(t, tgtX))
	cfg := processConfig(admin) + "store {\n  path = \"data/router.db\"\n}\n" +
		clusterBlock("main", rabbit.URL()) + sourceBlock("in", "main", srcX, srcQ) +
		targetBlock("out", "main", tgtX) + `
route "all" {
  source  = "in"
  targets = ["out"]
}
`
	return writeConfig(t, dir, cfg), admin, srcX, out
}

// TestCrash kills the router process mid-flow and restarts it: every message must reach the
// target (some maybe twice), and the log must hold each exactly once.
func TestCrash(t *testing.T) {
	rabbit.SkipIfShort(t)
	dir := t.TempDir()
	path, admin, srcX, out := processSetup(t, dir)
	first := startProcess(t, path, admin)

	msgs, ids := numbered("crash", "crash.event", 6000)
	traffic := publishInBackground(t, srcX, msgs, 3000)
	out.waitCount(t, "before the crash", 1000, 30*time.Second)
	first.kill(t)
	atKill := out.distinct()
	if atKill >= len(ids) {
		t.Fatalf("all %d messages were delivered before SIGKILL: the crash was not mid-flow", len(ids))
	}
	first.checkNoRace(t)

	second := startProcess(t, path, admin)
	traffic.wait(t)
	out.waitIDs(t, "target out after the restart", ids, 90*time.Second)
	dups := out.duplicates()
	t.Logf("killed with %d of %d messages delivered; after the restart all arrived, %d of them more than once (at least once)",
		atKill, len(ids), len(dups))
	waitSettled(t, admin, uint64(len(ids)), 30*time.Second)
	if code := second.terminate(t, stopTimeout); code != 0 {
		t.Fatalf("router exited with status %d after SIGTERM, want 0:\n%s", code, second.out.Tail(30))
	}
	second.checkNoRace(t)
	checkLogOnce(t, filepath.Join(dir, "data", "router.db"), ids)
}

// checkLogOnce opens the stopped router's log and checks that it holds each id exactly once,
// and nothing else.
func checkLogOnce(t *testing.T, path string, ids []string) {
	t.Helper()
	st, err := store.Open(store.Options{Path: path, ReadOnly: true})
	if err != nil {
		t.Fatalf("opening the event log read-only: %v", err)
	}
	defer st.Close()
	seen := map[string]int{}
	events := 0
	if _, err := st.Scan(1, 0, nil, func(ev *event.Event) bool {
		seen[ev.Props.MessageID]++
		events++
		return true
	}); err != nil {
		t.Fatalf("scanning the event log: %v", err)
	}
	want := map[string]bool{}
	var missing, twice []string
	for _, id := range ids {
		want[id] = true
		switch seen[id] {
		case 0:
			missing = append(missing, id)
		case 1:
		default:
			twice = append(twice, id)
		}
	}
	var unknown []string
	for id := range seen {
		if !want[id] {
			unknown = append(unknown, id)
		}
	}
	if len(missing)+len(twice)+len(unknown) > 0 || events != len(ids) {
		t.Errorf("the log holds %d events for %d messages: %d missing (%s), %d more than once (%s), %d unknown (%s)",
			events, len(ids), len(missing), sample(missing), len(twice), sample(twice), len(unknown), sample(unknown))
	}
}
