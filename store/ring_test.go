package store

import (
	"bytes"
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
