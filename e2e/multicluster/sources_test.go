package multicluster

import (
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// TestSourcesOnTwoClusters feeds one target from two sources, one on each cluster (a route has
// one source, so two routes): everything arrives, each message marked with its source and route.
func TestSourcesOnTwoClusters(t *testing.T) {
	node := second.Node(t)
	mainURL := rabbit.URL()
	inA, queueA := rabbit.Unique("mc.src.a"), rabbit.Unique("mc.src.a.router")
	inB, queueB := rabbit.Unique("mc.src.b"), rabbit.Unique("mc.src.b.router")
	out := rabbit.Unique("mc.src.out")
	deleteAtCleanup(t, mainURL, []string{inA}, []string{queueA})
	deleteAtCleanup(t, node.URL(), []string{inB}, []string{queueB})
	got := newSink(t, "out", mainURL, out)
	r := startRouter(t, clusterBlock("a", mainURL)+clusterBlock("b", node.URL())+
		sourceBlock("sa", "a", inA, queueA)+sourceBlock("sb", "b", inB, queueB)+
		targetBlock("out", "a", out)+
		routeBlock("ra", "sa", "out")+routeBlock("rb", "sb", "out"))
	r.waitReady(t, 30*time.Second)

	const n = 300
	fa, fb := newFeeder(t, mainURL, inA, "a"), newFeeder(t, node.URL(), inB, "b")
	fa.publish(n)
	fb.publish(n)
	got.waitAll(t, fa, 1, n, 30*time.Second)
	got.waitAll(t, fb, 1, n, 30*time.Second)

	want := map[string][2]string{"a": {"sa", "ra"}, "b": {"sb", "rb"}}
	for _, a := range got.snapshot() {
		prefix := a.id[:1]
		if w := want[prefix]; a.source != w[0] || a.route != w[1] {
			t.Fatalf("%s arrived with x-router-source %q and x-router-route %q, want %q and %q", a.id, a.source, a.route, w[0], w[1])
		}
	}
	for _, f := range []*feeder{fa, fb} {
		if _, err := got.checkOrder(f); err != nil {
			t.Error(err)
		}
	}
	for _, src := range []string{"sa", "sb"} {
		if v := r.metric(t, "router_events_consumed_total", map[string]string{"source": src}); v != n {
			t.Errorf("router_events_consumed_total{source=%q} = %v, want %d", src, v, n)
		}
	}
}
