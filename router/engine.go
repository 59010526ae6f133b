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
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/backoff"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/tracing"
)

// Options wire an engine to its ports (see ports.go) and what cmd/router built.
type Options struct {
	Topology *Topology
	Log      Log
	// Sources are the configured sources by name.
	Sources map[string]Source
	// Publishers opens the publishers of a target's delivery streams: one for a target on one
	// cluster or a failover list, one per cluster for a target in "all" mode.
	Publishers func(target string) ([]Publisher, error)
	// Connect, when set, brings the brokers up when the engine starts and returns what takes
	// them down, which the engine calls once its last stream has drained.
	Connect func() (disconnect func())
	// Clusters, when set, reports the brokers' state for Status.
	Clusters func() []event.ClusterStatus
	Metrics  *Metrics
	Logger   *slog.Logger
	// Window is how many events a stream keeps in flight (published, not yet confirmed).
	Window int
	// WindowBytes bounds the same events by their estimated memory (event.Event.MemSize and
	// their messages' bodies), default 2 MiB; a window takes at least one event.
	WindowBytes int
	// DrainTimeout bounds how long a graceful stop waits for confirms in flight.
	DrainTimeout time.Duration
	// Tracer makes the spans of events; nil without a tracing block. The caller shuts it down
	// after Run.
	Tracer *tracing.Tracer
	// Prepare, when set, makes the ports of a reload's next configuration ready (see Reload
	// and Candidate) without changing those in force. Without it a reload keeps the ports it
	// has, which suits ports that do not depend on the configuration.
	Prepare func(ctx context.Context, next *config.Config) (*Candidate, error)
}

// Engine runs sources and delivery streams.
type Engine struct {
	store    Log
	topo     atomic.Pointer[Topology]
	connect  func() (disconnect func())
	prepare  func(ctx context.Context, next *config.Config) (*Candidate, error)
	clusters func() []event.ClusterStatus
	metrics  *Metrics
	log      *slog.Logger
	window   int
	winBytes int
	drain    time.Duration
	tracer   *tracing.Tracer // nil: tracing off, and every hook is one nil check

	batchPool sync.Pool
	dlqWake   broadcast
	deadMu    sync.Mutex // serialises recording dead letters
	refused   refusedDeadLetters

	mu         sync.Mutex // guards the ports, epochs, sources and streams below
	sourcePort map[string]Source
	publishers func(target string) ([]Publisher, error)
	epochs     epochs
	sources    []*source
	streams    []*stream
	replays    replays
	// readers are the live streams as well, read by each stream's fill (releaseRead) without
	// the lock.
	readers atomic.Pointer[[]*stream]

	// reloadMu serialises reloads with each other and with Run's start and stop.
	reloadMu sync.Mutex
	live     *live // what Run runs; nil before Run
	// generation numbers the configurations put in force: 1 at start, +1 per reload.
	generation atomic.Int64
}

// New checks opts and builds an engine; Run starts it.
func New(opts Options) (*Engine, error) {
	if opts.Topology == nil || opts.Log == nil || opts.Publishers == nil || opts.Metrics == nil {
		return nil, errors.New("router: topology, log, publishers and metrics are required")
	}
	for _, s := range opts.Topology.Config.Sources {
		if opts.Sources[s.Name] == nil {
			return nil, fmt.Errorf("router: source %q has no implementation", s.Name)
		}
	}
	e := &Engine{
		store:      opts.Log,
		sourcePort: opts.Sources,
		publishers: opts.Publishers,
		connect:    opts.Connect,
		prepare:    opts.Prepare,
		epochs:     epochs{},
		clusters:   opts.Clusters,
		metrics:    opts.Metrics,
		log:        opts.Logger,
		window:     opts.Window,
		winBytes:   opts.WindowBytes,
		drain:      opts.DrainTimeout,
		tracer:     opts.Tracer,
	}
	if e.connect == nil {
		e.connect = func() func() { return func() {} }
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
	// Every route's counters exist from the start, at 0: a check that nothing was dropped or
	// dead-lettered must see the metric, not its absence.
	for _, r := range opts.Topology.Routes {
		e.metrics.EventsDropped.WithLabelValues(r.Spec.Name)
		e.metrics.EventsDeadLettered.WithLabelValues(r.Spec.Name)
	}
	e.batchPool.New = func() any { s := make([]*event.Event, 0, e.window); return &s }
	opts.Topology.setGeneration(1)
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
	e.reloadMu.Lock()
	topo := e.topo.Load()
	ep := e.currentEpochs()
	specs := streamSpecs(topo, ep)
	streams := make([]*stream, 0, len(specs))
	for _, spec := range specs {
		s, err := e.buildStream(topo, spec, e.currentPublishers())
		if err != nil {
			e.reloadMu.Unlock()
			closeStreams(streams)
			return err
		}
		streams = append(streams, s)
	}
	if err := e.claimPairs(streams); err != nil {
		e.reloadMu.Unlock()
		closeStreams(streams)
		return err
	}
	defer e.connect()()

	// Streams stop only after the sources, so that what was consumed is also delivered.
	streamCtx, stopStreams := context.WithCancel(context.Background())
	defer stopStreams()
	l := newLive(ctx, streamCtx)
	e.live = l
	for i, spec := range specs {
		e.startStream(l, spec, streams[i])
	}
	for _, r := range topo.Routes {
		if r.Spec.DeadLetter != "" {
			e.startDeadLetters(l, r, deadLetterIdent(topo, r, ep))
		}
	}
	dedupStart := e.startDedupWindow(topo)
	for _, spec := range topo.Config.Sources {
		src := e.newSource(spec, e.sourcePort[spec.Name])
		src.setDedup(dedupStart)
		e.startSource(l, src, sourceIdent(spec, ep))
	}
	e.publishLists(l, topo, ep)
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
	e.log.Info("stopped")
	return nil
}

// claimPairs claims, on a log several routers share, the pair of every stream before the
// sources run: a pair no router delivered yet must start at or before the first event this
// router logs (PairClaimer).
func (e *Engine) claimPairs(streams []*stream) error {
	claimer, shared := e.store.(PairClaimer)
	if !shared {
		return nil
	}
	for _, s := range streams {
		claim, err := claimer.ClaimPair(s.cursor, s.configuredAt)
		if err != nil {
			return fmt.Errorf("stream %s: claiming the pair: %w", s.cursor, err)
		}
		s.preclaimed = claim
	}
	return nil
}

// currentPublishers and currentEpochs are the ports' state in force (a reload changes them).
func (e *Engine) currentPublishers() func(string) ([]Publisher, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.publishers
}

func (e *Engine) currentEpochs() epochs {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.epochs)
}

// startDedupWindow is where redeliveries can match at start-up: after a graceful stop,
// nowhere; after a crash, the last events logged before it, a window wide enough for every
// source's unacknowledged messages. A quiet source's older event may fall outside it: its
// redelivery is then logged twice, never lost.
func (e *Engine) startDedupWindow(topo *Topology) event.Window {
	last := e.store.LastSeq()
	acked, err := e.store.Cursor(ackedCursor)
	if err == nil && acked >= last {
		return event.Window{}
	}
	var width uint64
	for _, spec := range topo.Config.Sources {
		width += 2 * uint64(spec.Prefetch+64)
	}
	w := event.Window{From: max(acked+1, 1), To: last}
	if last > width {
		w.From = max(w.From, last-width+1)
	}
	return w
}

// RunOffline connects the brokers but consumes nothing and delivers nothing live: for
// replaying from a stopped router's log. fn runs with the engine ready for StartReplay.
func (e *Engine) RunOffline(ctx context.Context, fn func(ctx context.Context) error) error {
	defer e.connect()()
	defer e.stopReplays()
	return fn(ctx)
}

// superviseStream runs a stream and restarts it after a failure (a store or guest error), with
// a pause so that a persistent fault does not spin.
func (e *Engine) superviseStream(ctx context.Context, s *stream, drain <-chan struct{}) {
	s.stop = drain
	s.supervised = true
	defer s.pub.Close()
	for {
		err := s.run(ctx)
		if err == nil || ctx.Err() != nil || errors.Is(err, errRouteGone) || isClosed(drain) {
			return
		}
		if errors.Is(err, errPairLost) {
			e.log.Info("pair taken over by another router; claiming it again", "stream", s.cursor)
		} else {
			e.log.Error("delivery stream failed; restarting", "stream", s.cursor, "error", err)
		}
		if !backoff.Sleep(ctx, time.Second) {
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

func (e *Engine) newStream(route, target, suffix string, pub Publisher) *stream {
	label := target
	if suffix != "" {
		label = target + "@" + suffix
	}
	return &stream{
		e:            e,
		route:        route,
		target:       target,
		cursor:       CursorName(route, target, suffix),
		pub:          pub,
		window:       e.window,
		windowBytes:  e.winBytes,
		log:          e.log.With("route", route, "target", label),
		delivered:    e.metrics.EventsDelivered.WithLabelValues(route, label),
		replayed:     e.metrics.EventsReplayed.WithLabelValues(route, label),
		retries:      e.metrics.DeliveryRetries.WithLabelValues(route, label),
		lag:          e.metrics.DeliveryLag.WithLabelValues(route, label),
		configuredAt: e.store.LastSeq(),
	}
}

type streamPublisher struct {
	cursorSuffix string
	pub          Publisher
}

// publishersFor opens the publishers of a target's streams with the ports in force.
func (e *Engine) publishersFor(tgt *config.TargetSpec) ([]streamPublisher, error) {
	return publishersFor(e.currentPublishers(), tgt)
}

// publishersFor opens the publishers of a target's streams: one for a single cluster or a
// failover list, one per cluster in "all" mode, whose cursors the cluster's name tells apart.
func publishersFor(publishers func(string) ([]Publisher, error), tgt *config.TargetSpec) ([]streamPublisher, error) {
	pubs, err := publishers(tgt.Name)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", tgt.Name, err)
	}
	out := make([]streamPublisher, len(pubs))
	for i, p := range pubs {
		out[i].pub = p
		if tgt.Mode == config.ModeAll {
			out[i].cursorSuffix = p.Cluster()
		}
	}
	return out, nil
}

// deadLetter records a failed event durably; the route's dead-letter stream publishes it.
func (e *Engine) deadLetter(route, target string, ev *event.Event, reason string, attempts int) (isNew bool, err error) {
	// Serialised so that, when several streams of a route record the same dead letter, exactly
	// one of them sees it new (dead letters are rare: the lock costs nothing that matters).
	e.deadMu.Lock()
	defer e.deadMu.Unlock()
	before := e.store.LastDeadLetterID()
	id, err := e.store.AddDeadLetter(event.DeadLetter{
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
