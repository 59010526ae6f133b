package store

import (
	"bytes"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/wasmrouter/wasmrouter/event"
)

func TestOpenLocked(t *testing.T) {
	opts := testOptions(t)
	openStore(t, opts)
	for _, readOnly := range []bool{false, true} {
		o := opts
		o.OpenTimeout, o.ReadOnly = 50*time.Millisecond, readOnly
		if _, err := Open(o); !errors.Is(err, ErrLocked) {
			t.Fatalf("read-only %v: Open of a held file: %v, want ErrLocked", readOnly, err)
		}
	}
}

func TestOpenOptions(t *testing.T) {
	if _, err := Open(Options{}); err == nil {
		t.Fatal("Open without a path succeeded")
	}
	opts := testOptions(t)
	opts.OnFull = "explode"
	if _, err := Open(opts); err == nil || !strings.Contains(err.Error(), "on_full") {
		t.Fatalf("bad on_full: %v", err)
	}
	opts = testOptions(t)
	opts.ReadOnly = true
	if _, err := Open(opts); err == nil {
		t.Fatal("read-only Open of a missing file succeeded")
	}
}

func TestReopenKeepsData(t *testing.T) {
	opts := testOptions(t)
	opts.NoSync = false
	s := openStore(t, opts)
	appendN(t, s, 300, 100)
	s.SetCursor("orders/analytics", 120)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, opts)
	if s.FirstSeq() != 1 || s.LastSeq() != 300 {
		t.Fatalf("range after reopen %d..%d", s.FirstSeq(), s.LastSeq())
	}
	for _, seq := range []uint64{1, 150, 300} {
		got, err := s.Get(seq)
		if err != nil {
			t.Fatal(err)
		}
		want := testEvent(int(seq-1), 100)
		want.Seq = seq
		if !bytes.Equal(encoded(t, got), encoded(t, want)) || got.Seq != seq {
			t.Fatalf("event %d changed across reopen", seq)
		}
	}
	if c, _ := s.Cursor("orders/analytics"); c != 120 {
		t.Fatalf("cursor after reopen = %d", c)
	}
	if seq, _ := appendSync(t, s, testEvent(300, 10), false); seq != 301 {
		t.Fatalf("seq after reopen = %d, want 301", seq)
	}
}

func TestReadOnly(t *testing.T) {
	opts := testOptions(t)
	s := openStore(t, opts)
	appendN(t, s, 10, 10)
	s.Close()

	opts.ReadOnly = true
	ro := openStore(t, opts)
	if ro.LastSeq() != 10 {
		t.Fatalf("LastSeq = %d", ro.LastSeq())
	}
	if _, err := ro.Get(5); err != nil {
		t.Fatal(err)
	}
	n := 0
	if _, err := ro.Scan(1, 0, nil, func(*event.Event) bool { n++; return true }); err != nil || n != 10 {
		t.Fatalf("Scan saw %d: %v", n, err)
	}
	ev := testEvent(1, 1)
	ro.Append(ev, FingerprintOf(ev), Window{}, func(_ uint64, _ bool, err error) {
		if !errors.Is(err, ErrReadOnly) {
			t.Errorf("Append: %v", err)
		}
	})
	if err := ro.ResetCursor("c", 1); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("ResetCursor: %v", err)
	}
}

// scanAll collects what Scan hands out, with the next values it returns, in steps of limit.
func scanAll(t *testing.T, s *Store, from uint64, limit int, keep func(string, string) bool) string {
	t.Helper()
	var out strings.Builder
	for step := 0; ; step++ {
		next, err := s.Scan(from, limit, event.ByHead(keep), func(ev *event.Event) bool {
			fmt.Fprintf(&out, "%d:%x\n", ev.Seq, encoded(t, ev))
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "next %d\n", next)
		if next == from || step > 10000 {
			return out.String()
		}
		from = next
	}
}

func TestScanRingMatchesDisk(t *testing.T) {
	opts := testOptions(t)
	opts.ringSize = 100
	s := openStore(t, opts)
	appendN(t, s, 500, 50)
	if _, _, ok := s.scanRing(450, 10); !ok {
		t.Fatal("the ring does not serve the newest events")
	}
	if _, _, ok := s.scanRing(300, 10); ok {
		t.Fatal("the ring claims events it cannot hold")
	}
	keepers := map[string]func(string, string) bool{
		"all":   nil,
		"audit": func(src, _ string) bool { return src == "audit" },
		"rk":    func(_, rk string) bool { return strings.HasPrefix(rk, "order.3") },
		"none":  func(string, string) bool { return false },
	}
	type run struct {
		from  uint64
		limit int
	}
	runs := []run{{1, 0}, {1, 7}, {380, 33}, {420, 1000}, {0, 256}, {499, 0}, {501, 5}}
	withRing := map[string]string{}
	for name, keep := range keepers {
		for _, r := range runs {
			withRing[fmt.Sprint(name, r)] = scanAll(t, s, r.from, r.limit, keep)
		}
	}
	gets := map[uint64]string{}
	for seq := uint64(1); seq <= 500; seq++ {
		ev, err := s.Get(seq)
		if err != nil {
			t.Fatal(err)
		}
		gets[seq] = fmt.Sprintf("%d:%x", ev.Seq, encoded(t, ev))
	}
	s.Close()

	opts.ringSize = -1
	s = openStore(t, opts)
	for name, keep := range keepers {
		for _, r := range runs {
			if got := scanAll(t, s, r.from, r.limit, keep); got != withRing[fmt.Sprint(name, r)] {
				t.Fatalf("%s %v: disk scan differs from ring scan:\n%s\nvs\n%s", name, r, got, withRing[fmt.Sprint(name, r)])
			}
		}
	}
	for seq := uint64(1); seq <= 500; seq++ {
		ev, err := s.Get(seq)
		if err != nil || fmt.Sprintf("%d:%x", ev.Seq, encoded(t, ev)) != gets[seq] {
			t.Fatalf("Get(%d) from disk differs from the ring: %v", seq, err)
		}
	}
}

func TestScanSemantics(t *testing.T) {
	s := openStore(t, testOptions(t))
	appendN(t, s, 30, 10)
	// Skipped records still advance next; limit counts records looked at.
	audit := func(src, _ string) bool { return src == "audit" }
	var seen []uint64
	next, err := s.Scan(1, 10, event.ByHead(audit), func(ev *event.Event) bool { seen = append(seen, ev.Seq); return true })
	if err != nil || next != 11 || fmt.Sprint(seen) != "[2 5 8]" {
		t.Fatalf("next %d seen %v err %v", next, seen, err)
	}
	// fn returning false stops right after that event.
	next, _ = s.Scan(11, 0, nil, func(ev *event.Event) bool { return ev.Seq < 13 })
	if next != 14 {
		t.Fatalf("stop at 13: next %d", next)
	}
	// Past the end nothing is visited and next stays.
	if next, _ = s.Scan(31, 0, nil, func(*event.Event) bool { t.Fatal("visited"); return true }); next != 31 {
		t.Fatalf("past the end: next %d", next)
	}
	if _, err := s.Get(31); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(31) = %v", err)
	}
}

func TestStats(t *testing.T) {
	opts := testOptions(t)
	s := openStore(t, opts)
	st, err := s.Stats(true)
	if err != nil || st.Events != 0 || st.FirstSeq != 0 || len(st.PerSource) != 0 {
		t.Fatalf("empty store stats %+v %v", st, err)
	}
	appendN(t, s, 30, 10)
	st, err = s.Stats(true)
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{
		Events: 30, FirstSeq: 1, LastSeq: 30,
		Oldest: testEvent(0, 0).IngestTime, Newest: testEvent(29, 0).IngestTime,
		FileSize: s.Size(), PerSource: map[string]uint64{"in": 10, "audit": 10, "billing": 10},
	}
	if fmt.Sprint(st) != fmt.Sprint(want) {
		t.Fatalf("stats\n%+v\nwant\n%+v", st, want)
	}
	if st, _ := s.Stats(false); st.PerSource != nil || st.Events != 30 {
		t.Fatalf("stats without per-source: %+v", st)
	}
	if s.Size() <= 0 {
		t.Fatal("no file size")
	}
}

// ScanHeads must agree with what decoding the events says, across its read chunks.
func TestScanHeadsMatchesDecodedEvents(t *testing.T) {
	s := openStore(t, testOptions(t))
	const n = statsChunk + 500 // more than one read transaction
	appendN(t, s, n, 0)
	var want []string
	_, err := s.Scan(1, 0, nil, func(ev *event.Event) bool {
		if ev.Seq >= 3 && ev.Seq <= n-2 {
			want = append(want, fmt.Sprintf("%d %s %s %s", ev.Seq, ev.Source, ev.RoutingKey, ev.IngestTime.Format(time.RFC3339Nano)))
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	err = s.ScanHeads(3, n-2, func(h RecordHead) error {
		got = append(got, fmt.Sprintf("%d %s %s %s", h.Seq, h.Source, h.RoutingKey, h.IngestTime.Format(time.RFC3339Nano)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("ScanHeads saw %d records, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("record %d: head %q, decoded %q", i, got[i], want[i])
		}
	}
	stop := errors.New("enough")
	seen := 0
	if err := s.ScanHeads(1, n, func(RecordHead) error { seen++; return stopAt(seen, 10, stop) }); !errors.Is(err, stop) || seen != 10 {
		t.Fatalf("an error from fn: err %v after %d records, want %v after 10", err, seen, stop)
	}
	if err := s.ScanHeads(n+1, n+10, func(RecordHead) error { t.Fatal("visited past the end"); return nil }); err != nil {
		t.Fatal(err)
	}
}

func stopAt(seen, at int, err error) error {
	if seen == at {
		return err
	}
	return nil
}

// An event served from memory shows keep the route match it was appended with; one read back
// from the file shows the zero match (the match is not stored).
func TestScanShowsTheCarriedRouteMatchOnlyFromMemory(t *testing.T) {
	opts := testOptions(t)
	opts.ringSize = 100
	s := openStore(t, opts)
	for i := range 150 {
		ev := testEvent(i, 10)
		ev.Routes = event.RouteMatch{Generation: 3, Set: uint64(i + 1)}
		appendSync(t, s, ev, false)
	}
	lo := s.ring.low(s.LastSeq(), s.deletedThrough.Load())
	if lo <= 1 || lo > 51 {
		t.Fatalf("the ring starts at %d", lo)
	}
	scan := func(from uint64, limit int) map[uint64]event.RouteMatch {
		// keep takes every record: the i-th match keep saw is the i-th event's.
		var matches []event.RouteMatch
		var seqs []uint64
		keep := func(_, _ string, m event.RouteMatch) bool { matches = append(matches, m); return true }
		if _, err := s.Scan(from, limit, keep, func(ev *event.Event) bool { seqs = append(seqs, ev.Seq); return true }); err != nil {
			t.Fatal(err)
		}
		if len(seqs) != len(matches) {
			t.Fatalf("keep saw %d records, fn %d", len(matches), len(seqs))
		}
		seen := map[uint64]event.RouteMatch{}
		for i, seq := range seqs {
			seen[seq] = matches[i]
		}
		return seen
	}
	fromDisk := scan(1, int(lo-1))
	fromRing := scan(lo, 0)
	if len(fromDisk) != int(lo-1) || len(fromRing) != int(150-lo+1) {
		t.Fatalf("scans saw %d and %d events", len(fromDisk), len(fromRing))
	}
	for seq, m := range fromDisk {
		if m != (event.RouteMatch{}) {
			t.Fatalf("seq %d read from the file: keep saw %+v", seq, m)
		}
	}
	for seq, m := range fromRing {
		if want := (event.RouteMatch{Generation: 3, Set: seq}); m != want {
			t.Fatalf("seq %d served from memory: keep saw %+v, want %+v", seq, m, want)
		}
	}
}

func TestScanFromDiskDecodesABoundedNumberOfBytesAtATime(t *testing.T) {
	opts := testOptions(t)
	opts.ringSize = -1 // every read goes to the file
	s := openStore(t, opts)
	const n, size = 40, 64 << 10
	appendN(t, s, n, size)
	// One step decodes records up to scanChunkBytes (the last one may cross it), not the
	// 256 records of scanChunk.
	evs, after, err := s.scanDisk(1, scanChunk, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := scanChunkBytes/size + 1; len(evs) == 0 || len(evs) > want {
		t.Fatalf("one step decoded %d records of %d bytes, want 1 to %d", len(evs), size, want)
	}
	if after != uint64(len(evs))+1 {
		t.Fatalf("after %d for %d events from seq 1", after, len(evs))
	}
	// A whole scan still visits every record, in order.
	var seen uint64
	next, err := s.Scan(1, 0, nil, func(ev *event.Event) bool {
		seen++
		if ev.Seq != seen {
			t.Fatalf("seq %d after %d", ev.Seq, seen-1)
		}
		return true
	})
	if err != nil || seen != n || next != n+1 {
		t.Fatalf("scan saw %d of %d, next %d, err %v", seen, n, next, err)
	}
}

// TestScanBoundedStopsAtTheBytesFnTakes: ScanBounded hands fn events until their MemSize
// reaches the bound, decodes no more than those from the file, and resumes where it stopped,
// with and without keep, from the file and from the ring.
func TestScanBoundedStopsAtTheBytesFnTakes(t *testing.T) {
	const n = 60
	for _, ring := range []bool{false, true} {
		opts := testOptions(t)
		if !ring {
			opts.ringSize = -1 // every read goes to the file
		}
		s := openStore(t, opts)
		appendN(t, s, n, 1000)
		size := map[uint64]int{}
		if _, err := s.Scan(1, 0, nil, func(ev *event.Event) bool { size[ev.Seq] = ev.MemSize(); return true }); err != nil || len(size) != n {
			t.Fatalf("ring %v: full scan saw %d events, err %v", ring, len(size), err)
		}
		sum := func(seqs ...uint64) int {
			total := 0
			for _, seq := range seqs {
				total += size[seq]
			}
			return total
		}
		scan := func(from uint64, bound int, keep event.Keep) ([]uint64, uint64) {
			t.Helper()
			var got []uint64
			next, err := s.ScanBounded(from, 0, bound, keep, func(ev *event.Event) bool { got = append(got, ev.Seq); return true })
			if err != nil {
				t.Fatalf("ring %v: ScanBounded(%d, %d): %v", ring, from, bound, err)
			}
			return got, next
		}
		first10 := []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
		for _, bound := range []int{sum(first10...), sum(first10...) - 1, sum(first10[:9]...) + 1} {
			got, next := scan(1, bound, nil)
			if !slices.Equal(got, first10) || next != 11 {
				t.Fatalf("ring %v: bound %d handed %v, next %d; want seqs 1-10, next 11", ring, bound, got, next)
			}
		}
		if !ring {
			// The file's step decodes only what the bound takes, not a whole chunk.
			evs, after, err := s.scanDisk(1, scanChunk, sum(first10...), nil)
			if err != nil || len(evs) != 10 || after != 11 {
				t.Fatalf("scanDisk decoded %d events, after %d, err %v; want 10, 11", len(evs), after, err)
			}
		}
		// keep: only source "in", the events appended as i%3 == 0 (seq 1, 4, 7, ...).
		keepIn := func(src, _ string, _ event.RouteMatch) bool { return src == "in" }
		got, next := scan(1, sum(1, 4, 7, 10), keepIn)
		if !slices.Equal(got, []uint64{1, 4, 7, 10}) || next != 11 {
			t.Fatalf("ring %v: with keep handed %v, next %d; want 1 4 7 10, next 11", ring, got, next)
		}
		// Resuming at next, small bounds visit every event once, in order.
		var all []uint64
		for from := uint64(1); from <= n; {
			got, next := scan(from, 3*size[from], nil)
			if len(got) == 0 || next <= from {
				t.Fatalf("ring %v: no progress from %d: %v, next %d", ring, from, got, next)
			}
			all = append(all, got...)
			from = next
		}
		if len(all) != n || all[0] != 1 || all[n-1] != n || !slices.IsSorted(all) {
			t.Fatalf("ring %v: resumed scans saw %d events %v", ring, len(all), all)
		}
	}
}

// A bounded scan copies its records into shared chunks (recordArena): each event decodes as an
// unbounded scan's does, and an append to one event's body cannot write over another's bytes.
func TestBoundedScanEventsShareNoWritableBytes(t *testing.T) {
	const n = 40
	opts := testOptions(t)
	opts.ringSize = -1 // every read goes to the file
	s := openStore(t, opts)
	appendN(t, s, n, 300)
	want := map[uint64][]byte{}
	if _, err := s.Scan(1, 0, nil, func(ev *event.Event) bool { want[ev.Seq] = encoded(t, ev); return true }); err != nil || len(want) != n {
		t.Fatalf("full scan saw %d events, err %v", len(want), err)
	}
	var got []*event.Event
	if _, err := s.ScanBounded(1, 0, 1<<20, nil, func(ev *event.Event) bool { got = append(got, ev); return true }); err != nil || len(got) != n {
		t.Fatalf("bounded scan handed %d events, err %v", len(got), err)
	}
	for _, ev := range got {
		if !bytes.Equal(encoded(t, ev), want[ev.Seq]) {
			t.Fatalf("seq %d decodes differently from a bounded scan", ev.Seq)
		}
	}
	for _, ev := range got {
		if cap(ev.Body) != len(ev.Body) {
			t.Fatalf("seq %d: body of length %d has capacity %d", ev.Seq, len(ev.Body), cap(ev.Body))
		}
		_ = append(ev.Body, bytes.Repeat([]byte{0xff}, 64)...)
	}
	for _, ev := range got {
		if !bytes.Equal(encoded(t, ev), want[ev.Seq]) {
			t.Fatalf("seq %d changed after appends to the other events' bodies", ev.Seq)
		}
	}
}

// A scan into chunks given back (ScanBoundedRawHeadersIn) records every chunk it copied the
// records into, decodes as ScanBoundedRawHeaders does, and, once they are given back
// (RecycleChunks), the next scan copies into them again instead of allocating.
func TestScanIntoRecycledChunks(t *testing.T) {
	const n = 120
	opts := testOptions(t)
	opts.ringSize = -1 // every read goes to the file
	s := openStore(t, opts)
	appendN(t, s, n, 2000)
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	want := map[uint64][]byte{}
	if _, err := s.ScanBoundedRawHeaders(1, 0, 1<<30, nil, func(ev *event.Event) bool { want[ev.Seq] = encoded(t, ev); return true }); err != nil || len(want) != n {
		t.Fatalf("scan saw %d events, err %v", len(want), err)
	}
	var chunks [][]byte
	read := func(from uint64) []*event.Event {
		var got []*event.Event
		if _, err := s.ScanBoundedRawHeadersIn(&chunks, from, 60, 1<<30, nil, func(ev *event.Event) bool { got = append(got, ev); return true }); err != nil || len(got) != 60 {
			t.Fatalf("scan from %d handed %d events, err %v", from, len(got), err)
		}
		for _, ev := range got {
			if !bytes.Equal(encoded(t, ev), want[ev.Seq]) {
				t.Fatalf("seq %d decodes differently from chunks", ev.Seq)
			}
			in := false
			for _, c := range chunks {
				in = in || uintptrOf(ev.Body) >= uintptrOf(c[:1]) && uintptrOf(ev.Body) < uintptrOf(c[:1])+uintptr(cap(c))
			}
			if !in {
				t.Fatalf("seq %d: its body is in no chunk recorded", ev.Seq)
			}
		}
		return got
	}
	read(1)
	if len(chunks) < 2 {
		t.Fatalf("60 records of about 2 KiB in %d chunks", len(chunks))
	}
	first := map[uintptr]bool{}
	for _, c := range chunks {
		first[uintptrOf(c[:1])] = true
	}
	s.RecycleChunks(&chunks)
	if len(chunks) != 0 {
		t.Fatalf("%d chunks left after RecycleChunks", len(chunks))
	}
	read(61)
	reused := 0
	for _, c := range chunks {
		if first[uintptrOf(c[:1])] {
			reused++
		}
	}
	// A pool drops what it holds at collections (none here) and, under the race detector, at
	// random.
	if reused == 0 && !raceEnabled {
		t.Fatalf("no chunk given back was read into again")
	}
}

func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
