package store

import (
	"bytes"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmrouter/wasmrouter/event"
)

// testOptions returns options for a fresh file in a temporary directory, without fsync.
func testOptions(t testing.TB) Options {
	t.Helper()
	return Options{
		Path:    filepath.Join(t.TempDir(), "data", "router.db"),
		NoSync:  true,
		Metrics: NewMetrics(prometheus.NewRegistry()),
	}
}

// openStore opens a store and closes it when the test ends.
func openStore(t testing.TB, opts Options) *Store {
	t.Helper()
	s, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var baseTime = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)

// testEvent builds a varied event; body is padded to bodyLen bytes.
func testEvent(i, bodyLen int) *event.Event {
	body := fmt.Appendf(nil, `{"n":%d}`, i)
	if len(body) < bodyLen {
		body = append(body, bytes.Repeat([]byte{'x'}, bodyLen-len(body))...)
	}
	return &event.Event{
		Source:     []string{"in", "audit", "billing"}[i%3],
		Exchange:   "events",
		RoutingKey: fmt.Sprintf("order.%d.created", i%7),
		Props: event.Properties{
			ContentType:  "application/json",
			DeliveryMode: 2,
			MessageID:    fmt.Sprintf("m-%d", i),
			Timestamp:    time.Unix(1700000000+int64(i), 0).UTC(),
		},
		Headers: event.Table{
			"n":      int32(i),
			"tenant": "acme",
			"retry":  []any{int64(i), true, nil},
		},
		Body:       body,
		IngestTime: baseTime.Add(time.Duration(i) * time.Millisecond),
	}
}

// appendAnswer is what an append's callback is given.
type appendAnswer struct {
	seq uint64
	dup bool
	err error
}

// appendSync appends ev and waits for the outcome; redelivered checks the whole log for a
// duplicate.
func appendSync(t testing.TB, s *Store, ev *event.Event, redelivered bool) (uint64, bool) {
	t.Helper()
	ch := make(chan appendAnswer, 1)
	var w Window
	if redelivered {
		w = Window{From: 1, To: ^uint64(0)}
	}
	s.Append(ev, FingerprintOf(ev), w, func(seq uint64, dup bool, err error) {
		ch <- appendAnswer{seq, dup, err}
	})
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Append: %v", r.err)
		}
		return r.seq, r.dup
	case <-time.After(10 * time.Second):
		t.Fatal("Append: no answer within 10s")
	}
	return 0, false
}

// appendN appends n events (bodies of bodyLen bytes) and waits until all are committed.
func appendN(t testing.TB, s *Store, n, bodyLen int) {
	t.Helper()
	errs := make(chan error, n)
	for i := range n {
		ev := testEvent(i, bodyLen)
		s.Append(ev, FingerprintOf(ev), Window{}, func(_ uint64, _ bool, err error) { errs <- err })
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
}

// encoded is an event's record encoding, which is canonical: equal events encode equally.
func encoded(t testing.TB, ev *event.Event) []byte {
	t.Helper()
	b, err := appendRecord(nil, ev, Fingerprint{})
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// cpuPerOp reports the process's CPU time (user and system, every thread: GC included) per
// iteration as cpu-ns/op: on a shared machine ns/op is wall time and counts the waits for a
// core, which CPU time leaves out. Call the returned function when the loop is done.
func cpuPerOp(b *testing.B) func() {
	start := processCPU(b)
	return func() {
		b.ReportMetric(float64(processCPU(b)-start)/float64(b.N), "cpu-ns/op")
	}
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
