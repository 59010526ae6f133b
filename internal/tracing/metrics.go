package tracing

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the span export's collectors (docs/metrics.md); a Tracer counts into the two
// counters its Options name.
type Metrics struct {
	Dropped  prometheus.Counter // spans lost to a full export queue or a failed export
	Exported prometheus.Counter
}

// NewMetrics creates the span export's collectors and registers them with reg. They exist
// without a tracing block too, at 0.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "router_trace_spans_dropped_total", Help: "Trace spans dropped because the collector was unreachable or too slow.",
		}),
		Exported: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "router_trace_spans_exported_total", Help: "Trace spans the collector accepted.",
		}),
	}
	reg.MustRegister(m.Dropped, m.Exported)
	return m
}
