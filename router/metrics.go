package router

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the engine's collectors (docs/metrics.md): what the sources took in, what the
// streams delivered, dropped, retried and dead-lettered. NewMetrics registers them; the
// engine's tests register theirs with a registry of their own.
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
	// EventsUnroutable counts events a target with unroutable = "drop" dropped because the
	// broker had no queue for them.
	EventsUnroutable *prometheus.CounterVec // {route,target}
	DeliveryRetries  *prometheus.CounterVec // {route,target}
	DeliveryLag      *prometheus.GaugeVec   // {route,target}

	// StoreLost is the log's count of events removed before every target had them
	// (router_store_dropped_undelivered_total): the log's package owns it, and the engine adds
	// what a shared log's retention removed before a pair delivered it. NewMetrics sets an
	// unregistered counter; the application puts the log's in its place.
	StoreLost prometheus.Counter
}

// NewMetrics creates the engine's collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		EventsConsumed:     counterVec("router_events_consumed_total", "Messages received from the broker.", "source"),
		EventsStored:       counterVec("router_events_stored_total", "Events appended to the log.", "source"),
		EventsDuplicate:    counterVec("router_events_duplicate_total", "Redeliveries recognised as already in the log.", "source"),
		EventsUnmatched:    counterVec("router_events_unmatched_total", "Events that matched no route.", "source"),
		EventsRejected:     counterVec("router_events_rejected_total", "Messages refused at ingest (oversized or undecodable).", "source", "reason"),
		EventsDelivered:    counterVec("router_events_delivered_total", "Publishes the broker confirmed, replays included.", "route", "target"),
		EventsReplayed:     counterVec("router_events_replayed_total", "Replayed publishes the broker confirmed.", "route", "target"),
		EventsDropped:      counterVec("router_events_dropped_total", "Events a module dropped.", "route"),
		EventsDeadLettered: counterVec("router_events_dead_lettered_total", "Events dead-lettered.", "route"),
		EventsUnroutable:   counterVec("router_events_unroutable_dropped_total", "Events dropped because no queue took them (target unroutable = \"drop\").", "route", "target"),
		DeadLettersRefused: counterVec("router_dead_letters_refused_total", "Dead letters the dead-letter target kept refusing; they stay in the log.", "route"),
		DeliveryRetries:    counterVec("router_delivery_retries_total", "Publishes retried after a broker refusal.", "route", "target"),
		DeliveryLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "router_delivery_lag_events", Help: "Events in the log not yet delivered.",
		}, []string{"route", "target"}),
		StoreLost: prometheus.NewCounter(prometheus.CounterOpts{Name: "router_store_dropped_undelivered_total"}),
	}
	reg.MustRegister(m.EventsConsumed, m.EventsStored, m.EventsDuplicate, m.EventsUnmatched,
		m.EventsRejected, m.EventsDelivered, m.EventsReplayed, m.EventsDropped, m.EventsDeadLettered,
		m.DeadLettersRefused, m.EventsUnroutable, m.DeliveryRetries, m.DeliveryLag)
	return m
}

func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}
