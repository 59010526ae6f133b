package multicluster

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/internal/testutil/tcpproxy"
)

// lagBound is how late a message may reach a healthy cluster of an "all" target while another
// cluster of the target is away (the race detector and a shared 2-core machine included).
const lagBound = 2 * time.Second

// TestAllModeOneClusterAway cuts the network of one cluster of an "all" target under steady
// traffic: the other cluster keeps receiving without added lag, the cut one gets the whole
// backlog in order once back, and no message is missing on either.
func TestAllModeOneClusterAway(t *testing.T) {
	setup := newAllModeSetup(t, "mc.all")
	primary := newSink(t, "primary", setup.mainURL, setup.out)
	dr := newSink(t, "dr", setup.drURL, setup.out)
	r := setup.startRouter(t)

	f := newFeeder(t, setup.mainURL, setup.in, "all")
	f.run(100)
	f.waitSent(t, 100, 20*time.Second)
	primary.waitAll(t, f, 1, 100, 10*time.Second)
	dr.waitAll(t, f, 1, 100, 10*time.Second)

	cutFrom := f.count() + 1
	setup.drProxy.Cut()
	if c := r.waitCluster(t, "dr", false, 10*time.Second); c.LastError == "" {
		t.Error("status: cluster dr is down with no last error")
	}
	// The outage lasts while about 4s of traffic is sent.
	f.waitSent(t, cutFrom+400, 30*time.Second)
	cutTo := f.count()
	primary.waitAll(t, f, cutFrom, cutTo, lagBound+time.Second)
	for n := cutFrom; n <= cutTo; n++ {
		if dr.times(f.id(n)) > 0 {
			t.Fatalf("dr received %s, published during its outage, before the network came back", f.id(n))
		}
	}
	if lag, ok := r.status(t).streamLag("r", "out", "dr"); !ok || lag == 0 {
		t.Errorf("status: stream r -> out@dr lag %d (listed %v) during the outage, want > 0", lag, ok)
	}

	restoredAt := time.Now()
	setup.drProxy.Restore()
	r.waitCluster(t, "dr", true, 30*time.Second)
	reconnectedAt := time.Now()
	f.waitSent(t, cutTo+200, 30*time.Second)
	total := f.pause()
	primary.waitAll(t, f, 1, total, 30*time.Second)
	dr.waitAll(t, f, 1, total, 60*time.Second)

	before := latencies(t, primary, f, 1, cutFrom-1)
	during := latencies(t, primary, f, cutFrom, cutTo)
	t.Logf("primary latency before the outage: %s", summary(before))
	t.Logf("primary latency during the outage of dr: %s", summary(during))
	if worst := during[len(during)-1]; worst > lagBound {
		t.Errorf("primary: a message took %s to arrive while dr was away, want at most %s", worst, lagBound)
	}
	// A fixed bound, not a ratio to the latency before: on shared cores under the race detector
	// the ratio of two small figures is noise. Half the worst-case bound is still far above a
	// healthy cluster's p99 and far below a stream held up by its sibling's outage.
	if p99b, p99d := percentile(before, 99), percentile(during, 99); p99d > lagBound/2 {
		t.Errorf("primary: p99 latency %s while dr was away (%s before), want at most %s: the outage slowed the healthy cluster", p99d, p99b, lagBound/2)
	}
	var caughtUp time.Time
	for n := 1; n <= cutTo; n++ {
		if at, _ := dr.firstAt(f.id(n)); at.After(caughtUp) {
			caughtUp = at
		}
	}
	t.Logf("dr: reconnected %s after the network came back; backlog of %d messages (outage %d..%d) delivered %s after that",
		reconnectedAt.Sub(restoredAt).Round(time.Millisecond), cutTo-cutFrom+1, cutFrom, cutTo,
		caughtUp.Sub(reconnectedAt).Round(time.Millisecond))

	for _, s := range []*sink{primary, dr} {
		dups, err := s.checkOrder(f)
		if err != nil {
			t.Error(err)
		}
		t.Logf("%s: %d messages, %d distinct of %d sent, %d redelivered", s.name, s.total(),
			total-len(s.missing(f, 1, total)), total, dups)
	}
	for _, target := range []string{"out@primary", "out@dr"} {
		if got := r.metric(t, "router_events_delivered_total", map[string]string{"route": "r", "target": target}); got < float64(total) {
			t.Errorf("router_events_delivered_total{target=%q} = %v, want >= %d", target, got, total)
		}
	}
}

// allModeSetup is the topology of the "all" tests: route r takes source in, on the main broker,
// to target out in mode "all" on clusters primary (the main broker) and dr (the second node,
// reached through drProxy so that a test can cut its network).
type allModeSetup struct {
	mainURL, drURL string // where a test's sinks read out, on primary and on dr
	drProxy        *tcpproxy.Proxy
	in, queue, out string
}

// newAllModeSetup names the exchanges and queue after prefix; the test binds its sinks to out
// before it starts the router.
func newAllModeSetup(t *testing.T, prefix string) *allModeSetup {
	t.Helper()
	node := second.Node(t)
	s := &allModeSetup{
		mainURL: rabbit.URL(), drURL: node.URL(), drProxy: tcpproxy.Start(t, node.Addr()),
		in: rabbit.Unique(prefix + ".in"), queue: rabbit.Unique(prefix + ".router"), out: rabbit.Unique(prefix + ".out"),
	}
	deleteAtCleanup(t, s.mainURL, []string{s.in}, []string{s.queue})
	return s
}

// startRouter starts the router and waits until it is ready and connected to dr.
func (s *allModeSetup) startRouter(t *testing.T) *routerRun {
	t.Helper()
	r := startRouter(t, clusterBlock("primary", s.mainURL)+
		clusterBlock("dr", "amqp://guest:guest@"+s.drProxy.Addr()+"/")+
		sourceBlock("in", "primary", s.in, s.queue)+
		multiTargetBlock("out", "all", s.out, "primary", "dr")+
		routeBlock("r", "in", "out"))
	r.waitReady(t, 30*time.Second)
	r.waitCluster(t, "dr", true, 30*time.Second)
	return r
}

// latencies are the sorted delays between publishing the feeder's messages from..to and their
// first arrival at s.
func latencies(t testing.TB, s *sink, f *feeder, from, to int) []time.Duration {
	t.Helper()
	out := make([]time.Duration, 0, to-from+1)
	for n := from; n <= to; n++ {
		at, ok := s.firstAt(f.id(n))
		if !ok {
			t.Fatalf("sink %s: %s never arrived", s.name, f.id(n))
		}
		out = append(out, at.Sub(f.sentAt(n)))
	}
	slices.Sort(out)
	return out
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[(len(sorted)-1)*p/100]
}

func summary(sorted []time.Duration) string {
	r := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
	return "p50 " + r(percentile(sorted, 50)).String() + ", p99 " + r(percentile(sorted, 99)).String() +
		", max " + r(percentile(sorted, 100)).String() + " over " + strconv.Itoa(len(sorted)) + " messages"
}
