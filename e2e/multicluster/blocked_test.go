package multicluster

import (
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
