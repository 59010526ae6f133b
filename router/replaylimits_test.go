package router

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func finishedJob(id string, end time.Time) *replayJob {
	j := &replayJob{id: id, finished: make(chan struct{}), state: "done", end: end}
	close(j.finished)
	return j
}

// TestFinishedJobsExpireAndAreCapped: finished jobs older than keepFinished are forgotten,
// at most maxFinished are kept (the newest), and a job beyond maxRunning is refused.
func TestFinishedJobsExpireAndAreCapped(t *testing.T) {
	var r replays
	now := time.Now()
	r.jobs = map[string]*replayJob{"old": finishedJob("old", now.Add(-2*keepFinished))}
	for i := range maxFinished + 50 {
		id := fmt.Sprintf("done-%03d", i)
		r.jobs[id] = finishedJob(id, now.Add(-time.Duration(maxFinished+50-i)*time.Second))
	}
	if err := r.add(&replayJob{id: "new", finished: make(chan struct{}), state: "running"}); err != nil {
		t.Fatal(err)
	}
	defer r.wg.Done()
	if _, ok := r.jobs["old"]; ok {
		t.Error("an expired job is still kept")
	}
	if n := len(r.jobs); n != maxFinished+1 {
		t.Errorf("%d jobs kept, want %d finished and the running one", n, maxFinished)
	}
	if _, ok := r.jobs[fmt.Sprintf("done-%03d", maxFinished+49)]; !ok {
		t.Error("the newest finished job was dropped")
	}
	if _, ok := r.jobs["done-000"]; ok {
		t.Error("the oldest finished job was kept beyond the cap")
	}
	for i := 1; i < maxRunning; i++ {
		if err := r.add(&replayJob{id: fmt.Sprint("run-", i), finished: make(chan struct{}), state: "running"}); err != nil {
			t.Fatalf("job %d: %v", i, err)
		}
		defer r.wg.Done()
	}
	err := r.add(&replayJob{id: "one-too-many", finished: make(chan struct{}), state: "running"})
	if !errors.Is(err, ErrTooManyJobs) || !errors.Is(err, ErrBadReplay) {
		t.Errorf("job beyond maxRunning: %v", err)
	}
}
