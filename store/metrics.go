package store

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the log's collectors (docs/metrics.md). They exist whichever log is in use: with
// the log on a stream the file's figures stay 0, and the engine counts what the stream's
// retention removed in Lost.
type Metrics struct {
	Size    prometheus.Gauge   // router_store_size_bytes
	MaxSize prometheus.Gauge   // router_store_max_size_bytes: store.max_size, for alerts on a log nearly full
	Commits prometheus.Counter // router_store_commits_total
	// CommitDuration is router_store_commit_duration_seconds: a commit's transaction, its
	// writes and fdatasyncs included. CommitWait is router_store_commit_wait_seconds_total: the
	// time small batches waited for more events before their commits (Store.gather). With the
	// commits' count they tell what the log adds to an event's latency (BENCHMARKS.md, "Where an
	// event's latency goes in the log").
	CommitDuration prometheus.Histogram
	CommitWait     prometheus.Counter
	Lost           prometheus.Counter // router_store_dropped_undelivered_total: removed before delivery
}

// NewMetrics creates the log's collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Size: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "router_store_size_bytes", Help: "Size of the log file.",
		}),
		MaxSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "router_store_max_size_bytes", Help: "The log's configured maximum size (store.max_size).",
		}),
		Commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "router_store_commits_total", Help: "Log transactions committed (each one fsync).",
		}),
		CommitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "router_store_commit_duration_seconds",
			Help:    "Duration of a log commit, its writes and fdatasyncs included.",
			Buckets: prometheus.ExponentialBuckets(100e-6, 2, 12), // 0.1 ms to 205 ms
		}),
		CommitWait: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "router_store_commit_wait_seconds_total",
			Help: "Time small batches waited for more events before their commits (the group commit's linger).",
		}),
		Lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "router_store_dropped_undelivered_total", Help: "Events removed by on_full=drop_oldest before every target had them.",
		}),
	}
	reg.MustRegister(m.Size, m.MaxSize, m.Commits, m.CommitDuration, m.CommitWait, m.Lost)
	return m
}
