package router

import (
	"context"
	"sync"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/tracing"
)

// decisionSlots is how many recent decisions a route keeps for its streams.
const decisionSlots = 8192

// decisions shares a route's module decisions among its streams: the first stream to reach an
// event runs the modules, the others reuse the result, so every target sees the same decision
// and a handler runs once per event, not once per target. A stream far behind the others may
// find its slot reused and decide again.
//
// The slots are one array, allocated at the first decision, each with its own lock: a decision
// takes no allocation and no lock shared by the whole route (a traced route without modules
// decides here for every event, BENCHMARKS.md, Tracing). A stream that wants a slot another is
// deciding, for an event 8192 apart, waits for it, as one waited for the same event.
type decisions struct {
	once  sync.Once
	slots *[decisionSlots]decisionEntry
}

type decisionEntry struct {
	mu   sync.Mutex
	seq  uint64
	done bool // d is seq's decision
	d    Decision
}

func (c *decisions) table() *[decisionSlots]decisionEntry {
	c.once.Do(func() { c.slots = new([decisionSlots]decisionEntry) })
	return c.slots
}

// decide returns the route's decision for ev, computing it at most once while it is cached.
// first reports whether this call computed it (in a process span when tracer is not nil). A decision cut short by ctx is not kept.
func (c *decisions) decide(ctx context.Context, r *Route, ev *event.Event, tracer *tracing.Tracer) (d Decision, first bool) {
	e := &c.table()[ev.Seq%decisionSlots]
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.done && e.seq == ev.Seq {
		d = e.d
		if d.Event == nil {
			d.Event = ev
		}
		return d, false
	}
	e.seq, e.done, e.d = ev.Seq, false, Decision{}
	d = runRoute(ctx, tracer, r, ev, false)
	if ctx.Err() == nil {
		e.d, e.done = d, true
		if d.Event == ev {
			// Not transformed: each stream has its own copy of the logged event, so the slot
			// need not keep this one (and its record) alive for the next 8192 events. A
			// traced route without modules comes here for its process span only
			// (BENCHMARKS.md, Tracing).
			e.d.Event = nil
		}
	}
	return d, true
}
