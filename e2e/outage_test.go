package e2e

import (
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/inproc"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/internal/testutil/tcpproxy"
)

// outageSetup is a router with two clusters on the test broker: "near" directly and "far"
// through a proxy the test can cut. Route "r" sends the source's events to target a on near
// and b on far, and dead-letters to dlq on near.
type outageSetup struct {
	path, srcX string
	proxy      *tcpproxy.Proxy
	a, b, dlq  *collector
	dlqQueue   string
}

func newOutageSetup(t *testing.T) *outageSetup {
	t.Helper()
	s := &outageSetup{proxy: tcpproxy.Start(t, rabbit.Addr(t))}
	var srcQ string
	s.srcX, srcQ = sourceNames(t)
	aX, bX, dlqX := rabbit.Unique("e2e.a"), rabbit.Unique("e2e.b"), rabbit.Unique("e2e.dlq")
	s.dlqQueue = targetQueue(t, dlqX)
	s.a, s.b, s.dlq = collect(t, targetQueue(t, aX)), collect(t, targetQueue(t, bX)), collect(t, s.dlqQueue)
	cfg := clusterBlock("near", rabbit.URL()) + clusterBlock("far", rabbit.URLVia(t, s.proxy.Addr())) +
		sourceBlock("in", "near", s.srcX, srcQ) +
		targetBlock("a", "near", aX) + targetBlock("b", "far", bX) + targetBlock("dlq", "near", dlqX) + `
route "r" {
  source      = "in"
  targets     = ["a", "b"]
  dead_letter = "dlq"
  retry {
    attempts    = 2
    backoff     = "10ms"
    max_backoff = "20ms"
  }
}
`
	s.path = writeConfig(t, t.TempDir(), cfg)
	return s
}

// startCut starts the router and cuts the far cluster once the router has connected to it.
func (s *outageSetup) startCut(t *testing.T) *inproc.Router {
	t.Helper()
	r := startRouter(t, s.path)
	waitCluster(t, r.Admin, "far", true, 30*time.Second)
	s.proxy.Cut()
	waitCluster(t, r.Admin, "far", false, 30*time.Second)
	return r
}

// TestTargetOutage cuts the far target's cluster while messages flow and restarts the router
// during the outage: the near target gets everything at once, the far one everything, in
// order, once the cluster is back; an outage never dead-letters. Messages without a message id
// get the same assigned id at both targets, across the restart.
func TestTargetOutage(t *testing.T) {
	rabbit.SkipIfShort(t)
	s := newOutageSetup(t)
	r := s.startCut(t)

	const n = 200
	msgs, ids := numbered("outage", "outage.event", n)
	for i := 1; i < n; i += 2 {
		msgs[i].msg.MessageId = "" // the router assigns one
	}
	mustPublish(t, s.srcX, msgs...)
	s.a.waitCount(t, "target a (near) during the outage", n, 30*time.Second)
	if got := s.b.count(); got != 0 {
		t.Fatalf("target b received %d messages while its cluster was cut off", got)
	}
	took := stopTimed(t, r)
	t.Logf("graceful stop during the outage took %v", took)

	r = startRouter(t, s.path)
	if got := s.b.count(); got != 0 {
		t.Fatalf("target b received %d messages while its cluster was cut off", got)
	}
	s.proxy.Restore()
	s.b.waitCount(t, "target b (far) after the outage", n, 60*time.Second)
	waitSettled(t, r.Admin, n, 30*time.Second)
	s.a.stop()
	s.b.stop()

	aBySeq := bySeqHeader(t, "a", s.a.messages(), n)
	bGot := s.b.messages()
	if len(bGot) != n {
		t.Errorf("target b received %d messages, want %d, each once", len(bGot), n)
	}
	for i, d := range bGot {
		seq, _ := d.Headers["e2e-seq"].(int32)
		if int(seq) != i {
			t.Fatalf("target b: message %d of the stream has e2e-seq %d: not in publish order", i, seq)
		}
		if d.MessageId == "" || d.MessageId != aBySeq[seq].MessageId {
			t.Errorf("message e2e-seq %d: message id %q at b, %q at a; the id must be fixed once, at ingest", seq, d.MessageId, aBySeq[seq].MessageId)
		}
		if i%2 == 0 && d.MessageId != ids[i] {
			t.Errorf("message e2e-seq %d: message id %q, published as %q", seq, d.MessageId, ids[i])
		}
	}
	checkNothingDeadLettered(t, r.Admin, s.dlq, s.dlqQueue, "r")
}

// bySeqHeader indexes deliveries by their e2e-seq header, which must run over 0..n-1, once.
func bySeqHeader(t *testing.T, target string, got []amqp.Delivery, n int) map[int32]amqp.Delivery {
	t.Helper()
	out := map[int32]amqp.Delivery{}
	for _, d := range got {
		seq, ok := d.Headers["e2e-seq"].(int32)
		if _, dup := out[seq]; !ok || dup || seq < 0 || int(seq) >= n {
			t.Fatalf("target %s: unexpected or duplicated message (e2e-seq %#v, id %q)", target, d.Headers["e2e-seq"], d.MessageId)
		}
		out[seq] = d
	}
	if len(out) != n {
		t.Fatalf("target %s: %d messages, want %d", target, len(out), n)
	}
	return out
}

func checkNothingDeadLettered(t *testing.T, admin string, dlq *collector, queue, route string) {
	t.Helper()
	dlq.stop()
	if n := dlq.count() + queueLen(t, queue); n != 0 {
		t.Errorf("%d messages were dead-lettered; an outage must never dead-letter", n)
	}
	metricIs(t, scrape(t, admin), "router_events_dead_lettered_total", map[string]string{"route": route}, 0)
}

// TestShutdownDuringTargetOutage stops the router while a target's cluster is unreachable and
// an event waits for it. Nothing is in flight that a drain could finish, so the stop should be
// prompt; the event stays in the log for the next run.
func TestShutdownDuringTargetOutage(t *testing.T) {
	rabbit.SkipIfShort(t)
	s := newOutageSetup(t)
	r := s.startCut(t)
	msgs, _ := numbered("stop-outage", "outage.event", 1)
	mustPublish(t, s.srcX, msgs...)
	s.a.waitCount(t, "target a (near)", 1, 30*time.Second)
	// Wait until the far stream has met the outage: its position stays behind the log.
	waitFor(t, 10*time.Second, func() bool {
		return getStatus(t, r.Admin).Store.LastSeq == 1 && strings.Contains(r.Logs.String(), "target unreachable")
	}, func() string { return "the far stream never reported the outage" })

	took := stopTimed(t, r)
	if took > 5*time.Second {
		t.Errorf("graceful stop took %v with a target in outage and nothing in flight; want well under the 10s drain timeout "+
			"(router/stream.go: run calls recover, which blocks in WaitReady until the drain timeout cancels it, "+
			"before it reaches the check `stopping && s.outage`)", took)
	}
}
