// Package metrics holds the application's own collectors of docs/metrics.md: readiness and the
// configuration generations. Every other collector belongs to the package that updates it
// (router, internal/amqpx, store, wasmhost, internal/tracing: each has a NewMetrics), and the
// application registers them all with one registry.
package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the application's collectors. Tests build one against their own registry with
// New(prometheus.NewRegistry()).
type Metrics struct {
	ConfigGeneration prometheus.Gauge       // the configuration generation in force
	ConfigReloads    *prometheus.CounterVec // {result}: applied | refused

	// ready answers router_ready at each scrape (see SetReadiness).
	ready atomic.Pointer[func() bool]
}

// SetReadiness gives router_ready its source: 1 when ready() says the router is ready (what
// /readyz answers), else 0. Until it is set, router_ready is 0.
func (m *Metrics) SetReadiness(ready func() bool) { m.ready.Store(&ready) }

func (m *Metrics) readyValue() float64 {
	if f := m.ready.Load(); f != nil && (*f)() {
		return 1
	}
	return 0
}

// New creates the collectors and registers them with reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ConfigGeneration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "router_config_generation", Help: "Generation of the configuration in force (1 at start, +1 per applied reload).",
		}),
		ConfigReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "router_config_reloads_total", Help: "Configuration reloads by result (applied, refused).",
		}, []string{"result"}),
	}
	m.ConfigGeneration.Set(1)
	m.ConfigReloads.WithLabelValues("applied").Add(0)
	m.ConfigReloads.WithLabelValues("refused").Add(0)
	reg.MustRegister(m.ConfigGeneration, m.ConfigReloads)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "router_ready", Help: "1 while the router is ready (every source consuming, the log writable), else 0.",
	}, m.readyValue))
	return m
}
