package router_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/router/routertest"
)

// The engine's unit tests: the engine on the in-memory fakes of its ports (routertest), with no
// broker and no disk. Waits are bounded by waitTimeout and poll state, never sleep to order.

const waitTimeout = 20 * time.Second

// rig is an engine on fakes: one source "in" on cluster "main", targets as the test's
// configuration declares them, every cluster a routertest.Target.
type rig struct {
	t       *testing.T
	log     *routertest.Log
	src     *routertest.Source
	targets map[string]*routertest.Target // by cluster name
	metrics *router.Metrics
	engine  *router.Engine
	cancel  context.CancelFunc
	done    chan error
	stopped sync.Once
}

type rigOptions struct {
	window      int
	windowBytes int
	drain       time.Duration
	claims      *claimLog // a log shared with other routers: pairs are claimed
	// listing is claims on a log that also lists its cursors (new pairs start at its end).
	listing *listingClaimLog
	// lists: the log lists its cursors (new pairs start at its end), without claims.
	lists bool
	// releases: the log records what the engine releases of its recent events.
	releases *releasingLog
}

// newRig loads hcl (clusters, targets and routes; the source "in" and cluster "main" are
// added) and starts an engine on fakes, stopped when the test ends.
func newRig(t *testing.T, hcl string, opts rigOptions) *rig {
	t.Helper()
	topo := nextTopology(t, hcl)
	cfg := topo.Config
	r := &rig{t: t, log: routertest.NewLog(), src: routertest.NewSource("in"), targets: map[string]*routertest.Target{},
		metrics: router.NewMetrics(prometheus.NewRegistry()), done: make(chan error, 1)}
	for _, c := range cfg.Clusters {
		r.targets[c.Name] = routertest.NewTarget(c.Name)
	}
	specs := map[string]config.TargetSpec{}
	for _, ts := range cfg.Targets {
		specs[ts.Name] = ts
	}
	var lg router.Log = r.log
	if opts.claims != nil {
		opts.claims.Log = r.log
		lg = opts.claims
	}
	if opts.listing != nil {
		opts.listing.Log = r.log
		lg = opts.listing
	}
	if opts.lists {
		lg = &listingLog{Log: r.log}
	}
	if opts.releases != nil {
		opts.releases.Log = r.log
		lg = opts.releases
	}
	var err error
	r.engine, err = router.New(router.Options{
		Topology: topo,
		Log:      lg,
		Sources:  map[string]router.Source{"in": r.src},
		Publishers: func(target string) ([]router.Publisher, error) {
			ts, ok := specs[target]
			if !ok {
				return nil, fmt.Errorf("no target %q", target)
			}
			var out []router.Publisher
			for _, cn := range ts.Clusters {
				out = append(out, r.targets[cn].Publisher())
			}
			return out, nil
		},
		Metrics:      r.metrics,
		Window:       opts.window,
		WindowBytes:  opts.windowBytes,
		DrainTimeout: opts.drain,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- r.engine.Run(ctx) }()
	t.Cleanup(func() { r.stop() })
	return r
}

// stop stops the engine gracefully and waits for Run to return.
func (r *rig) stop() {
	r.t.Helper()
	r.stopped.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				r.t.Errorf("Run: %v", err)
			}
		case <-time.After(waitTimeout):
			r.t.Fatal("Run did not return after its context ended")
		}
	})
}

func (r *rig) publish(key string, bodies ...string) {
	for _, b := range bodies {
		r.src.Publish(&event.Event{RoutingKey: key, Body: []byte(b), Props: event.Properties{MessageID: b}})
	}
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func (r *rig) waitFor(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// received waits for n messages on exchange of cluster main and returns their bodies.
func (r *rig) received(exchange string, n int) []string {
	r.t.Helper()
	r.waitFor(fmt.Sprintf("%d messages on %s", n, exchange), func() bool { return len(r.targets["main"].Received(exchange)) >= n })
	var out []string
	for _, m := range r.targets["main"].Received(exchange) {
		out = append(out, string(m.Body))
	}
	return out
}

func (r *rig) cursor(route, target string) uint64 {
	pos, _ := r.log.Cursor(router.CursorName(route, target, ""))
	return pos
}

func bodies(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

// oneTarget is one route "r" to one target "a" (exchange xa).
const oneTarget = `
target "a" {
  cluster  = "main"
  exchange = "xa"
}
route "r" {
  source  = "in"
  targets = ["a"]
}
`

const twoTargets = `
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
  retry {
    attempts    = 3
    backoff     = "1ms"
    max_backoff = "2ms"
  }
}
`

func TestEachPairDeliversInLogOrderAndSourcesAreAcknowledged(t *testing.T) {
	r := newRig(t, twoTargets, rigOptions{window: 16})
	want := bodies("e", 300)
	r.publish("k", want...)
	for _, x := range []string{"xa", "xb"} {
		if got := r.received(x, len(want)); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("%s received out of order or with gaps: %v", x, got)
		}
	}
	for i, m := range r.targets["main"].Received("xa") {
		if m.Headers[event.HeaderSeq] != int64(i+1) || m.Headers[event.HeaderRoute] != "r" || m.Headers[event.HeaderSource] != "in" {
			t.Fatalf("message %d router headers %v", i, m.Headers)
		}
	}
	r.waitFor("every message acknowledged", func() bool { return len(r.src.Acked()) == len(want) && r.src.Pending() == 0 })
	r.waitFor("both cursors at the end", func() bool { return r.cursor("r", "a") == 300 && r.cursor("r", "b") == 300 })
	if got := testutil.ToFloat64(r.metrics.EventsDelivered.WithLabelValues("r", "a")); got != 300 {
		t.Fatalf("router_events_delivered_total{r,a} = %v", got)
	}
}

func TestConfirmWindowBoundsWhatIsInFlightAndTheCursorFollowsConfirms(t *testing.T) {
	r := newRig(t, oneTarget, rigOptions{window: 8})
	tgt := r.targets["main"]
	tgt.HoldConfirms(true)
	r.publish("k", bodies("e", 50)...)
	r.waitFor("a full window", func() bool { return tgt.Unconfirmed() == 8 })
	r.waitFor("all 50 logged", func() bool { return r.log.LastSeq() == 50 })
	if tgt.Unconfirmed() != 8 || r.cursor("r", "a") != 0 {
		t.Fatalf("with nothing confirmed: %d in flight, cursor %d; want 8 and 0", tgt.Unconfirmed(), r.cursor("r", "a"))
	}
	tgt.Confirm(3)
	r.waitFor("the cursor at the third confirm", func() bool { return r.cursor("r", "a") == 3 })
	r.waitFor("the window refilled", func() bool { return tgt.Unconfirmed() == 8 })
	tgt.HoldConfirms(false)
	for tgt.Unconfirmed() > 0 || r.cursor("r", "a") < 50 {
		tgt.Confirm(-1)
		r.waitFor("progress", func() bool { return tgt.Unconfirmed() > 0 || r.cursor("r", "a") == 50 })
	}
	if got := r.received("xa", 50); len(got) != 50 {
		t.Fatalf("%d delivered", len(got))
	}
}

func TestConfirmWindowIsBoundedInBytes(t *testing.T) {
	const size, windowBytes = 16 << 10, 128 << 10
	r := newRig(t, oneTarget, rigOptions{window: 1024, windowBytes: windowBytes})
	tgt := r.targets["main"]
	tgt.HoldConfirms(true)
	var want []string
	for i := range 40 {
		b := fmt.Sprintf("e%03d", i) + strings.Repeat("x", size)
		want = append(want, b)
		r.publish("k", b)
	}
	r.waitFor("all 40 logged", func() bool { return r.log.LastSeq() == 40 })
	// An event counts about 2*size (its body, and its message id, which r.publish makes the
	// body too) and its message 256 bytes more: the body it shares is not counted again. The
	// window takes events while their count is under windowBytes: 4 of them (3 when the
	// shared body was counted twice), never more than windowBytes/(2*size) + 1.
	limit := windowBytes/(2*size) + 1
	const full = 4
	r.waitFor("a full window", func() bool { return tgt.Unconfirmed() >= full })
	for range 3 {
		if n := tgt.Unconfirmed(); n < 1 || n > limit {
			t.Fatalf("%d events of %d bytes in flight with a window of %d bytes; want 1..%d", n, size, windowBytes, limit)
		}
		tgt.Confirm(1)
		r.waitFor("the window refilled", func() bool { return tgt.Unconfirmed() > 0 })
	}
	tgt.HoldConfirms(false)
	for tgt.Unconfirmed() > 0 || r.cursor("r", "a") < 40 {
		if n := tgt.Unconfirmed(); n > limit {
			t.Fatalf("%d events in flight; want at most %d", n, limit)
		}
		tgt.Confirm(-1)
		r.waitFor("progress", func() bool { return tgt.Unconfirmed() > 0 || r.cursor("r", "a") == 40 })
	}
	if got := r.received("xa", 40); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("delivered out of order or with gaps")
	}
}

// releasingLog is the fake log that records the highest seq below which the engine said every
// live stream has read (store.Store.ReleaseRead, which trims the ring of recent events).
type releasingLog struct {
	*routertest.Log
	mu    sync.Mutex
	below uint64
}

func (l *releasingLog) ReleaseRead(seq uint64) {
	l.mu.Lock()
	l.below = max(l.below, seq)
	l.mu.Unlock()
}

func (l *releasingLog) released() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.below
}

// The log may forget from memory what every live stream has read, never what the slowest has
// not.
func TestTheLogReleasesWhatEveryStreamRead(t *testing.T) {
	const window = 4
	lg := &releasingLog{}
	r := newRig(t, `
cluster "dr" { url = "amqp://guest:guest@127.0.0.1:2/" }
target "a" {
  cluster  = "main"
  exchange = "xa"
}
target "b" {
  cluster  = "dr"
  exchange = "xb"
}
route "r" {
  source  = "in"
  targets = ["a", "b"]
}
`, rigOptions{window: window, releases: lg})
	slow := r.targets["dr"]
	slow.HoldConfirms(true)
	want := bodies("e", 20)
	r.publish("k", want...)
	r.received("xa", 20)
	// The slow stream has read what it published and waits for its confirms; the fast one has
	// read all 20. What is released is what the slow one read, not more.
	r.waitFor("the slow stream's reads released", func() bool {
		n := slow.Unconfirmed()
		return n > 0 && lg.released() == uint64(n)+1
	})
	if n := slow.Unconfirmed(); n > window || lg.released() != uint64(n)+1 {
		t.Fatalf("released below %d with the slow stream having read %d of 20", lg.released(), n)
	}
	slow.HoldConfirms(false)
	r.waitFor("20 messages on xb", func() bool { return len(slow.Received("xb")) == 20 })
	for i, m := range slow.Received("xb") {
		if string(m.Body) != want[i] {
			t.Fatalf("xb received %q at %d, want %q", m.Body, i, want[i])
		}
	}
	r.waitFor("everything released", func() bool { return lg.released() == 21 })
}

func TestRefusalIsRetriedThenDeadLetteredAndTheOthersGoOn(t *testing.T) {
	r := newRig(t, twoTargets, rigOptions{})
	r.targets["main"].Refuse(func(m *event.Message) error {
		if m.Exchange == "xa" && string(m.Body) == "bad" {
			return errors.New("NOT_ROUTED")
		}
		return nil
	})
	r.publish("k", "ok1", "bad", "ok2")
	if got := r.received("xa", 2); strings.Join(got, ",") != "ok1,ok2" {
		t.Fatalf("xa received %v, want ok1,ok2", got)
	}
	if got := r.received("xb", 3); strings.Join(got, ",") != "ok1,bad,ok2" {
		t.Fatalf("xb (which takes everything) received %v", got)
	}
	var dls []event.DeadLetter
	r.waitFor("the dead letter", func() bool {
		dls = nil
		_ = r.log.DeadLetters(1, 0, func(d event.DeadLetter) bool { dls = append(dls, d); return true })
		return len(dls) > 0
	})
	if len(dls) != 1 || dls[0].Route != "r" || dls[0].Target != "a" || dls[0].Seq != 2 || dls[0].Attempts != 3 || !strings.Contains(dls[0].Reason, "NOT_ROUTED") {
		t.Fatalf("dead letters %+v", dls)
	}
	if got := testutil.ToFloat64(r.metrics.DeliveryRetries.WithLabelValues("r", "a")); got != 2 {
		t.Fatalf("router_delivery_retries_total = %v, want 2 (3 attempts)", got)
	}
	if got := testutil.ToFloat64(r.metrics.EventsDeadLettered.WithLabelValues("r")); got != 1 {
		t.Fatalf("router_events_dead_lettered_total = %v", got)
	}
	r.waitFor("the cursor past the dead letter", func() bool { return r.cursor("r", "a") == 3 })
}

func TestOutageWaitsInTheLogAndIsNeverDeadLettered(t *testing.T) {
	r := newRig(t, twoTargets, rigOptions{})
	tgt := r.targets["main"]
	tgt.SetDown(true)
	r.publish("k", bodies("e", 20)...)
	// The log is the buffer: the source is acknowledged while the target is away.
	r.waitFor("every message acknowledged", func() bool { return len(r.src.Acked()) == 20 })
	// The sources run a moment before the engine lists them (it says "starting" meanwhile), and
	// may have acknowledged everything by then: the router must be ready while the target is
	// still down, not at once.
	r.waitFor("the router ready during the outage", func() bool { return r.engine.Status().Ready })
	tgt.SetDown(false)
	want := strings.Join(bodies("e", 20), ",")
	if got := r.received("xa", 20); strings.Join(got, ",") != want {
		t.Fatalf("after the outage xa received %v", got)
	}
	if n := r.log.LastDeadLetterID(); n != 0 {
		t.Fatalf("%d dead letters after an outage", n)
	}
}

func TestOutageWhileConfirmsArePendingResendsThemInOrder(t *testing.T) {
	r := newRig(t, twoTargets, rigOptions{window: 4})
	tgt := r.targets["main"]
	tgt.HoldConfirms(true)
	r.publish("k", bodies("e", 10)...)
	r.waitFor("a full window on both streams", func() bool { return tgt.Unconfirmed() == 8 })
	tgt.SetDown(true) // what was in flight is lost with the connection
	tgt.HoldConfirms(false)
	tgt.SetDown(false)
	want := strings.Join(bodies("e", 10), ",")
	if got := r.received("xa", 10); strings.Join(got, ",") != want {
		t.Fatalf("xa received %v, want %s", got, want)
	}
}

func TestPanicOnTheEventPathIsThatEventsFailure(t *testing.T) {
	r := newRig(t, twoTargets, rigOptions{})
	r.targets["main"].PanicOn(func(m *event.Message) bool { return m.Exchange == "xa" && string(m.Body) == "boom" })
	r.publish("k", "ok1", "boom", "ok2")
	if got := r.received("xa", 2); strings.Join(got, ",") != "ok1,ok2" {
		t.Fatalf("xa received %v", got)
	}
	var dl event.DeadLetter
	r.waitFor("the dead letter", func() bool {
		_ = r.log.DeadLetters(1, 0, func(d event.DeadLetter) bool { dl = d; return false })
		return dl.ID != 0
	})
	if dl.Seq != 2 || dl.Target != "a" || !strings.Contains(dl.Reason, "panic") {
		t.Fatalf("dead letter %+v", dl)
	}
	if got := r.received("xb", 3); len(got) != 3 {
		t.Fatalf("xb received %v", got)
	}
}

func TestReplayDeliversItsRangeAgainMarkedAndPaced(t *testing.T) {
	r := newRig(t, oneTarget, rigOptions{})
	r.publish("k", bodies("e", 10)...)
	r.received("xa", 10)
	r.waitFor("the live cursor at the end", func() bool { return r.cursor("r", "a") == 10 })
	const rate = 40.0
	start := time.Now()
	id, err := r.engine.StartReplay(context.Background(), router.ReplayRequest{From: 3, To: 7, Rate: rate})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	p, err := r.engine.WaitReplay(ctx, id)
	if err != nil || p.State != "done" || p.Done != 5 || p.Delivered != 5 {
		t.Fatalf("replay: %+v, %v", p, err)
	}
	// Pacing can only make a replay slower: 5 events at 40/s take at least 4 intervals.
	if took := time.Since(start); took < 4*time.Second/rate {
		t.Fatalf("5 events at %v/s took %v", rate, took)
	}
	got := r.targets["main"].Received("xa")[10:]
	for i, m := range got {
		if m.Headers[event.HeaderSeq] != int64(3+i) || m.Headers[event.HeaderReplay] != true {
			t.Fatalf("replayed message %d: headers %v", i, m.Headers)
		}
	}
	if len(got) != 5 {
		t.Fatalf("%d replayed messages, want 5", len(got))
	}
	if _, err := r.log.Job(id); !errors.Is(err, event.ErrNoJob) {
		t.Fatalf("a finished job's record stays: %v", err)
	}
}

func TestGracefulStopFinishesTheConfirmsInFlight(t *testing.T) {
	r := newRig(t, twoTargets, rigOptions{drain: waitTimeout})
	tgt := r.targets["main"]
	tgt.HoldConfirms(true)
	r.publish("k", bodies("e", 5)...)
	r.waitFor("everything in flight", func() bool { return tgt.Unconfirmed() == 10 })
	r.cancel()
	tgt.HoldConfirms(false) // the broker answers while the engine drains
	r.stop()
	if r.cursor("r", "a") != 5 || r.cursor("r", "b") != 5 {
		t.Fatalf("after the drain: cursors %d %d, want 5 5", r.cursor("r", "a"), r.cursor("r", "b"))
	}
	if len(r.src.Acked()) != 5 {
		t.Fatalf("%d acknowledged after a graceful stop", len(r.src.Acked()))
	}
}

func TestDrainTimeoutLeavesUnconfirmedEventsForTheNextStart(t *testing.T) {
	r := newRig(t, twoTargets, rigOptions{drain: 50 * time.Millisecond})
	tgt := r.targets["main"]
	tgt.HoldConfirms(true)
	r.publish("k", bodies("e", 3)...)
	r.waitFor("everything in flight", func() bool { return tgt.Unconfirmed() == 6 })
	r.stop()
	if r.cursor("r", "a") != 0 {
		t.Fatalf("unconfirmed events counted as delivered: cursor %d", r.cursor("r", "a"))
	}
}

func TestAFailingLogRequeuesAndHoldsConsumptionBack(t *testing.T) {
	r := newRig(t, twoTargets, rigOptions{})
	r.waitFor("ready", func() bool { return r.engine.Status().Ready })
	r.log.FailAppends(errors.New("disk I/O error"))
	r.publish("k", "e1")
	r.waitFor("not ready for the log's error", func() bool {
		st := r.engine.Status()
		return !st.Ready && strings.Contains(st.Reason, "disk I/O error")
	})
	if len(r.src.Acked()) != 0 || r.src.Pending() != 1 {
		t.Fatalf("with a failing log: %d acknowledged, %d pending; want 0 and 1", len(r.src.Acked()), r.src.Pending())
	}
	r.log.FailAppends(nil)
	if got := r.received("xa", 1); got[0] != "e1" {
		t.Fatalf("after recovery xa received %v", got)
	}
	r.waitFor("acknowledged", func() bool { return len(r.src.Acked()) == 1 })
	r.waitFor("ready", func() bool { return r.engine.Status().Ready })
}

// A message whose headers the source cannot decode is rejected without requeue (the broker
// dead-letters its own copy), counted, never logged; the messages behind it flow.
func TestUndecodableMessagesAreRejected(t *testing.T) {
	r := newRig(t, twoTargets, rigOptions{})
	r.src.PublishUndecodable("k")
	r.publish("k", "after")
	if got := r.received("xa", 1); got[0] != "after" {
		t.Fatalf("xa received %v", got)
	}
	r.waitFor("the undecodable message rejected and the next acknowledged", func() bool {
		return len(r.src.Rejected()) == 1 && r.src.Pending() == 0
	})
	if got := testutil.ToFloat64(r.metrics.EventsRejected.WithLabelValues("in", "undecodable")); got != 1 {
		t.Fatalf("router_events_rejected_total{reason=undecodable} = %v, want 1", got)
	}
	if n := r.log.Appended(); n != 1 {
		t.Fatalf("%d records logged, want 1 (the undecodable message is not logged)", n)
	}
}

// A redelivery of an event that was logged but whose acknowledgement was lost with the channel
// (cut after the commit, before the ack) is recognised, counted, and not logged twice.
func TestRedeliveryAfterALostAcknowledgementIsNotLoggedTwice(t *testing.T) {
	r := newRig(t, twoTargets, rigOptions{})
	r.waitFor("consuming", func() bool { return r.engine.Status().Ready })
	cut := sync.Once{}
	r.log.AfterCommit(func(uint64) { cut.Do(r.src.LoseChannel) })
	r.publish("k", "once")
	r.waitFor("the duplicate counted", func() bool {
		return testutil.ToFloat64(r.metrics.EventsDuplicate.WithLabelValues("in")) >= 1
	})
	r.waitFor("the redelivery acknowledged", func() bool { return r.src.Pending() == 0 })
	if n := r.log.Appended(); n != 1 {
		t.Fatalf("%d records for one message", n)
	}
	if got := r.received("xa", 1); len(got) != 1 {
		t.Fatalf("xa received %v", got)
	}
	if got := testutil.ToFloat64(r.metrics.EventsStored.WithLabelValues("in")); got != 1 {
		t.Fatalf("router_events_stored_total = %v, want 1", got)
	}
}

// A full log (on_full = "block") makes the router not ready and holds consumption: nothing is
// acknowledged, the queue grows; once there is room everything is logged, delivered and
// acknowledged.
func TestAFullLogHoldsConsumptionUntilThereIsRoom(t *testing.T) {
	r := newRig(t, twoTargets, rigOptions{})
	r.waitFor("ready", func() bool { return r.engine.Status().Ready })
	r.log.SetFull(true)
	r.waitFor("not ready while full", func() bool {
		st := r.engine.Status()
		return !st.Ready && strings.Contains(st.Reason, "full")
	})
	r.publish("k", bodies("e", 5)...)
	r.waitFor("the messages handed out", func() bool { return r.src.Pending() == 5 })
	if len(r.src.Acked()) != 0 || r.log.LastSeq() != 0 {
		t.Fatalf("while full: %d acknowledged, last seq %d", len(r.src.Acked()), r.log.LastSeq())
	}
	r.log.SetFull(false)
	if got := r.received("xa", 5); strings.Join(got, ",") != strings.Join(bodies("e", 5), ",") {
		t.Fatalf("after the log has room: %v", got)
	}
	r.waitFor("acknowledged", func() bool { return len(r.src.Acked()) == 5 })
	r.waitFor("ready again", func() bool { return r.engine.Status().Ready })
}
