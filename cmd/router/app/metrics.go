package app

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmrouter/wasmrouter/internal/amqpx"
	"github.com/wasmrouter/wasmrouter/internal/metrics"
	"github.com/wasmrouter/wasmrouter/internal/tracing"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/store"
	"github.com/wasmrouter/wasmrouter/wasmhost"
)

// Collectors are the router's Prometheus collectors (docs/metrics.md): each package creates
// and registers what it updates, all with one registry, and receives only its own.
type Collectors struct {
	App     *metrics.Metrics // readiness, configuration generations
	Engine  *router.Metrics
	Brokers *amqpx.Metrics
	Log     *store.Metrics
	Wasm    *wasmhost.Metrics
	Tracing *tracing.Metrics
}

// NewCollectors creates every package's collectors and registers them with reg.
func NewCollectors(reg prometheus.Registerer) *Collectors {
	c := &Collectors{
		App:     metrics.New(reg),
		Engine:  router.NewMetrics(reg),
		Brokers: amqpx.NewMetrics(reg),
		Log:     store.NewMetrics(reg),
		Wasm:    wasmhost.NewMetrics(reg),
		Tracing: tracing.NewMetrics(reg),
	}
	// One series, counted by the bbolt log's retention and by the engine for a shared log.
	c.Engine.StoreLost = c.Log.Lost
	return c
}
