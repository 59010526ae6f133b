package tracing

import (
	"context"
	"syscall"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
)

// discard is a collector that takes everything at once.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// BenchmarkEventSpans is the tracing work of one event on one route with one module and one
// target, sampled (ratio 1.0): receive, process, module and send spans, the traceparent
// written into the copy's headers, and the export queue.
func BenchmarkEventSpans(b *testing.B) {
	tr, err := New(context.Background(), Options{Spec: config.TracingSpec{SampleRatio: 1}, Exporter: discard{}})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	ev := testEvent(event.Table{"traceparent": sourceParent})
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		deliver(tr, ev, false)
	}
	// CPU time, not wall time, is what a shared machine leaves comparable; it includes the
	// exporting goroutine and the garbage collector.
	b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())

}

// BenchmarkSDKSpanFloor is one span without attributes, started and ended through the same
// provider: the SDK's own floor, to read BenchmarkEventSpans (four spans) against.
func BenchmarkSDKSpanFloor(b *testing.B) {
	tr, err := New(context.Background(), Options{Spec: config.TracingSpec{SampleRatio: 1}, Exporter: discard{}})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	ctx := context.Background()
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		_, span := tr.tracer.Start(ctx, "span")
		span.End()
	}
	b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
}
