package app

import (
	"context"
	"log/slog"

	"github.com/wasmrouter/wasmrouter/internal/amqpx"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/tracing"
	"github.com/wasmrouter/wasmrouter/router"
)

// engineOnBrokers builds the engine on the log st, with RabbitMQ behind its source and
// publisher ports (one connection per cluster of cfg).
func engineOnBrokers(cfg *config.Config, topo *router.Topology, st router.Log, m *Collectors, log *slog.Logger, tracer *tracing.Tracer) (*router.Engine, *amqpx.Brokers, error) {
	brokers, err := amqpx.NewBrokers(cfg, amqpx.Options{Logger: log, Metrics: m.Brokers})
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
		Topology:   topo,
		Log:        st,
		Sources:    sources,
		Publishers: publisherPort(brokers.Publishers),
		Connect:    brokers.Connect,
		Prepare: func(ctx context.Context, next *config.Config) (*router.Candidate, error) {
			return candidate(ctx, brokers, next)
		},
		Clusters: brokers.Statuses,
		Metrics:  m.Engine,
		Logger:   log,
		Tracer:   tracer,
	})
	return e, brokers, err
}

// publisherPort adapts an amqpx publishers function to the engine's port.
func publisherPort(open func(target string) ([]amqpx.StreamPublisher, error)) func(string) ([]router.Publisher, error) {
	return func(target string) ([]router.Publisher, error) {
		pubs, err := open(target)
		out := make([]router.Publisher, len(pubs))
		for i, p := range pubs {
			out[i] = p
		}
		return out, err
	}
}

// candidate makes a reload's brokers ready (see amqpx.Brokers.Prepare) as the engine's
// candidate ports.
func candidate(ctx context.Context, brokers *amqpx.Brokers, next *config.Config) (*router.Candidate, error) {
	change, err := brokers.Prepare(ctx, next)
	if err != nil {
		return nil, err
	}
	sources := make(map[string]router.Source, len(next.Sources))
	for _, s := range next.Sources {
		src, err := change.Source(s.Name)
		if err != nil {
			change.Abort()
			return nil, err
		}
		sources[s.Name] = src
	}
	return &router.Candidate{
		Sources: sources, Publishers: publisherPort(change.Publishers), Replaced: change.Replaced(),
		Commit: change.Commit, Abort: change.Abort,
	}, nil
}
