package router

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
)

// ErrNotRunning refuses a reload of an engine that is not running (or is stopping).
var ErrNotRunning = errors.New("the router is not running")

// Candidate is the ports' side of a reload (Options.Prepare): the next configuration's
// sources and publishers, made ready while the configuration in force keeps running.
type Candidate struct {
	// Sources and Publishers are as in Options, for the next configuration.
	Sources    map[string]Source
	Publishers func(target string) ([]Publisher, error)
	// Replaced names the clusters whose connection the reload replaces (their block changed):
	// the sources and streams on them are rebuilt. Every other part keeps running as it is.
	Replaced map[string]bool
	// Commit puts the candidate in force; the engine calls it once it has stopped what used
	// the connections it replaces. Abort undoes Prepare when the reload does not go through.
	Commit func()
	Abort  func()
}

// ReloadResult is what a reload did.
type ReloadResult struct {
	// Abandoned counts, per removed "route -> target" stream, the events of the log its route
	// takes that it had not delivered. They stay in the log; `router replay` can deliver them.
	Abandoned map[string]uint64
	// Retired is closed once no batch uses the previous topology any more: its modules that
	// the new one does not use may then be closed.
	Retired <-chan struct{}
	// Generation is the number of the configuration now in force.
	Generation int64
}

// Generation is the number of the configuration in force: 1 at start, +1 per applied reload.
func (e *Engine) Generation() int64 { return e.generation.Load() }

// Reload puts next in force, each part at its own position, or changes nothing if next
// cannot be made ready.
//
// Order: make ready (Options.Prepare connects new clusters and declares what new or changed
// targets and sources need; the publishers of new or rebuilt streams are opened); stop what
// goes away or must be rebuilt (sources acknowledge what they logged; streams finish their
// confirms in flight, so that nothing is delivered twice); swap the topology; start what is
// new or rebuilt. A stream that stays switches to next at its next batch, so that every event
// goes through one generation. A new stream starts at the end of the log (see startPosition).
func (e *Engine) Reload(ctx context.Context, next *Topology) (ReloadResult, error) {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	l := e.live
	if l == nil || l.stopping {
		return ReloadResult{}, ErrNotRunning
	}
	old := e.topo.Load()

	// 1. Make ready. Nothing in force changes here; on failure what was opened closes.
	e.mu.Lock()
	cand := &Candidate{Sources: e.sourcePort, Publishers: e.publishers, Commit: func() {}, Abort: func() {}}
	ep := maps.Clone(e.epochs)
	e.mu.Unlock()
	if e.prepare != nil {
		// A graceful stop does not wait for a candidate that is slow to get ready (a new
		// cluster that does not answer): it cuts the reload short, which changes nothing.
		pctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(l.runCtx, cancel)()
		var err error
		if cand, err = e.prepare(pctx, next.Config); err != nil {
			if l.runCtx.Err() != nil {
				return ReloadResult{}, fmt.Errorf("%w: it is stopping (%v)", ErrNotRunning, err)
			}
			return ReloadResult{}, err
		}
	}
	for cn := range cand.Replaced {
		ep[cn]++
	}
	built := map[string]*stream{}
	committed := false
	defer func() {
		if committed {
			return
		}
		for _, s := range built {
			s.pub.Close()
		}
		cand.Abort()
	}()
	for _, spec := range next.Config.Sources {
		if cand.Sources[spec.Name] == nil {
			return ReloadResult{}, fmt.Errorf("source %q has no implementation", spec.Name)
		}
	}
	wanted := map[string]streamSpec{}
	for _, spec := range streamSpecs(next, ep) {
		wanted[spec.cursor] = spec
		if ls := l.streams[spec.cursor]; ls != nil && ls.ident == spec.ident {
			continue
		}
		s, err := e.buildStream(next, spec, cand.Publishers)
		if err != nil {
			return ReloadResult{}, err
		}
		built[spec.cursor] = s
	}

	// 2. Stop what goes away or is rebuilt: sources first, so that what they consumed is
	// logged and acknowledged before the streams that deliver it change.
	var sourcesStopping []*liveTask
	for name, ls := range l.sources {
		spec := next.Config.Source(name)
		if spec != nil && sourceIdent(*spec, ep) == ls.ident {
			continue
		}
		ls.cancel()
		sourcesStopping = append(sourcesStopping, ls.liveTask)
		delete(l.sources, name)
	}
	for _, t := range sourcesStopping {
		<-t.done
	}
	var draining []*liveTask
	removed := map[string]*stream{}
	for cursor, ls := range l.streams {
		if _, keep := wanted[cursor]; keep && built[cursor] == nil {
			continue
		} else if !keep {
			removed[cursor] = ls.s
		}
		ls.startDrain()
		draining = append(draining, ls.liveTask)
		delete(l.streams, cursor)
	}
	for name, t := range l.deadLetters {
		if r := next.Route(name); r != nil && r.Spec.DeadLetter != "" && deadLetterIdent(next, r, ep) == t.ident {
			continue
		}
		t.startDrain()
		draining = append(draining, t)
		delete(l.deadLetters, name)
	}
	e.waitDrained(draining)

	// What removed pairs leave undelivered stays in the log. Their cursors go, so that a pair
	// added again later starts at the end like any new one.
	abandoned := map[string]uint64{}
	for cursor, s := range removed {
		n, err := e.undelivered(old, s)
		if err != nil {
			e.log.Warn("counting the undelivered events of a removed stream", "stream", cursor, "error", err)
		}
		label := s.route + " -> " + s.target
		if tgt := old.Targets[s.target]; tgt != nil && tgt.Mode == config.ModeAll {
			label += "@" + s.pub.Cluster()
		}
		abandoned[label] = n
		if err := e.store.DeleteCursor(cursor); err != nil {
			e.log.Warn("removing the cursor of a removed stream", "stream", cursor, "error", err)
		}
	}

	// 3. Swap. Routes left as they were keep their shared decisions, so that a handler does
	// not run again for events another target of the route already had.
	for _, r := range next.Routes {
		if prev := old.Route(r.Spec.Name); prev != nil && sameRoute(old, prev, next, r) {
			r.decisions = prev.decisions
		}
	}
	e.mu.Lock()
	e.sourcePort, e.publishers, e.epochs = cand.Sources, cand.Publishers, ep
	e.mu.Unlock()
	gen := e.generation.Load() + 1 // reloads are serialised: nothing else moves it
	next.setGeneration(gen)
	e.topo.Store(next)
	e.generation.Store(gen)
	cand.Commit()
	committed = true

	// 4. Start what is new or rebuilt.
	for _, spec := range streamSpecs(next, ep) {
		if s := built[spec.cursor]; s != nil {
			e.startStream(l, spec, s)
		}
	}
	for _, r := range next.Routes {
		if r.Spec.DeadLetter != "" && l.deadLetters[r.Spec.Name] == nil {
			e.startDeadLetters(l, r, deadLetterIdent(next, r, ep))
		}
	}
	for _, spec := range next.Config.Sources {
		if l.sources[spec.Name] == nil {
			src := e.newSource(spec, cand.Sources[spec.Name])
			e.startSource(l, src, sourceIdent(spec, ep))
		}
	}
	e.publishLists(l, next, ep)

	retired := make(chan struct{})
	go func() {
		defer close(retired)
		for old.users.n.Load() > 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return ReloadResult{Abandoned: abandoned, Retired: retired, Generation: gen}, nil
}

// waitDrained waits for stopping streams to finish their confirms in flight, within the drain
// timeout; then it cuts them short (what they had not confirmed is published again by the
// stream that takes over, or stays in the log).
func (e *Engine) waitDrained(tasks []*liveTask) {
	deadline := time.NewTimer(e.drain)
	defer deadline.Stop()
	for _, t := range tasks {
		select {
		case <-t.done:
		case <-deadline.C:
			e.log.Warn("reload: a stream did not finish its deliveries in flight in time; they will be published again")
			for _, t := range tasks {
				t.cancel()
			}
			for _, t := range tasks {
				<-t.done
			}
			return
		}
	}
}

// undelivered counts the events after a stopped stream's cursor that its route takes.
func (e *Engine) undelivered(topo *Topology, s *stream) (uint64, error) {
	r := topo.Route(s.route)
	if r == nil {
		return 0, nil
	}
	pos, err := e.store.Cursor(s.cursor)
	if err != nil {
		return 0, err
	}
	last := e.store.LastSeq()
	if pos >= last {
		return 0, nil
	}
	var n uint64
	err = e.store.ScanHeads(pos+1, last, func(h event.RecordHead) error {
		if r.Matches(string(h.Source), string(h.RoutingKey)) {
			n++
		}
		return nil
	})
	return n, err
}

// sameRoute reports whether a route decides as it did: the same block (positions aside), the
// very same modules, and the same delivery targets.
func sameRoute(oldTopo *Topology, a *Route, nextTopo *Topology, b *Route) bool {
	return reflect.DeepEqual(routeBlock(a.Spec), routeBlock(b.Spec)) &&
		slices.Equal(a.filters, b.filters) && slices.Equal(a.transforms, b.transforms) && a.handler == b.handler &&
		slices.Equal(a.DeliveryTargets(oldTopo), b.DeliveryTargets(nextTopo))
}

// routeBlock is a route's block without its positions in the file.
func routeBlock(s config.RouteSpec) config.RouteSpec {
	s.Range, s.HandlerRange = config.RouteSpec{}.Range, config.RouteSpec{}.HandlerRange
	s.FilterRanges, s.TransformRanges = nil, nil
	return s
}

// WhatIf is the dry run of a replay over the log since since (a duration or a time) through
// the routes in force and through candidate: what a configuration change would have done to
// that history.
func (e *Engine) WhatIf(ctx context.Context, since string, candidate *Topology) (DryRunReport, error) {
	topo := e.acquireTopology()
	defer topo.release()
	sel, err := ReplayRequest{Since: since}.Resolve(topo, e.store.FirstSeq(), e.store.LastSeq(), time.Now())
	if err != nil {
		return DryRunReport{}, err
	}
	return DryRun(ctx, e.store, topo, &sel, candidate, nil)
}
