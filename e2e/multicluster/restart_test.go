package multicluster

import (
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/internal/testutil/tcpproxy"
)

// TestAllModeBacklogSurvivesRestart stops the router while one cluster of an "all" target is
// away. Restarted on the same log, it delivers the backlog to that cluster once it is back, in
// order, and sends nothing again to the cluster that already had everything.
func TestAllModeBacklogSurvivesRestart(t *testing.T) {
	node := second.Node(t)
	mainURL := rabbit.URL()
	drProxy := tcpproxy.Start(t, node.Addr())
	in, queue, out := rabbit.Unique("mc.restart.in"), rabbit.Unique("mc.restart.router"), rabbit.Unique("mc.restart.out")
	deleteAtCleanup(t, mainURL, []string{in}, []string{queue})
	primary := newSink(t, "primary", mainURL, out)
	dr := newSink(t, "dr", node.URL(), out)
	src := clusterBlock("primary", mainURL) +
		clusterBlock("dr", "amqp://guest:guest@"+drProxy.Addr()+"/") +
		sourceBlock("in", "primary", in, queue) +
		multiTargetBlock("out", "all", out, "primary", "dr") +
		routeBlock("r", "in", "out")
	dir := t.TempDir()
	r := startRouterIn(t, dir, src)
	r.waitReady(t, 30*time.Second)
	r.waitCluster(t, "dr", true, 30*time.Second)

	f := newFeeder(t, mainURL, in, "rs")
	f.publish(50)
	primary.waitAll(t, f, 1, 50, 20*time.Second)
	dr.waitAll(t, f, 1, 50, 20*time.Second)
	drProxy.Cut()
	r.waitCluster(t, "dr", false, 10*time.Second)
	f.publish(200)
	primary.waitAll(t, f, 51, 250, 20*time.Second)
	if m := dr.missing(f, 51, 250); len(m) != 200 {
		t.Fatalf("dr received %d of the messages published while its network was cut", 200-len(m))
	}
	waitFor(t, 20*time.Second, func() bool {
		st := r.status(t)
		lag, _ := st.streamLag("r", "out", "primary")
		return st.Store.LastSeq == 250 && lag == 0
	}, func() string { return "stream r -> out@primary never settled at seq 250" })
	if err := r.Stop(); err != nil {
		t.Fatalf("stopping the router: %v", err)
	}

	r2 := startRouterIn(t, dir, src)
	r2.waitReady(t, 30*time.Second)
	st := r2.status(t)
	if lag, _ := st.streamLag("r", "out", "dr"); lag < 200 || lag > 250 {
		t.Errorf("after the restart, stream r -> out@dr lag %d, want the 200 events of the outage (or a few more)", lag)
	}
	if lag, _ := st.streamLag("r", "out", "primary"); lag != 0 {
		t.Errorf("after the restart, stream r -> out@primary lag %d, want 0", lag)
	}
	drProxy.Restore()
	r2.waitCluster(t, "dr", true, 30*time.Second)
	dr.waitAll(t, f, 1, 250, 30*time.Second)
	for _, s := range []*sink{primary, dr} {
		dups, err := s.checkOrder(f)
		if err != nil {
			t.Error(err)
		}
		if s == primary && dups > 0 {
			t.Errorf("primary received %d messages twice, though its cursor was at the log's end before the restart", dups)
		}
	}
}
