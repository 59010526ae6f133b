package store

import (
	"bytes"
	"math"
	"testing"

	"github.com/wasmrouter/wasmrouter/event"
)

func TestRingIsBoundedInBytes(t *testing.T) {
	const maxBytes = 10 << 10
	r := newRing(1000, maxBytes)
	for seq := uint64(1); seq <= 200; seq++ {
		size := 100
		if seq%10 == 0 {
			size = 4000 // a few large events among small ones
		}
		if seq == 150 {
			size = 50 << 10 // one larger than the whole budget
		}
		r.put(&event.Event{Seq: seq, Body: bytes.Repeat([]byte{'x'}, size)})
		if r.bytes > maxBytes && r.lo != seq {
			t.Fatalf("after seq %d: %d bytes held over %d, oldest %d", seq, r.bytes, maxBytes, r.lo)
		}
		if r.get(seq, seq, 0) == nil {
			t.Fatalf("the newest event %d is not served", seq)
		}
		held := 0
		for s := r.lo; s <= seq; s++ {
			ev := r.get(s, seq, 0)
			if ev == nil || ev.Seq != s {
				t.Fatalf("after seq %d: seq %d in [%d, %d] is not served", seq, s, r.lo, seq)
			}
			held += eventBytes(ev)
		}
		if held != r.bytes {
			t.Fatalf("after seq %d: counted %d bytes, hold %d", seq, r.bytes, held)
		}
		if r.lo > 1 && r.get(r.lo-1, seq, 0) != nil {
			t.Fatalf("after seq %d: a dropped event is served", seq)
		}
	}
	if r.get(150, 200, 0) != nil {
		t.Fatal("the oversized event outlived newer ones")
	}
}

func TestRingIsBoundedInEvents(t *testing.T) {
	r := newRing(8, 1<<30)
	for seq := uint64(1); seq <= 20; seq++ {
		r.put(&event.Event{Seq: seq})
	}
	if got := r.low(20, 0); got != 13 {
		t.Fatalf("lowest seq served %d, want 13", got)
	}
	if r.get(12, 20, 0) != nil || r.get(13, 20, 0) == nil {
		t.Fatal("the ring serves an overwritten slot or misses a held one")
	}
	// Retention deleting records the ring still holds hides them.
	if got := r.low(20, 15); got != 16 || r.get(15, 20, 15) != nil {
		t.Fatalf("after retention through 15: lowest %d", got)
	}
}

func TestScanAndGetReadBehindASmallRing(t *testing.T) {
	opts := testOptions(t)
	opts.ringBytes = 8 << 10 // a few of these 1 KiB events
	s := openStore(t, opts)
	appendN(t, s, 300, 1024)
	if _, _, ok := s.scanRing(280, 10); ok {
		t.Fatal("the ring serves events beyond its byte budget")
	}
	if _, _, ok := s.scanRing(300, 1); !ok {
		t.Fatal("the ring does not serve the newest event")
	}
	for seq := uint64(1); seq <= 300; seq++ {
		ev, err := s.Get(seq)
		if err != nil || ev.Seq != seq || len(ev.Body) != 1024 {
			t.Fatalf("Get(%d): %v", seq, err)
		}
	}
	n := 0
	if _, err := s.Scan(1, 0, nil, func(ev *event.Event) bool { n++; return ev.Seq == uint64(n) }); err != nil || n != 300 {
		t.Fatalf("scan saw %d events in order (%v), want 300", n, err)
	}
}

func TestRingForgetsWhatEveryReaderRead(t *testing.T) {
	r := newRing(16, 1<<30)
	for seq := uint64(1); seq <= 10; seq++ {
		r.put(&event.Event{Seq: seq, Body: []byte("x")})
	}
	r.dropBelow(7, 10)
	if r.get(6, 10, 0) != nil || r.get(7, 10, 0) == nil || r.low(10, 0) != 7 {
		t.Fatalf("after dropping below 7: lowest %d", r.low(10, 0))
	}
	held := 0
	for s := uint64(7); s <= 10; s++ {
		held += eventBytes(r.get(s, 10, 0))
	}
	if held != r.bytes {
		t.Fatalf("counted %d bytes, hold %d", r.bytes, held)
	}
	// Everything read: nothing held, and the next commit is served again.
	r.dropBelow(100, 10)
	if r.bytes != 0 || r.low(10, 0) != 0 {
		t.Fatalf("all read: %d bytes held, lowest %d", r.bytes, r.low(10, 0))
	}
	r.put(&event.Event{Seq: 11})
	if r.get(11, 11, 0) == nil || r.get(10, 11, 0) != nil {
		t.Fatal("after a release of everything, the next event is not served alone")
	}
}

func TestReleasedEventsAreReadFromDisk(t *testing.T) {
	s := openStore(t, testOptions(t))
	appendN(t, s, 50, 100)
	s.ReleaseRead(41)
	if _, _, ok := s.scanRing(40, 1); ok {
		t.Fatal("the ring serves a released event")
	}
	if _, _, ok := s.scanRing(41, 10); !ok {
		t.Fatal("the ring does not serve what was not released")
	}
	n := 0
	if _, err := s.Scan(1, 0, nil, func(ev *event.Event) bool { n++; return ev.Seq == uint64(n) }); err != nil || n != 50 {
		t.Fatalf("scan saw %d events in order (%v), want 50", n, err)
	}
	if ev, err := s.Get(10); err != nil || ev.Seq != 10 {
		t.Fatalf("Get(10) after its release: %v", err)
	}
}

func TestRingIsOnlyReachedByReadersWithinWhatItHolds(t *testing.T) {
	r := newRing(1000, 10<<10)
	if !r.reaches(1, 0) {
		t.Fatal("an empty log: the first reader does not reach the ring")
	}
	body := bytes.Repeat([]byte{'x'}, 1000)
	for seq := uint64(1); seq <= 100; seq++ {
		r.put(&event.Event{Seq: seq, Body: body})
	}
	// About ten of these events fill the ring's bytes: it holds the newest ten or so.
	capacity := uint64(r.maxBytes / r.lastSize)
	lo := r.low(100, 0)
	if lo < 85 || capacity < 5 || capacity > 10 {
		t.Fatalf("the ring holds from %d, about %d events when full", lo, capacity)
	}
	for _, c := range []struct {
		seq  uint64
		want bool
	}{
		{101, true},                // keeping up
		{lo, true},                 // the ring's lowest
		{lo - capacity, true},      // reads no more from disk than the ring holds
		{lo - capacity - 1, false}, // reads more: what the ring holds is gone by then
		{1, false},
	} {
		if got := r.reaches(c.seq, 100); got != c.want {
			t.Errorf("reaches(%d) with the ring at [%d, 100]: %v, want %v", c.seq, lo, got, c.want)
		}
	}
	// Emptied (every reader released everything), the next commit's seq is the reference.
	r.dropBelow(math.MaxUint64, 100)
	if r.bytes != 0 || r.low(100, 0) != 0 {
		t.Fatalf("released up to the last: %d bytes held", r.bytes)
	}
	if !r.reaches(101, 100) || !r.reaches(101-capacity, 100) || r.reaches(100-capacity, 100) {
		t.Fatal("an empty ring: reaches does not count from the next seq to be committed")
	}
	r.put(&event.Event{Seq: 101, Body: body})
	if r.get(101, 101, 0) == nil {
		t.Fatal("after a release of everything, the next commit is not served")
	}
}

func TestStreamsThatDoNotReachTheRingLetItGo(t *testing.T) {
	opts := testOptions(t)
	opts.ringBytes = 8 << 10 // a few of these 1 KiB events
	s := openStore(t, opts)
	appendN(t, s, 50, 1024)
	if s.Reaches(1) || !s.Reaches(48) || !s.Reaches(51) {
		t.Fatal("Reaches: a reader 40 events behind a ring of a few reaches it, or one at its end does not")
	}
	s.ReleaseRead(math.MaxUint64) // no reader reaches the ring
	if _, _, ok := s.scanRing(50, 1); ok {
		t.Fatal("the ring serves an event after every reader let it go")
	}
	n := 0
	if _, err := s.Scan(1, 0, nil, func(ev *event.Event) bool { n++; return ev.Seq == uint64(n) }); err != nil || n != 50 {
		t.Fatalf("scan saw %d events in order (%v), want 50", n, err)
	}
	// Until a reader reaches it again, commits are not kept.
	appendN(t, s, 1, 1024)
	if _, _, ok := s.scanRing(51, 1); ok {
		t.Fatal("a commit is kept in the ring while no reader reaches it")
	}
	if !s.Reaches(50) || s.Reaches(40) {
		t.Fatal("Reaches of an idle ring does not count from the next seq to be committed")
	}
	s.ReleaseRead(52)
	appendN(t, s, 2, 1024)
	if evs, _, ok := s.scanRing(52, 2); !ok || len(evs) != 2 || evs[0].Seq != 52 || evs[1].Seq != 53 {
		t.Fatal("the commits after a reader reached the ring again are not in it")
	}
	n = 0
	if _, err := s.Scan(1, 0, nil, func(ev *event.Event) bool { n++; return ev.Seq == uint64(n) }); err != nil || n != 53 {
		t.Fatalf("scan saw %d events in order (%v), want 53", n, err)
	}
}
