package store

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	bolt "go.etcd.io/bbolt"

	"github.com/wasmrouter/wasmrouter/event"
)

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock { return &testClock{now: baseTime} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// appendAt appends n events stamped with the store's clock (IngestTime left zero).
func appendAt(t *testing.T, s *Store, from, n, bodyLen int) {
	t.Helper()
	errs := make(chan error, n)
	for i := from; i < from+n; i++ {
		ev := testEvent(i, bodyLen)
		ev.IngestTime = time.Time{}
		s.Append(ev, FingerprintOf(ev), Window{}, func(_ uint64, _ bool, err error) { errs <- err })
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestRetentionByAge(t *testing.T) {
	opts := testOptions(t)
	clock := newTestClock()
	opts.Now, opts.Retention = clock.Now, time.Hour
	s := openStore(t, opts)

	appendAt(t, s, 0, 12000, 10) // more than two deletion chunks
	clock.Advance(30 * time.Minute)
	appendAt(t, s, 12000, 300, 10)
	clock.Advance(45 * time.Minute) // the first 12000 are now 75 minutes old
	if err := s.enforce(); err != nil {
		t.Fatal(err)
	}
	if s.FirstSeq() != 12001 || s.LastSeq() != 12300 {
		t.Fatalf("range %d..%d, want 12001..12300", s.FirstSeq(), s.LastSeq())
	}
	if _, err := s.Get(12000); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a removed event: %v", err)
	}
	// A scan from the start jumps the removed records.
	first := uint64(0)
	next, err := s.Scan(1, 1, nil, func(ev *event.Event) bool { first = ev.Seq; return true })
	if err != nil || first != 12001 || next != 12002 {
		t.Fatalf("scan from 1: first %d next %d err %v", first, next, err)
	}
	// The fingerprint of a removed event no longer counts: its redelivery is stored again.
	for _, i := range []int{5, 11500} {
		if _, dup := appendSync(t, s, testEvent(i, 10), true); dup {
			t.Fatalf("redelivery of removed event %d reported as duplicate", i+1)
		}
	}
	st, _ := s.Stats(true)
	if st.Events != 302 || st.FirstSeq != 12001 || st.Oldest != baseTime.Add(30*time.Minute) {
		t.Fatalf("stats after retention %+v", st)
	}

	// The background goroutine does the same on its own.
	s.Close()
	opts.retentionEvery = 10 * time.Millisecond
	s = openStore(t, opts)
	clock.Advance(time.Hour)
	waitFor(t, "background retention", func() bool { return s.FirstSeq() == 0 })
	if s.LastSeq() != 12302 {
		t.Fatalf("LastSeq %d after the log emptied", s.LastSeq())
	}
	fresh := testEvent(1, 10)
	fresh.IngestTime = time.Time{} // stamped now, so the background retention keeps it
	if seq, _ := appendSync(t, s, fresh, false); seq != 12303 || s.FirstSeq() != 12303 {
		t.Fatalf("append into the emptied log got seq %d, FirstSeq %d", seq, s.FirstSeq())
	}
}

func TestMaxSizeDropOldest(t *testing.T) {
	opts := testOptions(t)
	opts.MaxSize, opts.OnFull = 1<<20, OnFullDropOldest
	s := openStore(t, opts)
	s.SetCursor(DeliveryCursorPrefix+"orders/analytics", 500)
	appendN(t, s, 4000, 1024) // about four times MaxSize; no append fails
	// Every event dropped past the cursor counts as lost.
	lostMatches := func() bool {
		return testutil.ToFloat64(opts.Metrics.Lost) == float64(s.FirstSeq()-1-500)
	}
	waitFor(t, "size enforcement", func() bool {
		used, err := s.usedBytes()
		return err == nil && used <= opts.MaxSize && s.FirstSeq() > 1 && lostMatches()
	})
	dropped := s.FirstSeq() - 1
	if dropped < 2000 || s.LastSeq() != 4000 {
		t.Fatalf("range %d..%d", s.FirstSeq(), s.LastSeq())
	}
	if s.Full() {
		t.Fatal("drop_oldest reports Full")
	}
}

func TestMaxSizeBlock(t *testing.T) {
	opts := testOptions(t)
	clock := newTestClock()
	opts.Now, opts.Retention = clock.Now, time.Hour
	opts.MaxSize, opts.OnFull = 256<<10, OnFullBlock
	opts.retentionEvery = time.Hour // only kicks run it
	s := openStore(t, opts)
	fillUntilFull(t, s)
	last := s.LastSeq()
	held := make(chan error, 1)
	ev := testEvent(99999, 1024)
	s.Append(ev, FingerprintOf(ev), Window{}, func(_ uint64, _ bool, err error) { held <- err })
	// Other writes still pass; when AddDeadLetter returns the appender has looked at the
	// held append at least once.
	if _, err := s.AddDeadLetter(DeadLetter{Route: "r", Target: "t", Seq: 1}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-held:
		t.Fatalf("append completed while full: %v", err)
	default:
	}
	if s.LastSeq() != last {
		t.Fatal("an event was written while full")
	}

	// Age retention frees the space; the held append then goes through.
	clock.Advance(2 * time.Hour)
	s.kickRetention()
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if s.Full() || ev.Seq != last+1 || s.FirstSeq() != last+1 {
		t.Fatalf("after freeing: full %v, seq %d, first %d", s.Full(), ev.Seq, s.FirstSeq())
	}

	// Appends still held at Close fail with ErrFull.
	fillUntilFull(t, s)
	s.Append(ev.Clone(), FingerprintOf(ev), Window{}, func(_ uint64, _ bool, err error) { held <- err })
	s.Close()
	if err := <-held; !errors.Is(err, ErrFull) {
		t.Fatalf("held append at Close: %v", err)
	}
}

// fillUntilFull appends events stamped with the store's clock until the store is full as
// retention measures it. A commit that crosses MaxSize sets Full at once, but the retention
// pass it kicks measures again after a write transaction of its own and may find room (and
// events stamped before the clock moved would be expired at once): so the test runs that
// pass itself until it agrees, and a held append cannot slip through between its checks.
func fillUntilFull(t *testing.T, s *Store) {
	t.Helper()
	for i := 0; ; i++ {
		if i > 5000 {
			t.Fatal("never full")
		}
		if s.Full() {
			if err := s.enforce(); err != nil {
				t.Fatal(err)
			}
			if s.Full() {
				return
			}
		}
		ev := testEvent(i, 1024)
		ev.IngestTime = time.Time{} // stamped by the store's clock, so not already expired
		appendSync(t, s, ev, false)
	}
}

// TestFileSizeBounded shows that under a steady load with retention the file stops growing:
// bbolt reuses the pages freed by deletions.
func TestFileSizeBounded(t *testing.T) {
	opts := testOptions(t)
	clock := newTestClock()
	opts.Now, opts.Retention = clock.Now, time.Hour
	s := openStore(t, opts)
	var sizes, hwms []int64
	for cycle := range 24 {
		appendAt(t, s, cycle*1000, 1000, 1024)
		clock.Advance(30 * time.Minute)
		if err := s.enforce(); err != nil {
			t.Fatal(err)
		}
		var hwm int64
		s.db.View(func(tx *bolt.Tx) error { hwm = tx.Size(); return nil })
		sizes, hwms = append(sizes, s.Size()), append(hwms, hwm)
	}
	t.Logf("file sizes %v", sizes)
	t.Logf("high-water marks %v", hwms)
	// After the warm-up (the log holds about three cycles) 16 more cycles, some 16 MiB, go
	// through a file of under 5 MiB, which may grow only by a few pages of fragmentation.
	for i := 8; i < len(sizes); i++ {
		if limit := sizes[7] + sizes[7]/50; sizes[i] > limit {
			t.Fatalf("file grew from %d to %d by cycle %d", sizes[7], sizes[i], i)
		}
	}
}
