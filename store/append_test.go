package store

import (
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wasmrouter/wasmrouter/event"
)

// hookCtl lets a test hold the appender inside a transaction and fail a chosen one.
type hookCtl struct {
	mu       sync.Mutex
	block    chan struct{}
	entered  chan struct{}
	failNext error
}

func newHookCtl() *hookCtl { return &hookCtl{entered: make(chan struct{}, 1)} }

func (h *hookCtl) hook() error {
	h.mu.Lock()
	block, err := h.block, h.failNext
	h.block, h.failNext = nil, nil
	h.mu.Unlock()
	if block != nil {
		h.entered <- struct{}{}
		<-block
	}
	return err
}

// holdNext makes the next transaction wait until the returned release is called.
func (h *hookCtl) holdNext() (release func()) {
	ch := make(chan struct{})
	h.mu.Lock()
	h.block = ch
	h.mu.Unlock()
	return func() { close(ch) }
}

// openHooked opens a store on opts whose transactions go through a new hookCtl.
func openHooked(t *testing.T, opts Options) (*Store, *hookCtl) {
	t.Helper()
	ctl := newHookCtl()
	opts.commitHook = ctl.hook
	return openStore(t, opts), ctl
}

// holdCommitOf appends ev and holds the transaction that takes it, returning once the appender
// is inside it: what is appended next queues behind it. release lets the transaction go on;
// the append's answer arrives on answer.
func (h *hookCtl) holdCommitOf(s *Store, ev *event.Event) (release func(), answer <-chan appendAnswer) {
	release = h.holdNext()
	ch := make(chan appendAnswer, 1)
	s.Append(ev, FingerprintOf(ev), Window{}, func(seq uint64, dup bool, err error) { ch <- appendAnswer{seq, dup, err} })
	<-h.entered
	return release, ch
}

func (h *hookCtl) failNextWith(err error) {
	h.mu.Lock()
	h.failNext = err
	h.mu.Unlock()
}

func TestGroupCommitOrderAndBatching(t *testing.T) {
	opts := testOptions(t)
	opts.NoSync = false // natural batching comes from the fsync
	s, ctl := openHooked(t, opts)

	// Hold the first commit so that everything below queues up behind it.
	release, firstDone := ctl.holdCommitOf(s, testEvent(0, 10))

	const writers, perWriter = 16, 500
	type call struct{ writer, i int }
	var (
		mu    sync.Mutex
		order []call
		seqs  []uint64
		calls = map[call]int{}
		all   sync.WaitGroup
	)
	all.Add(writers * perWriter)
	var queued sync.WaitGroup
	for w := range writers {
		queued.Go(func() {
			for i := range perWriter {
				ev := testEvent(w*perWriter+i, 1024)
				s.Append(ev, FingerprintOf(ev), Window{}, func(seq uint64, _ bool, err error) {
					if err != nil || ev.Seq != seq {
						t.Errorf("done(%d, %v) for event with seq %d", seq, err, ev.Seq)
					}
					mu.Lock()
					order, seqs = append(order, call{w, i}), append(seqs, seq)
					calls[call{w, i}]++
					mu.Unlock()
					all.Done()
				})
			}
		})
	}
	queued.Wait()
	release()
	all.Wait()
	if a := <-firstDone; a.err != nil {
		t.Fatal(a.err)
	}

	next := make([]int, writers)
	for k, c := range order {
		if c.i != next[c.writer] {
			t.Fatalf("writer %d: done for append %d, want %d", c.writer, c.i, next[c.writer])
		}
		next[c.writer]++
		if seqs[k] != uint64(k)+2 { // the held first event has seq 1
			t.Fatalf("done #%d got seq %d, want %d", k, seqs[k], k+2)
		}
	}
	for c, n := range calls {
		if n != 1 {
			t.Fatalf("done for %v called %d times", c, n)
		}
	}
	// One commit for the held event, then batches of MaxBatch.
	wantCommits := 1 + (writers*perWriter+defaultMaxBatch-1)/defaultMaxBatch
	if got := s.commits.Load(); got != uint64(wantCommits) {
		t.Fatalf("%d commits for %d events, want %d", got, writers*perWriter+1, wantCommits)
	}
	if got := testutil.ToFloat64(opts.Metrics.Commits); got != float64(wantCommits) {
		t.Fatalf("router_store_commits_total = %v", got)
	}
	if s.LastSeq() != writers*perWriter+1 || s.FirstSeq() != 1 {
		t.Fatalf("range %d..%d", s.FirstSeq(), s.LastSeq())
	}
}

func TestGroupCommitUnderLoad(t *testing.T) {
	opts := testOptions(t)
	opts.NoSync = false
	s := openStore(t, opts)
	const writers, perWriter = 8, 300
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				appendSync(t, s, testEvent(w*perWriter+i, 256), false)
			}
		})
	}
	wg.Wait()
	commits := s.commits.Load()
	t.Logf("%d events in %d commits", writers*perWriter, commits)
	if commits >= writers*perWriter {
		t.Fatalf("no batching: %d commits for %d events", commits, writers*perWriter)
	}
}

func TestDedup(t *testing.T) {
	opts := testOptions(t)
	s, ctl := openHooked(t, opts)
	a := testEvent(1, 10)
	seqA, _ := appendSync(t, s, a, false)
	if seq, dup := appendSync(t, s, a.Clone(), true); !dup || seq != seqA {
		t.Fatalf("redelivery: seq %d dup %v, want %d true", seq, dup, seqA)
	}
	// Not flagged as a redelivery: stored again (identical messages do exist).
	seqA2, dup := appendSync(t, s, a.Clone(), false)
	if dup || seqA2 == seqA {
		t.Fatalf("plain append of equal content: seq %d dup %v", seqA2, dup)
	}
	// A redelivery is only compared with events from its floor on: an identical message logged
	// before that is an earlier publish whose acknowledgement is settled, not this one.
	done := make(chan [2]uint64, 1)
	s.Append(a.Clone(), FingerprintOf(a), Window{From: seqA2 + 1, To: ^uint64(0)}, func(seq uint64, dup bool, err error) {
		if err != nil {
			t.Error(err)
		}
		d := uint64(0)
		if dup {
			d = 1
		}
		done <- [2]uint64{seq, d}
	})
	r := <-done
	seqA3 := r[0]
	if r[1] != 0 || seqA3 <= seqA2 {
		t.Fatalf("redelivery below its floor: seq %d dup %d, want a new event", r[0], r[1])
	}
	if seq, dup := appendSync(t, s, a.Clone(), true); !dup || seq != seqA3 {
		t.Fatalf("redelivery over the whole log: seq %d dup %v, want the latest copy %d", seq, dup, seqA3)
	}
	// A redelivered flag on content never seen stores it.
	if _, dup := appendSync(t, s, testEvent(2, 10), true); dup {
		t.Fatal("unknown redelivery reported as duplicate")
	}

	// Both in one batch: the second finds the first.
	release, _ := ctl.holdCommitOf(s, testEvent(3, 10))
	b := testEvent(4, 10)
	results := make(chan [2]uint64, 2)
	for _, w := range []Window{{}, {From: 1, To: ^uint64(0)}} {
		s.Append(b.Clone(), FingerprintOf(b), w, func(seq uint64, dup bool, err error) {
			if err != nil {
				t.Error(err)
			}
			d := uint64(0)
			if dup {
				d = 1
			}
			results <- [2]uint64{seq, d}
		})
	}
	release()
	r1, r2 := <-results, <-results
	if r1[1] != 0 || r2 != [2]uint64{r1[0], 1} {
		t.Fatalf("same batch: %v then %v", r1, r2)
	}
	last := s.LastSeq()

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, opts) // opts carries no hook
	if seq, dup := appendSync(t, s, a.Clone(), true); !dup || seq != seqA3 {
		t.Fatalf("after reopen: seq %d dup %v, want %d true", seq, dup, seqA3)
	}
	if s.LastSeq() != last {
		t.Fatalf("LastSeq %d after duplicate, want %d", s.LastSeq(), last)
	}
}

func TestCommitFailure(t *testing.T) {
	opts := testOptions(t)
	s, ctl := openHooked(t, opts)

	release, first := ctl.holdCommitOf(s, testEvent(0, 10))

	// Everything queued now goes into the next batch, which fails.
	injected := errors.New("disk full")
	ctl.failNextWith(injected)
	errs := make(chan error, 10)
	for i := 1; i <= 5; i++ {
		ev := testEvent(i, 10)
		s.Append(ev, FingerprintOf(ev), Window{}, func(seq uint64, _ bool, err error) {
			if seq != 0 || ev.Seq != 0 {
				t.Errorf("failed append got seq %d (event %d)", seq, ev.Seq)
			}
			errs <- err
		})
	}
	s.Barrier(func(err error) { errs <- err })
	s.SetCursor("r/t", 1)
	release()
	if a := <-first; a.seq != 1 {
		t.Fatalf("first seq %d", a.seq)
	}
	for range 6 {
		if err := <-errs; !errors.Is(err, injected) {
			t.Fatalf("err = %v, want the injected error", err)
		}
	}
	if s.LastSeq() != 1 {
		t.Fatalf("LastSeq = %d after the failed batch", s.LastSeq())
	}
	if err := s.CommitError(); !errors.Is(err, injected) {
		t.Fatalf("CommitError = %v while commits fail", err)
	}
	if _, err := s.Get(2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(2) = %v", err)
	}
	// The store goes on: the next append gets the next seq, and the cursor is written.
	if seq, _ := appendSync(t, s, testEvent(9, 10), false); seq != 2 {
		t.Fatalf("seq after failure = %d, want 2", seq)
	}
	if err := s.CommitError(); err != nil {
		t.Fatalf("CommitError = %v after a successful commit", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, opts)
	if c, _ := s.Cursor("r/t"); c != 1 {
		t.Fatalf("cursor after failed batch = %d, want 1", c)
	}
	if s.LastSeq() != 2 {
		t.Fatalf("LastSeq after reopen = %d", s.LastSeq())
	}
}

func TestAppendEncodeErrorAndBarrier(t *testing.T) {
	s := openStore(t, testOptions(t))
	var mu sync.Mutex
	var got []string
	record := func(what string) {
		mu.Lock()
		got = append(got, what)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	wg.Add(4)
	good := testEvent(1, 10)
	bad := &event.Event{Headers: event.Table{"n": 1}} // int is not an AMQP type
	s.Append(good, FingerprintOf(good), Window{}, func(_ uint64, _ bool, err error) {
		record("good")
		if err != nil {
			t.Error(err)
		}
		wg.Done()
	})
	s.Append(bad, FingerprintOf(bad), Window{}, func(_ uint64, _ bool, err error) {
		record("bad")
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("bad event: %v", err)
		}
		wg.Done()
	})
	s.Barrier(func(err error) { record("barrier"); wg.Done() })
	good2 := testEvent(2, 10)
	s.Append(good2, FingerprintOf(good2), Window{}, func(seq uint64, _ bool, err error) {
		record("good2")
		if err != nil || seq != 2 {
			t.Errorf("good2: seq %d err %v", seq, err)
		}
		wg.Done()
	})
	wg.Wait()
	if want := []string{"good", "bad", "barrier", "good2"}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	// A barrier with nothing before it returns at once.
	done := make(chan error, 1)
	s.Barrier(func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestNotify(t *testing.T) {
	s := openStore(t, testOptions(t))
	ch := s.Notify()
	select {
	case <-ch:
		t.Fatal("Notify fired before any commit")
	default:
	}
	appendSync(t, s, testEvent(1, 10), false)
	<-ch // closed by the commit
	if s.Notify() == ch {
		t.Fatal("Notify returned the fired channel again")
	}
}

func TestClosed(t *testing.T) {
	s := openStore(t, testOptions(t))
	appendSync(t, s, testEvent(1, 10), false)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ev := testEvent(2, 10)
	s.Append(ev, FingerprintOf(ev), Window{}, func(_ uint64, _ bool, err error) {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Append after Close: %v", err)
		}
	})
	s.Barrier(func(err error) {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Barrier after Close: %v", err)
		}
	})
	if _, err := s.Get(1); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
	if _, err := s.AddDeadLetter(DeadLetter{Route: "r"}); !errors.Is(err, ErrClosed) {
		t.Errorf("AddDeadLetter after Close: %v", err)
	}
}

func TestDedupAfterRetention(t *testing.T) {
	opts := testOptions(t)
	s := openStore(t, opts)
	a := testEvent(100, 10)
	appendSync(t, s, a.Clone(), false) // seq 1
	appendN(t, s, 10, 10)              // seqs 2..11
	appendSync(t, s, a.Clone(), false) // seq 12: equal content, stored again
	if seq, dup := appendSync(t, s, a.Clone(), true); !dup || seq != 12 {
		t.Fatalf("redelivery: seq %d dup %v, want the latest, 12", seq, dup)
	}
	// Dropping seqs 1..11 keeps the answer.
	if n, _, err := s.deleteOldest(11, nil); err != nil || n != 11 {
		t.Fatalf("deleteOldest = %d, %v", n, err)
	}
	if seq, dup := appendSync(t, s, a.Clone(), true); !dup || seq != 12 {
		t.Fatalf("after retention: seq %d dup %v", seq, dup)
	}
	// Once seq 12 is gone too, the redelivery is new.
	if _, _, err := s.deleteOldest(1, nil); err != nil {
		t.Fatal(err)
	}
	if seq, dup := appendSync(t, s, a.Clone(), true); dup || seq != 13 {
		t.Fatalf("after removing the event: seq %d dup %v", seq, dup)
	}
}

func TestCloseWithFailingCommits(t *testing.T) {
	opts := testOptions(t)
	ctl := newHookCtl()
	var failing sync.Mutex // held: every commit fails
	opts.commitHook = func() error {
		if !failing.TryLock() {
			return errors.New("disk gone")
		}
		failing.Unlock()
		return ctl.hook()
	}
	s := openStore(t, opts)
	appendSync(t, s, testEvent(1, 10), false)
	failing.Lock()
	s.SetCursor("r/t", 1)
	ev := testEvent(2, 10)
	failed := make(chan error, 1)
	s.Append(ev, FingerprintOf(ev), Window{}, func(_ uint64, _ bool, err error) { failed <- err })
	if err := <-failed; err == nil {
		t.Fatal("append succeeded on a failing disk")
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs while commits fail")
	}
}

func TestIndexCoversRecentEventsAcrossReopen(t *testing.T) {
	opts := testOptions(t)
	s := openStore(t, opts)
	a := testEvent(1000, 10) // content no other event here has
	seqA, _ := appendSync(t, s, a.Clone(), false)
	appendN(t, s, 50, 10)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, opts)
	if seq, dup := appendSync(t, s, a.Clone(), true); !dup || seq != seqA {
		t.Fatalf("redelivery after reopen: seq %d dup %v, want %d", seq, dup, seqA)
	}
}

func TestIndexForgetsTheOldest(t *testing.T) {
	x := newFPIndex(3)
	fp := func(i byte) Fingerprint { return Fingerprint{i} }
	all := Window{From: 1, To: 100}
	for i := byte(1); i <= 4; i++ {
		x.add(fp(i), uint64(i))
	}
	if _, ok := x.lookup(fp(1), all, 0); ok {
		t.Fatal("the evicted oldest entry is still found")
	}
	for i := byte(2); i <= 4; i++ {
		if seq, ok := x.lookup(fp(i), all, 0); !ok || seq != uint64(i) {
			t.Fatalf("entry %d: seq %d ok %v", i, seq, ok)
		}
	}
	if _, ok := x.lookup(fp(2), all, 2); ok {
		t.Fatal("an event retention removed still counts")
	}
	// A later copy replaces an earlier one, and evicting the earlier keeps the later.
	x.add(fp(3), 5) // ring: 4, 3@5, 3@3
	x.add(fp(9), 6) // evicts 3@3: fp 3 stays at 5
	if seq, ok := x.lookup(fp(3), all, 0); !ok || seq != 5 {
		t.Fatalf("fp 3: seq %d ok %v, want the later copy 5", seq, ok)
	}
	x.add(fp(9), 7)  // ring: 9@7, 3@5, 9@6
	x.add(fp(10), 8) // evicts 3@5
	x.add(fp(11), 9) // evicts 9@6, while 9@7 stays
	if seq, ok := x.lookup(fp(3), all, 0); ok {
		t.Fatalf("fp 3 found at %d after its entries were evicted", seq)
	}
	if seq, ok := x.lookup(fp(9), all, 0); !ok || seq != 7 {
		t.Fatalf("fp 9: seq %d ok %v, want 7", seq, ok)
	}
}

// The index's hash table agrees with a plain map of the latest entries over many random
// additions, with few distinct fingerprints so that copies, evictions and probe chains mix.
func TestIndexMatchesAMapOfTheLatestEntries(t *testing.T) {
	const size = 8
	x := newFPIndex(size)
	rng := rand.New(rand.NewPCG(1, 2))
	var added []indexEntry
	all := Window{From: 1, To: ^uint64(0)}
	for seq := uint64(1); seq <= 20000; seq++ {
		var fp Fingerprint
		fp[rng.IntN(2)] = byte(rng.IntN(24)) // 48 fingerprints, many sharing a home
		x.add(fp, seq)
		added = append(added, indexEntry{seq, fp})
		want := map[Fingerprint]uint64{}
		for _, e := range added[max(0, len(added)-size):] {
			want[e.fp] = e.seq
		}
		for i := range 2 {
			for b := range 24 {
				var q Fingerprint
				q[i] = byte(b)
				got, ok := x.lookup(q, all, 0)
				if w, in := want[q]; ok != in || (in && got != w) {
					t.Fatalf("after seq %d, fp %v: got %d %v, want %d %v", seq, q, got, ok, w, in)
				}
			}
		}
	}
}

// TestBatchKeysOnDisk reads back from the file a batch that mixes events, barriers and a
// duplicate: the commit writes every event's key from one buffer (bbolt copies keys), and
// each record must be found under its own seq.
func TestBatchKeysOnDisk(t *testing.T) {
	opts := testOptions(t)
	ctl := newHookCtl()
	opts.commitHook = ctl.hook
	s := openStore(t, opts)

	release := ctl.holdNext()
	first := testEvent(0, 10)
	s.Append(first, FingerprintOf(first), Window{}, func(uint64, bool, error) {})
	<-ctl.entered

	type result struct {
		id       string
		seq      uint64
		dup      bool
		barriers int
	}
	results := make(chan result, 64)
	appendOne := func(ev *event.Event, w Window) {
		s.Append(ev, FingerprintOf(ev), w, func(seq uint64, dup bool, err error) {
			if err != nil {
				t.Error(err)
			}
			results <- result{id: ev.Props.MessageID, seq: seq, dup: dup}
		})
	}
	want := 0
	for i := 1; i <= 20; i++ {
		if i%5 == 0 {
			s.Barrier(func(err error) { results <- result{barriers: 1} })
			want++
		}
		appendOne(testEvent(i, 100+i), Window{})
		want++
	}
	// A redelivery of the batch's third event, found in the batch itself: no key of its own.
	appendOne(testEvent(3, 103), Window{From: 1, To: ^uint64(0)})
	want++
	release()

	bySeq := map[uint64]string{}
	for range want {
		r := <-results
		switch {
		case r.barriers > 0:
		case r.dup:
			if r.id != "m-3" || bySeq[r.seq] != "m-3" {
				t.Fatalf("duplicate %s reported at seq %d (holding %q)", r.id, r.seq, bySeq[r.seq])
			}
		default:
			bySeq[r.seq] = r.id
		}
	}
	if len(bySeq) != 20 {
		t.Fatalf("%d events stored, want 20", len(bySeq))
	}

	// Read from the file, not the ring.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	opts.commitHook = nil
	opts.ringSize = -1
	s = openStore(t, opts)
	next := uint64(2) // seq 1 is the held first event
	if _, err := s.Scan(1, 0, nil, func(ev *event.Event) bool {
		if ev.Seq == 1 {
			return true
		}
		if ev.Seq != next {
			t.Fatalf("seq %d after %d", ev.Seq, next-1)
		}
		if id := bySeq[ev.Seq]; ev.Props.MessageID != id {
			t.Fatalf("seq %d holds %s, want %s", ev.Seq, ev.Props.MessageID, id)
		}
		next++
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if next != 22 {
		t.Fatalf("read up to seq %d, want 21", next-1)
	}
}
