// Package router is the engine of wasmrouter: it consumes sources into the event log and
// delivers from the log to targets, one stream per (route, target), through the routes' WASM
// modules. Data flows source -> log (ack after the durable append) -> route match -> filters ->
// transforms -> handler -> target publish with confirms -> cursor.
package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/amqpx"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/metrics"
	"github.com/wasmrouter/wasmrouter/internal/tracing"
	"github.com/wasmrouter/wasmrouter/store"
)

// Options wire an engine to what cmd/router built.
type Options struct {
	Topology *Topology
	Store    *store.Store
	Clusters map[string]*amqpx.Cluster // by cluster name; the engine runs them
	Metrics  *metrics.Metrics
	Logger   *slog.Logger
	// Window is how many events a stream keeps in flight (published, not yet confirmed).
	Window int
	// DrainTimeout bounds how long a graceful stop waits for confirms in flight.
	DrainTimeout time.Duration
	// Tracer makes the spans of events; nil without a tracing block. The caller shuts it down
	// after Run.
	Tracer *tracing.Tracer
}

// Engine runs sources and delivery streams.
type Engine struct {
	store    *store.Store
	topo     atomic.Pointer[Topology]
	clusters map[string]*amqpx.Cluster
	metrics  *metrics.Metrics
	log      *slog.Logger
	window   int
	drain    time.Duration
	tracer   *tracing.Tracer // nil: tracing off, and every hook is one nil check

	batchPool sync.Pool
	dlqWake   broadcast
	deadMu    sync.Mutex // serialises recording dead letters
	// refusedLogged is when each route last logged a refused dead letter (UnixNano).
	refusedLogged sync.Map

	mu      sync.Mutex // guards clusters, sources and streams
	sources []*source
	streams []*stream
	replays replays

	// reloadMu serialises reloads with each other and with Run's start and stop.
	reloadMu sync.Mutex
	live     *live // what Run runs; nil before Run
	// generation numbers the configurations put in force: 1 at start, +1 per reload.
	generation atomic.Int64
}

// New checks opts and builds an engine; Run starts it.
func New(opts Options) (*Engine, error) {
	if opts.Topology == nil || opts.Store == nil || opts.Metrics == nil {
		return nil, errors.New("router: topology, store and metrics are required")
	}
	for _, c := range opts.Topology.Config.Clusters {
		if opts.Clusters[c.Name] == nil {
			return nil, fmt.Errorf("router: cluster %q has no connection", c.Name)
		}
	}
	e := &Engine{
		store:    opts.Store,
		clusters: opts.Clusters,
		metrics:  opts.Metrics,
		log:      opts.Logger,
		window:   opts.Window,
		drain:    opts.DrainTimeout,
		tracer:   opts.Tracer,
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.window <= 0 {
		e.window = 1024
	}
	if e.drain <= 0 {
		e.drain = 10 * time.Second
	}
	e.batchPool.New = func() any { s := make([]*event.Event, 0, e.window); return &s }
	e.topo.Store(opts.Topology)
	e.generation.Store(1)
	return e, nil
}

// Topology is the configuration in force.
func (e *Engine) Topology() *Topology { return e.topo.Load() }

// Run consumes and delivers until ctx ends, then stops gracefully: sources stop consuming and
// acknowledge what the log holds, streams finish the confirms in flight (within DrainTimeout),
// connections close. The store is the caller's to close afterwards. While it runs, Reload
// changes the configuration part by part.
func (e *Engine) Run(ctx context.Context) error {
	topo := e.topo.Load()
	// Streams stop only after the sources, so that what was consumed is also delivered.
	streamCtx, stopStreams := context.WithCancel(context.Background())
	defer stopStreams()
	l := &live{
		runCtx: ctx, streamCtx: streamCtx,
		streams: map[string]*liveStream{}, deadLetters: map[string]*liveTask{},
		sources: map[string]*liveSource{}, clusters: map[string]*liveTask{},
	}
	e.reloadMu.Lock()
	e.live = l
	clusters := e.clusterMap()
	for name, c := range clusters {
		e.startCluster(l, name, c)
	}
	for _, spec := range streamSpecs(topo, clusters) {
		e.startStream(l, topo, spec)
	}
	for _, r := range topo.Routes {
		if r.Spec.DeadLetter != "" {
			e.startDeadLetters(l, r, deadLetterIdent(topo, r, clusters))
		}
	}
	dedupStart := e.startDedupWindow(topo)
	for _, spec := range topo.Config.Sources {
		src := e.newSource(spec)
		src.setDedup(dedupStart)
		e.startSource(l, src, sourceIdent(spec, clusters[spec.Cluster]))
	}
	e.publishLists(l, topo, clusters)
	e.reloadMu.Unlock()
	e.log.Info("router running", "sources", len(topo.Config.Sources), "routes", len(topo.Routes))

	<-ctx.Done()
	// A reload under way finishes first; none starts after this.
	e.reloadMu.Lock()
	l.stopping = true
	e.reloadMu.Unlock()
	e.log.Info("stopping: draining sources")
	l.sourcesWG.Wait()
	// Every logged event is acknowledged now: the next start need not suspect any of them.
	e.store.SetCursor(ackedCursor, e.store.LastSeq())
	e.stopReplays()
	e.log.Info("stopping: finishing deliveries in flight", "timeout", e.drain)
	for _, ls := range l.streams {
		ls.startDrain()
	}
	for _, t := range l.deadLetters {
		t.startDrain()
	}
	done := make(chan struct{})
	go func() { l.streamsWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(e.drain):
		e.log.Warn("drain timeout: unconfirmed deliveries will be resent after restart")
		stopStreams()
		<-done
	}
	for _, t := range l.clusters {
		t.cancel()
	}
	for _, t := range l.clusters {
		<-t.done
	}
	e.log.Info("stopped")
	return nil
}

// clusterMap is a copy of the cluster connections in force, by name.
func (e *Engine) clusterMap() map[string]*amqpx.Cluster {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.clusters)
}

// ackedCursor holds the last seq known to be acknowledged to its source: set at a graceful
// stop, it tells the next start that no redelivery can be of an event logged before it.
const ackedCursor = "ingest/acknowledged"

// startDedupWindow is where redeliveries can match at start-up: after a graceful stop,
// nowhere; after a crash, the last events logged before it, a window wide enough for every
// source's unacknowledged messages. A quiet source's older event may fall outside it: its
// redelivery is then logged twice, never lost.
func (e *Engine) startDedupWindow(topo *Topology) store.Window {
	last := e.store.LastSeq()
	acked, err := e.store.Cursor(ackedCursor)
	if err == nil && acked >= last {
		return store.Window{}
	}
	var width uint64
	for _, spec := range topo.Config.Sources {
		width += 2 * uint64(spec.Prefetch+64)
	}
	w := store.Window{From: max(acked+1, 1), To: last}
	if last > width {
		w.From = max(w.From, last-width+1)
	}
	return w
}

// startClusters connects every cluster (declaring target exchanges on each connect) and
// returns the function that disconnects them.
func (e *Engine) startClusters(topo *Topology) (stop func()) {
	e.declareTargetsOnConnect(topo)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, c := range e.clusterMap() {
		wg.Add(1)
		go func() { defer wg.Done(); c.Run(ctx) }()
	}
	return func() { cancel(); wg.Wait() }
}

// RunOffline connects the clusters but consumes nothing and delivers nothing live: for
// replaying from a stopped router's log. fn runs with the engine ready for StartReplay.
func (e *Engine) RunOffline(ctx context.Context, fn func(ctx context.Context) error) error {
	stop := e.startClusters(e.topo.Load())
	defer stop()
	defer e.stopReplays()
	return fn(ctx)
}

// superviseStream runs a stream and restarts it after a failure (a store or guest error), with
// a pause so that a persistent fault does not spin.
func (e *Engine) superviseStream(ctx context.Context, s *stream, drain <-chan struct{}) {
	s.stop = drain
	for {
		err := s.run(ctx)
		if err == nil || ctx.Err() != nil || errors.Is(err, errRouteGone) || isClosed(drain) {
			return
		}
		e.log.Error("delivery stream failed; restarting", "stream", s.cursor, "error", err)
		if !sleepCtx(ctx, time.Second) {
			return
		}
		s.reset()
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func (e *Engine) newStream(route, target, suffix string, pub publisher) *stream {
	label := target
	if suffix != "" {
		label = target + "@" + suffix
	}
	return &stream{
		e:         e,
		route:     route,
		target:    target,
		cursor:    CursorName(route, target, suffix),
		pub:       pub,
		window:    e.window,
		log:       e.log.With("route", route, "target", label),
		delivered: e.metrics.EventsDelivered.WithLabelValues(route, label),
		replayed:  e.metrics.EventsReplayed.WithLabelValues(route, label),
		retries:   e.metrics.DeliveryRetries.WithLabelValues(route, label),
		lag:       e.metrics.DeliveryLag.WithLabelValues(route, label),
	}
}

// CursorName is the store cursor of a (route, target) stream; cluster is set for targets in
// "all" mode, where each cluster keeps its own position.
func CursorName(route, target, cluster string) string {
	if cluster == "" {
		return store.DeliveryCursorPrefix + route + "/" + target
	}
	return store.DeliveryCursorPrefix + route + "/" + target + "@" + cluster
}

type streamPublisher struct {
	cursorSuffix string
	pub          publisher
}

// publishersFor gives the publishers of a target: one for a single cluster or a failover list,
// one per cluster in "all" mode.
func (e *Engine) publishersFor(tgt *config.TargetSpec) []streamPublisher {
	switch tgt.Mode {
	case config.ModeAll:
		out := make([]streamPublisher, 0, len(tgt.Clusters))
		for _, cn := range tgt.Clusters {
			out = append(out, streamPublisher{cursorSuffix: cn, pub: e.clusterPublisher(cn)})
		}
		return out
	case config.ModeFailover:
		pubs := make([]*clusterPublisher, 0, len(tgt.Clusters))
		for _, cn := range tgt.Clusters {
			pubs = append(pubs, e.clusterPublisher(cn))
		}
		return []streamPublisher{{pub: newFailoverPublisher(tgt.Name, pubs, e.metrics, e.log)}}
	default:
		return []streamPublisher{{pub: e.clusterPublisher(tgt.Clusters[0])}}
	}
}

func (e *Engine) clusterPublisher(name string) *clusterPublisher {
	return newClusterPublisher(e.cluster(name), e.clusterUser(name))
}

func (e *Engine) clusterUser(name string) string {
	for _, c := range e.topo.Load().Config.Clusters {
		if c.Name == name {
			if u, err := url.Parse(c.URL); err == nil && u.User != nil {
				return u.User.Username()
			}
			return "guest" // amqp091-go's default login
		}
	}
	return ""
}

// declareTargetsOnConnect makes every (re)connect declare the target exchanges on that cluster.
func (e *Engine) declareTargetsOnConnect(topo *Topology) {
	byCluster := map[string][]string{}
	for _, t := range topo.Config.Targets {
		for _, cn := range t.Clusters {
			byCluster[cn] = append(byCluster[cn], t.Exchange)
		}
	}
	for cn, exchanges := range byCluster {
		c := e.cluster(cn)
		if c == nil {
			continue
		}
		c.OnConnect(func(conn *amqp.Connection) error { return declareExchanges(conn, exchanges) })
	}
}

// deadLetter records a failed event durably; the route's dead-letter stream publishes it.
func (e *Engine) deadLetter(route, target string, ev *event.Event, reason string, attempts int) (isNew bool, err error) {
	// Serialised so that, when several streams of a route record the same dead letter, exactly
	// one of them sees it new (dead letters are rare: the lock costs nothing that matters).
	e.deadMu.Lock()
	defer e.deadMu.Unlock()
	before := e.store.LastDeadLetterID()
	id, err := e.store.AddDeadLetter(store.DeadLetter{
		Route: route, Target: target, Seq: ev.Seq, Reason: reason, Attempts: attempts, Time: time.Now().UTC(),
	})
	if err != nil {
		return false, fmt.Errorf("recording dead letter: %w", err)
	}
	if id <= before {
		return false, nil // another stream of the route recorded it already (or an earlier run)
	}
	e.metrics.EventsDeadLettered.WithLabelValues(route).Inc()
	e.log.Warn("event dead-lettered", "route", route, "target", target, "seq", ev.Seq,
		"message_id", ev.Props.MessageID, "attempts", attempts, "reason", reason)
	e.dlqWake.signal()
	return true, nil
}
