package multicluster

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// maxResends bounds how often a stream may announce "resending" while its cluster blocks
// publishing for a few seconds: the block is an outage to wait out, not to poll in a loop.
const maxResends = 20

// TestAllModeClusterBlocksPublishing raises a memory alarm on the second node, which then
// blocks the router's connection (connection.blocked). Two routes deliver to an "all" target:
// the first one's publish gets the connection blocked; the second one then finds the
// connection blocked with nothing in flight. Both streams must wait for the unblock without
// spinning, the healthy cluster keeps receiving, and once the alarm clears everything arrives.
func TestAllModeClusterBlocksPublishing(t *testing.T) {
	node := second.Node(t)
	mainURL := rabbit.URL()
	in, queue, out := rabbit.Unique("mc.blocked.in"), rabbit.Unique("mc.blocked.router"), rabbit.Unique("mc.blocked.out")
	deleteAtCleanup(t, mainURL, []string{in}, []string{queue})
	primary := newSink(t, "primary", mainURL, out)
	dr := newSink(t, "dr", node.URL(), out)
	r := startRouter(t, clusterBlock("primary", mainURL)+clusterBlock("dr", node.URL())+
		sourceBlock("in", "primary", in, queue)+
		multiTargetBlock("out", "all", out, "primary", "dr")+
		matchRouteBlock("ra", "in", "a", "out")+
		matchRouteBlock("rb", "in", "b", "out"))
	r.waitReady(t, 30*time.Second)
	r.waitCluster(t, "dr", true, 30*time.Second)
	fa, fb := newFeeder(t, mainURL, in, "a"), newFeeder(t, mainURL, in, "b")
	fa.key, fb.key = "a", "b"
	fa.publish(5)
	fb.publish(5)
	dr.waitAll(t, fa, 1, 5, 20*time.Second)
	dr.waitAll(t, fb, 1, 5, 20*time.Second)

	if err := setWatermark(node.Ctl, "0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := setWatermark(node.Ctl, "0.4"); err != nil {
			t.Error(err)
		}
	})
	fa.publish(5)
	waitFor(t, 20*time.Second, func() bool { return logHas(r, "broker blocked the connection", "cluster=dr") }, func() string {
		return "the router never saw the dr connection blocked"
	})
	before := resends(r)
	fb.publish(5)
	primary.waitAll(t, fa, 1, 10, 20*time.Second)
	primary.waitAll(t, fb, 1, 10, 20*time.Second)
	// An interval to count the streams' retries in, not a synchronisation.
	time.Sleep(2 * time.Second)
	n := resends(r) - before
	t.Logf("streams to dr announced resending %d times in about 2s while dr blocked publishing", n)
	if n > maxResends {
		t.Errorf("streams to dr announced resending %d times in about 2s while dr blocked publishing: they poll the blocked connection", n)
	}
	if err := setWatermark(node.Ctl, "0.4"); err != nil {
		t.Fatal(err)
	}
	dr.waitAll(t, fa, 1, 10, 30*time.Second)
	dr.waitAll(t, fb, 1, 10, 30*time.Second)
}

// setWatermark sets the node's memory high watermark: "0" raises the memory alarm at once.
func setWatermark(ctl func(...string) (string, error), fraction string) error {
	_, err := ctl("set_vm_memory_high_watermark", fraction)
	return err
}

// resends counts the log lines of streams taking up deliveries again after an outage.
func resends(r *routerRun) int {
	return strings.Count(r.Logs.String(), "target reachable again")
}

// TestBlockedPublishingLeavesConsumingAlone: a source and a target on the second node, another
// target on the main broker. With a backlog in the source queue larger than the prefetch, the
// second node raises a memory alarm and the router starts: its publishes to the second node get
// its publishing connection blocked, yet it consumes (and acknowledges) the whole backlog on its
// consuming connection and delivers it to the main broker. Once the alarm clears, the second
// node's target receives everything too.
func TestBlockedPublishingLeavesConsumingAlone(t *testing.T) {
	node := second.Node(t)
	mainURL := rabbit.URL()
	in, queue, out := rabbit.Unique("mc.split.in"), rabbit.Unique("mc.split.router"), rabbit.Unique("mc.split.out")
	deleteAtCleanup(t, node.URL(), []string{in}, []string{queue})
	far := newSink(t, "far", mainURL, out)
	near := newSink(t, "near", node.URL(), out)
	cfg := clusterBlock("main", mainURL) + clusterBlock("dr", node.URL()) +
		sourceBlock("in", "dr", in, queue) +
		targetBlock("far", "main", out) + targetBlock("near", "dr", out) +
		routeBlock("r", "in", "far", "near")
	dir := t.TempDir()
	// A first run declares the source queue; the backlog waits in it for the second.
	first := startRouterIn(t, dir, cfg)
	first.waitReady(t, 30*time.Second)
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	const n = 1200 // more than the source's prefetch (500): consuming them all needs acknowledgements
	feed := newFeeder(t, node.URL(), in, "s")
	feed.publish(n)

	if err := setWatermark(node.Ctl, "0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := setWatermark(node.Ctl, "0.4"); err != nil {
			t.Error(err)
		}
	})
	r := startRouterIn(t, dir, cfg)
	far.waitAll(t, feed, 1, n, 60*time.Second)
	waitFor(t, 20*time.Second, func() bool { return logHas(r, "broker blocked the connection", "cluster=dr", "connection=publish") }, func() string {
		return "the router never saw its publishing connection to dr blocked: the test proves nothing"
	})
	if logHas(r, "broker blocked the connection", "cluster=dr", "connection=consume") {
		t.Error("the broker blocked the consuming connection")
	}
	dr := r.status(t).cluster(t, "dr")
	for _, c := range dr.Connections {
		if !c.Connected || (c.Role == "consume") != (c.Blocked == "") {
			t.Errorf("dr %s connection while the alarm stands: %+v; want both up, only the publishing one blocked", c.Role, c)
		}
	}
	if code, body := r.readyz(t); code != http.StatusOK || !strings.Contains(body, "blocks the publish connection") {
		t.Errorf("/readyz %d %s; want ready, saying that dr blocks publishing", code, body)
	}

	if err := setWatermark(node.Ctl, "0.4"); err != nil {
		t.Fatal(err)
	}
	near.waitAll(t, feed, 1, n, 60*time.Second)
}
