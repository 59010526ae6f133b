package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// hostileCase is an event for the hostile guest (wasmhost/testdata/c/hostile.c): headers pick
// what it does; reason is what its dead letter's x-router-error must contain ("" for an
// event that passes).
type hostileCase struct {
	id      string
	headers amqp.Table
	reason  string
}

var hostileCases = []hostileCase{
	{"ok-00", amqp.Table{"op": "ok"}, ""},
	{"loop-01", amqp.Table{"op": "loop"}, "timeout after 50ms"},
	{"ok-02", amqp.Table{"op": "ok"}, ""},
	{"trap-03", amqp.Table{"op": "trap"}, "trap"},
	{"ok-04", amqp.Table{"op": "ok"}, ""},
	{"bomb-05", amqp.Table{"op": "bomb"}, "trap"}, // grows until max_memory refuses, then traps
	{"ok-06", amqp.Table{"op": "ok"}, ""},
	{"code7-07", amqp.Table{"op": "code", "code": "7"}, "unknown result code 7"},
	{"ok-08", amqp.Table{"op": "ok"}, ""},
	{"codeneg-09", amqp.Table{"op": "code", "code": "-1"}, "unknown result code -1"},
	{"ok-10", amqp.Table{"op": "ok"}, ""},
	{"retry-11", amqp.Table{"op": "code", "code": "2"}, "retry requested by module"},
	{"ok-12", amqp.Table{"op": "ok"}, ""},
}

// TestGuestHostile runs the hostile guest inside the router: events it loops on (past the
// 50ms timeout), traps on, exhausts max_memory on, answers with an unknown code or keeps asking
// to retry are tried twice (the route's retry block), then dead-lettered with the reason and
// x-router-attempts = 2; the other events flow on, another route sees everything, /readyz stays
// 200 and the router keeps serving afterwards.
func TestGuestHostile(t *testing.T) {
	rabbit.SkipIfShort(t)
	hostile := wasmRepoFile(t, "wasmhost/testdata/c/hostile.wasm")
	noop := wasmRepoFile(t, "wasmhost/testdata/c/noop.wasm")
	srcX, srcQ := sourceNames(t)
	outX, calmX, dlqX := rabbit.Unique("e2e.out"), rabbit.Unique("e2e.calm"), rabbit.Unique("e2e.dlq")
	out, calm, dlq := collect(t, targetQueue(t, outX)), collect(t, targetQueue(t, calmX)), collect(t, targetQueue(t, dlqX))
	cfg := clusterBlock("main", rabbit.URL()) + sourceBlock("in", "main", srcX, srcQ) +
		targetBlock("out", "main", outX) + targetBlock("calm", "main", calmX) + targetBlock("dlq", "main", dlqX) +
		wasmModule("hostile", hostile, nil, `timeout = "50ms"`, `max_memory = "4MiB"`) +
		wasmModule("calm", noop, nil) + `
route "h" {
  source      = "in"
  filters     = ["hostile"]
  targets     = ["out"]
  dead_letter = "dlq"
  retry {
    attempts    = 2
    backoff     = "10ms"
    max_backoff = "20ms"
  }
}
route "calm" {
  source  = "in"
  filters = ["calm"]
  targets = ["calm"]
}
`
	r := startRouter(t, writeConfig(t, t.TempDir(), cfg))
	ready := watchReady(t, r.Admin)

	var msgs []message
	var all, passed, failed []string
	for _, c := range hostileCases {
		msgs = append(msgs, message{key: "job.run", msg: amqp.Publishing{
			MessageId: c.id, DeliveryMode: amqp.Persistent, Headers: c.headers, Body: []byte(c.id),
		}})
		all = append(all, c.id)
		if c.reason == "" {
			passed = append(passed, c.id)
		} else {
			failed = append(failed, c.id)
		}
	}
	start := time.Now()
	mustPublish(t, srcX, msgs...)
	out.waitIDs(t, "target out", passed, 30*time.Second)
	dlq.waitIDs(t, "dead_letter dlq", failed, 30*time.Second)
	calm.waitIDs(t, "target calm", all, 30*time.Second)
	waitSettled(t, r.Admin, uint64(len(all)), 30*time.Second)
	t.Logf("%d events (%d hostile) settled in %v", len(all), len(failed), time.Since(start).Round(time.Millisecond))

	checkHostileDeadLetters(t, dlq.messages())
	checkHostileMetrics(t, scrape(t, r.Admin), len(passed), len(failed))

	// The router still serves: a second batch, hostile events included, flows as the first.
	more, moreIDs := numbered("after", "job.run", 50)
	for i := range more {
		more[i].msg.Headers["op"] = "ok"
	}
	more = append(more, message{key: "job.run", msg: amqp.Publishing{MessageId: "loop-again", Headers: amqp.Table{"op": "loop"}}})
	mustPublish(t, srcX, more...)
	out.waitIDs(t, "target out, second batch", moreIDs, 30*time.Second)
	dlq.waitIDs(t, "dead_letter dlq, second batch", []string{"loop-again"}, 30*time.Second)
	calm.waitIDs(t, "target calm, second batch", append(moreIDs, "loop-again"), 30*time.Second)
	waitSettled(t, r.Admin, uint64(len(all)+len(more)), 30*time.Second)
	expectCode(t, r.Admin, "/healthz", http.StatusOK)
	checkExactly(t, "target out", out, append(passed, moreIDs...))
	checkExactly(t, "target calm", calm, append(append(all, moreIDs...), "loop-again"))
	checkExactly(t, "dead_letter dlq", dlq, append(failed, "loop-again"))
	polls, bad := ready.end()
	if len(bad) > 0 || polls == 0 {
		t.Errorf("/readyz polled %d times, %d answers not 200: %s", polls, len(bad), sample(bad))
	}
	if strings.Contains(r.Logs.String(), "panic") {
		t.Errorf("the router log mentions a panic:\n%s", r.Logs.Tail(40))
	}
}

func checkHostileDeadLetters(t *testing.T, got []amqp.Delivery) {
	t.Helper()
	dead := deliveriesByID(t, "dlq", got)
	for _, c := range hostileCases {
		if c.reason == "" {
			if _, ok := dead[c.id]; ok {
				t.Errorf("dlq: %s was dead-lettered", c.id)
			}
			continue
		}
		d, ok := dead[c.id]
		if !ok {
			continue // waitIDs reported it
		}
		reason, _ := d.Headers["x-router-error"].(string)
		if !strings.HasPrefix(reason, "module hostile: ") || !strings.Contains(reason, c.reason) {
			t.Errorf("dlq: %s x-router-error %q, want the module and %q", c.id, reason, c.reason)
		}
		if strings.Contains(reason, "\n") || len(reason) > 300 {
			t.Errorf("dlq: %s x-router-error is not one short line: %q", c.id, reason)
		}
		headerIs(t, "dlq", d, "x-router-attempts", int32(2))
		headerIs(t, "dlq", d, "x-router-route", "h")
		headerIs(t, "dlq", d, "op", c.headers["op"])
		if string(d.Body) != c.id || d.RoutingKey != "job.run" {
			t.Errorf("dlq: %s arrived as %s %q, want the event as published", c.id, d.RoutingKey, d.Body)
		}
	}
}

// checkHostileMetrics: every hostile event made two calls; traps and timeouts replaced the
// instance each time.
func checkHostileMetrics(t *testing.T, m string, passed, failed int) {
	t.Helper()
	calls := map[string]float64{"continue": float64(passed), "drop": 0, "dead_letter": 0,
		"retry": 2, "trap": 4, "timeout": 2, "error": 4}
	for result, want := range calls {
		metricIs(t, m, "router_wasm_calls_total", map[string]string{"module": "hostile", "result": result}, want)
	}
	for reason, want := range map[string]float64{"timeout": 2, "trap": 4} {
		metricIs(t, m, "router_wasm_instances_created_total", map[string]string{"module": "hostile", "reason": reason}, want)
	}
	metricIs(t, m, "router_events_dead_lettered_total", map[string]string{"route": "h"}, float64(failed))
	metricIs(t, m, "router_events_delivered_total", map[string]string{"route": "h", "target": "out"}, float64(passed))
	metricIs(t, m, "router_events_delivered_total", map[string]string{"route": "calm", "target": "calm"}, float64(passed+failed))
	if v, ok := metricValue(m, "router_events_dropped_total", map[string]string{"route": "h"}); !ok || v != 0 {
		t.Errorf("router_events_dropped_total{route=h} = %v (exported %v): failures are not drops", v, ok)
	}
	if s, ok := metricValue(m, "router_wasm_call_duration_seconds_sum", map[string]string{"module": "hostile"}); !ok || s < 0.1 {
		t.Errorf("router_wasm_call_duration_seconds_sum{module=hostile} = %v (exported %v); want at least the two 50ms timeouts", s, ok)
	}
}
