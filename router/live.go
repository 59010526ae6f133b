package router

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/wasmrouter/wasmrouter/internal/config"
)

// live holds what a running engine runs, each part with its own stop, so that a reload can
// stop and start parts one by one while the others go on: delivery streams by cursor,
// dead-letter streams by route, sources by name.
type live struct {
	runCtx    context.Context // Run's: sources end with it
	streamCtx context.Context // ends when a graceful stop gives up waiting for confirms
	stopping  bool            // Run is stopping: no part starts any more

	streams     map[string]*liveStream
	deadLetters map[string]*liveTask
	sources     map[string]*liveSource

	streamsWG, sourcesWG sync.WaitGroup
}

func newLive(runCtx, streamCtx context.Context) *live {
	return &live{
		runCtx: runCtx, streamCtx: streamCtx,
		streams: map[string]*liveStream{}, deadLetters: map[string]*liveTask{}, sources: map[string]*liveSource{},
	}
}

// liveTask is a goroutine that stops when told: drain finishes what is in flight, cancel cuts
// it short.
type liveTask struct {
	drain     chan struct{}
	drainOnce sync.Once
	cancel    context.CancelFunc
	done      chan struct{}
	ident     string // what the task was built from; a reload that changes it restarts the task
}

func newLiveTask(ident string, cancel context.CancelFunc) *liveTask {
	return &liveTask{drain: make(chan struct{}), cancel: cancel, done: make(chan struct{}), ident: ident}
}

func (t *liveTask) startDrain() { t.drainOnce.Do(func() { close(t.drain) }) }

type liveStream struct {
	*liveTask
	s *stream
}

type liveSource struct {
	*liveTask
	src *source
}

// inUse counts the batches (and dry runs) working with a topology, so that a reload closes the
// modules it retires only once nothing calls them any more.
type inUse struct{ n atomic.Int64 }

// acquireTopology returns the topology in force, counted as in use until release.
func (e *Engine) acquireTopology() *Topology {
	for {
		t := e.topo.Load()
		t.users.n.Add(1)
		if e.topo.Load() == t {
			return t
		}
		t.users.n.Add(-1) // swapped meanwhile: take the new one
	}
}

func (t *Topology) release() { t.users.n.Add(-1) }

// epochs number the connections of each cluster: a reload that replaces a cluster's connection
// (its block changed) moves it on, and every part built on that cluster is rebuilt.
type epochs map[string]int

func (ep epochs) of(clusters []string) string {
	var b strings.Builder
	for _, cn := range clusters {
		fmt.Fprintf(&b, " %s#%d", cn, ep[cn])
	}
	return b.String()
}

// streamSpec is one (route, target[, cluster]) delivery stream a topology asks for.
type streamSpec struct {
	route, target, suffix, cursor string
	ident                         string // the publisher it needs: mode and cluster connections
}

// streamSpecs lists the delivery streams of topo, in configuration order.
func streamSpecs(topo *Topology, ep epochs) []streamSpec {
	var out []streamSpec
	for _, r := range topo.Routes {
		for _, tn := range r.DeliveryTargets(topo) {
			tgt := topo.Targets[tn]
			ident := tgt.Mode + ep.of(tgt.Clusters)
			if tgt.Mode == config.ModeAll {
				for _, cn := range tgt.Clusters {
					out = append(out, streamSpec{route: r.Spec.Name, target: tn, suffix: cn, cursor: CursorName(r.Spec.Name, tn, cn), ident: ident})
				}
				continue
			}
			out = append(out, streamSpec{route: r.Spec.Name, target: tn, cursor: CursorName(r.Spec.Name, tn, ""), ident: ident})
		}
	}
	return out
}

// buildStream opens the publisher of spec's stream with publishers (the ports in force, or a
// reload's candidate ones).
func (e *Engine) buildStream(topo *Topology, spec streamSpec, publishers func(string) ([]Publisher, error)) (*stream, error) {
	pubs, err := publishersFor(publishers, topo.Targets[spec.target])
	if err != nil {
		return nil, err
	}
	var pub Publisher
	for _, p := range pubs {
		if p.cursorSuffix == spec.suffix && pub == nil {
			pub = p.pub
		} else {
			p.pub.Close()
		}
	}
	if pub == nil {
		return nil, fmt.Errorf("target %s: no publisher for cluster %q", spec.target, spec.suffix)
	}
	return e.newStream(spec.route, spec.target, spec.suffix, pub), nil
}

// startStream runs s as the live stream of spec (the caller holds e.reloadMu).
func (e *Engine) startStream(l *live, spec streamSpec, s *stream) {
	ctx, cancel := context.WithCancel(l.streamCtx)
	ls := &liveStream{liveTask: newLiveTask(spec.ident, cancel), s: s}
	l.streams[spec.cursor] = ls
	l.streamsWG.Add(1)
	go func() {
		defer l.streamsWG.Done()
		defer close(ls.done)
		defer cancel()
		e.superviseStream(ctx, s, ls.drain)
	}()
}

// startDeadLetters runs the dead-letter stream of a route that has a dead_letter target.
func (e *Engine) startDeadLetters(l *live, r *Route, ident string) {
	ctx, cancel := context.WithCancel(l.streamCtx)
	t := newLiveTask(ident, cancel)
	l.deadLetters[r.Spec.Name] = t
	l.streamsWG.Add(1)
	go func() {
		defer l.streamsWG.Done()
		defer close(t.done)
		defer cancel()
		e.runDeadLetters(ctx, r.Spec.Name, t.drain)
	}()
}

// deadLetterIdent is what a route's dead-letter stream is built from.
func deadLetterIdent(topo *Topology, r *Route, ep epochs) string {
	tgt := topo.Targets[r.Spec.DeadLetter]
	return tgt.Name + " " + tgt.Exchange + " " + tgt.Mode + ep.of(tgt.Clusters)
}

// startSource consumes a source until its task is cancelled or Run's context ends.
func (e *Engine) startSource(l *live, src *source, ident string) {
	ctx, cancel := context.WithCancel(l.runCtx)
	ls := &liveSource{liveTask: newLiveTask(ident, cancel), src: src}
	l.sources[src.spec.Name] = ls
	l.sourcesWG.Add(1)
	go func() {
		defer l.sourcesWG.Done()
		defer close(ls.done)
		defer cancel()
		src.run(ctx)
	}()
}

// sourceIdent is what a source is built from: its block (positions aside) and its cluster's
// connection.
func sourceIdent(s config.SourceSpec, ep epochs) string {
	s.Range = config.SourceSpec{}.Range
	return fmt.Sprintf("%#v%s", s, ep.of([]string{s.Cluster}))
}

// publishLists refreshes the lists Status reads, in configuration order (the caller holds
// e.reloadMu).
func (e *Engine) publishLists(l *live, topo *Topology, ep epochs) {
	var streams []*stream
	for _, spec := range streamSpecs(topo, ep) {
		if ls := l.streams[spec.cursor]; ls != nil {
			streams = append(streams, ls.s)
		}
	}
	var sources []*source
	for _, spec := range topo.Config.Sources {
		if ls := l.sources[spec.Name]; ls != nil {
			sources = append(sources, ls.src)
		}
	}
	// The readers first: a stream that read before they were published told the log nothing
	// (releaseRead had no list), and Status's readiness lets events in that only a reader
	// listed here can release. The release then catches up with those early reads.
	e.readers.Store(&streams)
	e.releaseRead()
	e.mu.Lock()
	e.streams, e.sources = streams, sources
	e.mu.Unlock()
}
