package streamlog

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/router/routertest"
)

const twoRoutersConfig = `
cluster "main" { url = "amqp://guest:guest@127.0.0.1:1/" }
source "in" {
  cluster  = "main"
  exchange = "events"
  queue    = "q"
}
target "a" {
  cluster  = "main"
  exchange = "xa"
}
target "b" {
  cluster  = "main"
  exchange = "xb"
}
route "r" {
  source  = "in"
  targets = ["a", "b"]
}
`

// newTwoRoutersEngine is the real engine of twoRoutersConfig on log, consuming src and
// publishing to the shared (fake) target broker.
func newTwoRoutersEngine(t *testing.T, log router.Log, src *routertest.Source, target *routertest.Target) *router.Engine {
	t.Helper()
	engine, err := router.New(router.Options{
		Topology:   routertest.Topology(t, twoRoutersConfig),
		Log:        log,
		Sources:    map[string]router.Source{"in": src},
		Publishers: func(string) ([]router.Publisher, error) { return []router.Publisher{target.Publisher()}, nil },
		Metrics:    router.NewMetrics(prometheus.NewRegistry()),
	})
	if err != nil {
		t.Fatal(err)
	}
	return engine
}

// engineOnStream is one router: the real engine on a Store of the shared stream, its own
// (fake) source, and the shared (fake) target broker.
type engineOnStream struct {
	name   string
	conn   *killable
	store  *Store
	src    *routertest.Source
	engine *router.Engine
	cancel context.CancelFunc
	done   chan error
}

func startEngine(t *testing.T, name, stream string, target *routertest.Target) *engineOnStream {
	t.Helper()
	e := &engineOnStream{name: name, conn: dialKillable(t), src: routertest.NewSource("in"), done: make(chan error, 1)}
	var err error
	if e.store, err = OpenStore(e.conn.Connection, Options{Native: mainNative(t), Stream: stream, BalanceEvery: -1}, name); err != nil { // pairs move only at a kill or a node restart here, not to even them out
		t.Fatal(err)
	}
	engine := newTwoRoutersEngine(t, e.store, e.src, target)
	e.engine = engine
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() { e.done <- engine.Run(ctx) }()
	t.Cleanup(func() {
		e.cancel()
		select {
		case <-e.done:
		case <-time.After(time.Minute):
			t.Error("engine did not stop")
		}
		_ = e.store.Close()
	})
	return e
}

// holds reports whether the router holds the pair of cursor.
func (e *engineOnStream) holds(cursor string) bool {
	e.store.mu.Lock()
	l := e.store.leases[cursor]
	e.store.mu.Unlock()
	if l == nil {
		return false
	}
	return isClosedChan(l.Granted()) && !isClosedChan(l.Lost())
}

// started reports whether the router holds the pair of cursor and its token has a position.
func (e *engineOnStream) started(cursor string) bool {
	if !e.holds(cursor) {
		return false
	}
	e.store.mu.Lock()
	l := e.store.leases[cursor]
	e.store.mu.Unlock()
	_, set := l.Position()
	return set
}

func isClosedChan(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Two routers run the real engine on one stream; the broker balances the source between them.
// Each pair is delivered by one router, in log order; when the router holding the pairs is
// killed the other takes them over and every event still reaches both targets.
func TestTwoRoutersShareTheLogAndTakeOverPairs(t *testing.T) {
	stream := rabbit.Unique("streamlog.engines")
	cursors := []string{router.CursorName("r", "a", ""), router.CursorName("r", "b", "")}
	for _, q := range []string{stream, ControlStream(stream), LeaseQueue(stream, cursors[0]), LeaseQueue(stream, cursors[1])} {
		rabbit.DeleteQueueAtCleanup(t, q)
	}
	target := routertest.NewTarget("main")
	one, two := startEngine(t, "router-1", stream, target), startEngine(t, "router-2", stream, target)

	bodiesOn := func(exchange string) map[string]int {
		seen := map[string]int{}
		for _, m := range target.Received(exchange) {
			seen[string(m.Body)]++
		}
		return seen
	}
	waitAll := func(n int) {
		t.Helper()
		eventuallyWithin(t, time.Minute, fmt.Sprintf("%d events on both targets", n), func() bool {
			return len(bodiesOn("xa")) == n && len(bodiesOn("xb")) == n
		})
	}
	// A new pair starts at the end of the log: publish once each pair's holder has put its
	// start position in the token.
	eventuallyWithin(t, time.Minute, "every pair held and started", func() bool {
		for _, c := range cursors {
			if !one.started(c) && !two.started(c) {
				return false
			}
		}
		return true
	})
	for i := range 200 { // competing consumers: the broker hands each message to one router
		src := one.src
		if i%2 == 1 {
			src = two.src
		}
		src.Publish(&event.Event{RoutingKey: "k", Body: []byte(fmt.Sprintf("e%03d", i)), Props: event.Properties{MessageID: fmt.Sprint(i)}})
	}
	waitAll(200)
	for _, c := range cursors {
		if one.holds(c) == two.holds(c) {
			t.Fatalf("pair %s: held by router-1 %v, router-2 %v; want exactly one", c, one.holds(c), two.holds(c))
		}
	}

	victim, survivor := one, two
	if two.holds(cursors[0]) {
		victim, survivor = two, one
	}
	victim.conn.kill()
	eventuallyWithin(t, time.Minute, "the survivor holds both pairs", func() bool {
		return survivor.holds(cursors[0]) && survivor.holds(cursors[1])
	})
	for i := 200; i < 400; i++ { // the dead router consumes no more
		survivor.src.Publish(&event.Event{RoutingKey: "k", Body: []byte(fmt.Sprintf("e%03d", i)), Props: event.Properties{MessageID: fmt.Sprint(i)}})
	}
	waitAll(400)

	for _, exchange := range []string{"xa", "xb"} {
		dups := 0
		for _, n := range bodiesOn(exchange) {
			dups += n - 1
		}
		// Log order: the seqs a target receives only go back at the takeover.
		var back int
		msgs := target.Received(exchange)
		for i := 1; i < len(msgs); i++ {
			if msgs[i].Headers[event.HeaderSeq].(int64) <= msgs[i-1].Headers[event.HeaderSeq].(int64) {
				back++
			}
		}
		if back > 1 {
			t.Errorf("%s: the seqs went back %d times; once at most (the takeover)", exchange, back)
		}
		t.Logf("%s: 400 events, %d delivered twice", exchange, dups)
	}
}

// pairStatus is the status a router gives of the pair of (route r, target).
func (e *engineOnStream) pairStatus(t *testing.T, target string) router.StreamStatus {
	t.Helper()
	for _, ss := range e.engine.Status().Streams {
		if ss.Route == "r" && ss.Target == target {
			return ss
		}
	}
	t.Fatalf("%s: no status for pair (r, %s)", e.name, target)
	return router.StreamStatus{}
}

// Every router's status gives the current position and lag of every pair, also of the pairs
// another router delivers: the holder sends its positions to the others (positions.go).
func TestStatusOfPairsHeldElsewhere(t *testing.T) {
	stream := rabbit.Unique("streamlog.status")
	cursors := []string{router.CursorName("r", "a", ""), router.CursorName("r", "b", "")}
	for _, q := range []string{stream, ControlStream(stream), LeaseQueue(stream, cursors[0]), LeaseQueue(stream, cursors[1])} {
		rabbit.DeleteQueueAtCleanup(t, q)
	}
	target := routertest.NewTarget("main")
	routers := []*engineOnStream{startEngine(t, "router-1", stream, target), startEngine(t, "router-2", stream, target)}
	eventuallyWithin(t, time.Minute, "every pair held and started", func() bool {
		for _, c := range cursors {
			if !routers[0].started(c) && !routers[1].started(c) {
				return false
			}
		}
		return true
	})
	sent := 0
	for _, batch := range []int{150, 100} {
		for range batch {
			routers[sent%2].src.Publish(&event.Event{RoutingKey: "k", Body: []byte(fmt.Sprintf("e%03d", sent)), Props: event.Properties{MessageID: fmt.Sprint(sent)}})
			sent++
		}
		eventuallyWithin(t, time.Minute, fmt.Sprintf("%d events on both targets", sent), func() bool {
			return len(target.Received("xa")) >= sent && len(target.Received("xb")) >= sent
		})
		for i, c := range cursors {
			name := []string{"a", "b"}[i]
			holder, other := routers[0], routers[1]
			if !holder.holds(c) {
				holder, other = other, holder
			}
			// Everything was delivered: the holder's position reaches the end of the log once
			// the target's confirms come back (a message is received before it is confirmed).
			var want router.StreamStatus
			eventuallyWithin(t, 30*time.Second, fmt.Sprintf("%s on its holder %s: held here, a position, no lag", c, holder.name), func() bool {
				want = holder.pairStatus(t, name)
				return want.HeldHere && want.Lag == 0 && want.Position != 0
			})
			var got router.StreamStatus
			eventuallyWithin(t, 30*time.Second, fmt.Sprintf("%s's status of %s: position %d, lag 0", other.name, c, want.Position), func() bool {
				got = other.pairStatus(t, name)
				return got.Position == want.Position && got.Lag == 0
			})
			if got.HeldHere || got.Holder != holder.name {
				t.Errorf("%s's status of %s: holder %q, held here %v; want %q, false", other.name, c, got.Holder, got.HeldHere, holder.name)
			}
			t.Logf("after %d events, %s on %s (holder %s): position %d, lag %d", sent, c, other.name, holder.name, got.Position, got.Lag)
		}
	}
}
