package wasmhost

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the guests' collectors (docs/metrics.md).
type Metrics struct {
	WasmCalls        *prometheus.CounterVec   // {module,result}
	WasmCallDuration *prometheus.HistogramVec // {module}
	WasmInstances    *prometheus.CounterVec   // {module,reason}: instances (re)created
}

// NewMetrics creates the guests' collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		WasmCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "router_wasm_calls_total", Help: "Guest calls by result.",
		}, []string{"module", "result"}),
		WasmCallDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "router_wasm_call_duration_seconds",
			Help:    "Guest call duration.",
			Buckets: []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2, 0.1, 1},
		}, []string{"module"}),
		WasmInstances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "router_wasm_instances_created_total", Help: "Guest instances created, by reason.",
		}, []string{"module", "reason"}),
	}
	reg.MustRegister(m.WasmCalls, m.WasmCallDuration, m.WasmInstances)
	return m
}
