package router

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/amqpx"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/store"
)

// ReloadError is a reload refused while making the candidate ready: nothing changed. Kind and
// Name say which block failed ("cluster", "target", "source"), so that the caller can point
// at it.
type ReloadError struct {
	Kind, Name string
	Err        error
}

func (e *ReloadError) Error() string { return fmt.Sprintf("%s %q: %v", e.Kind, e.Name, e.Err) }
func (e *ReloadError) Unwrap() error { return e.Err }

// ErrNotRunning refuses a reload of an engine that is not running (or is stopping).
var ErrNotRunning = errors.New("the router is not running")

// ReadyTimeout bounds how long a reload waits for a new cluster to connect.
const ReadyTimeout = 10 * time.Second

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

// Reload puts next in force, each part at its own position, or changes nothing if next
// cannot be made ready. connect builds the connection of a cluster that is new or whose block
// changed; the reload runs it and waits for it to connect before anything changes.
//
// Order: make ready (connect new clusters, declare the exchanges of new or changed targets and
// the queues of new or changed sources); stop what goes away or must be rebuilt (sources
// acknowledge what they logged; streams finish their confirms in flight, so that nothing is
// delivered twice); swap the topology; start what is new or rebuilt; retire replaced clusters.
// A stream that stays switches to next at its next batch, so that every event goes through one
// generation. A new stream starts at the end of the log (see startPosition).
func (e *Engine) Reload(ctx context.Context, next *Topology, connect func(config.ClusterSpec) (*amqpx.Cluster, error)) (ReloadResult, error) {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	l := e.live
	if l == nil || l.stopping {
		return ReloadResult{}, ErrNotRunning
	}
	old := e.topo.Load()
	oldClusters := e.clusterMap()

	// 1. Make ready. Nothing in force changes here; on failure what was started stops.
	clusters := map[string]*amqpx.Cluster{}
	freshTasks := map[string]*liveTask{}
	committed := false
	defer func() {
		if committed {
			return
		}
		for _, t := range freshTasks {
			t.cancel()
			<-t.done
		}
	}()
	for _, cs := range next.Config.Clusters {
		if prev := old.Config.Cluster(cs.Name); prev != nil && sameCluster(*prev, cs) && oldClusters[cs.Name] != nil {
			clusters[cs.Name] = oldClusters[cs.Name]
			continue
		}
		c, err := connect(cs)
		if err != nil {
			return ReloadResult{}, &ReloadError{Kind: "cluster", Name: cs.Name, Err: err}
		}
		clusters[cs.Name] = c
		freshTasks[cs.Name] = e.runCluster(cs.Name, c)
	}
	if err := e.prepare(ctx, old, next, clusters, freshTasks); err != nil {
		return ReloadResult{}, err
	}

	// 2. Stop what goes away or is rebuilt: sources first, so that what they consumed is
	// logged and acknowledged before the streams that deliver it change.
	var sourcesStopping []*liveTask
	for name, ls := range l.sources {
		spec := next.Config.Source(name)
		if spec != nil && sourceIdent(*spec, clusters[spec.Cluster]) == ls.ident {
			continue
		}
		ls.cancel()
		sourcesStopping = append(sourcesStopping, ls.liveTask)
		delete(l.sources, name)
	}
	for _, t := range sourcesStopping {
		<-t.done
	}
	wanted := map[string]streamSpec{}
	for _, spec := range streamSpecs(next, clusters) {
		wanted[spec.cursor] = spec
	}
	var draining []*liveTask
	removed := map[string]*stream{}
	for cursor, ls := range l.streams {
		spec, keep := wanted[cursor]
		if keep && spec.ident == ls.ident {
			continue
		}
		if !keep {
			removed[cursor] = ls.s
		}
		ls.startDrain()
		draining = append(draining, ls.liveTask)
		delete(l.streams, cursor)
	}
	for name, t := range l.deadLetters {
		if r := next.Route(name); r != nil && r.Spec.DeadLetter != "" && deadLetterIdent(next, r, clusters) == t.ident {
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
	e.clusters = clusters
	e.mu.Unlock()
	e.topo.Store(next)
	gen := e.generation.Add(1)
	committed = true

	// 4. Start what is new or rebuilt.
	for _, spec := range streamSpecs(next, clusters) {
		if l.streams[spec.cursor] == nil {
			e.startStream(l, next, spec)
		}
	}
	for _, r := range next.Routes {
		if r.Spec.DeadLetter != "" && l.deadLetters[r.Spec.Name] == nil {
			e.startDeadLetters(l, r, deadLetterIdent(next, r, clusters))
		}
	}
	for _, spec := range next.Config.Sources {
		if l.sources[spec.Name] == nil {
			e.startSource(l, e.newSource(spec), sourceIdent(spec, clusters[spec.Cluster]))
		}
	}
	e.publishLists(l, next, clusters)

	// 5. Retire the connections that went away or were replaced: nothing uses them now.
	for name, t := range l.clusters {
		if clusters[name] != nil && clusters[name] == oldClusters[name] {
			continue
		}
		t.cancel()
		<-t.done
		delete(l.clusters, name)
	}
	for name, t := range freshTasks {
		l.clusters[name] = t
	}

	retired := make(chan struct{})
	go func() {
		defer close(retired)
		for old.users.n.Load() > 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return ReloadResult{Abandoned: abandoned, Retired: retired, Generation: gen}, nil
}

// runCluster runs a cluster connection until its task is cancelled, every (re)connect
// declaring the exchanges of the targets configured on it then.
func (e *Engine) runCluster(name string, c *amqpx.Cluster) *liveTask {
	c.OnConnect(func(conn *amqp.Connection) error { return declareExchanges(conn, e.exchangesOn(name)) })
	ctx, cancel := context.WithCancel(context.Background())
	t := newLiveTask(fmt.Sprintf("%p", c), cancel)
	go func() { defer close(t.done); c.Run(ctx) }()
	return t
}

// prepare makes next's new parts ready without changing anything in force: new clusters
// connected, the exchanges of new or changed targets declared, the queues and bindings of new
// or changed sources declared.
func (e *Engine) prepare(ctx context.Context, old, next *Topology, clusters map[string]*amqpx.Cluster, fresh map[string]*liveTask) error {
	ctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
	defer cancel()
	for name := range fresh {
		if err := firstConnect(ctx, clusters[name]); err != nil {
			return &ReloadError{Kind: "cluster", Name: name, Err: fmt.Errorf("cannot connect: %w", err)}
		}
	}
	for _, t := range next.Config.Targets {
		if prev := old.Config.Target(t.Name); prev != nil && sameTarget(*prev, t) && !slices.ContainsFunc(t.Clusters, func(cn string) bool { return fresh[cn] != nil }) {
			continue
		}
		for _, cn := range t.Clusters {
			err := withChannel(ctx, clusters[cn], func(ch *amqp.Channel) error { return amqpx.DeclareExchange(ch, t.Exchange) })
			if err != nil {
				return &ReloadError{Kind: "target", Name: t.Name, Err: err}
			}
		}
	}
	for _, s := range next.Config.Sources {
		if prev := old.Config.Source(s.Name); prev != nil && sourceIdent(*prev, nil) == sourceIdent(s, nil) && fresh[s.Cluster] == nil {
			continue
		}
		err := withChannel(ctx, clusters[s.Cluster], func(ch *amqp.Channel) error { return amqpx.DeclareSource(ch, s) })
		if err != nil {
			return &ReloadError{Kind: "source", Name: s.Name, Err: err}
		}
	}
	return nil
}

// firstConnect waits for a new cluster's first connection attempt: a reload must not put in
// force a cluster that cannot be reached, nor wait out its reconnect backoff to find out.
func firstConnect(ctx context.Context, c *amqpx.Cluster) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if c.Connected() {
			return nil
		}
		if st := c.Status(); st.LastError != "" {
			return errors.New(st.LastError)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not connected after %s", ReadyTimeout)
		case <-tick.C:
		case <-c.Changed():
		}
	}
}

// withChannel runs fn on a channel of its own on c's connection.
func withChannel(ctx context.Context, c *amqpx.Cluster, fn func(*amqp.Channel) error) error {
	conn, err := c.Connection(ctx)
	if err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	return fn(ch)
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
	err = e.store.ScanHeads(pos+1, last, func(h store.RecordHead) error {
		if r.Matches(string(h.Source), string(h.RoutingKey)) {
			n++
		}
		return nil
	})
	return n, err
}

func sameCluster(a, b config.ClusterSpec) bool {
	return a.URL == b.URL && reflect.DeepEqual(a.TLS, b.TLS)
}

func sameTarget(a, b config.TargetSpec) bool {
	a.Range, b.Range = config.TargetSpec{}.Range, config.TargetSpec{}.Range
	return reflect.DeepEqual(a, b)
}

// sourceIdent is what a source is built from: its block (positions aside) and its cluster's
// connection.
func sourceIdent(s config.SourceSpec, c *amqpx.Cluster) string {
	s.Range = config.SourceSpec{}.Range
	return fmt.Sprintf("%#v %p", s, c)
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
