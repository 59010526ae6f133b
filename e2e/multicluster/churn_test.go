package multicluster

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/internal/testutil/tcpproxy"
)

const (
	// churnClusters are cut and restored in parallel. A cluster's reconnect delay doubles
	// with each connection that dies young (up to 10s, amqpx defaults the config cannot
	// change), so one cluster makes about 15 cycles a minute; several make hundreds.
	churnClusters = 16
	churnFor      = 40 * time.Second
	// churnDwell is how long a connection stays up before its cut, so that deliveries use it.
	churnDwell = 100 * time.Millisecond
	// Leak tolerances, once the router has settled again with everything connected. The
	// store keeps the latest 16384 events in memory, so the heap grows by about 1 KiB for each
	// of the ~2,000 events sent during the cycles; a leak of 30 KiB a cycle would still show.
	goroutineSlack = 10
	heapSlack      = 8 << 20
)

// churner cuts a cluster's network as soon as it has been up for churnDwell, and restores it as
// soon as the router has seen it go down.
type churner struct {
	proxy   *tcpproxy.Proxy
	cut     bool
	upSince time.Time
	cycles  int
}

func (c *churner) step(connected bool, now time.Time) {
	switch {
	case c.cut && !connected:
		c.proxy.Restore()
		c.cut, c.upSince = false, time.Time{}
		c.cycles++
	case !c.cut && connected && c.upSince.IsZero():
		c.upSince = now
	case !c.cut && connected && now.Sub(c.upSince) >= churnDwell:
		c.proxy.Cut()
		c.cut = true
	}
}

// TestConnectCutCycles cuts and restores the clusters of an "all" target hundreds of times
// under traffic: every event still reaches every cluster, and the router's goroutines and heap
// come back to where they were.
func TestConnectCutCycles(t *testing.T) {
	node := second.Node(t)
	mainURL := rabbit.URL()
	in, queue, out := rabbit.Unique("mc.churn.in"), rabbit.Unique("mc.churn.router"), rabbit.Unique("mc.churn.out")
	deleteAtCleanup(t, mainURL, []string{in}, []string{queue})
	onMain := newCountingSink(t, "main", mainURL, out)
	onNode := newCountingSink(t, "node", node.URL(), out)

	// Even clusters are the main broker, odd ones the second node, each behind its own proxy.
	churners := map[string]*churner{}
	var names []string
	src := clusterBlock("in", mainURL) + sourceBlock("in", "in", in, queue)
	for i := range churnClusters {
		name := fmt.Sprintf("c%02d", i)
		upstream := rabbit.Addr(t)
		if i%2 == 1 {
			upstream = node.Addr()
		}
		p := tcpproxy.Start(t, upstream)
		churners[name] = &churner{proxy: p}
		names = append(names, name)
		src += clusterBlock(name, "amqp://guest:guest@"+p.Addr()+"/")
	}
	r := startRouter(t, src+multiTargetBlock("out", "all", out, names...)+routeBlock("r", "in", "out"))
	r.waitReady(t, 30*time.Second)
	for _, name := range names {
		r.waitCluster(t, name, true, 30*time.Second)
	}
	f := newFeeder(t, mainURL, in, "churn")
	f.publish(50)
	settle(t, r, 50)
	goroutinesBefore, heapBefore := runtime.NumGoroutine(), liveHeap()

	f.run(50)
	start := time.Now()
	for now := start; now.Sub(start) < churnFor; now = time.Now() {
		for _, c := range r.Engine.Status().Clusters {
			if ch := churners[c.Name]; ch != nil {
				ch.step(c.Connected, now)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	cycles := 0
	for _, c := range churners {
		c.proxy.Restore()
		cycles += c.cycles
	}
	total := f.pause()
	t.Logf("%d connect/cut cycles over %d clusters in %s, %d messages sent meanwhile",
		cycles, churnClusters, churnFor, total-50)
	if cycles < 100 {
		t.Errorf("only %d connect/cut cycles in %s", cycles, churnFor)
	}
	for _, name := range names {
		r.waitCluster(t, name, true, 30*time.Second)
	}
	settle(t, r, uint64(total))
	reconnects := 0.0
	for _, name := range names {
		reconnects += r.metric(t, "router_broker_reconnects_total", map[string]string{"cluster": name})
	}
	if reconnects < float64(cycles) {
		t.Errorf("router_broker_reconnects_total sums to %v over the churned clusters, want at least the %d cycles", reconnects, cycles)
	}

	// Each cluster delivered every event: 8 copies in each broker's sink.
	for _, s := range []*sink{onMain, onNode} {
		waitFor(t, 30*time.Second, func() bool { return short(s, f, total, churnClusters/2) == "" }, func() string {
			return fmt.Sprintf("sink %s: %s", s.name, short(s, f, total, churnClusters/2))
		})
	}

	var goroutinesAfter int
	waitFor(t, 30*time.Second, func() bool {
		goroutinesAfter = runtime.NumGoroutine()
		return goroutinesAfter <= goroutinesBefore+goroutineSlack
	}, func() string {
		return fmt.Sprintf("goroutines: %d after the cycles, %d before\n%s", goroutinesAfter, goroutinesBefore, goroutineDump())
	})
	heapAfter := liveHeap()
	t.Logf("goroutines %d -> %d, live heap %.1f -> %.1f MiB (the router's log, kept by the test, is %.1f MiB)",
		goroutinesBefore, goroutinesAfter, float64(heapBefore)/(1<<20), float64(heapAfter)/(1<<20),
		float64(len(r.Logs.String()))/(1<<20))
	if heapAfter > heapBefore+heapSlack {
		t.Errorf("live heap grew from %d to %d bytes over %d cycles", heapBefore, heapAfter, cycles)
	}
}

// settle waits until the log holds at least events and every stream has delivered all of it.
func settle(t testing.TB, r *routerRun, events uint64) {
	t.Helper()
	var st status
	waitFor(t, 60*time.Second, func() bool {
		st = r.status(t)
		return st.Settled(events)
	}, func() string {
		return fmt.Sprintf("deliveries never caught up with %d events: %s", events, mustJSON(st))
	})
}

// short describes the first of the feeder's messages 1..total that reached s fewer than copies
// times, or is "".
func short(s *sink, f *feeder, total, copies int) string {
	for n := 1; n <= total; n++ {
		if got := s.times(f.id(n)); got < copies {
			return fmt.Sprintf("%s arrived %d times, want %d", f.id(n), got, copies)
		}
	}
	return ""
}

// liveHeap is the bytes of live heap objects after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func goroutineDump() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	if s := string(buf); len(s) > 20000 {
		return s[:20000] + "\n..."
	}
	return strings.TrimSpace(string(buf))
}
