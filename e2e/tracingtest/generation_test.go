package tracingtest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/cmd/router/app"
	"github.com/wasmrouter/wasmrouter/internal/testutil/otlpreceiver"
)

// Process spans carry the generation of the configuration that decided: a reload moves the
// next events' spans to the new one.
func TestProcessSpansCarryTheGeneration(t *testing.T) {
	w := newWorld(t)
	rcv := otlpreceiver.Start(t)
	cfg := w.config(tracingBlock(rcv.URL))
	r := w.start(cfg)
	eu := amqp.Table{"region": "eu"}
	w.publish(amqp.Publishing{MessageId: "gen1", Headers: eu, Body: []byte("{}")})
	w.take(1)

	changed := strings.Replace(cfg, `filters = ["eu_only"]`, "match   = [\"order.*\"]\n  filters = [\"eu_only\"]", 1)
	if err := os.WriteFile(filepath.Join(w.dir, "router.hcl"), []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	if ans := r.Reloader.Do(context.Background(), app.ReloadRequest{}, "test"); !ans.Applied || ans.Generation != 2 {
		t.Fatalf("reload: %+v", ans)
	}
	w.publish(amqp.Publishing{MessageId: "gen2", Headers: eu, Body: []byte("{}")})
	w.take(1)

	spans := rcv.WaitFor(t, 30*time.Second, "two process spans", func(s []otlpreceiver.Span) bool {
		return len(otlpreceiver.Find(s, "process orders")) == 2
	})
	want := map[string]int64{"gen1": 1, "gen2": 2}
	for _, recv := range otlpreceiver.Find(spans, "receive "+w.queue) {
		id, _ := recv.Attrs["messaging.message.id"].(string)
		proc := child(t, spans, recv, "process orders")
		if got := proc.Attrs["wasmrouter.generation"]; got != want[id] {
			t.Errorf("%s: process span's wasmrouter.generation = %v (%T), want %d", id, got, got, want[id])
		}
	}
}
