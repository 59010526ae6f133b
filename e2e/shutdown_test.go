package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// TestGracefulShutdown stops the router process with SIGTERM while messages flow: it must exit
// 0, and once restarted deliver every message. A graceful stop finishes what is in flight and
// records it, so nothing is delivered twice.
func TestGracefulShutdown(t *testing.T) {
	rabbit.SkipIfShort(t)
	dir := t.TempDir()
	path, admin, srcX, out := processSetup(t, dir)
	first := startProcess(t, path, admin)

	msgs, ids := numbered("graceful", "graceful.event", 4000)
	traffic := publishInBackground(t, srcX, msgs, 2000)
	out.waitCount(t, "before SIGTERM", 500, 30*time.Second)
	if code := first.terminate(t, stopTimeout); code != 0 {
		t.Fatalf("router exited with status %d after SIGTERM under traffic, want 0:\n%s", code, first.out.Tail(30))
	}
	atStop := out.distinct()
	if atStop >= len(ids) {
		t.Fatalf("all %d messages were delivered before SIGTERM: the stop was not under traffic", len(ids))
	}
	if !strings.Contains(first.out.String(), "stopped") {
		t.Errorf("the router's output does not report a graceful stop")
	}
	first.checkNoRace(t)

	second := startProcess(t, path, admin)
	traffic.wait(t)
	out.waitIDs(t, "target out after the restart", ids, 60*time.Second)
	waitSettled(t, admin, uint64(len(ids)), 30*time.Second)
	if code := second.terminate(t, stopTimeout); code != 0 {
		t.Fatalf("router exited with status %d after SIGTERM, want 0:\n%s", code, second.out.Tail(30))
	}
	second.checkNoRace(t)
	if dups := out.duplicates(); len(dups) > 0 {
		t.Errorf("%d messages were delivered twice across a graceful stop (stopped with %d of %d delivered), e.g. %s",
			len(dups), atStop, len(ids), sample(keysOf(dups)))
	}
	checkLogOnce(t, filepath.Join(dir, "data", "router.db"), ids)
}

func keysOf(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
