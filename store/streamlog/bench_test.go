package streamlog

import (
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/store"
)

// BenchmarkAppend appends 1 KiB events, pipelined, each done once confirmed and seen by the
// tail (make bench territory: it needs the broker).
func BenchmarkAppend(b *testing.B) {
	conn := rabbit.Dial(b)
	stream := rabbit.Unique("streamlog.bench")
	rabbit.DeleteQueueAtCleanup(b, stream)
	l, err := Open(conn, Options{Native: mainNative(b), Stream: stream})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ev := &event.Event{Source: "in", Exchange: "events", RoutingKey: "order.created", Body: make([]byte, 1024), IngestTime: time.Now()}
	fp := store.FingerprintOf(ev)
	done := make(chan error, 1024)
	b.SetBytes(1024)
	b.ResetTimer()
	go func() {
		for i := 0; i < b.N; i++ {
			l.Append(ev, fp, store.Window{}, func(_ uint64, _ bool, err error) { done <- err })
		}
	}()
	for i := 0; i < b.N; i++ {
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkScanBehindMemory reads 1 KiB events in batches of 100, as a delivery loop that has
// fallen behind the records kept in memory does: every batch from the broker.
func BenchmarkScanBehindMemory(b *testing.B) {
	stream := rabbit.Unique("streamlog.bench")
	rabbit.DeleteQueueAtCleanup(b, stream)
	l, err := Open(rabbit.Dial(b), Options{Native: mainNative(b), Stream: stream, Recent: 10, Recognised: 10})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	const n = 20000
	done := make(chan error, n)
	for i := range n {
		ev := &event.Event{Source: "in", Exchange: "events", RoutingKey: "order.created", Body: make([]byte, 1024), IngestTime: time.Unix(0, int64(i))}
		l.Append(ev, store.Fingerprint{}, store.Window{}, func(_ uint64, _ bool, err error) { done <- err })
	}
	for range n {
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	first, last := l.LastSeq()-n+1, l.LastSeq()
	b.SetBytes(1024)
	b.ResetTimer()
	read := 0
	for read < b.N {
		for next := first; next <= last && read < b.N; {
			next, err = l.Scan(next, 100, nil, func(*event.Event) bool { read++; return true })
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "events/s")
}
