// Package tracing makes the router's OpenTelemetry spans and carries W3C trace context through
// the log to delivered messages. It uses the OpenTelemetry Go SDK's types and sampler, records
// its spans itself (span.go) and writes their OTLP export requests itself (otlpenc.go), sent
// over OTLP/HTTP or OTLP/gRPC (otlpexport.go).
//
// A nil *Tracer means tracing is off: the engine checks for nil before any call, so that a router
// without a tracing block pays one pointer comparison per hook and nothing else.
//
// The spans of one event (docs/tracing.md has the full picture):
//
//	receive <queue>        consumer, child of the source's traceparent (a new trace without one);
//	                       ends once the event is durably logged and acknowledged
//	  process <route>      one per route that ran the event
//	    module <name>      one per guest call, with its result code
//	    send <exchange>    producer, one per publish to a target, ends at the broker's confirm;
//	                       the delivered copy's traceparent names it
//
// The receive span's ids are derived from what the log keeps of the event (its message id,
// source and ingest time), so that a route processing it later, even after a restart, finds its
// parent, and a replay can link to it. A replay or a redrive starts a new trace linked there.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/wasmrouter/wasmrouter/internal/config"
)

// instrumentationName names the router's tracer in exported spans.
const instrumentationName = "github.com/wasmrouter/wasmrouter"

// Options build a Tracer.
type Options struct {
	Spec config.TracingSpec
	// Exporter receives the finished spans; nil builds the OTLP exporter Spec describes.
	Exporter sdktrace.SpanExporter
	// Dropped counts spans lost to a full queue or a failed export; Exported those sent. Nil
	// counters are allowed.
	Dropped, Exported prometheus.Counter
	Logger            *slog.Logger
	// QueueBytes bounds the memory of the finished spans the exporter holds, waiting or being
	// exported (default 8 MiB; with the router's exporter, the spans' encodings: 240-500 bytes
	// each, about 20,000 of the router's spans); a span that finds it full is dropped, never
	// waited for.
	QueueBytes int
	// Batch is how many spans go in one export (default 512); Interval how long a partial
	// batch waits (default 1s); ExportTimeout bounds one export, retries included (default 30s,
	// a backstop: each OTLP request gives up after OTEL_EXPORTER_OTLP_TIMEOUT, 10s by default).
	Batch         int
	Interval      time.Duration
	ExportTimeout time.Duration
	// Version is the router's version, in the resource as service.version.
	Version string
}

// Tracer makes the router's spans. It is safe for concurrent use.
type Tracer struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer     // the SDK's, for comparison in benchmarks; the router's spans are span
	sampler  sdktrace.Sampler // parent-based
	root     sdktrace.Sampler // the ratio, for a new trace
	proc     *dropProcessor
	service  string
	resource *resource.Resource
	scope    instrumentation.Scope
}

// New builds a tracer exporting to opts.Exporter, or to the collector opts.Spec names. It does
// not contact the collector: one that is down only costs dropped spans.
func New(ctx context.Context, opts Options) (*Tracer, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	exporter := opts.Exporter
	if exporter == nil {
		var err error
		if exporter, err = newExporter(opts.Spec, opts.Version, opts.Logger); err != nil {
			return nil, err
		}
	}
	res, service, err := newResource(ctx, opts.Spec.ServiceName, opts.Version)
	if err != nil {
		return nil, err
	}
	proc := newDropProcessor(exporter, opts)
	root := sdktrace.TraceIDRatioBased(opts.Spec.SampleRatio)
	sampler := sdktrace.ParentBased(root)
	// The provider flushes and shuts the processor down; the router's own spans (span.go) are
	// recorded without it and handed to the processor directly.
	provider := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sampler),
		sdktrace.WithSpanProcessor(proc),
		sdktrace.WithResource(res),
	)
	return &Tracer{
		provider: provider,
		tracer:   provider.Tracer(instrumentationName, trace.WithInstrumentationVersion(opts.Version)),
		sampler:  sampler,
		root:     root,
		proc:     proc,
		service:  service,
		resource: res,
		scope:    instrumentation.Scope{Name: instrumentationName, Version: opts.Version},
	}, nil
}

// newExporter builds the OTLP exporter of spec (otlpexport.go). The endpoint is always given
// explicitly (the config already applied the OTEL_EXPORTER_OTLP_*ENDPOINT variables); the
// other OTEL_EXPORTER_OTLP_* variables (headers, certificates, compression, timeout) are read
// there. Retries stay on, bounded by the export timeout: spans that wait meanwhile are dropped.
func newExporter(spec config.TracingSpec, version string, log *slog.Logger) (sdktrace.SpanExporter, error) {
	return newOTLPExporter(spec, version, log)
}

// newResource describes the router: service.name from the block, else from the environment
// (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES), else "wasmrouter".
func newResource(ctx context.Context, service, version string) (*resource.Resource, string, error) {
	res, err := resource.New(ctx, resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithHost())
	if err != nil && res == nil {
		return nil, "", fmt.Errorf("tracing: resource: %w", err)
	}
	if service == "" {
		if v, ok := res.Set().Value(semconv.ServiceNameKey); ok && v.AsString() != "" {
			service = v.AsString()
		} else {
			service = config.DefaultServiceName
		}
	}
	attrs := []resource.Option{resource.WithAttributes(semconv.ServiceName(service))}
	if version != "" {
		attrs = append(attrs, resource.WithAttributes(semconv.ServiceVersion(version)))
	}
	own, err := resource.New(ctx, attrs...)
	if err != nil {
		return nil, "", fmt.Errorf("tracing: resource: %w", err)
	}
	merged, err := resource.Merge(res, own)
	if err != nil {
		return nil, "", fmt.Errorf("tracing: resource: %w", err)
	}
	return merged, service, nil
}

// ServiceName is the service.name the spans carry.
func (t *Tracer) ServiceName() string { return t.service }

// ForceFlush exports every span finished so far, waiting at most until ctx ends.
func (t *Tracer) ForceFlush(ctx context.Context) error { return t.provider.ForceFlush(ctx) }

// Shutdown exports what is queued, within ctx, and stops the exporter. Spans ended afterwards are
// ignored.
func (t *Tracer) Shutdown(ctx context.Context) error {
	err := t.provider.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("tracing: spans left unexported at shutdown: %w", err)
	}
	return err
}
