package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// A route added while the router was stopped starts at the end of the log: it gets what
// arrives after the start, not the history the log already holds (router replay gives it
// that), and the log line and the status say so. The route that was there resumes where it was.
func TestNewRouteStartsAtEndOfLog(t *testing.T) {
	rabbit.SkipIfShort(t)
	dir := t.TempDir()
	srcX, srcQ := sourceNames(t)
	oldX, newX := rabbit.Unique("e2e.old"), rabbit.Unique("e2e.new")
	oldQ, newQ := targetQueue(t, oldX), targetQueue(t, newX)
	base := clusterBlock("main", rabbit.URL()) + sourceBlock("in", "main", srcX, srcQ) +
		targetBlock("old", "main", oldX) + targetBlock("new", "main", newX) + `
route "existing" {
  source  = "in"
  targets = ["old"]
}
`
	oldC, newC := collect(t, oldQ), collect(t, newQ)
	r := startRouter(t, writeConfig(t, dir, base))
	before, beforeIDs := numbered("before", "k", 50)
	mustPublish(t, srcX, before...)
	oldC.waitIDs(t, "old target, first run", beforeIDs, 30*time.Second)
	stopTimed(t, r)

	// Stopped: a new route, and more events queued for the next start.
	during, duringIDs := numbered("during", "k", 30)
	mustPublish(t, srcX, during...)
	r = startRouter(t, writeConfig(t, dir, base+`
route "added" {
  source  = "in"
  targets = ["new"]
}
`))
	oldC.waitIDs(t, "old target, second run", append(beforeIDs, duringIDs...), 30*time.Second)

	after, afterIDs := numbered("after", "k", 20)
	mustPublish(t, srcX, after...)
	oldC.waitIDs(t, "old target, after", afterIDs, 30*time.Second)
	newC.waitIDs(t, "new target", afterIDs, 30*time.Second)
	if dups := oldC.duplicates(); len(dups) > 0 {
		t.Errorf("the existing route delivered again after the restart: %v", dups)
	}
	for _, m := range newC.messages() {
		if strings.HasPrefix(m.MessageId, "before-") {
			t.Fatalf("the new route got history from before its start: %s", m.MessageId)
		}
	}

	// The status and the log say where the new pair started.
	var startedAfter *uint64
	for _, s := range r.Engine.Status().Streams {
		if s.Route == "added" {
			startedAfter = s.StartedAfter
		} else if s.StartedAfter != nil {
			t.Errorf("stream %s -> %s had a cursor, yet reports started_after", s.Route, s.Target)
		}
	}
	if startedAfter == nil || *startedAfter < 50 {
		t.Errorf("status of the new pair: started_after %v, want the log's end at its start (>= 50)", startedAfter)
	}
	if !strings.Contains(r.Logs.String(), "new delivery stream starts at the end of the log") {
		t.Errorf("no log line about the new stream's start")
	}
}
