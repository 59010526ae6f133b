package e2e

import (
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/router"
)

// splitterRoute is a route whose handler (the splitter guest, module split_items) emits each
// element of "items" to target items; its own targets are ownTargets (HCL list text).
func splitterRoute(splitter, ownTargets string) string {
	return wasmModule("split_items", splitter, map[string]string{"target": "items", "field": "items"}) + `
route "split" {
  source      = "in"
  match       = ["order.#"]
  handler     = "split_items"
  targets     = ` + ownTargets + `
  dead_letter = "dlq"
}
`
}

// splitParent is an order event with message id id; body is its JSON.
func splitParent(id, key, body string) message {
	return message{key: key, msg: amqp.Publishing{
		MessageId: id, ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: []byte(body),
	}}
}

// TestSplitterHandler: one event with N items yields N messages on target items (routing key
// <key>.item, bodies the elements, x-router-seq the parent's, message ids derived from the
// parent's), while the route's own target gets the parent event itself.
func TestSplitterHandler(t *testing.T) {
	rabbit.SkipIfShort(t)
	splitter := wasmGoGuest(t, "splitter")
	srcX, srcQ := sourceNames(t)
	ordersX, itemsX, dlqX := rabbit.Unique("e2e.orders"), rabbit.Unique("e2e.items"), rabbit.Unique("e2e.dlq")
	orders, items, dlq := collect(t, targetQueue(t, ordersX)), collect(t, targetQueue(t, itemsX)), collect(t, targetQueue(t, dlqX))
	cfg := clusterBlock("main", rabbit.URL()) + sourceBlock("in", "main", srcX, srcQ) +
		targetBlock("orders", "main", ordersX) + targetBlock("items", "main", itemsX) +
		targetBlock("dlq", "main", dlqX) + splitterRoute(splitter, `["orders"]`)
	r := startRouter(t, writeConfig(t, wasmDir(t), cfg))

	parents := []message{
		splitParent("split-1", "order.created", `{"id":1,"items":[{"sku":"A1","qty":2},{"sku":"B2"},"gift"]}`),
		splitParent("split-2", "order.eu.created", `{"id":2,"items":[{"sku":"C3"}]}`),
		splitParent("split-3", "order.created", `{"id":3,"items":[]}`),
		splitParent("split-4", "order.created", `{"id":4}`),
	}
	mustPublish(t, srcX, parents...)
	type emitted struct{ parent, key, body string }
	want := []emitted{
		{"split-1", "order.created.item", `{"sku":"A1","qty":2}`},
		{"split-1", "order.created.item", `{"sku":"B2"}`},
		{"split-1", "order.created.item", `"gift"`},
		{"split-2", "order.eu.created.item", `{"sku":"C3"}`},
	}
	orders.waitIDs(t, "target orders", []string{"split-1", "split-2", "split-3"}, 30*time.Second)
	items.waitCount(t, "target items", len(want), 30*time.Second)
	dlq.waitIDs(t, "dead_letter dlq", []string{"split-4"}, 30*time.Second)
	waitSettled(t, r.Admin, uint64(len(parents)), 30*time.Second)

	// The route's own target gets each parent as published (not split-4, dead-lettered).
	seqOf := map[string]int64{}
	got := orders.messages()
	if len(got) != 3 {
		t.Errorf("target orders got %d messages, want the 3 parents", len(got))
	}
	for _, d := range got {
		var p message
		for _, m := range parents {
			if m.msg.MessageId == d.MessageId {
				p = m
			}
		}
		if d.RoutingKey != p.key || string(d.Body) != string(p.msg.Body) {
			t.Errorf("orders: %s arrived as %s %s, want %s %s", d.MessageId, d.RoutingKey, d.Body, p.key, p.msg.Body)
		}
		seqOf[d.MessageId], _ = d.Headers["x-router-seq"].(int64)
	}

	// Target items gets exactly the elements, in order, and never a parent.
	got = items.messages()
	if len(got) != len(want) {
		t.Fatalf("target items got %d messages, want %d", len(got), len(want))
	}
	index := map[string]int{}
	ids := map[string]bool{}
	for i, d := range got {
		w := want[i]
		id := router.EmittedMessageID(w.parent, "split", index[w.parent])
		index[w.parent]++
		if d.MessageId != id || d.RoutingKey != w.key || string(d.Body) != w.body {
			t.Errorf("items[%d]: id %s key %s body %s; want id %s key %s body %s",
				i, d.MessageId, d.RoutingKey, d.Body, id, w.key, w.body)
		}
		ids[d.MessageId] = true
		headerIs(t, "emitted", d, "x-router-seq", seqOf[w.parent])
		headerIs(t, "emitted", d, "x-router-route", "split")
		headerIs(t, "emitted", d, "x-router-source", "in")
		if _, replay := d.Headers["x-router-replay"]; replay {
			t.Errorf("emitted %s carries x-router-replay on a live delivery", d.MessageId)
		}
		if d.DeliveryMode != amqp.Persistent || d.ContentType != "application/json" {
			t.Errorf("emitted %s: delivery mode %d, content type %q; want persistent, the parent's type",
				d.MessageId, d.DeliveryMode, d.ContentType)
		}
	}
	if len(ids) != len(want) || seqOf["split-1"] == 0 || seqOf["split-1"] == seqOf["split-2"] {
		t.Errorf("emitted ids %v, parent seqs %v: want distinct ids and seqs", ids, seqOf)
	}

	dead := dlq.messages()
	if len(dead) != 1 {
		t.Fatalf("dlq got %d messages, want 1 (split-4)", len(dead))
	}
	if reason, _ := dead[0].Headers["x-router-error"].(string); !strings.Contains(reason, "split_items") || !strings.Contains(reason, "not an array") {
		t.Errorf("dead letter x-router-error %q: want the module and the guest's reason", reason)
	}
	m := scrape(t, r.Admin)
	metricIs(t, m, "router_events_delivered_total", map[string]string{"route": "split", "target": "items"}, float64(len(want)))
	metricIs(t, m, "router_events_delivered_total", map[string]string{"route": "split", "target": "orders"}, 3)
	metricIs(t, m, "router_events_dead_lettered_total", map[string]string{"route": "split"}, 1)
	calls, _ := metricValue(m, "router_wasm_call_duration_seconds_count", map[string]string{"module": "split_items"})
	t.Logf("handler calls for %d events: %v", len(parents), calls)
}
