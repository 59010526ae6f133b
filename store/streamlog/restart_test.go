package streamlog

import (
	"context"
	"fmt"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbitnode"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/router/routertest"
)

// clusterRouter is one router of the restart test: the real engine on a Reopening log
// connected to one node of the cluster, its own (fake) source and the shared (fake) targets.
type clusterRouter struct {
	name string
	log  *Reopening
	src  *routertest.Source
}

func startClusterRouter(t *testing.T, name, stream string, node *rabbitnode.Node, target *routertest.Target) *clusterRouter {
	t.Helper()
	openCtx, cancelOpen := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancelOpen()
	r := &clusterRouter{name: name, src: routertest.NewSource("in")}
	var err error
	if r.log, err = OpenReopening(openCtx, dialer{url: node.URL()}, Options{Native: nodeNative(t, node), Stream: stream, ClusterSize: 3, BalanceEvery: -1}, name); err != nil { // pairs move only at a kill or a node restart here, not to even them out
		t.Fatal(err)
	}
	engine := newTwoRoutersEngine(t, r.log, r.src, target)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- engine.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Error("engine did not stop")
		}
		_ = r.log.Close()
	})
	return r
}

// pendingOf names the routers whose source has messages queued or unacknowledged, with how
// many and the router's log; "" when none has.
func pendingOf(routers []*clusterRouter) string {
	var pending []string
	for _, r := range routers {
		if n := r.src.Pending(); n > 0 {
			pending = append(pending, fmt.Sprintf("%s %d (log open: %t)", r.name, n, r.log.Current() != nil))
		}
	}
	return strings.Join(pending, ", ")
}

// holds reports whether the router holds the pair of cursor on its current log.
func (r *clusterRouter) holds(cursor string) bool {
	s := r.log.Current()
	if s == nil {
		return false
	}
	s.mu.Lock()
	l := s.leases[cursor]
	s.mu.Unlock()
	return l != nil && isClosedChan(l.Granted()) && !isClosedChan(l.Lost())
}

// leaderOf is the node that leads queue, as the cluster reports it.
func leaderOf(t *testing.T, n *rabbitnode.Node, queue string) string {
	t.Helper()
	out, err := n.Ctl("list_queues", "name", "leader", "--no-table-headers", "--quiet")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == queue {
			return f[1]
		}
	}
	t.Fatalf("queue %s not listed:\n%s", queue, out)
	return ""
}

// Three routers run the real engine on one stream of a three-node cluster, each connected to
// its own node. Under steady traffic the node that leads the stream, the control stream and
// both pairs' queues, and that the router holding both pairs is connected to, stops and comes
// back: every event a source handed out is acknowledged and reaches both targets (lost 0), the
// pairs move to a router on a live node while it is away, and the router on the stopped node
// opens the log again and goes on appending after its return.
func TestClusterNodeRestartUnderTrafficLosesNothing(t *testing.T) {
	c := rabbitnode.StartCluster(t, 3)
	stream := "streamlog.restart.log"
	cursors := []string{router.CursorName("r", "a", ""), router.CursorName("r", "b", "")}

	// Declared through the first node, the stream, the control stream and the pairs' queues are
	// led from there (the default leader locator is the client's node).
	first, err := amqp.Dial(c.Nodes[0].URL())
	if err != nil {
		t.Fatal(err)
	}
	ch, err := first.Channel()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{stream, ControlStream(stream)} {
		if _, err := ch.QueueDeclare(s, true, false, false, false, StreamArgs(Options{ClusterSize: 3})); err != nil {
			t.Fatal(err)
		}
	}
	for _, cursor := range cursors {
		if _, err := ch.QueueDeclare(LeaseQueue(stream, cursor), true, false, false, false, leaseArgs); err != nil {
			t.Fatal(err)
		}
	}
	_ = first.Close()
	for _, q := range []string{stream, ControlStream(stream), LeaseQueue(stream, cursors[0]), LeaseQueue(stream, cursors[1])} {
		if got := leaderOf(t, c.Nodes[1], q); got != c.Nodes[0].Name() {
			t.Fatalf("%s is led by %s, want %s", q, got, c.Nodes[0].Name())
		}
	}

	target := routertest.NewTarget("main")
	// The router on the first node starts alone, so it takes both pairs.
	routers := []*clusterRouter{startClusterRouter(t, "router-1", stream, c.Nodes[0], target)}
	eventuallyWithin(t, time.Minute, "router-1 holds both pairs", func() bool {
		return routers[0].holds(cursors[0]) && routers[0].holds(cursors[1])
	})
	routers = append(routers,
		startClusterRouter(t, "router-2", stream, c.Nodes[1], target),
		startClusterRouter(t, "router-3", stream, c.Nodes[2], target))

	// Steady traffic: one event every 5 ms, handed to the routers' sources in turn (the broker
	// would balance competing consumers so).
	var mu sync.Mutex
	published := 0
	ctx, stopTraffic := context.WithCancel(context.Background())
	trafficDone := make(chan struct{})
	go func() {
		defer close(trafficDone)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			body := fmt.Sprintf("e%06d", i)
			routers[i%len(routers)].src.Publish(&event.Event{RoutingKey: "k", Body: []byte(body), Props: event.Properties{MessageID: body}})
			mu.Lock()
			published = i + 1
			mu.Unlock()
		}
	}()
	defer func() {
		stopTraffic()
		<-trafficDone
	}()

	distinctOn := func(exchange string) map[string]int {
		seen := map[string]int{}
		for _, m := range target.Received(exchange) {
			seen[string(m.Body)]++
		}
		return seen
	}
	delivered := func() int { return min(len(distinctOn("xa")), len(distinctOn("xb"))) }
	progress := func(what string, more int) {
		t.Helper()
		want := delivered() + more
		eventuallyWithin(t, 3*time.Minute, fmt.Sprintf("%s: %d events on both targets", what, want), func() bool { return delivered() >= want })
	}

	progress("before the stop", 500)
	stopping := time.Now()
	if err := c.Nodes[0].Stop(); err != nil {
		t.Fatal(err)
	}
	stopTook := time.Since(stopping)
	eventuallyWithin(t, 2*time.Minute, "both pairs held by routers on live nodes", func() bool {
		for _, cursor := range cursors {
			if !routers[1].holds(cursor) && !routers[2].holds(cursor) {
				return false
			}
		}
		return true
	})
	t.Logf("the node's graceful stop took %s; both pairs held on live nodes %s after it began; the stream is now led by %s",
		stopTook.Round(time.Millisecond), time.Since(stopping).Round(time.Millisecond), leaderOf(t, c.Nodes[1], stream))
	progress("while the node is down", 500)

	if err := c.Nodes[0].Restart(); err != nil {
		t.Fatal(err)
	}
	// The router on the returned node opens the log again and appends: its source drains.
	ackedBefore := len(routers[0].src.Acked())
	eventuallyWithin(t, 3*time.Minute, "router-1 appends again", func() bool {
		return routers[0].log.Current() != nil && len(routers[0].src.Acked()) >= ackedBefore+100
	})
	progress("after the restart", 500)
	stopTraffic()
	<-trafficDone

	mu.Lock()
	total := published
	mu.Unlock()
	drainBy := time.Now().Add(3 * time.Minute)
	for pending := pendingOf(routers); pending != ""; pending = pendingOf(routers) {
		if time.Now().After(drainBy) {
			// What each router is doing: a source that never drains is an append or an
			// acknowledgement that never completes.
			var stacks strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
			t.Log(stacks.String())
			t.Fatalf("every source drained: not within 3m; still pending: %s", pending)
		}
		time.Sleep(5 * time.Millisecond)
	}
	acked := map[string]bool{}
	for _, r := range routers {
		for _, ev := range r.src.Acked() {
			acked[string(ev.Body)] = true
		}
	}
	if len(acked) != total {
		t.Fatalf("%d distinct events acknowledged, %d published", len(acked), total)
	}
	eventuallyWithin(t, 3*time.Minute, fmt.Sprintf("all %d events on both targets", total), func() bool { return delivered() >= total })

	for _, exchange := range []string{"xa", "xb"} {
		seen := distinctOn(exchange)
		lost, dups := 0, 0
		for body := range acked {
			if seen[body] == 0 {
				lost++
			}
		}
		for _, n := range seen {
			dups += n - 1
		}
		// Log order: the seqs a target receives go back only when its pair moves.
		back := 0
		msgs := target.Received(exchange)
		for i := 1; i < len(msgs); i++ {
			if msgs[i].Headers[event.HeaderSeq].(int64) <= msgs[i-1].Headers[event.HeaderSeq].(int64) {
				back++
			}
		}
		if lost > 0 {
			t.Errorf("%s: %d of %d acknowledged events never delivered", exchange, lost, total)
		}
		if back > 2 {
			t.Errorf("%s: the seqs went back %d times; at most twice (a takeover, and a return of the pair)", exchange, back)
		}
		t.Logf("%s: %d events, lost %d, %d delivered twice, seqs went back %d times", exchange, total, lost, dups, back)
	}
}
