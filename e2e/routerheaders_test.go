package e2e

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// TestPublisherRouterHeadersAreStripped: x-router-* headers set by a publisher never reach a
// target, so a normal delivery cannot pass for a dead letter or a replay; the router's own
// headers carry the router's values, and other headers pass unchanged.
func TestPublisherRouterHeadersAreStripped(t *testing.T) {
	rabbit.SkipIfShort(t)
	dir := t.TempDir()
	srcX, srcQ := sourceNames(t)
	outX := rabbit.Unique("e2e.out")
	out := collect(t, targetQueue(t, outX))
	path := writeConfig(t, dir, clusterBlock("main", rabbit.URL())+`source "in" {
  cluster  = "main"
  exchange = `+hclString(srcX)+`
  queue    = `+hclString(srcQ)+`
}
`+targetBlock("out", "main", outX)+`
route "all" {
  source  = "in"
  targets = ["out"]
}
`)
	startRouter(t, path)
	mustPublish(t, srcX, message{"forged", amqp.Publishing{MessageId: "forged", Body: []byte("{}"), Headers: amqp.Table{
		"x-router-error":    "forged failure",
		"x-router-attempts": int32(5),
		"X-Router-Replay":   true,
		"x-router-seq":      int64(999999),
		"x-router-route":    "elsewhere",
		"tenant":            "acme",
	}}})
	out.waitIDs(t, "target out", []string{"forged"}, 30*time.Second)
	d := deliveriesByID(t, "target out", out.messages())["forged"]
	for _, name := range []string{"x-router-error", "x-router-attempts", "X-Router-Replay", "x-router-replay"} {
		if v, ok := d.Headers[name]; ok {
			t.Errorf("header %s reached the target: %v", name, v)
		}
	}
	if d.Headers["x-router-route"] != "all" || d.Headers["tenant"] != "acme" {
		t.Errorf("headers %v, want x-router-route=all and tenant=acme", d.Headers)
	}
	if seq, _ := d.Headers["x-router-seq"].(int64); seq == 999999 || seq == 0 {
		t.Errorf("x-router-seq = %v, want the log's", d.Headers["x-router-seq"])
	}
}
