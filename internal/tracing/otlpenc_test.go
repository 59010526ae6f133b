package tracing

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
)

// keep is an exporter that keeps the finished spans as they are, for both encodings to read.
type keep struct {
	mu    sync.Mutex
	spans []sdktrace.ReadOnlySpan
}

func (k *keep) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.spans = append(k.spans, spans...)
	return nil
}
func (k *keep) Shutdown(context.Context) error { return nil }

func (k *keep) all() []sdktrace.ReadOnlySpan {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.spans)
}

// sdkRequest is what the OpenTelemetry SDK's OTLP/HTTP exporter sends for spans: its
// conversion to the generated protobuf structures and proto.Marshal, as posted.
func sdkRequest(t *testing.T, spans []sdktrace.ReadOnlySpan) *collectortrace.ExportTraceServiceRequest {
	t.Helper()
	var mu sync.Mutex
	var bodies [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
		}
		mu.Lock()
		bodies = append(bodies, b)
		mu.Unlock()
	}))
	defer srv.Close()
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(srv.URL+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.ExportSpans(context.Background(), spans); err != nil {
		t.Fatal(err)
	}
	if err := exp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(bodies) != 1 {
		t.Fatalf("the SDK exporter sent %d requests, want 1", len(bodies))
	}
	return decodeRequest(t, bodies[0])
}

func decodeRequest(t *testing.T, b []byte) *collectortrace.ExportTraceServiceRequest {
	t.Helper()
	var req collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		t.Fatalf("decoding the request: %v", err)
	}
	return &req
}

// sortResources orders the request's resources by their encoding: the SDK's exporter groups
// spans through a map, so its order of resources varies from run to run.
func sortResources(req *collectortrace.ExportTraceServiceRequest) {
	key := func(rs *tracepb.ResourceSpans) string {
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(rs.GetResource())
		return string(b)
	}
	slices.SortFunc(req.ResourceSpans, func(a, b *tracepb.ResourceSpans) int { return strings.Compare(key(a), key(b)) })
}

// conformant checks that the encoder's request for spans is the one the SDK's exporter sends.
func conformant(t *testing.T, spans []sdktrace.ReadOnlySpan) {
	t.Helper()
	want := sdkRequest(t, spans)
	var enc encoder
	got := decodeRequest(t, enc.encode(spans))
	sortResources(want)
	sortResources(got)
	if !proto.Equal(got, want) {
		t.Fatalf("the encoded request differs from the SDK's\ngot:\n%s\nwant:\n%s", prototext.Format(got), prototext.Format(want))
	}
	// The encoder's buffer is reused: a second batch must come out the same.
	again := decodeRequest(t, enc.encode(spans))
	sortResources(again)
	if !proto.Equal(again, got) {
		t.Fatalf("a second encoding differs from the first")
	}
	// Spans of one resource and scope, encoded one by one as they end and sent together
	// (encoded.go), make the same request.
	var live []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s != nil {
			live = append(live, s)
		}
	}
	if len(live) == 0 {
		return
	}
	res, scope := live[0].Resource(), live[0].InstrumentationScope()
	var each []byte
	for _, s := range live {
		if s.Resource() != res || s.InstrumentationScope() != scope {
			return // several groups: the processor sends them as several requests
		}
		each = appendSpan(each, s)
	}
	var enc2 encoder
	one := decodeRequest(t, enc2.encodeSpans(res, scope, each))
	if !proto.Equal(one, got) {
		t.Fatalf("the spans encoded one by one make another request\ngot:\n%s\nwant:\n%s", prototext.Format(one), prototext.Format(got))
	}
}

func keepingTracer(t *testing.T, service string) (*Tracer, *keep) {
	t.Helper()
	k := &keep{}
	tr, err := New(context.Background(), Options{Spec: config.TracingSpec{SampleRatio: 1, ServiceName: service}, Exporter: k, Version: "1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	return tr, k
}

func flushKept(t *testing.T, tr *Tracer, k *keep) []sdktrace.ReadOnlySpan {
	t.Helper()
	if err := tr.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return k.all()
}

// The router's spans of every kind: a delivery with trace state, a replay with its link, dead
// letters, a refused receive, a duplicate, a failed publish.
func TestEncoderMatchesTheSDKForTheRoutersSpans(t *testing.T) {
	tr, k := keepingTracer(t, "edge")
	deliver(tr, testEvent(event.Table{"traceparent": sourceParent, "tracestate": "vendor=x,other=y"}), false)
	deliver(tr, testEvent(nil), true)

	ev := testEvent(event.Table{"traceparent": sourceParent})
	EndReceive(tr.StartReceive(ev, "q"), 0, false, errors.New("log refused the append"))
	EndReceive(tr.StartReceive(ev, "q"), 9, true, nil)
	proc := tr.StartProcess(ev, "orders", false, 1)
	mod := tr.StartModule(proc, "strict", "transform")
	EndModule(mod, 3, "dead_letter", "schema mismatch")
	procSC := proc.SpanContext()
	EndProcess(proc, VerdictDeadLetter, "strict", "schema mismatch", 2)
	dl := tr.StartSend(procSC, Delivery{Route: "orders", Target: "dlq", Cluster: "dr", Exchange: "dlx",
		RoutingKey: "", MessageID: "m-1", Seq: 42, DeadLetter: "schema mismatch"}, map[string]any{})
	EndSend(dl, nil)
	send := tr.StartSend(procSC, Delivery{Route: "orders", Target: "t", Exchange: "x", Seq: 42}, map[string]any{})
	EndSend(send, errors.New("returned: NO_ROUTE"))
	send = tr.StartSend(procSC, Delivery{Route: "orders", Target: "t", Exchange: "x", Seq: 42}, map[string]any{})
	FailSend(send, "nacked 3 times", 3)

	// Spans without a resource or an instrumentation scope, which the SDK leaves out.
	bare := *tr
	bare.resource, bare.scope = nil, instrumentation.Scope{}
	EndReceive(bare.StartReceive(ev, "bare"), 1, false, nil)

	spans := flushKept(t, tr, k)
	if len(spans) < 15 {
		t.Fatalf("%d spans recorded", len(spans))
	}
	conformant(t, spans)
}

// Spans made through the SDK (the Tracer's comparison path) with what the router's own never
// carry: every attribute type, events, links with attributes, remote parents, an ok status,
// long values whose lengths take more than one byte; and spans of a second resource
// interleaved with the first's.
func TestEncoderMatchesTheSDKForGeneralSpans(t *testing.T) {
	tr, k := keepingTracer(t, "edge")
	other, ko := keepingTracer(t, "other")

	remote := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, SpanID: trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled, Remote: true,
	})
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), remote)
	long := strings.Repeat("x", 300)
	all := []attribute.KeyValue{
		attribute.Bool("b", true), attribute.Bool("f", false),
		attribute.Int64("i", -7), attribute.Int64("zero", 0), attribute.Int64("max", math.MaxInt64),
		attribute.Float64("d", 2.5), attribute.Float64("nan", math.NaN()), attribute.Float64("neg0", 0),
		attribute.String("s", "é"), attribute.String("empty", ""), attribute.String("long", long),
		attribute.BoolSlice("bs", []bool{true, false}), attribute.Int64Slice("is", []int64{1, -1, 0}),
		attribute.Float64Slice("ds", []float64{0.5, -3}), attribute.StringSlice("ss", []string{"a", "", long}),
		attribute.StringSlice("none", nil),
	}
	_, s1 := tr.tracer.Start(ctx, "sdk span", trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(all...),
		trace.WithLinks(trace.Link{SpanContext: remote, Attributes: []attribute.KeyValue{attribute.String("why", "batch")}}))
	s1.AddEvent("ev", trace.WithAttributes(attribute.Int("n", 1)), trace.WithTimestamp(time.Unix(1, 5)))
	s1.AddEvent("bare")
	s1.SetStatus(codes.Ok, "ignored for ok")
	_, s2 := other.tracer.Start(ctx, "other "+long, trace.WithSpanKind(trace.SpanKindClient))
	s2.SetStatus(codes.Error, long)
	c, s3 := tr.tracer.Start(context.Background(), "root")
	_, s4 := tr.tracer.Start(c, "child", trace.WithSpanKind(trace.SpanKindProducer))
	s4.End()
	s3.End()
	s2.End()
	s1.End()

	spans := append(flushKept(t, tr, k), flushKept(t, other, ko)...)
	if len(spans) != 4 {
		t.Fatalf("%d spans, want 4", len(spans))
	}
	// Interleave the two resources.
	spans[0], spans[3] = spans[3], spans[0]
	conformant(t, spans)

	// Many spans, so that the outer messages' lengths take several bytes.
	var many []sdktrace.ReadOnlySpan
	for range 300 {
		many = append(many, spans...)
	}
	conformant(t, many)
}

// An empty batch, or one of nil spans, encodes to an empty request (nothing is sent).
func TestEncoderEmptyBatch(t *testing.T) {
	var enc encoder
	if b := enc.encode(nil); len(b) != 0 {
		t.Errorf("empty batch encoded to %d bytes", len(b))
	}
	if b := enc.encode([]sdktrace.ReadOnlySpan{nil}); len(b) != 0 {
		t.Errorf("batch of nil encoded to %d bytes", len(b))
	}
}

// BenchmarkEncode is the encoding of a batch of 512 of the router's spans (128 events of four).
func BenchmarkEncode(b *testing.B) {
	tr, err := New(context.Background(), Options{Spec: config.TracingSpec{SampleRatio: 1}, Exporter: &keep{}})
	if err != nil {
		b.Fatal(err)
	}
	k := &keep{}
	tr.proc.exporter = k
	ev := testEvent(event.Table{"traceparent": sourceParent})
	for range 128 {
		deliver(tr, ev, false)
	}
	if err := tr.ForceFlush(context.Background()); err != nil {
		b.Fatal(err)
	}
	spans := k.all()
	var enc encoder
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		enc.encode(spans)
	}
	b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N)/float64(len(spans)), "cpu-ns/span")
}
