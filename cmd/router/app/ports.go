package app

import (
	"log/slog"

	"github.com/wasmrouter/wasmrouter/internal/amqpx"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/metrics"
	"github.com/wasmrouter/wasmrouter/internal/tracing"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/store"
)

// engineOnBrokers builds the engine on the log st, with RabbitMQ behind its source and
// publisher ports (one connection per cluster of cfg).
func engineOnBrokers(cfg *config.Config, topo *router.Topology, st *store.Store, m *metrics.Metrics, log *slog.Logger, tracer *tracing.Tracer) (*router.Engine, *amqpx.Brokers, error) {
	brokers, err := amqpx.NewBrokers(cfg, amqpx.Options{Logger: log, Metrics: m})
	if err != nil {
		return nil, nil, err
	}
	sources := make(map[string]router.Source, len(cfg.Sources))
	for _, s := range cfg.Sources {
		if sources[s.Name], err = brokers.Source(s.Name); err != nil {
			return nil, nil, err
		}
	}
	e, err := router.New(router.Options{
		Topology: topo,
		Log:      st,
		Sources:  sources,
		Publishers: func(target string) ([]router.Publisher, error) {
			pubs, err := brokers.Publishers(target)
			out := make([]router.Publisher, len(pubs))
			for i, p := range pubs {
				out[i] = p
			}
			return out, err
		},
		Connect: brokers.Connect,
		Clusters: func() []router.ClusterStatus {
			statuses := brokers.Statuses()
			out := make([]router.ClusterStatus, len(statuses))
			for i, s := range statuses {
				out[i] = router.ClusterStatus(s)
			}
			return out
		},
		Metrics: m,
		Logger:  log,
		Tracer:  tracer,
	})
	return e, brokers, err
}
