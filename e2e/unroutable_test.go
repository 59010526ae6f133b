package e2e

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// TestUnroutableDrop: a target with unroutable = "drop" and no queue bound drops what the
// broker returns, counted, without retries or dead letters; the route's other target delivers.
func TestUnroutableDrop(t *testing.T) {
	rabbit.SkipIfShort(t)
	dir := t.TempDir()
	srcX, srcQ := sourceNames(t)
	noneX := rabbit.Unique("e2e.noqueue")
	rabbit.DeleteExchangeAtCleanup(t, noneX)
	outX := rabbit.Unique("e2e.out")
	out := collect(t, targetQueue(t, outX))
	dlqX := rabbit.Unique("e2e.dlq")
	dlq := collect(t, targetQueue(t, dlqX))
	path := writeConfig(t, dir, clusterBlock("main", rabbit.URL())+`source "in" {
  cluster  = "main"
  exchange = `+hclString(srcX)+`
  queue    = `+hclString(srcQ)+`
}
target "none" {
  cluster    = "main"
  exchange   = `+hclString(noneX)+`
  unroutable = "drop"
}
`+targetBlock("out", "main", outX)+targetBlock("dlq", "main", dlqX)+`
route "all" {
  source      = "in"
  targets     = ["none", "out"]
  dead_letter = "dlq"
}
`)
	r := startRouter(t, path)
	mustPublish(t, srcX, message{"a", amqp.Publishing{MessageId: "a", Body: []byte("{}")}}, message{"b", amqp.Publishing{MessageId: "b", Body: []byte("{}")}})
	out.waitIDs(t, "target out", []string{"a", "b"}, 30*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for {
		m := scrape(t, r.Admin)
		dropped, _ := metricValue(m, "router_events_unroutable_dropped_total", map[string]string{"route": "all", "target": "none"})
		if dropped == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("router_events_unroutable_dropped_total = %v, want 2", dropped)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := len(dlq.messages()); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
}
