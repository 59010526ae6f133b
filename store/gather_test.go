package store

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// A small batch waits for more events before it is committed: three appends in flight at once
// make one commit, however the appender goroutine happened to be scheduled.
func TestSmallBatchWaitsForMore(t *testing.T) {
	opts := testOptions(t)
	opts.NoSync = false
	opts.batchMin, opts.batchWait, opts.machineBusy = 3, time.Minute, busy // the batch is complete long before
	s := openStore(t, opts)
	var wg sync.WaitGroup
	for i := range 3 {
		appendCounted(t, s, &wg, i)
	}
	wg.Wait()
	if got := s.commits.Load(); got != 1 {
		t.Fatalf("%d commits for 3 events appended together, want 1", got)
	}
}

// A writer that waits for each commit before its next append cannot fill a batch: once a wait
// gained nothing, the next small batches are committed at once.
func TestLoneWriterDoesNotWait(t *testing.T) {
	opts := testOptions(t)
	opts.NoSync = false
	opts.batchMin, opts.batchWait, opts.machineBusy = 64, 10*time.Millisecond, busy
	s := openStore(t, opts)
	appendSync(t, s, testEvent(1, 100), false) // waits 10 ms for nothing
	if s.gatherSkip != gatherSkip {
		t.Fatalf("after a wait that gained nothing: skip %d, want %d", s.gatherSkip, gatherSkip)
	}
	appendSync(t, s, testEvent(2, 100), false)
	if s.gatherSkip != gatherSkip-1 {
		t.Fatalf("the next small batch waited (skip %d, want %d)", s.gatherSkip, gatherSkip-1)
	}
	if got := s.commits.Load(); got != 2 {
		t.Fatalf("%d commits, want 2", got)
	}
}

// While a small batch waits, appends wake the appender only once enough events are queued to
// complete it; a barrier or an op still wakes it at once.
func TestQueueWakesAtThreshold(t *testing.T) {
	q := queue{wake: make(chan struct{}, 1)}
	woken := func() bool {
		select {
		case <-q.wake:
			return true
		default:
			return false
		}
	}
	q.push(appendItem{ev: testEvent(0, 10)})
	if !woken() {
		t.Fatal("an append with no threshold set did not wake the appender")
	}
	q.wakeAt(3) // one queued, two more needed
	q.push(appendItem{ev: testEvent(1, 10)})
	if woken() {
		t.Fatal("woken at 2 of 3 events")
	}
	q.push(appendItem{ev: testEvent(2, 10)})
	if !woken() {
		t.Fatal("not woken at 3 of 3 events")
	}
	items, _, _ := q.take(10, false)
	if len(items) != 3 || q.events != 0 {
		t.Fatalf("took %d items, %d events left counted; want 3 and 0", len(items), q.events)
	}
	q.wakeAt(2)
	q.push(appendItem{barrier: func(error) {}})
	if !woken() {
		t.Fatal("a barrier did not wake the appender")
	}
	q.push(appendItem{ev: testEvent(3, 10)})
	q.push(appendItem{ev: testEvent(4, 10)})
	if !woken() {
		t.Fatal("not woken at 2 of 2 events")
	}
	q.wakeAt(0)
	q.wakeAt(1) // already there: wakes at once
	if !woken() {
		t.Fatal("a threshold already met did not wake the appender")
	}
	q.wakeAt(0)
	q.push(appendItem{ev: testEvent(5, 10)})
	if !woken() {
		t.Fatal("an append after the threshold was cleared did not wake the appender")
	}
}

// Appends that arrive while a small batch waits, too few to wake the appender, join the batch
// when the wait ends: one commit, and the waits stay on.
func TestEventsThatCameDuringTheWaitJoinTheBatch(t *testing.T) {
	opts := testOptions(t)
	opts.NoSync = false
	opts.batchMin, opts.batchWait, opts.machineBusy = 64, 200*time.Millisecond, busy
	s := openStore(t, opts)
	commits := s.commits.Load()
	var wg sync.WaitGroup
	add := func(i int) { appendCounted(t, s, &wg, i) }
	add(1)
	waitFor(t, "the appender waiting for more events", func() bool {
		s.queue.mu.Lock()
		defer s.queue.mu.Unlock()
		return s.queue.wantEvents > 0
	})
	add(2)
	add(3)
	wg.Wait()
	if got := s.commits.Load() - commits; got != 1 {
		t.Fatalf("%d commits for 3 events appended during one wait, want 1", got)
	}
	if s.gatherSkip != 0 {
		t.Fatalf("a wait that gained two events turned the waits off (skip %d)", s.gatherSkip)
	}
}

// busy stands for a machine with little idle CPU, where small batches wait for more.
func busy() bool { return true }

// On a machine with CPU to spare a small batch is committed at once, however long the wait
// configured.
func TestIdleMachineDoesNotWait(t *testing.T) {
	opts := testOptions(t)
	opts.NoSync = false
	opts.batchMin, opts.batchWait = 64, time.Hour
	opts.machineBusy = func() bool { return false }
	s := openStore(t, opts)
	done := make(chan error, 1)
	ev := testEvent(1, 100)
	s.Append(ev, FingerprintOf(ev), Window{}, func(_ uint64, _ bool, err error) { done <- err })
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a small batch waited for more on an idle machine")
	}
	if s.gatherSkip != 0 {
		t.Fatalf("gather waited on an idle machine (skip %d)", s.gatherSkip)
	}
}

// The machine counts as busy when less than busyThreshold of the CPU time between two
// readings at least idleEvery apart was idle; readings closer together keep the last answer.
func TestMachineBusyFromCPUTimes(t *testing.T) {
	var idle, total uint64
	ok := true
	c := cpuIdle{read: func() (uint64, uint64, bool) { return idle, total, ok }}
	t0 := time.Unix(1000, 0)
	if c.machineBusy(t0) {
		t.Fatal("busy at the first reading, with nothing to compare")
	}
	idle, total = 5, 100 // 5% idle
	if c.machineBusy(t0.Add(idleEvery / 2)) {
		t.Fatal("read again before idleEvery")
	}
	if !c.machineBusy(t0.Add(idleEvery)) {
		t.Fatal("5% idle: not busy")
	}
	idle, total = 25, 200 // 20% idle since: a quarter was busy once, no longer
	if !c.machineBusy(t0.Add(idleEvery + idleEvery/2)) {
		t.Fatal("the answer changed before idleEvery")
	}
	if c.machineBusy(t0.Add(2 * idleEvery)) {
		t.Fatal("20% idle: busy")
	}
	ok = false
	if c.machineBusy(t0.Add(3 * idleEvery)) {
		t.Fatal("busy without counters")
	}
}

// appendCounted appends test event i without waiting for its commit; wg is done when it is.
func appendCounted(t *testing.T, s *Store, wg *sync.WaitGroup, i int) {
	wg.Add(1)
	ev := testEvent(i, 100)
	s.Append(ev, FingerprintOf(ev), Window{}, func(_ uint64, _ bool, err error) {
		if err != nil {
			t.Error(err)
		}
		wg.Done()
	})
}

// A commit is timed, and the time a small batch waited for more is counted: zero on an idle
// machine, the wait's length (or more) on a busy one.
func TestCommitTimesAreCounted(t *testing.T) {
	for _, c := range []struct {
		name string
		busy bool
	}{{"idle", false}, {"busy", true}} {
		t.Run(c.name, func(t *testing.T) {
			opts := testOptions(t)
			opts.NoSync = false
			opts.batchMin, opts.batchWait = 64, 5*time.Millisecond
			opts.machineBusy = func() bool { return c.busy }
			s := openStore(t, opts)
			appendSync(t, s, testEvent(1, 100), false) // a lone writer: a busy machine waits in vain
			if n := testutil.CollectAndCount(opts.Metrics.CommitDuration); n != 1 {
				t.Fatalf("%d commit duration series, want 1", n)
			}
			var m dto.Metric
			if err := opts.Metrics.CommitDuration.Write(&m); err != nil {
				t.Fatal(err)
			}
			if got, want := m.GetHistogram().GetSampleCount(), s.commits.Load(); got != want {
				t.Fatalf("%d commits timed, %d committed", got, want)
			}
			waited := testutil.ToFloat64(opts.Metrics.CommitWait)
			switch {
			case !c.busy && waited != 0:
				t.Fatalf("waited %v s on an idle machine", waited)
			case c.busy && waited < opts.batchWait.Seconds():
				t.Fatalf("waited %v s on a busy machine, want at least the %v wait", waited, opts.batchWait)
			}
		})
	}
}
