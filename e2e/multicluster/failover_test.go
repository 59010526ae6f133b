package multicluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/internal/testutil/tcpproxy"
)

// switchBound is how soon deliveries of a failover target must move to the next cluster once
// the current one's network is cut.
const switchBound = 10 * time.Second

// TestFailoverMovesAndReturns cuts the first cluster of a failover target under steady
// traffic: deliveries move to the second cluster, come back once the first is reachable again,
// and every message arrives at least once across the two.
func TestFailoverMovesAndReturns(t *testing.T) {
	node := second.Node(t)
	mainURL := rabbit.URL()
	p1 := tcpproxy.Start(t, rabbit.Addr(t))
	p2 := tcpproxy.Start(t, node.Addr())
	in, queue, out := rabbit.Unique("mc.fo.in"), rabbit.Unique("mc.fo.router"), rabbit.Unique("mc.fo.out")
	deleteAtCleanup(t, mainURL, []string{in}, []string{queue})
	primary := newSink(t, "primary", mainURL, out)
	secondary := newSink(t, "secondary", node.URL(), out)
	// The source has a connection of its own to the main broker, outside the cut.
	r := startRouter(t, clusterBlock("in", mainURL)+
		clusterBlock("primary", rabbit.URLVia(t, p1.Addr()))+
		clusterBlock("secondary", "amqp://guest:guest@"+p2.Addr()+"/")+
		sourceBlock("in", "in", in, queue)+
		multiTargetBlock("out", "failover", out, "primary", "secondary")+
		routeBlock("r", "in", "out"))
	r.waitReady(t, 30*time.Second)
	r.waitCluster(t, "primary", true, 30*time.Second)
	r.waitCluster(t, "secondary", true, 30*time.Second)

	f := newFeeder(t, mainURL, in, "fo")
	f.run(100)
	f.waitSent(t, 100, 20*time.Second)
	primary.waitAll(t, f, 1, 100, 10*time.Second)
	if n := secondary.total(); n != 0 {
		t.Errorf("secondary received %d messages while primary was up", n)
	}

	cutFrom := f.count() + 1
	cutAt := time.Now()
	p1.Cut()
	waitFor(t, switchBound, func() bool { return secondary.times(f.id(cutFrom)) > 0 }, func() string {
		return fmt.Sprintf("%s, published after primary was cut, did not reach secondary", f.id(cutFrom))
	})
	moved, _ := secondary.firstAt(f.id(cutFrom))
	t.Logf("failover: the first message published after the cut reached secondary %s after the cut (%s after its publish)",
		moved.Sub(cutAt).Round(time.Millisecond), moved.Sub(f.sentAt(cutFrom)).Round(time.Millisecond))

	if c := streamCluster(t, r, "r", "out"); c != "secondary" {
		t.Errorf("status: stream r -> out delivers to %q during the cut, want secondary", c)
	}
	f.waitSent(t, cutFrom+300, 30*time.Second)
	cutTo := f.count()
	secondary.waitAll(t, f, cutFrom, cutTo, 10*time.Second)
	for n := cutFrom; n <= cutTo; n++ {
		if primary.times(f.id(n)) > 0 {
			t.Fatalf("primary received %s, published while its network was cut", f.id(n))
		}
	}

	restoreFrom := f.count() + 1
	restoredAt := time.Now()
	p1.Restore()
	back := 0
	waitFor(t, 30*time.Second, func() bool {
		for n := restoreFrom; n <= f.count(); n++ {
			if primary.times(f.id(n)) > 0 {
				back = n
				return true
			}
		}
		return false
	}, func() string { return "no message published after the restore reached primary" })
	backAt, _ := primary.firstAt(f.id(back))
	t.Logf("failback: deliveries reached primary again %s after its network came back",
		backAt.Sub(restoredAt).Round(time.Millisecond))

	if c := streamCluster(t, r, "r", "out"); c != "primary" {
		t.Errorf("status: stream r -> out delivers to %q after the failback, want primary", c)
	}
	// From now on, the primary gets everything.
	afterFrom := f.count() + 1
	f.waitSent(t, afterFrom+100, 30*time.Second)
	total := f.pause()
	primary.waitAll(t, f, afterFrom, total, 20*time.Second)
	for n := afterFrom; n <= total; n++ {
		if secondary.times(f.id(n)) > 0 {
			t.Errorf("secondary received %s, published after deliveries had returned to primary", f.id(n))
			break
		}
	}
	waitFor(t, 60*time.Second, func() bool { return len(missingAcross(f, 1, total, primary, secondary)) == 0 }, func() string {
		m := missingAcross(f, 1, total, primary, secondary)
		return fmt.Sprintf("%d of %d messages reached neither cluster, first %s", len(m), total, m[0])
	})
	t.Logf("%d messages sent; primary received %d, secondary %d (duplicates included)", total, primary.total(), secondary.total())

	if got := r.metric(t, "router_failover_switches_total", map[string]string{"target": "out"}); got < 2 {
		t.Errorf("router_failover_switches_total{target=\"out\"} = %v, want >= 2", got)
	}
}

// streamCluster is the cluster the status says the stream of route to target delivers to.
func streamCluster(t testing.TB, r *routerRun, route, target string) string {
	t.Helper()
	for _, s := range r.status(t).Streams {
		if s.Route == route && s.Target == target {
			return s.Cluster
		}
	}
	t.Fatalf("status lists no stream %s -> %s", route, target)
	return ""
}

// missingAcross lists the feeder's messages from..to that reached none of the sinks.
func missingAcross(f *feeder, from, to int, sinks ...*sink) []string {
	var out []string
	for n := from; n <= to; n++ {
		found := false
		for _, s := range sinks {
			if s.times(f.id(n)) > 0 {
				found = true
				break
			}
		}
		if !found {
			out = append(out, f.id(n))
		}
	}
	return out
}
