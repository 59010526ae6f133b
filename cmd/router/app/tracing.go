package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/tracing"
)

// tracingShutdownTimeout bounds how long a stop waits to export the last spans.
const tracingShutdownTimeout = 5 * time.Second

// startTracer builds the tracer of the config's tracing block: nil without one. stop exports
// what is left (within tracingShutdownTimeout) and closes the exporter.
func startTracer(ctx context.Context, cfg *config.Config, m *tracing.Metrics, log *slog.Logger) (tr *tracing.Tracer, stop func(), err error) {
	if cfg.Tracing == nil {
		return nil, func() {}, nil
	}
	tr, err = tracing.New(ctx, tracing.Options{
		Spec: *cfg.Tracing, Dropped: m.Dropped, Exported: m.Exported,
		Logger: log.With("component", "tracing"),
	})
	if err != nil {
		return nil, nil, err
	}
	log.Info("tracing on", "endpoint", cfg.Tracing.Endpoint, "protocol", cfg.Tracing.Protocol,
		"sample_ratio", cfg.Tracing.SampleRatio, "service_name", tr.ServiceName())
	return tr, func() {
		ctx, cancel := context.WithTimeout(context.Background(), tracingShutdownTimeout)
		defer cancel()
		if err := tr.Shutdown(ctx); err != nil {
			log.Warn("tracing: last spans not exported", "error", err)
		}
	}, nil
}
