package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/amqpx"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/wasmhost"
)

// Offline is the router's wiring without sources or admin API, for the command-line tools
// that work on a stopped router's log: replays, dry runs, dead-letter redrives.
type Offline struct {
	Config   *config.Config
	Store    EventLog
	Host     *wasmhost.Host
	Topology *router.Topology

	modules map[string]*wasmhost.Module
	metrics *Collectors
	log     *slog.Logger
	engine  *router.Engine
	brokers *amqpx.Brokers

	stopTracer func() // exports the spans of an offline replay; nil until Engine
}

// OpenOffline opens the config's event log (read-only when readOnly: dry runs and inspection)
// and loads the guests and routes. It connects to no broker; Engine does. An error wraps
// store.ErrLocked when a running router holds the log.
func OpenOffline(ctx context.Context, cfg *config.Config, log *slog.Logger, readOnly bool) (*Offline, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := NewCollectors(prometheus.NewRegistry())
	st, err := openLog(ctx, cfg, log, m.Log, readOnly)
	if err != nil {
		return nil, fmt.Errorf("opening event log: %w", err)
	}
	o := &Offline{Config: cfg, Store: st, metrics: m, log: log}
	if o.Host, err = NewHost(ctx, cfg, log.With("component", "wasm"), m.Wasm); err != nil {
		o.Close()
		return nil, fmt.Errorf("starting the WASM runtime: %w", err)
	}
	modules, diags := LoadModules(ctx, o.Host, cfg, 1)
	o.modules = modules
	if diags.HasErrors() {
		o.Close()
		var b strings.Builder
		config.FormatDiagnostics(&b, diags)
		return nil, errors.New("modules failed to load:\n" + strings.TrimRight(b.String(), "\n"))
	}
	if o.Topology, err = router.NewTopology(cfg, modules); err != nil {
		o.Close()
		return nil, err
	}
	return o, nil
}

// Engine builds the delivery engine on the log, with a connection per cluster; run work on it
// with its RunOffline, which connects them.
func (o *Offline) Engine() (*router.Engine, error) {
	if o.engine != nil {
		return o.engine, nil
	}
	tracer, stopTracer, err := startTracer(context.Background(), o.Config, o.metrics.Tracing, o.log)
	if err != nil {
		return nil, err
	}
	o.stopTracer = stopTracer
	e, brokers, err := engineOnBrokers(o.Config, o.Topology, o.Store, o.metrics, o.log, tracer)
	if err != nil {
		return nil, err
	}
	o.engine, o.brokers = e, brokers
	return e, nil
}

// Clusters reports the state of the engine's broker connections (none before Engine).
func (o *Offline) Clusters() []event.ClusterStatus {
	if o.brokers == nil {
		return nil
	}
	return o.brokers.Statuses()
}

// Close releases the guests, the runtime and the log (committing cursors and marks).
func (o *Offline) Close() error {
	if o.stopTracer != nil {
		o.stopTracer()
	}
	CloseModules(context.Background(), o.modules)
	if o.Host != nil {
		_ = o.Host.Close(context.Background())
	}
	return o.Store.Close()
}
