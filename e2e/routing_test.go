package e2e

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// routingCases: each routing key and the (route, target) deliveries RabbitMQ's topic semantics
// give it under the routes of TestRouting. audit is shared by order_one and vip: an event both
// match reaches it twice, once per route.
var routingCases = []struct {
	key        string
	deliveries []string // "route>target"
}{
	{"order.created", []string{"order_one>orders", "order_one>audit", "order_all>archive"}},
	{"order.created.vip", []string{"order_all>archive", "vip>vip", "vip>audit"}},
	{"order", []string{"order_all>archive"}},
	{"order.vip", []string{"order_one>orders", "order_one>audit", "order_all>archive", "vip>vip", "vip>audit"}},
	{"payment.settled", []string{"payment>payments"}},
	{"payment.settled.vip", []string{"vip>vip", "vip>audit"}},
	{"vip", []string{"vip>vip", "vip>audit"}},
	{"shipment.sent", nil},
	{"payment", nil},
	{"orders.created", nil},
	{"a.vip.b", nil},
	{"order#.x", nil}, // a word that merely contains # is literal
}

func TestRouting(t *testing.T) {
	rabbit.SkipIfShort(t)
	dir := t.TempDir()
	srcX, srcQ := sourceNames(t)
	targets := []string{"orders", "archive", "vip", "payments", "audit"}
	queues := map[string]string{}
	cfg := clusterBlock("main", rabbit.URL()) + sourceBlock("in", "main", srcX, srcQ)
	for _, name := range targets {
		x := rabbit.Unique("e2e." + name)
		queues[name] = targetQueue(t, x)
		cfg += targetBlock(name, "main", x)
	}
	cfg += `
route "order_one" {
  source  = "in"
  match   = ["order.*"]
  targets = ["orders", "audit"]
}
route "order_all" {
  source  = "in"
  match   = ["order.#"]
  targets = ["archive"]
}
route "vip" {
  source  = "in"
  match   = ["#.vip"]
  targets = ["vip", "audit"]
}
route "payment" {
  source  = "in"
  match   = ["payment.*"]
  targets = ["payments"]
}
`
	collectors := map[string]*collector{}
	for _, name := range targets {
		collectors[name] = collect(t, queues[name])
	}
	r := startRouter(t, writeConfig(t, dir, cfg))

	// Three events per key, interleaved, each with its own message id.
	const perKey = 3
	var msgs []message
	want := map[string][]string{}           // target -> "id route" expected, one entry per delivery
	perPair := map[string]float64{}         // "route>target" -> deliveries
	keyOf := map[string]string{}            // id -> routing key
	wantIDs := map[string]map[string]bool{} // target -> ids
	unmatched := 0
	for n := range perKey {
		for _, c := range routingCases {
			id := fmt.Sprintf("route-%s-%d", c.key, n)
			keyOf[id] = c.key
			msgs = append(msgs, message{key: c.key, msg: amqp.Publishing{MessageId: id, Body: []byte(id)}})
			if len(c.deliveries) == 0 {
				unmatched++
			}
			for _, d := range c.deliveries {
				route, target, _ := strings.Cut(d, ">")
				want[target] = append(want[target], id+" "+route)
				perPair[d]++
				if wantIDs[target] == nil {
					wantIDs[target] = map[string]bool{}
				}
				wantIDs[target][id] = true
			}
		}
	}
	mustPublish(t, srcX, msgs...)

	for _, name := range targets {
		collectors[name].waitIDs(t, "target "+name, keys(wantIDs[name]), 30*time.Second)
	}
	waitSettled(t, r.Admin, uint64(len(msgs)), 30*time.Second)
	for _, name := range targets {
		c := collectors[name]
		c.stop()
		if n := queueLen(t, queues[name]); n != 0 {
			t.Errorf("target %s: %d messages beyond the expected ones still in its queue", name, n)
		}
		checkRouted(t, name, c.messages(), want[name], keyOf)
	}

	m := scrape(t, r.Admin)
	in := map[string]string{"source": "in"}
	metricIs(t, m, "router_events_consumed_total", in, float64(len(msgs)))
	metricIs(t, m, "router_events_stored_total", in, float64(len(msgs)))
	metricIs(t, m, "router_events_unmatched_total", in, float64(unmatched))
	for pair, n := range perPair {
		route, target, _ := strings.Cut(pair, ">")
		metricIs(t, m, "router_events_delivered_total", map[string]string{"route": route, "target": target}, n)
	}
}

// checkRouted compares what target received (as "id route" pairs, duplicates included) with
// want, and checks each message's routing key and router headers, and that every route's
// messages came in log order.
func checkRouted(t *testing.T, target string, got []amqp.Delivery, want []string, keyOf map[string]string) {
	t.Helper()
	var pairs []string
	lastSeq := map[string]int64{}
	for _, d := range got {
		route, _ := d.Headers["x-router-route"].(string)
		pairs = append(pairs, d.MessageId+" "+route)
		if d.RoutingKey != keyOf[d.MessageId] {
			t.Errorf("target %s: message %s arrived with routing key %q, published with %q", target, d.MessageId, d.RoutingKey, keyOf[d.MessageId])
		}
		if src, _ := d.Headers["x-router-source"].(string); src != "in" {
			t.Errorf("target %s: message %s has x-router-source %#v, want \"in\"", target, d.MessageId, d.Headers["x-router-source"])
		}
		seq, ok := d.Headers["x-router-seq"].(int64)
		if !ok || seq <= 0 {
			t.Errorf("target %s: message %s has x-router-seq %#v (%T), want a positive int64", target, d.MessageId, d.Headers["x-router-seq"], d.Headers["x-router-seq"])
		}
		if seq <= lastSeq[route] {
			t.Errorf("target %s: route %s delivered seq %d after seq %d: not in log order", target, route, seq, lastSeq[route])
		}
		lastSeq[route] = seq
	}
	missing, extra := diffMultiset(want, pairs)
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("target %s: deliveries (message id, x-router-route) differ from the expected:\n  missing: %s\n  unexpected or duplicated: %s",
			target, sample(missing), sample(extra))
	}
}

// diffMultiset returns the entries of want missing from got, and those of got beyond want.
func diffMultiset(want, got []string) (missing, extra []string) {
	count := map[string]int{}
	for _, w := range want {
		count[w]++
	}
	for _, g := range got {
		count[g]--
	}
	for k, n := range count {
		for ; n > 0; n-- {
			missing = append(missing, k)
		}
		for ; n < 0; n++ {
			extra = append(extra, k)
		}
	}
	return missing, extra
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
