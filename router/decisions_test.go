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
