package e2e

import (
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/inproc"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// refusalSetup is a router whose route "r" sends every event to target good and to target
// bad, retries twice with tiny backoffs, and dead-letters to dlq. bindBad says whether the
// test binds a queue to bad's exchange.
type refusalSetup struct {
	router         *inproc.Router
	srcX, badX     string
	good, bad, dlq *collector
	badQ           string
}

func newRefusalSetup(t *testing.T, bindBad bool) *refusalSetup {
	t.Helper()
	s := &refusalSetup{}
	var srcQ string
	s.srcX, srcQ = sourceNames(t)
	goodX, dlqX := rabbit.Unique("e2e.good"), rabbit.Unique("e2e.dlq")
	s.badX = rabbit.Unique("e2e.bad")
	s.good, s.dlq = collect(t, targetQueue(t, goodX)), collect(t, targetQueue(t, dlqX))
	if bindBad {
		s.badQ = targetQueue(t, s.badX)
		s.bad = collect(t, s.badQ)
	} else {
		rabbit.DeleteExchangeAtCleanup(t, s.badX) // the router declares it
	}
	cfg := clusterBlock("main", rabbit.URL()) + sourceBlock("in", "main", s.srcX, srcQ) +
		targetBlock("good", "main", goodX) + targetBlock("bad", "main", s.badX) + targetBlock("dlq", "main", dlqX) + `
route "r" {
  source      = "in"
  targets     = ["good", "bad"]
  dead_letter = "dlq"
  retry {
    attempts    = 2
    backoff     = "10ms"
    max_backoff = "20ms"
  }
}
`
	s.router = startRouter(t, writeConfig(t, t.TempDir(), cfg))
	return s
}

// TestTargetRefusalNoRoute: target bad's exchange has nothing bound, so the broker returns
// every message (mandatory): each event is tried twice, then dead-lettered with the reason,
// while target good gets everything.
func TestTargetRefusalNoRoute(t *testing.T) {
	rabbit.SkipIfShort(t)
	s := newRefusalSetup(t, false)
	msgs, ids := numbered("noroute", "refused.event", 20)
	mustPublish(t, s.srcX, msgs...)

	s.good.waitIDs(t, "target good", ids, 30*time.Second)
	s.dlq.waitIDs(t, "dead-letter target", ids, 30*time.Second)
	waitSettled(t, s.router.Admin, uint64(len(ids)), 30*time.Second)
	checkDeadLetters(t, s.dlq, ids, "NO_ROUTE")
	checkExactly(t, "target good", s.good, ids)

	m := scrape(t, s.router.Admin)
	metricIs(t, m, "router_events_dead_lettered_total", map[string]string{"route": "r"}, float64(len(ids)))
	metricIs(t, m, "router_events_delivered_total", map[string]string{"route": "r", "target": "good"}, float64(len(ids)))
	metricIs(t, m, "router_delivery_retries_total", map[string]string{"route": "r", "target": "bad"}, float64(len(ids)))
}

// TestTargetExchangeDeleted deletes target bad's exchange while the router runs, after the
// router declared it and delivered to it: the broker refuses the publishes (404), so the
// events are retried, then dead-lettered; target good is unaffected.
func TestTargetExchangeDeleted(t *testing.T) {
	rabbit.SkipIfShort(t)
	s := newRefusalSetup(t, true)
	mustPublish(t, s.srcX, message{key: "refused.event", msg: amqp.Publishing{MessageId: "before-delete"}})
	s.bad.waitIDs(t, "target bad before its exchange is deleted", []string{"before-delete"}, 30*time.Second)
	withChannel(t, func(ch *amqp.Channel) error { return ch.ExchangeDelete(s.badX, false, false) })

	msgs, ids := numbered("deleted", "refused.event", 10)
	mustPublish(t, s.srcX, msgs...)
	s.good.waitIDs(t, "target good", append(ids, "before-delete"), 30*time.Second)
	s.dlq.waitIDs(t, "dead-letter target", ids, 30*time.Second)
	waitSettled(t, s.router.Admin, uint64(len(ids)+1), 30*time.Second)
	checkDeadLetters(t, s.dlq, ids, "404")
	checkExactly(t, "target good", s.good, append(ids, "before-delete"))
	checkExactly(t, "target bad", s.bad, []string{"before-delete"})
	metricIs(t, scrape(t, s.router.Admin), "router_events_dead_lettered_total", map[string]string{"route": "r"}, float64(len(ids)))
}

// checkDeadLetters stops the dead-letter collector and checks it holds each id once, with the
// reason and the tries made.
func checkDeadLetters(t *testing.T, dlq *collector, ids []string, reason string) {
	t.Helper()
	checkExactly(t, "dead-letter target", dlq, ids)
	for _, d := range dlq.messages() {
		if msg, _ := d.Headers["x-router-error"].(string); !strings.Contains(msg, reason) {
			t.Errorf("dead letter %s: x-router-error = %#v, want a string containing %q", d.MessageId, d.Headers["x-router-error"], reason)
		}
		if n, ok := d.Headers["x-router-attempts"].(int32); !ok || n != 2 {
			t.Errorf("dead letter %s: x-router-attempts = %#v (%T), want int32 2", d.MessageId, d.Headers["x-router-attempts"], d.Headers["x-router-attempts"])
		}
		checkRouterHeaders(t, "dead-letter", d, "r")
		if _, ok := d.Headers["e2e-seq"].(int32); !ok {
			t.Errorf("dead letter %s lost the event's own headers: %v", d.MessageId, d.Headers)
		}
	}
}

// checkExactly stops c and checks that it received each id exactly once, and nothing else;
// call it once the router has settled.
func checkExactly(t *testing.T, what string, c *collector, ids []string) {
	t.Helper()
	c.stop()
	var got []string
	for _, d := range c.messages() {
		got = append(got, d.MessageId)
	}
	missing, extra := diffMultiset(ids, got)
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("%s: %d missing (%s), %d unexpected or duplicated (%s)", what, len(missing), sample(missing), len(extra), sample(extra))
	}
	if n := queueLen(t, c.queue); n != 0 {
		t.Errorf("%s: %d more messages in the queue", what, n)
	}
}
