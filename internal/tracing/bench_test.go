package tracing

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
)

// discard is a collector that takes everything at once.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// keepsNoSpans: like the router's own exporter, discard keeps nothing, so the spans are
// recycled as they are in the router.
func (discard) keepsNoSpans() {}

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

// BenchmarkEventSpansOTLP is BenchmarkEventSpans exporting for real: the router's OTLP/HTTP
// exporter encodes every span (otlpenc.go) and posts the batches to a collector in the test
// process that reads and discards them (its share of the CPU time is small next to the
// encoding). dropped/op must be 0.
func BenchmarkEventSpansOTLP(b *testing.B) {
	benchmarkOTLP(b, nil)
}

// BenchmarkEventSpansOTLPSDK is the same through the OpenTelemetry SDK's OTLP/HTTP exporter
// (its protobuf structures and proto.Marshal), which the router used before its own encoder:
// the comparison for BenchmarkEventSpansOTLP.
func BenchmarkEventSpansOTLPSDK(b *testing.B) {
	benchmarkOTLP(b, func(url string) sdktrace.SpanExporter {
		exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(url))
		if err != nil {
			b.Fatal(err)
		}
		return exp
	})
}

func benchmarkOTLP(b *testing.B, exporter func(url string) sdktrace.SpanExporter) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "dropped"})
	opts := Options{Spec: config.TracingSpec{SampleRatio: 1, Endpoint: srv.URL + "/v1/traces", Protocol: config.ProtocolHTTP}, Dropped: dropped}
	if exporter != nil {
		opts.Exporter = exporter(srv.URL + "/v1/traces")
	}
	tr, err := New(context.Background(), opts)
	if err != nil {
		b.Fatal(err)
	}
	ev := testEvent(event.Table{"traceparent": sourceParent})
	b.ReportAllocs()
	start := cpuTime()
	n := 0
	for b.Loop() {
		deliver(tr, ev, false)
		// Waits for the exporter now and then, so that the queue (8192 spans) never fills: a
		// dropped span would not be encoded and would make the figure look better.
		if n++; n%1000 == 0 {
			if err := tr.ForceFlush(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
	// Spans dropped for a full queue were not encoded: the figure holds only when this is 0.
	b.ReportMetric(testutil.ToFloat64(dropped)/float64(b.N), "dropped/op")
}
