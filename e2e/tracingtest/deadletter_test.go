package tracingtest

import (
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/testutil/otlpreceiver"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// A module that dead-letters an event: its module and process spans have error status and the
// reason, and the copy on the dead_letter target names a send span with error status and the
// reason, in the publisher's trace.
func TestDeadLetterSpansCarryTheReason(t *testing.T) {
	w := newWorld(t)
	dlq := rabbit.Unique("tr.dlq")
	if err := w.ch.ExchangeDeclare(dlq, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	rabbit.DeleteExchangeAtCleanup(t, dlq)
	dlqQueue := rabbit.DeclareQueueBound(t, w.ch, dlq, "#")
	rcv := otlpreceiver.Start(t)
	// The conformance guest of the host's tests does what the message's headers say: here,
	// fail with a reason and result 3 (dead-letter now).
	w.start(fmt.Sprintf(`
store { path = "data/router.db" }
cluster "main" { url = %q }
source "in" {
  cluster  = "main"
  exchange = %q
  queue    = %q
}
target "out" {
  cluster  = "main"
  exchange = %q
}
target "dlq" {
  cluster  = "main"
  exchange = %q
}
module "checker" { path = %q }
route "orders" {
  source      = "in"
  filters     = ["checker"]
  targets     = ["out"]
  dead_letter = "dlq"
}
%s`, rabbit.URL(), w.source, w.queue, w.target, dlq, repoFile(t, "wasmhost/testdata/c/conformance.wasm"), tracingBlock(rcv.URL)))

	w.publish(amqp.Publishing{
		MessageId: "bad-1",
		Headers:   amqp.Table{"traceparent": traceparent, "op": "error", "reason": "amount missing", "code": "3"},
		Body:      []byte(`{}`),
	})
	got := rabbit.Collect(t, w.ch, dlqQueue, 1, 30*time.Second)
	if len(got) != 1 {
		t.Fatal("no dead letter arrived")
	}
	d := got[0]
	if reason, _ := d.Headers[event.HeaderError].(string); reason != "module checker: amount missing" {
		t.Fatalf("dead letter's reason %q", reason)
	}
	traceID, parentID := parseTraceparent(t, d)
	if traceID != publisherTrace {
		t.Fatalf("dead letter in trace %s, want the publisher's", traceID)
	}
	spans := rcv.WaitFor(t, 30*time.Second, "the dead letter's spans", func(s []otlpreceiver.Span) bool {
		_, ok := otlpreceiver.ByID(s, parentID)
		return ok && len(otlpreceiver.Find(s, "process orders")) == 1 && len(otlpreceiver.Find(s, "module checker")) == 1
	})
	send, _ := otlpreceiver.ByID(spans, parentID)
	proc := otlpreceiver.Find(spans, "process orders")[0]
	mod := otlpreceiver.Find(spans, "module checker")[0]
	for _, c := range []struct {
		span   otlpreceiver.Span
		reason string
	}{{send, "module checker: amount missing"}, {proc, "module checker: amount missing"}, {mod, "amount missing"}} {
		if c.span.StatusCode != tracepb.Status_STATUS_CODE_ERROR || c.span.StatusMessage != c.reason || c.span.Attrs["wasmrouter.error"] != c.reason {
			t.Errorf("%s: status %v %q, want error %q", c.span.Name, c.span.StatusCode, c.span.StatusMessage, c.reason)
		}
	}
	if send.Name != "send "+dlq || send.Attrs["wasmrouter.dead_letter"] != true || send.Attrs["wasmrouter.target"] != "dlq" {
		t.Errorf("dead letter's send span %s", send)
	}
	if mod.Attrs["wasmrouter.module.result_code"] != int64(3) || mod.ParentSpanID != proc.SpanID {
		t.Errorf("module span %s", mod)
	}
	if proc.Attrs["wasmrouter.verdict"] != "dead_letter" {
		t.Errorf("process span %s", proc)
	}
	// Nothing reached the route's own target.
	if n := len(rabbit.Collect(t, w.ch, w.targetQueue, 1, 200*time.Millisecond)); n != 0 {
		t.Errorf("%d messages reached the target", n)
	}
}
