// Package metrics holds the Prometheus collectors of docs/metrics.md, built once against a
// registry and handed to the components that update them.
package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the router's collectors. A nil *Metrics is not allowed; tests build one against
// their own registry with New(prometheus.NewRegistry()).
type Metrics struct {
	EventsConsumed     *prometheus.CounterVec // {source}
	EventsStored       *prometheus.CounterVec // {source}
	EventsDuplicate    *prometheus.CounterVec // {source}: redeliveries already in the log
	EventsUnmatched    *prometheus.CounterVec // {source}
	EventsRejected     *prometheus.CounterVec // {source,reason}: undecodable or oversized at ingest
	EventsDelivered    *prometheus.CounterVec // {route,target}
	EventsReplayed     *prometheus.CounterVec // {route,target}
	EventsDropped      *prometheus.CounterVec // {route}
	EventsDeadLettered *prometheus.CounterVec // {route}
	// DeadLettersRefused counts dead letters the dead-letter target kept refusing: they stay
	// in the log (router dlq list, dlq replay).
	DeadLettersRefused *prometheus.CounterVec // {route}
	DeliveryRetries    *prometheus.CounterVec // {route,target}
	DeliveryLag        *prometheus.GaugeVec   // {route,target}
	WasmCalls          *prometheus.CounterVec // {module,result}
	WasmCallDuration   *prometheus.HistogramVec
	WasmInstances      *prometheus.CounterVec // {module,reason}: instances (re)created
	StoreSize          prometheus.Gauge
	StoreMaxSize       prometheus.Gauge // store.max_size, for alerts on a log nearly full
	StoreCommits       prometheus.Counter
	StoreLost          prometheus.Counter     // events removed by drop_oldest before delivery
	BrokerConnected    *prometheus.GaugeVec   // {cluster}
	BrokerReconnects   *prometheus.CounterVec // {cluster}
	FailoverSwitches   *prometheus.CounterVec // {target}
	ConfigGeneration   prometheus.Gauge       // the configuration generation in force
	ConfigReloads      *prometheus.CounterVec // {result}: applied | refused
	TraceSpansDropped  prometheus.Counter     // spans lost to a full export queue or a failed export
	TraceSpansExported prometheus.Counter

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
		EventsConsumed:     counter("router_events_consumed_total", "Messages received from the broker.", "source"),
		EventsStored:       counter("router_events_stored_total", "Events appended to the log.", "source"),
		EventsDuplicate:    counter("router_events_duplicate_total", "Redeliveries recognised as already in the log.", "source"),
		EventsUnmatched:    counter("router_events_unmatched_total", "Events that matched no route.", "source"),
		EventsRejected:     counter("router_events_rejected_total", "Messages refused at ingest (oversized or undecodable).", "source", "reason"),
		EventsDelivered:    counter("router_events_delivered_total", "Publishes the broker confirmed, replays included.", "route", "target"),
		EventsReplayed:     counter("router_events_replayed_total", "Replayed publishes the broker confirmed.", "route", "target"),
		EventsDropped:      counter("router_events_dropped_total", "Events a module dropped.", "route"),
		EventsDeadLettered: counter("router_events_dead_lettered_total", "Events dead-lettered.", "route"),
		DeadLettersRefused: counter("router_dead_letters_refused_total", "Dead letters the dead-letter target kept refusing; they stay in the log.", "route"),
		DeliveryRetries:    counter("router_delivery_retries_total", "Publishes retried after a broker refusal.", "route", "target"),
		DeliveryLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "router_delivery_lag_events", Help: "Events in the log not yet delivered.",
		}, []string{"route", "target"}),
		WasmCalls: counter("router_wasm_calls_total", "Guest calls by result.", "module", "result"),
		WasmCallDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "router_wasm_call_duration_seconds",
			Help:    "Guest call duration.",
			Buckets: []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2, 0.1, 1},
		}, []string{"module"}),
		WasmInstances: counter("router_wasm_instances_created_total", "Guest instances created, by reason.", "module", "reason"),
		StoreSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "router_store_size_bytes", Help: "Size of the log file.",
		}),
		StoreMaxSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "router_store_max_size_bytes", Help: "The log's configured maximum size (store.max_size).",
		}),
		StoreCommits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "router_store_commits_total", Help: "Log transactions committed (each one fsync).",
		}),
		StoreLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "router_store_dropped_undelivered_total", Help: "Events removed by on_full=drop_oldest before every target had them.",
		}),
		BrokerConnected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "router_broker_connected", Help: "1 while the cluster's connection is up.",
		}, []string{"cluster"}),
		BrokerReconnects: counter("router_broker_reconnects_total", "Connections (re)established.", "cluster"),
		FailoverSwitches: counter("router_failover_switches_total", "Failover targets switching cluster.", "target"),
		ConfigGeneration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "router_config_generation", Help: "Generation of the configuration in force (1 at start, +1 per applied reload).",
		}),
		ConfigReloads: counter("router_config_reloads_total", "Configuration reloads by result (applied, refused).", "result"),
		TraceSpansDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "router_trace_spans_dropped_total", Help: "Trace spans dropped because the collector was unreachable or too slow.",
		}),
		TraceSpansExported: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "router_trace_spans_exported_total", Help: "Trace spans the collector accepted.",
		}),
	}
	m.ConfigGeneration.Set(1)
	m.ConfigReloads.WithLabelValues("applied").Add(0)
	m.ConfigReloads.WithLabelValues("refused").Add(0)
	reg.MustRegister(m.EventsConsumed, m.EventsStored, m.EventsDuplicate, m.EventsUnmatched,
		m.EventsRejected, m.EventsDelivered, m.EventsReplayed, m.EventsDropped, m.EventsDeadLettered,
		m.DeadLettersRefused, m.DeliveryRetries, m.DeliveryLag, m.WasmCalls, m.WasmCallDuration, m.WasmInstances,
		m.StoreSize, m.StoreCommits, m.StoreLost, m.BrokerConnected, m.BrokerReconnects,
		m.FailoverSwitches, m.ConfigGeneration, m.ConfigReloads, m.TraceSpansDropped, m.TraceSpansExported, m.StoreMaxSize)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "router_ready", Help: "1 while the router is ready (every source consuming, the log writable), else 0.",
	}, m.readyValue))
	return m
}

func counter(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}
