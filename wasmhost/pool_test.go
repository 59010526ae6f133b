package wasmhost

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestPoolHammer runs many goroutines against a small pool with timeouts, traps and memory
// recycling mixed in; run it with -race.
func TestPoolHammer(t *testing.T) {
	h := newHost(t)
	// The timeout is wall time, and a guest looping until it ends keeps a core busy all along:
	// with the pool's three instances looping on a loaded 2-core machine under -race, a
	// legitimate call (bloat grows and recycles memory) was seen to take over 500ms. So the
	// timeout leaves a wide margin, and only a few calls loop (each holds an instance for the
	// whole timeout), enough for timeouts to overlap the other calls and each other.
	const timeout = 5 * time.Second
	m := h.load(t, ModuleConfig{Path: cGuest("hostile"), PoolSize: 3, Timeout: timeout, MaxMemory: 1 << 20})
	const workers, perWorker = 8, 40
	type want struct {
		op     string
		code   Code
		reason string
	}
	mix := []want{
		{"ok", Continue, ""}, {"ok", Continue, ""}, {"ok", Continue, ""}, {"code", Retry, "unknown result code 7"},
		{"ok", Continue, ""}, {"trap", Retry, "trap: "}, {"ok", Continue, ""}, {"bad_name", Retry, "meta_get: name"},
		{"ok", Continue, ""}, {"bloat", Continue, ""},
	}
	loop := want{"loop", Retry, "timeout after " + timeout.String()}
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				c := mix[(w*7+i)%len(mix)]
				if w%2 == 0 && i == perWorker/2 {
					c = loop // four loops, about at once: three hold the whole pool
				}
				in := op(c.op, "pages", "8") // past half of max_memory: recycled

				out := m.Call(context.Background(), RoleFilter, in)
				if out.Code != c.code || !strings.HasPrefix(out.Reason, c.reason) || (c.reason == "" && out.Reason != "") {
					errs <- fmt.Errorf("%s: %v %q, want %v %q", c.op, out.Code, out.Reason, c.code, c.reason)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var total float64
	for _, r := range resultLabels {
		total += h.calls("hostile", r)
	}
	if total != workers*perWorker {
		t.Errorf("calls counted %v, want %v", total, workers*perWorker)
	}
	if err := m.Close(context.Background()); err != nil {
		t.Errorf("close: %v", err)
	}
}

func TestCallWaitsForAnInstance(t *testing.T) {
	h := newHost(t)
	m := h.load(t, ModuleConfig{Path: cGuest("hostile"), PoolSize: 1, Timeout: 300 * time.Millisecond})
	busy := make(chan Outcome)
	go func() { busy <- m.Call(context.Background(), RoleFilter, op("loop")) }()

	waitFor(t, "the loop to take the only instance", func() bool { return len(m.pool) == 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	out := m.Call(ctx, RoleFilter, op("ok"))
	if out.Code != Retry || out.Reason != "waiting for an instance: context deadline exceeded" {
		t.Errorf("call with an empty pool: %v %q", out.Code, out.Reason)
	}
	if got := <-busy; got.Reason != "timeout after 300ms" {
		t.Errorf("loop: %v %q", got.Code, got.Reason)
	}
	// Without a deadline, the caller waits for the replacement instance.
	if out := m.Call(context.Background(), RoleFilter, op("ok")); out.Code != Continue {
		t.Errorf("after the replacement: %v %q", out.Code, out.Reason)
	}
}

func TestModuleClose(t *testing.T) {
	h := newHost(t)
	m := h.load(t, ModuleConfig{Path: cGuest("hostile"), PoolSize: 2, Timeout: 200 * time.Millisecond})
	done := make(chan Outcome)
	go func() { done <- m.Call(context.Background(), RoleFilter, op("loop")) }()
	waitFor(t, "the loop to take an instance", func() bool { return len(m.pool) == 1 })
	// Close waits for the call in progress (ended by its timeout) and its replacement.
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if out := <-done; out.Reason != "timeout after 200ms" {
		t.Errorf("call in progress: %v %q", out.Code, out.Reason)
	}
	if out := m.Call(context.Background(), RoleFilter, op("ok")); out.Code != Retry || out.Reason != "module closed" {
		t.Errorf("call after close: %v %q", out.Code, out.Reason)
	}
	if err := m.Close(context.Background()); err != nil {
		t.Errorf("second close: %v", err)
	}
}

// waitFor polls cond until it holds, failing the test after five seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
