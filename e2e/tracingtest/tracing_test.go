package tracingtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/testutil/otlpreceiver"
	"github.com/wasmrouter/wasmrouter/router"
)

const (
	publisherTrace = "0af7651916cd43dd8448eb211c80319c"
	publisherSpan  = "b7ad6b7169203331"
	traceparent    = "00-" + publisherTrace + "-" + publisherSpan + "-01"
)

// parseTraceparent splits a delivered copy's traceparent.
func parseTraceparent(t *testing.T, d amqp.Delivery) (traceID, spanID string) {
	t.Helper()
	tp, ok := d.Headers["traceparent"].(string)
	if !ok || len(tp) != 55 {
		t.Fatalf("delivered copy has no traceparent string: %#v", d.Headers["traceparent"])
	}
	return tp[3:35], tp[36:52]
}

func child(t *testing.T, spans []otlpreceiver.Span, parent otlpreceiver.Span, name string) otlpreceiver.Span {
	t.Helper()
	for _, s := range spans {
		if s.ParentSpanID == parent.SpanID && s.TraceID == parent.TraceID && s.Name == name {
			return s
		}
	}
	t.Fatalf("no span %q under %s", name, parent)
	return otlpreceiver.Span{}
}

// A message published with a traceparent reaches its target with a traceparent of the same
// trace whose parent is a send span the collector received, under the route's process span,
// under the receive span, under the publisher's span. A replay starts a new trace linked to it.
func TestTraceContextFollowsTheEvent(t *testing.T) {
	w := newWorld(t)
	rcv := otlpreceiver.Start(t)
	r := w.start(w.config(tracingBlock(rcv.URL)))

	w.publish(amqp.Publishing{
		MessageId: "traced-1", Headers: amqp.Table{"traceparent": traceparent, "tracestate": "congo=t61rcWkgMzE", "region": "eu"},
		Body: []byte(`{"id":1}`),
	})
	d := w.take(1)[0]
	traceID, parentID := parseTraceparent(t, d)
	if traceID != publisherTrace {
		t.Fatalf("delivered trace id %s, want the publisher's %s", traceID, publisherTrace)
	}
	if d.Headers["tracestate"] != "congo=t61rcWkgMzE" {
		t.Errorf("tracestate %v", d.Headers["tracestate"])
	}
	spans := rcv.WaitFor(t, 30*time.Second, "the send span named by the delivered traceparent", func(s []otlpreceiver.Span) bool {
		_, ok := otlpreceiver.ByID(s, parentID)
		return ok
	})
	send, _ := otlpreceiver.ByID(spans, parentID)
	if send.Name != "send "+w.target || send.Kind != tracepb.Span_SPAN_KIND_PRODUCER || send.Service != "router-under-test" {
		t.Errorf("the copy's parent is %s", send)
	}
	for k, want := range map[string]any{"messaging.system": "rabbitmq", "messaging.destination.name": w.target,
		"messaging.message.id": "traced-1", "wasmrouter.route": "orders", "wasmrouter.target": "out",
		"wasmrouter.seq": d.Headers[event.HeaderSeq]} {
		if send.Attrs[k] != want {
			t.Errorf("send span %s = %v, want %v", k, send.Attrs[k], want)
		}
	}
	spans = rcv.WaitFor(t, 30*time.Second, "the receive and process spans", func(s []otlpreceiver.Span) bool {
		return len(otlpreceiver.Find(s, "receive "+w.queue)) == 1 && len(otlpreceiver.Find(s, "process orders")) == 1
	})
	recv := otlpreceiver.Find(spans, "receive "+w.queue)[0]
	if recv.TraceID != publisherTrace || recv.ParentSpanID != publisherSpan || recv.Kind != tracepb.Span_SPAN_KIND_CONSUMER {
		t.Errorf("receive span %s, want a consumer span under the publisher's", recv)
	}
	proc := child(t, spans, recv, "process orders")
	if send.ParentSpanID != proc.SpanID {
		t.Errorf("send span's parent %s, want the process span %s", send.ParentSpanID, proc.SpanID)
	}
	mod := child(t, spans, proc, "module eu_only")
	if mod.Attrs["wasmrouter.module.result_code"] != int64(0) {
		t.Errorf("module span %s", mod)
	}

	// A replay: the copy carries x-router-replay and a new trace whose process span links to
	// the original receive span.
	id, err := r.Engine.StartReplay(context.Background(), router.ReplayRequest{Routes: []string{"orders"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("replay job %s", id)
	replayed := w.take(1)[0]
	if replayed.Headers[event.HeaderReplay] != true {
		t.Fatalf("second copy is not a replay: %v", replayed.Headers)
	}
	replayTrace, replayParent := parseTraceparent(t, replayed)
	if replayTrace == publisherTrace {
		t.Fatal("a replay continued the original trace")
	}
	if _, ok := replayed.Headers["tracestate"]; ok {
		t.Errorf("the original tracestate went into the replay's trace: %v", replayed.Headers["tracestate"])
	}
	spans = rcv.WaitFor(t, 30*time.Second, "the replay's spans", func(s []otlpreceiver.Span) bool {
		_, ok := otlpreceiver.ByID(s, replayParent)
		return ok && len(otlpreceiver.Find(s, "process orders")) == 2
	})
	var replayProc otlpreceiver.Span
	for _, p := range otlpreceiver.Find(spans, "process orders") {
		if p.TraceID == replayTrace {
			replayProc = p
		}
	}
	if replayProc.ParentSpanID != "" || len(replayProc.Links) != 1 ||
		replayProc.Links[0].TraceID != publisherTrace || replayProc.Links[0].SpanID != recv.SpanID {
		t.Errorf("replay's process span %s links %+v; want a root linked to the receive span %s", replayProc, replayProc.Links, recv.SpanID)
	}
	if replaySend, _ := otlpreceiver.ByID(spans, replayParent); replaySend.ParentSpanID != replayProc.SpanID || replaySend.Attrs["wasmrouter.replay"] != true {
		t.Errorf("replay's send span %s", replaySend)
	}
}

// A message without trace context starts a trace at the router; a dropped event's process span
// says so.
func TestTraceStartsAtTheRouter(t *testing.T) {
	w := newWorld(t)
	rcv := otlpreceiver.Start(t)
	w.start(w.config(tracingBlock(rcv.URL)))
	w.publish(
		amqp.Publishing{MessageId: "dropped", Headers: amqp.Table{"region": "us"}, Body: []byte("{}")},
		amqp.Publishing{MessageId: "untraced", Headers: amqp.Table{"region": "eu"}, Body: []byte("{}")},
	)
	d := w.take(1)[0]
	traceID, parentID := parseTraceparent(t, d)
	if _, ok := d.Headers["tracestate"]; ok {
		t.Errorf("tracestate added: %v", d.Headers["tracestate"])
	}
	spans := rcv.WaitFor(t, 30*time.Second, "two traces", func(s []otlpreceiver.Span) bool {
		_, ok := otlpreceiver.ByID(s, parentID)
		return ok && len(otlpreceiver.Find(s, "process orders")) == 2 && len(otlpreceiver.Find(s, "receive "+w.queue)) == 2
	})
	for _, recv := range otlpreceiver.Find(spans, "receive "+w.queue) {
		if recv.ParentSpanID != "" {
			t.Errorf("receive span with a parent: %s", recv)
		}
		proc := child(t, spans, recv, "process orders")
		switch recv.Attrs["messaging.message.id"] {
		case "untraced":
			if recv.TraceID != traceID || proc.Attrs["wasmrouter.verdict"] != "deliver" {
				t.Errorf("delivered event: receive %s, process %s; copy's trace %s", recv, proc, traceID)
			}
		case "dropped":
			if proc.Attrs["wasmrouter.verdict"] != "drop" || proc.Attrs["wasmrouter.module"] != "eu_only" {
				t.Errorf("dropped event's process span %s", proc)
			}
		}
	}
}

// Without a tracing block the router makes no spans and delivered copies carry the source's
// trace context unchanged.
func TestWithoutTracingTheContextPassesUnchanged(t *testing.T) {
	w := newWorld(t)
	w.start(w.config(""))
	w.publish(amqp.Publishing{
		Headers: amqp.Table{"traceparent": traceparent, "tracestate": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", "region": "eu"},
		Body:    []byte("{}"),
	})
	d := w.take(1)[0]
	if d.Headers["traceparent"] != traceparent {
		t.Errorf("traceparent arrived as %#v, want %q", d.Headers["traceparent"], traceparent)
	}
	if d.Headers["tracestate"] != "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7" {
		t.Errorf("tracestate arrived as %#v", d.Headers["tracestate"])
	}
}

// A collector that is down, or that never answers, costs spans, counted, and nothing else:
// every event is delivered.
func TestCollectorTroubleLosesNoEvent(t *testing.T) {
	// The exporter gives up on a request after this long (the OTLP variable the exporter reads).
	t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "300")
	for _, c := range []struct {
		name     string
		endpoint func(t *testing.T) string
	}{
		{"down", func(t *testing.T) string { return otlpreceiver.DownURL(t) }},
		{"slow", func(t *testing.T) string { return otlpreceiver.StartSlow(t).URL }},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t)
			r := w.start(w.config(tracingBlock(c.endpoint(t))))
			const n = 300
			msgs := make([]amqp.Publishing, n)
			for i := range msgs {
				msgs[i] = amqp.Publishing{MessageId: fmt.Sprintf("m-%d", i), Headers: amqp.Table{"traceparent": traceparent, "region": "eu"}, Body: []byte("{}")}
			}
			w.publish(msgs...)
			seen := map[string]bool{}
			for _, d := range w.take(n) {
				seen[d.MessageId] = true
				if tid, _ := parseTraceparent(t, d); tid != publisherTrace {
					t.Fatalf("copy %s in trace %s", d.MessageId, tid)
				}
			}
			if len(seen) != n {
				t.Errorf("%d distinct messages of %d", len(seen), n)
			}
			waitUntil(t, 30*time.Second, "spans counted as dropped", func() bool {
				return metric(t, r.Admin, "router_trace_spans_dropped_total") > 0
			})
			if got := metric(t, r.Admin, "router_trace_spans_exported_total"); got != 0 {
				t.Errorf("%v spans exported to a collector in trouble", got)
			}
		})
	}
}

// Over OTLP/gRPC, with gzip and headers from the OTEL_EXPORTER_OTLP_* variables: the copy's
// parent is a send span the collector decoded, and every call was compressed and carried the
// headers.
func TestTraceContextOverGRPC(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=acme")
	w := newWorld(t)
	rcv := otlpreceiver.StartGRPC(t)
	w.start(w.config(fmt.Sprintf("tracing {\n  endpoint = %q\n  protocol = \"grpc\"\n  service_name = \"router-under-test\"\n}\n", rcv.URL)))

	w.publish(amqp.Publishing{MessageId: "grpc-1", Headers: amqp.Table{"traceparent": traceparent, "region": "eu"}, Body: []byte(`{"id":1}`)})
	d := w.take(1)[0]
	traceID, parentID := parseTraceparent(t, d)
	if traceID != publisherTrace {
		t.Fatalf("delivered trace id %s, want %s", traceID, publisherTrace)
	}
	spans := rcv.WaitFor(t, 30*time.Second, "the send span and the receive span", func(s []otlpreceiver.Span) bool {
		_, ok := otlpreceiver.ByID(s, parentID)
		return ok && len(otlpreceiver.Find(s, "receive "+w.queue)) == 1
	})
	send, _ := otlpreceiver.ByID(spans, parentID)
	if send.Name != "send "+w.target || send.Kind != tracepb.Span_SPAN_KIND_PRODUCER || send.Service != "router-under-test" ||
		send.Attrs["messaging.message.id"] != "grpc-1" {
		t.Errorf("the copy's parent is %s", send)
	}
	if recv := otlpreceiver.Find(spans, "receive "+w.queue)[0]; recv.ParentSpanID != publisherSpan {
		t.Errorf("receive span %s, want the publisher's span as parent", recv)
	}
	if len(rcv.Metadata()) == 0 || len(rcv.Compressions()) != len(rcv.Metadata()) {
		t.Fatalf("%d calls' metadata, %d calls' compression", len(rcv.Metadata()), len(rcv.Compressions()))
	}
	for i, md := range rcv.Metadata() {
		if v := md.Get("x-tenant"); len(v) != 1 || v[0] != "acme" {
			t.Errorf("call %d metadata %v, want x-tenant: acme", i, md)
		}
	}
	for i, c := range rcv.Compressions() {
		if c != "gzip" {
			t.Errorf("call %d compression %q, want gzip", i, c)
		}
	}
}
