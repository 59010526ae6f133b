package router

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/wasmrouter/wasmrouter/internal/amqpx"
)

// live holds what a running engine runs, each part with its own stop, so that a reload can
// stop and start parts one by one while the others go on: delivery streams by cursor,
// dead-letter streams by route, sources and clusters by name.
type live struct {
	runCtx    context.Context // Run's: sources end with it
	streamCtx context.Context // ends when a graceful stop gives up waiting for confirms
	stopping  bool            // Run is stopping: no part starts any more

	streams     map[string]*liveStream
	deadLetters map[string]*liveTask
	sources     map[string]*liveSource
	clusters    map[string]*liveTask

	streamsWG, sourcesWG sync.WaitGroup
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

// cluster is the connection of the named cluster in force.
func (e *Engine) cluster(name string) *amqpx.Cluster {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.clusters[name]
}

// startCluster runs c as the live connection of the named cluster.
func (e *Engine) startCluster(l *live, name string, c *amqpx.Cluster) {
	l.clusters[name] = e.runCluster(name, c)
}

// exchangesOn lists the target exchanges on a cluster in the topology in force.
func (e *Engine) exchangesOn(cluster string) []string {
	var out []string
	for _, t := range e.topo.Load().Config.Targets {
		for _, cn := range t.Clusters {
			if cn == cluster {
				out = append(out, t.Exchange)
			}
		}
	}
	return out
}

// streamSpec is one (route, target[, cluster]) delivery stream a topology asks for.
type streamSpec struct {
	route, target, suffix, cursor string
	ident                         string // the publisher it needs: mode and cluster connections
}

// streamSpecs lists the delivery streams of topo, with clusters the connections by name.
func streamSpecs(topo *Topology, clusters map[string]*amqpx.Cluster) []streamSpec {
	var out []streamSpec
	for _, r := range topo.Routes {
		for _, tn := range r.DeliveryTargets(topo) {
			tgt := topo.Targets[tn]
			ident := tgt.Mode
			for _, cn := range tgt.Clusters {
				ident += fmt.Sprintf(" %s=%p", cn, clusters[cn])
			}
			if tgt.Mode == "all" {
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

// startStream builds and runs the stream of spec (the caller holds e.reloadMu).
func (e *Engine) startStream(l *live, topo *Topology, spec streamSpec) {
	var pub publisher
	for _, p := range e.publishersFor(topo.Targets[spec.target]) {
		if p.cursorSuffix == spec.suffix {
			pub = p.pub
		} else {
			p.pub.Close()
		}
	}
	s := e.newStream(spec.route, spec.target, spec.suffix, pub)
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
func deadLetterIdent(topo *Topology, r *Route, clusters map[string]*amqpx.Cluster) string {
	tgt := topo.Targets[r.Spec.DeadLetter]
	ident := tgt.Name + " " + tgt.Exchange + " " + tgt.Mode
	for _, cn := range tgt.Clusters {
		ident += fmt.Sprintf(" %s=%p", cn, clusters[cn])
	}
	return ident
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

// publishLists refreshes the lists Status reads, in configuration order (the caller holds
// e.reloadMu).
func (e *Engine) publishLists(l *live, topo *Topology, clusters map[string]*amqpx.Cluster) {
	var streams []*stream
	for _, spec := range streamSpecs(topo, clusters) {
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
	e.mu.Lock()
	e.streams, e.sources = streams, sources
	e.mu.Unlock()
}
