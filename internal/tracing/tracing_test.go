package tracing

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/testutil/logbuf"
)

const sourceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

func newTestTracer(t *testing.T, ratio float64) (*Tracer, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tr, err := New(context.Background(), Options{
		Spec:     config.TracingSpec{Protocol: config.ProtocolHTTP, SampleRatio: ratio, ServiceName: "router-test"},
		Exporter: exp,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	return tr, exp
}

func flushed(t *testing.T, tr *Tracer, exp *tracetest.InMemoryExporter) tracetest.SpanStubs {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	return exp.GetSpans()
}

func testEvent(headers event.Table) *event.Event {
	return &event.Event{
		Seq: 42, Source: "in", Exchange: "events", RoutingKey: "order.created",
		Props:   event.Properties{MessageID: "m-1"},
		Headers: headers,
		Body:    []byte(`{"amount":5}`),
		// Ingest times are kept in the log to the nanosecond.
		IngestTime: time.Date(2026, 1, 2, 3, 4, 5, 6789, time.UTC),
	}
}

func attrs(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

func named(t *testing.T, spans tracetest.SpanStubs, name string) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d spans named %q among %d", len(found), name, len(spans))
	}
	return found[0]
}

// deliver runs the spans of one event through one route to one target, as the engine does.
func deliver(tr *Tracer, ev *event.Event, replay bool) (headers map[string]any) {
	recv := tr.StartReceive(ev, "router.events")
	EndReceive(recv, ev.Seq, false, nil)
	proc := tr.StartProcess(ev, "orders", replay, 3)
	mod := tr.StartModule(proc, "high_value", "filter")
	EndModule(mod, 0, "continue", "")
	parent := proc.SpanContext() // as the engine does: nothing touches a span after its End
	EndProcess(proc, VerdictDeliver, "", "", 1)
	headers = map[string]any{}
	for k, v := range ev.Headers {
		headers[k] = v
	}
	send := tr.StartSend(parent, Delivery{
		Route: "orders", Target: "analytics", Exchange: "analytics", RoutingKey: "order.created",
		MessageID: ev.Props.MessageID, Seq: ev.Seq, Replay: replay,
	}, headers)
	EndSend(send, nil)
	return headers
}

func TestSpansOfOneDelivery(t *testing.T) {
	tr, exp := newTestTracer(t, 1)
	ev := testEvent(event.Table{"traceparent": sourceParent, "tracestate": "vendor=x"})
	headers := deliver(tr, ev, false)
	spans := flushed(t, tr, exp)
	if len(spans) != 4 {
		t.Fatalf("%d spans, want 4", len(spans))
	}
	recv := named(t, spans, "receive router.events")
	proc := named(t, spans, "process orders")
	mod := named(t, spans, "module high_value")
	send := named(t, spans, "send analytics")

	source := Extract(ev.Headers)
	for _, s := range []tracetest.SpanStub{recv, proc, mod, send} {
		if s.SpanContext.TraceID() != source.TraceID() {
			t.Errorf("%s: trace %s, want the source's %s", s.Name, s.SpanContext.TraceID(), source.TraceID())
		}
		if got := s.SpanContext.TraceState().String(); got != "vendor=x" {
			t.Errorf("%s: tracestate %q", s.Name, got)
		}
	}
	parentage := []struct {
		child, parent tracetest.SpanStub
	}{{proc, recv}, {mod, proc}, {send, proc}}
	if recv.Parent.SpanID() != source.SpanID() || !recv.Parent.IsRemote() {
		t.Errorf("receive's parent %v, want the source's span %s", recv.Parent, source.SpanID())
	}
	for _, p := range parentage {
		if p.child.Parent.SpanID() != p.parent.SpanContext.SpanID() {
			t.Errorf("%s: parent %s, want %s (%s)", p.child.Name, p.child.Parent.SpanID(), p.parent.SpanContext.SpanID(), p.parent.Name)
		}
	}
	kinds := map[string]trace.SpanKind{recv.Name: trace.SpanKindConsumer, proc.Name: trace.SpanKindConsumer,
		mod.Name: trace.SpanKindInternal, send.Name: trace.SpanKindProducer}
	for _, s := range spans {
		if s.SpanKind != kinds[s.Name] {
			t.Errorf("%s: kind %v, want %v", s.Name, s.SpanKind, kinds[s.Name])
		}
		if s.Status.Code != codes.Unset {
			t.Errorf("%s: status %v", s.Name, s.Status)
		}
	}

	wantAttrs := map[string]map[string]any{
		recv.Name: {"messaging.system": "rabbitmq", "messaging.operation.type": "receive", "messaging.destination.name": "events",
			"messaging.rabbitmq.destination.routing_key": "order.created", "messaging.message.id": "m-1",
			"messaging.destination.subscription.name": "router.events", "wasmrouter.seq": int64(42), "wasmrouter.source": "in"},
		proc.Name: {"messaging.system": "rabbitmq", "messaging.operation.type": "process", "wasmrouter.route": "orders",
			"wasmrouter.seq": int64(42), "wasmrouter.verdict": "deliver", "wasmrouter.generation": int64(3)},
		mod.Name: {"wasmrouter.module": "high_value", "wasmrouter.module.role": "filter", "wasmrouter.module.result_code": int64(0),
			"wasmrouter.module.result": "continue"},
		send.Name: {"messaging.system": "rabbitmq", "messaging.operation.type": "send", "messaging.destination.name": "analytics",
			"messaging.rabbitmq.destination.routing_key": "order.created", "messaging.message.id": "m-1",
			"wasmrouter.route": "orders", "wasmrouter.target": "analytics", "wasmrouter.seq": int64(42)},
	}
	for _, s := range spans {
		got := attrs(s)
		for k, want := range wantAttrs[s.Name] {
			if v, ok := got[attribute.Key(k)]; !ok || v.AsInterface() != want {
				t.Errorf("%s: %s = %v, want %v", s.Name, k, v.AsInterface(), want)
			}
		}
	}
	if svc, _ := send.Resource.Set().Value("service.name"); svc.AsString() != "router-test" {
		t.Errorf("service.name %q", svc.AsString())
	}

	// The delivered copy's traceparent: the source's trace, the send span as parent.
	delivered := Extract(headers)
	if delivered.TraceID() != source.TraceID() || delivered.SpanID() != send.SpanContext.SpanID() || !delivered.IsSampled() {
		t.Errorf("delivered traceparent %v, want trace %s span %s", headers["traceparent"], source.TraceID(), send.SpanContext.SpanID())
	}
	if headers["tracestate"] != "vendor=x" {
		t.Errorf("delivered tracestate %v", headers["tracestate"])
	}
}

func TestNewTraceWhenTheSourceHasNone(t *testing.T) {
	tr, exp := newTestTracer(t, 1)
	ev := testEvent(nil)
	headers := deliver(tr, ev, false)
	spans := flushed(t, tr, exp)
	recv := named(t, spans, "receive router.events")
	send := named(t, spans, "send analytics")
	if recv.Parent.IsValid() {
		t.Errorf("receive has a parent: %v", recv.Parent)
	}
	delivered := Extract(headers)
	if delivered.TraceID() != recv.SpanContext.TraceID() || delivered.SpanID() != send.SpanContext.SpanID() {
		t.Errorf("delivered %v; receive trace %s, send %s", headers["traceparent"], recv.SpanContext.TraceID(), send.SpanContext.SpanID())
	}
	if _, ok := headers["tracestate"]; ok {
		t.Errorf("tracestate added: %v", headers["tracestate"])
	}
}

// The receive span's context is found again from the logged event alone: after a restart the
// process span still has its parent.
func TestReceiveContextIsDerivedFromTheLoggedEvent(t *testing.T) {
	for _, headers := range []event.Table{nil, {"traceparent": sourceParent}} {
		tr, exp := newTestTracer(t, 1)
		ev := testEvent(headers)
		EndReceive(tr.StartReceive(ev, "q"), ev.Seq, false, nil)
		recv := flushed(t, tr, exp)[0]

		other, _ := newTestTracer(t, 1) // another process, later
		got := other.ReceiveContext(testEvent(headers))
		if got.TraceID() != recv.SpanContext.TraceID() || got.SpanID() != recv.SpanContext.SpanID() || got.TraceFlags() != recv.SpanContext.TraceFlags() {
			t.Errorf("headers %v: derived %v, receive span %v", headers, got, recv.SpanContext)
		}
		moved := testEvent(headers)
		moved.IngestTime = moved.IngestTime.Add(time.Nanosecond) // the same message consumed again
		if other.ReceiveContext(moved).SpanID() == got.SpanID() {
			t.Error("two consumptions of one message share a receive span id")
		}
	}
}

func TestReplayStartsANewTraceLinkedToTheOriginal(t *testing.T) {
	tr, exp := newTestTracer(t, 1)
	ev := testEvent(event.Table{"traceparent": sourceParent, "tracestate": "vendor=x"})
	original := tr.ReceiveContext(ev)
	headers := deliver(tr, ev, true)
	spans := flushed(t, tr, exp)
	proc := named(t, spans, "process orders")
	send := named(t, spans, "send analytics")
	if proc.Parent.IsValid() {
		t.Errorf("replayed process span has a parent %v", proc.Parent)
	}
	if proc.SpanContext.TraceID() == original.TraceID() {
		t.Error("a replay continued the original trace")
	}
	if len(proc.Links) != 1 || proc.Links[0].SpanContext.TraceID() != original.TraceID() || proc.Links[0].SpanContext.SpanID() != original.SpanID() {
		t.Fatalf("links %+v, want one to %v", proc.Links, original)
	}
	if v, ok := attrs(proc)["wasmrouter.replay"]; !ok || !v.AsBool() {
		t.Error("process span not marked as a replay")
	}
	if v, ok := attrs(send)["wasmrouter.replay"]; !ok || !v.AsBool() {
		t.Error("send span not marked as a replay")
	}
	delivered := Extract(headers)
	if delivered.TraceID() != proc.SpanContext.TraceID() || delivered.SpanID() != send.SpanContext.SpanID() {
		t.Errorf("delivered %v, want the replay's trace", headers["traceparent"])
	}
	if _, ok := headers["tracestate"]; ok {
		t.Errorf("the original trace's tracestate went into the new trace: %v", headers["tracestate"])
	}
}

func TestDeadLettersHaveErrorStatusAndReason(t *testing.T) {
	tr, exp := newTestTracer(t, 1)
	ev := testEvent(nil)
	proc := tr.StartProcess(ev, "orders", false, 0)
	mod := tr.StartModule(proc, "validate", "transform")
	EndModule(mod, 3, "dead_letter", "amount missing")
	procSC := proc.SpanContext()
	EndProcess(proc, VerdictDeadLetter, "validate", "module validate: amount missing", 1)
	dl := tr.StartSend(procSC, Delivery{Route: "orders", Target: "dlq", Exchange: "dlq", DeadLetter: "module validate: amount missing"}, map[string]any{})
	EndSend(dl, nil)
	refused := tr.StartSend(procSC, Delivery{Route: "orders", Target: "t", Exchange: "t"}, map[string]any{})
	FailSend(refused, "NO_ROUTE", 3)

	spans := flushed(t, tr, exp)
	checks := []struct {
		span   tracetest.SpanStub
		reason string
	}{
		{named(t, spans, "module validate"), "amount missing"},
		{named(t, spans, "process orders"), "module validate: amount missing"},
		{named(t, spans, "send dlq"), "module validate: amount missing"},
		{named(t, spans, "send t"), "NO_ROUTE"},
	}
	for _, c := range checks {
		if c.span.Status.Code != codes.Error || c.span.Status.Description != c.reason {
			t.Errorf("%s: status %+v, want error %q", c.span.Name, c.span.Status, c.reason)
		}
		if got := attrs(c.span)["wasmrouter.error"].AsString(); got != c.reason {
			t.Errorf("%s: wasmrouter.error %q", c.span.Name, got)
		}
	}
}

func TestSampling(t *testing.T) {
	tr, exp := newTestTracer(t, 0)
	// Ratio 0: a trace the router starts is not sampled, yet its context still travels.
	headers := deliver(tr, testEvent(nil), false)
	if n := len(flushed(t, tr, exp)); n != 0 {
		t.Errorf("%d spans exported at ratio 0", n)
	}
	if sc := Extract(headers); !sc.IsValid() || sc.IsSampled() {
		t.Errorf("unsampled delivery carries %v", headers["traceparent"])
	}
	// A sampled parent is always followed.
	deliver(tr, testEvent(event.Table{"traceparent": sourceParent}), false)
	if n := len(flushed(t, tr, exp)); n != 4 {
		t.Errorf("%d spans exported for a sampled parent, want 4", n)
	}
	// An unsampled parent never is, even at ratio 1.
	tr1, exp1 := newTestTracer(t, 1)
	deliver(tr1, testEvent(event.Table{"traceparent": strings.TrimSuffix(sourceParent, "01") + "00"}), false)
	if n := len(flushed(t, tr1, exp1)); n != 0 {
		t.Errorf("%d spans exported for an unsampled parent", n)
	}
}

func TestMalformedTraceparentStartsANewTrace(t *testing.T) {
	tr, exp := newTestTracer(t, 1)
	ev := testEvent(event.Table{"traceparent": "garbage", "tracestate": "a=b"})
	headers := deliver(tr, ev, false)
	recv := named(t, flushed(t, tr, exp), "receive router.events")
	if recv.Parent.IsValid() {
		t.Errorf("parent from a malformed header: %v", recv.Parent)
	}
	if sc := Extract(headers); sc.TraceID() != recv.SpanContext.TraceID() {
		t.Errorf("delivered %v", headers["traceparent"])
	}
	// A traceparent written as an AMQP byte array is read too.
	tr2, exp2 := newTestTracer(t, 1)
	deliver(tr2, testEvent(event.Table{"traceparent": []byte(sourceParent)}), false)
	recv = named(t, flushed(t, tr2, exp2), "receive router.events")
	if recv.Parent.SpanID().String() != "b7ad6b7169203331" {
		t.Errorf("byte-array traceparent ignored: parent %v", recv.Parent)
	}
}

// blockingExporter stands for a collector that does not answer: exports wait until released.
type blockingExporter struct {
	release chan struct{}
	mu      sync.Mutex
	got     int
	fail    error
}

func (b *blockingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	select {
	case <-b.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail != nil {
		return b.fail
	}
	b.got += len(spans)
	return nil
}

func (b *blockingExporter) Shutdown(context.Context) error { return nil }

func TestASlowCollectorNeverHoldsSpansBack(t *testing.T) {
	exp := &blockingExporter{release: make(chan struct{})}
	dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "dropped"})
	exported := prometheus.NewCounter(prometheus.CounterOpts{Name: "exported"})
	var logs logbuf.Buffer
	tr, err := New(context.Background(), Options{
		Spec: config.TracingSpec{SampleRatio: 1}, Exporter: exp, Dropped: dropped, Exported: exported,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), QueueBytes: 16 * int(unsafe.Sizeof(span{})), Batch: 4, Interval: time.Hour, ExportTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The worker takes one batch and blocks on it; the queue fills; every span after that is
	// dropped at once, and ending a span never waits.
	const n = 1000
	for i := range n {
		ev := testEvent(nil)
		ev.Props.MessageID = "m-" + string(rune('a'+i%26))
		EndReceive(tr.StartReceive(ev, "q"), 1, false, nil)
	}
	d := testutil.ToFloat64(dropped)
	if d < n-16-4 {
		t.Errorf("dropped %v of %d spans, want at least %d", d, n, n-16-4)
	}
	if lines := strings.Count(logs.String(), "trace spans dropped"); lines != 1 {
		t.Errorf("%d log lines about drops, want 1 (rate limited):\n%s", lines, logs.String())
	}
	close(exp.release)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(exported) + testutil.ToFloat64(dropped); got != n {
		t.Errorf("exported + dropped = %v, want %d: spans unaccounted for", got, n)
	}
}

func TestAFailedExportCountsItsSpansAsDropped(t *testing.T) {
	exp := &blockingExporter{release: make(chan struct{}), fail: errors.New("connection refused")}
	close(exp.release)
	dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "dropped"})
	var logs logbuf.Buffer
	tr, err := New(context.Background(), Options{
		Spec: config.TracingSpec{SampleRatio: 1}, Exporter: exp, Dropped: dropped,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		EndReceive(tr.StartReceive(testEvent(nil), "q"), 1, false, nil)
	}
	if err := tr.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(dropped); got != 3 {
		t.Errorf("dropped %v, want 3", got)
	}
	if !strings.Contains(logs.String(), "connection refused") {
		t.Errorf("log does not say why:\n%s", logs.String())
	}
	_ = tr.Shutdown(context.Background())
}

func TestTraceparentParsing(t *testing.T) {
	valid := map[string]string{
		sourceParent: "0af7651916cd43dd8448eb211c80319c/b7ad6b7169203331/01",
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00":       "0af7651916cd43dd8448eb211c80319c/b7ad6b7169203331/00",
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03":       "0af7651916cd43dd8448eb211c80319c/b7ad6b7169203331/01",
		"01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra": "0af7651916cd43dd8448eb211c80319c/b7ad6b7169203331/01",
	}
	for tp, want := range valid {
		sc := Extract(map[string]any{"traceparent": tp})
		if got := sc.TraceID().String() + "/" + sc.SpanID().String() + "/" + sc.TraceFlags().String(); got != want || !sc.IsRemote() {
			t.Errorf("%s: %s, want %s", tp, got, want)
		}
	}
	for _, tp := range []string{
		"", "garbage", sourceParent + "-x", "ff" + sourceParent[2:], "0g" + sourceParent[2:],
		"00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
		"00-00000000000000000000000000000000-b7ad6b7169203331-01",
		"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0x",
		"01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
	} {
		if sc := Extract(map[string]any{"traceparent": tp}); sc.IsValid() {
			t.Errorf("%q parsed as %v", tp, sc)
		}
	}
	// Written back as it was read.
	sc := Extract(map[string]any{"traceparent": sourceParent, "tracestate": "a=1,b=2"})
	h := map[string]any{"tracestate": "old=1"}
	inject(sc, h)
	if h["traceparent"] != sourceParent || h["tracestate"] != "a=1,b=2" {
		t.Errorf("injected %v", h)
	}
	inject(Extract(map[string]any{"traceparent": sourceParent}), h)
	if _, ok := h["tracestate"]; ok {
		t.Errorf("tracestate kept for a trace without one: %v", h)
	}
}

// The queue is bounded in bytes: spans with large attributes fill it with fewer spans, and what
// is dropped is counted, exported plus dropped being every span.
func TestTheQueueIsBoundedInBytes(t *testing.T) {
	exp := &blockingExporter{release: make(chan struct{})}
	dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "dropped"})
	exported := prometheus.NewCounter(prometheus.CounterOpts{Name: "exported"})
	const limit = 1 << 20
	tr, err := New(context.Background(), Options{
		Spec: config.TracingSpec{SampleRatio: 1}, Exporter: exp, Dropped: dropped, Exported: exported,
		QueueBytes: limit, Batch: 4, Interval: time.Hour, ExportTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	// 64 KiB routing keys: at most 16 such spans fit in 1 MiB, where thousands of small ones would.
	const n = 100
	key := strings.Repeat("k", 64<<10)
	for range n {
		ev := testEvent(nil)
		ev.RoutingKey = key
		EndReceive(tr.StartReceive(ev, "q"), 1, false, nil)
	}
	if d := testutil.ToFloat64(dropped); d < n-limit/(64<<10) {
		t.Errorf("dropped %v of %d spans of over 64 KiB each in a 1 MiB queue, want at least %d", d, n, n-limit/(64<<10))
	}
	close(exp.release)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(exported) + testutil.ToFloat64(dropped); got != n {
		t.Errorf("exported + dropped = %v, want %d", got, n)
	}
	if tr.proc.held != 0 {
		t.Errorf("%d bytes still counted after every span was exported", tr.proc.held)
	}
}

// With the router's exporter the queue holds the spans' encodings, bounded in bytes as well:
// a collector that does not answer costs at most the bound, the rest is dropped and counted,
// and every span is exported or dropped.
func TestTheEncodedQueueIsBoundedInBytes(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "dropped"})
	exported := prometheus.NewCounter(prometheus.CounterOpts{Name: "exported"})
	const limit = 1 << 20
	tr, err := New(context.Background(), Options{
		Spec:    config.TracingSpec{SampleRatio: 1, Endpoint: srv.URL + "/v1/traces", Protocol: config.ProtocolHTTP},
		Dropped: dropped, Exported: exported,
		QueueBytes: limit, Batch: 4, Interval: time.Hour, ExportTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	if tr.proc.enc == nil {
		t.Fatal("the router's exporter does not take encoded spans")
	}
	// 64 KiB routing keys: at most 16 such spans fit in 1 MiB, where thousands of small ones would.
	const n = 100
	key := strings.Repeat("k", 64<<10)
	for range n {
		ev := testEvent(nil)
		ev.RoutingKey = key
		EndReceive(tr.StartReceive(ev, "q"), 1, false, nil)
	}
	if d := testutil.ToFloat64(dropped); d < n-limit/(64<<10) {
		t.Errorf("dropped %v of %d spans of over 64 KiB each in a 1 MiB queue, want at least %d", d, n, n-limit/(64<<10))
	}
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(exported) + testutil.ToFloat64(dropped); got != n {
		t.Errorf("exported + dropped = %v, want %d", got, n)
	}
	if tr.proc.held != 0 {
		t.Errorf("%d bytes still counted after every span was exported", tr.proc.held)
	}
}

// A send span keeps copies of the message id and routing key, not the strings it was given:
// those usually share a logged record's memory, which the span would keep alive while it waits
// for export.
func TestSendSpansShareNoMemoryWithTheDelivery(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tr, err := New(context.Background(), Options{Spec: config.TracingSpec{SampleRatio: 1}, Exporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	record := []byte("order.created" + "m-1" + strings.Repeat("x", 200))
	routingKey := unsafe.String(&record[0], 13)
	messageID := unsafe.String(&record[13], 3)
	long := string(record) // longer than the span's own room
	headers := map[string]any{}
	sp := tr.StartSend(trace.SpanContext{}, Delivery{Route: "r", Target: "t", Exchange: "x", RoutingKey: routingKey, MessageID: messageID}, headers)
	sp.End()
	sp = tr.StartSend(trace.SpanContext{}, Delivery{Route: "r", Target: "t", Exchange: "x", RoutingKey: long, MessageID: long}, headers)
	sp.End()
	if err := tr.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	for i, want := range [][2]string{{routingKey, messageID}, {long, long}} {
		a := attrs(spans[i])
		for j, key := range []attribute.Key{"messaging.rabbitmq.destination.routing_key", "messaging.message.id"} {
			got := a[key].AsString()
			if got != want[j] {
				t.Errorf("span %d: %s = %q, want %q", i, key, got, want[j])
			}
			if unsafe.StringData(got) == unsafe.StringData(want[j]) {
				t.Errorf("span %d: %s shares the delivery's memory", i, key)
			}
		}
	}
}
