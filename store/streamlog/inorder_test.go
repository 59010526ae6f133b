package streamlog

import (
	"errors"
	"math/rand"
	"sync"
	"testing"
)

// Completions that arrive in any order, from any goroutine, are handed out in ticket order,
// each once.
func TestInOrderHandsOutCompletionsInTicketOrder(t *testing.T) {
	o := newInOrder()
	const n = 2000
	var (
		mu  sync.Mutex
		got []uint64
	)
	dones := make([]func(uint64, bool, error), n)
	for i := range dones {
		dones[i] = o.wrap(func(seq uint64, _ bool, _ error) {
			mu.Lock()
			got = append(got, seq)
			mu.Unlock()
		})
	}
	order := rand.New(rand.NewSource(1)).Perm(n)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				dones[order[i]](uint64(order[i]), false, nil)
			}
		}(w)
	}
	wg.Wait()
	if len(got) != n {
		t.Fatalf("%d completions handed out, want %d", len(got), n)
	}
	for i, seq := range got {
		if seq != uint64(i) {
			t.Fatalf("completion %d handed out as the %dth", seq, i)
		}
	}
}

// A later append's completion waits for an earlier one's, even when the earlier one fails
// long after (a lost log), and a barrier comes back only after both.
func TestInOrderHoldsLaterCompletionsBehindALateFailure(t *testing.T) {
	o := newInOrder()
	var got []string
	lost := errors.New("lost")
	first := o.wrap(func(_ uint64, _ bool, err error) { got = append(got, "first:"+err.Error()) })
	second := o.wrap(func(seq uint64, _ bool, _ error) { got = append(got, "second") })
	barrier := o.wrap(func(uint64, bool, error) { got = append(got, "barrier") })
	barrier(0, false, nil)
	second(7, false, nil)
	if len(got) != 0 {
		t.Fatalf("handed out before the first append settled: %v", got)
	}
	first(0, false, lost)
	want := []string{"first:lost", "second", "barrier"}
	if len(got) != len(want) {
		t.Fatalf("handed out %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("handed out %v, want %v", got, want)
		}
	}
}
