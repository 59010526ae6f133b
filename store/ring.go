package store

import "github.com/wasmrouter/wasmrouter/event"

// ring keeps the most recently committed events in memory, so that delivery loops keeping up
// with the log never read it back from disk. Seqs committed since Open are contiguous, so the
// slot of seq is seq modulo the number of slots. It is bounded in bytes as well as in events:
// a count alone would let large messages hold the process's memory hostage (16,384 events of
// 1 MiB are 16 GiB), and what it holds is what makes the router's resident memory. A reader
// that falls further behind reads the log from disk. Guarded by Store.rmu.
type ring struct {
	evs      []*event.Event
	sizes    []int  // the estimated bytes of each slot's event
	lo       uint64 // lowest seq held, 0 if none
	bytes    int    // estimated bytes held
	maxBytes int
}

func newRing(size, maxBytes int) ring {
	if size < 0 {
		size = 0
	}
	return ring{evs: make([]*event.Event, size), sizes: make([]int, size), maxBytes: maxBytes}
}

// eventBytes estimates the memory an event holds.
func eventBytes(ev *event.Event) int { return ev.MemSize() }

// put adds the event with the next seq, dropping the oldest ones that no longer fit. The
// newest event is always kept, whatever its size, so that the next read of a stream that
// keeps up is served.
func (r *ring) put(ev *event.Event) {
	n := uint64(len(r.evs))
	if n == 0 {
		return
	}
	if r.lo == 0 || ev.Seq < r.lo {
		r.lo = ev.Seq
	}
	for r.lo+n <= ev.Seq {
		r.drop()
	}
	slot := ev.Seq % n
	r.evs[slot], r.sizes[slot] = ev, eventBytes(ev)
	r.bytes += r.sizes[slot]
	for r.bytes > r.maxBytes && r.lo < ev.Seq {
		r.drop()
	}
}

// drop forgets the oldest event.
func (r *ring) drop() {
	slot := r.lo % uint64(len(r.evs))
	if ev := r.evs[slot]; ev != nil && ev.Seq == r.lo {
		r.bytes -= r.sizes[slot]
		r.evs[slot], r.sizes[slot] = nil, 0
	}
	r.lo++
}

// dropBelow forgets the events below seq, up to the newest committed one (last): what every
// reader has taken already.
func (r *ring) dropBelow(seq, last uint64) {
	if len(r.evs) == 0 {
		return
	}
	for r.lo != 0 && r.lo < seq && r.lo <= last {
		r.drop()
	}
}

// low is the lowest seq the ring can serve given the log's range, 0 if none.
func (r *ring) low(last, deletedThrough uint64) uint64 {
	if r.lo == 0 || last < r.lo {
		return 0
	}
	lo := max(r.lo, deletedThrough+1)
	if lo > last {
		return 0
	}
	return lo
}

// get returns the event with seq, nil if the ring does not hold it.
func (r *ring) get(seq, last, deletedThrough uint64) *event.Event {
	lo := r.low(last, deletedThrough)
	if lo == 0 || seq < lo || seq > last {
		return nil
	}
	ev := r.evs[seq%uint64(len(r.evs))]
	if ev == nil || ev.Seq != seq {
		return nil
	}
	return ev
}
