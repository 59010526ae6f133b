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
