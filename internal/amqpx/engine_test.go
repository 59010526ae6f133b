package amqpx

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/router/routertest"
)

// brokerRig is an engine running against the real broker (engineOnBroker).
type brokerRig struct {
	log              *routertest.Log
	metrics          *router.Metrics
	engine           *router.Engine
	cluster          string
	conn             *amqp.Connection // the test's own
	srcX, srcQ, outQ string           // the target's queue is bound with "ok.#"
}

// engineOnBroker runs the engine on this package's source and publishers against the real
// broker, with the in-memory log (which passes the log suite) so that the test can act between
// a commit and its acknowledgement.
func engineOnBroker(t *testing.T) brokerRig {
	t.Helper()
	conn := rabbit.Dial(t)
	ch := rabbit.Channel(t, conn)
	outX, outQ := declareTarget(t, ch)
	s := newSource(t)
	cluster := rabbit.Unique("engine")
	src := fmt.Sprintf(`
cluster %q { url = %q }
source "in" {
  cluster  = %q
  exchange = %q
  queue    = %q
}
target "out" {
  cluster  = %q
  exchange = %q
}
route "r" {
  source  = "in"
  targets = ["out"]
}
`, cluster, rabbit.URL(), cluster, s.Exchange, s.Queue, cluster, outX)
	topo := routertest.Topology(t, src)
	m := router.NewMetrics(prometheus.NewRegistry())
	brokers, err := NewBrokers(topo.Config, fastOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	source, err := brokers.Source("in")
	if err != nil {
		t.Fatal(err)
	}
	lg := routertest.NewLog()
	e, err := router.New(router.Options{
		Topology: topo,
		Log:      lg,
		Sources:  map[string]router.Source{"in": source},
		Publishers: func(target string) ([]router.Publisher, error) {
			pubs, err := brokers.Publishers(target)
			out := make([]router.Publisher, len(pubs))
			for i, p := range pubs {
				out[i] = p
			}
			return out, err
		},
		Connect:  brokers.Connect,
		Clusters: brokers.Statuses,
		Metrics:  m,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("engine: %v", err)
		}
	})
	waitFor(t, "the engine ready", 30*time.Second, func() bool { return e.Status().Ready })
	return brokerRig{log: lg, metrics: m, engine: e, cluster: cluster, conn: conn, srcX: s.Exchange, srcQ: s.Queue, outQ: outQ}
}

// A message whose acknowledgement is lost with the consuming connection, after the log has
// committed it and before the acknowledgement, comes back from the broker as a redelivery: the
// engine recognises it, counts it as a duplicate, logs it once and delivers it once.
func TestEngineRecognisesARedeliveryFromTheBroker(t *testing.T) {
	rabbit.SkipIfShort(t)
	r := engineOnBroker(t)
	lg, m, cluster, conn, srcX, srcQ, outQ := r.log, r.metrics, r.cluster, r.conn, r.srcX, r.srcQ, r.outQ
	var cut sync.Once
	lg.AfterCommit(func(uint64) {
		cut.Do(func() {
			// Before the acknowledgement: the broker requeues the message.
			if n := rabbit.CloseConnections(t, ConnectionName(cluster, RoleConsume)); n != 1 {
				t.Errorf("closed %d consuming connections", n)
			}
		})
	})
	rabbit.PublishConfirmed(t, rabbit.Channel(t, conn), srcX, "ok.once", amqp.Publishing{MessageId: "once", Body: []byte("once")})
	waitFor(t, "the redelivery recognised", 60*time.Second, func() bool {
		return testutil.ToFloat64(m.EventsDuplicate.WithLabelValues("in")) >= 1
	})
	if n := lg.Appended(); n != 1 {
		t.Fatalf("%d records for one message", n)
	}
	// The copy may still be on its way to the target (its confirm is not waited for above):
	// wait for it with a generous bound, then watch a while for a second one.
	ch := rabbit.Channel(t, conn)
	got := rabbit.Collect(t, ch, outQ, 1, 30*time.Second)
	got = append(got, rabbit.Collect(t, ch, outQ, 1, 2*time.Second)...)
	if len(got) != 1 || got[0].MessageId != "once" {
		t.Fatalf("the target received %d messages, want the one", len(got))
	}
	waitFor(t, "the redelivery acknowledged", 30*time.Second, func() bool { return rabbit.QueueLen(t, conn, srcQ) == 0 })
}

// A full log (on_full = "block") makes the engine not ready and stops acknowledging: the
// broker keeps what the source has not acknowledged, the queue grows; once the log has room,
// everything is logged, delivered and acknowledged, nothing dropped.
func TestEngineHoldsTheBrokersMessagesWhileTheLogIsFull(t *testing.T) {
	rabbit.SkipIfShort(t)
	r := engineOnBroker(t)
	r.log.SetFull(true)
	waitFor(t, "not ready while full", 30*time.Second, func() bool { return !r.engine.Status().Ready })
	const n = DefaultPrefetch + 100
	ch := rabbit.Channel(t, r.conn)
	for i := range n {
		rabbit.PublishConfirmed(t, ch, r.srcX, "ok.full", amqp.Publishing{MessageId: fmt.Sprint(i)})
	}
	// The source holds a prefetch's worth, unacknowledged; the rest waits in the queue.
	waitFor(t, "the backlog in the source queue", 30*time.Second, func() bool { return rabbit.QueueLen(t, r.conn, r.srcQ) == n-DefaultPrefetch })
	if got := r.log.LastSeq(); got != 0 {
		t.Fatalf("logged up to seq %d while full", got)
	}
	r.log.SetFull(false)
	got := rabbit.Collect(t, rabbit.Channel(t, r.conn), r.outQ, n, 60*time.Second)
	seen := map[string]bool{}
	for _, d := range got {
		seen[d.MessageId] = true
	}
	if len(seen) != n {
		t.Fatalf("the target received %d distinct messages of %d", len(seen), n)
	}
	waitFor(t, "ready again", 30*time.Second, func() bool { return r.engine.Status().Ready })
	waitFor(t, "the source queue drained", 30*time.Second, func() bool { return rabbit.QueueLen(t, r.conn, r.srcQ) == 0 })
}
