package router

import (
	"testing"

	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/store"
)

func TestDedupWindowFollowsTheChannel(t *testing.T) {
	s := &source{spec: config.SourceSpec{Prefetch: 2}, recent: make([]uint64, 0, 3)}
	s.consumingChanged(false) // never consumed: keeps the start window
	if !s.dedupWindow().Empty() {
		t.Fatalf("window %+v before any channel", s.dedupWindow())
	}
	s.consumingChanged(true)
	for _, seq := range []uint64{10, 12, 15, 20} {
		s.remember(seq)
	}
	s.consumingChanged(false)
	// The ring holds the last three: 12, 15, 20.
	if w := s.dedupWindow(); w != (store.Window{From: 12, To: 20}) {
		t.Fatalf("window after the channel dropped: %+v, want 12..20", w)
	}
	s.consumingChanged(true)
	s.remember(30)
	if w := s.dedupWindow(); w != (store.Window{From: 12, To: 20}) {
		t.Fatalf("window moved while consuming: %+v", w)
	}
	s.consumingChanged(false)
	if w := s.dedupWindow(); w != (store.Window{From: 15, To: 30}) {
		t.Fatalf("window after the second drop: %+v, want 15..30", w)
	}
}

func TestStartDedupWindowAfterCrashAndAfterGracefulStop(t *testing.T) {
	st, err := store.Open(store.Options{Path: t.TempDir() + "/log.db", NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e := &Engine{store: st}
	topo := &Topology{Config: &config.Config{Sources: []config.SourceSpec{{Name: "in", Prefetch: 10}}}}
	if w := e.startDedupWindow(topo); !w.Empty() {
		t.Fatalf("empty log: window %+v", w)
	}
	done := make(chan error, 200)
	for i := range 200 {
		ev := testEventN(i)
		st.Append(ev, store.FingerprintOf(ev), store.Window{}, func(_ uint64, _ bool, err error) { done <- err })
	}
	for range 200 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// After a crash: the last 2*(prefetch+64) events may be unacknowledged.
	if w := e.startDedupWindow(topo); w != (store.Window{From: 200 - 148 + 1, To: 200}) {
		t.Fatalf("after a crash: window %+v", w)
	}
	// After a graceful stop every logged event was acknowledged.
	if err := st.ResetCursor(ackedCursor, 200); err != nil {
		t.Fatal(err)
	}
	if w := e.startDedupWindow(topo); !w.Empty() {
		t.Fatalf("after a graceful stop: window %+v", w)
	}
}
