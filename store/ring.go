package store

import "github.com/wasmrouter/wasmrouter/event"

// ring keeps the most recently committed events in memory, so that delivery loops keeping up
// with the log never read it back from disk. Seqs committed since Open are contiguous, so the
// slot of seq is seq modulo the size. Guarded by Store.rmu.
type ring struct {
	evs   []*event.Event
	first uint64 // lowest seq put since Open, 0 if none
}

func newRing(size int) ring {
	if size < 0 {
		size = 0
	}
	return ring{evs: make([]*event.Event, size)}
}

func (r *ring) put(ev *event.Event) {
	if len(r.evs) == 0 {
		return
	}
	r.evs[ev.Seq%uint64(len(r.evs))] = ev
	if r.first == 0 {
		r.first = ev.Seq
	}
}

// low is the lowest seq the ring can serve given the log's range, 0 if none.
func (r *ring) low(last, deletedThrough uint64) uint64 {
	if r.first == 0 || last < r.first {
		return 0
	}
	lo := max(r.first, deletedThrough+1)
	if n := uint64(len(r.evs)); last >= n && last-n+1 > lo {
		lo = last - n + 1
	}
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
	return r.evs[seq%uint64(len(r.evs))]
}
