package e2e

import (
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// TestWasmPipeline runs a route through a Go filter (threshold), a C filter (keyfilter) and a
// Go transform (redact): only events passing both filters arrive, redacted, with x-redacted;
// drops are counted, a body the threshold cannot read is dead-lettered, and the guest metrics
// carry the module and result labels.
func TestWasmPipeline(t *testing.T) {
	rabbit.SkipIfShort(t)
	threshold, redact := wasmGoGuest(t, "threshold"), wasmGoGuest(t, "redact")
	keyfilter := wasmRepoFile(t, "examples/wasm/keyfilter/keyfilter.wasm")
	srcX, srcQ := sourceNames(t)
	outX, dlqX := rabbit.Unique("e2e.out"), rabbit.Unique("e2e.dlq")
	out, dlq := collect(t, targetQueue(t, outX)), collect(t, targetQueue(t, dlqX))
	cfg := clusterBlock("main", rabbit.URL()) + sourceBlock("in", "main", srcX, srcQ) +
		targetBlock("out", "main", outX) + targetBlock("dlq", "main", dlqX) +
		wasmModule("min_amount", threshold, map[string]string{"field": "amount", "min": "100"}) +
		wasmModule("hide_email", redact, map[string]string{"fields": "customer.email"}) +
		wasmModule("eu_only", keyfilter, map[string]string{"header": "region", "value": "eu"}) + `
route "p" {
  source      = "in"
  match       = ["order.#"]
  filters     = ["min_amount", "eu_only"]
  transforms  = ["hide_email"]
  targets     = ["out"]
  dead_letter = "dlq"
}
`
	r := startRouter(t, writeConfig(t, wasmDir(t), cfg))

	order := func(id, region, body string) message {
		m := message{key: "order.created", msg: amqp.Publishing{
			MessageId: id, ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: []byte(body),
		}}
		if region != "" {
			m.msg.Headers = amqp.Table{"region": region}
		}
		return m
	}
	mustPublish(t, srcX,
		order("big-eu", "eu", `{"amount":500,"customer":{"email":"ann@example.com","name":"Ann"}}`),
		order("small-eu", "eu", `{"amount":99.5,"customer":{"email":"bob@example.com"}}`),
		order("big-us", "us", `{"amount":500,"customer":{"email":"cy@example.com"}}`),
		order("big-noregion", "", `{"amount":700}`),
		order("edge-eu", "eu", `{"amount":100,"customer":{"name":"Dee"}}`),
		order("noamount-eu", "eu", `{"customer":{"email":"eve@example.com"}}`),
	)
	passed := []string{"big-eu", "edge-eu"}
	out.waitIDs(t, "target out", passed, 30*time.Second)
	dlq.waitIDs(t, "dead_letter dlq", []string{"noamount-eu"}, 30*time.Second)
	waitSettled(t, r.Admin, 6, 30*time.Second)

	got := out.messages()
	if len(got) != len(passed) || got[0].MessageId != "big-eu" || got[1].MessageId != "edge-eu" {
		ids := make([]string, len(got))
		for i, d := range got {
			ids[i] = d.MessageId
		}
		t.Fatalf("target out got %v, want exactly %v in log order", ids, passed)
	}
	big, edge := got[0], got[1]
	sameJSON(t, "big-eu", big.Body, `{"amount":500,"customer":{"email":"***","name":"Ann"}}`)
	headerIs(t, "big-eu", big, "x-redacted", "1")
	sameJSON(t, "edge-eu", edge.Body, `{"amount":100,"customer":{"name":"Dee"}}`)
	headerIs(t, "edge-eu", edge, "x-redacted", "0")
	for _, d := range got {
		headerIs(t, "delivered", d, "region", "eu")
		headerIs(t, "delivered", d, "x-router-route", "p")
		headerIs(t, "delivered", d, "x-router-source", "in")
		if seq, ok := d.Headers["x-router-seq"].(int64); !ok || seq <= 0 {
			t.Errorf("%s: x-router-seq %#v, want a positive int64", d.MessageId, d.Headers["x-router-seq"])
		}
		if d.RoutingKey != "order.created" || d.ContentType != "application/json" {
			t.Errorf("%s: routing key %q, content type %q; want them kept", d.MessageId, d.RoutingKey, d.ContentType)
		}
	}

	dead := dlq.messages()
	if len(dead) != 1 {
		t.Fatalf("dlq got %d messages, want 1 (noamount-eu)", len(dead))
	}
	reason, _ := dead[0].Headers["x-router-error"].(string)
	if !strings.Contains(reason, "min_amount") || !strings.Contains(reason, `"amount" is missing`) {
		t.Errorf("dead letter x-router-error %q: want the module and the guest's reason", reason)
	}
	headerIs(t, "dead letter", dead[0], "x-router-attempts", int32(1))
	sameJSON(t, "dead letter", dead[0].Body, `{"customer":{"email":"eve@example.com"}}`)

	checkPipelineMetrics(t, scrape(t, r.Admin))
}

// checkPipelineMetrics checks the counts of TestWasmPipeline's six events: each module is called
// once per event that reaches it (the route has one target).
func checkPipelineMetrics(t *testing.T, m string) {
	t.Helper()
	route := map[string]string{"route": "p"}
	metricIs(t, m, "router_events_dropped_total", route, 3)
	metricIs(t, m, "router_events_dead_lettered_total", route, 1)
	metricIs(t, m, "router_events_delivered_total", map[string]string{"route": "p", "target": "out"}, 2)
	calls := map[string]map[string]float64{
		"min_amount": {"continue": 4, "drop": 1, "dead_letter": 1},
		"eu_only":    {"continue": 2, "drop": 2},
		"hide_email": {"continue": 2},
	}
	for module, want := range calls {
		total := 0.0
		for _, result := range []string{"continue", "drop", "retry", "dead_letter", "trap", "timeout", "error"} {
			metricIs(t, m, "router_wasm_calls_total", map[string]string{"module": module, "result": result}, want[result])
			total += want[result]
		}
		labels := map[string]string{"module": module}
		metricIs(t, m, "router_wasm_call_duration_seconds_count", labels, total)
		if v, ok := metricValue(m, "router_wasm_call_duration_seconds_sum", labels); !ok || v <= 0 {
			t.Errorf("router_wasm_call_duration_seconds_sum%v = %v (exported: %v); want the time spent", labels, v, ok)
		}
		inf := map[string]string{"module": module, "le": "+Inf"}
		metricIs(t, m, "router_wasm_call_duration_seconds_bucket", inf, total)
	}
}
