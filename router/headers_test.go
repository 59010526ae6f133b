package router

import (
	"maps"
	"testing"

	"github.com/wasmrouter/wasmrouter/event"
)

// TestRouterHeadersFromFreedTable: a table given back after its message settled comes back
// holding only the next message's headers, none of the last one's.
func TestRouterHeadersFromFreedTable(t *testing.T) {
	first := &event.Event{Seq: 1000, Source: "in", Headers: event.Table{"a": "1", "b": int64(2)}}
	h := routerHeaders(first.Headers, "r1", first, true)
	want := event.Table{"a": "1", "b": int64(2), event.HeaderRoute: "r1", event.HeaderSource: "in",
		event.HeaderSeq: int64(1000), event.HeaderReplay: true}
	if !maps.Equal(h, want) {
		t.Fatalf("first: %v, want %v", h, want)
	}
	freeHeaderTable(h)

	for i := 0; i < 10; i++ { // whether the pool hands the table back or not
		next := &event.Event{Seq: 1001, Source: "in2", Headers: event.Table{"c": "3"}}
		h = routerHeaders(next.Headers, "r2", next, false)
		want = event.Table{"c": "3", event.HeaderRoute: "r2", event.HeaderSource: "in2", event.HeaderSeq: int64(1001)}
		if !maps.Equal(h, want) {
			t.Fatalf("after a freed table: %v, want %v", h, want)
		}
		freeHeaderTable(h)
	}
}

// TestRouterHeadersNoAlloc: with a table given back, a message's headers cost only the boxed
// seq and source (a route boxes its source once; the table itself was two more).
func TestRouterHeadersNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	ev := &event.Event{Seq: 1 << 20, Source: "in", Headers: event.Table{"tenant": "acme", "x-bench-seq": int64(7)}}
	freeHeaderTable(routerHeaders(ev.Headers, "r", ev, false))
	allocs := testing.AllocsPerRun(1000, func() {
		freeHeaderTable(routerHeaders(ev.Headers, "r", ev, false))
	})
	if allocs > 2 {
		t.Fatalf("%.1f allocations per message's headers, want at most 2 (the seq and the source)", allocs)
	}
}
