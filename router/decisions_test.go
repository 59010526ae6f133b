package router

import (
	"context"
	"sync"
	"testing"

	"github.com/wasmrouter/wasmrouter/event"
)

func TestDecisionsAreSharedByStreams(t *testing.T) {
	r := testRoute(t, "a", "b")
	ev := &event.Event{Seq: 5, Source: "in", RoutingKey: "k"}
	var wg sync.WaitGroup
	firsts := make(chan bool, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, first := r.decisions.decide(context.Background(), r, ev, nil)
			if d.Verdict != Pass {
				t.Errorf("verdict %v", d.Verdict)
			}
			firsts <- first
		}()
	}
	wg.Wait()
	close(firsts)
	n := 0
	for f := range firsts {
		if f {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d streams computed the decision, want 1", n)
	}
	// A cancelled decision is not kept: the next stream decides again.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	other := &event.Event{Seq: 6, Source: "in", RoutingKey: "k"}
	if _, first := r.decisions.decide(ctx, r, other, nil); !first {
		t.Fatal("first call did not compute")
	}
	if _, first := r.decisions.decide(context.Background(), r, other, nil); !first {
		t.Fatal("a decision cut short by its context was reused")
	}
}

// A route that does not transform shares its decision without keeping the event: each stream
// has its own copy of the logged event, and a slot kept for the next 8192 events would
// otherwise hold that many records (a traced route without modules decides through the cache).
func TestSharedDecisionsKeepNoUntransformedEvent(t *testing.T) {
	r := testRoute(t, "a", "b")
	first := &event.Event{Seq: 7, Source: "in", RoutingKey: "k"}
	second := &event.Event{Seq: 7, Source: "in", RoutingKey: "k"}
	d, computed := r.decisions.decide(context.Background(), r, first, nil)
	if !computed || d.Event != first {
		t.Fatalf("first stream: computed %v, event %p, want true and its own %p", computed, d.Event, first)
	}
	if kept := r.decisions.slots[7].d.Event; kept != nil {
		t.Fatalf("the slot keeps the event %p", kept)
	}
	d, computed = r.decisions.decide(context.Background(), r, second, nil)
	if computed || d.Event != second || d.Verdict != Pass {
		t.Fatalf("second stream: computed %v, event %p, verdict %v, want false, its own %p, pass", computed, d.Event, d.Verdict, second)
	}
}
